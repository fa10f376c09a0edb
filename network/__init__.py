"""The link between the surgeon's console and the arm.

- :mod:`network.protocol`: the msgpack wire protocol (messages, validation, ``ProtocolError``).
- :mod:`network.link`: ZeroMQ endpoints, :class:`ConsoleLink` (surgeon side) and
  :class:`ArmLink` (patient side), with newest-wins commands, heartbeats and one controller.
- :mod:`network.monitor`: latency, jitter, loss, clock offset and link health.
- :mod:`network.impairment`: in-process delay, jitter, loss, reordering, bandwidth and outages,
  from named profiles (``network/profiles.toml``).
- :mod:`network.security`: CURVE keys, the allow-list authenticator, the bind-safety rule.

This package imports none of the project's other packages.
"""

from network.impairment import Impairment, ImpairmentProfile, get_profile, profile_names
from network.link import (
    ArmLink,
    ConsoleLink,
    LinkConfig,
    LinkError,
    LinkRejected,
    LinkTimeout,
    ReceivedCommand,
    ReceivedState,
    channel_endpoints,
)
from network.monitor import Health, LatencyMonitor, LinkStats, MonitorConfig
from network.protocol import PROTOCOL_VERSION, ProtocolError, decode, encode
from network.security import ClientSecurity, InsecureBindError, ServerSecurity

__all__ = [
    "PROTOCOL_VERSION",
    "ArmLink",
    "ClientSecurity",
    "ConsoleLink",
    "Health",
    "Impairment",
    "ImpairmentProfile",
    "InsecureBindError",
    "LatencyMonitor",
    "LinkConfig",
    "LinkError",
    "LinkRejected",
    "LinkStats",
    "LinkTimeout",
    "MonitorConfig",
    "ProtocolError",
    "ReceivedCommand",
    "ReceivedState",
    "ServerSecurity",
    "channel_endpoints",
    "decode",
    "encode",
    "get_profile",
    "profile_names",
]
