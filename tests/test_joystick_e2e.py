"""A virtual gamepad drives the simulated arm: console loop, joystick, a real slave-arm process."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import uuid

import numpy as np
import pytest

from master_console.cli import start_local_arm, stop_local_arm
from master_console.console import ConsoleConfig, ConsoleLoop
from master_console.joystick import JoystickConfig, JoystickDevice
from master_console.virtual_joystick import VirtualJoystick
from network.link import ConsoleLink, LinkConfig, free_tcp_endpoint
from network.monitor import MonitorConfig

CLUTCH = 9  # the default clutch: left shoulder in SDL's controller order
MAX_SPEED_M_S = 0.02
SCALE = 0.2  # ConsoleConfig's default: 4 mm/s at the arm for a fully deflected stick


def run(loop: ConsoleLoop, seconds: float, engaged: bool = False) -> None:
    """``loop.run``; skips the test if the link went LOST while the clutch was held (the console
    then stops motion until a re-engage, by design, and the motion checks would be void)."""
    lost = loop.stats.lost_ticks
    loop.run(seconds)
    if engaged and loop.stats.lost_ticks > lost:
        pytest.skip("the link to the sim arm went LOST while engaged (machine overloaded)")


@pytest.mark.slow
def test_virtual_gamepad_drives_the_sim_arm() -> None:
    endpoint = free_tcp_endpoint()
    proc = start_local_arm(endpoint)
    try:
        with VirtualJoystick(name=f"E2E Pad {uuid.uuid4().hex[:8]}") as pad:
            dev = JoystickDevice(
                JoystickConfig(name_contains=pad.name, max_speed_m_s=MAX_SPEED_M_S, rate_hz=500.0)
            )
            # LOST after 2 s of silence, not 200 ms: this test is about the joystick, and other
            # sim arms (at real-time priority) on a shared 2-core machine can stall ours briefly
            link = ConsoleLink(
                LinkConfig(endpoint=endpoint),
                name="test",
                monitor_config=MonitorConfig(lost_silence_ms=2000.0),
            )
            loop = ConsoleLoop(dev, link, ConsoleConfig(scale=SCALE))

            def arm_xyz() -> np.ndarray:
                assert link.latest_state is not None
                return np.array(link.latest_state.state.measured_cp[:3], dtype=float)

            with dev, link:
                # operator present (no presence button: present while plugged in), clutch out
                run(loop, 0.3)
                assert link.latest_state is not None, "no state from the arm"
                p0 = arm_xyz()

                # hold the clutch and push the left stick right for 1 s
                pad.set_button(CLUTCH, True)
                pad.set_axis(0, 1.0)
                run(loop, 1.0, engaged=True)
                pad.set_button(CLUTCH, False)  # release: the arm must stop
                run(loop, 0.3)  # let the arm settle on its last setpoint
                p1 = arm_xyz()
                moved = p1 - p0
                expected = SCALE * MAX_SPEED_M_S * 1.0  # 4 mm
                assert 0.5 * expected < moved[0] < 1.5 * expected, moved
                assert np.all(np.abs(moved[1:]) < 0.25 * expected), moved

                # clutch out, stick still deflected: the arm stays put (the master pose runs on)
                m1 = dev.latest().pose[0]  # type: ignore[union-attr]
                run(loop, 1.0)
                p2 = arm_xyz()
                assert np.linalg.norm(p2 - p1) < 0.5e-3, p2 - p1
                ran_on = dev.latest().pose[0] - m1  # type: ignore[union-attr]
                assert ran_on > 0.5 * MAX_SPEED_M_S, ran_on  # the master did move on

                # re-engage with the stick centred: no jump, although the integrated master
                # pose ran on by 26 mm (5 mm at the arm) while the clutch was out. (Wait for the
                # console's default tremor filter, an adaptive Kalman, to settle first: it rings
                # by a few mm of master motion after a rate device's ramp stops.)
                pad.set_axis(0, 0.0)
                run(loop, 0.8)
                p3 = arm_xyz()
                pad.set_button(CLUTCH, True)
                track = []
                for _ in range(30):
                    run(loop, 0.01, engaged=True)
                    track.append(arm_xyz())
                steps = np.linalg.norm(np.diff(np.array([p3, *track]), axis=0), axis=1)
                assert steps.max() < 1e-3, steps.max()
                assert np.linalg.norm(track[-1] - p3) < 1.5e-3, track[-1] - p3
                assert loop.stats.commands_applied > 300, loop.stats.commands_applied
                pad.set_button(CLUTCH, False)
                run(loop, 0.1)
    finally:
        stop_local_arm(proc)
    assert dev.errors == 0, dev.errors
