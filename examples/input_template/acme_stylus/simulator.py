"""A simulated ACME stylus: sends real version-1 UDP packets, as the hardware would.

:class:`StylusSimulator` runs on its own thread and sends one packet per period (absolute
deadlines, so the rate does not drift) to a host and port, with the vendor's units and frame
(millimetres, y up, scalar-first quaternion). The hand it simulates traces a slow, smooth
Lissajous path around the workspace centre, turns the stylus gently, squeezes and relaxes the
grip, keeps the grip sensor covered (operator present), holds the front button (clutch) except
for a short release every ``clutch_every_s`` (the first one at start, as a surgeon would), and
taps the rear (camera) button now and then. :meth:`StylusSimulator.packet_at` is the pure
function behind it, for tests.

Replace nothing here when adapting the template to real hardware: the simulator stays useful
for tests and demos without the device on the desk.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Sequence

from acme_stylus.packet import (
    BUTTON_CAMERA,
    BUTTON_CLUTCH,
    BUTTON_PRESENT,
    StylusPacket,
    encode_packet,
)

log = logging.getLogger(__name__)


class StylusSimulator:
    """The vendor's stylus, simulated, sending UDP packets to ``target`` (host, port)."""

    def __init__(
        self,
        target: tuple[str, int],
        rate_hz: float = 500.0,
        center_mm: Sequence[float] = (0.0, 150.0, -80.0),
        path_mm: float = 40.0,
        period_s: float = 8.0,
        clutch_every_s: float = 3.0,
        clutch_release_s: float = 0.3,
    ) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        if not clutch_every_s > clutch_release_s > 0:
            raise ValueError("clutch_every_s must exceed clutch_release_s > 0")
        self.target = target
        self.rate_hz = rate_hz
        self.center_mm = tuple(float(c) for c in center_mm)
        self.path_mm = path_mm
        self.period_s = period_s
        self.clutch_every_s = clutch_every_s
        self.clutch_release_s = clutch_release_s
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def packet_at(self, t_s: float, seq: int = 0) -> StylusPacket:
        """The packet the stylus sends ``t_s`` seconds after it started (vendor units)."""
        w = 2.0 * math.pi / self.period_s
        a = self.path_mm
        cx, cy, cz = self.center_mm
        x = cx + a * math.sin(w * t_s)
        y = cy + 0.5 * a * math.sin(2.0 * w * t_s + 0.7)
        z = cz + 0.75 * a * math.sin(0.5 * w * t_s + 1.3)
        yaw = 0.3 * math.sin(0.5 * w * t_s)  # about the vendor's y (up) axis
        quat = (math.cos(0.5 * yaw), 0.0, math.sin(0.5 * yaw), 0.0)  # w, x, y, z
        buttons = BUTTON_PRESENT
        if t_s % self.clutch_every_s >= self.clutch_release_s:
            buttons |= BUTTON_CLUTCH
        if t_s % 5.0 >= 4.8:
            buttons |= BUTTON_CAMERA
        grip = 0.5 + 0.4 * math.sin(2.0 * math.pi * t_s / 5.0)
        return StylusPacket(
            seq=seq,
            device_time_us=int(t_s * 1e6),
            position_mm=(x, y, z),
            quaternion_wxyz=quat,
            buttons=buttons,
            grip=grip,
        )

    def start(self) -> StylusSimulator:
        if self._thread is not None:
            return self
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="acme-stylus-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        period_ns = round(1e9 / self.rate_hz)
        start = time.monotonic_ns()
        n = 0
        while not self._stop.is_set():
            deadline = start + n * period_ns
            now = time.monotonic_ns()
            if now < deadline:
                time.sleep((deadline - now) / 1e9)
            elif now - deadline > period_ns:  # fell behind: skip, on the same grid
                n = (now - start) // period_ns
                deadline = start + n * period_ns
            packet = self.packet_at((deadline - start) / 1e9, seq=n)
            try:
                sock.sendto(encode_packet(packet), self.target)
                self.sent += 1
            except OSError as exc:  # nobody listening yet (ICMP refused): keep sending
                log.debug("stylus simulator: send failed: %s", exc)
            n += 1

    def __enter__(self) -> StylusSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["StylusSimulator"]
