"""The ACME stylus as a telesurgery input device: a template for a real 6-DOF master.

:class:`AcmeStylus` is an :class:`~master_console.devices.ThreadedDevice`: its reader thread
waits on a UDP socket, decodes every datagram (:mod:`acme_stylus.packet`), keeps the newest
valid one, converts it to the console's units and frame, and stamps it with
``time.monotonic_ns()`` on receipt (the stylus's own clock is another clock: it is kept in
:attr:`AcmeStylus.last_device_time_us` for diagnostics, never used as ``t_ns``). The console's
loop reads :meth:`latest` on every tick; it never blocks.

Units and frames, the part to get right for a real device:

* position: the stylus sends millimetres in its base frame (x right, y up, z toward the
  operator); the console wants metres in its master frame (x right, y away from the operator,
  z up), relative to the middle of the workspace: ``p = R · (p_mm − center_mm) / 1000`` with
  ``R`` = +90° about x (:data:`VENDOR_TO_CONSOLE`).
* orientation: the stylus sends a scalar-first quaternion (w, x, y, z); ours is (x, y, z, w),
  expressed in the console frame: ``q = q_R ⊗ q_stylus``.
* buttons: front button (held) → clutch, grip sensor → operator present, rear button → camera.
* grip 0 (relaxed) … 1 (squeezed) → jaw ``(1 − grip) · jaw_open_rad`` (squeezing closes it).
* safety: no valid packet for ``timeout_ms`` → one sample with the clutch out and the operator
  absent (the arm stops following), logged once; packets resume → samples resume.

Bad datagrams are counted by reason in :attr:`AcmeStylus.stats` and dropped; a packet older than
the newest one (by the stylus's 32-bit seq) is dropped as ``stale``. The reader never raises
on bad input.

Backends: ``"simulated"`` (default) starts a :class:`~acme_stylus.simulator.StylusSimulator`
that sends real UDP packets to this device on loopback (a free port), so everything from the
socket on is the code a real stylus runs through; ``"udp"`` listens on ``host``/``port`` for the
real stylus.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import select
import socket
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from master_console.devices import Buttons, InputSample, ThreadedDevice, quat_multiply

from acme_stylus.packet import (
    BUTTON_CAMERA,
    BUTTON_CLUTCH,
    BUTTON_PRESENT,
    PacketError,
    StylusPacket,
    decode_packet,
    seq_is_newer,
)
from acme_stylus.simulator import StylusSimulator

log = logging.getLogger(__name__)

VENDOR_TO_CONSOLE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Rotation from the stylus base frame (x right, y up, z toward the operator) to the console's
master frame (x right, y away from the operator, z up): +90° about x."""
_Q_VENDOR_TO_CONSOLE = np.array([math.sqrt(0.5), 0.0, 0.0, math.sqrt(0.5)])  # x y z w
BACKENDS = ("simulated", "udp")


@dataclass(frozen=True)
class AcmeStylusConfig:
    """Everything about one stylus; load it from TOML with :meth:`from_toml` (see
    ``acme_stylus.toml``). Unknown keys and bad values raise ValueError naming them."""

    backend: str = "simulated"
    """``"simulated"`` (a built-in stylus simulator on loopback) or ``"udp"`` (the real one)."""
    host: str = "127.0.0.1"
    """udp: the address to listen on (``"0.0.0.0"``: every interface)."""
    port: int = 5700
    """udp: the port the stylus sends to (the simulated backend picks a free one)."""
    sample_rate_hz: float = 500.0
    """The rate the stylus sends at (its data sheet's figure)."""
    center_mm: tuple[float, float, float] = (0.0, 150.0, -80.0)
    """The middle of the stylus's workspace, stylus frame (mm): the console's origin."""
    half_extent_mm: tuple[float, float, float] = (160.0, 120.0, 80.0)
    """How far the tip reaches from ``center_mm`` along each stylus axis (mm)."""
    jaw_open_rad: float = 1.0
    """The jaw angle with the grip relaxed (squeezed: 0)."""
    timeout_ms: float = 100.0
    """No valid packet for this long: clutch out, operator absent."""
    poll_timeout_ms: float = 20.0
    """How long the reader waits on the socket before looking at the timeout again."""
    sim_path_mm: float = 40.0
    """simulated: the amplitude of the path the simulated hand traces."""
    sim_clutch_every_s: float = 3.0
    """simulated: the hand releases the clutch briefly this often."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"host must be an address to listen on, got {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"port must be an integer, got {self.port!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        for name in ("center_mm", "half_extent_mm"):
            v = getattr(self, name)
            try:
                t = tuple(float(x) for x in v)
            except (TypeError, ValueError):
                t = ()
            if len(t) != 3 or not all(math.isfinite(x) for x in t):
                raise ValueError(f"{name} must be 3 finite numbers (mm), got {v!r}")
            object.__setattr__(self, name, t)
        if any(h <= 0 for h in self.half_extent_mm):
            raise ValueError(f"half_extent_mm must be > 0 on every axis, got {self.half_extent_mm}")
        for name in (
            "sample_rate_hz",
            "jaw_open_rad",
            "timeout_ms",
            "poll_timeout_ms",
            "sim_path_mm",
            "sim_clutch_every_s",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
            if v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")
            object.__setattr__(self, name, float(v))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AcmeStylusConfig:
        """Build from a dict (a TOML document or table); unknown keys raise ValueError."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown AcmeStylusConfig key(s) {', '.join(unknown)}; valid keys: "
                f"{', '.join(valid)}"
            )
        return cls(**dict(d))

    @classmethod
    def from_toml(cls, path: str | Path) -> AcmeStylusConfig:
        """Read a TOML file of :class:`AcmeStylusConfig` keys (e.g. ``acme_stylus.toml``)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ValueError(f"stylus config {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"stylus config {p} is not valid TOML: {exc}") from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{p}: {exc}") from None

    def position_range_m(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The reachable box, console frame (m), around the origin (``center_mm``)."""
        h = np.asarray(self.half_extent_mm) / 1000.0
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        c = (corners * h) @ VENDOR_TO_CONSOLE.T
        return tuple(c.min(axis=0).tolist()), tuple(c.max(axis=0).tolist())


def to_console_pose(packet: StylusPacket, center_mm: tuple[float, float, float]) -> np.ndarray:
    """The console pose (7,) — x y z (m, console frame, relative to ``center_mm``), qx qy qz qw
    — of a packet in the stylus's units and frame (a pure function)."""
    p_mm = np.asarray(packet.position_mm, dtype=float) - np.asarray(center_mm, dtype=float)
    w, x, y, z = packet.quaternion_wxyz
    q = quat_multiply(_Q_VENDOR_TO_CONSOLE, np.array([x, y, z, w], dtype=float))
    pose = np.empty(7)
    pose[:3] = VENDOR_TO_CONSOLE @ (p_mm / 1000.0)
    pose[3:] = q / np.linalg.norm(q)
    return pose


@dataclass
class StylusStats:
    """What the reader has seen: datagrams received, accepted, and dropped by reason."""

    received: int = 0
    accepted: int = 0
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    timeouts: int = 0


class AcmeStylus(ThreadedDevice):
    """An ACME 6-DOF stylus streaming UDP packets (a template for a real master device).

    Options (each also a key of ``[devices.acme-stylus]`` or ``--input-option KEY=VALUE``):
    ``config_path`` (a TOML file of :class:`AcmeStylusConfig` keys), and ``backend``, ``host``,
    ``port``, ``sample_rate_hz`` on top of it. ``config`` takes a ready config object.
    """

    name = "acme-stylus"
    button_roles = ("clutch", "operator_present", "camera")
    rate_input = False  # a pose device: the console's tremor filter applies

    def __init__(
        self,
        config: AcmeStylusConfig | None = None,
        *,
        config_path: str | None = None,
        backend: str | None = None,
        host: str | None = None,
        port: int | None = None,
        sample_rate_hz: float | None = None,
    ) -> None:
        if config is None:
            config = AcmeStylusConfig.from_toml(config_path) if config_path else AcmeStylusConfig()
        overrides = {
            k: v
            for k, v in (
                ("backend", backend),
                ("host", host),
                ("port", port),
                ("sample_rate_hz", sample_rate_hz),
            )
            if v is not None
        }
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        super().__init__(rate_hz=None)  # the socket paces the reader
        cfg = self.config
        self.sample_rate_hz = cfg.sample_rate_hz
        self.position_range_m = cfg.position_range_m()
        self.jaw_range_rad = (0.0, cfg.jaw_open_rad)
        self._sock: socket.socket | None = None
        self._sim: StylusSimulator | None = None
        self._stats = StylusStats()
        self._seq = 0
        self._last_packet_seq: int | None = None
        self._last_rx_ns: int | None = None
        self._last_pose: np.ndarray | None = None
        self._last_grip = 0.0
        self._timed_out = False
        self.last_device_time_us: int | None = None
        self.address: tuple[str, int] | None = None
        """The (host, port) the socket listens on, once connected."""

    @property
    def stats(self) -> StylusStats:
        s = self._stats
        return StylusStats(s.received, s.accepted, s.dropped, dict(s.reasons), s.timeouts)

    # -- lifecycle ----------------------------------------------------------------------------
    def _open(self) -> None:
        cfg = self.config
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if cfg.backend == "simulated":
                sock.bind(("127.0.0.1", 0))
            else:
                sock.bind((cfg.host, cfg.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                f"acme-stylus: cannot listen on {cfg.host}:{cfg.port} ({exc}); is another "
                "program using the port? set port in the stylus config"
            ) from exc
        self._sock = sock
        self.address = sock.getsockname()
        self._last_packet_seq = None
        self._last_rx_ns = time.monotonic_ns()
        self._timed_out = False
        if cfg.backend == "simulated":
            self._sim = StylusSimulator(
                self.address,
                rate_hz=cfg.sample_rate_hz,
                center_mm=cfg.center_mm,
                path_mm=cfg.sim_path_mm,
                clutch_every_s=cfg.sim_clutch_every_s,
            ).start()
        log.info("acme-stylus (%s) listening on %s:%d", cfg.backend, *self.address)

    def _close(self) -> None:
        if self._sim is not None:
            self._sim.stop()
            self._sim = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- reading ------------------------------------------------------------------------------
    def _drop(self, reason: str) -> None:
        s = self._stats
        s.dropped += 1
        s.reasons[reason] = s.reasons.get(reason, 0) + 1
        if s.dropped == 1 or s.dropped % 1000 == 0:
            log.warning("acme-stylus: dropped a packet (%s); %d so far", reason, s.dropped)

    def _drain(self, sock: socket.socket) -> StylusPacket | None:
        """Every datagram waiting; the newest valid packet, or None."""
        newest: StylusPacket | None = None
        while True:
            try:
                data = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return newest
            except OSError as exc:  # e.g. ICMP errors surfacing on a UDP socket: not ours
                log.debug("acme-stylus: recv: %s", exc)
                return newest
            self._stats.received += 1
            try:
                packet = decode_packet(data)
            except PacketError as exc:
                self._drop(exc.reason)
                continue
            last = self._last_packet_seq
            if last is not None and not seq_is_newer(packet.seq, last):
                self._drop("stale")  # duplicated or reordered on the network
                continue
            self._last_packet_seq = packet.seq
            self._stats.accepted += 1
            newest = packet

    def read_once(self) -> InputSample | None:
        sock = self._sock
        assert sock is not None
        cfg = self.config
        ready, _, _ = select.select([sock], [], [], cfg.poll_timeout_ms / 1000.0)
        packet = self._drain(sock) if ready else None
        now = time.monotonic_ns()
        if packet is None:
            silent_ns = now - (self._last_rx_ns or now)
            if not self._timed_out and silent_ns > cfg.timeout_ms * 1e6:
                self._timed_out = True
                self._stats.timeouts += 1
                self._last_packet_seq = None  # a restarted stylus counts from 0 again
                log.error(
                    "acme-stylus: no valid packet for %.0f ms: clutch out, operator absent",
                    silent_ns / 1e6,
                )
                if self._last_pose is not None:  # hold pose and jaw; let go of the arm
                    return self._sample(now, self._last_pose, self._last_grip, Buttons())
            return None
        if self._timed_out:
            log.warning("acme-stylus: packets are back")
            self._timed_out = False
        self._last_rx_ns = now
        self.last_device_time_us = packet.device_time_us
        pose = to_console_pose(packet, cfg.center_mm)
        pose.setflags(write=False)
        self._last_pose = pose
        self._last_grip = packet.grip
        b = packet.buttons
        buttons = Buttons(
            clutch=bool(b & BUTTON_CLUTCH),
            operator_present=bool(b & BUTTON_PRESENT),
            camera=bool(b & BUTTON_CAMERA),
        )
        return self._sample(now, pose, packet.grip, buttons)

    def _sample(self, t_ns: int, pose: np.ndarray, grip: float, buttons: Buttons) -> InputSample:
        self._seq += 1
        return InputSample(
            t_ns=t_ns,
            pose=pose,
            twist=None,
            jaw=(1.0 - grip) * self.config.jaw_open_rad,
            buttons=buttons,
            seq=self._seq,
        )


__all__ = [
    "BACKENDS",
    "VENDOR_TO_CONSOLE",
    "AcmeStylus",
    "AcmeStylusConfig",
    "StylusStats",
    "to_console_pose",
]
