"""The arm server in its own process (`slave-arm`), driven over tcp by real console processes:
engagement, the watchdog after a SIGKILLed console, re-engagement, and floods of bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
import zmq

from network.link import ConsoleLink, LinkConfig, channel_endpoints, free_tcp_endpoint
from network.protocol import Command, State, encode
from tests.test_protocol import malformed_cases

WATCHDOG_MS = 100.0
HOME = (0.0, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0)


def now_ns() -> int:
    return time.monotonic_ns()


class ArmProcess:
    def __init__(self, driver: str = "kinematic", *extra: str) -> None:
        self.endpoint = free_tcp_endpoint()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "slave_arm.cli",
                "--driver",
                driver,
                "--bind",
                self.endpoint,
                "--watchdog-ms",
                str(WATCHDOG_MS),
                "--controller-timeout-ms",
                "500",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"slave-arm did not start: {line!r} {self.proc.stderr.read()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


@pytest.fixture
def arm() -> Iterator[ArmProcess]:
    a = ArmProcess()
    yield a
    if a.alive():
        assert a.stop() == 0, "slave-arm did not stop cleanly on SIGINT"


def stream(link: ConsoleLink, targets, engaged: bool = True, rate_hz: float = 1000.0) -> None:
    period = int(1e9 / rate_hz)
    deadline = now_ns()
    for pose in targets:
        link.send_command(pose, 0.3, clutch_engaged=engaged)
        deadline += period
        link.service_until(deadline)


def offset(dx: float) -> tuple[float, ...]:
    return (HOME[0] + dx, *HOME[1:])


def engage(link: ConsoleLink, pose=HOME) -> None:
    """Released for a moment, then engaged: the edge the arm needs before it moves."""
    stream(link, [pose] * 30, engaged=False)
    stream(link, [pose] * 30, engaged=True)


@pytest.mark.slow
def test_console_drives_the_arm_and_sees_state(arm: ArmProcess) -> None:
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint), name="alice") as link:
        assert link.welcome.arm.dof == 7
        # streaming with the clutch engaged from the start does not move the arm: no edge yet
        stream(link, [offset(0.01)] * 100, engaged=True)
        st = link.latest_state.state
        assert abs(st.setpoint_cp[0] - HOME[0]) < 1e-6
        assert "wait_reengage" in st.safety_flags
        engage(link)
        # 20 mm away: the speed limit (0.2 m/s) spreads it over ~100 ticks
        stream(link, [offset(0.02)] * 150)
        st = link.latest_state.state
        assert st.operating_state == "ENABLED"
        assert st.setpoint_cp[0] == pytest.approx(0.020, abs=1e-6)
        assert st.measured_cp[0] == pytest.approx(0.020, abs=5e-4)
        assert st.ack_seq > 0


@pytest.mark.slow
def test_a_console_taking_over_at_once_is_heard() -> None:
    """A second console connecting right after the first said bye numbers from 1 again: the
    arm must not refuse it as out of order (it once did, until the watchdog tripped; a long
    watchdog here makes sure the take-over comes before any trip)."""
    arm = ArmProcess("kinematic", "--watchdog-ms", "2000")
    try:
        _take_over(arm)
    finally:
        assert arm.stop() == 0


def _take_over(arm: ArmProcess) -> None:
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint), name="alice") as link:
        engage(link)
        stream(link, [offset(0.005)] * 500)  # seq up to ~560
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint), name="bob") as link:
        stream(link, [HOME] * 30, engaged=False)
        assert link.latest_state.state.ack_seq == 0  # not alice's last command
        stream(link, [HOME] * 30, engaged=True)
        stream(link, [offset(-0.005)] * 150)
        st = link.latest_state.state
        assert st.counters["safety_out_of_order_command"] == 0
        assert st.setpoint_cp[0] == pytest.approx(-0.005, abs=1e-6)


@pytest.mark.slow
def test_watchdog_holds_after_the_console_is_killed_and_reengage_is_needed(
    arm: ArmProcess,
) -> None:
    console = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from network.link import ConsoleLink, LinkConfig
            link = ConsoleLink(LinkConfig(endpoint={arm.endpoint!r}), name="doomed")
            link.connect()
            pose = {HOME!r}
            d = time.monotonic_ns()
            for i in range(200):
                link.send_command(pose, 0.3, clutch_engaged=i >= 50)
                d += 1_000_000; link.service_until(d)
            print("STREAMING", flush=True)
            i = 0
            while True:
                i += 1
                p = (pose[0] + 0.00001 * (i % 500), *pose[1:])
                link.send_command(p, 0.3)
                d += 1_000_000; link.service_until(d)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert console.stdout.readline().strip() == "STREAMING"
        states: list[State] = []
        with ConsoleLink(
            LinkConfig(endpoint=arm.endpoint),
            role="observer",
            on_state=lambda s, t: states.append(s),
        ) as obs:
            obs.service_until(now_ns() + 200_000_000)
            assert states and "watchdog_hold" not in states[-1].safety_flags
            os.kill(console.pid, signal.SIGKILL)
            console.wait()
            obs.service_until(now_ns() + 500_000_000)
        # on the arm's own clock: the last command it received, and the first hold after it
        last_rx = max(s.ack_rx_ns for s in states)
        hold = next(s for s in states if "watchdog_hold" in s.safety_flags and s.send_ns > last_rx)
        tick_ns = 1e9 / 1000.0
        assert hold.send_ns - last_rx <= WATCHDOG_MS * 1e6 + tick_ns + 2e6  # + one publish
        held = [s for s in states if s.send_ns > hold.send_ns]
        assert held and max(abs(s.setpoint_cp[0] - hold.setpoint_cp[0]) for s in held) < 1e-9
    finally:
        if console.poll() is None:
            console.kill()

    # a new console (after the dead one lost control: 500 ms of silence here): engaged from its
    # first command, it is not obeyed until it re-engages
    time.sleep(0.3)
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint), name="rescuer") as link:
        x0 = link.latest_state.state.setpoint_cp[0] if link.latest_state else None
        stream(link, [offset(0.01)] * 200, engaged=True)
        st = link.latest_state.state
        assert "wait_reengage" in st.safety_flags
        assert x0 is None or abs(st.setpoint_cp[0] - x0) < 1e-9
        engage(link, pose=offset(0.01))
        stream(link, [offset(0.01)] * 150)  # 10 mm at the 0.2 m/s speed limit: ~50 ticks
        assert link.latest_state.state.setpoint_cp[0] == pytest.approx(0.01, abs=1e-6)


@pytest.mark.slow
def test_floods_of_malformed_and_stale_messages_are_counted_and_ignored(arm: ArmProcess) -> None:
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint), name="alice") as link:
        engage(link)
        link.service_until(now_ns() + 50_000_000)
        before = link.latest_state.state
        ctx = zmq.Context()
        rogue = ctx.socket(zmq.DEALER)
        rogue.linger = 0
        rogue.connect(channel_endpoints(arm.endpoint).control)
        try:
            time.sleep(0.1)
            for frames in malformed_cases(2000, seed=11):
                rogue.send_multipart(frames)
            # stale commands from the controller itself: sent "a second ago"
            old = now_ns() - 1_000_000_000
            for i in range(200):
                link._seq += 1
                cmd = Command(link._seq, old + i, "servo_cp", offset(0.05), 0.3, True, True)
                link._send(link._ctrl, encode(cmd), now_ns())
                link.service_until(now_ns() + 1_000_000)
            link.service_until(now_ns() + 300_000_000)
        finally:
            rogue.close()
            ctx.term()
        st = link.latest_state.state
        assert st.counters["msg_rejected"] >= 1900
        assert st.counters["safety_stale_command"] >= 150
        assert st.setpoint_cp == pytest.approx(before.setpoint_cp, abs=1e-9)  # stayed put
    assert arm.alive()


def test_unknown_driver_is_a_clear_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "slave_arm.cli", "--driver", "nope", "--bind", free_tcp_endpoint()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "kinematic" in proc.stderr


def test_list_drivers() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "slave_arm.cli", "--list-drivers"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "kinematic" in proc.stdout and "sim" in proc.stdout


@pytest.mark.slow
def test_console_drives_the_simulated_arm_and_sees_state_force_and_video() -> None:
    a = ArmProcess("sim")
    try:
        frames = []
        with ConsoleLink(
            LinkConfig(endpoint=a.endpoint), name="alice", on_video=lambda f, t: frames.append(f)
        ) as link:
            assert link.welcome.arm.camera.width == 320
            link.service_until(now_ns() + 300_000_000)
            home = link.latest_state.state.setpoint_cp
            target = (home[0] + 0.01, *home[1:])
            engage(link, pose=home)
            stream(link, [target] * 400)
            link.service_until(now_ns() + 200_000_000)
            st = link.latest_state.state
            assert st.operating_state == "ENABLED"
            assert st.measured_cp[0] == pytest.approx(target[0], abs=5e-4)  # physics followed
            assert len(st.measured_cf) == 6 and max(abs(f) for f in st.measured_cf) < 1.0  # free
            assert len(st.measured_js.position) == 7
            # the camera process may take seconds to start on a cold machine; then ~30 fps
            link.service_until(now_ns() + 20_000_000_000, lambda: len(frames) >= 10)
            first = len(frames)
            link.service_until(now_ns() + 1_000_000_000)
            assert len(frames) - first >= 20  # ~30 fps once it runs
        assert len(frames) >= 10
        assert frames[-1].data[:2] == b"\xff\xd8"  # JPEG
    finally:
        assert a.stop() == 0


def test_cli_refuses_a_non_loopback_bind_without_keys() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slave_arm.cli",
            "--driver",
            "kinematic",
            "--bind",
            "tcp://0.0.0.0:5599",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "refusing to bind" in proc.stderr and "--insecure" in proc.stderr


@pytest.mark.slow
def test_cli_serves_with_curve_keys(tmp_path) -> None:
    from network.security import ClientSecurity, generate_keypair

    _, arm_secret = generate_keypair(tmp_path / "keys", "arm")
    alice_public, alice_secret = generate_keypair(tmp_path / "keys", "alice")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "alice.key").write_bytes(alice_public.read_bytes())
    a = ArmProcess("kinematic", "--server-key", str(arm_secret), "--allowed-clients", str(allowed))
    try:
        sec = ClientSecurity(alice_secret, tmp_path / "keys" / "arm.key")
        with ConsoleLink(LinkConfig(endpoint=a.endpoint), name="alice", security=sec) as link:
            engage(link)
            stream(link, [offset(0.005)] * 60)
            assert link.latest_state.state.setpoint_cp[0] == pytest.approx(0.005, abs=1e-6)
    finally:
        assert a.stop() == 0
