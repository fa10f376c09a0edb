"""`telesurgery-bench tremor` end to end on a short run: JSON keys, tables, plots, checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import tremor_bench
from benchmarks.tremor_signals import make_motion


@pytest.mark.slow
def test_tremor_benchmark_writes_its_outputs(tmp_path) -> None:
    out = tmp_path / "tremor.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.cli",
            "tremor",
            "--seconds",
            "6",
            "--seeds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "machine:" in proc.stdout
    r = json.loads(out.read_text())
    labels = set(r["filters"])
    assert {"wflc", "bmflc", "one euro", "default (adaptive kalman)"} <= labels
    for e in r["filters"].values():
        assert e["process_equals_step_max_error_m"] <= 1e-12
        assert e["step_us_p50"] > 0 and e["process_ns_per_sample"] > 0
        for cls in ("braced", "typical", "unbraced"):
            m = e["classes"][cls]["mean"]
            assert set(m) == {"tremor_reduction", "voluntary_lag_ms", "residual_error"}
    for label in ("butterworth 2nd 6 Hz", "critically damped 4 Hz"):
        assert r["filters"][label]["scipy"]["max_abs_error_m"] < 1e-12
    assert isinstance(r["requirements"]["reduction_ge_70pct_every_class"], bool)
    assert "| filter |" in out.with_suffix(".md").read_text()
    for suffix in ("-spectra.png", "-closeup.png"):
        assert (tmp_path / f"tremor{suffix}").stat().st_size > 10_000


def test_scipy_check_catches_a_wrong_filter(monkeypatch) -> None:
    """The correctness check must fail when our output is not scipy's."""
    m = make_motion("typical", 1, seconds=2.0)
    cand = tremor_bench.Candidate("bw", "butterworth", {"order": 2, "cutoff_hz": 6.0})
    tremor_bench._check_against_scipy(cand, 1000.0, m.x)  # fine as it is

    real = tremor_bench.make_filter

    class Broken:  # reports one filter, runs another
        def __init__(self, f):
            self._f = f
            self.sos = f.sos.copy()
            self.sos[0, 0] *= 1.001

        def process(self, X):
            return self._f.process(X)

    def broken(kind, rate_hz, **params):
        return Broken(real(kind, rate_hz, **params))

    monkeypatch.setattr(tremor_bench, "make_filter", broken)
    with pytest.raises(tremor_bench.BenchmarkError, match="scipy"):
        tremor_bench._check_against_scipy(cand, 1000.0, m.x)
    assert np.isfinite(m.x).all()
