"""The ZeroMQ link between real processes: handshake, newest-wins commands, one controller,
observers, heartbeats, bad input, transports, and the monitor against injected impairment."""

from __future__ import annotations

import random
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq

from network.impairment import ImpairmentProfile
from network.link import (
    ArmLink,
    ConsoleLink,
    LinkConfig,
    LinkError,
    LinkRejected,
    LinkTimeout,
    channel_endpoints,
    free_tcp_endpoint,
)
from network.monitor import Health, MonitorConfig
from network.protocol import (
    Command,
    Hello,
    Reject,
    State,
    Welcome,
    decode,
    encode,
)
from tests.test_protocol import malformed_cases

POSE = (0.01, -0.02, -0.1, 0.0, 0.0, 0.0, 1.0)


def now_ns() -> int:
    return time.monotonic_ns()


def stream(link: ConsoleLink, n: int, rate_hz: float = 1000.0) -> list[Command]:
    """Send n commands on absolute deadlines, servicing the link in between."""
    sent = []
    period = int(1e9 / rate_hz)
    deadline = now_ns()
    for i in range(n):
        sent.append(link.send_command((0.001 * i, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0), 0.2))
        deadline += period
        link.service_until(deadline)
    return sent


def settle(link: ConsoleLink, seconds: float) -> None:
    link.service_until(now_ns() + int(seconds * 1e9))


@pytest.mark.slow
def test_console_drives_arm_process_over_tcp(echo_process) -> None:
    arm = echo_process()
    states: list[State] = []
    with ConsoleLink(
        LinkConfig(endpoint=arm.endpoint), name="alice", on_state=lambda s, t: states.append(s)
    ) as link:
        assert link.welcome is not None
        assert link.welcome.role == "controller" and link.welcome.version == 1
        assert link.welcome.arm.dof == 7 and link.welcome.arm.name == "example-rcm-arm"
        sent = stream(link, 300)
        settle(link, 0.2)
        # every command was answered, in order, with the target it carried
        acked = {s.ack_seq: s for s in states if s.ack_seq}
        assert set(acked) == {c.seq for c in sent}
        for c in sent:
            assert acked[c.seq].ack_send_ns == c.send_ns
            assert acked[c.seq].setpoint_cp == c.servo_cp
        assert link.latest_state is not None and link.latest_state.state.ack_seq == sent[-1].seq
        st = link.stats()
        assert st.health == Health.OK
        assert st.rx.lost == 0 and st.rx.duplicates == 0
        assert 0 < st.rtt_ms.p50 < 50  # loopback
        # the arm reports what it received of our stream: all of it
        counters = link.latest_state.state.counters
        assert counters["cmd_received"] >= 300 and counters["stream_lost"] == 0
        assert counters["stream_received"] >= 300  # commands and heartbeats
    assert arm.alive()


@pytest.mark.slow
def test_second_controller_is_rejected_and_observers_watch(echo_process) -> None:
    arm = echo_process()
    cfg = LinkConfig(endpoint=arm.endpoint)
    with ConsoleLink(cfg, name="alice") as a:
        b = ConsoleLink(cfg, name="bob")
        with pytest.raises(LinkRejected) as ei:
            b.connect(timeout_s=3)
        assert ei.value.code == "busy"
        assert "alice" in ei.value.reason and "observer" in ei.value.reason
        seen: list[list[int]] = [[], []]
        observers = [
            ConsoleLink(
                cfg,
                role="observer",
                name=f"obs{i}",
                on_state=lambda s, t, i=i: seen[i].append(s.ack_seq),
            )
            for i in range(2)
        ]
        for o in observers:
            assert o.connect(timeout_s=3).role == "observer"
            with pytest.raises(LinkError, match="observer"):
                o.send_command(POSE)
        settle(observers[0], 0.1)  # let the subscriptions settle
        sent = stream(a, 50)
        settle(a, 0.1)
        for i, o in enumerate(observers):
            settle(o, 0.1)
            assert set(seen[i]) >= {c.seq for c in sent[5:]}, "observer missed states"
            o.close()
    # alice said bye: bob may control now, well before alice could have timed out (2 s)
    b2 = ConsoleLink(cfg, name="bob")
    assert b2.connect(timeout_s=1.0).role == "controller"
    b2.close()


@pytest.mark.slow
def test_silent_controller_loses_control(echo_process) -> None:
    arm = echo_process("--controller-timeout-ms", "300")
    cfg = LinkConfig(endpoint=arm.endpoint)
    a = ConsoleLink(cfg, name="alice")
    a.connect()
    stream(a, 20)
    time.sleep(0.6)  # alice stops servicing her link: no commands, no heartbeats
    with ConsoleLink(cfg, name="bob") as b:
        assert b.welcome.role == "controller"
        # alice's late commands are refused with a reason, not applied
        a.send_command(POSE)
        a.service_until(now_ns() + 300_000_000, lambda: a.rejected is not None)
        assert a.rejected is not None and a.rejected.code == "not_controller"
        assert "bob" in a.rejected.reason
    a.close()


@pytest.mark.slow
def test_heartbeats_keep_an_idle_link_measured(echo_process) -> None:
    arm = echo_process()
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint, heartbeat_interval_ms=10.0)) as link:
        settle(link, 0.5)  # no commands at all
        st = link.stats()
        assert link.counters["tx_heartbeats"] >= 20
        assert link.counters["rx_heartbeats"] >= 10
        assert st.rtt_ms.count >= 5, "heartbeat echoes give round trips while idle"
        assert st.health == Health.OK


@pytest.mark.slow
def test_waiting_sleeps_instead_of_spinning(echo_process) -> None:
    """An observer (no heartbeat timer) and an idle controller wait in select, not in a spin."""
    arm = echo_process()
    cfg = LinkConfig(endpoint=arm.endpoint)
    with ConsoleLink(cfg, name="alice") as ctl, ConsoleLink(cfg, role="observer") as obs:
        for link in (obs, ctl):
            cpu0 = time.process_time()
            settle(link, 0.5)
            cpu = time.process_time() - cpu0
            assert cpu < 0.2, f"{link.role} used {cpu:.2f} s of CPU in 0.5 s of waiting"


@pytest.mark.slow
def test_link_lost_when_the_arm_dies(echo_process) -> None:
    arm = echo_process()
    mcfg = MonitorConfig(lost_silence_ms=150.0, degraded_silence_ms=50.0)
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint), monitor_config=mcfg) as link:
        stream(link, 50)
        assert link.health() == Health.OK
        arm.kill()
        t0 = now_ns()
        while link.health() != Health.LOST and now_ns() - t0 < 2e9:
            link.send_command(POSE)
            link.service_until(now_ns() + 1_000_000)
        elapsed_ms = (now_ns() - t0) / 1e6
        assert link.health() == Health.LOST
        assert 140 <= elapsed_ms < 600
        assert any(h == Health.LOST for _, h, _ in link.monitor.health_events)


def _raw_dealer(endpoint: str) -> tuple[zmq.Context, zmq.Socket]:
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.linger = 0
    d.connect(channel_endpoints(endpoint).control)
    return ctx, d


def _recv(sock: zmq.Socket, timeout_ms: int = 2000) -> list[bytes] | None:
    if sock.poll(timeout_ms):
        return sock.recv_multipart()
    return None


@pytest.mark.slow
def test_arm_survives_a_flood_of_malformed_messages(echo_process) -> None:
    arm = echo_process()
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint), name="alice") as link:
        stream(link, 20)
        ctx, rogue = _raw_dealer(arm.endpoint)
        try:
            time.sleep(0.2)
            cases = malformed_cases(3000, seed=7)
            rng = random.Random(3)
            for frames in cases:
                rogue.send_multipart(frames)
            for _ in range(500):
                rogue.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 100))))
            # a well-formed command from a console that never said hello: refused, not applied
            rogue.send_multipart(
                encode(Command(10**6, now_ns(), "servo_cp", POSE, 0.0, True, True))
            )
            reply = None
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                got = _recv(rogue, 100)
                if got is not None:
                    msg = decode(got)
                    # malformed hellos got version rejects; wait for the command's answer
                    if isinstance(msg, Reject) and msg.code == "not_controller":
                        reply = msg
                        break
            assert reply is not None and reply.code == "not_controller"
            # the real console still works, and the arm counted every bad message
            sent = stream(link, 100)
            settle(link, 0.3)
            st = link.latest_state.state
            assert st.ack_seq == sent[-1].seq
            assert st.counters["msg_rejected"] >= 3000 + 500 - 10  # a few bit patterns may be valid
            assert st.counters["cmd_not_controller"] >= 1
            assert st.setpoint_cp == sent[-1].servo_cp  # the rogue command was never applied
        finally:
            rogue.close()
            ctx.term()
    assert arm.alive()


@pytest.mark.slow
def test_incompatible_version_gets_a_reject_naming_both(echo_process) -> None:
    arm = echo_process()
    ctx, d = _raw_dealer(arm.endpoint)
    try:
        time.sleep(0.1)
        hello = msgpack.unpackb(encode(Hello(now_ns(), "controller", "future"))[0])
        hello["v"] = 7
        hello["versions"] = [7]
        d.send(msgpack.packb(hello))
        rej = decode(_recv(d))
        assert isinstance(rej, Reject) and rej.code == "version"
        assert "7" in rej.reason and "1" in rej.reason and rej.supported_versions == (1,)
        # a v1 hello offering only newer versions is refused the same way
        d.send(encode(Hello(now_ns(), "controller", "future", (2, 3)))[0])
        rej = decode(_recv(d))
        assert isinstance(rej, Reject) and rej.code == "version" and "[2, 3]" in rej.reason
    finally:
        d.close()
        ctx.term()


@pytest.mark.slow
def test_version_negotiation_picks_the_highest_common(echo_process) -> None:
    arm = echo_process()
    ctx, d = _raw_dealer(arm.endpoint)
    try:
        time.sleep(0.1)
        # a future console speaking 1..3 writes its hello in the lowest (PROTOCOL.md 4.3)
        d.send(encode(Hello(now_ns(), "observer", "future", (3, 1, 2)))[0])
        welcome = decode(_recv(d))
        assert isinstance(welcome, Welcome) and welcome.version == 1
    finally:
        d.close()
        ctx.term()


def _serve_one_welcome(endpoint: str, welcome: bytes, stop: threading.Event) -> None:
    """A fake arm: answers every hello on the control channel with ``welcome``."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.bind(channel_endpoints(endpoint).control)
    try:
        while not stop.is_set():
            if router.poll(20):
                identity, _hello = router.recv_multipart()
                router.send_multipart([identity, welcome])
    finally:
        router.close()
        ctx.term()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("v", 2, "the arm answered in protocol version 2; this console speaks [1]"),
        ("version", 5, "the arm chose protocol version 5, which this console did not offer"),
    ],
    ids=["envelope", "chosen"],
)
def test_console_refuses_an_arm_speaking_another_version(
    echo_process, field: str, value: int, words: str
) -> None:
    arm = echo_process()  # a real welcome to alter
    ctx, d = _raw_dealer(arm.endpoint)
    try:
        time.sleep(0.1)
        d.send(encode(Hello(now_ns(), "observer", "probe"))[0])
        welcome = msgpack.unpackb(_recv(d)[0])
    finally:
        d.close()
        ctx.term()
    welcome[field] = value
    endpoint = free_tcp_endpoint()
    stop = threading.Event()
    fake = threading.Thread(
        target=_serve_one_welcome, args=(endpoint, msgpack.packb(welcome), stop), daemon=True
    )
    fake.start()
    link = ConsoleLink(LinkConfig(endpoint=endpoint))
    try:
        t0 = time.monotonic()
        with pytest.raises(LinkRejected, match="version") as err:
            link.connect(timeout_s=3.0)
        assert words in str(err.value)
        assert time.monotonic() - t0 < 1.0  # at once, not after the handshake timeout
    finally:
        stop.set()
        fake.join()


@pytest.mark.slow
def test_malformed_hello_gets_bad_request(echo_process) -> None:
    arm = echo_process()
    ctx, d = _raw_dealer(arm.endpoint)
    try:
        time.sleep(0.1)
        hello = msgpack.unpackb(encode(Hello(now_ns(), "controller", "x"))[0])
        hello["role"] = "surgeon"
        d.send(msgpack.packb(hello))
        rej = decode(_recv(d))
        assert isinstance(rej, Reject) and rej.code == "bad_request" and "role" in rej.reason
    finally:
        d.close()
        ctx.term()


def test_arm_heartbeats_flow_while_only_video_is_sent() -> None:
    """Video frames must not count as state-channel traffic for the heartbeat timer."""
    cfg = LinkConfig(endpoint=free_tcp_endpoint(), heartbeat_interval_ms=10.0)
    stop = threading.Event()

    def arm_loop() -> None:  # the arm publishes video at ~200 Hz and no state at all
        with ArmLink(cfg) as arm:
            while not stop.is_set():
                arm.publish_video(b"\xff\xd8jpeg", 4, 3, now_ns())
                arm.service_until(now_ns() + 5_000_000)

    t = threading.Thread(target=arm_loop, daemon=True)
    t.start()
    try:
        with ConsoleLink(cfg, subscribe_video=True) as console:
            settle(console, 0.4)
            assert console.counters["rx_video"] > 20
            assert console.counters["rx_heartbeats"] >= 15
            assert console.health() == Health.OK
    finally:
        stop.set()
        t.join(timeout=5)


def test_restarted_controller_can_start_its_seq_again(arm_thread) -> None:
    cfg = LinkConfig(endpoint=free_tcp_endpoint())
    arm = arm_thread(cfg)
    with ConsoleLink(cfg, name="alice") as link:
        stream(link, 50)
        # the same client (same routing id) restarts: hello again, seq from 1
        link.welcome = None
        link._seq = 0
        link._send(link._ctrl, encode(Hello(now_ns(), "controller", "alice")), now_ns())
        link.service_until(now_ns() + 1_000_000_000, lambda: link.welcome is not None)
        assert link.welcome is not None
        sent = stream(link, 20)
        settle(link, 0.1)
        assert sent[0].seq == 1
        assert link.latest_state.state.ack_seq == sent[-1].seq  # not dropped as outdated
    assert arm.link.counters["cmd_outdated"] == 0


def test_arm_shutdown_tells_the_controller(arm_thread) -> None:
    cfg = LinkConfig(endpoint=free_tcp_endpoint())
    arm = arm_thread(cfg)
    with ConsoleLink(cfg) as link:
        stream(link, 10)
        stopper = threading.Thread(target=arm.stop)  # the console keeps servicing meanwhile
        stopper.start()
        link.service_until(now_ns() + 1_000_000_000, lambda: link.rejected is not None)
        stopper.join()
        assert link.rejected is not None and link.rejected.code == "shutting_down"


@pytest.mark.slow
def test_ipc_transport(echo_process, tmp_path) -> None:
    arm = echo_process(endpoint=f"ipc://{tmp_path}/arm")
    with ConsoleLink(LinkConfig(endpoint=arm.endpoint)) as link:
        sent = stream(link, 50)
        settle(link, 0.1)
        assert link.latest_state.state.ack_seq == sent[-1].seq


def test_inproc_transport(arm_thread) -> None:
    ctx = zmq.Context.instance()
    cfg = LinkConfig(endpoint="inproc://arm-test")
    arm = arm_thread(cfg, context=ctx)
    with ConsoleLink(cfg, context=ctx) as link:
        sent = stream(link, 50)
        settle(link, 0.1)
        assert link.latest_state.state.ack_seq == sent[-1].seq
    arm.stop()


def test_connect_timeout_says_what_to_check() -> None:
    link = ConsoleLink(LinkConfig(endpoint=free_tcp_endpoint()))
    with pytest.raises(LinkTimeout, match=r"slave-arm.*running"):
        link.connect(timeout_s=0.3)


def test_bad_targets_are_refused_before_sending(arm_thread) -> None:
    cfg = LinkConfig(endpoint=free_tcp_endpoint())
    arm_thread(cfg)
    with ConsoleLink(cfg) as link:
        for bad in ([0, 0, float("nan"), 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 2], [0, 0, 0]):
            with pytest.raises(ValueError):
                link.send_command(bad)
        assert link.counters["tx_commands"] == 0


def test_config_validation() -> None:
    assert channel_endpoints("tcp://127.0.0.1:5570") == (
        "tcp://127.0.0.1:5570",
        "tcp://127.0.0.1:5571",
        "tcp://127.0.0.1:5572",
    )
    assert channel_endpoints("tcp://[::1]:6000").video == "tcp://[::1]:6002"
    assert channel_endpoints("ipc:///tmp/a").state == "ipc:///tmp/a.state"
    for bad in ("tcp://host", "udp://x:1", "tcp://h:65535", "ipc://", "5570"):
        with pytest.raises(ValueError):
            channel_endpoints(bad)
    with pytest.raises(ValueError, match="heartbeat_interval_ms"):
        LinkConfig(heartbeat_interval_ms=0)


# ---------------------------------------------------------------------------------------------
# The monitor's figures against known injected impairment, over real sockets
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_monitor_measures_injected_delay_jitter_and_loss(echo_process) -> None:
    arm = echo_process()
    profile = ImpairmentProfile(name="test", delay_ms=40.0, jitter_ms=2.0, loss=0.05)
    mcfg = MonitorConfig(window=4096)
    rtts: dict[int, float] = {}

    def on_state(st: State, rx_ns: int) -> None:
        if st.ack_seq and st.ack_seq not in rtts:
            rtts[st.ack_seq] = (rx_ns - st.ack_send_ns) / 1e6

    with ConsoleLink(
        LinkConfig(endpoint=arm.endpoint),
        impairment=profile,
        seed=11,
        monitor_config=mcfg,
        on_state=on_state,
    ) as link:
        sent = {c.seq for c in stream(link, 3000)}
        settle(link, 0.3)
        st = link.stats()
    assert set(rtts) <= sent
    rtt = np.array(list(rtts.values()))
    # round trip: two directions of 40 ms; jitter adds sd 2 ms per direction
    assert abs(st.rtt_total_ms.p50 - 80.0) < 2.0
    assert abs(float(np.median(rtt)) - 80.0) < 2.0
    assert 2.0 < float(np.std(rtt)) < 4.5  # sqrt(2) * 2 ms, clipped/queued a little
    # one-way latencies, offset-corrected
    assert abs(st.tx.latency_ms.p50 - 40.0) < 2.0 and abs(st.rx.latency_ms.p50 - 40.0) < 2.0
    assert abs(st.clock_offset_ms) < 2.0  # one machine: one clock
    # RFC 3550 jitter of a normal delay with sd s: about 2s/sqrt(pi) = 2.26 ms; 1 kHz sending
    # with 2 ms jitter reorders, which lowers it a little
    assert 1.0 < st.rx.jitter_ms < 3.0
    # loss: 5 % each way; the downlink monitor sees its own, the arm reports the uplink's
    assert 0.03 < st.rx.loss < 0.07
    assert 0.03 < st.tx.loss < 0.07
    # round-trip loss: 1 - 0.95^2
    assert 0.06 < 1 - len(rtts) / 3000 < 0.135
    assert st.rx.reordered > 0  # jitter reorders, like netem
