"""``telesurgery-bench loop``: a reduced run of the matrix and the real loops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks import loop_bench
from benchmarks.cli import main as bench_main


def test_measure_counts_ticks_and_lateness() -> None:
    r = loop_bench.measure("sleep-absolute", 0.05)
    assert r["ticks"] == 50 and len(r["lateness_ns"]) == 50
    assert 900 < r["rate_hz"] < 1010
    assert min(r["lateness_ns"]) > -1000  # never wakes before the deadline (clock rounding)
    with pytest.raises(ValueError):
        loop_bench.measure("busy", 0.01)


def test_checks_catch_impossible_figures() -> None:
    base = {
        "ticks": 1000,
        "fifo": True,
        "fifo_requested": True,
        "load": False,
        "lateness_us": {"p50": 1.0, "p99": 2.0, "p999": 3.0, "max": 4.0},
    }
    ok = [
        {**base, "wait": "hybrid", "rate_hz": 1000.0},
        {**base, "wait": "sleep-relative", "rate_hz": 930.0},
    ]
    assert loop_bench.check(ok) == []
    bad = [
        {**base, "wait": "sleep-relative", "rate_hz": 1000.0},
        {
            **base,
            "wait": "hybrid",
            "rate_hz": 1000.0,
            "lateness_us": {**base["lateness_us"], "p50": 80.0},
        },
        {**base, "wait": "sleep-absolute", "rate_hz": 900.0},
    ]
    assert len(loop_bench.check(bad)) == 3


@pytest.mark.slow
def test_loop_bench_reduced_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    jpath = tmp_path / "loop.json"
    rc = bench_main(
        [
            "loop",
            "--seconds",
            "0.3",
            "--real-seconds",
            "2",
            "--json",
            str(jpath),
            "--out-dir",
            str(tmp_path),
        ]
    )
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "machine:" in text.out
    r = json.loads(jpath.read_text())
    assert r["benchmark"] == "loop" and r["problems"] == []
    assert isinstance(r["fifo_permitted"], bool)
    configs = r["configs"]
    assert len(configs) == 12
    seen = {(c["wait"], c["fifo_requested"], c["load"]) for c in configs}
    assert len(seen) == 12
    for c in configs:
        s = c["lateness_us"]
        assert all(math.isfinite(s[k]) for k in ("p50", "p99", "p999", "max"))
        assert s["p50"] <= s["p99"] <= s["p999"] <= s["max"]
        assert c["ticks"] == 300
        assert c["fifo"] == (c["fifo_requested"] and r["fifo_permitted"])
        if c["wait"] == "sleep-relative":
            assert c["rate_hz"] < 1000.0
        else:
            assert c["rate_hz"] == pytest.approx(1000.0, rel=0.02)
        if c["load"]:
            assert c["load_cpu_s"] is None or c["load_cpu_s"] > 0
    hybrid_fifo = [c for c in configs if c["wait"] == "hybrid" and c["fifo"]]
    for c in hybrid_fifo:
        assert c["lateness_us"]["p50"] < 50.0
    real = r["real_loops"]
    assert np.isfinite(real["console"]["lateness_us"]["p50"])
    arm = real["arm"]["lateness_us"]
    assert arm is not None and np.isfinite(arm["p50"]) and arm["max"] >= arm["p50"]
    md = jpath.with_suffix(".md").read_text()
    assert "| hybrid |" in md and "| console |" in md
    assert jpath.with_suffix(".png").stat().st_size > 10_000
