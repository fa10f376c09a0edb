"""The surgeon's display: endoscope video, instrument force, link health and console state.

The display runs in its **own process** at lowered priority (``os.nice(10)``), so decoding JPEG
and drawing with matplotlib can never slow the 1 kHz console loop. The loop talks to it through
a :class:`DisplayFeed`, whose publishing calls cost a few microseconds and never block::

    with DisplayFeed(DisplayConfig(mode="auto")) as feed:      # spawns the display process
        source = TelemetrySource(link)
        # in ConsoleLoop._on_video (called by the link for every frame):
        #     feed.publish_frame(frame, rx_ns)
        while running:                                          # the 1 kHz loop
            ...
            feed.publish_telemetry(lambda: source(None, loop_flags))
            for key in feed.keys():                             # cheap; empty most ticks
                keyboard.press(key.name) if key.down else keyboard.release(key.name)

``publish_telemetry`` is rate-limited inside to ``refresh_hz``: on a tick where it is not yet
time it returns after one clock read and one comparison (~0.1 µs), and a callable argument is
only called when it is time, so the loop does not even build the dict on other ticks.
:meth:`DisplayFeed.keys` looks at its socket at most every 2 ms. ``loop_flags`` should hold
values the loop has at hand: a p99 of the loop's lateness over its whole history costs
milliseconds (compute it over a short recent window, or once a second).

Transport (console process -> display process), and why
--------------------------------------------------------
Four ZeroMQ sockets over ``ipc://`` in a private temporary directory; the console side binds.

* **video** and **telemetry**: PUSH -> PULL with ``ZMQ_CONFLATE`` on both ends. A conflating
  socket keeps exactly one message, the newest, in its queue, which is the semantics a display
  wants (newest wins, nothing ever queues). A send is ``zmq.NOBLOCK``: if the display process is
  hung, stopped (SIGSTOP) or not started yet, the message replaces the queued one or is dropped
  (counted), and the call returns at once. Memory is bounded by one message per socket plus the
  kernel's socket buffer, however long the display is stalled.
* **control** (quit, snapshot now, toggle stats): PUSH -> PULL, small high-water mark, not
  conflated (a command must not be replaced by another), ``NOBLOCK`` (dropped when full).
* **events** (display -> console: key presses and releases, ready, snapshot written, window
  closed): PUSH -> PULL, high-water mark 1000 both sides, ``NOBLOCK`` on the display side, so an
  unread backlog is bounded too. :meth:`DisplayFeed.keys` drains it without waiting.

Why not shared memory with a seqlock: it would save the ZeroMQ I/O thread's copy (~30 kB per
frame at 30 fps, negligible), but the reader would have to poll it, a writer stopped in the
middle of a write leaves a torn record to detect, and it needs a second mechanism for the key
events anyway. ZeroMQ gives newest-wins (CONFLATE), non-blocking sends, a pollable descriptor
for the display's wait, and the same library the link already uses. A send copies the message
once into ZeroMQ (pyzmq's zero-copy path would start a garbage-collector thread in the console
process).

Telemetry dict (what :meth:`DisplayFeed.publish_telemetry` takes)
-----------------------------------------------------------------
Every key is optional; a missing key, ``None`` or a non-finite number renders as "n/a". Units
are in the names. :func:`telemetry_from` builds it from the real link and state objects.

======================  ===========  ==========================================================
key                     type         meaning
======================  ===========  ==========================================================
``t_ns``                int          console ``time.monotonic_ns()`` when the dict was built
``health``              str          link health: ``"OK"``, ``"DEGRADED"`` or ``"LOST"``
``health_reasons``      list[str]    why it is not OK (``LinkStats.health_reasons``)
``rtt_p50_ms``          float        network round trip p50 (``LinkStats.rtt_ms``, without the
                                     arm's hold time), recent window
``rtt_p99_ms``          float        network round trip p99
``jitter_ms``           float        RFC 3550 interarrival jitter of the state stream (arm ->
                                     console)
``loss_pct``            float        loss of the state stream (arm -> console), %, recent window
``tx_loss_pct``         float        loss of the command stream (console -> arm), %, as the arm
                                     reports it, recent window
``one_way_ms``          float        one-way latency of commands, console -> arm, p50 (clock-
                                     offset corrected)
``state_age_ms``        float        age of the newest arm state received
``clock_offset_ms``     float        arm clock minus console clock (for the video latency)
``force_n``             [3] float    force on the instrument fx, fy, fz (N), tool frame
                                     (``State.measured_cf[:3]``)
``torque_nm``           [3] float    torque tx, ty, tz (N·m) (``State.measured_cf[3:]``)
``max_force_n``         float        the arm's force limit: the gauge's scale (overrides
                                     ``DisplayConfig.max_force_n``)
``jaw_rad``             float        measured jaw angle (rad)
``operating_state``     str          ``DISABLED`` / ``ENABLED`` / ``PAUSED`` / ``FAULT``
``flags``               list[str]    the arm's active safety interventions
                                     (``State.safety_flags``, e.g. ``watchdog_hold``)
``clutch``              bool         the clutch is engaged (master coupled to the arm)
``operator_present``    bool         the surgeon-presence sensor
``armed``               bool         the arm has seen the clutch out, so engaging moves it
``lost``                bool         the console stopped motion because the link was LOST
                                     (a release and re-engage of the clutch is needed)
``commands_applied``    int          commands the arm acknowledged as applied (cumulative)
``loop_lateness_p99_us``  float      console loop wake-up lateness p99 (µs)
======================  ===========  ==========================================================

Keys
----
In window mode the display forwards every key press and release to the console
(:meth:`DisplayFeed.keys`) with the names the :class:`~master_console.devices.KeyboardDevice`
understands (``"space"``, ``"up"``, ``"a"``, ``"escape"``, ...). matplotlib's own shortcuts
(``s`` save, ``q`` quit, ``p`` pan, ...) are switched off so they cannot clash with the
surgeon's keys. The display also acts on two keys itself: ``h`` hides/shows the link
statistics and ``f12`` writes a snapshot now (``s`` is a motion key of the keyboard device).
``escape`` and closing the window set :attr:`DisplayFeed.quit_requested`; what to do about it is
the console's decision. Suggested console shortcuts: ``space`` clutch toggle, ``p`` operator
present (both handled by ``KeyboardDevice``).

Run ``python -m master_console.display --demo --snapshot-dir DIR --seconds 3`` to see it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import numpy as np
import zmq

log = logging.getLogger(__name__)

MODES = ("auto", "window", "headless", "off")

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisplayConfig:
    """How the display runs and what it draws. Validated on construction (``ValueError``).

    Attributes:
        mode: ``"auto"`` (a window when a display is available: ``$DISPLAY`` or
            ``$WAYLAND_DISPLAY`` set and a GUI toolkit for matplotlib importable; else
            headless), ``"window"``, ``"headless"`` (renders only PNG snapshots) or ``"off"``
            (no process; publishing does nothing).
        refresh_hz: window redraw rate and the telemetry rate limit.
        snapshot_dir: where PNG snapshots go (headless always, window mode too when set);
            ``None``: no snapshots (headless then renders nothing).
        snapshot_every_s: time between snapshots.
        keep_snapshots: numbered snapshots kept (the newest N; older ones are deleted);
            ``latest.png`` is always kept and is always the newest.
        max_force_n: full scale of the force gauge (the arm's force limit), N.
        width_px, height_px: the figure's (and the snapshots') size in pixels.
    """

    mode: str = "auto"
    refresh_hz: float = 20.0
    snapshot_dir: str | None = None
    snapshot_every_s: float = 1.0
    keep_snapshots: int = 20
    max_force_n: float = 10.0
    width_px: int = 1280
    height_px: int = 720

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(
                f"DisplayConfig.mode must be one of {', '.join(MODES)}, got {self.mode!r}"
            )
        for name, lo, hi in (
            ("refresh_hz", 0.1, 240.0),
            ("snapshot_every_s", 0.02, 86400.0),
            ("max_force_n", 1e-6, 1e6),
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not lo <= value <= hi
            ):
                raise ValueError(
                    f"DisplayConfig.{name} must be a number in [{lo}, {hi}], got {value!r}"
                )
            object.__setattr__(self, name, float(value))
        for name, lo, hi in (
            ("keep_snapshots", 0, 100_000),
            ("width_px", 320, 7680),
            ("height_px", 240, 4320),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(
                    f"DisplayConfig.{name} must be an integer in [{lo}, {hi}], got {value!r}"
                )
        sd = self.snapshot_dir
        if sd is not None:
            if isinstance(sd, os.PathLike):
                sd = os.fspath(sd)
            if not isinstance(sd, str) or not sd.strip():
                raise ValueError(
                    f"DisplayConfig.snapshot_dir must be a directory path or None, got {sd!r}"
                )
            object.__setattr__(self, "snapshot_dir", sd)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DisplayConfig:
        """Build from a mapping (e.g. a TOML table); unknown keys are refused, naming the valid."""
        if not isinstance(d, Mapping):
            raise ValueError(f"DisplayConfig: expected a mapping, got {type(d).__name__}")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid), key=str)
        if unknown:
            raise ValueError(
                f"DisplayConfig: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(valid)}"
            )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_QT_MODULES = ("PyQt6", "PySide6", "PyQt5", "PySide2")


def display_available() -> bool:
    """True when a window can probably be opened: a display is named and a GUI toolkit exists.

    Cheap (environment and ``importlib.util.find_spec``; imports nothing). The display process
    still falls back to headless if opening the window fails.
    """
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return any(_has_module(m) for m in ("tkinter", *_QT_MODULES))


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def resolve_mode(mode: str) -> str:
    """``"auto"`` resolved to ``"window"`` or ``"headless"``; the other modes as they are."""
    if mode == "auto":
        return "window" if display_available() else "headless"
    return mode


# ---------------------------------------------------------------------------------------------
# Telemetry
# ---------------------------------------------------------------------------------------------

TELEMETRY_KEYS: tuple[str, ...] = (
    "t_ns",
    "health",
    "health_reasons",
    "rtt_p50_ms",
    "rtt_p99_ms",
    "jitter_ms",
    "loss_pct",
    "tx_loss_pct",
    "one_way_ms",
    "state_age_ms",
    "clock_offset_ms",
    "force_n",
    "torque_nm",
    "max_force_n",
    "jaw_rad",
    "operating_state",
    "flags",
    "clutch",
    "operator_present",
    "armed",
    "lost",
    "commands_applied",
    "loop_lateness_p99_us",
)
"""The telemetry keys the display knows (see the module docstring for types and units)."""

LOOP_KEYS: tuple[str, ...] = (
    "clutch",
    "operator_present",
    "armed",
    "lost",
    "commands_applied",
    "loop_lateness_p99_us",
)
"""The keys the console loop itself supplies to :func:`telemetry_from` (``loop_flags``)."""


def telemetry_from(
    link: Any,
    state: Any = None,
    loop_flags: Mapping[str, Any] | None = None,
    *,
    stats: Any = None,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """The telemetry dict from a :class:`network.link.ConsoleLink` and a :class:`State`.

    ``state`` defaults to ``link.latest_state.state``; ``stats`` (a ``LinkStats``) to
    ``link.stats()``, which costs ~0.1-0.3 ms: call this only when :meth:`DisplayFeed.
    telemetry_due` (or pass it as a callable to ``publish_telemetry``, which does that), or pass
    a ``stats`` computed anyway. ``loop_flags`` supplies the loop's own keys (:data:`LOOP_KEYS`:
    clutch, operator_present, armed, lost, commands_applied, loop_lateness_p99_us); any key of
    :data:`TELEMETRY_KEYS` in it overrides the computed one, other keys are ignored.
    """
    st = stats if stats is not None else link.stats()
    if state is None and getattr(link, "latest_state", None) is not None:
        state = link.latest_state.state
    t: dict[str, Any] = {
        "t_ns": time.monotonic_ns() if now_ns is None else int(now_ns),
        "health": str(st.health.value),
        "health_reasons": list(st.health_reasons),
        "rtt_p50_ms": st.rtt_ms.p50,
        "rtt_p99_ms": st.rtt_ms.p99,
        "jitter_ms": st.rx.jitter_ms,
        "loss_pct": 100.0 * st.rx.recent_loss,
        "tx_loss_pct": 100.0 * st.tx.recent_loss,
        "one_way_ms": st.tx.latency_ms.p50,
        "state_age_ms": st.rx.newest_age_ms,
        "clock_offset_ms": st.clock_offset_ms,
    }
    welcome = getattr(link, "welcome", None)
    if welcome is not None:
        t["max_force_n"] = float(welcome.arm.max_force_n)
    if state is not None:
        cf = state.measured_cf
        t["force_n"] = [float(cf[0]), float(cf[1]), float(cf[2])]
        t["torque_nm"] = [float(cf[3]), float(cf[4]), float(cf[5])]
        t["jaw_rad"] = float(state.measured_jaw)
        t["operating_state"] = str(state.operating_state)
        t["flags"] = list(state.safety_flags)
    if loop_flags:
        for k, v in loop_flags.items():
            if k in TELEMETRY_KEYS:
                t[k] = v
    return t


class TelemetrySource:
    """Builds the telemetry dict from a ConsoleLink cheaply enough for the 1 kHz loop.

    ``link.stats()`` (percentiles over the monitor's windows) costs ~0.1-0.3 ms; this calls it
    at most every ``stats_every_s``, and at once when ``link.health()`` (O(1), < 1 µs) says the
    health level changed, so the banner never shows a stale OK. Everything else is read fresh.
    Call it only when :meth:`DisplayFeed.telemetry_due`, or hand it to ``publish_telemetry``
    as a callable (``feed.publish_telemetry(lambda: source(state, flags))``).
    """

    def __init__(self, link: Any, stats_every_s: float = 0.25) -> None:
        if not stats_every_s >= 0:
            raise ValueError(f"stats_every_s must be >= 0, got {stats_every_s}")
        self.link = link
        self._period_ns = int(stats_every_s * 1e9)
        self._stats: Any = None
        self._next_ns = 0

    def __call__(
        self, state: Any = None, loop_flags: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        now = time.monotonic_ns()
        health = self.link.health()
        st = self._stats
        if st is None or now >= self._next_ns or health != st.health:
            st = self._stats = self.link.stats()
            self._next_ns = now + self._period_ns
        return telemetry_from(self.link, state, loop_flags, stats=st, now_ns=now)


def _enc_hook(obj: Any) -> Any:
    """msgspec: numpy scalars and arrays as plain Python values."""
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise NotImplementedError(f"cannot send a {type(obj).__name__} to the display")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)

# video message: one ZeroMQ frame (CONFLATE keeps single-part messages only) = header + JPEG.
# seq (the arm's, or the feed's count), n (the feed's count), capture_ns (arm clock), rx_ns
# (console clock: when the console received it), width, height
_VIDEO_HDR = struct.Struct("<QQQQII")


class KeyEvent(NamedTuple):
    """A key pressed (``down``) or released in the display window; ``t_ns``: display clock
    (``time.monotonic_ns``, the same clock as the console's on one machine)."""

    name: str
    down: bool
    t_ns: int


# ---------------------------------------------------------------------------------------------
# The console-side handle
# ---------------------------------------------------------------------------------------------

_NOBLOCK = int(zmq.NOBLOCK)
_EVENTS = int(zmq.EVENTS)  # plain ints: pyzmq's enum arithmetic costs ~1 µs a use
_POLLIN = int(zmq.POLLIN)
_KEYS_PERIOD_NS = 2_000_000
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)


class DisplayFeed:
    """The console's handle on the display process. See the module docstring.

    Publishing (:meth:`publish_telemetry`, :meth:`publish_video`) and :meth:`keys` are meant for
    the console loop's thread (ZeroMQ sockets are not thread-safe); they never block and never
    raise for a missing, hung or dead display. ``counters`` counts what was sent and dropped.
    """

    def __init__(self, config: DisplayConfig | None = None) -> None:
        self.config = config or DisplayConfig()
        self.mode = resolve_mode(self.config.mode)
        self.counters: collections.Counter[str] = collections.Counter()
        self.quit_requested = False
        self.ready = False
        self.backend = ""
        self.last_snapshot: str | None = None
        self.snapshots = 0  # snapshots the display reported written
        self._period_ns = int(1e9 / self.config.refresh_hz)
        self._next_tel_ns = 0
        self._video_n = 0
        self._next_keys_ns = 0
        self._proc: subprocess.Popen | None = None
        self._ctx: zmq.Context | None = None
        self._video: zmq.Socket | None = None
        self._tel: zmq.Socket | None = None
        self._ctl: zmq.Socket | None = None
        self._events: zmq.Socket | None = None
        self._dir: str | None = None
        self._error_logged = False

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> DisplayFeed:
        """Bind the sockets and spawn the display process (``python -m master_console.display``).

        Returns at once (the process needs ~1 s to import matplotlib; :meth:`wait_ready` waits
        for it). Does nothing in mode ``"off"``.
        """
        if self._proc is not None:
            raise RuntimeError("the display is already started")
        if self.mode == "off":
            return self
        self._bind_all()
        try:
            cfg = dataclasses.replace(self.config, mode=self.mode)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (_PROJECT_ROOT, env.get("PYTHONPATH", "")) if p
            )
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, "1")  # no thread pools competing with the loop
            if self.mode == "headless":
                env["MPLBACKEND"] = "Agg"
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "master_console.display",
                    "--serve",
                    "--ipc-dir",
                    self._dir,
                    "--config",
                    json.dumps(cfg.to_dict()),
                    "--parent-pid",
                    str(os.getpid()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        except BaseException:
            self._close_sockets()
            raise
        log.info("display process %d started (%s)", self._proc.pid, self.mode)
        return self

    def _bind_all(self) -> str:
        """Make the private directory and bind the four sockets in it; returns the directory."""
        self._dir = tempfile.mkdtemp(prefix="ts-display-")
        ctx = self._ctx = zmq.Context(1)
        try:
            self._video = self._bind(ctx, zmq.PUSH, "video", CONFLATE=1)
            self._tel = self._bind(ctx, zmq.PUSH, "telemetry", CONFLATE=1)
            self._ctl = self._bind(ctx, zmq.PUSH, "control", SNDHWM=16)
            self._events = self._bind(ctx, zmq.PULL, "events", RCVHWM=1000)
        except BaseException:
            self._close_sockets()
            raise
        return self._dir

    def _bind(self, ctx: zmq.Context, kind: int, name: str, **opts: int) -> zmq.Socket:
        sock = ctx.socket(kind)
        sock.linger = 0
        for opt, value in opts.items():
            sock.setsockopt(getattr(zmq, opt), value)
        assert self._dir is not None
        sock.bind(f"ipc://{self._dir}/{name}")
        return sock

    def stop(self, timeout_s: float = 2.0) -> None:
        """Ask the display process to quit; kill it if it has not exited in ``timeout_s``.

        Idempotent; no exception if the process already died (its exit status is logged).
        """
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                self._send_control({"cmd": "quit"})
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning(
                        "display process %d did not quit within %.1f s: killing it",
                        proc.pid,
                        timeout_s,
                    )
                    proc.kill()
                    proc.wait()
            elif proc.returncode != 0:
                log.warning("display process %d had exited (status %s)", proc.pid, proc.returncode)
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in (self._video, self._tel, self._ctl, self._events):
            if sock is not None:
                sock.close(linger=0)
        self._video = self._tel = self._ctl = self._events = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> DisplayFeed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive(self) -> bool:
        """True while the display process runs (False in mode ``"off"`` or before start)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def wait_ready(self, timeout_s: float = 20.0) -> bool:
        """Wait until the display process has its figure up (True), or dies or times out."""
        deadline = time.monotonic() + timeout_s
        while not self.ready:
            dead = self._proc is not None and self._proc.poll() is not None
            if dead or self._events is None or time.monotonic() >= deadline:
                return False
            self._drain_events(wait_ms=50)
        return True

    # -- publishing (the 1 kHz loop) -----------------------------------------------------------
    def telemetry_due(self, now_ns: int | None = None) -> bool:
        """Whether :meth:`publish_telemetry` would send now (the refresh period has passed)."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        return now >= self._next_tel_ns and self._tel is not None

    def publish_telemetry(
        self,
        telemetry: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        now_ns: int | None = None,
    ) -> bool:
        """Send telemetry if a refresh period has passed since the last send; True if sent.

        ``telemetry`` is the dict (module docstring) or a callable returning it, called only
        when it is time. Never blocks; newest wins; errors (a value that cannot be encoded) are
        counted and logged once, never raised.
        """
        now = time.monotonic_ns() if now_ns is None else now_ns
        if now < self._next_tel_ns:
            return False
        sock = self._tel
        if sock is None:
            return False
        self._next_tel_ns = now + self._period_ns
        try:
            if callable(telemetry):
                telemetry = telemetry()
            data = _ENCODER.encode(telemetry)
        except Exception as exc:  # never take the control loop down for the display
            self.counters["telemetry_errors"] += 1
            if not self._error_logged:
                self._error_logged = True
                log.error("display telemetry not sent: %s", exc)
            return False
        try:
            sock.send(data, _NOBLOCK)
        except zmq.ZMQError:  # Again: no display connected (yet); others: closing
            self.counters["telemetry_dropped"] += 1
            return False
        self.counters["telemetry_sent"] += 1
        return True

    def publish_video(
        self,
        jpeg: bytes,
        width: int,
        height: int,
        capture_ns: int,
        *,
        seq: int | None = None,
        rx_ns: int | None = None,
    ) -> bool:
        """Send one JPEG frame (newest wins: a frame the display has not taken is replaced).

        ``capture_ns`` is the arm's capture time (arm clock); ``seq`` the frame's sequence
        number (default: the feed's count); ``rx_ns`` when the console received it (default:
        now). Never blocks; True if handed to ZeroMQ.
        """
        sock = self._video
        if sock is None:
            return False
        self._video_n += 1
        n = self._video_n
        try:
            header = _VIDEO_HDR.pack(
                n if seq is None else seq,
                n,
                capture_ns,
                time.monotonic_ns() if rx_ns is None else rx_ns,
                width,
                height,
            )
            sock.send(header + jpeg, _NOBLOCK)
        except zmq.ZMQError:
            self.counters["video_dropped"] += 1
            return False
        except (struct.error, TypeError) as exc:
            self.counters["video_errors"] += 1
            if not self._error_logged:
                self._error_logged = True
                log.error("display video frame not sent: %s", exc)
            return False
        self.counters["video_sent"] += 1
        return True

    def publish_frame(self, frame: Any, rx_ns: int | None = None) -> bool:
        """:meth:`publish_video` for a :class:`network.protocol.VideoFrame` (``link.on_video``)."""
        return self.publish_video(
            frame.data, frame.width, frame.height, frame.capture_ns, seq=frame.seq, rx_ns=rx_ns
        )

    def request_snapshot(self) -> bool:
        """Ask the display to write a snapshot now (needs ``snapshot_dir``)."""
        return self._send_control({"cmd": "snapshot"})

    def toggle_stats(self) -> bool:
        """Hide or show the link statistics (as the ``h`` key does)."""
        return self._send_control({"cmd": "toggle_stats"})

    def _send_control(self, msg: dict[str, Any]) -> bool:
        sock = self._ctl
        if sock is None:
            return False
        try:
            sock.send(_ENCODER.encode(msg), _NOBLOCK)
        except zmq.ZMQError:
            self.counters["control_dropped"] += 1
            return False
        return True

    # -- from the display ----------------------------------------------------------------------
    def keys(self, now_ns: int | None = None) -> list[KeyEvent]:
        """Key events the window received since the last call (oldest first); never waits.

        Looks at the socket at most every 2 ms (a key 2 ms late is not felt); in between it
        returns ``[]`` after one clock read (~0.1 µs), so the loop may call it every tick.
        """
        now = time.monotonic_ns() if now_ns is None else now_ns
        if now < self._next_keys_ns:
            return []
        self._next_keys_ns = now + _KEYS_PERIOD_NS
        return self._drain_events()

    def _drain_events(self, wait_ms: int = 0) -> list[KeyEvent]:
        sock = self._events
        if sock is None:
            return []
        if wait_ms:
            if not sock.poll(wait_ms):
                return []
        elif not sock.get(_EVENTS) & _POLLIN:  # the usual case: ~0.3 µs, no exception raised
            return []
        out: list[KeyEvent] = []
        for _ in range(1000):
            try:
                data = sock.recv(_NOBLOCK)
            except zmq.ZMQError:
                break
            try:
                ev = msgspec.msgpack.decode(data)
                kind = ev.get("type")
            except (msgspec.DecodeError, AttributeError):
                continue
            if kind == "key":
                key = KeyEvent(str(ev.get("key", "")), bool(ev.get("down")), int(ev.get("t_ns", 0)))
                out.append(key)
                if key.name == "escape" and key.down:
                    self.quit_requested = True
            elif kind == "ready":
                self.ready = True
                self.backend = str(ev.get("backend", ""))
                self.mode = str(ev.get("mode", self.mode))
            elif kind == "snapshot":
                self.last_snapshot = str(ev.get("path"))
                self.snapshots += 1
            elif kind == "closed":
                self.quit_requested = True
                out.append(KeyEvent("window_closed", True, int(ev.get("t_ns", 0))))
        return out


# ---------------------------------------------------------------------------------------------
# Rendering (matplotlib is imported here only, so the console process never loads it)
# ---------------------------------------------------------------------------------------------

BG = "#0d1117"
CARD = "#161b22"
EDGE = "#30363d"
TEXT = "#e6edf3"
MUTED = "#8b949e"
GREEN = "#2ea043"
AMBER = "#f0a020"
RED = "#e5322d"
DARK_RED = "#9e1c17"
OFF = "#3b424b"
OK_BANNER = "#1f7a3a"  # calmer than GREEN: OK is the usual state
HEALTH_COLORS = {"OK": GREEN, "DEGRADED": AMBER, "LOST": RED}

FORCE_AMBER_FRACTION = 0.5
"""The force gauge turns amber at this fraction of ``max_force_n``..."""
FORCE_RED_FRACTION = 0.8
"""...and red at this one."""

RED_FLAGS = frozenset({"estop", "watchdog_hold", "force_over_limit", "invalid_feedback"})
"""Safety flags shown in red; the usual states of a disengaged console are shown muted."""
INFO_FLAGS = frozenset({"not_engaged", "operator_absent", "hold_command", "wait_reengage"})

LAYOUT: dict[str, tuple[float, float, float, float]] = {
    # figure fractions: left, bottom, width, height
    "banner": (0.0, 0.893, 1.0, 0.107),
    "video": (0.008, 0.062, 0.637, 0.818),
    "force": (0.654, 0.600, 0.338, 0.280),
    "link": (0.654, 0.340, 0.338, 0.248),
    "console": (0.654, 0.187, 0.338, 0.141),
    "safety": (0.654, 0.062, 0.338, 0.113),
    "footer": (0.0, 0.0, 1.0, 0.052),
}
"""Where each panel is, in figure fractions (left, bottom, width, height)."""

_NA = "n/a"
PANELS_HZ = 5.0
"""A window redraws the panels other than the video at most this often (and at once when the
link health changes): text layout is the display process's main cost."""
_N_FLAG_SLOTS = 4
_STALE_S = 0.5


def _num(t: Mapping[str, Any], key: str) -> float | None:
    v = t.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _bool(t: Mapping[str, Any], key: str) -> bool | None:
    v = t.get(key)
    return v if isinstance(v, bool) else None


def _vec3(t: Mapping[str, Any], key: str) -> tuple[float, float, float] | None:
    v = t.get(key)
    if not isinstance(v, list | tuple) or len(v) != 3:
        return None
    try:
        x = tuple(float(a) for a in v)
    except (TypeError, ValueError):
        return None
    return x if all(math.isfinite(a) for a in x) else None  # type: ignore[return-value]


def _strs(t: Mapping[str, Any], key: str) -> list[str]:
    v = t.get(key)
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list | tuple):
        return []
    return [str(x) for x in v][:32]


def _fmt(x: float | None, spec: str = ".1f", unit: str = "") -> str:
    if x is None:
        return _NA
    return f"{x:{spec}}{unit}"


def _card(fig: Any, rect: tuple[float, float, float, float], color: str = CARD) -> Any:
    """An axes used as a flat panel: no ticks, its own 0..1 coordinates, a thin border."""
    ax = fig.add_axes(rect)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor(color)
    ax.set_navigate(False)
    for s in ax.spines.values():
        s.set_color(EDGE)
        s.set_linewidth(1.0)
    return ax


def _inset(card: Any, x: float, y: float, w: float, h: float) -> tuple[float, ...]:
    """A rectangle given in a card's 0..1 coordinates, in figure fractions."""
    cx, cy, cw, ch = card.get_position().bounds
    return (cx + x * cw, cy + y * ch, w * cw, h * ch)


def force_color(magnitude_n: float, max_force_n: float) -> str:
    """Green below 50 % of the limit, amber below 80 %, red above."""
    frac = magnitude_n / max_force_n
    if frac >= FORCE_RED_FRACTION:
        return RED
    if frac >= FORCE_AMBER_FRACTION:
        return AMBER
    return GREEN


FLAG_LABELS = {"estop": "E-STOP"}


def flag_label(flag: str) -> str:
    """``"watchdog_hold"`` -> ``"watchdog hold"``, ``"estop"`` -> ``"E-STOP"``."""
    return FLAG_LABELS.get(flag, flag.replace("_", " ").strip())


class ConsoleView:
    """The display's figure and its artists, built once and updated in place.

    ``figure``: a matplotlib figure to draw in (a window's); default: an Agg figure of
    ``config.width_px`` x ``config.height_px``. :meth:`update` sets every artist from telemetry
    (cheap: ~0.5 ms); drawing is separate. Two ways to draw:

    * a full draw (``fig.canvas.draw()``, :meth:`save`): ~80 ms for this figure, most of it
      text layout and the video image; used for snapshots;
    * blitting (:meth:`enable_blit`, then :meth:`blit` with the panels that changed): the static
      parts (cards, labels, gauge scale) are drawn once into saved backgrounds, and a refresh
      redraws only the changing artists of the panels named. A window redraws the video at
      ``refresh_hz`` (~15 ms) and the other panels at 5 Hz, so the display process stays well
      under a core.

    :meth:`texts` returns what the text artists show (for tests and reports).
    """

    def __init__(self, config: DisplayConfig | None = None, figure: Any = None) -> None:
        self.config = config or DisplayConfig()
        cfg = self.config
        if figure is None:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            dpi = 100
            figure = Figure(figsize=(cfg.width_px / dpi, cfg.height_px / dpi), dpi=dpi)
            FigureCanvasAgg(figure)
        from matplotlib.patches import Rectangle

        self.fig = fig = figure
        fig.set_facecolor(BG)
        self.stats_visible = True
        self.needs_full_draw = False
        self._max_force = cfg.max_force_n
        self._frame_shape = (480, 640)
        self._blit = False
        self._animated = False
        self._bg: dict[str, Any] = {}
        self._drawn_look: dict[str, tuple[Any, ...]] = {}
        self._frames = 0  # frames shown: a new one means the video panel changed
        self.panels: dict[str, tuple[Any, list[Any]]] = {}
        mono = "DejaVu Sans Mono"

        # banner: link health, across the top
        self.ax_banner = ab = self._panel("banner", _card(fig, LAYOUT["banner"], BG))
        ab.spines[:].set_visible(False)
        self.banner_bg = self._dyn(
            "banner", ab.add_patch(Rectangle((0, 0), 1, 1, transform=ab.transAxes, fc=OFF, lw=0))
        )
        self.t_banner = self._text(
            "banner",
            ab,
            0.012,
            0.63,
            "LINK n/a",
            va="center",
            ha="left",
            fontsize=22,
            weight="bold",
            color=TEXT,
        )
        self.t_reasons = self._text(
            "banner", ab, 0.013, 0.2, "", va="center", ha="left", fontsize=12, color=TEXT
        )
        self.t_banner_rtt = self._text(
            "banner",
            ab,
            0.988,
            0.63,
            "",
            va="center",
            ha="right",
            fontsize=20,
            weight="bold",
            color=TEXT,
        )
        self.t_banner_rtt_label = self._text(
            "banner",
            ab,
            0.988,
            0.2,
            "round trip p50",
            va="center",
            ha="right",
            fontsize=11,
            color=TEXT,
        )

        # video: a black card, the image axes on it (aspect kept, centred), overlays
        self.ax_video_card = self._panel("video", _card(fig, LAYOUT["video"], "#000000"))
        self.ax_video = av = fig.add_axes(LAYOUT["video"])
        av.set_xticks([])
        av.set_yticks([])
        av.set_navigate(False)
        av.set_facecolor("#000000")
        av.spines[:].set_visible(False)
        self.im = self._dyn(
            "video",
            av.imshow(np.zeros((480, 640, 3), np.uint8), interpolation="bilinear", aspect="equal"),
        )
        self.t_video_status = self._text(
            "video",
            av,
            0.5,
            0.5,
            "NO VIDEO",
            transform=av.transAxes,
            ha="center",
            va="center",
            fontsize=28,
            weight="bold",
            color=MUTED,
        )
        self.t_video_lost = self._text(
            "video",
            av,
            0.5,
            0.9,
            "",
            transform=av.transAxes,
            ha="center",
            va="center",
            fontsize=30,
            weight="bold",
            color="white",
            visible=False,
            bbox={"boxstyle": "round,pad=0.35", "fc": RED, "ec": "none", "alpha": 0.85},
        )
        self.t_video_info = self._text(
            "video",
            av,
            0.012,
            0.018,
            "",
            transform=av.transAxes,
            ha="left",
            va="bottom",
            fontsize=10,
            color=TEXT,
            family=mono,
            visible=False,
            bbox={"boxstyle": "round,pad=0.3", "fc": "black", "ec": "none", "alpha": 0.55},
        )
        # the red frame of LOST: on the card, over the image, drawn inside the card's pixels
        vc = self.ax_video_card
        self.lost_frame = self._dyn(
            "video",
            fig.add_artist(
                Rectangle(
                    (0, 0),
                    1,
                    1,
                    transform=vc.transAxes,
                    fill=False,
                    ec=RED,
                    lw=12,
                    zorder=5,
                    visible=False,
                    clip_box=vc.bbox,
                    clip_on=True,
                )
            ),
        )

        # force gauge
        self.ax_force = af = self._panel("force", _card(fig, LAYOUT["force"]))
        af.text(
            0.035, 0.9, "INSTRUMENT FORCE", fontsize=10, color=MUTED, weight="bold", va="center"
        )
        self.t_force = self._text(
            "force",
            af,
            0.965,
            0.79,
            _NA,
            ha="right",
            va="center",
            fontsize=26,
            weight="bold",
            color=TEXT,
        )
        self.t_torque = self._text(
            "force",
            af,
            0.035,
            0.70,
            "",
            ha="left",
            va="center",
            fontsize=9.5,
            color=MUTED,
            family=mono,
        )
        self.ax_gauge = ag = fig.add_axes(_inset(af, 0.035, 0.44, 0.93, 0.17))
        ag.set_facecolor("#0b0f14")
        ag.set_yticks([])
        ag.set_ylim(-0.5, 0.5)
        ag.set_navigate(False)
        ag.tick_params(axis="x", colors=MUTED, labelsize=8, length=3, pad=1)
        for s in ag.spines.values():
            s.set_color(EDGE)
        self._zones = [ag.axvspan(0, 1, color=c, alpha=0.16, lw=0) for c in (GREEN, AMBER, RED)]
        self.bar_force = self._dyn("force", ag.barh([0], [0.0], height=0.72, color=GREEN)[0])
        self.line_limit = self._dyn("force", ag.axvline(1.0, color=TEXT, lw=1.4, ls=(0, (3, 2))))
        self.ax_comp = ac = fig.add_axes(_inset(af, 0.13, 0.05, 0.60, 0.32))
        ac.set_facecolor(CARD)
        ac.set_yticks([])
        ac.set_xticks([])
        ac.set_ylim(-0.6, 2.6)
        ac.set_navigate(False)
        ac.spines[:].set_visible(False)
        ac.axvline(0.0, color=MUTED, lw=0.8)
        self.bars_comp = [
            self._dyn("force", b) for b in ac.barh([2, 1, 0], [0.0] * 3, height=0.62, color=MUTED)
        ]
        self.t_comp = []
        for i, name in enumerate(("fx", "fy", "fz")):
            y = _comp_y(i)
            af.text(0.035, y, name, fontsize=9.5, color=MUTED, va="center", family=mono)
            self.t_comp.append(
                self._text(
                    "force",
                    af,
                    0.965,
                    y,
                    _NA,
                    fontsize=9.5,
                    color=TEXT,
                    va="center",
                    ha="right",
                    family=mono,
                )
            )
        self._set_force_scale(cfg.max_force_n)

        # link statistics
        self.ax_link = al = self._panel("link", _card(fig, LAYOUT["link"]))
        al.text(0.035, 0.89, "LINK", fontsize=10, color=MUTED, weight="bold", va="center")
        rows = (
            ("rtt", "round trip p50 / p99"),
            ("one_way", "one-way, commands"),
            ("jitter", "jitter (arm → console)"),
            ("loss", "loss down / up"),
            ("age", "newest state age"),
        )
        self.t_link: dict[str, Any] = {}
        for i, (key, label) in enumerate(rows):
            y = 0.72 - i * 0.155
            al.text(0.035, y, label, fontsize=11, color=MUTED, va="center")
            self.t_link[key] = self._text(
                "link",
                al,
                0.965,
                y,
                _NA,
                fontsize=12.5,
                color=TEXT,
                va="center",
                ha="right",
                family=mono,
            )

        # console state pills
        self.ax_console = ao = self._panel("console", _card(fig, LAYOUT["console"]))
        ao.text(0.035, 0.83, "CONSOLE", fontsize=10, color=MUTED, weight="bold", va="center")
        self.pills: dict[str, Any] = {}
        for key, (x, y) in {
            "clutch": (0.035, 0.50),
            "operator": (0.52, 0.50),
            "armed": (0.035, 0.17),
            "arm_state": (0.52, 0.17),
        }.items():
            self.pills[key] = self._text(
                "console",
                ao,
                x,
                y,
                _NA,
                fontsize=11,
                weight="bold",
                color=TEXT,
                va="center",
                ha="left",
                bbox={"boxstyle": "round,pad=0.32", "fc": OFF, "ec": "none"},
            )

        # safety flags
        self.ax_safety = asf = self._panel("safety", _card(fig, LAYOUT["safety"]))
        asf.text(0.035, 0.80, "ARM SAFETY", fontsize=10, color=MUTED, weight="bold", va="center")
        self.t_flags = []
        for i in range(_N_FLAG_SLOTS):
            x = 0.035 + (i % 2) * 0.485
            y = 0.48 - (i // 2) * 0.32
            self.t_flags.append(
                self._text(
                    "safety", asf, x, y, "", fontsize=11, weight="bold", color=TEXT, va="center"
                )
            )

        # footer
        self.ax_footer = aff = self._panel("footer", _card(fig, LAYOUT["footer"], BG))
        aff.spines[:].set_visible(False)
        self.t_footer = self._text(
            "footer",
            aff,
            0.008,
            0.5,
            "",
            fontsize=10,
            color=MUTED,
            va="center",
            ha="left",
            family=mono,
        )
        self.t_clock = self._text(
            "footer",
            aff,
            0.992,
            0.5,
            "",
            fontsize=10,
            color=MUTED,
            va="center",
            ha="right",
            family=mono,
        )

    def _panel(self, name: str, ax: Any) -> Any:
        self.panels[name] = (ax, [])
        return ax

    def _text(self, panel: str, ax: Any, x: float, y: float, s: str, **kw: Any) -> Any:
        """A changing text of ``panel``, at ``ax``'s data (``transform=``: other) coordinates."""
        return self._dyn(panel, ax.text(x, y, s, **kw))

    def _dyn(self, panel: str, artist: Any) -> Any:
        """Register a changing artist of ``panel`` (drawn last, in registration order)."""
        self.panels[panel][1].append(artist)
        return artist

    # -- drawing -------------------------------------------------------------------------------
    def enable_blit(self) -> None:
        """Draw by blitting from now on (a window): see the class docstring.

        The changing artists become ``animated`` (a full draw leaves them out); after each full
        draw (first show, resize, :attr:`needs_full_draw`) the panels' backgrounds are saved
        and every changing artist is drawn on them.
        """
        if self._blit:
            return
        self._blit = True
        self._set_animated(True)
        self.fig.canvas.mpl_connect("draw_event", self._on_draw)

    def _on_draw(self, _event: Any = None) -> None:
        if not self._animated:  # a full draw for a snapshot: nothing to save
            return
        canvas = self.fig.canvas
        self._bg = {
            name: canvas.copy_from_bbox(ax.bbox)
            for name, (ax, _) in self.panels.items()
            if ax.get_visible()
        }
        self._draw_panels(list(self.panels), blit=False)  # the backend shows the whole figure

    def blit(self, panels: Sequence[str], only_changed: bool = True) -> list[str]:
        """Redraw the changing artists of ``panels`` on their saved backgrounds, and show them.

        With ``only_changed``, a panel whose artists look as they did when it was last drawn
        is skipped (text layout is most of the cost). Returns the panels redrawn.
        """
        if not self._blit:
            raise RuntimeError("enable_blit() first")
        if not self._bg:  # no full draw yet: do one (it draws every panel)
            self.fig.canvas.draw()
            return list(self.panels)
        return self._draw_panels(panels, blit=True, only_changed=only_changed)

    def _draw_panels(
        self, panels: Sequence[str], blit: bool, only_changed: bool = False
    ) -> list[str]:
        canvas = self.fig.canvas
        fig = self.fig
        drawn = []
        for name in panels:
            ax, artists = self.panels[name]
            bg = self._bg.get(name)
            if bg is None or not ax.get_visible():
                continue
            sig = (self._frames if name == "video" else 0, *(_look(a) for a in artists))
            if only_changed and self._drawn_look.get(name) == sig:
                continue
            self._drawn_look[name] = sig
            if blit:
                canvas.restore_region(bg)
            for a in artists:
                if a.get_visible():
                    fig.draw_artist(a)
            if blit:
                canvas.blit(ax.bbox)
            drawn.append(name)
        return drawn

    # -- updating ------------------------------------------------------------------------------
    def _set_force_scale(self, max_n: float) -> None:
        self._max_force = max_n
        top = 1.25 * max_n
        self.ax_gauge.set_xlim(0, top)
        self.ax_gauge.set_xticks([0, 0.5 * max_n, max_n])
        self.ax_gauge.set_xticklabels(["0", f"{0.5 * max_n:g}", f"{max_n:g} N"])
        edges = (0.0, FORCE_AMBER_FRACTION * max_n, FORCE_RED_FRACTION * max_n, top)
        for zone, lo, hi in zip(self._zones, edges[:-1], edges[1:], strict=True):
            _set_span(zone, lo, hi)
        self.line_limit.set_xdata([max_n, max_n])
        self.ax_comp.set_xlim(-max_n, max_n)
        self.needs_full_draw = True  # the gauge's scale is part of the saved background

    def set_stats_visible(self, visible: bool) -> None:
        """Show or hide the link statistics panel and the footer (the banner always shows)."""
        if visible != self.stats_visible:
            self.stats_visible = visible
            self.ax_link.set_visible(visible)
            self.ax_footer.set_visible(visible)
            self.needs_full_draw = True

    def set_frame(self, rgb: np.ndarray | None) -> None:
        """Show a decoded frame (H x W x 3 uint8), or keep the last one (``None``)."""
        if rgb is None:
            return
        h, w = rgb.shape[:2]
        self.im.set_data(rgb)
        self._frames += 1
        if self._frame_shape != (h, w):
            self._frame_shape = (h, w)
            self.im.set_extent((-0.5, w - 0.5, h - 0.5, -0.5))
            self.ax_video.set_xlim(-0.5, w - 0.5)
            self.ax_video.set_ylim(h - 0.5, -0.5)
            self.needs_full_draw = True  # the image axes' box changes with the aspect

    def update(
        self,
        telemetry: Mapping[str, Any],
        *,
        have_video: bool = False,
        video_age_s: float | None = None,
        video_latency_ms: float | None = None,
        video_fps: float | None = None,
        display_fps: float | None = None,
        blink: bool = False,
        wall_time: float | None = None,
    ) -> None:
        """Update every artist from a telemetry dict (missing keys render as "n/a").

        ``video_age_s``: how long ago the newest frame arrived (None: never);
        ``video_latency_ms``: capture-to-display latency, when the clock offset is known.
        """
        t = telemetry if isinstance(telemetry, Mapping) else {}
        self._update_banner(t, blink)
        self._update_video(have_video, video_age_s, video_latency_ms)
        self._update_force(t)
        self._update_link(t)
        self._update_console(t)
        self._update_flags(t)
        applied = t.get("commands_applied")
        ok = isinstance(applied, int) and not isinstance(applied, bool)
        self.t_footer.set_text(
            f"video {_fmt(video_fps)} fps   display {_fmt(display_fps)} fps   "
            f"commands applied {applied if ok else _NA}   "
            f"loop lateness p99 {_fmt(_num(t, 'loop_lateness_p99_us'), '.0f', ' µs')}   "
            "[h] stats  [f12] snapshot  [esc] quit"
        )
        wt = time.time() if wall_time is None else wall_time
        self.t_clock.set_text(time.strftime("%H:%M:%S", time.localtime(wt)))

    def _update_banner(self, t: Mapping[str, Any], blink: bool) -> None:
        health = t.get("health")
        health = health if health in HEALTH_COLORS else None
        reasons = _strs(t, "health_reasons")
        lost_motion = _bool(t, "lost") is True
        if health == "LOST" or (health is None and lost_motion):
            color = DARK_RED if blink else RED
            title, size, fg = "LINK LOST — MOTION STOPPED", 27, "white"
            if not reasons and health is None:
                reasons = ["the console stopped motion: link lost"]
        elif health == "DEGRADED":
            color, title, size, fg = AMBER, "LINK DEGRADED", 23, "#1a1200"
        elif health == "OK":
            color, title, size, fg = OK_BANNER, "LINK OK", 21, "white"
        else:
            color, title, size, fg = OFF, "LINK n/a", 21, TEXT
        if lost_motion and health in ("OK", "DEGRADED"):  # recovered; the surgeon must act
            color, fg = AMBER, "#1a1200"
            title += " — RE-ENGAGE THE CLUTCH TO MOVE"
        self.banner_bg.set_facecolor(color)
        self.t_banner.set_text(title)
        self.t_banner.set_fontsize(size)
        self.t_banner.set_color(fg)
        text = "; ".join(reasons)
        if not text and health == "OK":
            text = "all link checks within limits"
        if len(text) > 150:
            text = text[:147] + "..."
        self.t_reasons.set_text(text)
        self.t_reasons.set_color(fg)
        self.t_banner_rtt.set_text(_fmt(_num(t, "rtt_p50_ms"), ".1f", " ms"))
        self.t_banner_rtt.set_color(fg)
        self.t_banner_rtt_label.set_color(fg)
        lost = health == "LOST"
        self.lost_frame.set_visible(lost)
        self.t_video_lost.set_visible(lost)
        self.t_video_lost.set_text("LINK LOST" if lost else "")

    def _update_video(
        self, have_video: bool, age_s: float | None, latency_ms: float | None
    ) -> None:
        status = self.t_video_status
        if not have_video:
            status.set_text("NO VIDEO")
            status.set_color(MUTED)
            status.set_visible(True)
            self.im.set_alpha(1.0)
        elif age_s is not None and age_s > _STALE_S:
            status.set_text(f"VIDEO FROZEN {age_s:.1f} s")
            status.set_color(AMBER)
            status.set_visible(True)
            self.im.set_alpha(0.55)
        else:
            status.set_visible(False)
            self.im.set_alpha(1.0)
        if have_video:
            h, w = self._frame_shape
            self.t_video_info.set_text(f"{w}×{h}  video latency {_fmt(latency_ms, '.0f', ' ms')}")
        self.t_video_info.set_visible(have_video)

    def _update_force(self, t: Mapping[str, Any]) -> None:
        mf = _num(t, "max_force_n")
        if mf is not None and mf > 0 and mf != self._max_force:
            self._set_force_scale(mf)
        max_n = self._max_force
        f = _vec3(t, "force_n")
        if f is None:
            self.t_force.set_text(_NA)
            self.t_force.set_color(MUTED)
            self.bar_force.set_width(0.0)
            for bar, txt in zip(self.bars_comp, self.t_comp, strict=True):
                bar.set_width(0.0)
                txt.set_text(_NA)
        else:
            mag = math.sqrt(f[0] ** 2 + f[1] ** 2 + f[2] ** 2)
            color = force_color(mag, max_n)
            self.t_force.set_text(f"{mag:.1f} N")
            self.t_force.set_color(color)
            self.bar_force.set_width(min(mag, 1.25 * max_n))
            self.bar_force.set_color(color)
            for bar, txt, v in zip(self.bars_comp, self.t_comp, f, strict=True):
                bar.set_width(max(-max_n, min(max_n, v)))
                bar.set_color(force_color(abs(v), max_n))
                txt.set_text(f"{v:+.2f} N")
        tq = _vec3(t, "torque_nm")
        jaw = _num(t, "jaw_rad")
        parts = []
        if tq is not None:
            parts.append(f"|τ| {math.sqrt(sum(x * x for x in tq)):.3f} N·m")
        if jaw is not None:
            parts.append(f"jaw {math.degrees(jaw):.0f}°")
        parts.append(f"limit {max_n:g} N")
        self.t_torque.set_text("   ".join(parts))

    def _update_link(self, t: Mapping[str, Any]) -> None:
        p50, p99 = _num(t, "rtt_p50_ms"), _num(t, "rtt_p99_ms")
        self.t_link["rtt"].set_text(f"{_fmt(p50)} / {_fmt(p99)} ms")
        self.t_link["one_way"].set_text(_fmt(_num(t, "one_way_ms"), ".1f", " ms"))
        self.t_link["jitter"].set_text(_fmt(_num(t, "jitter_ms"), ".2f", " ms"))
        down, up = _num(t, "loss_pct"), _num(t, "tx_loss_pct")
        self.t_link["loss"].set_text(f"{_fmt(down)} / {_fmt(up)} %")
        self.t_link["age"].set_text(_fmt(_num(t, "state_age_ms"), ".1f", " ms"))
        health = t.get("health")
        color = HEALTH_COLORS.get(health, TEXT) if health != "OK" else TEXT
        for key in ("rtt", "jitter", "loss", "age"):
            self.t_link[key].set_color(color)

    def _pill(self, key: str, text: str, fc: str, fg: str = "white") -> None:
        p = self.pills[key]
        p.set_text(text)
        p.set_color(fg)
        p.get_bbox_patch().set_facecolor(fc)

    def _update_console(self, t: Mapping[str, Any]) -> None:
        dark = "#1a1200"
        # pill, telemetry key, label when true, label when false (+ colours), label when unknown
        for pill, key, on, off, off_fc, off_fg, na in (
            ("clutch", "clutch", "CLUTCH ENGAGED", "CLUTCH OUT", OFF, TEXT, "CLUTCH n/a"),
            (
                "operator",
                "operator_present",
                "OPERATOR PRESENT",
                "OPERATOR ABSENT",
                AMBER,
                dark,
                "OPERATOR n/a",
            ),
            ("armed", "armed", "ARMED", "NOT ARMED", AMBER, dark, "ARMED n/a"),
        ):
            value = _bool(t, key)
            if value is None:
                self._pill(pill, na, OFF, MUTED)
            elif value:
                self._pill(pill, on, GREEN)
            else:
                self._pill(pill, off, off_fc, off_fg)
        op = t.get("operating_state")
        colors = {"ENABLED": (GREEN, "white"), "PAUSED": (AMBER, dark), "FAULT": (RED, "white")}
        if isinstance(op, str) and op:
            fc, fg = colors.get(op, (OFF, TEXT))
            self._pill("arm_state", f"ARM {op[:16]}", fc, fg)
        else:
            self._pill("arm_state", "ARM n/a", OFF, MUTED)

    def _update_flags(self, t: Mapping[str, Any]) -> None:
        flags = _strs(t, "flags")
        if "flags" not in t:
            shown: list[tuple[str, str]] = [(_NA, MUTED)]
        elif not flags:
            shown = [("no interventions", GREEN)]
        else:
            order = sorted(
                flags, key=lambda f: 0 if f in RED_FLAGS else 2 if f in INFO_FLAGS else 1
            )
            shown = [
                (flag_label(f), RED if f in RED_FLAGS else MUTED if f in INFO_FLAGS else AMBER)
                for f in order
            ]
            if len(shown) > _N_FLAG_SLOTS:
                extra = len(shown) - (_N_FLAG_SLOTS - 1)
                shown = [*shown[: _N_FLAG_SLOTS - 1], (f"+{extra} more", MUTED)]
        for i, txt in enumerate(self.t_flags):
            if i < len(shown):
                txt.set_text(shown[i][0])
                txt.set_color(shown[i][1])
            else:
                txt.set_text("")

    # -- output --------------------------------------------------------------------------------
    def texts(self) -> dict[str, str]:
        """What the panels say now, by name (``banner``, ``reasons``, ``force``, ``link.rtt``,
        ``pill.clutch``, ``flags``, ``video``, ``footer``, ...); hidden texts are ``""``."""

        def shown(a: Any) -> str:
            return a.get_text() if a.get_visible() else ""

        out = {
            "banner": shown(self.t_banner),
            "reasons": shown(self.t_reasons),
            "banner_rtt": shown(self.t_banner_rtt),
            "force": shown(self.t_force),
            "force_components": " ".join(shown(t) for t in self.t_comp),
            "force_extra": shown(self.t_torque),
            "flags": " | ".join(t.get_text() for t in self.t_flags if t.get_text()),
            "video": shown(self.t_video_status),
            "video_info": shown(self.t_video_info),
            "video_lost": shown(self.t_video_lost),
            "footer": shown(self.t_footer),
        }
        for k, txt in self.t_link.items():
            out[f"link.{k}"] = shown(txt)
        for k, pill in self.pills.items():
            out[f"pill.{k}"] = shown(pill)
        return out

    def rgba(self) -> np.ndarray:
        """The canvas as it was last drawn (H x W x 4 uint8, a view)."""
        return np.asarray(self.fig.canvas.buffer_rgba())

    def save(self, path: str | os.PathLike[str], draw: bool = True) -> None:
        """Write the figure to a PNG atomically (a temporary file, then ``os.replace``).

        ``draw=True`` draws it first (a full draw, leaving out nothing even when blitting);
        ``draw=False`` writes the canvas as last drawn (a window's current picture).
        """
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
        try:
            self.write_png(tmp, draw)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def write_png(self, path: str | os.PathLike[str], draw: bool = True) -> None:
        """Write the figure to ``path`` as PNG (not atomic: :meth:`save` is)."""
        import matplotlib.image

        if draw:
            animated = self._blit
            if animated:  # a full draw leaves animated artists out: put them in
                self._set_animated(False)
            try:
                self.fig.canvas.draw()
            finally:
                if animated:
                    self._set_animated(True)
                    self.needs_full_draw = True  # the window's backgrounds are stale now
        # fast zlib level: a snapshot a second must not cost the display process much
        matplotlib.image.imsave(path, self.rgba(), format="png", pil_kwargs={"compress_level": 1})

    def _set_animated(self, on: bool) -> None:
        self._animated = on
        for _, artists in self.panels.values():
            for a in artists:
                a.set_animated(on)


def _look(a: Any) -> tuple[Any, ...]:
    """What an artist looks like, cheaply, to tell whether its panel needs redrawing."""
    if not a.get_visible():
        return (False,)
    if hasattr(a, "get_text"):
        patch = a.get_bbox_patch()
        return (
            a.get_text(),
            a.get_color(),
            a.get_fontsize(),
            None if patch is None else tuple(patch.get_facecolor()),
        )
    if hasattr(a, "get_array") and hasattr(a, "get_extent"):  # the video image
        return (a.get_alpha(), tuple(a.get_extent()))  # a new frame: ConsoleView._frames
    if hasattr(a, "get_width"):  # bars, the LOST frame
        return (a.get_x(), a.get_width(), tuple(a.get_facecolor()), tuple(a.get_edgecolor()))
    if hasattr(a, "get_xdata"):
        return tuple(np.asarray(a.get_xdata(), dtype=float).tolist())
    return (id(a), time.monotonic())  # unknown: always redraw


def _comp_y(i: int) -> float:
    """The card y (0..1) of force component row ``i`` (fx, fy, fz), matching the bar axes."""
    # the components' axes span card y 0.05..0.37 with data y -0.6..2.6; row i sits at 2 - i
    return 0.05 + 0.32 * ((2 - i) + 0.6) / 3.2


def _set_span(span: Any, lo: float, hi: float) -> None:
    """Move an ``axvspan`` (a Rectangle in matplotlib >= 3.9, a Polygon before)."""
    if hasattr(span, "set_x") and hasattr(span, "set_width"):
        span.set_x(lo)
        span.set_width(hi - lo)
    else:  # pragma: no cover - older matplotlib
        span.set_xy([[lo, 0], [lo, 1], [hi, 1], [hi, 0], [lo, 0]])


def decode_jpeg(data: bytes | memoryview) -> np.ndarray:
    """JPEG bytes -> H x W x 3 uint8 RGB (simplejpeg, fast DCT)."""
    import simplejpeg

    return simplejpeg.decode_jpeg(data, colorspace="RGB", fastdct=True, fastupsample=True)


def render_snapshot(
    path: str | os.PathLike[str],
    jpeg: bytes | None,
    telemetry: Mapping[str, Any],
    config: DisplayConfig | None = None,
) -> dict[str, str]:
    """Render one frame of the display to a PNG (atomically), without a process.

    Returns :meth:`ConsoleView.texts` (what each panel says). Usable by tests and reports.
    """
    view = ConsoleView(config)
    have_video = False
    if jpeg is not None:
        try:
            view.set_frame(decode_jpeg(jpeg))
            have_video = True
        except Exception as exc:  # simplejpeg raises ValueError for a bad image
            log.warning("render_snapshot: cannot decode the JPEG (%s): showing no video", exc)
    view.update(telemetry, have_video=have_video, video_age_s=0.0 if have_video else None)
    view.save(path)
    return view.texts()


# ---------------------------------------------------------------------------------------------
# The display process
# ---------------------------------------------------------------------------------------------

_KEY_NAMES = {" ": "space", "esc": "escape", "return": "enter"}


def normalize_key(key: str | None) -> str | None:
    """A matplotlib key name as the console's keyboard device names it (``" "`` -> ``"space"``)."""
    if not key:
        return None
    return _KEY_NAMES.get(key, key if len(key) == 1 else key.lower())


class _DisplayProcess:
    """The loop of the display process: take the newest frame and telemetry, draw, snapshot."""

    def __init__(self, config: DisplayConfig, ipc_dir: str, parent_pid: int | None) -> None:
        self.config = config
        self.parent_pid = parent_pid
        self.stop = False
        ctx = self.ctx = zmq.Context(1)

        def sock(kind: int, name: str, **opts: int) -> zmq.Socket:
            s = ctx.socket(kind)
            s.linger = 0
            for opt, value in opts.items():
                s.setsockopt(getattr(zmq, opt), value)
            s.connect(f"ipc://{ipc_dir}/{name}")
            return s

        self.video = sock(zmq.PULL, "video", CONFLATE=1)
        self.tel = sock(zmq.PULL, "telemetry", CONFLATE=1)
        self.ctl = sock(zmq.PULL, "control", RCVHWM=16)
        self.events = sock(zmq.PUSH, "events", SNDHWM=1000)
        self.telemetry: dict[str, Any] = {}
        self.frame: bytes | None = None  # newest undecoded message (header + JPEG)
        self.frame_new = False
        self.have_video = False
        self.frame_rx_ns = 0
        self.frame_capture_ns = 0
        self.video_samples: collections.deque[tuple[int, int]] = collections.deque(maxlen=120)
        self.renders: collections.deque[float] = collections.deque(maxlen=60)
        self.snapshot_dir = Path(config.snapshot_dir) if config.snapshot_dir else None
        self.snapshot_n = 0
        self.snapshot_now = False
        self.mode = config.mode
        self.backend = "agg"
        self.view: ConsoleView | None = None
        self.plt: Any = None
        self.window_closed = False
        self.decode_errors = 0

    # -- sockets ------------------------------------------------------------------------------
    def emit(self, **msg: Any) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.events.send(_ENCODER.encode(msg), _NOBLOCK)

    def take_messages(self) -> None:
        for _ in range(64):
            try:
                data = self.video.recv(_NOBLOCK)
            except zmq.ZMQError:
                break
            if len(data) <= _VIDEO_HDR.size:
                continue
            _seq, n, capture_ns, rx_ns, _w, _h = _VIDEO_HDR.unpack_from(data)
            self.frame = data
            self.frame_new = True
            self.frame_capture_ns = capture_ns
            self.frame_rx_ns = rx_ns
            self.video_samples.append((n, rx_ns))
        for _ in range(64):
            try:
                data = self.tel.recv(_NOBLOCK)
            except zmq.ZMQError:
                break
            try:
                t = msgspec.msgpack.decode(data)
            except msgspec.DecodeError:
                continue
            if isinstance(t, dict):
                self.telemetry = t
        for _ in range(16):
            try:
                data = self.ctl.recv(_NOBLOCK)
            except zmq.ZMQError:
                break
            try:
                cmd = msgspec.msgpack.decode(data).get("cmd")
            except (msgspec.DecodeError, AttributeError):
                continue
            if cmd == "quit":
                self.stop = True
            elif cmd == "snapshot":
                self.snapshot_now = True
            elif cmd == "toggle_stats" and self.view is not None:
                self.view.set_stats_visible(not self.view.stats_visible)

    # -- figure -------------------------------------------------------------------------------
    def open_window(self) -> None:
        """Open the GUI window (QtAgg if a Qt binding is installed, else TkAgg)."""
        import matplotlib

        for k in list(matplotlib.rcParams):
            if k.startswith("keymap."):
                matplotlib.rcParams[k] = []  # no pan/zoom/save/quit on the surgeon's keys
        backends = [
            b
            for b, m in (("QtAgg", _QT_MODULES), ("TkAgg", ("tkinter",)))
            if any(_has_module(x) for x in m)
        ]
        last: Exception | None = None
        for backend in backends:
            try:
                fig = self.make_window_figure(backend)
            except Exception as exc:  # no display, broken toolkit: try the next, then headless
                last = exc
                log.debug("backend %s failed: %s", backend, exc)
                continue
            self.view = ConsoleView(self.config, fig)
            fig.canvas.mpl_connect("key_press_event", lambda e: self.on_key(e, True))
            fig.canvas.mpl_connect("key_release_event", lambda e: self.on_key(e, False))
            fig.canvas.mpl_connect("close_event", self.on_close)
            self.backend = backend.lower()
            return
        raise RuntimeError(f"no GUI backend could open a window ({last})")

    def make_window_figure(self, backend: str) -> Any:
        """A figure in a shown window of ``backend`` (raises if there is no display)."""
        import matplotlib

        matplotlib.use(backend, force=True)
        import matplotlib.pyplot as plt

        cfg = self.config
        fig = plt.figure(figsize=(cfg.width_px / 100, cfg.height_px / 100), dpi=100)
        with contextlib.suppress(AttributeError):
            fig.canvas.manager.set_window_title("Telesurgery console")
        plt.show(block=False)
        fig.canvas.flush_events()
        self.plt = plt
        return fig

    def on_key(self, event: Any, down: bool) -> None:
        name = normalize_key(getattr(event, "key", None))
        if name is None:
            return
        self.emit(type="key", key=name, down=down, t_ns=time.monotonic_ns())
        if down and name == "h" and self.view is not None:
            self.view.set_stats_visible(not self.view.stats_visible)
        elif down and name == "f12":
            self.snapshot_now = True

    def on_close(self, _event: Any = None) -> None:
        self.window_closed = True
        self.stop = True
        self.emit(type="closed", t_ns=time.monotonic_ns())

    # -- drawing ------------------------------------------------------------------------------
    def video_fps(self, now_ns: int) -> float | None:
        s = [x for x in self.video_samples if now_ns - x[1] <= 2_000_000_000]
        if len(s) < 2 or s[-1][1] <= s[0][1]:
            return 0.0 if self.have_video else None
        return (s[-1][0] - s[0][0]) / ((s[-1][1] - s[0][1]) / 1e9)

    def render(self, blink: bool = False) -> None:
        """Decode the newest frame if there is one, and update every artist (no drawing)."""
        view = self.view
        assert view is not None
        now_ns = time.monotonic_ns()
        if self.frame_new and self.frame is not None:
            self.frame_new = False
            try:
                view.set_frame(decode_jpeg(memoryview(self.frame)[_VIDEO_HDR.size :]))
                self.have_video = True
            except Exception as exc:  # a bad JPEG: count it, keep the last picture
                self.decode_errors += 1
                if self.decode_errors <= 3:
                    log.warning("could not decode a video frame: %s", exc)
        t = self.telemetry
        age_s = (now_ns - self.frame_rx_ns) / 1e9 if self.have_video else None
        latency_ms = None
        offset = _num(t, "clock_offset_ms")
        if self.have_video and offset is not None and self.frame_capture_ns:
            # arm clock -> console clock: t_console = t_arm - offset
            latency_ms = (now_ns - (self.frame_capture_ns - offset * 1e6)) / 1e6
        r = self.renders
        display_fps = (len(r) - 1) / (r[-1] - r[0]) if len(r) > 2 and r[-1] > r[0] else None
        view.update(
            t,
            have_video=self.have_video,
            video_age_s=age_s,
            video_latency_ms=latency_ms,
            video_fps=self.video_fps(now_ns),
            display_fps=display_fps,
            blink=blink,
        )

    def write_snapshot(self, draw: bool) -> None:
        """``latest.png`` (always) and a numbered snapshot (rotated), each appearing whole."""
        assert self.view is not None and self.snapshot_dir is not None
        d = self.snapshot_dir
        tmp = d / f".snapshot.{os.getpid()}.tmp.png"
        try:
            d.mkdir(parents=True, exist_ok=True)
            self.view.write_png(tmp, draw=draw)
            keep = self.config.keep_snapshots
            if keep > 0:
                self.snapshot_n += 1
                stamp = time.strftime("%Y%m%d-%H%M%S")
                name = d / f"snapshot-{stamp}-{self.snapshot_n:06d}.png"
                try:
                    os.link(tmp, name)  # a complete file appears at once
                except OSError:
                    tmp2 = d / f".snapshot.{os.getpid()}.tmp2.png"
                    shutil.copyfile(tmp, tmp2)
                    os.replace(tmp2, name)
                for old in sorted(d.glob("snapshot-*.png"))[:-keep]:
                    with contextlib.suppress(OSError):
                        old.unlink()
            latest = d / "latest.png"
            os.replace(tmp, latest)
            self.emit(type="snapshot", path=str(latest))
        except OSError as exc:
            log.warning("could not write a snapshot in %s: %s", d, exc)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> int:
        if self.mode == "window":
            try:
                self.open_window()
            except Exception as exc:
                log.warning("%s; running headless", exc)
                self.mode = "headless"
        if self.view is None:
            self.view = ConsoleView(self.config)
        view = self.view
        window = self.mode == "window"
        if window:
            view.enable_blit()
            view.fig.canvas.draw()
        elif self.snapshot_dir is None:
            log.warning("headless and no snapshot_dir: nothing will be rendered")
        self.emit(type="ready", mode=self.mode, backend=self.backend, pid=os.getpid())
        poller = zmq.Poller()
        for s in (self.video, self.tel, self.ctl):
            poller.register(s, zmq.POLLIN)
        refresh_s = 1.0 / self.config.refresh_hz
        panels_s = max(refresh_s, 1.0 / PANELS_HZ)
        snap_s = self.config.snapshot_every_s
        others = [p for p in view.panels if p != "video"]
        now = time.monotonic()
        next_draw = next_panels = now
        next_snap = now + min(snap_s, 0.25)  # a first picture soon after the start
        last_video = 0.0
        last_alarm: tuple[Any, Any] | None = None
        while not self.stop:
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                log.warning("the console process is gone; quitting")
                break
            now = time.monotonic()
            wake = next_snap if self.snapshot_dir is not None else now + 0.5
            if window:
                wake = min(wake, next_draw, now + 0.01)  # keep the GUI's events flowing
            if self.snapshot_now:
                wake = now
            poller.poll(max(0, int((wake - now) * 1000)))
            self.take_messages()
            if window:
                try:
                    view.fig.canvas.flush_events()
                except Exception:  # the window went away under us
                    self.on_close()
                if self.stop:
                    break
            now = time.monotonic()
            if window and now >= next_draw:
                new_frame = self.frame_new
                self.render(blink=int(now * 2) % 2 == 1)
                t = self.telemetry
                alarm = (t.get("health"), t.get("lost"))
                panels = []
                if new_frame or alarm != last_alarm or now - last_video >= 0.25:
                    panels.append("video")
                    last_video = now
                if alarm != last_alarm or now >= next_panels:
                    panels += others
                    next_panels = now + panels_s
                last_alarm = alarm
                if view.needs_full_draw:
                    view.needs_full_draw = False
                    view.fig.canvas.draw()  # new backgrounds; every panel drawn on them
                    drawn = True
                else:
                    drawn = bool(view.blit(panels))
                if drawn:
                    self.renders.append(now)
                next_draw = max(next_draw + refresh_s, now + 0.3 * refresh_s)
            if self.snapshot_dir is not None and (now >= next_snap or self.snapshot_now):
                if not window:
                    self.render()
                    self.renders.append(now)
                elif view.needs_full_draw:  # e.g. h was pressed since the last refresh
                    view.needs_full_draw = False
                    view.fig.canvas.draw()
                self.write_snapshot(draw=not window)  # a window's canvas is current already
                self.snapshot_now = False
                next_snap = max(next_snap + snap_s, time.monotonic() + 0.2 * snap_s)
            elif self.snapshot_now:
                self.snapshot_now = False
                log.warning("a snapshot was asked for, but no snapshot_dir is set")
        self.close()
        return 0

    def close(self) -> None:
        if self.plt is not None and not self.window_closed:
            with contextlib.suppress(Exception):
                self.plt.close("all")
        for s in (self.video, self.tel, self.ctl):
            s.close(linger=0)
        self.events.close(linger=100)  # a last "closed" event may still be on its way
        self.ctx.term()


def _serve(args: argparse.Namespace) -> int:
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # never compete with the control loop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the console's to handle
    config = DisplayConfig.from_dict(json.loads(args.config))
    proc = _DisplayProcess(config, args.ipc_dir, args.parent_pid)

    def on_term(_sig: int, _frame: Any) -> None:
        proc.stop = True

    signal.signal(signal.SIGTERM, on_term)
    return proc.run()


# ---------------------------------------------------------------------------------------------
# Demo
# ---------------------------------------------------------------------------------------------


def synthetic_frame(t_s: float, width: int = 640, height: int = 480) -> np.ndarray:
    """A synthetic endoscope picture (tissue, vessels, an instrument moving), H x W x 3 uint8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = width / 2, height / 2
    r = np.hypot((x - cx) / (0.62 * width), (y - cy) / (0.62 * height))
    vignette = np.clip(1.25 - r * r * 1.1, 0.0, 1.0)
    vessels = 0.5 + 0.5 * np.sin(x / 23.0 + 2.5 * np.sin(y / 41.0)) * np.sin(y / 31.0 + x / 57.0)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 205 - 40 * vessels
    img[..., 1] = 95 - 45 * vessels
    img[..., 2] = 90 - 35 * vessels
    img *= vignette[..., None]
    # the instrument: a grey shaft from the lower right towards a moving tip
    tx = cx + 0.18 * width * math.sin(0.9 * t_s)
    ty = cy + 0.12 * height * math.sin(1.3 * t_s)
    ex, ey = width * 1.05, height * 1.1
    dx, dy = ex - tx, ey - ty
    length = math.hypot(dx, dy)
    u = ((x - tx) * dx + (y - ty) * dy) / (length * length)
    dist = np.abs((x - tx) * dy - (y - ty) * dx) / length
    shaft = (u > 0) & (u < 1) & (dist < 0.028 * width)
    shade = np.clip(1.0 - dist / (0.028 * width), 0, 1)
    for c, base in enumerate((150, 155, 165)):
        img[..., c] = np.where(shaft, base * (0.55 + 0.45 * shade), img[..., c])
    jaw = (np.hypot(x - tx, y - ty) < 0.03 * width) & (u <= 0)
    img[jaw] = (60, 60, 66)
    return np.clip(img, 0, 255).astype(np.uint8)


def demo_telemetry(t_s: float, total_s: float, health: str | None = None) -> dict[str, Any]:
    """A telemetry dict for the demo: OK, then DEGRADED, then LOST over ``total_s``."""
    phase = t_s / max(total_s, 1e-9)
    h = health or ("OK" if phase < 0.4 else "DEGRADED" if phase < 0.7 else "LOST")
    reasons = {
        "OK": [],
        "DEGRADED": ["rtt p95 342.0 ms > 300.0 ms", "rx jitter 12.4 ms > 10.0 ms"],
        "LOST": ["rx silence 412.5 ms > 200.0 ms"],
    }[h]
    force = 4.0 + 4.5 * math.sin(0.7 * t_s) ** 2 if h != "OK" else 2.0 + math.sin(t_s)
    rtt = {"OK": 24.0, "DEGRADED": 318.0, "LOST": 325.0}[h]
    return {
        "t_ns": time.monotonic_ns(),
        "health": h,
        "health_reasons": reasons,
        "rtt_p50_ms": rtt + 2 * math.sin(3 * t_s),
        "rtt_p99_ms": rtt * 1.3,
        "jitter_ms": 0.6 if h == "OK" else 12.4,
        "loss_pct": 0.1 if h == "OK" else 2.5,
        "tx_loss_pct": 0.0 if h == "OK" else 1.8,
        "one_way_ms": rtt / 2,
        "state_age_ms": rtt / 2 + 1 if h != "LOST" else 412.5,
        "clock_offset_ms": 0.0,
        "force_n": [0.55 * force, -0.3 * force, -0.78 * force],
        "torque_nm": [0.01, -0.02, 0.004],
        "max_force_n": 10.0,
        "jaw_rad": 0.35,
        "operating_state": "ENABLED",
        "flags": {
            "LOST": ["watchdog_hold", "wait_reengage"],
            "DEGRADED": ["workspace_clamped"],
        }.get(h, []),
        "clutch": h == "OK",
        "operator_present": True,
        "armed": h != "LOST",
        "lost": h == "LOST",
        "commands_applied": int(t_s * 1000),
        "loop_lateness_p99_us": 85.0,
    }


def _demo(args: argparse.Namespace) -> int:
    import simplejpeg

    cfg = DisplayConfig(
        mode=args.mode,
        snapshot_dir=args.snapshot_dir,
        snapshot_every_s=args.snapshot_every_s,
        keep_snapshots=args.keep,
    )
    with DisplayFeed(cfg) as feed:
        if not feed.wait_ready(30.0):
            log.error("the display process did not come up")
            return 1
        print(f"display process {feed.pid}: mode {feed.mode} ({feed.backend})", flush=True)
        start = time.monotonic()
        next_frame = start
        asked_at: int | None = None
        while (now := time.monotonic()) - start < args.seconds and feed.alive:
            t = now - start
            if now >= next_frame:
                img = synthetic_frame(t)
                jpeg = simplejpeg.encode_jpeg(img, quality=85, colorspace="RGB")
                feed.publish_video(jpeg, img.shape[1], img.shape[0], time.monotonic_ns())
                next_frame += 1 / 30
            feed.publish_telemetry(lambda t=t: demo_telemetry(t, args.seconds, args.health))
            events = feed.keys()
            for key in events:
                print(f"key {key.name} {'down' if key.down else 'up'}", flush=True)
            if feed.quit_requested:
                break
            if asked_at is None and t >= 0.8 * args.seconds:
                asked_at = feed.snapshots
                feed.request_snapshot()  # while the video still runs
            time.sleep(0.001)
        deadline = time.monotonic() + 5.0
        while asked_at is not None and feed.snapshots <= asked_at and time.monotonic() < deadline:
            feed._drain_events(wait_ms=50)
        print(f"latest snapshot: {feed.last_snapshot}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m master_console.display",
        description="The surgeon's display process, and a demo of it.",
    )
    p.add_argument("--demo", action="store_true", help="show a synthetic frame and telemetry")
    p.add_argument("--render", metavar="PNG", help="render one picture with render_snapshot")
    p.add_argument("--snapshot-dir", help="where the demo writes snapshots")
    p.add_argument("--seconds", type=float, default=3.0, help="demo length")
    p.add_argument("--mode", default="auto", choices=MODES[:3], help="demo display mode")
    p.add_argument("--health", choices=("OK", "DEGRADED", "LOST"), help="fix the demo's health")
    p.add_argument("--snapshot-every-s", type=float, default=0.5)
    p.add_argument("--keep", type=int, default=20, help="numbered snapshots kept")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ipc-dir", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    fmt = f"display[{os.getpid()}] %(levelname)s: %(message)s" if args.serve else "%(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt)
    if args.serve:
        if not args.ipc_dir or not args.config:
            p.error("--serve needs --ipc-dir and --config")
        return _serve(args)
    if args.render:
        import simplejpeg

        img = synthetic_frame(1.0)
        jpeg = simplejpeg.encode_jpeg(img, quality=85, colorspace="RGB")
        texts = render_snapshot(args.render, jpeg, demo_telemetry(1.0, 1.0, args.health or "OK"))
        print(json.dumps(texts, indent=1, ensure_ascii=False))
        return 0
    if args.demo:
        if args.mode == "headless" and not args.snapshot_dir:
            p.error("--mode headless needs --snapshot-dir")
        return _demo(args)
    p.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
