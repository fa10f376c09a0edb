"""``telesurgery-bench tremor``: every tremor filter on seeded synthetic surgeon motion.

For each amplitude class (braced, typical, unbraced) and seed, a recording ``x = v + t`` is made
(:mod:`benchmarks.tremor_signals`) and every filter runs over it from a fresh state. Reported per
filter and class: tremor reduction in 6–16 Hz, voluntary lag, residual error (means over seeds,
and the worst seed), and the cost of ``step`` (one 3-axis sample, called from Python, p50) and of
``process`` (per sample of a block).

Correctness is checked in the same run, and a failure raises :class:`BenchmarkError`: the linear
filters against ``scipy.signal.sosfilt`` (same output to 1e-9 of the signal scale), ``process``
against repeated ``step`` for every filter, finite outputs. scipy's ``sosfilt`` is also timed per
block and per single-sample call, as the speed baseline.
"""

from __future__ import annotations

import json
import logging
import time
import timeit
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from benchmarks.machine import machine_info, machine_line
from benchmarks.tremor_signals import (
    AMPLITUDE_CLASSES_UM,
    SurgeonMotion,
    make_motion,
    score,
)
from filters import make_filter

log = logging.getLogger(__name__)


class BenchmarkError(RuntimeError):
    """A result that cannot be right; the figures must not be used."""


@dataclass(frozen=True)
class Candidate:
    """A filter configuration in the comparison."""

    label: str
    kind: str
    params: dict[str, Any]


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("butterworth 2nd 6 Hz", "butterworth", {"order": 2, "cutoff_hz": 6.0}),
    Candidate("butterworth 2nd 2 Hz", "butterworth", {"order": 2, "cutoff_hz": 2.0}),
    Candidate("critically damped 4 Hz", "critically_damped", {"order": 2, "cutoff_hz": 4.0}),
    Candidate("one euro", "one_euro", {}),
    Candidate("wflc", "wflc", {}),
    Candidate("bmflc", "bmflc", {}),
    Candidate("default (adaptive kalman)", "default", {}),
)

# the must-show figures of the default filter (issue 3)
REQUIRED_REDUCTION = 0.70
REQUIRED_LAG_MS = 10.0
REQUIRED_STEP_US = 2.0


def _step_cost_us(kind: str, params: dict[str, Any], rate_hz: float, x: np.ndarray) -> float:
    """p50 of single ``step`` calls (µs), warm, numba on."""
    f = make_filter(kind, rate_hz, **params)
    rows = [np.ascontiguousarray(r) for r in x[:2000]]
    for r in rows:  # warm up (compile, caches)
        f.step(r)
    n = len(rows)
    times = np.empty(n * 5)
    clock = time.perf_counter_ns
    for rep in range(5):
        for i, r in enumerate(rows):
            t0 = clock()
            f.step(r)
            times[rep * n + i] = clock() - t0
    # subtract the cost of reading the clock itself
    overhead = np.median([-(clock() - clock()) for _ in range(1000)])
    return float(max(np.median(times) - overhead, 0.0) / 1e3)


def _process_cost_ns(kind: str, params: dict[str, Any], rate_hz: float, x: np.ndarray) -> float:
    f = make_filter(kind, rate_hz, **params)
    f.process(x[:100])
    best = min(timeit.repeat(lambda: (f.reset(), f.process(x)), number=1, repeat=3))
    return best / len(x) * 1e9


def _check_process_equals_step(c: Candidate, rate_hz: float, x: np.ndarray) -> float:
    a = make_filter(c.kind, rate_hz, **c.params)
    b = make_filter(c.kind, rate_hz, **c.params)
    ya = a.process(x)
    yb = np.array([b.step(np.ascontiguousarray(r)) for r in x])
    err = float(np.max(np.abs(ya - yb)))
    if err > 1e-12:
        raise BenchmarkError(f"{c.label}: process differs from repeated step by {err:g} m")
    return err


def _check_against_scipy(c: Candidate, rate_hz: float, x: np.ndarray) -> dict[str, float]:
    """LTI filters: our output vs scipy.signal.sosfilt, and the speed of both."""
    f = make_filter(c.kind, rate_hz, **c.params)
    sos = f.sos
    zi = signal.sosfilt_zi(sos)[:, :, None] * x[0]
    ref, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
    y = f.process(x)
    scale = float(np.max(np.abs(x)))
    err = float(np.max(np.abs(y - ref)))
    if err > 1e-9 * max(scale, 1e-12):
        raise BenchmarkError(f"{c.label}: differs from scipy.signal.sosfilt by {err:g} m")
    # scipy per block (per sample) and per single-sample call with carried state
    block_ns = (
        min(timeit.repeat(lambda: signal.sosfilt(sos, x, axis=0, zi=zi), number=1, repeat=3))
        / len(x)
        * 1e9
    )
    z = zi.copy()
    rows = x[:2000, None, :]

    def one_by_one() -> None:
        nonlocal z
        for r in rows:
            _, z = signal.sosfilt(sos, r, axis=0, zi=z)

    per_call_us = min(timeit.repeat(one_by_one, number=1, repeat=3)) / len(rows) * 1e6
    return {
        "max_abs_error_m": err,
        "scipy_block_ns_per_sample": block_ns,
        "scipy_step_us": per_call_us,
    }


def run(
    seconds: float = 30.0,
    seeds: int = 3,
    rate_hz: float = 1000.0,
    json_path: str | Path | None = None,
    plots: bool = True,
    candidates: tuple[Candidate, ...] = CANDIDATES,
) -> dict[str, Any]:
    info = machine_info()
    print(
        f"telesurgery-bench tremor: {len(candidates)} filters x {len(AMPLITUDE_CLASSES_UM)} "
        f"classes x {seeds} seeds, {seconds:g} s at {rate_hz:g} Hz\nmachine: {machine_line(info)}",
        flush=True,
    )
    motions = {
        cls: [make_motion(cls, 1000 + s, seconds, rate_hz) for s in range(seeds)]
        for cls in AMPLITUDE_CLASSES_UM
    }
    first = motions["typical"][0]
    results: dict[str, Any] = {}
    for c in candidates:
        t0 = time.perf_counter()
        per_class: dict[str, Any] = {}
        for cls, ms in motions.items():
            scores = []
            for m in ms:
                y = make_filter(c.kind, rate_hz, **c.params).process(m.x)
                if not np.isfinite(y).all():
                    raise BenchmarkError(f"{c.label} produced non-finite output on {m.name}")
                scores.append(score(y, m).to_dict())
            per_class[cls] = {
                "mean": {k: float(np.mean([s[k] for s in scores])) for k in scores[0]},
                "worst": {
                    "tremor_reduction": min(s["tremor_reduction"] for s in scores),
                    "voluntary_lag_ms": max(s["voluntary_lag_ms"] for s in scores),
                    "voluntary_abs_lag_ms": max(abs(s["voluntary_lag_ms"]) for s in scores),
                    "residual_error": max(s["residual_error"] for s in scores),
                },
                "seeds": scores,
            }
        entry: dict[str, Any] = {"kind": c.kind, "params": c.params, "classes": per_class}
        entry["params_used"] = make_filter(c.kind, rate_hz, **c.params).params
        entry["process_equals_step_max_error_m"] = _check_process_equals_step(
            c, rate_hz, first.x[:2000]
        )
        entry["step_us_p50"] = _step_cost_us(c.kind, c.params, rate_hz, first.x)
        entry["process_ns_per_sample"] = _process_cost_ns(c.kind, c.params, rate_hz, first.x)
        if c.kind in ("butterworth", "critically_damped"):
            entry["scipy"] = _check_against_scipy(c, rate_hz, first.x)
        results[c.label] = entry
        red = min(v["worst"]["tremor_reduction"] for v in per_class.values())
        print(
            f"  {c.label:28s} worst reduction {red:6.1%}  step {entry['step_us_p50']:.2f} µs"
            f"  ({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    out: dict[str, Any] = {
        "benchmark": "tremor",
        "seconds": seconds,
        "seeds": seeds,
        "rate_hz": rate_hz,
        "classes_um_rms_xyz": AMPLITUDE_CLASSES_UM,
        "machine": info,
        "filters": results,
    }
    out["requirements"] = requirements(results)
    table = markdown_table(out)
    print(table, flush=True)
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2))
        path.with_suffix(".md").write_text(table + "\n")
        print(f"wrote {path} and {path.with_suffix('.md')}", flush=True)
        if plots:
            for png in plot_all(out, first, rate_hz, path):
                print(f"wrote {png}", flush=True)
    return out


def requirements(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 3's must-show figures for the default filter, evaluated on every class."""
    d = next(v for v in results.values() if v["kind"] == "default")
    classes = d["classes"]
    red = min(c["worst"]["tremor_reduction"] for c in classes.values())
    lag = max(c["worst"]["voluntary_abs_lag_ms"] for c in classes.values())
    out: dict[str, Any] = {
        "default_worst_reduction": red,
        "default_worst_abs_lag_ms": lag,
        "default_step_us_p50": d["step_us_p50"],
        "reduction_ge_70pct_every_class": red >= REQUIRED_REDUCTION,
        "lag_le_10ms_every_class": lag <= REQUIRED_LAG_MS,
        "step_le_2us": d["step_us_p50"] <= REQUIRED_STEP_US,
    }
    for label, e in results.items():
        if e["kind"] in ("wflc",) or (
            e["kind"] == "butterworth" and e["params"].get("cutoff_hz") == 6.0
        ):
            beats = all(
                classes[cls]["mean"]["tremor_reduction"] > c["mean"]["tremor_reduction"]
                and abs(classes[cls]["mean"]["voluntary_lag_ms"])
                < abs(c["mean"]["voluntary_lag_ms"])
                for cls, c in e["classes"].items()
            )
            out[f"beats {label} on both"] = beats
    return out


def markdown_table(out: dict[str, Any]) -> str:
    """One row per filter: per-class mean reduction and lag, residual error, costs."""
    classes = list(out["classes_um_rms_xyz"])
    head = (
        "| filter | "
        + " | ".join(f"{c}: reduction / lag ms" for c in classes)
        + " | residual error (worst) | step µs p50 | process ns/sample |"
    )
    lines = [head, "|---|" + "---:|" * (len(classes) + 3)]
    for label, e in out["filters"].items():
        cells = []
        for c in classes:
            m = e["classes"][c]["mean"]
            cells.append(f"{m['tremor_reduction']:.1%} / {m['voluntary_lag_ms']:.1f}")
        resid = max(e["classes"][c]["worst"]["residual_error"] for c in classes)
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {resid:.2f} | {e['step_us_p50']:.2f} | {e['process_ns_per_sample']:.0f} |"
        )
    scipy_rows = [(label, e["scipy"]) for label, e in out["filters"].items() if "scipy" in e]
    if scipy_rows:
        lines.append("")
        lines.append(
            "| linear filter | max error vs scipy (m) | ours: step µs / block ns | "
            "scipy sosfilt: one-sample call µs / block ns |"
        )
        lines.append("|---|---:|---:|---:|")
        for label, s in scipy_rows:
            e = out["filters"][label]
            lines.append(
                f"| {label} | {s['max_abs_error_m']:.1e} | {e['step_us_p50']:.2f} / "
                f"{e['process_ns_per_sample']:.0f} | {s['scipy_step_us']:.1f} / "
                f"{s['scipy_block_ns_per_sample']:.0f} |"
            )
    req = out["requirements"]
    lines.append("")
    lines.append(
        f"default filter, worst case over all classes and seeds: reduction "
        f"{req['default_worst_reduction']:.1%}, |lag| {req['default_worst_abs_lag_ms']:.1f} ms, "
        f"step {req['default_step_us_p50']:.2f} µs p50; "
        + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in req.items() if isinstance(v, bool))
    )
    return "\n".join(lines)


def plot_all(out: dict[str, Any], m: SurgeonMotion, rate_hz: float, path: Path) -> list[Path]:
    """Spectra before/after and a time-series close-up, for a few filters on one recording."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [
        ("butterworth 2nd 6 Hz", "butterworth", {"order": 2, "cutoff_hz": 6.0}),
        ("wflc", "wflc", {}),
        ("default (adaptive kalman)", "default", {}),
    ]
    ys = {label: make_filter(kind, rate_hz, **p).process(m.x) for label, kind, p in shown}
    k0 = int(2 * rate_hz)
    pngs = []

    fig, ax = plt.subplots(figsize=(9, 5))
    nper = int(4 * rate_hz)
    f, p_t = signal.welch(m.t[k0:, 0], fs=rate_hz, nperseg=nper)
    ax.semilogy(f, np.sqrt(p_t) * 1e6, "k", lw=2, label="tremor t (truth)")
    for label, y in ys.items():
        f, p_e = signal.welch((y - m.v)[k0:, 0], fs=rate_hz, nperseg=nper)
        ax.semilogy(f, np.sqrt(p_e) * 1e6, label=f"{label}: y − v")
    ax.axvspan(6, 16, color="0.9", zorder=0, label="scored band 6–16 Hz")
    ax.set_xlim(0, 30)
    ax.set_ylim(bottom=1e-2)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("amplitude spectral density (µm/√Hz), x axis")
    ax.set_title(f"tremor before and after filtering — {m.name}")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(machine_line(out["machine"]), fontsize=7)
    fig.tight_layout()
    png = path.with_name(path.stem + "-spectra.png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    pngs.append(png)

    # close-up during a reach: the largest voluntary speed after settling
    speed = np.linalg.norm(np.diff(m.v, axis=0), axis=1)
    c = k0 + int(np.argmax(speed[k0:]))
    w = slice(max(c - int(0.4 * rate_hz), 0), c + int(0.4 * rate_hz))
    tt = np.arange(len(m.v))[w] / rate_hz
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.plot(tt, m.x[w, 0] * 1e3, color="0.6", lw=1, label="hand x = v + t")
    ax.plot(tt, m.v[w, 0] * 1e3, "k--", lw=2, label="voluntary v (truth)")
    for label, y in ys.items():
        ax.plot(tt, y[w, 0] * 1e3, lw=1.2, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("x position (mm)")
    ax.set_title("close-up during a reach: the low-pass lags, the adaptive filters do not")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    png = path.with_name(path.stem + "-closeup.png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    pngs.append(png)
    return pngs
