"""``telesurgery-bench loop``: how late a 1 kHz loop wakes, by waiting technique and scheduling.

A minimal loop (no work, one lateness sample per tick) runs for ``seconds`` in its own process
for every combination of

* **wait**: ``hybrid`` (the link's ``service_until`` technique: sleep in ``select`` on a file
  descriptor until 100 µs before the absolute deadline, then spin on ``perf_counter_ns``),
  ``sleep-relative`` (``time.sleep(period)`` after each tick: the naive loop), and
  ``sleep-absolute`` (``time.sleep(deadline − now)`` to absolute deadlines);
* **scheduling**: the normal scheduler, or ``SCHED_FIFO`` via
  :func:`network.realtime.enter_realtime` on the loop thread, as the console and the arm do
  (reported as not permitted where it is not);
* **load**: the machine as it is, or with a busy process (``python -c 'while True: pass'``,
  nice 0) competing for the CPUs, killed after the run.

Lateness is ``wake − deadline`` for the absolute waits. A relative sleep has no absolute
deadlines (they drift), so its lateness is measured per tick, ``wake − (previous wake +
period)``, and its drift shows as an achieved rate below 1000 Hz. Reported: p50/p99/p99.9/max
lateness, the achieved rate and the CPU the loop used.

Then the real loops: a short ``master-console --sim`` run gives the console loop's lateness
(its summary's ``loop_lateness_us``: p50/p99/p99.9) and the arm server's (``server_lateness_us``
from the arm's log line: p50/p99/max; the arm reports no p99.9).

Checks (:class:`BenchmarkError`): the relative sleep runs slower than 1000 Hz, the absolute
waits keep 1000 Hz within 2 %, and the hybrid wait with SCHED_FIFO has a p50 under 50 µs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_info, machine_line

WAITS = ("hybrid", "sleep-relative", "sleep-absolute")
PERIOD_NS = 1_000_000
SPIN_NS = 100_000
FIFO_PRIORITY = 30  # the console loop's default (network.realtime.CONSOLE_PRIORITY)


class BenchmarkError(RuntimeError):
    """A result that cannot be right; its figures must not be used."""


# ----------------------------------------------------------------------------------------------
# the loop itself (runs in a worker process)
# ----------------------------------------------------------------------------------------------
def measure(wait: str, seconds: float, period_ns: int = PERIOD_NS) -> dict[str, Any]:
    """Tick for ``seconds`` with the given wait on the calling thread; lateness in ns.

    The achieved rate is 1 / the slope of a straight line through the wake times (least
    squares): the rate the loop keeps over the run, which one late final tick cannot bend.
    """
    if wait not in WAITS:
        raise ValueError(f"wait must be one of {WAITS}, got {wait!r}")
    n = max(2, round(seconds * 1e9 / period_ns))
    wake = np.zeros(n, dtype=np.int64)  # wake times, ns after the start
    clock = time.perf_counter_ns
    sleep = time.sleep
    rfd, wfd = os.pipe()  # nothing is ever written: select sleeps on a real descriptor
    fds = [rfd]
    period_s = period_ns / 1e9
    cpu0 = time.thread_time_ns()
    try:
        start = clock()
        deadline = start + period_ns
        if wait == "hybrid":
            for i in range(n):
                now = clock()
                remaining = deadline - now
                if remaining > SPIN_NS:
                    select.select(fds, [], [], (remaining - SPIN_NS) / 1e9)
                while clock() < deadline:
                    pass
                wake[i] = clock() - start
                deadline += period_ns
        elif wait == "sleep-absolute":
            for i in range(n):
                remaining = deadline - clock()
                if remaining > 0:
                    sleep(remaining / 1e9)
                wake[i] = clock() - start
                deadline += period_ns
        else:  # sleep-relative: the naive loop
            for i in range(n):
                sleep(period_s)
                wake[i] = clock() - start
        end = clock()
    finally:
        os.close(rfd)
        os.close(wfd)
    cpu = time.thread_time_ns() - cpu0
    elapsed = end - start
    if wait == "sleep-relative":  # no absolute deadlines: late against the previous wake
        late = np.diff(wake, prepend=0) - period_ns
    else:
        late = wake - period_ns * np.arange(1, n + 1, dtype=np.int64)
    slope_ns = float(np.polyfit(np.arange(n, dtype=np.float64), wake.astype(np.float64), 1)[0])
    return {
        "wait": wait,
        "ticks": n,
        "elapsed_s": elapsed / 1e9,
        "rate_hz": 1e9 / slope_ns,
        "ticks_per_s": n / (elapsed / 1e9),
        "cpu_percent": 100.0 * cpu / elapsed,
        "lateness_ns": late.tolist(),
    }


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.loop_bench worker --wait W --seconds S [--fifo]``: JSON on stdout."""
    p = argparse.ArgumentParser()
    p.add_argument("--wait", choices=WAITS, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--fifo", action="store_true")
    args = p.parse_args(argv)
    from network.realtime import enter_realtime, leave_realtime

    out: dict[str, Any] = {}

    def body() -> None:
        # as the console's loop does: FIFO where permitted, memory locked, the heap frozen
        rt = enter_realtime(FIFO_PRIORITY if args.fifo else None, who="loop bench", helpers=False)
        try:
            out.update(measure(args.wait, args.seconds))
        finally:
            leave_realtime()
        out["realtime"] = rt.to_dict()

    t = threading.Thread(target=body, name="loop")
    t.start()
    t.join()
    print(json.dumps(out), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------
# the matrix
# ----------------------------------------------------------------------------------------------
def lateness_stats(late_ns: np.ndarray) -> dict[str, float]:
    """p50/p99/p99.9/max/mean of lateness, in µs."""
    us = np.asarray(late_ns, dtype=np.float64) / 1e3
    if us.size == 0:
        return dict.fromkeys(("p50", "p99", "p999", "max", "mean"), math.nan)
    p50, p99, p999 = np.percentile(us, [50, 99, 99.9])
    return {
        "p50": float(p50),
        "p99": float(p99),
        "p999": float(p999),
        "max": float(us.max()),
        "mean": float(us.mean()),
    }


class Load:
    """A busy process competing for the CPUs (``while True: pass`` at nice 0)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.2)  # let it get going

    def stop(self) -> float:
        """Kill it; returns the CPU seconds it got."""
        cpu = math.nan
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
        self.proc.kill()
        self.proc.wait()
        return cpu


def run_config(wait: str, fifo: bool, load: bool, seconds: float) -> dict[str, Any]:
    """One configuration in a fresh worker process; returns its figures (and raw lateness)."""
    loader = Load() if load else None
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.loop_bench",
                "worker",
                "--wait",
                wait,
                "--seconds",
                f"{seconds:g}",
                *(["--fifo"] if fifo else []),
            ],
            capture_output=True,
            text=True,
            timeout=seconds * 3 + 60,
        )
    finally:
        load_cpu = loader.stop() if loader is not None else None
    if proc.returncode != 0:
        raise BenchmarkError(f"loop worker {wait} fifo={fifo} failed:\n{proc.stderr[-2000:]}")
    w = json.loads(proc.stdout.strip().splitlines()[-1])
    late = np.asarray(w.pop("lateness_ns"), dtype=np.int64)
    rt = w["realtime"]
    return {
        "wait": wait,
        "fifo_requested": fifo,
        "fifo": rt["policy"] == "fifo",
        "fifo_reason": rt["reason"],
        "load": load,
        "load_cpu_s": load_cpu,
        "ticks": w["ticks"],
        "rate_hz": w["rate_hz"],
        "ticks_per_s": w["ticks_per_s"],
        "cpu_percent": w["cpu_percent"],
        "lateness_us": lateness_stats(late),
        "_lateness_ns": late,
    }


def real_loops(seconds: float, profile: str = "lan") -> dict[str, Any]:
    """The console's and the arm server's lateness from a short ``master-console --sim`` run."""
    import tempfile

    from benchmarks.e2e_bench import _ARM_SUMMARY

    with tempfile.TemporaryDirectory(prefix="loop-bench-") as tmp:
        summ = Path(tmp) / "console.json"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "master_console.cli",
                "--sim",
                "--profile",
                profile,
                "--seconds",
                f"{seconds:g}",
                "--json",
                str(summ),
                "--display",
                "off",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=seconds + 120,
        )
        if proc.returncode != 0 or not summ.exists():
            tail = "\n".join(proc.stdout.strip().splitlines()[-8:])
            raise BenchmarkError(f"master-console --sim failed (exit {proc.returncode}):\n{tail}")
        s = json.loads(summ.read_text())
    arm = None
    for line in proc.stdout.splitlines():
        m = _ARM_SUMMARY.search(line)
        if m:
            arm = json.loads(m.group(1))
    return {
        "seconds": seconds,
        "profile": profile,
        "console": {
            "lateness_us": s.get("loop_lateness_us"),
            "ticks": s.get("ticks"),
            "realtime": s.get("realtime"),
            "source": "master-console summary loop_lateness_us (p50/p99/p99.9; no max)",
        },
        "arm": {
            "lateness_us": arm.get("server_lateness_us") if arm else None,
            "ticks": arm.get("ticks") if arm else None,
            "overruns": arm.get("overruns") if arm else None,
            "realtime": arm.get("realtime") if arm else None,
            "source": "slave-arm's 'stopped:' log line, server_lateness_us (p50/p99/max; no "
            "p99.9), over the arm's whole run including before the console connected"
            if arm
            else "not available: no 'stopped:' line in the arm's log",
        },
    }


def check(configs: list[dict[str, Any]]) -> list[str]:
    """What cannot be right (only what is robust on a shared machine)."""
    problems = []
    for c in configs:
        name = config_name(c)
        if c["ticks"] < 10:
            problems.append(f"{name}: only {c['ticks']} ticks")
        if c["wait"] == "sleep-relative" and not c["rate_hz"] < 1000.0:
            problems.append(f"{name}: a relative sleep cannot keep 1000 Hz ({c['rate_hz']:.1f})")
        if c["wait"] != "sleep-relative" and not 980.0 <= c["rate_hz"] <= 1001.0:
            problems.append(f"{name}: absolute deadlines should keep 1000 Hz ({c['rate_hz']:.1f})")
        if c["wait"] == "hybrid" and c["fifo"] and not c["lateness_us"]["p50"] < 50.0:
            problems.append(f"{name}: hybrid + FIFO p50 {c['lateness_us']['p50']:.1f} µs >= 50")
        if c["wait"] != "sleep-relative" and c["lateness_us"]["p50"] < -1.0:
            problems.append(f"{name}: woke before the deadline ({c['lateness_us']['p50']:.1f} µs)")
    return problems


def config_name(c: dict[str, Any]) -> str:
    sched = "FIFO" if c["fifo"] else ("FIFO refused" if c["fifo_requested"] else "normal")
    return f"{c['wait']}, {sched}, {'loaded' if c['load'] else 'idle'}"


def run(
    seconds: float = 5.0,
    json_path: str | Path | None = None,
    out_dir: str | Path = "results",
    waits: tuple[str, ...] = WAITS,
    fifo: tuple[bool, ...] = (False, True),
    load: tuple[bool, ...] = (False, True),
    real_seconds: float | None = 10.0,
) -> dict[str, Any]:
    """The whole matrix, then the real loops; writes JSON, markdown and a PNG."""
    from network.realtime import fifo_permitted, realtime_allowed

    out = Path(out_dir)
    jpath = Path(json_path) if json_path is not None else out / "loop.json"
    info = machine_info()
    load_before = os.getloadavg()
    permitted = realtime_allowed() and fifo_permitted()
    print(
        f"telesurgery-bench loop: {seconds:g} s per configuration at 1 kHz; SCHED_FIFO "
        f"{'permitted' if permitted else 'NOT permitted'}\nmachine: {machine_line(info)}",
        flush=True,
    )
    configs = []
    for ld in load:
        for ff in fifo:
            for w in waits:
                c = run_config(w, ff, ld, seconds)
                configs.append(c)
                s = c["lateness_us"]
                print(
                    f"{config_name(c):38s} p50 {s['p50']:8.1f}  p99 {s['p99']:8.1f}  p99.9 "
                    f"{s['p999']:8.1f}  max {s['max']:8.1f} µs  {c['rate_hz']:7.1f} Hz  "
                    f"cpu {c['cpu_percent']:5.1f} %",
                    flush=True,
                )
    real = real_loops(real_seconds) if real_seconds else None
    result: dict[str, Any] = {
        "benchmark": "loop",
        "seconds": seconds,
        "period_us": PERIOD_NS / 1e3,
        "spin_us": SPIN_NS / 1e3,
        "fifo_permitted": permitted,
        "fifo_priority": FIFO_PRIORITY,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "machine": info,
        "configs": [{k: v for k, v in c.items() if not k.startswith("_")} for c in configs],
        "real_loops": real,
    }
    problems = check(configs)
    result["problems"] = problems
    table = markdown_table(result)
    print(table, flush=True)
    jpath.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps(result, indent=2))
    md = jpath.with_suffix(".md")
    md.write_text(table + "\n")
    png = jpath.with_suffix(".png")
    plot(result, configs, png)
    print(f"wrote {jpath}, {md}, {png}", flush=True)
    if problems:
        raise BenchmarkError("loop benchmark failed its checks: " + "; ".join(problems))
    return result


def _f(x: Any, spec: str = ".1f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, spec)


def markdown_table(result: dict[str, Any]) -> str:
    la = result.get("load_average")
    load = (
        f"; load average (1 min) {la['before'][0]:.1f} before, {la['after'][0]:.1f} after"
        if la
        else ""
    )
    lines = [
        f"Machine: {machine_line(result['machine'])}; {result['seconds']:g} s per configuration, "
        f"1 kHz; SCHED_FIFO {'permitted' if result['fifo_permitted'] else 'not permitted'}"
        f"{load}.",
        "",
        "| wait | scheduling | other core | p50 µs | p99 µs | p99.9 µs | max µs | achieved "
        "rate | loop CPU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in result["configs"]:
        s = c["lateness_us"]
        sched = "SCHED_FIFO" if c["fifo"] else ("FIFO refused" if c["fifo_requested"] else "normal")
        lines.append(
            f"| {c['wait']} | {sched} | {'busy process' if c['load'] else 'as is'} | "
            f"{_f(s['p50'])} | {_f(s['p99'])} | {_f(s['p999'])} | {_f(s['max'])} | "
            f"{_f(c['rate_hz'])} Hz | {_f(c['cpu_percent'])} % |"
        )
    real = result.get("real_loops")
    if real:
        lines += [
            "",
            f"Real loops, `master-console --sim --profile {real['profile']} --seconds "
            f"{real['seconds']:g}` (console, arm server, physics and camera all running):",
            "",
            "| loop | scheduling | p50 µs | p99 µs | p99.9 µs | max µs | source |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for who in ("console", "arm"):
            d = real[who]
            s = d["lateness_us"] or {}
            rt = d.get("realtime") or {}
            sched = "SCHED_FIFO" if rt.get("policy") == "fifo" else (rt.get("policy") or "n/a")
            lines.append(
                f"| {who} | {sched} | {_f(s.get('p50'))} | {_f(s.get('p99'))} | "
                f"{_f(s.get('p999'))} | {_f(s.get('max'))} | {d['source']} |"
            )
    return "\n".join(lines)


def plot(result: dict[str, Any], configs: list[dict[str, Any]], png: Path) -> None:
    """Lateness CDFs (top) and tails (bottom), without and with the competing load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = sorted({c["load"] for c in configs})
    fig, axes = plt.subplots(2, len(loads), figsize=(6.5 * len(loads), 8), squeeze=False)
    styles = {"hybrid": "-", "sleep-absolute": "--", "sleep-relative": ":"}
    for j, ld in enumerate(loads):
        top, bottom = axes[0, j], axes[1, j]
        for c in configs:
            if c["load"] != ld:
                continue
            v = np.sort(np.maximum(c["_lateness_ns"] / 1e3, 0.1))
            y = np.arange(1, v.size + 1) / v.size
            color = "C0" if c["fifo"] else "C1"
            lab = f"{c['wait']}, {'FIFO' if c['fifo'] else 'normal'} ({c['rate_hz']:.0f} Hz)"
            top.plot(v, y, styles[c["wait"]], color=color, label=lab)
            bottom.plot(
                v,
                np.maximum(1.0 - y + 1.0 / v.size, 1.0 / v.size),
                styles[c["wait"]],
                color=color,
                label=lab,
            )
        where = "with a busy process competing" if ld else "machine as is"
        top.set_title(f"lateness CDF, {where}", fontsize=9)
        bottom.set_title(f"tail: fraction of ticks later than x, {where}", fontsize=9)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xlabel("lateness (µs, log; ≤ 0.1 shown at 0.1)")
            ax.grid(True, which="both", alpha=0.3)
        top.set_ylabel("fraction of ticks")
        bottom.set_yscale("log")
        bottom.set_ylabel("fraction of ticks (log)")
        top.legend(fontsize=7)
    fig.suptitle(
        f"1 kHz loop lateness (relative sleep: per tick, vs the previous wake + 1 ms) — "
        f"{machine_line(result['machine'])}",
        fontsize=7,
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(worker_main(sys.argv[2:]))
    sys.exit(2)
