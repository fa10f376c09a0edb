"""ACME stylus: a template input device package for the telesurgery master console.

Installed, it registers ``acme-stylus`` in the entry-point group ``telesurgery.input_devices``
(see ``pyproject.toml``), so ``master-console --input acme-stylus`` finds it. Copy this package
to attach your own master device; the README says what to change.
"""

from acme_stylus.device import AcmeStylus, AcmeStylusConfig, to_console_pose
from acme_stylus.packet import PacketError, StylusPacket, decode_packet, encode_packet
from acme_stylus.simulator import StylusSimulator

__all__ = [
    "AcmeStylus",
    "AcmeStylusConfig",
    "PacketError",
    "StylusPacket",
    "StylusSimulator",
    "decode_packet",
    "encode_packet",
    "to_console_pose",
]
