"""ZeroMQ link endpoints: :class:`ConsoleLink` (surgeon side) and :class:`ArmLink` (patient side).

Sockets (``docs/PROTOCOL.md`` has the full description):

=========  ==============================  ==========================================
channel    arm side (binds)                console side (connects)
=========  ==============================  ==========================================
control    ROUTER  ``tcp://HOST:PORT``      DEALER: hello, command, heartbeat, bye out;
                                            welcome, reject in
state      PUB     ``tcp://HOST:PORT+1``    SUB: state and heartbeat at the control rate
video      PUB     ``tcp://HOST:PORT+2``    SUB: encoded endoscope frames
=========  ==============================  ==========================================

For ``ipc://PATH`` and ``inproc://NAME`` the three channels are ``PATH.control``, ``PATH.state``
and ``PATH.video``.

Newest wins in the control path: no request/reply lockstep; the arm drains every command that
arrived and keeps the one with the highest sequence number; stale, duplicate and out-of-order ones
are dropped and counted. Video travels on its own socket so it never delays commands or state.

Each endpoint is single-threaded: the owner calls :meth:`service_until` (or a ``wait_*`` helper)
from its loop. Waiting inside it sleeps in ``select`` on the sockets' file descriptors until
shortly before the deadline and then spins, so message arrival times are taken when messages
arrive (not at the next tick) and a 1 kHz loop keeps its deadlines. The in-process impairment
emulator (:mod:`network.impairment`) delays, drops and reorders messages in both directions.
"""

from __future__ import annotations

import logging
import math
import os
import re
import select
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import zmq

from network.impairment import Impairment, ImpairmentProfile
from network.monitor import Health, LatencyMonitor, LinkStats, MonitorConfig
from network.protocol import (
    SUPPORTED_VERSIONS,
    ArmDescription,
    Bye,
    Command,
    Heartbeat,
    Hello,
    JointState,
    Message,
    Pose,
    ProtocolError,
    Reject,
    State,
    VideoFrame,
    Welcome,
    Wrench,
    check_pose,
    decode,
    encode,
)
from network.realtime import zmq_context
from network.security import ClientSecurity, ServerSecurity, check_bind_allowed

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5570"
_MAX_DRAIN = 512  # messages taken from one socket per pump, so a flood cannot starve the loop


class LinkError(RuntimeError):
    """The link could not be set up or used."""


class LinkRejected(LinkError):
    """The arm refused this console; ``code`` is the reject code, ``reason`` its words."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"the arm rejected this console ({code}): {reason}")
        self.code = code
        self.reason = reason


class LinkTimeout(LinkError):
    """No answer from the arm in time."""


@dataclass(frozen=True)
class LinkConfig:
    """Link settings shared by both sides. Units are in the names."""

    endpoint: str = DEFAULT_ENDPOINT
    heartbeat_interval_ms: float = 20.0
    controller_timeout_ms: float = 2000.0
    handshake_timeout_ms: float = 5000.0
    hello_retry_ms: float = 250.0
    spin_us: float = 100.0
    command_hwm: int = 100
    state_hwm: int = 1000
    video_hwm: int = 4
    close_notice_ms: float = 50.0
    io_rt_priority: int | None = None  # SCHED_FIFO for ZeroMQ's I/O thread where permitted

    def __post_init__(self) -> None:
        channel_endpoints(self.endpoint)  # validates the form
        for name in ("heartbeat_interval_ms", "controller_timeout_ms", "handshake_timeout_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LinkConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.spin_us < 0:
            raise ValueError(f"LinkConfig.spin_us must be >= 0, got {self.spin_us}")
        p = self.io_rt_priority
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 99):
            raise ValueError(f"LinkConfig.io_rt_priority must be None or 1..99, got {p!r}")


class Channels(NamedTuple):
    control: str
    state: str
    video: str


_TCP = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/\[\]]+):(?P<port>\d+)$")


def channel_endpoints(endpoint: str) -> Channels:
    """The three channel endpoints derived from the base endpoint (see the module docstring)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        if endpoint.endswith("/") or endpoint.rstrip("/") in ("ipc:", "inproc:"):
            raise ValueError(f"bad endpoint {endpoint!r}: give a path or name after the scheme")
        return Channels(f"{endpoint}.control", f"{endpoint}.state", f"{endpoint}.video")
    m = _TCP.match(endpoint)
    if not m:
        raise ValueError(
            f"bad endpoint {endpoint!r}: expected tcp://HOST:PORT (PORT, PORT+1 and PORT+2 are "
            "used), ipc://PATH or inproc://NAME"
        )
    host, port = m.group("host"), int(m.group("port"))
    if not 1 <= port <= 65533:
        raise ValueError(f"bad port {port} in {endpoint!r}: need 1..65533 (PORT+2 is used too)")
    return Channels(*(f"tcp://{host}:{port + i}" for i in range(3)))


def free_tcp_endpoint(host: str = "127.0.0.1", tries: int = 50) -> str:
    """A ``tcp://HOST:PORT`` whose PORT..PORT+2 were free a moment ago (for tests, benchmarks)."""
    import random
    import socket

    rng = random.Random()
    for _ in range(tries):
        port = rng.randrange(20000, 60000)
        socks = []
        try:
            for i in range(3):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, port + i))
            return f"tcp://{host}:{port}"
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise LinkError(f"found no three consecutive free ports on {host}")


class ReceivedCommand(NamedTuple):  # a NamedTuple: built for every command, it must be cheap
    """A command as the arm received it: ``rx_ns`` is the arm's receive time (arm clock)."""

    command: Command
    rx_ns: int


class ReceivedState(NamedTuple):
    """A state as the console received it: ``rx_ns`` is the console's receive time."""

    state: State
    rx_ns: int


@dataclass
class ControllerInfo:
    """The console that holds control of the arm."""

    name: str
    identity: bytes
    session: str
    since_ns: int
    last_rx_ns: int
    public_key: str = ""


def _user_id(frame: Any) -> str:
    """The ZAP User-Id of a received frame (the CURVE public key, z85), or ""."""
    try:
        return frame.get("User-Id") or ""
    except (zmq.ZMQError, AttributeError):
        return ""


class RateLimitedLog:
    """Logs the first few occurrences, then at most one summary per interval."""

    def __init__(self, logger: logging.Logger, first: int = 5, interval_s: float = 1.0) -> None:
        self._log = logger
        self._first = first
        self._interval_ns = int(interval_s * 1e9)
        self._count = 0
        self._suppressed = 0
        self._last_ns = 0

    def warning(self, now_ns: int, msg: str, *args: Any) -> None:
        self._count += 1
        if self._count <= self._first or now_ns - self._last_ns >= self._interval_ns:
            if self._suppressed:
                msg = msg + f" (and {self._suppressed} more since the last report)"
            self._log.warning(msg, *args)
            self._last_ns = now_ns
            self._suppressed = 0
        else:
            self._suppressed += 1


_EVENTS = int(zmq.EVENTS)  # plain ints: pyzmq's enum arithmetic costs ~1 µs per use
_POLLIN = int(zmq.POLLIN)
_FD = int(zmq.FD)
_NOBLOCK = int(zmq.NOBLOCK)


def readable(sock: zmq.Socket) -> bool:
    """True when ``sock`` has a message to receive now."""
    return bool(sock.get(_EVENTS) & _POLLIN)


def wait_readable(
    socks: Sequence[zmq.Socket], timeout_s: float, fds: Sequence[int] | None = None
) -> None:
    """Sleep until one of ``socks`` may have a message, or ``timeout_s`` passes (µs resolution).

    Uses the sockets' ZMQ_FD in ``select`` (``zmq.Poller`` only has millisecond timeouts). The
    descriptor is edge-triggered, so the sockets' EVENTS are checked first.
    """
    for s in socks:
        if s.get(_EVENTS) & _POLLIN:
            return
    if timeout_s > 0:
        select.select(fds if fds is not None else [s.get(_FD) for s in socks], [], [], timeout_s)


class _Endpoint:
    """What both sides share: sockets, impairment queues, the monitor and the service loop."""

    def __init__(
        self,
        config: LinkConfig | None,
        impairment: ImpairmentProfile | None,
        seed: int,
        monitor_config: MonitorConfig | None,
        context: zmq.Context | None,
        clock_ns: Callable[[], int],
    ) -> None:
        config = config or LinkConfig()
        self.config = config
        self.channels = channel_endpoints(config.endpoint)
        self._clock = clock_ns
        self._own_context = context is None
        self._ctx = context
        self.monitor = LatencyMonitor(monitor_config or MonitorConfig(), clock_ns)
        self.impairment = impairment
        active = impairment is not None and not impairment.is_null
        self._tx_imp = Impairment(impairment, seed * 2 + 1) if active else None  # type: ignore[arg-type]
        self._rx_imp = Impairment(impairment, seed * 2 + 2) if active else None  # type: ignore[arg-type]
        self.counters: Counter[str] = Counter()
        self.reject_reasons: Counter[str] = Counter()
        self._bad_log = RateLimitedLog(log)
        self._rx: list[tuple[zmq.Socket, str]] = []
        self._rx_socks: list[zmq.Socket] = []
        self._rx_fds: list[int] = []
        self._socks: list[zmq.Socket] = []
        self._spin_ns = int(config.spin_us * 1000)
        self._hb_interval_ns = int(config.heartbeat_interval_ms * 1e6)
        self._last_stream_tx_ns = 0  # last command/state/heartbeat sent: the heartbeat timer
        self._closed = False
        self._keep_frames = False

    # -- sockets -----------------------------------------------------------------------------
    def _socket(self, kind: int, **opts: Any) -> zmq.Socket:
        if self._ctx is None:
            self._ctx = zmq_context(self.config.io_rt_priority)
        sock = self._ctx.socket(kind)
        sock.linger = 0
        for name, value in opts.items():
            sock.setsockopt(getattr(zmq, name), value)
        self._socks.append(sock)
        return sock

    def _set_rx(self, rx: list[tuple[zmq.Socket, str]]) -> None:
        self._rx = rx
        self._rx_socks = [sock for sock, _ in rx]
        self._rx_fds = [sock.get(_FD) for sock in self._rx_socks]

    def close(self, linger_ms: int = 0) -> None:
        """Close the sockets (and the context, if this endpoint made it). Idempotent.

        ``linger_ms`` lets a last message (bye, shutting_down) leave before the sockets go.
        """
        if self._closed:
            return
        self._closed = True
        for s in self._socks:
            s.close(linger=linger_ms)
        self._socks.clear()
        self._set_rx([])
        if self._own_context and self._ctx is not None:
            self._ctx.term()

    # -- sending -----------------------------------------------------------------------------
    def _send(self, sock: zmq.Socket, frames: list[bytes], now_ns: int) -> None:
        if self._tx_imp is None:
            self._send_now(sock, frames)
        elif not self._tx_imp.submit(now_ns, (sock, frames), sum(len(f) for f in frames)):
            self.counters["tx_impairment_dropped"] += 1

    def _send_now(self, sock: zmq.Socket, frames: list[bytes]) -> None:
        try:
            if len(frames) == 1:
                sock.send(frames[0], _NOBLOCK)
            else:
                sock.send_multipart(frames, _NOBLOCK)
        except zmq.Again:
            self.counters["tx_dropped_no_peer"] += 1

    # -- receiving ---------------------------------------------------------------------------
    def _pump(self) -> int:
        """Take every message that arrived, release due impairment items; return the time."""
        clock = self._clock
        rx_imp = self._rx_imp
        for sock, channel in self._rx:
            n = 0
            while n < _MAX_DRAIN and sock.get(_EVENTS) & _POLLIN:
                # small messages are faster copied; frames are kept only to read CURVE User-Id
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=not self._keep_frames)
                now = clock()
                n += 1
                if rx_imp is None:
                    self._handle(channel, frames, now)
                elif not rx_imp.submit(now, (channel, frames), sum(len(f) for f in frames)):
                    self.counters["rx_impairment_dropped"] += 1
        now = clock()
        if rx_imp is not None:
            for channel, frames in rx_imp.pop_due(now):
                self._handle(channel, frames, clock())
        if self._tx_imp is not None:
            for sock, frames in self._tx_imp.pop_due(now):
                self._send_now(sock, frames)
        self._periodic(now)
        return now

    def _handle(self, channel: str, frames: list[Any], rx_ns: int) -> None:
        raise NotImplementedError

    def _periodic(self, now_ns: int) -> None:
        """Heartbeats and timeouts; called on every pump."""

    def _sends_heartbeats(self) -> bool:
        """Whether this endpoint keeps a heartbeat timer now (so the wait must wake for it)."""
        return False

    def _decode(self, frames: Sequence[bytes], rx_ns: int) -> Message | None:
        try:
            return decode(frames)
        except ProtocolError as exc:
            self._count_bad(exc.reason, rx_ns)
            return None

    def _count_bad(self, reason: str, now_ns: int) -> None:
        self.counters["rx_rejected"] += 1
        key = reason if len(reason) <= 120 else reason[:117] + "..."
        self.reject_reasons[key] += 1
        self._bad_log.warning(now_ns, "rejected a message: %s", reason)

    # -- the service loop --------------------------------------------------------------------
    def service_until(self, deadline_ns: int, until: Callable[[], bool] | None = None) -> bool:
        """Service the link until ``deadline_ns`` (this endpoint's clock), or until ``until()``.

        Returns True if ``until`` became true, False at the deadline. Sleeps in ``select`` until
        ``spin_us`` before the next event it knows of (deadline, impairment release, heartbeat),
        then spins, so arrivals are handled as they come and deadlines are met to a few µs.
        """
        if self._closed:
            raise LinkError("the link is closed")
        spin = self._spin_ns
        rx_socks, fds = self._rx_socks, self._rx_fds
        while True:
            now = self._pump()
            if until is not None and until():
                return True
            if now >= deadline_ns:
                return False
            wake = deadline_ns
            if self._sends_heartbeats():
                wake = min(wake, self._last_stream_tx_ns + self._hb_interval_ns)
            for imp in (self._rx_imp, self._tx_imp):
                if imp is not None:
                    nr = imp.next_release_ns()
                    if nr is not None and nr < wake:
                        wake = nr
            remaining = wake - now
            if remaining > spin:
                wait_readable(rx_socks, (remaining - spin) * 1e-9, fds)

    def poll(self) -> None:
        """Service the link once without waiting."""
        self.service_until(0)

    def stats(self) -> LinkStats:
        return self.monitor.stats(self._clock())

    def health(self) -> Health:
        return self.monitor.health(self._clock())

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# =============================================================================================
# Console side
# =============================================================================================
class ConsoleLink(_Endpoint):
    """The surgeon side of the link: connects to an arm, streams commands, receives state/video.

    ``role="observer"`` watches state and video without controlling. Use as a context manager
    (``with ConsoleLink(cfg) as link:`` connects and says bye on exit) or call :meth:`connect`.
    ``on_state(state, rx_ns)`` / ``on_video(frame, rx_ns)`` are called for every valid message, in
    the order the link takes them, from inside :meth:`service_until`.
    """

    def __init__(
        self,
        config: LinkConfig | None = None,
        *,
        role: str = "controller",
        name: str = "console",
        security: ClientSecurity | None = None,
        impairment: ImpairmentProfile | None = None,
        seed: int = 0,
        monitor_config: MonitorConfig | None = None,
        subscribe_video: bool = True,
        on_state: Callable[[State, int], None] | None = None,
        on_video: Callable[[VideoFrame, int], None] | None = None,
        context: zmq.Context | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if role not in ("controller", "observer"):
            raise ValueError(f"role must be 'controller' or 'observer', got {role!r}")
        super().__init__(config, impairment, seed, monitor_config, context, clock_ns)
        self.role = role
        self.name = name
        self.security = security
        self.subscribe_video = subscribe_video
        self.on_state = on_state
        self.on_video = on_video
        self.welcome: Welcome | None = None
        self.rejected: Reject | None = None
        self._version_mismatch: str | None = None  # the arm answered in a version not spoken
        self.handshake_rtt_ms = float("nan")
        self.latest_state: ReceivedState | None = None
        self.latest_video: tuple[VideoFrame, int] | None = None
        self._seq = 0
        self._echo = (0, 0, 0)  # newest state-channel message: seq, send_ns, our rx_ns
        self._newest_state_seq = -1
        self._newest_video_seq = -1
        self._last_ack_seq = 0
        self._ctrl: zmq.Socket | None = None
        self._hello_ns = 0

    def __enter__(self) -> ConsoleLink:
        self.connect()
        return self

    # -- handshake ---------------------------------------------------------------------------
    def connect(self, timeout_s: float | None = None) -> Welcome:
        """Open the sockets, say hello and wait for the welcome.

        Raises :class:`LinkRejected` if the arm refuses (e.g. another console controls it) and
        :class:`LinkTimeout` if it does not answer within ``timeout_s`` (default from config).
        """
        if self._ctrl is not None:
            raise LinkError("already connected")
        ch = self.channels
        self._ctrl = self._socket(
            zmq.DEALER,
            ROUTING_ID=b"c" + os.urandom(8),
            IMMEDIATE=1,
            SNDHWM=self.config.command_hwm,
        )
        state = self._socket(zmq.SUB, RCVHWM=self.config.state_hwm)
        subs = [(state, "state")]
        if self.subscribe_video:
            subs.append((self._socket(zmq.SUB, RCVHWM=self.config.video_hwm), "video"))
        for sock in self._socks:
            if self.security is not None:
                self.security.apply(sock)
        self._ctrl.connect(ch.control)
        for sock, channel in subs:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(getattr(ch, channel))
        self._set_rx([(self._ctrl, "control"), *subs])

        timeout_s = self.config.handshake_timeout_ms / 1e3 if timeout_s is None else timeout_s
        start = self._clock()
        deadline = start + int(timeout_s * 1e9)
        retry_ns = int(self.config.hello_retry_ms * 1e6)
        while True:
            now = self._clock()
            self._hello_ns = now
            hello = Hello(now, self.role, self.name[:64], SUPPORTED_VERSIONS)
            self._send(self._ctrl, encode(hello), now)
            got = self.service_until(
                min(deadline, now + retry_ns),
                lambda: bool(self.welcome or self.rejected or self._version_mismatch),
            )
            if got:
                break
            if self._clock() >= deadline:
                self.close()
                raise LinkTimeout(
                    f"no answer from the arm at {self.config.endpoint} within {timeout_s:g} s: "
                    "is `slave-arm` running there and reachable? With CURVE keys, is this "
                    "console's public key in the arm's allowed-clients directory and is the "
                    "arm's public key the right one?"
                )
        if self.rejected is not None:
            rej = self.rejected
            self.close()
            raise LinkRejected(rej.code, rej.reason)
        if self._version_mismatch is not None:
            self.close()
            raise LinkRejected("version", self._version_mismatch)
        assert self.welcome is not None
        if self.welcome.version not in SUPPORTED_VERSIONS:
            chosen = self.welcome.version
            self.close()
            raise LinkRejected(
                "version",
                f"the arm chose protocol version {chosen}, which this console did not offer "
                f"(it speaks {list(SUPPORTED_VERSIONS)}): the arm broke the negotiation",
            )
        # send heartbeats at least as often as the arm asks
        hb_ms = min(self.config.heartbeat_interval_ms, self.welcome.heartbeat_interval_ms)
        self._hb_interval_ns = int(hb_ms * 1e6)
        log.info(
            "connected to arm %r as %s (protocol v%d, handshake %.2f ms)",
            self.welcome.arm.name,
            self.welcome.role,
            self.welcome.version,
            self.handshake_rtt_ms,
        )
        return self.welcome

    def close(self) -> None:
        """Say bye (best effort, not impaired) and close."""
        linger_ms = 0
        if self._ctrl is not None and not self._closed and self.welcome is not None:
            self._send_now(self._ctrl, encode(Bye(self._clock(), "console closed")))
            linger_ms = 200
            time.sleep(self.config.close_notice_ms / 1e3)  # see ArmLink.close
        super().close(linger_ms)

    # -- sending -----------------------------------------------------------------------------
    def send_command(
        self,
        servo_cp: Sequence[float],
        servo_jaw: float = 0.0,
        *,
        mode: str = "servo_cp",
        clutch_engaged: bool = True,
        operator_present: bool = True,
    ) -> Command:
        """Stream one absolute target: a pose (x, y, z in m; qx, qy, qz, qw) and jaw (rad).

        Returns the command as sent (its ``seq`` and ``send_ns``). Raises ``ValueError`` for a
        non-finite pose or a non-unit quaternion, and :class:`LinkError` when not the controller.
        """
        if self.welcome is None or self._ctrl is None:
            raise LinkError("not connected: call connect() first")
        if self.welcome.role != "controller":
            raise LinkError("this console is an observer and cannot send commands")
        pose = check_pose(servo_cp, "servo_cp")
        now = self._clock()
        self._seq += 1
        cmd = Command(
            self._seq,
            now,
            mode,
            pose,
            float(servo_jaw),
            bool(clutch_engaged),
            bool(operator_present),
            *self._echo,
        )
        self._send(self._ctrl, encode(cmd), now)
        self._last_stream_tx_ns = now
        self.counters["tx_commands"] += 1
        return cmd

    def _sends_heartbeats(self) -> bool:
        return self.welcome is not None and self.welcome.role == "controller" and not self._closed

    def _periodic(self, now_ns: int) -> None:
        if self._sends_heartbeats() and now_ns - self._last_stream_tx_ns >= self._hb_interval_ns:
            self._seq += 1
            self._send(self._ctrl, encode(Heartbeat(self._seq, now_ns, *self._echo)), now_ns)
            self._last_stream_tx_ns = now_ns
            self.counters["tx_heartbeats"] += 1

    # -- receiving ---------------------------------------------------------------------------
    def _handle(self, channel: str, frames: list[Any], rx_ns: int) -> None:
        try:
            msg = decode(frames)
        except ProtocolError as exc:
            self._count_bad(exc.reason, rx_ns)
            if channel == "control" and exc.code == "version" and self.welcome is None:
                self._version_mismatch = (
                    f"the arm answered in protocol version {exc.peer_version}; this console "
                    f"speaks {list(SUPPORTED_VERSIONS)}: update the older side"
                )
            return
        t = type(msg)
        if channel == "state":
            if t is State:
                self._on_state(msg, rx_ns)  # type: ignore[arg-type]
            elif t is Heartbeat:
                self._on_stream(msg.seq, msg.send_ns, rx_ns)  # type: ignore[attr-defined]
                self._on_ack(msg.echo_seq, msg.echo_send_ns, msg.echo_rx_ns, msg.send_ns, rx_ns)  # type: ignore[attr-defined]
                self.counters["rx_heartbeats"] += 1
            else:
                self._count_bad(f"unexpected {msg.TYPE} message on the state channel", rx_ns)
        elif channel == "video" and t is VideoFrame:
            self.counters["rx_video"] += 1
            if msg.seq > self._newest_video_seq:  # type: ignore[attr-defined]
                self._newest_video_seq = msg.seq  # type: ignore[attr-defined]
                self.latest_video = (msg, rx_ns)  # type: ignore[assignment]
            if self.on_video is not None:
                self.on_video(msg, rx_ns)  # type: ignore[arg-type]
        elif channel == "control" and t is Welcome:
            if self.welcome is None:
                self.welcome = msg  # type: ignore[assignment]
                self.handshake_rtt_ms = (rx_ns - msg.hello_send_ns) / 1e6  # type: ignore[attr-defined]
        elif channel == "control" and t is Reject:
            self.counters["rx_rejects"] += 1
            if self.welcome is not None:
                log.error("the arm says %s: %s", msg.code, msg.reason)  # type: ignore[attr-defined]
            self.rejected = msg  # type: ignore[assignment]
        else:
            self._count_bad(f"unexpected {msg.TYPE} message on the {channel} channel", rx_ns)

    def _on_stream(self, seq: int, send_ns: int, rx_ns: int) -> str:
        kind = self.monitor.on_receive(seq, send_ns, rx_ns)
        if seq > self._echo[0]:
            self._echo = (seq, send_ns, rx_ns)
        return kind

    def _on_ack(self, seq: int, t1: int, t2: int, t3: int, t4: int) -> None:
        if seq > self._last_ack_seq:
            self._last_ack_seq = seq
            self.monitor.on_ack(t1, t2, t3, t4)

    def _on_state(self, st: State, rx_ns: int) -> None:
        self.counters["rx_states"] += 1
        kind = self._on_stream(st.seq, st.send_ns, rx_ns)
        if kind == "duplicate":
            return
        self._on_ack(st.ack_seq, st.ack_send_ns, st.ack_rx_ns, st.send_ns, rx_ns)
        c = st.counters
        if "stream_received" in c:
            self.monitor.on_peer_counters(
                c["stream_received"],
                c.get("stream_lost", 0),
                c.get("stream_reordered", 0),
                c.get("stream_duplicate", 0),
            )
        if st.seq > self._newest_state_seq:
            self._newest_state_seq = st.seq
            self.latest_state = ReceivedState(st, rx_ns)
        if self.on_state is not None:
            self.on_state(st, rx_ns)

    def wait_state(self, deadline_ns: int, newer_than: int = -1) -> ReceivedState | None:
        """Service until a state with ``seq > newer_than`` is the newest, or the deadline."""
        self.service_until(deadline_ns, lambda: self._newest_state_seq > newer_than)
        latest = self.latest_state
        return latest if latest is not None and latest.state.seq > newer_than else None


# =============================================================================================
# Arm side
# =============================================================================================
class ArmLink(_Endpoint):
    """The patient side of the link: binds the channels, admits one controlling console.

    The owner (the arm server) calls :meth:`service_until` or :meth:`wait_command` in its loop,
    takes the newest command with :meth:`take_command`, and publishes state and video.
    ``on_command(received)`` is called for every valid command from the controller as it
    arrives (before newest-wins selection), e.g. for recording or an echo.
    """

    def __init__(
        self,
        config: LinkConfig | None = None,
        arm: ArmDescription | None = None,
        *,
        security: ServerSecurity | None = None,
        insecure: bool = False,
        impairment: ImpairmentProfile | None = None,
        seed: int = 0,
        monitor_config: MonitorConfig | None = None,
        on_command: Callable[[ReceivedCommand], None] | None = None,
        context: zmq.Context | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        super().__init__(config, impairment, seed, monitor_config, context, clock_ns)
        self.on_command = on_command
        self.arm = arm or ArmDescription.example()
        self.security = security
        self.insecure = insecure
        self._keep_frames = security is not None
        self.controller: ControllerInfo | None = None
        self.controller_epoch = 0
        """Counts controller hellos: a change means a (re)started controller numbering anew."""
        self._auth: Any = None
        self._router: zmq.Socket | None = None
        self._state_pub: zmq.Socket | None = None
        self._video_pub: zmq.Socket | None = None
        self._state_seq = 0
        self._video_seq = 0
        self._newest_cmd_seq = 0
        self._pending: ReceivedCommand | None = None
        self._applied: ReceivedCommand | None = None
        self._echo = (0, 0, 0)  # newest message from the controller: seq, send_ns, our rx_ns
        self._last_echo_seq = 0
        self._not_ctrl_reply_ns: dict[bytes, int] = {}
        self._timeout_ns = int(self.config.controller_timeout_ms * 1e6)

    def __enter__(self) -> ArmLink:
        self.bind()
        return self

    def bind(self) -> Channels:
        """Bind the three channels. Refuses a non-loopback bind without keys unless insecure."""
        check_bind_allowed(self.config.endpoint, self.security is not None, self.insecure)
        if self._ctx is None:
            self._ctx = zmq_context(self.config.io_rt_priority)
        if self.security is not None:
            self._auth = self.security.start(self._ctx)
        self._router = self._socket(zmq.ROUTER, ROUTER_HANDOVER=1, RCVHWM=10000)
        self._state_pub = self._socket(zmq.PUB, SNDHWM=self.config.state_hwm)
        self._video_pub = self._socket(zmq.PUB, SNDHWM=self.config.video_hwm)
        ch = self.channels
        try:
            for sock, ep in zip(self._socks, ch, strict=True):
                if self.security is not None:
                    self.security.apply(sock)
                sock.bind(ep)
        except zmq.ZMQError as exc:
            self.close()
            raise LinkError(
                f"cannot bind {self.config.endpoint} ({exc}); is another arm server using "
                "these ports? Pick another with --bind tcp://HOST:PORT (PORT..PORT+2 are used)"
            ) from exc
        self._set_rx([(self._router, "control")])
        log.info("arm link bound: control %s, state %s, video %s", *ch)
        return ch

    def close(self) -> None:
        """Tell the controlling console (best effort, not impaired), then close."""
        linger_ms = 0
        if self.controller is not None and self._router is not None and not self._closed:
            rej = self._reject(0, "shutting_down", "the arm server is shutting down")
            self._send_now(self._router, [self.controller.identity, *encode(rej)])
            linger_ms = 200
            # ZeroMQ drops what a peer has not read yet when the connection closes: give the
            # console a moment to take the notice
            time.sleep(self.config.close_notice_ms / 1e3)
        if self._auth is not None:  # before the context ends: its sockets live in it
            self._auth.stop()
            self._auth = None
        super().close(linger_ms)

    # -- commands ----------------------------------------------------------------------------
    def take_command(self) -> ReceivedCommand | None:
        """The newest valid command not taken yet (older ones were dropped), or None.

        The taken command becomes the one acknowledged in published state, unless
        :meth:`publish_state` is told otherwise.
        """
        cmd = self._pending
        if cmd is not None:
            self._pending = None
            self._applied = cmd
        return cmd

    def wait_command(self, deadline_ns: int) -> ReceivedCommand | None:
        """Service until a new command arrives (then take it) or the deadline passes."""
        self.service_until(deadline_ns, lambda: self._pending is not None)
        return self.take_command()

    def command_age_ns(self, received: ReceivedCommand, now_ns: int | None = None) -> int:
        """How old a command is now, by the link's clock-offset estimate (send time to now)."""
        now = self._clock() if now_ns is None else now_ns
        offset = self.monitor.clock_offset_ns  # console clock - arm clock; NaN before any ack
        send_local = received.command.send_ns - (0 if math.isnan(offset) else int(offset))
        return now - send_local

    # -- publishing --------------------------------------------------------------------------
    def link_counters(self) -> dict[str, int]:
        """The counters the arm reports in every state.

        ``stream_*`` count the controlling console's stream (commands and heartbeats, one seq
        counter) since it took control: from them the console learns its uplink loss. The others
        count since the arm started.
        """
        rx = self.monitor.rx_counts()
        c = self.counters
        return {
            "stream_received": rx.received,
            "stream_lost": rx.lost,
            "stream_reordered": rx.reordered,
            "stream_duplicate": rx.duplicates,
            "cmd_received": c["cmd_received"],
            "cmd_outdated": c["cmd_outdated"],
            "cmd_not_controller": c["cmd_not_controller"],
            "msg_rejected": c["rx_rejected"],
        }

    def publish_state(
        self,
        *,
        operating_state: str,
        measured_cp: Pose,
        setpoint_cp: Pose,
        measured_js: JointState,
        measured_cf: Wrench,
        measured_jaw: float,
        is_homed: bool = True,
        is_busy: bool = False,
        safety_flags: Sequence[str] = (),
        counters: dict[str, int] | None = None,
        ack: ReceivedCommand | bool | None = True,
    ) -> State:
        """Publish one state to every subscriber; returns it as sent.

        ``ack=True`` acknowledges the command last returned by :meth:`take_command`; pass a
        :class:`ReceivedCommand` (or None) when the applied command differs. ``counters`` are
        merged with :meth:`link_counters`.
        """
        if self._state_pub is None:
            raise LinkError("not bound: call bind() first")
        applied = self._applied if ack is True else ack
        now = self._clock()
        self._state_seq += 1
        all_counters = self.link_counters()
        if counters:
            all_counters.update(counters)
        if isinstance(applied, ReceivedCommand):
            ack_fields = (applied.command.seq, applied.command.send_ns, applied.rx_ns)
        else:
            ack_fields = (0, 0, 0)
        st = State(
            self._state_seq,
            now,
            *ack_fields,
            operating_state,
            bool(is_homed),
            bool(is_busy),
            tuple(measured_cp),  # type: ignore[arg-type]
            tuple(setpoint_cp),  # type: ignore[arg-type]
            measured_js,
            tuple(measured_cf),  # type: ignore[arg-type]
            float(measured_jaw),
            tuple(safety_flags),
            all_counters,
        )
        self._send(self._state_pub, encode(st), now)
        self._last_stream_tx_ns = now
        self.counters["tx_states"] += 1
        return st

    def publish_video(
        self, data: bytes, width: int, height: int, capture_ns: int, encoding: str = "jpeg"
    ) -> VideoFrame:
        """Publish one encoded frame on the video channel (dropped for slow subscribers)."""
        if self._video_pub is None:
            raise LinkError("not bound: call bind() first")
        now = self._clock()
        self._video_seq += 1
        frame = VideoFrame(self._video_seq, capture_ns, now, encoding, width, height, bytes(data))
        self._send(self._video_pub, encode(frame), now)
        self.counters["tx_video"] += 1
        return frame

    def _sends_heartbeats(self) -> bool:
        return self._state_pub is not None and not self._closed

    def _periodic(self, now_ns: int) -> None:
        if self._sends_heartbeats() and now_ns - self._last_stream_tx_ns >= self._hb_interval_ns:
            self._state_seq += 1
            self._send(
                self._state_pub, encode(Heartbeat(self._state_seq, now_ns, *self._echo)), now_ns
            )
            self._last_stream_tx_ns = now_ns
            self.counters["tx_heartbeats"] += 1
        ctl = self.controller
        if ctl is not None and now_ns - ctl.last_rx_ns > self._timeout_ns:
            self._release(f"silent for {(now_ns - ctl.last_rx_ns) / 1e6:.0f} ms", logging.WARNING)
            self.counters["controller_timeouts"] += 1

    def _release(self, why: str, level: int) -> None:
        """Free the controller slot; nothing of that console's is acknowledged or applied after."""
        ctl = self.controller
        if ctl is not None:
            log.log(level, "console %r %s: control released", ctl.name, why)
        self.controller = None
        self._pending = None
        self._applied = None

    # -- control channel ---------------------------------------------------------------------
    def _reply(self, identity: bytes, msg: Message) -> None:
        assert self._router is not None
        self._send(self._router, [identity, *encode(msg)], self._clock())

    def _handle(self, channel: str, frames: list[Any], rx_ns: int) -> None:
        if len(frames) < 2:
            self._count_bad("control message without a routing frame", rx_ns)
            return
        key = ""
        if self._keep_frames:  # CURVE: zmq.Frames, whose User-Id is the console's public key
            key = _user_id(frames[-1])
            frames = [f.bytes for f in frames]
        identity = frames[0]
        payload = frames[1:]
        try:
            msg = decode(payload)
        except ProtocolError as exc:
            self._count_bad(exc.reason, rx_ns)
            if exc.msg_type == "hello":  # say why, so the console need not wait for a timeout
                code = "version" if exc.code == "version" else "bad_request"
                self._reply(identity, self._reject(0, code, exc.reason))
            return
        t = type(msg)
        ctl = self.controller
        # with CURVE, the controller is its routing id AND its key: another allowed key that
        # presents the same routing id (ROUTER_HANDOVER) does not become the controller
        is_ctl = ctl is not None and ctl.identity == identity and ctl.public_key == key
        if t is Command or t is Heartbeat:
            if not is_ctl:
                self._from_non_controller(identity, msg, rx_ns)
                return
            assert ctl is not None
            ctl.last_rx_ns = rx_ns
            self._on_stream(msg, rx_ns)  # type: ignore[arg-type]
        elif t is Hello:
            self._on_hello(identity, key, msg, is_ctl, rx_ns)  # type: ignore[arg-type]
        elif t is Bye:
            if is_ctl:
                self._release("said bye", logging.INFO)
            self.counters["rx_bye"] += 1
        else:
            self._count_bad(f"a console may not send {msg.TYPE} messages", rx_ns)

    def _on_stream(self, msg: Command | Heartbeat, rx_ns: int) -> None:
        seq = msg.seq
        if type(msg) is Command and seq > self._newest_cmd_seq:
            # The usual case, a new newest command: hand it on first, do the accounting after,
            # so an echo or a recorder sees it with the least delay.
            self.counters["cmd_received"] += 1
            received = ReceivedCommand(msg, rx_ns)
            self._newest_cmd_seq = seq
            if self._pending is not None:
                self.counters["cmd_superseded"] += 1
            self._pending = received
            if self.on_command is not None:
                self.on_command(received)
            self.monitor.on_receive(seq, msg.send_ns, rx_ns)
        else:
            kind = self.monitor.on_receive(seq, msg.send_ns, rx_ns)
            if type(msg) is Command:
                self.counters["cmd_received"] += 1
                self.counters["cmd_outdated"] += 1  # duplicate or overtaken: never applied
                if self.on_command is not None and kind != "duplicate":
                    self.on_command(ReceivedCommand(msg, rx_ns))
            else:
                self.counters["rx_heartbeats"] += 1
        if seq > self._echo[0]:
            self._echo = (seq, msg.send_ns, rx_ns)
        if msg.echo_seq > self._last_echo_seq:
            self._last_echo_seq = msg.echo_seq
            self.monitor.on_ack(msg.echo_send_ns, msg.echo_rx_ns, msg.send_ns, rx_ns)

    def _from_non_controller(self, identity: bytes, msg: Message, rx_ns: int) -> None:
        self.counters["cmd_not_controller"] += 1
        last = self._not_ctrl_reply_ns.get(identity, 0)
        if rx_ns - last >= 1_000_000_000:  # answer at most once a second per peer
            if len(self._not_ctrl_reply_ns) > 1000:
                self._not_ctrl_reply_ns.clear()
            self._not_ctrl_reply_ns[identity] = rx_ns
            who = f"console {self.controller.name!r}" if self.controller else "no console"
            self._reply(
                identity,
                self._reject(
                    0,
                    "not_controller",
                    f"this console does not control the arm ({who} does): send a hello with "
                    "role 'controller' first",
                ),
            )

    def _reject(self, hello_send_ns: int, code: str, reason: str) -> Reject:
        return Reject(self._clock(), hello_send_ns, code, reason[:256], SUPPORTED_VERSIONS)

    def _on_hello(self, identity: bytes, key: str, hello: Hello, is_ctl: bool, rx_ns: int) -> None:
        common = sorted(set(hello.versions) & set(SUPPORTED_VERSIONS))
        if not common:
            self.counters["hello_rejected"] += 1
            self._reply(
                identity,
                self._reject(
                    hello.send_ns,
                    "version",
                    f"console speaks protocol versions {list(hello.versions)}; this arm speaks "
                    f"{list(SUPPORTED_VERSIONS)}",
                ),
            )
            return
        ctl = self.controller
        role = hello.role
        if role == "controller":
            if ctl is not None and not is_ctl:
                self.counters["hello_rejected"] += 1
                log.warning(
                    "refused console %r: console %r controls the arm", hello.client_name, ctl.name
                )
                self._reply(
                    identity,
                    self._reject(
                        hello.send_ns,
                        "busy",
                        f"the arm is controlled by console {ctl.name!r} (for "
                        f"{(rx_ns - ctl.since_ns) / 1e9:.0f} s); connect as an observer, or "
                        "wait until it leaves or goes silent for "
                        f"{self.config.controller_timeout_ms:.0f} ms",
                    ),
                )
                return
            if ctl is None:
                ctl = ControllerInfo(
                    hello.client_name, identity, os.urandom(8).hex(), rx_ns, rx_ns, key
                )
                self.controller = ctl
                log.info("console %r took control (session %s)", ctl.name, ctl.session)
            # a new controller, or the same one saying hello again (a restarted client may
            # start its seq anew): its stream is counted from here
            self.controller_epoch += 1
            self.monitor.reset()
            self._newest_cmd_seq = 0
            self._pending = None
            self._applied = None
            self._echo = (0, 0, 0)
            self._last_echo_seq = 0
            ctl.last_rx_ns = rx_ns
            session = ctl.session
        else:
            session = os.urandom(8).hex()
        self.counters["hello_accepted"] += 1
        self._reply(
            identity,
            Welcome(
                self._clock(),
                hello.send_ns,
                role,
                common[-1],
                session,
                self.arm,
                self.config.heartbeat_interval_ms,
                self.config.controller_timeout_ms,
            ),
        )
