"""Force feedback end to end: a simulated haptic handle, the console loop and a real
``slave-arm --driver sim`` process.

The hand (``SimulatedHapticDevice``: a mass-spring-damper per axis, integrated in real time on
its own thread) leads the handle so the tool goes from its start pose to above the tissue pad,
then down into it by a few millimetres (5:1: 1 mm at the tool is 5 mm at the handle). The pad
pushes the tool up (~1 N/mm); the console renders that force, scaled, on the handle, which then
sits above where the hand intends by F / k_hand.

Made for a loaded machine: the console loop runs on its own thread for the whole session (each
``ConsoleLoop.run`` call enters and leaves real-time mode, with a full garbage collection; run
in short chunks on a busy machine, the gaps between them tripped the arm's 100 ms watchdog);
the console's link-health monitor is given a long LOST threshold (a starved console process is
not what is tested here); and when the arm's watchdog holds anyway (the console then re-anchors
its scaling, so the tool no longer sits where the hand's plan assumed), the hand corrects its
aim, as a surgeon would.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from master_console.cli import start_local_arm, stop_local_arm
from master_console.console import ConsoleConfig, ConsoleLoop
from master_console.devices import InputSample
from master_console.haptics import ForceFeedback, ForceFeedbackConfig, SimulatedHapticDevice
from network.link import ConsoleLink, LinkConfig, free_tcp_endpoint
from network.monitor import MonitorConfig
from network.protocol import State
from sim.scene import PAD_CENTER, PAD_TOP_Z

SCALE = 0.2  # the console's default motion scale (5:1)
MAX_FORCE_N = 3.0
CLEARANCE_M = 0.005  # the tool hovers this far above the pad before pressing
DEPTH_M = 0.004  # the hand aims the tool this far into the pad (the feedback holds it short)


def smooth(u: float) -> float:
    """Minimum-jerk 0 → 1 over u in [0, 1] (no step in velocity or acceleration: the lightly
    damped hand model does not ring)."""
    u = min(max(u, 0.0), 1.0)
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


class RealTimeHapticDevice(SimulatedHapticDevice):
    """``SimulatedHapticDevice`` advanced in real time on a thread, with a log of what it got.

    The simulated time follows ``time.monotonic_ns`` (the physics thread catches up in whole
    steps every ``step_s``), so samples carry real times. A lock serialises the physics, the
    console's ``latest()`` and ``send_force()`` (the parent class is not thread-safe).
    ``sent``: one row per ``send_force``: (sample time s, clutch of that tick's sample, wrench
    (6), the force feedback's energy J after that step). ``track``: one row per physics update:
    (time s, handle position (3), intended position (3), device force (3), handle velocity (3)).
    """

    def __init__(self, ff: ForceFeedback | None = None, **kwargs: Any) -> None:
        self.origin_ns = time.monotonic_ns()
        super().__init__(t0_ns=self.origin_ns, step_s=1e-3, report_twist=True, **kwargs)
        self.ff = ff
        self.sent: list[tuple[float, ...]] = []
        self.track: list[tuple[float, ...]] = []
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: InputSample | None = None

    # -- the physics thread ------------------------------------------------------------------
    def connect(self) -> None:
        with self._lock:
            super().connect()
        if self._thread is None:
            self._halt.clear()
            self._thread = threading.Thread(target=self._physics, name="haptic-sim", daemon=True)
            self._thread.start()

    def disconnect(self) -> None:
        if self._thread is not None:
            self._halt.set()
            self._thread.join(timeout=5.0)
            self._thread = None
        with self._lock:
            super().disconnect()

    def _physics(self) -> None:
        step_ns = round(self.step_s * 1e9)
        while not self._halt.is_set():
            with self._lock:
                n = (time.monotonic_ns() - self.t_ns) // step_ns
                if n > 0:
                    self.advance(n * self.step_s)
                    t = self.sim_time_s
                    self.track.append(
                        (
                            t,
                            *self.position_m,
                            *self.intended_at(t),
                            *self.force_n,
                            *self.velocity_m_s,
                        )
                    )
                due_ns = self.t_ns + step_ns
            time.sleep(max(0.0, (due_ns - time.monotonic_ns()) * 1e-9))

    # -- the console's side ------------------------------------------------------------------
    def latest(self) -> InputSample | None:
        with self._lock:
            self._last = super().latest()
            return self._last

    def send_force(self, wrench: np.ndarray) -> None:
        with self._lock:
            super().send_force(wrench)
            s = self._last
            assert s is not None
            energy = self.ff.energy_j if self.ff is not None else 0.0
            t = (s.t_ns - self.origin_ns) * 1e-9
            self.sent.append((t, float(s.buttons.clutch), *np.asarray(wrench, float), energy))

    # -- the hand ------------------------------------------------------------------------------
    @property
    def sim_time_s(self) -> float:
        return (self.t_ns - self.origin_ns) * 1e-9

    def reach(self, target: Any, duration_s: float) -> None:
        """The hand moves its intended position from where it is now to ``target`` (a
        minimum-jerk path over ``duration_s``), then holds it."""
        with self._lock:
            t0 = self.sim_time_s
            a = self.intended_at(t0).copy()
            b = np.asarray(target, dtype=float)

            def path(t: float) -> np.ndarray:
                return a + (b - a) * smooth((t - t0) / duration_s)

            self.set_intended(path)

    def set_clutch(self, engaged: bool) -> int:
        """Press or release the clutch; returns how many forces were sent before."""
        with self._lock:
            self.clutch = engaged
            return len(self.sent)

    def handle_position(self) -> np.ndarray:
        with self._lock:
            return self.position_m

    def still_for(self, window_s: float, max_speed_m_s: float = 2e-3) -> bool:
        """The handle has moved slower than ``max_speed_m_s`` over the last ``window_s``."""
        with self._lock:
            t_now = self.sim_time_s
            if not self.track or self.track[0][0] > t_now - window_s:
                return False
            rows = []
            for row in reversed(self.track):
                if row[0] < t_now - window_s:
                    break
                rows.append(row)
        v = np.array(rows)[:, 10:13]
        return len(rows) > 0.5 * window_s / self.step_s and float(np.abs(v).max()) < max_speed_m_s


class Hand:
    """Drives the tool through the handle: ``tool = C + scale × handle`` at rest, with
    ``C = arm setpoint − scale × handle`` fixed at engagement. After each move, if the arm's
    watchdog held meanwhile (the console then re-anchors, which moves ``C``), ``C`` is measured
    again (at rest) and the hand aims anew; without a hold, a wrong ``C`` is left for the test's
    assertions to catch (a wrong scale must not be corrected away)."""

    def __init__(self, dev: RealTimeHapticDevice, link: ConsoleLink) -> None:
        self.dev, self.link = dev, link
        self.offset = self.measured_offset()
        self.holds = self.holds0 = self.watchdog_holds()
        self.corrections = 0

    def state(self) -> State:
        assert self.link.latest_state is not None, "no state from the arm"
        return self.link.latest_state.state

    def watchdog_holds(self) -> int:
        return int(self.state().counters.get("safety_watchdog_hold", 0))

    def measured_offset(self) -> np.ndarray:
        setpoint = np.asarray(self.state().setpoint_cp[:3], dtype=float)
        return setpoint - SCALE * self.dev.handle_position()

    def settle(self, window_s: float, timeout_s: float = 3.0) -> None:
        """Wait until the handle has been still for ``window_s`` (or ``timeout_s`` passed)."""
        end = time.monotonic() + timeout_s
        while not self.dev.still_for(window_s) and time.monotonic() < end:
            time.sleep(0.05)

    def move_tool_to(self, target: np.ndarray, duration_s: float, window_s: float) -> None:
        """Lead the tool to ``target`` (base frame, m) and wait until the handle is still."""
        self.dev.reach((target - self.offset) / SCALE, duration_s)
        time.sleep(duration_s + 0.2)
        self.settle(window_s)
        for _ in range(3):
            now, holds = self.measured_offset(), self.watchdog_holds()
            if holds == self.holds or np.abs(now - self.offset).max() < 0.3e-3:
                return
            # the arm held after a gap and the console re-anchored: aim again, from here
            self.corrections += 1
            self.offset, self.holds = now, holds
            self.dev.reach((target - self.offset) / SCALE, 0.5)
            time.sleep(0.7)
            self.settle(window_s)


@contextlib.contextmanager
def local_arm() -> Iterator[str]:
    endpoint = free_tcp_endpoint()
    proc = start_local_arm(endpoint)
    try:
        yield endpoint
    finally:
        stop_local_arm(proc)


def console_link(endpoint: str) -> ConsoleLink:
    return ConsoleLink(
        LinkConfig(endpoint=endpoint),
        name="test",
        subscribe_video=False,
        monitor_config=MonitorConfig(lost_silence_ms=5000.0),
    )


@contextlib.contextmanager
def console_running(loop: ConsoleLoop) -> Iterator[None]:
    """The console loop ticking on its own thread until the block ends; then its exception,
    if it raised one (a NaN handed to the device, say), is raised here."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def body() -> None:
        try:
            loop.run(None, stop)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=body, name="console-loop", daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 10.0
        while loop.link.latest_state is None and not errors and time.monotonic() < end:
            time.sleep(0.01)
        time.sleep(0.3)  # clutch out meanwhile: the console arms itself
        yield
    finally:
        stop.set()
        thread.join(timeout=10.0)
    assert not thread.is_alive(), "the console loop did not stop"
    if errors:
        raise errors[0]


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate v by the unit quaternion q = (x, y, z, w)."""
    u, w = np.asarray(q[:3], dtype=float), float(q[3])
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


@pytest.mark.slow
def test_pressing_the_tissue_pad_pushes_the_handle_back() -> None:
    cfg = ForceFeedbackConfig(enabled=True, max_force_n=MAX_FORCE_N, passivity=True)
    ff = ForceFeedback(cfg, motion_scale=SCALE)
    window_s = 0.5  # the handle is still this long before the clutch is released
    with local_arm() as endpoint:
        dev = RealTimeHapticDevice(ff=ff, clutch=False)
        link = console_link(endpoint)
        loop = ConsoleLoop(dev, link, ConsoleConfig(scale=SCALE), force_feedback=ff)
        assert loop.force_feedback is ff
        with dev, link, console_running(loop):
            hand = Hand(dev, link)
            above = np.array([*PAD_CENTER, PAD_TOP_Z + CLEARANCE_M])
            press = np.array([*PAD_CENTER, PAD_TOP_Z - DEPTH_M])

            # 1. engage and bring the tool over the pad centre, 5 mm above it
            dev.set_clutch(True)
            hand.move_tool_to(above, 2.0, 0.2)
            hover = hand.state()

            # 2. press into the pad, and hold
            t_press = dev.sim_time_s
            hand.move_tool_to(press, 1.5, window_s)
            contact = hand.state()

            # 3. release the clutch while in contact
            n_engaged = dev.set_clutch(False)
            time.sleep(0.3)
        track = np.array(dev.track)

    sent = np.array(dev.sent)
    t_sent, clutch, wrench, energy = sent[:, 0], sent[:, 1], sent[:, 2:8], sent[:, 8]
    force = wrench[:, :3]
    fnorm = np.linalg.norm(force, axis=1)
    # a tick that read the handle just before the release may send after it: one at most
    out = n_engaged + int(np.argmin(clutch[n_engaged:]))
    assert out - n_engaged <= 1 and clutch[out] == 0.0, clutch[n_engaged:]
    print(
        f"\nconsole: {loop.stats.ticks} ticks, {loop.stats.commands_applied} commands applied, "
        f"e2e {loop.stats.summary(link)['e2e_latency_ms']} ms, "
        f"arm watchdog hold ticks {hand.watchdog_holds() - hand.holds0} (after engaging), "
        f"re-aims {hand.corrections}"
    )

    # the console drove the arm over the pad
    p1 = np.asarray(hover.measured_cp[:3], dtype=float)
    assert np.abs(p1 - above).max() < 1.5e-3, (p1, above)
    assert np.linalg.norm(hover.measured_cf[:3]) < 0.05, hover.measured_cf

    # 4. never a NaN; the passivity observer never sees the teleoperator go active
    assert np.isfinite(sent).all()
    assert ff.rejected == 0
    print(
        f"energy: min {energy.min() * 1e3:.3f} mJ, at release {energy[out - 1] * 1e3:.3f} mJ; "
        f"damped ticks {ff.damped}, dissipated {ff.dissipated_j * 1e3:.3f} mJ"
    )
    assert energy.min() > -5e-3

    # 1. before contact (engaged, moving, hovering): no force
    before = (t_sent < t_press) & (clutch > 0)
    assert before.sum() > 1500, before.sum()
    print(f"before contact: max |f| {fnorm[before].max():.4f} N over {before.sum()} ticks")
    assert fnorm[before].max() < 0.05

    # 2. in contact: the arm measures the pad pushing up; the handle is pushed up, within limits
    cp = np.asarray(contact.measured_cp, dtype=float)
    f_tool = quat_rotate(cp[3:], np.asarray(contact.measured_cf[:3], dtype=float))  # base frame
    depth_mm = (PAD_TOP_Z - cp[2]) * 1e3
    print(f"in contact: tool {depth_mm:.2f} mm into the pad, arm force (base) {f_tool.round(3)} N")
    assert 0.5 < depth_mm < 2.0 + DEPTH_M * 1e3, depth_mm
    assert 1.0 < f_tool[2] < 8.0, f_tool
    assert "force_over_limit" not in contact.safety_flags, contact.safety_flags
    pressing = (t_sent >= t_press) & (clutch > 0)
    assert force[pressing, 2].max() > 0.3, force[pressing, 2].max()
    assert np.all(fnorm <= MAX_FORCE_N + 1e-9), fnorm.max()
    last = force[out - 1]
    print(f"rendered at release: {last.round(3)} N (peak |f| {fnorm.max():.3f} N)")
    assert last[2] > 0.3 and last[2] > 1.5 * np.linalg.norm(last[:2]), last
    # it is the arm's force, scaled (less the deadband at the tool); the normal part only: the
    # pad's lateral friction on the jaws wanders (even changes sign) while the tool holds still
    g, d = cfg.force_scale, cfg.deadband_n
    expected = g * f_tool * (1.0 - d / np.linalg.norm(f_tool))
    assert abs(last[2] - expected[2]) < 0.15 * expected[2] + 0.03, (last, expected)

    # 3. the handle sits above where the hand wants it, by F / k_hand (over the still window)
    t_release = t_sent[out - 1]
    held = track[(track[:, 0] > t_release - window_s) & (track[:, 0] <= t_release)]
    offset = (held[:, 1:4] - held[:, 4:7]).mean(axis=0)
    f_dev = held[:, 7:10].mean(axis=0)
    k = dev.hand_stiffness_n_per_m
    print(f"handle offset {offset * 1e3} mm, F/k {f_dev / k * 1e3} mm (F = {f_dev.round(3)} N)")
    assert offset[2] > 1e-3, offset
    assert np.abs(offset - f_dev / k).max() < 0.15 * np.linalg.norm(f_dev) / k + 2e-4

    # 5. clutch out: zero force from the very next tick on
    assert len(sent) - out > 100
    assert np.all(clutch[out:] == 0.0)
    assert np.all(wrench[out:] == 0.0), np.abs(wrench[out:]).max()


@pytest.mark.slow
def test_disabled_force_feedback_sends_nothing_and_the_arm_still_moves() -> None:
    ff = ForceFeedback(ForceFeedbackConfig(), motion_scale=SCALE)  # enabled=False by default
    step = np.array([0.0, 0.0, -0.01])  # the tool goes 10 mm down
    with local_arm() as endpoint:
        dev = RealTimeHapticDevice(ff=ff, clutch=False)
        link = console_link(endpoint)
        loop = ConsoleLoop(dev, link, ConsoleConfig(scale=SCALE), force_feedback=ff)
        assert loop.force_feedback is None
        with dev, link, console_running(loop):
            hand = Hand(dev, link)
            p0 = np.asarray(hand.state().measured_cp[:3], dtype=float)
            dev.set_clutch(True)
            hand.move_tool_to(p0 + step, 1.0, 0.2)  # 50 mm down at the handle
            p1 = np.asarray(hand.state().measured_cp[:3], dtype=float)
            dev.set_clutch(False)
            time.sleep(0.1)
    moved = p1 - p0
    print(f"\nmoved {moved * 1e3} mm (re-aims {hand.corrections})")
    assert np.abs(moved - step).max() < 1e-3, moved
    assert dev.forces_sent == 0 and dev.sent == []
