"""``telesurgery-bench e2e``: the analysis on a constructed recording, then short real runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import e2e_bench
from benchmarks.cli import main as bench_main
from master_console.recording import Recorder
from network.impairment import ImpairmentProfile, get_profile

MS = 1_000_000
T0 = 50_000_000_000  # console clock at the first input sample
OFFSET = 3_000 * MS  # arm clock - console clock
UP, ARM, DOWN, AGE, VIDEO = 10 * MS, 400_000, 12 * MS, 500_000, 20 * MS
SPEED_M_S = 0.01  # the commanded tool tip moves along x at 1 cm/s
MEAS_ERR_M = 1e-4  # the measured tip is 0.1 mm off the applied command, along y


def _link_stats(offset_ms: float) -> dict:
    flow = {
        "received": 1000,
        "lost": 0,
        "loss": 0.0,
        "reordered": 0,
        "duplicates": 0,
        "jitter_ms": 0.01,
    }
    pcts = {"p50": 22.0, "p95": 22.0, "p99": 22.0, "max": 22.0, "count": 100}
    return {
        "rx": flow,
        "tx": flow,
        "rtt_ms": pcts,
        "rtt_total_ms": pcts,
        "rtt_jitter_ms": 0.0,
        "clock_offset_ms": offset_ms,
        "health": "OK",
        "health_reasons": [],
    }


def write_recording(path: Path, n: int = 1500, ack_send_shift: int = 0) -> None:
    """A console recording with known stage times: input age 0.5 ms, up 10 ms, arm 0.4 ms,
    down 12 ms (total 22.9 ms), video 20 ms; the arm's clock runs 3 s ahead of the console's;
    heartbeats take seq numbers between commands; a second state re-acknowledges each command
    later (the first must be used)."""
    with Recorder(path, record_video=True) as rec:
        rec.record("link", T0 - MS, stats=_link_stats(OFFSET / 1e6))
        seq = 0
        for i in range(n):
            t_in = T0 + i * MS
            t_send = t_in + AGE
            seq += 2 if i % 50 == 49 else 1  # a heartbeat took a number
            pose = [SPEED_M_S * i * 1e-3, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0]
            rec.record("input", t_in, pose=pose, jaw=0.0, clutch=True, present=True)
            rec.record("filtered", t_send, pos=pose[:3])
            rec.record("command", t_send, seq=seq, pose=pose, jaw=0.0, clutch=True, present=True)
            ack_rx = t_send + UP + OFFSET
            st_send = ack_rx + ARM
            measured = [pose[0], MEAS_ERR_M, pose[2], 0.0, 0.0, 0.0, 1.0]
            flags = ["watchdog_hold"] if 1200 <= i < 1210 else []
            for extra in (0, 1 * MS):  # the next tick acknowledges the same command again
                rec.record(
                    "state",
                    st_send + extra - OFFSET + DOWN,
                    seq=2 * i + (1 if extra else 0) + 1,
                    send_ns=st_send + extra,
                    ack_seq=seq,
                    ack_send_ns=t_send + ack_send_shift,
                    ack_rx_ns=ack_rx,
                    measured_cp=measured,
                    setpoint_cp=pose,
                    measured_cf=[0.0] * 6,
                    jaw=0.0,
                    flags=flags,
                    task={},
                )
            if i % 33 == 0:
                cap = t_in + OFFSET
                rec.record(
                    "video",
                    cap - OFFSET + VIDEO,
                    seq=i // 33,
                    capture_ns=cap,
                    width=4,
                    height=4,
                    jpeg=b"\xff\xd8",
                )
            if i % 500 == 0:
                rec.record("link", t_send, stats=_link_stats(OFFSET / 1e6))
        rec.record("event", T0 + 1300 * MS, text="something happened")


SUMMARY = {
    "section_us": {
        "filter": {"p50": 10.0, "p99": 20.0, "max": 30.0},
        "command": {"p50": 30.0, "p99": 60.0, "max": 90.0},
    },
    "arm_counters": {"cmd_outdated": 3, "safety_stale_command": 2, "safety_watchdog_hold": 10},
    "health_events": [
        {"t_ns": T0 + 1250 * MS, "health": "DEGRADED", "reasons": ["x"]},
        {"t_ns": T0 + 1260 * MS, "health": "OK", "reasons": []},
    ],
    "e2e_latency_ms": {"p50": 22.9, "p99": 22.9},
    "rtt_ms": {"p50": 22.4, "p99": 22.4},
    "video_fps": 30.0,
}


def test_analyse_constructed_recording(tmp_path: Path) -> None:
    path = tmp_path / "r.rec"
    write_recording(path)
    r, s = e2e_bench.analyse(path, SUMMARY, display_refresh_hz=50.0)
    st = r["stages_ms"]
    for key, want in (
        ("input_to_send", 0.5),
        ("network_up", 10.0),
        ("arm", 0.4),
        ("network_down", 12.0),
    ):
        assert st[key]["p50"] == pytest.approx(want, abs=1e-6), key
        assert st[key]["max"] == pytest.approx(want, abs=1e-6), key
        assert st[key]["count"] == 1500
    assert r["total_ms"]["p50"] == pytest.approx(22.9, abs=1e-6)
    assert r["stage_sum_ms"]["mean"] == pytest.approx(r["total_ms"]["mean"], abs=1e-9)
    # one clock for both processes would put all of the 3 s offset into the split
    assert r["same_clock_check"]["network_up"]["p50"] == pytest.approx(3010.0, abs=1e-6)
    assert r["video_ms"]["p50"] == pytest.approx(20.0, abs=1e-6)
    assert r["video_frames"] == 46
    assert r["link"]["rtt_ms"]["p50"] == pytest.approx(22.0, abs=1e-6)
    m = r["modelled"]
    assert m["display_wait_ms"] == pytest.approx(10.0)
    assert m["camera_frame_phase_ms"] == pytest.approx(0.5e3 / r["video_fps"])
    assert r["filter_scaling_send_p50_ms"] == pytest.approx(0.04)
    control = {x["stage"]: x["ms"] for x in r["budget_p50_ms"]["control"]}
    assert control["sample age + tick wait"] == pytest.approx(0.46)
    assert sum(control.values()) == pytest.approx(22.9, abs=1e-6)
    photon = r["budget_p50_ms"]["motion_to_photon"]
    assert [x["how"] for x in photon].count("modelled") == 2
    tr = r["tracking"]
    assert tr["vs_applied_command_mm"]["rms"] == pytest.approx(0.1, abs=1e-9)
    # 10.4 ms behind a 1 cm/s motion: ~0.104 mm along x besides the 0.1 mm along y
    assert tr["vs_newest_command_mm"]["rms"] == pytest.approx(math.hypot(0.1, 0.104), abs=0.01)
    assert tr["best_fit_lag_ms"] == pytest.approx(10.4, abs=0.25)
    assert tr["expected_lag_ms"] == pytest.approx(10.4)
    a = r["arm"]
    assert a["commands_acknowledged"] == 1500
    assert (a["watchdog_holds"], a["watchdog_holds_start_up"]) == (1, 0)
    assert (a["commands_overtaken"], a["stale_commands_dropped"]) == (3, 2)
    assert r["health_episodes"] == {"run": 1, "start_up": 0, "lost_run": 0, "lost_start_up": 0}
    assert r["events"] == ["something happened"]
    assert s.total_ms.shape == (1500,) and s.video_ms.shape == (46,)
    assert s.health[0] == (pytest.approx(1.2495), "DEGRADED")

    # the checks: right for an 11 ms profile, wrong for a 50 ms one
    ok = ImpairmentProfile(name="t", delay_ms=11.0)
    r["link"]["clock_offset_ms"] = 0.0  # the constructed clocks differ by 3 s on purpose
    r["console_e2e_ms"] = {"p50": 22.9}
    assert e2e_bench.check(r, ok) == []
    problems = e2e_bench.check(r, ImpairmentProfile(name="far", delay_ms=50.0))
    assert any("network_up" in p for p in problems)
    assert any("total p50" in p for p in problems)

    r["profile"] = ok.to_dict()
    md = e2e_bench.markdown_table({"machine": _machine(), "seconds": 1.5, "profiles": {"t": r}})
    assert "**modelled**" in md and "| network up (console → arm) | 10.000 |" in md


def _machine() -> dict:
    from benchmarks.machine import machine_info

    return machine_info()


def test_analyse_refuses_mismatched_acks(tmp_path: Path) -> None:
    path = tmp_path / "bad.rec"
    write_recording(path, n=100, ack_send_shift=7)
    with pytest.raises(e2e_bench.BenchmarkError, match="do not match"):
        e2e_bench.analyse(path, SUMMARY)


def test_analyse_refuses_too_little(tmp_path: Path) -> None:
    path = tmp_path / "short.rec"
    write_recording(path, n=5)
    with pytest.raises(e2e_bench.BenchmarkError, match="acknowledged"):
        e2e_bench.analyse(path, SUMMARY)


@pytest.mark.slow
def test_e2e_real_runs_lan_and_lindbergh(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The real stack for 3 s per profile: structure, sane stages, lindbergh's known delay."""
    out = tmp_path / "out"
    jpath = tmp_path / "e2e.json"
    rc = bench_main(
        [
            "e2e",
            "--profile",
            "lan",
            "--profile",
            "lindbergh",
            "--seconds",
            "3",
            "--json",
            str(jpath),
            "--out-dir",
            str(out),
            "--no-video",
        ]
    )
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "machine:" in text.out
    r = json.loads(jpath.read_text())
    assert r["benchmark"] == "e2e" and set(r["profiles"]) == {"lan", "lindbergh"}
    for name, p in r["profiles"].items():
        assert p["problems"] == []
        for key in e2e_bench.STAGE_KEYS:
            s = p["stages_ms"][key]
            assert all(math.isfinite(s[q]) and s[q] > 0 for q in ("p50", "p99", "max")), (name, key)
        tot = p["total_ms"]
        assert tot["count"] > 500
        assert p["stage_sum_ms"]["mean"] == pytest.approx(tot["mean"], abs=1e-3)
        assert p["stage_sum_ms"]["p50"] == pytest.approx(tot["p50"], abs=0.5 + 0.1 * tot["p50"])
        assert p["arm"]["stale_commands_dropped"] == 0
        assert p["link"]["rx"]["lost"] == 0 and p["link"]["tx"]["lost"] == 0
        assert p["tracking"]["vs_applied_command_mm"]["rms"] < 1.0
        assert p["budget_p50_ms"]["motion_to_photon"] == []  # no video recorded
        assert p["arm_server"] is not None and "server_lateness_us" in p["arm_server"]
    lan, lind = r["profiles"]["lan"], r["profiles"]["lindbergh"]
    assert lan["total_ms"]["p50"] < 10.0
    prof = get_profile("lindbergh")
    delay = prof.delay_ms
    assert delay == 77.5
    tol = 1.5 + 3 * prof.jitter_ms  # the benchmark's own tolerance: a 2-core machine, shared
    for key in ("network_up", "network_down"):
        assert lind["stages_ms"][key]["p50"] == pytest.approx(delay, abs=tol), key
    assert lind["total_ms"]["p50"] >= 2 * delay
    assert lind["link"]["rtt_ms"]["p50"] == pytest.approx(2 * delay, abs=2 * tol)
    assert lind["tracking"]["best_fit_lag_ms"] > delay
    md = jpath.with_suffix(".md").read_text()
    assert "| `lindbergh` |" in md and "modelled" in md
    for png in ("e2e-cdf.png", "e2e-budget.png", "e2e-timeline-lan.png"):
        assert (out / png).stat().st_size > 10_000, png


@pytest.mark.slow
def test_e2e_real_run_with_video(tmp_path: Path) -> None:
    try:
        r = e2e_bench.run(["lan"], 5.0, tmp_path / "v.json", tmp_path, record_video=True)
    except e2e_bench.BenchmarkError as exc:
        if "has no attribute 'jpeg'" in str(exc):  # only this known console bug, nothing else
            pytest.xfail("master_console/console.py records frame.jpeg; VideoFrame has data")
        raise
    p = r["profiles"]["lan"]
    v = p["video_ms"]
    if v["count"] == 0:  # the camera process starts in 1-4 s on a loaded 2-core machine
        pytest.skip("the camera sent no frame in 5 s")
    assert v["count"] > 10 and 0 < v["p50"] < 1000
    photon = p["budget_p50_ms"]["motion_to_photon"]
    assert [x["how"] for x in photon].count("modelled") == 2
    assert sum(x["ms"] for x in photon) > p["total_ms"]["p50"]
