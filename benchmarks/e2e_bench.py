"""``telesurgery-bench e2e``: the end-to-end latency budget of the real stack, stage by stage.

For each impairment profile the benchmark runs the real thing, three kinds of process: the
console (``master-console --sim --record FILE --record-video --display off``), which starts the
arm server with the PyBullet arm and its camera process (``slave-arm --driver sim``), with the
profile applied at the console to both directions of the link. Then it analyses the console's
recording and run summary. Every acknowledged command is followed through the stages below;
times on the arm's clock are put on the console's with the link's own NTP-style clock-offset
estimate (``offset = arm clock − console clock``, from the ``link`` records, interpolated in
time), exactly as the arm and the console do it themselves:

=====================  =========================================================================
stage                  how it is measured (per acknowledged command)
=====================  =========================================================================
input → send           ``command.t − input.t`` (console clock): the age of the device sample when
                       the tick took it, plus the tick's device read, tremor filter, clutch and
                       scaling, up to the send. The console's section timers (``section_us``, not
                       per command) split out "filter + scaling + send" (filter + command).
network up             ``state.ack_rx_ns − offset − state.ack_send_ns``: console send to arm
                       receipt (the emulated delay and the real loopback).
arm                    ``state.send_ns − state.ack_rx_ns`` (arm clock only): the wait for the
                       arm's next servo tick plus that tick's work (safety, IK, a physics step).
network down           ``state.t − (state.send_ns − offset)``: the state's trip back.
total                  ``state.t − input.t`` (console clock): input sample → applied in the arm →
                       state back at the console. The stages telescope: their sum is the total for
                       every command, whatever the offset estimate.
video                  ``video.t − (video.capture_ns − offset)``: the instant the rendered physics
                       state was true → the frame at the console (render, JPEG, link, delay).
=====================  =========================================================================

Arrival times are taken when the receiving loop takes the message (inside its wait), so a
message that arrives while its receiver is busy with a tick counts as network time until the
tick's work ends; that is why "network" here is larger than raw loopback on ``lan``. The up/down
split also carries the clock-offset estimate's error (up to half the asymmetry of the round
trip); their sum and the total do not. Both processes read this host's ``CLOCK_MONOTONIC``, so
the true offset is 0: the result also gives the split with offset 0 (``same_clock_check``).

For each command the first state that acknowledges it is used (the tick that applied it; the
arm keeps acknowledging its newest applied command until a newer one arrives). The motion to
photon budget adds two *modelled* stages, not measured: the camera's frame phase (a state
becomes visible in the next frame, on average half a frame period later) and the display's wait
(the console shows the newest frame at its refresh rate: on average half a refresh period; the
draw itself and the screen's own scan-out are not included).

Also reported: RTT, jitter, loss, reordering (the link's own statistics), the arm's safety
counters (stale commands dropped, watchdog holds, overtaken commands), link health events, and
how well the tool followed the intended path: the measured tool tip of each acknowledging state
against the pose of the command it acknowledges (the command that was applied, so latency is
accounted for), against the newest command at the same instant (latency not accounted for), and
the time shift that best aligns the measured path with the commanded one (which should agree
with network up + arm, plus the arm's own response: about a millisecond in the sim).

A run in which the console never engages the arm (a start-up race in the console: see
``NEVER_ENGAGED``) is repeated, up to ``ATTEMPTS`` times; the result says how many it took.

Checks (:class:`BenchmarkError` otherwise): every acknowledgment names a command with the send
time the console recorded; the stages sum to the total; the totals exceed twice the profile's
one-way delay and network up and down each match it; the RTT matches the profile; nothing is
lost on a lossless profile and a lossy one loses about what it should; the clock-offset
estimate is near zero (both processes read the same ``CLOCK_MONOTONIC``); the total agrees
with the console's own end-to-end measurement.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_info, machine_line
from master_console.recording import Recording, load_recording
from network.impairment import ImpairmentProfile, get_profile


class BenchmarkError(RuntimeError):
    """A result that cannot be right; its figures must not be used."""


#: The measured stages of the control path, in order: (key, label).
STAGES: tuple[tuple[str, str], ...] = (
    ("input_to_send", "input sample → command sent"),
    ("network_up", "network up (console → arm)"),
    ("arm", "arm: wait for its tick + tick work"),
    ("network_down", "network down (arm → console)"),
)
STAGE_KEYS = tuple(k for k, _ in STAGES)

#: Events in the first second after the first command are start-up transients (the link's
#: health is unknown until the first states come back through the emulated delay, and the
#: arm's watchdog may trip while the first command is still on its way); reported apart.
SETTLE_S = 1.0

#: Console runs per profile before giving up when the console never engages the arm.
ATTEMPTS = 3
NEVER_ENGAGED = (
    "a start-up race in the console: when its first tick comes before the first state, the "
    "link is LOST ('nothing received yet'), and the console then waits for a clutch release "
    "that the synthetic hand (clutch always engaged) never makes"
)

#: Seconds allowed for a console run beyond its own length (start-up of three processes).
RUN_OVERHEAD_S = 120.0

_ARM_SUMMARY = re.compile(r"slave-arm INFO [\w.]+: stopped: (\{.*\})\s*$")


def pct(values: np.ndarray) -> dict[str, float]:
    """p50/p99/max/mean/count of a sample (NaN figures when it is empty)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan, "count": 0}
    p50, p99 = np.percentile(v, [50, 99])
    return {
        "p50": float(p50),
        "p99": float(p99),
        "max": float(v.max()),
        "mean": float(v.mean()),
        "count": int(v.size),
    }


@dataclass
class Series:
    """Per-command and per-frame arrays of one run, for plots (not written to JSON)."""

    t_s: np.ndarray  # command send time, s since the first command
    stages_ms: dict[str, np.ndarray]
    total_ms: np.ndarray
    video_t_s: np.ndarray
    video_ms: np.ndarray
    health: list[tuple[float, str]] = field(default_factory=list)  # (t s, health)
    events: list[tuple[float, str]] = field(default_factory=list)  # (t s, text)


# ----------------------------------------------------------------------------------------------
# analysis of one run
# ----------------------------------------------------------------------------------------------
def _clock_offset_ns(rec: Recording) -> tuple[np.ndarray, np.ndarray]:
    """(t, offset ns) of the link records with a valid clock-offset estimate."""
    link = rec.arrays("link")
    off = link.get("stats.clock_offset_ms")
    if off is None or len(link["t"]) == 0:
        return np.empty(0, np.int64), np.empty(0)
    off = np.asarray(off, dtype=np.float64)
    ok = np.isfinite(off)
    return np.asarray(link["t"], dtype=np.int64)[ok], off[ok] * 1e6


def _pair_inputs(inp_t: np.ndarray, cmd_t: np.ndarray) -> np.ndarray:
    """The input sample time of each command (NaN where unknown).

    The console records ``input`` (t = the sample's time) and then ``command`` (t = send) in the
    same tick, so with nothing dropped they pair one to one; otherwise each command takes the
    newest recorded sample at or before its send (the one the tick took, if it was recorded).
    """
    if inp_t.size == cmd_t.size and np.all(inp_t <= cmd_t):
        return inp_t.astype(np.float64)
    i = np.searchsorted(inp_t, cmd_t, side="right") - 1
    out = np.full(cmd_t.size, np.nan)
    ok = i >= 0
    out[ok] = inp_t[i[ok]]
    return out


def analyse(
    rec: Recording | str | Path,
    summary: dict[str, Any] | None = None,
    *,
    display_refresh_hz: float | None = None,
    camera_rate_hz: float | None = None,
) -> tuple[dict[str, Any], Series]:
    """The latency budget of one recorded console run (see the module docstring).

    ``summary`` is the console's run summary (``master-console --json``); without it the
    console-side figures (section timers, RTT, arm counters, health events) are left out.
    ``display_refresh_hz`` defaults to the display's default refresh rate; ``camera_rate_hz`` to
    the rate the video frames arrived at. Raises :class:`BenchmarkError` when the recording
    cannot give the figures (too few acknowledged commands, fields missing, acknowledgments
    that do not match the commands).
    """
    if not isinstance(rec, Recording):
        rec = load_recording(rec)
    summary = summary or {}
    inp, cmd, st = rec.arrays("input"), rec.arrays("command"), rec.arrays("state")
    if len(cmd["t"]) == 0 or len(st["t"]) == 0:
        raise BenchmarkError(f"{rec.path}: no commands or no states recorded")
    for name in ("ack_seq", "ack_send_ns", "ack_rx_ns", "send_ns"):
        if name not in st:
            raise BenchmarkError(f"{rec.path}: state records lack {name!r} (an older console?)")
    cmd_t = np.asarray(cmd["t"], dtype=np.int64)
    cmd_seq = np.asarray(cmd["seq"], dtype=np.int64)
    if np.any(np.diff(cmd_seq) <= 0):
        raise BenchmarkError(f"{rec.path}: command seq not increasing in the recording")
    cmd_pos = np.asarray(cmd["pose"], dtype=np.float64)[:, :3]
    in_t = _pair_inputs(np.asarray(inp["t"], dtype=np.int64), cmd_t)

    st_t = np.asarray(st["t"], dtype=np.int64)
    st_send = np.asarray(st["send_ns"], dtype=np.int64)
    ack_seq = np.asarray(st["ack_seq"], dtype=np.int64)
    ack_send = np.asarray(st["ack_send_ns"], dtype=np.int64)
    ack_rx = np.asarray(st["ack_rx_ns"], dtype=np.int64)
    meas_pos = np.asarray(st["measured_cp"], dtype=np.float64)[:, :3]
    set_pos = np.asarray(st["setpoint_cp"], dtype=np.float64)[:, :3]

    # the first state (console receipt) acknowledging each command
    valid = np.flatnonzero((ack_seq > 0) & (ack_rx > 0))
    order = valid[np.lexsort((st_t[valid], ack_seq[valid]))]
    a = ack_seq[order]
    first = order[np.r_[True, a[1:] != a[:-1]]] if a.size else order
    ci = np.searchsorted(cmd_seq, ack_seq[first])
    known = ci < cmd_seq.size
    known[known] &= cmd_seq[ci[known]] == ack_seq[first][known]
    first, ci = first[known], ci[known]
    if first.size < 20:
        raise BenchmarkError(
            f"{rec.path}: only {first.size} acknowledged commands were recorded (need >= 20)"
        )
    bad = np.flatnonzero(ack_send[first] != cmd_t[ci])
    if bad.size:
        j = bad[0]
        raise BenchmarkError(
            f"{rec.path}: {bad.size} acknowledgments do not match their command's send time "
            f"(seq {ack_seq[first][j]}: ack says {ack_send[first][j]}, sent {cmd_t[ci][j]})"
        )
    has_input = np.isfinite(in_t[ci])
    first, ci = first[has_input], ci[has_input]

    off_t, off_v = _clock_offset_ns(rec)
    offset_assumed = off_v.size == 0
    if offset_assumed:  # too short a run for a link record: one host, one clock, offset 0
        off = np.zeros(first.size)
    else:
        off = np.interp(st_t[first].astype(np.float64), off_t.astype(np.float64), off_v)

    t_in = in_t[ci]
    raw_off_ms = off / 1e6
    t_send = cmd_t[ci].astype(np.float64)
    t_arm_rx = ack_rx[first].astype(np.float64)
    t_arm_tx = st_send[first].astype(np.float64)
    t_rx = st_t[first].astype(np.float64)
    stages_ns = {
        "input_to_send": t_send - t_in,
        "network_up": t_arm_rx - off - t_send,
        "arm": t_arm_tx - t_arm_rx,
        "network_down": t_rx - (t_arm_tx - off),
    }
    total_ns = t_rx - t_in
    stages_ms = {k: v / 1e6 for k, v in stages_ns.items()}
    total_ms = total_ns / 1e6
    stage_stats = {k: pct(v) for k, v in stages_ms.items()}
    # both processes read this host's CLOCK_MONOTONIC, so the true offset is 0: the up/down
    # split with it shows what the link's estimate moved between the two directions
    same_clock = {
        "network_up": pct((t_arm_rx - t_send) / 1e6),
        "network_down": pct((t_rx - t_arm_tx) / 1e6),
        "offset_estimate_ms": pct(raw_off_ms),
    }
    total_stats = pct(total_ms)
    mean_sum = sum(s["mean"] for s in stage_stats.values())
    p50_sum = sum(s["p50"] for s in stage_stats.values())

    # video: capture (the rendered state's physics time) -> console receipt
    vids = rec.records("video")
    vt = np.array([r["t"] for r in vids], dtype=np.float64)
    vcap = np.array([r.get("capture_ns", 0) for r in vids], dtype=np.float64)
    if vt.size:
        voff = np.zeros(vt.size) if offset_assumed else np.interp(vt, off_t, off_v)
        video_ms = (vt - (vcap - voff)) / 1e6
    else:
        video_ms = np.empty(0)
    fps = (vt.size - 1) / ((vt[-1] - vt[0]) / 1e9) if vt.size > 2 and vt[-1] > vt[0] else math.nan
    if camera_rate_hz:
        cam_hz = camera_rate_hz
    elif math.isfinite(fps):
        cam_hz = fps
    else:  # video not recorded: the rate the console counted frames at
        cam_hz = summary.get("video_fps") or math.nan
    if display_refresh_hz is None:
        from master_console.display import DisplayConfig

        display_refresh_hz = DisplayConfig().refresh_hz
    modelled = {
        "display_wait_ms": 0.5e3 / display_refresh_hz,
        "camera_frame_phase_ms": 0.5e3 / cam_hz if cam_hz and math.isfinite(cam_hz) else math.nan,
        "display_refresh_hz": display_refresh_hz,
        "camera_rate_hz": cam_hz,
        "note": "modelled, not measured: half the display's refresh period (the console shows "
        "the newest frame at its refresh rate; draw time and the screen's scan-out not "
        "included) and half the camera's frame period (a new pose shows in the next frame)",
    }

    # console section timers (µs): the part of input -> send that is the console's own work
    sec = summary.get("section_us", {})
    sections = {k: sec[k] for k in ("device", "filter", "command", "record", "tick") if k in sec}
    fss_p50_ms = (
        (sec["filter"]["p50"] + sec["command"]["p50"]) / 1e3
        if "filter" in sec and "command" in sec
        else math.nan
    )

    # budgets at the median (ms): the control round trip and motion -> photon
    up, arm, down = (stage_stats[k]["p50"] for k in ("network_up", "arm", "network_down"))
    i2s = stage_stats["input_to_send"]["p50"]
    work = fss_p50_ms if math.isfinite(fss_p50_ms) else 0.0
    control_budget = [
        ("sample age + tick wait", max(0.0, i2s - work), "measured"),
        ("filter + scaling + send", work, "measured (section timers)"),
        ("network up", up, "measured"),
        ("arm wait + tick", arm, "measured"),
        ("network down", down, "measured"),
    ]
    video_p50 = pct(video_ms)["p50"]
    video_budget = (
        [
            *control_budget[:4],
            ("camera frame phase", modelled["camera_frame_phase_ms"], "modelled"),
            ("capture → console", video_p50, "measured"),
            ("display wait", modelled["display_wait_ms"], "modelled"),
        ]
        if video_ms.size
        else []  # video not recorded: no motion-to-photon budget
    )

    tracking = _tracking(
        cmd_t, cmd_pos, meas_pos[first], set_pos[first], ci, t_arm_tx - off, stage_stats
    )

    # link statistics: the newest link record (cumulative counts, recent-window percentiles)
    links = rec.records("link")
    ls = links[-1]["stats"] if links else {}
    link = {
        # per acknowledged command, the whole run: up + down (the NTP round trip without the
        # arm's hold; the offset cancels), and the console's RTT including the arm's hold
        "rtt_ms": pct(stages_ms["network_up"] + stages_ms["network_down"]),
        "rtt_incl_arm_ms": summary.get("rtt_ms", {}),
        "monitor_rtt_ms": ls.get("rtt_ms", {}),
        "rtt_jitter_ms": ls.get("rtt_jitter_ms"),
        "clock_offset_ms": ls.get("clock_offset_ms"),
        "clock_offset_ms_range": [float(off_v.min() / 1e6), float(off_v.max() / 1e6)]
        if off_v.size
        else None,
        "offset_assumed_zero": offset_assumed,
    }
    for d in ("rx", "tx"):
        f = ls.get(d, {})
        link[d] = {
            k: f.get(k)
            for k in ("received", "lost", "loss", "reordered", "duplicates", "jitter_ms")
        }

    counters = summary.get("arm_counters", {})
    t0 = int(cmd_t[0])
    settle_ns = t0 + int(SETTLE_S * 1e9)
    flags = st.get("flags", [])
    held = np.array(["watchdog_hold" in (f or ()) for f in flags], dtype=bool)
    held &= st_t >= t0
    onset = np.flatnonzero(held & ~np.r_[False, held[:-1]]) if held.size else np.empty(0, int)
    holds_run = int(np.count_nonzero(st_t[onset] >= settle_ns))
    arm = {
        "commands_sent": int(cmd_t.size),
        "commands_engaged": int(np.count_nonzero(np.asarray(cmd.get("clutch", []), dtype=bool))),
        # the rest of the engaged ones were replaced in the arm by a newer one before a tick
        # took them (newest wins: jitter moves arrivals across the arm's tick boundary), or lost
        "commands_acknowledged": int(first.size),
        "commands_overtaken": counters.get("cmd_outdated"),
        "stale_commands_dropped": counters.get("safety_stale_command"),
        "duplicate_commands": counters.get("safety_duplicate_command"),
        "out_of_order_commands": counters.get("safety_out_of_order_command"),
        "watchdog_hold_ticks": counters.get("safety_watchdog_hold"),
        "watchdog_holds": holds_run,
        "watchdog_holds_start_up": int(onset.size - holds_run),
        "counters": counters,
    }

    health = [((e["t_ns"] - t0) / 1e9, str(e["health"])) for e in summary.get("health_events", [])]
    events = [((t - t0) / 1e9, text) for t, text in rec.events]
    # episodes: the link leaving OK (to DEGRADED or LOST), and entering LOST (the console stops
    # motion until a re-engage); before SETTLE_S they are start-up
    episodes = {"run": 0, "start_up": 0, "lost_run": 0, "lost_start_up": 0}
    prev = "OK"
    for ts, h in health:
        when = "run" if ts >= SETTLE_S else "start_up"
        if h != "OK" and prev == "OK":
            episodes[when] += 1
        if h == "LOST" and prev != "LOST":
            episodes[f"lost_{when}"] += 1
        prev = h

    e2e_console = summary.get("e2e_latency_ms", {})
    result: dict[str, Any] = {
        "recording": str(rec.path),
        "records_dropped": (rec.end or {}).get("records_dropped"),
        "stages_ms": stage_stats,
        "total_ms": total_stats,
        "stage_sum_ms": {"mean": mean_sum, "p50": p50_sum},
        "same_clock_check": same_clock,
        "console_e2e_ms": e2e_console,
        "console_sections_us": sections,
        "filter_scaling_send_p50_ms": fss_p50_ms,
        "video_ms": pct(video_ms),
        "video_fps": fps,
        "video_frames": int(vt.size),
        "first_video_frame_s": float((vt[0] - cmd_t[0]) / 1e9) if vt.size else None,
        "modelled": modelled,
        "budget_p50_ms": {
            "control": [{"stage": s, "ms": v, "how": h} for s, v, h in control_budget],
            "motion_to_photon": [{"stage": s, "ms": v, "how": h} for s, v, h in video_budget],
        },
        "link": link,
        "arm": arm,
        "tracking": tracking,
        "health_events": summary.get("health_events", []),
        "health_episodes": episodes,
        "loop_lateness_us": summary.get("loop_lateness_us", {}),
        "events": [text for _, text in events],
    }
    ts = (t_send - t0) / 1e9
    series = Series(
        t_s=ts,
        stages_ms=stages_ms,
        total_ms=total_ms,
        video_t_s=(vt - t0) / 1e9 if vt.size else np.empty(0),
        video_ms=video_ms,
        health=health,
        events=events,
    )
    return result, series


def _tracking(
    cmd_t: np.ndarray,
    cmd_pos: np.ndarray,
    meas: np.ndarray,
    setp: np.ndarray,
    ci: np.ndarray,
    t_meas: np.ndarray,
    stage_stats: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """How well the tool tip followed the commanded path (mm), three ways.

    ``meas``/``setp``: measured and setpoint position of each acknowledging state; ``ci``: the
    index of the command it acknowledges; ``t_meas``: the state's arm time on the console clock.
    """
    err = np.linalg.norm(meas - cmd_pos[ci], axis=1) * 1e3
    clamp = np.linalg.norm(setp - cmd_pos[ci], axis=1) * 1e3
    # the newest command at the measurement's instant: latency not accounted for
    j = np.clip(np.searchsorted(cmd_t, t_meas, side="right") - 1, 0, cmd_t.size - 1)
    err_now = np.linalg.norm(meas - cmd_pos[j], axis=1) * 1e3
    # the time shift that best aligns measured with commanded
    expected = stage_stats["network_up"]["p50"] + stage_stats["arm"]["p50"]
    hi = max(20.0, 3.0 * expected if math.isfinite(expected) else 20.0)
    lags = np.arange(0.0, hi, 0.25)
    ct = cmd_t.astype(np.float64)
    inside = (t_meas - hi * 1e6 >= ct[0]) & (t_meas <= ct[-1])
    rms_by_lag = np.full(lags.size, np.nan)
    if np.count_nonzero(inside) > 50:
        tm = t_meas[inside]
        m = meas[inside]
        for k, lag in enumerate(lags):
            tq = tm - lag * 1e6
            c = np.column_stack([np.interp(tq, ct, cmd_pos[:, a]) for a in range(3)])
            rms_by_lag[k] = float(np.sqrt(np.mean(np.sum((m - c) ** 2, axis=1)))) * 1e3
    best = int(np.nanargmin(rms_by_lag)) if np.isfinite(rms_by_lag).any() else -1
    path_mm = float(np.sum(np.linalg.norm(np.diff(cmd_pos, axis=0), axis=1)) * 1e3)
    return {
        "vs_applied_command_mm": {
            "rms": float(np.sqrt(np.mean(err**2))),
            "p99": float(np.percentile(err, 99)),
            "max": float(err.max()),
        },
        "vs_newest_command_mm": {
            "rms": float(np.sqrt(np.mean(err_now**2))),
            "p99": float(np.percentile(err_now, 99)),
            "max": float(err_now.max()),
        },
        "setpoint_vs_command_mm_p99": float(np.percentile(clamp, 99)),
        "best_fit_lag_ms": float(lags[best]) if best >= 0 else math.nan,
        "rms_at_best_lag_mm": float(rms_by_lag[best]) if best >= 0 else math.nan,
        "expected_lag_ms": expected,
        "commanded_path_mm": path_mm,
        "samples": int(err.size),
    }


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------
def check(result: dict[str, Any], profile: ImpairmentProfile) -> list[str]:
    """What in one profile's result cannot be right (empty when all is well)."""
    problems: list[str] = []
    name = profile.name
    st, tot = result["stages_ms"], result["total_ms"]
    delay, sigma = profile.delay_ms, profile.jitter_ms
    for k, s in {**st, "total": tot}.items():
        if not all(math.isfinite(s[q]) for q in ("p50", "p99", "max")):
            problems.append(f"{name}: stage {k} has non-finite figures {s}")
        elif not s["p50"] > 0:
            problems.append(f"{name}: stage {k} p50 {s['p50']:.4f} ms is not positive")
    # the stages telescope: their means sum to the mean total exactly; medians about
    if abs(result["stage_sum_ms"]["mean"] - tot["mean"]) > 1e-3:
        problems.append(
            f"{name}: stage means sum to {result['stage_sum_ms']['mean']:.4f} ms, "
            f"total mean {tot['mean']:.4f} ms"
        )
    tol = 0.5 + 0.1 * tot["p50"]
    if abs(result["stage_sum_ms"]["p50"] - tot["p50"]) > tol:
        problems.append(
            f"{name}: stage medians sum to {result['stage_sum_ms']['p50']:.3f} ms, total p50 "
            f"{tot['p50']:.3f} ms (tolerance {tol:.2f})"
        )
    # the profile's delay: each direction carries it, the total both
    dtol = 1.5 + 3.0 * sigma
    for k in ("network_up", "network_down"):
        p50 = st[k]["p50"]
        if not delay - dtol <= p50 <= delay + dtol:
            problems.append(
                f"{name}: {k} p50 {p50:.3f} ms, the profile's one-way delay is {delay:g} ms "
                f"(tolerance {dtol:.2f})"
            )
    # newest-wins under jitter: the commands that get applied are the ones that overtook
    # their predecessors, so the acknowledged ones are biased a little below the mean delay
    if not tot["p50"] > 2 * delay - 2 * dtol:
        problems.append(
            f"{name}: total p50 {tot['p50']:.3f} ms < 2 x {delay:g} ms delay "
            f"(tolerance {2 * dtol:.2f})"
        )
    rtt = result["link"]["rtt_ms"].get("p50")
    if rtt is not None and not 2 * delay - 2 * dtol <= rtt <= 2 * delay + 2 * dtol + 2.0:
        problems.append(f"{name}: RTT p50 {rtt:.3f} ms, the profile's is {2 * delay:g} ms")
    # loss
    lossless = profile.expected_loss == 0 and profile.bandwidth_kbps == 0
    for d in ("rx", "tx"):
        f = result["link"][d]
        lost, loss = f.get("lost"), f.get("loss")
        if lost is None or loss is None:
            continue
        n = (f.get("received") or 0) + lost
        if lossless and lost > max(1, 0.001 * n):
            problems.append(f"{name}: {lost} {d} messages lost on a lossless profile")
        elif not lossless and n >= 2000 and profile.expected_loss > 0:
            exp = profile.expected_loss
            if not 0.25 * exp <= loss <= 4 * exp + 0.002:
                problems.append(
                    f"{name}: {d} loss {100 * loss:.2f} %, the profile's is {100 * exp:.2f} %"
                )
    off = result["link"]["clock_offset_ms"]
    # NTP-style: the estimate's error is up to half the path asymmetry, i.e. the jitter
    if off is not None and abs(off) > 2.0 + 2.0 * sigma:
        problems.append(
            f"{name}: clock offset estimate {off:.3f} ms; both processes read one clock (0)"
        )
    ce = result["console_e2e_ms"].get("p50")
    close = ce is None or not math.isfinite(ce) or abs(ce - tot["p50"]) <= 0.5 + 0.05 * tot["p50"]
    if not close:
        problems.append(f"{name}: total p50 {tot['p50']:.3f} ms, the console measured {ce:.3f} ms")
    v = result["video_ms"]
    if v["count"] and not v["p50"] > delay:
        problems.append(f"{name}: video p50 {v['p50']:.3f} ms <= the {delay:g} ms delay")
    return problems


# ----------------------------------------------------------------------------------------------
# running the stack
# ----------------------------------------------------------------------------------------------
def safe_name(profile: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(profile).name) or "profile"


def run_console(
    profile: str,
    seconds: float,
    out_dir: Path,
    stem: str = "e2e",
    record_video: bool = True,
    timeout_s: float | None = None,
) -> tuple[dict[str, Any], Path, dict[str, Any] | None, Path]:
    """Run ``master-console --sim`` for ``seconds``; returns (summary, recording, the arm's
    summary from its log line or None, log file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"{stem}-{safe_name(profile)}"
    rec = base.with_suffix(".rec")
    summ = base.with_suffix(".summary.json")
    log_path = base.with_suffix(".log")
    for p in (rec, summ):
        p.unlink(missing_ok=True)
    argv = [
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
        "--record",
        str(rec),
        "--display",
        "off",
    ]
    if record_video:
        argv.append("--record-video")
    try:
        proc = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s if timeout_s is not None else seconds + RUN_OVERHEAD_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        log_path.write_text(out or "")
        raise BenchmarkError(
            f"master-console --profile {profile} did not finish in time (log: {log_path})"
        ) from exc
    log_path.write_text(proc.stdout)
    if proc.returncode != 0 or not summ.exists() or not rec.exists():
        tail = "\n".join(proc.stdout.strip().splitlines()[-8:])
        hint = ""
        if record_video and "has no attribute 'jpeg'" in proc.stdout:
            hint = (
                "\nhint: the console's video recording is broken (master_console/console.py "
                "records frame.jpeg; the protocol's VideoFrame calls it data): run with "
                "--no-video until it is fixed"
            )
        raise BenchmarkError(
            f"master-console --profile {profile} failed (exit {proc.returncode}; full log in "
            f"{log_path}):\n{tail}{hint}"
        )
    arm = None
    for line in proc.stdout.splitlines():
        m = _ARM_SUMMARY.search(line)
        if m:
            try:
                arm = json.loads(m.group(1))
            except ValueError:
                arm = None
    return json.loads(summ.read_text()), rec, arm, log_path


def run(
    profiles: list[str],
    seconds: float = 20.0,
    json_path: str | Path | None = None,
    out_dir: str | Path = "results",
    record_video: bool = True,
) -> dict[str, Any]:
    """Run and analyse every profile; write JSON, markdown and PNGs; return the result."""
    out = Path(out_dir)
    jpath = Path(json_path) if json_path is not None else out / "e2e.json"
    stem = jpath.stem
    info = machine_info()
    load_before = os.getloadavg()
    print(
        f"telesurgery-bench e2e: {', '.join(profiles)}, {seconds:g} s each\n"
        f"machine: {machine_line(info)}",
        flush=True,
    )
    results: dict[str, Any] = {}
    series: dict[str, Series] = {}
    problems: list[str] = []
    for name in profiles:
        prof = get_profile(name)
        t0 = time.monotonic()
        for attempt in range(1, ATTEMPTS + 1):
            summary, rec_path, arm_summary, log_path = run_console(
                name, seconds, out, stem, record_video
            )
            if summary.get("commands_applied", 0) > 0:
                break
            print(
                f"warning: {name}: the console never engaged the arm (attempt {attempt} of "
                f"{ATTEMPTS}): {NEVER_ENGAGED}",
                file=sys.stderr,
                flush=True,
            )
        else:
            raise BenchmarkError(f"{name}: the console never engaged the arm: {NEVER_ENGAGED}")
        r, s = analyse(rec_path, summary)
        r["attempts"] = attempt
        r["profile"] = prof.to_dict()
        r["arm_server"] = arm_summary
        r["log"] = str(log_path)
        r["realtime"] = summary.get("realtime")
        r["wall_s"] = time.monotonic() - t0
        p = check(r, prof)
        r["problems"] = p
        problems += p
        results[name] = r
        series[name] = s
        print(_one_line(name, r), flush=True)
    result: dict[str, Any] = {
        "benchmark": "e2e",
        "seconds": seconds,
        "machine": info,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "profiles": results,
    }
    table = markdown_table(result)
    print(table, flush=True)
    jpath.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps(result, indent=2, default=_json_default))
    md = jpath.with_suffix(".md")
    md.write_text(table + "\n")
    pngs = plot_all(result, series, out, stem)
    print(f"wrote {jpath}, {md}, " + ", ".join(str(p) for p in pngs), flush=True)
    if problems:
        raise BenchmarkError("e2e benchmark failed its checks: " + "; ".join(problems))
    return result


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _f(x: Any, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, spec)


def _one_line(name: str, r: dict[str, Any]) -> str:
    t = r["total_ms"]
    return (
        f"{name}: total p50 {_f(t['p50'])} ms p99 {_f(t['p99'])} ms max {_f(t['max'])} ms "
        f"({t['count']} commands); up {_f(r['stages_ms']['network_up']['p50'])} / arm "
        f"{_f(r['stages_ms']['arm']['p50'])} / down "
        f"{_f(r['stages_ms']['network_down']['p50'])} ms; video {_f(r['video_ms']['p50'])} ms; "
        f"tracking RMS {_f(r['tracking']['vs_applied_command_mm']['rms'], '.3f')} mm"
    )


def markdown_table(result: dict[str, Any]) -> str:
    """The budget per profile (stages × p50/p99/max) and the link and arm figures."""
    la = result.get("load_average")
    load = (
        f"; load average (1 min) {la['before'][0]:.1f} before, {la['after'][0]:.1f} after"
        if la
        else ""
    )
    lines = [
        f"Machine: {machine_line(result['machine'])}; {result['seconds']:g} s per profile{load}.",
        "",
    ]
    for name, r in result["profiles"].items():
        sec = r["console_sections_us"]
        lines += [
            f"**{name}** (one-way delay {r['profile']['delay_ms']:g} ms, jitter σ "
            f"{r['profile']['jitter_ms']:g} ms, loss {100 * r['profile']['loss']:g} %; "
            f"{r['total_ms']['count']} acknowledged commands)",
            "",
            "| stage | p50 ms | p99 ms | max ms | how |",
            "|---|---:|---:|---:|---|",
        ]
        for key, label in STAGES:
            s = r["stages_ms"][key]
            lines.append(
                f"| {label} | {_f(s['p50'], '.3f')} | {_f(s['p99'], '.3f')} | "
                f"{_f(s['max'], '.3f')} | measured |"
            )
            if key == "input_to_send" and "filter" in sec and "command" in sec:
                f, c = sec["filter"], sec["command"]
                lines.append(
                    "| · of which filter + scaling + send | "
                    f"{_f((f['p50'] + c['p50']) / 1e3, '.3f')}"
                    f" | {_f((f['p99'] + c['p99']) / 1e3, '.3f')} | "
                    f"{_f((f['max'] + c['max']) / 1e3, '.3f')} | console section timers "
                    f"(sums of the two sections' percentiles) |"
                )
        t = r["total_ms"]
        lines.append(
            f"| **total: input → state back at the console** | **{_f(t['p50'], '.3f')}** | "
            f"**{_f(t['p99'], '.3f')}** | **{_f(t['max'], '.3f')}** | measured (stage medians "
            f"sum to {_f(r['stage_sum_ms']['p50'], '.3f')}; the console's own p50 "
            f"{_f(r['console_e2e_ms'].get('p50'), '.3f')}) |"
        )
        v = r["video_ms"]
        m = r["modelled"]
        lines.append(
            f"| video: capture → console | {_f(v['p50'], '.2f')} | {_f(v['p99'], '.2f')} | "
            f"{_f(v['max'], '.2f')} | measured ({r['video_frames']} frames, "
            f"{_f(r['video_fps'], '.1f')} fps, the first "
            f"{_f(r['first_video_frame_s'], '.1f')} s after the first command) |"
        )
        lines.append(
            f"| camera frame phase | {_f(m['camera_frame_phase_ms'], '.1f')} | | | **modelled**: "
            f"half of 1/{_f(m['camera_rate_hz'], '.1f')} Hz |"
        )
        lines.append(
            f"| display wait | {_f(m['display_wait_ms'], '.1f')} | | | **modelled**: half of "
            f"1/{_f(m['display_refresh_hz'], 'g')} Hz refresh |"
        )
        mtp_parts = r["budget_p50_ms"]["motion_to_photon"]
        mtp = sum(x["ms"] for x in mtp_parts) if mtp_parts else None
        lines += [
            f"| **motion → photon (sum of medians)** | **{_f(mtp, '.1f')}** | | | "
            + ("measured + modelled |" if mtp_parts else "n/a: video not recorded |"),
            "",
        ]

    def pc(x: Any) -> str:
        return "n/a" if x is None else f"{100 * x:.2f} %"

    lines += [
        "Link (RTT per acknowledged command = network up + down, without the arm's hold; "
        "jitter RFC 3550; up = console → arm):",
        "",
        "| profile | RTT p50 / p99 / max ms | RTT incl. arm hold p50 ms | jitter up / down ms | "
        "loss up / down | reordered up / down | clock offset estimate ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["profiles"].items():
        lk = r["link"]
        rtt = lk["rtt_ms"]
        off = r["same_clock_check"]["offset_estimate_ms"]
        lines.append(
            f"| `{name}` | {_f(rtt['p50'], '.3f')} / {_f(rtt['p99'], '.3f')} / "
            f"{_f(rtt['max'], '.3f')} | {_f(lk['rtt_incl_arm_ms'].get('p50'), '.3f')} | "
            f"{_f(lk['tx']['jitter_ms'], '.3f')} / {_f(lk['rx']['jitter_ms'], '.3f')} | "
            f"{pc(lk['tx']['loss'])} / {pc(lk['rx']['loss'])} | "
            f"{lk['tx']['reordered']} / {lk['rx']['reordered']} | "
            f"{_f(off['p50'], '.3f')} (max {_f(off['max'], '.3f')}) |"
        )
    lines += [
        "",
        "Arm and tool (engaged commands not acknowledged were replaced in the arm by a newer "
        "one before its tick took them, newest wins; overtaken = arrived after a newer one; "
        "tracking: measured tool tip vs the applied command, i.e. latency "
        "accounted; vs the newest command at the same instant, i.e. not accounted; the time "
        "shift that best aligns measured with commanded, against network up + arm):",
        "",
        "| profile | commands sent / engaged / acknowledged | overtaken / stale dropped | "
        "watchdog holds "
        "(+ start-up) | link not OK / LOST episodes (+ start-up) | tracking RMS / p99 mm | "
        "not accounted RMS / p99 mm | best-fit lag ms (up + arm) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["profiles"].items():
        a, tr, ep = r["arm"], r["tracking"], r["health_episodes"]
        lines.append(
            f"| `{name}` | {a['commands_sent']} / {a.get('commands_engaged')} / "
            f"{a['commands_acknowledged']} | "
            f"{a['commands_overtaken']} / {a['stale_commands_dropped']} | "
            f"{a['watchdog_holds']} (+{a['watchdog_holds_start_up']}) | "
            f"{ep['run']} / {ep['lost_run']} (+{ep['start_up']} / {ep['lost_start_up']}) | "
            f"{_f(tr['vs_applied_command_mm']['rms'], '.3f')} / "
            f"{_f(tr['vs_applied_command_mm']['p99'], '.3f')} | "
            f"{_f(tr['vs_newest_command_mm']['rms'], '.3f')} / "
            f"{_f(tr['vs_newest_command_mm']['p99'], '.3f')} | "
            f"{_f(tr['best_fit_lag_ms'], '.2f')} ({_f(tr['expected_lag_ms'], '.2f')}) |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------
def plot_all(result: dict[str, Any], series: dict[str, Series], out: Path, stem: str) -> list[Path]:
    """Latency CDFs (all profiles), a timeline per profile and the stacked budget bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = f"telesurgery e2e benchmark — {machine_line(result['machine'])}"
    paths: list[Path] = []

    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (name, s) in enumerate(series.items()):
        color = f"C{i}"
        v = np.sort(s.total_ms)
        if v.size:
            ax.plot(
                v,
                np.arange(1, v.size + 1) / v.size,
                color=color,
                label=f"{name}: input → state back (p50 {np.median(v):.2f} ms)",
            )
        w = np.sort(s.video_ms)
        if w.size:
            ax.plot(
                w,
                np.arange(1, w.size + 1) / w.size,
                "--",
                color=color,
                label=f"{name}: video capture → console (p50 {np.median(w):.1f} ms)",
            )
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log)")
    ax.set_ylabel("fraction")
    ax.set_title("End-to-end latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    p = out / f"{stem}-cdf.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    colors = {"OK": "tab:green", "DEGRADED": "tab:orange", "LOST": "tab:red"}
    for name, s in series.items():
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
        ax.plot(s.t_s, s.total_ms, ".", ms=1.5, color="C0", label="total: input → state back")
        if s.video_ms.size:
            ax.plot(
                s.video_t_s,
                s.video_ms,
                "x",
                ms=3,
                color="C3",
                alpha=0.6,
                label="video capture → console",
            )
        for key, label in STAGES:
            ax2.plot(s.t_s, s.stages_ms[key], ".", ms=1, alpha=0.6, label=label)
        for a in (ax, ax2):
            seen: set[str] = set()
            for t, h in s.health:
                a.axvline(
                    t,
                    color=colors.get(h, "k"),
                    lw=1,
                    ls="--",
                    label=f"health → {h}" if h not in seen else None,
                )
                seen.add(h)
            for t, _text in s.events:
                a.axvline(t, color="k", lw=0.6, ls=":", alpha=0.6)
            a.grid(True, which="both", alpha=0.3)
            a.legend(fontsize=7, loc="upper right", markerscale=4)
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{name}: end-to-end latency over time (dotted: console events)", fontsize=9)
        ax2.set_yscale("log")
        ax2.set_ylabel("stage (ms, log)")
        ax2.set_xlabel("time since the first command (s)")
        fig.suptitle(title, fontsize=7)
        fig.tight_layout()
        p = out / f"{stem}-timeline-{safe_name(name)}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)

    names = list(result["profiles"])
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 0.6 + 1.6 * len(names)), squeeze=False)
    palette: dict[str, str] = {}
    for ax, name in zip(axes[:, 0], names, strict=True):
        b = result["profiles"][name]["budget_p50_ms"]
        rows = tuple(
            (k, key)
            for k, key in (
                ("motion → photon", "motion_to_photon"),
                ("control round trip", "control"),
            )
            if b[key]
        )
        for y, (_kind, key) in enumerate(rows):
            left = 0.0
            for seg in b[key]:
                ms = seg["ms"] if math.isfinite(seg["ms"]) else 0.0
                c = palette.setdefault(seg["stage"], f"C{len(palette)}")
                modelled = seg["how"] == "modelled"
                ax.barh(
                    y,
                    ms,
                    left=left,
                    color=c,
                    hatch="//" if modelled else None,
                    edgecolor="k",
                    lw=0.3,
                    alpha=0.55 if modelled else 1.0,
                    label=seg["stage"] + (" (modelled)" if modelled else ""),
                )
                left += ms
            ax.text(left, y, f" {left:.2f} ms", va="center", fontsize=7)
        ax.set_yticks(range(len(rows)), [k for k, _ in rows], fontsize=7)
        ax.set_title(f"{name}", fontsize=8, loc="left")
        ax.set_xlim(0, ax.get_xlim()[1] * 1.12)
        ax.grid(True, axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("milliseconds at the median of each stage")
    handles, lab = [], []
    for ax in axes[:, 0]:
        h, lb = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lb, strict=True):
            if ll not in lab:
                handles.append(hh)
                lab.append(ll)
    fig.legend(handles, lab, fontsize=7, loc="lower center", ncol=4, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(
        "Latency budget per stage (p50); hatched = modelled, not measured\n" + title, fontsize=7
    )
    fig.tight_layout(rect=(0, 0.1 + 0.02 * (4 - min(4, len(names))), 1, 1))
    p = out / f"{stem}-budget.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths
