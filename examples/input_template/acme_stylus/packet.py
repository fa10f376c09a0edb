"""The ACME stylus's UDP packet, version 1, as the (fictional) vendor documents it.

The stylus sends one datagram per sample to a configured host and port. Every field is
little-endian; the packet is exactly :data:`PACKET_SIZE` (56) bytes:

======  ====  ========  =========================================================================
offset  size  type      field
======  ====  ========  =========================================================================
0       4     bytes     magic ``b"ACME"``
4       1     uint8     version, ``1``
5       1     uint8     flags (reserved, ignored)
6       2     uint16    reserved (ignored)
8       4     uint32    seq: +1 per packet, wraps at 2**32
12      8     uint64    device time (µs, the stylus's own clock since it powered on)
20      12    3×float32 x, y, z (**millimetres**, stylus base frame: x right, y up, z toward the
                        operator)
32      16    4×float32 orientation as a unit quaternion, **scalar first**: w, x, y, z
48      2     uint16    buttons: bit 0 front button (clutch), bit 1 rear button (camera), bit 2
                        grip sensor (a hand holds the stylus); other bits reserved (ignored)
50      2     uint16    reserved (ignored)
52      4     float32   grip: 0 = relaxed, 1 = fully squeezed
======  ====  ========  =========================================================================

:func:`decode_packet` validates a datagram and raises :class:`PacketError` (with a short
``reason`` to count) for anything else: wrong size, magic or version, a number that is not
finite, a quaternion whose norm is not 1 ± 0.05, a grip outside [0, 1]. Converting to the
console's units and frame is the device's job (:mod:`acme_stylus.device`), not the packet's.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

MAGIC = b"ACME"
VERSION = 1
_FORMAT = struct.Struct("<4sBBHIQ3f4fHHf")
PACKET_SIZE = _FORMAT.size
BUTTON_CLUTCH = 1 << 0
"""The front button: held = clutch engaged."""
BUTTON_CAMERA = 1 << 1
"""The rear button: the camera button."""
BUTTON_PRESENT = 1 << 2
"""The capacitive grip sensor: a hand holds the stylus (operator present)."""
QUATERNION_NORM_TOL = 0.05

assert PACKET_SIZE == 56


class PacketError(ValueError):
    """A datagram that is not a valid version-1 packet; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class StylusPacket:
    """One decoded packet, in the vendor's units and frame (see the module docstring)."""

    seq: int
    device_time_us: int
    position_mm: tuple[float, float, float]
    quaternion_wxyz: tuple[float, float, float, float]
    buttons: int
    grip: float


def encode_packet(p: StylusPacket) -> bytes:
    """The 56-byte datagram for ``p`` (what the stylus, or the simulator, sends)."""
    return _FORMAT.pack(
        MAGIC,
        VERSION,
        0,
        0,
        p.seq & 0xFFFFFFFF,
        p.device_time_us & 0xFFFFFFFFFFFFFFFF,
        *p.position_mm,
        *p.quaternion_wxyz,
        p.buttons & 0xFFFF,
        0,
        p.grip,
    )


def decode_packet(data: bytes) -> StylusPacket:
    """Validate one datagram; the packet, or :class:`PacketError` saying why not."""
    if len(data) != PACKET_SIZE:
        raise PacketError("size", f"{len(data)} bytes, expected {PACKET_SIZE}")
    magic, version, _flags, _r0, seq, t_us, x, y, z, qw, qx, qy, qz, buttons, _r1, grip = (
        _FORMAT.unpack(data)
    )
    if magic != MAGIC:
        raise PacketError("magic", repr(magic))
    if version != VERSION:
        raise PacketError("version", f"version {version}, this driver reads {VERSION}")
    values = (x, y, z, qw, qx, qy, qz, grip)
    if not all(math.isfinite(v) for v in values):
        raise PacketError("non_finite", f"{values}")
    norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    if abs(norm - 1.0) > QUATERNION_NORM_TOL:
        raise PacketError("quaternion", f"norm {norm:.3f} is not 1 ± {QUATERNION_NORM_TOL}")
    if not 0.0 <= grip <= 1.0:
        raise PacketError("grip", f"{grip} is outside [0, 1]")
    return StylusPacket(seq, t_us, (x, y, z), (qw, qx, qy, qz), buttons, grip)


def seq_is_newer(seq: int, last: int) -> bool:
    """Whether 32-bit ``seq`` comes after ``last`` (serial-number arithmetic, so the wrap at
    2**32 is no jump back)."""
    d = (seq - last) & 0xFFFFFFFF
    return 0 < d < 0x80000000


__all__ = [
    "BUTTON_CAMERA",
    "BUTTON_CLUTCH",
    "BUTTON_PRESENT",
    "MAGIC",
    "PACKET_SIZE",
    "VERSION",
    "PacketError",
    "StylusPacket",
    "decode_packet",
    "encode_packet",
    "seq_is_newer",
]
