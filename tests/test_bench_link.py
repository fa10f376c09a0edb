"""`telesurgery-bench link` end to end: real processes, the JSON keys others rely on, the PNG."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_link_benchmark_writes_json_and_png(tmp_path) -> None:
    out = tmp_path / "link.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.cli",
            "link",
            "--profile",
            "5g-clinical",
            "--seconds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "machine:" in proc.stdout and "ratio link/raw" in proc.stdout
    r = json.loads(out.read_text())
    for key in ("rtt_ms", "raw_rtt_ms"):
        assert set(r[key]) >= {"p50", "p99", "max"}
    assert isinstance(r["jitter_ms"], float) and isinstance(r["loss"], float)
    assert r["profile"] == "5g-clinical" and r["machine"]["cores"] >= 1
    # 5g-clinical is 38 ms round trip; raw loopback is far below a millisecond
    assert 37.0 < r["rtt_ms"]["p50"] < 41.0
    assert r["raw_rtt_ms"]["p50"] < 5.0
    assert r["loss"] == 0.0 and r["messages"]["sent"] >= 900
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_unknown_profile_is_a_clear_error(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", "link", "--profile", "moon", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "moon" in proc.stderr and "lindbergh" in proc.stderr
