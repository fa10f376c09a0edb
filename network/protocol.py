"""The wire protocol: msgpack messages between the surgeon's console and the arm.

Every message is one msgpack map (the *header*) with two envelope keys, ``"v"`` (protocol version,
int) and ``"type"`` (str), plus the fields of its type. A video frame adds a second ZeroMQ frame
with the encoded image bytes. ``docs/PROTOCOL.md`` is the normative description; this module is its
reference implementation.

Rules that keep the patient side safe:

* Decoding validates everything (size, msgpack form, version, type, the exact set of fields, each
  field's type, shape and range, finiteness, unit quaternions, consistency of the arm description).
  Any violation raises :class:`ProtocolError` and nothing else, so a server can reject, count and
  log it and carry on.
* Targets are absolute (a pose, never an increment): a lost message can never make the arm drift.
* Units are SI and named in the field where they could be doubted. Poses are 7 floats:
  position x, y, z in metres, then a unit quaternion qx, qy, qz, qw.
* Timestamps are int64 nanoseconds from the sender's monotonic clock; 0 means "none" (as in CRTK).
* Never pickle.

The message types are msgspec structs: msgspec decodes and validates a command in well under a
microsecond (a hand-written Python validator took ~5 µs), which matters on a 1 kHz path. Structs
are immutable and are checked on construction too (``__post_init__``), so an invalid pose cannot
even be built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeAlias

import msgspec

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

MAX_HEADER_BYTES = 64 * 1024
"""Largest accepted msgpack header (every message but a video frame's image)."""
MAX_VIDEO_BYTES = 8 * 1024 * 1024
"""Largest accepted encoded video image."""
MAX_DOF = 16
MAX_STR = 256
MAX_LIST = 64
MAX_IMAGE_SIDE = 4096
INT64_MAX = 2**63 - 1
QUATERNION_NORM_TOL = 1e-3

OPERATING_STATES = ("DISABLED", "ENABLED", "PAUSED", "FAULT")
ROLES = ("controller", "observer")
COMMAND_MODES = ("servo_cp", "hold")
JOINT_TYPES = ("revolute", "prismatic")
VIDEO_ENCODINGS = ("jpeg",)
REJECT_CODES = ("busy", "version", "not_controller", "bad_request", "shutting_down")

# ---------------------------------------------------------------------------------------------
# Field types (msgspec validates them while decoding, in C)
# ---------------------------------------------------------------------------------------------
_FMAX = 1.7976931348623157e308
F64 = Annotated[float, msgspec.Meta(ge=-_FMAX, le=_FMAX)]  # finite: NaN and ±inf fail
Positive = Annotated[float, msgspec.Meta(gt=0.0, le=_FMAX)]
U64 = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
U16 = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Side = Annotated[int, msgspec.Meta(ge=1, le=MAX_IMAGE_SIDE)]
Name = Annotated[str, msgspec.Meta(max_length=64)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_STR)]
Versions = Annotated[tuple[U16, ...], msgspec.Meta(max_length=16)]
Floats = Annotated[tuple[F64, ...], msgspec.Meta(max_length=MAX_DOF)]
Vec3: TypeAlias = tuple[F64, F64, F64]
Wrench: TypeAlias = tuple[F64, F64, F64, F64, F64, F64]
Pose: TypeAlias = tuple[F64, F64, F64, F64, F64, F64, F64]
Role = Literal["controller", "observer"]

IDENTITY_POSE: Pose = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
ZERO_WRENCH: Wrench = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


class ProtocolError(ValueError):
    """A message that must not be used. ``reason`` says what was wrong, in words.

    ``code`` is one of ``size``, ``malformed``, ``version``, ``type``, ``field``; ``msg_type`` and
    ``peer_version`` are filled in when they could be read (a server uses them to answer a hello
    from an incompatible peer with a reject that names both versions).
    """

    def __init__(
        self,
        reason: str,
        code: str = "field",
        msg_type: str | None = None,
        peer_version: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.msg_type = msg_type
        self.peer_version = peer_version


def _quaternion_error(pose: Sequence[float], name: str) -> str | None:
    n = math.sqrt(pose[3] * pose[3] + pose[4] * pose[4] + pose[5] * pose[5] + pose[6] * pose[6])
    if abs(n - 1.0) > QUATERNION_NORM_TOL:
        return f"field '{name}': orientation quaternion has norm {n:.6g}, expected 1"
    return None


def check_pose(value: Any, name: str = "pose") -> Pose:
    """Validate a pose given as any sequence of 7 numbers; returns it as a tuple of floats.

    Raises :class:`ProtocolError` (a ``ValueError``) for the wrong length, a non-finite number or
    a quaternion whose norm is not 1 (±1e-3).
    """
    try:
        pose = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        raise ProtocolError(
            f"field '{name}': expected 7 numbers: x, y, z (m), qx, qy, qz, qw"
        ) from None
    if len(pose) != 7:
        raise ProtocolError(f"field '{name}': expected 7 numbers, got {len(pose)}")
    if not all(math.isfinite(x) for x in pose):
        raise ProtocolError(f"field '{name}': {pose} holds a number that is not finite")
    err = _quaternion_error(pose, name)
    if err:
        raise ProtocolError(err)
    return pose  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Nested maps
# ---------------------------------------------------------------------------------------------
class _Map(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A nested map of a message: fields without a default are required, no others allowed."""


class CameraDescription(_Map, frozen=True):
    """The endoscope camera: image size in pixels, frame rate and encoding."""

    width: Side = 320
    height: Side = 240
    rate_hz: Annotated[float, msgspec.Meta(ge=0.0, le=1000.0)] = 30.0
    encoding: Literal["jpeg"] = "jpeg"


class TaskInfo(_Map, frozen=True):
    """A training task the arm's simulator runs (in ``ArmDescription.task``; absent otherwise).

    ``points``: named point sets in the arm's base frame (m), e.g. ``targets``, ``pegs_from``,
    ``pegs_to``, ``rings``, ``search_area``; ``values``: named numbers with units in the names,
    e.g. ``time_limit_s``, ``force_limit_n``, ``touch_radius_m``. The task's live progress
    travels in ``State.counters`` under names starting ``task_`` (see docs/PROTOCOL.md).
    """

    name: Name
    goal: Text
    points: Annotated[dict[Name, tuple[Vec3, ...]], msgspec.Meta(max_length=MAX_LIST)] = (
        msgspec.field(default_factory=dict)
    )
    values: Annotated[dict[Name, F64], msgspec.Meta(max_length=MAX_LIST)] = msgspec.field(
        default_factory=dict
    )


class ArmDescription(_Map, frozen=True, omit_defaults=True):
    """What a console needs to know about the arm, sent in the welcome.

    Joint positions are in radians (revolute) or metres (prismatic), as ``joint_types`` says.
    The workspace box bounds the tool tip in the arm's base frame.
    """

    name: Name
    dof: Annotated[int, msgspec.Meta(ge=1, le=MAX_DOF)]
    joint_names: Annotated[tuple[Name, ...], msgspec.Meta(max_length=MAX_DOF)]
    joint_types: Annotated[
        tuple[Literal["revolute", "prismatic"], ...], msgspec.Meta(max_length=MAX_DOF)
    ]
    joint_lower: Floats
    joint_upper: Floats
    workspace_min_m: Vec3
    workspace_max_m: Vec3
    max_tool_speed_m_s: Positive
    max_angular_speed_rad_s: Positive
    jaw_range_rad: tuple[F64, F64]
    max_force_n: Positive
    control_rate_hz: Positive
    camera: CameraDescription
    task: TaskInfo | None = None

    def __post_init__(self) -> None:
        n = self.dof
        for name in ("joint_names", "joint_types", "joint_lower", "joint_upper"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"field 'arm.{name}': has {len(getattr(self, name))} items, dof {n}"
                )
        for i, (lo, hi) in enumerate(zip(self.joint_lower, self.joint_upper, strict=True)):
            if lo > hi:
                raise ValueError(f"field 'arm.joint_lower[{i}]': {lo} is above joint_upper {hi}")
        if any(a >= b for a, b in zip(self.workspace_min_m, self.workspace_max_m, strict=True)):
            raise ValueError("field 'arm.workspace_min_m': each minimum must be below its maximum")
        if self.jaw_range_rad[0] > self.jaw_range_rad[1]:
            raise ValueError("field 'arm.jaw_range_rad': minimum is above maximum")

    @classmethod
    def example(cls) -> ArmDescription:
        """A laparoscopic instrument arm with a remote centre of motion (da Vinci PSM-like).

        Used by tests and the link benchmark until a driver describes itself.
        """
        return cls(
            name="example-rcm-arm",
            dof=7,
            joint_names=(
                "outer_yaw",
                "outer_pitch",
                "insertion",
                "tool_roll",
                "wrist_pitch",
                "wrist_yaw",
                "jaw",
            ),
            joint_types=("revolute", "revolute", "prismatic") + ("revolute",) * 4,
            joint_lower=(-1.2, -0.8, 0.0, -3.0, -1.4, -1.4, 0.0),
            joint_upper=(1.2, 0.8, 0.24, 3.0, 1.4, 1.4, 1.0),
            workspace_min_m=(-0.1, -0.1, -0.2),
            workspace_max_m=(0.1, 0.1, 0.0),
            max_tool_speed_m_s=0.2,
            max_angular_speed_rad_s=3.0,
            jaw_range_rad=(0.0, 1.0),
            max_force_n=10.0,
            control_rate_hz=1000.0,
            camera=CameraDescription(),
        )


class JointState(_Map, frozen=True):
    """CRTK ``measured_js``: joint position (rad or m), velocity (rad/s, m/s), effort (N·m, N)."""

    position: Floats = ()
    velocity: Floats = ()
    effort: Floats = ()

    def __post_init__(self) -> None:
        if not len(self.position) == len(self.velocity) == len(self.effort):
            raise ValueError(
                "field 'measured_js': position, velocity and effort must have the same length"
            )


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
class Message(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", kw_only=True
):
    """Base of all messages. ``TYPE`` is the wire ``type`` string; ``v`` the protocol version."""

    TYPE: ClassVar[str] = ""
    v: U16 = PROTOCOL_VERSION


class Hello(Message, frozen=True, tag="hello"):
    """Console -> arm, control channel: ask to join as controller or observer."""

    TYPE: ClassVar[str] = "hello"
    send_ns: U64
    role: Role
    client_name: Name
    versions: Versions = SUPPORTED_VERSIONS


class Welcome(Message, frozen=True, tag="welcome"):
    """Arm -> console, control channel: the hello is accepted."""

    TYPE: ClassVar[str] = "welcome"
    send_ns: U64
    hello_send_ns: U64
    role: Role
    version: U16
    session: Name
    arm: ArmDescription
    heartbeat_interval_ms: Positive
    controller_timeout_ms: Positive


class Reject(Message, frozen=True, tag="reject"):
    """Arm -> console, control channel: a hello (or a command from a non-controller) is refused."""

    TYPE: ClassVar[str] = "reject"
    send_ns: U64
    hello_send_ns: U64
    code: Literal["busy", "version", "not_controller", "bad_request", "shutting_down"]
    reason: Text
    supported_versions: Versions = SUPPORTED_VERSIONS


class Command(Message, frozen=True, tag="command"):
    """Console -> arm, control channel, streamed at the console rate. Absolute targets only.

    ``servo_cp`` is the tool pose target in the arm's base frame; ``servo_jaw`` the jaw angle (rad).
    ``clutch_engaged`` is true while the master is coupled to the arm; ``operator_present`` is the
    surgeon-presence sensor. ``echo_*`` repeat the newest state-channel message the console has
    received (its seq and send time, and the console's receive time), so the arm can measure the
    round trip and the clock offset; zeros mean none yet.
    """

    TYPE: ClassVar[str] = "command"
    seq: U64
    send_ns: U64
    mode: Literal["servo_cp", "hold"]
    servo_cp: Pose
    servo_jaw: Annotated[float, msgspec.Meta(ge=-math.pi, le=math.pi)]
    clutch_engaged: bool
    operator_present: bool
    echo_seq: U64 = 0
    echo_send_ns: U64 = 0
    echo_rx_ns: U64 = 0

    def __post_init__(self) -> None:
        err = _quaternion_error(self.servo_cp, "servo_cp")
        if err:
            raise ValueError(err)


class State(Message, frozen=True, tag="state"):
    """Arm -> consoles, state channel, published at the arm's control rate.

    ``ack_*`` identify the command the arm applied last: its seq and send time (console clock) and
    the arm's receive time of it (arm clock); zeros before any. ``setpoint_cp`` is the target the
    arm actually applied after the safety supervisor's clamps; ``measured_cf`` is the wrench on the
    instrument in the tool frame (fx, fy, fz in N, tx, ty, tz in N·m). ``safety_flags`` name every
    active intervention; ``counters`` are cumulative counts (link and safety).
    """

    TYPE: ClassVar[str] = "state"
    seq: U64
    send_ns: U64
    ack_seq: U64
    ack_send_ns: U64
    ack_rx_ns: U64
    operating_state: Literal["DISABLED", "ENABLED", "PAUSED", "FAULT"]
    is_homed: bool
    is_busy: bool
    measured_cp: Pose
    setpoint_cp: Pose
    measured_js: JointState
    measured_cf: Wrench
    measured_jaw: F64
    safety_flags: Annotated[tuple[Name, ...], msgspec.Meta(max_length=32)] = ()
    counters: Annotated[dict[Name, U64], msgspec.Meta(max_length=MAX_LIST)] = msgspec.field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        err = _quaternion_error(self.measured_cp, "measured_cp") or _quaternion_error(
            self.setpoint_cp, "setpoint_cp"
        )
        if err:
            raise ValueError(err)


class Heartbeat(Message, frozen=True, tag="heartbeat"):
    """Either way, when a side has sent nothing else for a heartbeat interval.

    It shares the ``seq`` counter of the stream it travels on (commands console -> arm, states
    arm -> console) and echoes the newest message received from the peer, like a command does.
    """

    TYPE: ClassVar[str] = "heartbeat"
    seq: U64
    send_ns: U64
    echo_seq: U64 = 0
    echo_send_ns: U64 = 0
    echo_rx_ns: U64 = 0


class Bye(Message, frozen=True, tag="bye"):
    """Console -> arm, control channel: leaving; a controller frees the arm for another console."""

    TYPE: ClassVar[str] = "bye"
    send_ns: U64
    reason: Text = ""


class _VideoHeader(Message, frozen=True, tag="video"):
    """The header frame of a video message (the image follows as a second frame)."""

    TYPE: ClassVar[str] = "video"
    seq: U64
    capture_ns: U64
    send_ns: U64
    encoding: Literal["jpeg"]
    width: Side
    height: Side
    nbytes: Annotated[int, msgspec.Meta(ge=0, le=MAX_VIDEO_BYTES)]


class VideoFrame(msgspec.Struct, frozen=True):
    """Arm -> consoles, video channel: one encoded endoscope image.

    On the wire the header holds every field but ``data`` (plus ``nbytes``); the image bytes
    follow as a second ZeroMQ frame of exactly ``nbytes`` bytes.
    """

    TYPE: ClassVar[str] = "video"
    seq: int
    capture_ns: int
    send_ns: int
    encoding: str
    width: int
    height: int
    data: bytes = b""
    v: int = PROTOCOL_VERSION

    @property
    def nbytes(self) -> int:
        return len(self.data)


MESSAGE_TYPES: dict[str, type] = {
    cls.TYPE: cls for cls in (Hello, Welcome, Reject, Command, State, Heartbeat, Bye, VideoFrame)
}
_WIRE_TYPES = (Hello, Welcome, Reject, Command, State, Heartbeat, Bye, _VideoHeader)


class _Envelope(msgspec.Struct):
    v: Any = None
    type: Any = None


_ENCODER = msgspec.msgpack.Encoder()
_ENVELOPE = msgspec.msgpack.Decoder(_Envelope)
_BODY = msgspec.msgpack.Decoder(
    Hello | Welcome | Reject | Command | State | Heartbeat | Bye | _VideoHeader
)


def encode(msg: Message | VideoFrame) -> list[bytes]:
    """Encode a message into its ZeroMQ frames (one, or two for a video frame)."""
    if type(msg) is VideoFrame:
        header = _VideoHeader(
            seq=msg.seq,
            capture_ns=msg.capture_ns,
            send_ns=msg.send_ns,
            encoding=msg.encoding,  # type: ignore[arg-type]
            width=msg.width,
            height=msg.height,
            nbytes=len(msg.data),
        )
        return [_ENCODER.encode(header), bytes(msg.data)]
    return [_ENCODER.encode(msg)]


# msgspec raises DecodeError for bad msgpack but UnicodeDecodeError for bad UTF-8 in a string
_MALFORMED = (msgspec.DecodeError, UnicodeDecodeError, ValueError, TypeError, RecursionError)
_AT = re.compile(r"^(.*) - at `\$(.*)`$", re.S)
_KEY_AT = re.compile(r"^(.*) - at `key` in `\$(.*)`$", re.S)
_NAN_LO = re.compile(r"Expected `float` >= -1\.7976931348623157e\+308")
_NAN_HI = re.compile(r"Expected `float` <= 1\.7976931348623157e\+308")


def _reason(msg_type: str, exc: Exception) -> str:
    """msgspec's message, in our words: ``field 'command.servo_cp[2]': <what>``."""
    text = str(exc)
    text = _NAN_LO.sub("Expected a finite number, got NaN or -infinity", text)
    text = _NAN_HI.sub("Expected a finite number, got +infinity", text)
    m = _KEY_AT.match(text)
    if m:
        what, path = m.groups()
        return f"field '{msg_type}{path}' (a key): {what[0].lower()}{what[1:]}"
    m = _AT.match(text)
    if m:
        what, path = m.groups()
        return f"field '{msg_type}{path}': {what[0].lower()}{what[1:]}"
    if text.startswith("field '"):  # raised by a __post_init__ check, already in our words
        return text[:7] + f"{msg_type}." + text[7:]
    return f"{msg_type}: {text[0].lower()}{text[1:]}"


def decode(frames: Sequence[bytes | memoryview]) -> Message | VideoFrame:
    """Decode and validate one message from its ZeroMQ frames.

    Raises :class:`ProtocolError` (and never anything else) for any bad input.
    """
    if not isinstance(frames, (list, tuple)) or not 1 <= len(frames) <= 2:
        n = len(frames) if isinstance(frames, (list, tuple)) else "?"
        raise ProtocolError(f"expected 1 or 2 frames, got {n}", "malformed")
    data = frames[0]
    if not isinstance(data, (bytes, memoryview, bytearray)):
        raise ProtocolError("frame 0 is not bytes", "malformed")
    if len(data) > MAX_HEADER_BYTES:
        raise ProtocolError(
            f"message of {len(data)} bytes exceeds the {MAX_HEADER_BYTES}-byte limit", "size"
        )
    try:
        env = _ENVELOPE.decode(data)
    except _MALFORMED as exc:  # a ValidationError here means: not a map
        raise ProtocolError(f"not a valid msgpack map: {exc}", "malformed") from None
    msg_type, version = env.type, env.v
    if type(msg_type) is not str or msg_type not in MESSAGE_TYPES:
        shown = repr(msg_type)[:40]
        raise ProtocolError(
            f"unknown message type {shown}; expected one of {', '.join(MESSAGE_TYPES)}", "type"
        )
    if type(version) is not int:
        raise ProtocolError(
            "field 'v' (protocol version) missing or not an integer", "version", msg_type
        )
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            f"protocol version {version} is not supported (this side speaks "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))})",
            "version",
            msg_type,
            version,
        )
    try:
        msg = _BODY.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_reason(msg_type, exc), "field", msg_type) from None
    except _MALFORMED as exc:
        raise ProtocolError(f"not a valid msgpack message: {exc}", "malformed", msg_type) from None
    if type(msg) is _VideoHeader:
        return _attach_video(msg, frames)
    if len(frames) != 1:
        raise ProtocolError(f"a {msg_type} message has 1 frame, got {len(frames)}", "malformed")
    return msg


def _attach_video(h: _VideoHeader, frames: Sequence[bytes | memoryview]) -> VideoFrame:
    if len(frames) != 2:
        raise ProtocolError("a video message has 2 frames (header, image)", "malformed", "video")
    image = frames[1]
    if not isinstance(image, (bytes, memoryview, bytearray)):
        raise ProtocolError("video frame 1 is not bytes", "malformed", "video")
    if len(image) != h.nbytes:
        raise ProtocolError(
            f"video image has {len(image)} bytes, header says nbytes={h.nbytes}", "field", "video"
        )
    return VideoFrame(h.seq, h.capture_ns, h.send_ns, h.encoding, h.width, h.height, bytes(image))


def field_names(cls: type) -> tuple[str, ...]:
    """The wire field names of a message type (without the ``v``/``type`` envelope)."""
    wire = _VideoHeader if cls is VideoFrame else cls
    return tuple(f for f in wire.__struct_fields__ if f != "v")


def required_fields(cls: type) -> tuple[str, ...]:
    """The wire fields a peer must send (the others have the documented default)."""
    wire = _VideoHeader if cls is VideoFrame else cls
    return tuple(
        f.name
        for f in msgspec.structs.fields(wire)
        if f.name != "v"
        and f.default is msgspec.NODEFAULT
        and f.default_factory is msgspec.NODEFAULT
    )


__all__ = [
    "COMMAND_MODES",
    "IDENTITY_POSE",
    "MAX_HEADER_BYTES",
    "MAX_VIDEO_BYTES",
    "MESSAGE_TYPES",
    "OPERATING_STATES",
    "PROTOCOL_VERSION",
    "REJECT_CODES",
    "ROLES",
    "SUPPORTED_VERSIONS",
    "ZERO_WRENCH",
    "ArmDescription",
    "Bye",
    "CameraDescription",
    "Command",
    "Heartbeat",
    "Hello",
    "JointState",
    "Message",
    "Pose",
    "ProtocolError",
    "Reject",
    "State",
    "TaskInfo",
    "VideoFrame",
    "Welcome",
    "Wrench",
    "check_pose",
    "decode",
    "encode",
    "field_names",
    "required_fields",
]
