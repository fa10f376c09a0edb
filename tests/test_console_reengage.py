"""After a link loss the console needs the surgeon's own clutch release and re-engage: a real
outage (the arm process stopped with SIGSTOP), a real console loop, a replayed hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from master_console.console import ConsoleConfig, ConsoleLoop, heartbeat_monitor_config
from master_console.devices import InputRecording, ReplayDevice
from network.link import ConsoleLink, LinkConfig, free_tcp_endpoint


def _hand(clutch_release_s: float | None) -> ReplayDevice:
    """A hand moving slowly along x, clutch out for 0.3 s, then in; optionally released at
    ``clutch_release_s`` for 0.3 s and engaged again."""
    t = np.arange(0.0, 6.0, 0.001)
    pose = np.zeros((t.size, 7))
    pose[:, 0] = 0.005 * np.sin(2 * np.pi * 0.5 * t)
    pose[:, 6] = 1.0
    clutch = t > 0.3
    if clutch_release_s is not None:
        clutch &= ~((t > clutch_release_s) & (t < clutch_release_s + 0.3))
    rec = InputRecording(t, pose, np.zeros(t.size), clutch, np.ones(t.size, bool))
    return ReplayDevice(rec)


def _run(clutch_release_s: float | None) -> tuple[ConsoleLoop, list[tuple[float, bool]]]:
    endpoint = free_tcp_endpoint()
    arm = subprocess.Popen(
        [sys.executable, "-m", "slave_arm.cli", "--driver", "kinematic", "--bind", endpoint],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert arm.stdout is not None and arm.stdout.readline().startswith("READY")
        lc = LinkConfig(endpoint=endpoint)
        link = ConsoleLink(lc, name="test", monitor_config=heartbeat_monitor_config(lc))
        loop = ConsoleLoop(_hand(clutch_release_s), link, ConsoleConfig(filter_kind="none"))
        sent: list[tuple[float, bool]] = []
        orig = link.send_command

        def spy(*a, **k):
            cmd = orig(*a, **k)
            sent.append((time.monotonic(), bool(k.get("clutch_engaged"))))
            return cmd

        link.send_command = spy  # type: ignore[method-assign]

        def outage() -> None:  # the arm goes silent for 150 ms at t = 1.5 s
            time.sleep(1.5)
            os.kill(arm.pid, signal.SIGSTOP)
            time.sleep(0.15)
            os.kill(arm.pid, signal.SIGCONT)

        t0 = time.monotonic()  # the replay's clock starts when the device connects
        with loop.device, link:
            threading.Thread(target=outage, daemon=True).start()
            loop.run(3.5)
        return loop, [(t - t0, e) for t, e in sent]
    finally:
        if arm.poll() is None:
            os.kill(arm.pid, signal.SIGCONT)
            arm.send_signal(signal.SIGINT)
            arm.wait(10)


@pytest.mark.slow
def test_after_a_loss_motion_waits_for_the_surgeons_release_and_engage() -> None:
    loop, sent = _run(clutch_release_s=None)  # the hand keeps the clutch pressed throughout
    events = [h for _, h, _ in loop.link.monitor.health_events]
    assert "LOST" in [str(e) for e in events], events
    engaged_before = [e for t, e in sent if 1.0 < t < 1.45]
    assert engaged_before and all(engaged_before)  # moving before the outage
    after = [e for t, e in sent if t > 2.0]
    assert after and not any(after)  # recovered, but no motion: the clutch was never released


@pytest.mark.slow
def test_release_and_engage_after_the_loss_resumes_motion() -> None:
    _, sent = _run(clutch_release_s=2.2)  # released 0.55 s after the outage, re-engaged
    during_release = [e for t, e in sent if 2.25 < t < 2.45]
    assert during_release and not any(during_release)
    after = [e for t, e in sent if t > 2.7]
    assert after and all(after)  # moving again, anchored where the arm is (no jump)
