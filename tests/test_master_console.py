"""`master-console --sim`: the synthetic hand drives the simulated arm over tcp, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest

from master_console.recording import load_recording


@pytest.mark.slow
def test_master_console_drives_the_sim_arm(tmp_path) -> None:
    out, rec = tmp_path / "console.json", tmp_path / "session.rec"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "master_console.cli",
            "--sim",
            "--seconds",
            "4",
            "--json",
            str(out),
            "--record",
            str(rec),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # no screen here: the display rendered the console view to PNG snapshots instead
    assert "no screen: console snapshots go to results/console/latest.png" in proc.stdout
    snap = tmp_path / "results" / "console" / "latest.png"
    assert snap.exists()
    assert plt.imread(snap).shape[:2] == (720, 1280)
    s = json.loads(out.read_text())
    for key in (
        "ticks",
        "loop_lateness_us",
        "e2e_latency_ms",
        "rtt_ms",
        "commands_applied",
        "video_fps",
        "peak_force_n",
        "health_events",
    ):
        assert key in s
    assert set(s["loop_lateness_us"]) == {"p50", "p99", "p999"}
    assert s["ticks"] >= 3900 and s["commands_applied"] > 2000
    assert 0 < s["e2e_latency_ms"]["p50"] < 20
    assert s["video_fps"] > 15
    # the recording: the arm followed the scaled, filtered hand
    r = load_recording(rec)
    cmd, st = r.arrays("command"), r.arrays("state")
    engaged = cmd["clutch"].astype(bool)
    assert engaged.sum() > 2000
    sent = cmd["pose"][engaged][-1][:3]
    measured = st["measured_cp"][-1][:3]
    assert np.linalg.norm(sent - measured) < 2e-3  # the tool is where the console sent it
    moved = np.ptp(cmd["pose"][engaged][:, :3], axis=0).max()
    assert moved > 1e-3  # the hand's reaches, scaled 5:1, moved the tool by millimetres
