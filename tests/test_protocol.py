"""The wire protocol: every message round-trips; every malformed input gets ProtocolError."""

from __future__ import annotations

import math
import random
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from network import protocol as P
from network.protocol import (
    ArmDescription,
    Bye,
    Command,
    Heartbeat,
    Hello,
    JointState,
    ProtocolError,
    Reject,
    State,
    VideoFrame,
    Welcome,
    decode,
    encode,
)

# ---------------------------------------------------------------------------------------------
# Strategies for valid messages
# ---------------------------------------------------------------------------------------------
u64 = st.integers(0, 2**63 - 1)
f64 = st.floats(allow_nan=False, allow_infinity=False, width=64)
small = st.floats(-10.0, 10.0, allow_nan=False)
text64 = st.text(max_size=64)


@st.composite
def poses(draw: st.DrawFn) -> P.Pose:
    pos = draw(st.tuples(small, small, small))
    q = draw(
        st.tuples(*[st.floats(-1, 1, allow_nan=False)] * 4).filter(
            lambda q: sum(x * x for x in q) > 1e-3
        )
    )
    n = math.sqrt(sum(x * x for x in q))
    return (*pos, *(x / n for x in q))  # type: ignore[return-value]


@st.composite
def joint_states(draw: st.DrawFn) -> JointState:
    n = draw(st.integers(0, P.MAX_DOF))
    vec = st.tuples(*[f64] * n)
    return JointState(draw(vec), draw(vec), draw(vec))


@st.composite
def arms(draw: st.DrawFn) -> ArmDescription:
    n = draw(st.integers(1, P.MAX_DOF))
    lo = draw(st.tuples(*[st.floats(-5, 0, allow_nan=False)] * n))
    hi = tuple(x + draw(st.floats(0, 5)) for x in lo)
    wmin = draw(st.tuples(small, small, small))
    return ArmDescription(
        name=draw(text64),
        dof=n,
        joint_names=tuple(f"j{i}" for i in range(n)),
        joint_types=tuple(draw(st.sampled_from(P.JOINT_TYPES)) for _ in range(n)),
        joint_lower=lo,
        joint_upper=hi,
        workspace_min_m=wmin,
        workspace_max_m=tuple(x + 0.5 for x in wmin),  # type: ignore[arg-type]
        max_tool_speed_m_s=draw(st.floats(1e-3, 10)),
        max_angular_speed_rad_s=draw(st.floats(1e-3, 10)),
        jaw_range_rad=(0.0, draw(st.floats(0, 3))),
        max_force_n=draw(st.floats(1e-3, 100)),
        control_rate_hz=draw(st.floats(1, 10000)),
        camera=P.CameraDescription(
            draw(st.integers(1, 4096)), draw(st.integers(1, 4096)), draw(st.floats(0, 1000)), "jpeg"
        ),
    )


versions = st.lists(st.integers(0, 65535), max_size=16).map(tuple)
messages = st.one_of(
    st.builds(Hello, u64, st.sampled_from(P.ROLES), text64, versions),
    st.builds(
        Welcome,
        u64,
        u64,
        st.sampled_from(P.ROLES),
        st.integers(0, 65535),
        text64,
        arms(),
        st.floats(1e-3, 1e4),
        st.floats(1e-3, 1e5),
    ),
    st.builds(Reject, u64, u64, st.sampled_from(P.REJECT_CODES), st.text(max_size=256), versions),
    st.builds(
        Command,
        u64,
        u64,
        st.sampled_from(P.COMMAND_MODES),
        poses(),
        st.floats(-math.pi, math.pi),
        st.booleans(),
        st.booleans(),
        u64,
        u64,
        u64,
    ),
    st.builds(
        State,
        u64,
        u64,
        u64,
        u64,
        u64,
        st.sampled_from(P.OPERATING_STATES),
        st.booleans(),
        st.booleans(),
        poses(),
        poses(),
        joint_states(),
        st.tuples(*[f64] * 6),
        f64,
        st.lists(st.text(max_size=64), max_size=32).map(tuple),
        st.dictionaries(st.text(max_size=64), u64, max_size=64),
    ),
    st.builds(Heartbeat, u64, u64, u64, u64, u64),
    st.builds(Bye, u64, st.text(max_size=256)),
    st.builds(
        VideoFrame,
        u64,
        u64,
        u64,
        st.just("jpeg"),
        st.integers(1, 4096),
        st.integers(1, 4096),
        st.binary(max_size=2000),
    ),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_every_message_type_round_trips(msg: P.Message) -> None:
    frames = encode(msg)
    assert all(isinstance(f, bytes) for f in frames)
    assert len(frames) == (2 if isinstance(msg, VideoFrame) else 1)
    assert decode(frames) == msg


def test_all_types_are_covered_and_listed() -> None:
    assert set(P.MESSAGE_TYPES) == {
        "hello",
        "welcome",
        "reject",
        "command",
        "state",
        "heartbeat",
        "bye",
        "video",
    }


def test_envelope_carries_version_and_type() -> None:
    cmd = Command(7, 123, "servo_cp", P.IDENTITY_POSE, 0.5, True, False)
    obj = msgpack.unpackb(encode(cmd)[0])
    assert obj["v"] == P.PROTOCOL_VERSION and obj["type"] == "command"
    assert set(obj) == {"v", "type", *P.field_names(Command)}


def test_integers_are_accepted_for_float_fields() -> None:
    """JavaScript's msgpack encodes 1.0 as the integer 1: that must be a valid float."""
    obj = msgpack.unpackb(encode(Command(1, 2, "servo_cp", P.IDENTITY_POSE, 0.0, True, True))[0])
    obj["servo_cp"] = [0, 0, 0, 0, 0, 0, 1]
    obj["servo_jaw"] = 1
    cmd = decode([msgpack.packb(obj)])
    assert cmd.servo_cp == P.IDENTITY_POSE and isinstance(cmd.servo_jaw, float)


def test_check_pose_gives_clear_errors() -> None:
    assert P.check_pose([0, 0, 0, 0, 0, 0, 1]) == P.IDENTITY_POSE
    with pytest.raises(ValueError, match="norm"):
        P.check_pose([0, 0, 0, 0, 0, 0, 2], "servo_cp")
    with pytest.raises(ValueError, match="servo_cp"):
        P.check_pose([0, 0, float("nan"), 0, 0, 0, 1], "servo_cp")
    with pytest.raises(ValueError, match="7 numbers"):
        P.check_pose(None, "servo_cp")


# ---------------------------------------------------------------------------------------------
# Malformed input: >= 10^5 generated cases, each certainly invalid, each must raise ProtocolError
# ---------------------------------------------------------------------------------------------
def _bases() -> list[tuple[str, dict[str, Any]]]:
    """Valid wire maps of every type (envelope included)."""
    arm = ArmDescription.example()
    js = JointState((0.1,) * 7, (0.0,) * 7, (1.0,) * 7)
    pose = (0.01, 0.02, -0.1, 0.0, 0.0, 0.0, 1.0)
    msgs = [
        Hello(1, "controller", "alice", (1,)),
        Welcome(2, 1, "observer", 1, "abcd", arm, 20.0, 2000.0),
        Reject(3, 1, "busy", "taken", (1,)),
        Command(4, 5, "servo_cp", pose, 0.3, True, True, 1, 2, 3),
        State(
            5,
            6,
            4,
            5,
            6,
            "ENABLED",
            True,
            False,
            pose,
            pose,
            js,
            (1.0,) * 6,
            0.2,
            ("x",),
            {"cmd_received": 3},
        ),
        Heartbeat(6, 7, 1, 2, 3),
        Bye(8, "done"),
    ]
    out = []
    for m in msgs:
        obj = msgpack.unpackb(encode(m)[0])
        out.append((m.TYPE, obj))
    return out


NAN, INF = float("nan"), float("inf")
HUGE_ARRAY = list(range(100_000))


def _deep(n: int) -> Any:
    x: Any = 1
    for _ in range(n):
        x = [x]
    return x


UNIVERSALLY_BAD = [
    None,
    "x" * 300,
    NAN,
    INF,
    -INF,
    [NAN] * 7,
    [INF, 0, 0, 0, 0, 0, 1],
    {"": None},
    _deep(50),
    HUGE_ARRAY,
]


def _paths(obj: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in obj.items():
        if not prefix and k in ("v", "type"):
            continue
        out.append((*prefix, k))
        if isinstance(v, dict) and k in ("arm", "camera", "measured_js"):
            out.extend(_paths(v, (*prefix, k)))
    return out


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def _delete(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    for k in path[:-1]:
        obj = obj[k]
    del obj[path[-1]]


def _get(obj: dict[str, Any], path: tuple[str, ...]) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def _copy(obj: Any) -> Any:
    return msgpack.unpackb(msgpack.packb(obj))


def _type_specific_bad(value: Any, rng: random.Random) -> list[Any]:
    """Values certainly invalid for a field whose valid value is ``value``."""
    if isinstance(value, bool):
        return [0, 1, "true"]
    if isinstance(value, int):
        return [-1 - rng.randrange(10**6), 1.5, True, "7", 2**64 - 1]
    if isinstance(value, float):
        return ["1.0", True, [value], None]
    if isinstance(value, str):
        return [1, b"s".decode() * 257, True, ["a"]]
    if isinstance(value, list):
        return [value + [0.0] * 300, "list", 3, [[0.0]] * max(1, len(value))]
    if isinstance(value, dict):
        return [[1, 2], "map", 7]
    return []


def malformed_cases(n: int, seed: int = 1234) -> list[list[bytes]]:
    """n message frame lists, each invalid by construction."""
    rng = random.Random(seed)
    bases = _bases()
    cases: list[list[bytes]] = []
    enum_fields = {"role", "mode", "operating_state", "code", "encoding"}
    while len(cases) < n:
        kind, base = bases[rng.randrange(len(bases))]
        obj = _copy(base)
        r = rng.random()
        paths = _paths(obj)
        path = paths[rng.randrange(len(paths))]
        if r < 0.35:
            _set(obj, path, UNIVERSALLY_BAD[rng.randrange(len(UNIVERSALLY_BAD))])
        elif r < 0.6:
            bad = _type_specific_bad(_get(obj, path), rng)
            if not bad:
                continue
            _set(obj, path, bad[rng.randrange(len(bad))])
        elif r < 0.68:
            required = [(f,) for f in P.required_fields(P.MESSAGE_TYPES[kind])]
            if "arm" in obj:
                required += [("arm", f) for f in obj["arm"]]
            _delete(obj, required[rng.randrange(len(required))])
        elif r < 0.74:
            obj[f"extra_{rng.randrange(100)}"] = rng.random()
        elif r < 0.8:
            obj["v"] = rng.choice([0, 2, 99, -1, "1", 1.0, None, 2**40])
        elif r < 0.85:
            obj["type"] = rng.choice(["", "cmd", "Command", 1, None, "x" * 100, ["command"]])
        elif r < 0.88:
            del obj[rng.choice(["v", "type"])]
        elif r < 0.91 and path[-1] in enum_fields:
            _set(obj, path, rng.choice(["", "FLYING", "servo_jp", "png", "admin"]))
        elif r < 0.94:
            if "servo_cp" in obj:
                obj["servo_cp"] = [0, 0, 0, 0, 0, 0, rng.choice([0.0, 0.5, 2.0, -3.0])]
            elif "measured_cp" in obj:
                obj["measured_cp"] = [0, 0, 0, 0.7, 0.7, 0.7, 0.7]
            elif kind == "welcome":
                obj["arm"]["dof"] = obj["arm"]["dof"] + 1
            else:
                continue
        elif r < 0.96:
            packed = msgpack.packb(obj)
            cases.append([packed, b"extra frame"] if kind != "video" else [packed])
            continue
        elif r < 0.98:
            cases.append([msgpack.packb(obj) + b"\x00" * (P.MAX_HEADER_BYTES + 1)])
            continue
        else:
            cases.append([msgpack.packb([obj[k] for k in obj])])
            continue
        cases.append([msgpack.packb(obj)])
    return cases


def _video_cases() -> list[list[bytes]]:
    good = encode(VideoFrame(1, 2, 3, "jpeg", 320, 240, b"\xff\xd8abc"))
    hdr = msgpack.unpackb(good[0])
    wrong_n = dict(hdr, nbytes=hdr["nbytes"] + 1)
    big = dict(hdr, nbytes=P.MAX_VIDEO_BYTES + 1)
    return [
        [good[0]],  # image frame missing
        [msgpack.packb(wrong_n), good[1]],
        [msgpack.packb(big), good[1]],
        [msgpack.packb(dict(hdr, width=0)), good[1]],
        [msgpack.packb(dict(hdr, encoding="png")), good[1]],
        [good[0], good[1], b"third"],
        [],
    ]


def test_decoder_rejects_100k_generated_malformed_inputs() -> None:
    cases = malformed_cases(100_000) + _video_cases()
    codes: dict[str, int] = {}
    for frames in cases:
        try:
            msg = decode(frames)
        except ProtocolError as exc:
            assert exc.reason and isinstance(exc.reason, str)
            codes[exc.code] = codes.get(exc.code, 0) + 1
            continue
        pytest.fail(f"accepted a malformed message: {frames!r:.300} -> {msg!r:.300}")
    assert sum(codes.values()) == len(cases) >= 100_000
    # every class of error was exercised
    assert {"size", "malformed", "version", "type", "field"} <= set(codes)


def test_random_bytes_never_raise_anything_but_protocol_error() -> None:
    rng = random.Random(99)
    good = [encode(m)[0] for m in (Command(4, 5, "servo_cp", P.IDENTITY_POSE, 0.3, True, True),)]
    accepted = 0
    for i in range(30_000):
        if i % 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        else:  # bit flips, truncation and junk on a valid message
            b = bytearray(good[0])
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            data = bytes(b[: rng.randrange(len(b) + 1)]) if rng.random() < 0.3 else bytes(b)
        try:
            msg = decode([data])
        except ProtocolError:
            continue
        # a flip inside a number can leave a valid message: it must then be fully valid
        accepted += 1
        assert decode(encode(msg)) == msg
    assert accepted < 30_000 * 0.2


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_protocol_error(data: bytes) -> None:
    _decode_or_reject([data])


def _decode_or_reject(frames: list[bytes]) -> None:
    """Any outcome but ProtocolError or a fully valid message fails the test."""
    try:
        msg = decode(frames)
    except ProtocolError as exc:
        assert exc.reason
        return
    assert decode(encode(msg)) == msg


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=10), children, max_size=8)
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(P.MESSAGE_TYPES)), st.dictionaries(st.text(max_size=12), msgpack_values)
)
def test_arbitrary_maps_raise_only_protocol_error(mtype: str, body: dict[str, Any]) -> None:
    _decode_or_reject([msgpack.packb({"v": 1, "type": mtype, **body})])


def test_errors_name_the_field_and_the_problem() -> None:
    obj = msgpack.unpackb(encode(Command(1, 2, "servo_cp", P.IDENTITY_POSE, 0.0, True, True))[0])
    obj["servo_cp"][2] = NAN
    with pytest.raises(ProtocolError, match=r"field 'command\.servo_cp\[2\]': expected a finite"):
        decode([msgpack.packb(obj)])
    obj = msgpack.unpackb(encode(Heartbeat(1, 2))[0])
    obj["v"] = 7
    with pytest.raises(ProtocolError) as ei:
        decode([msgpack.packb(obj)])
    assert ei.value.code == "version" and ei.value.peer_version == 7
    assert "version 7" in ei.value.reason and "1" in ei.value.reason
    obj = msgpack.unpackb(encode(Heartbeat(1, 2))[0])
    del obj["seq"]
    obj["sequence"] = 1
    with pytest.raises(ProtocolError, match=r"`seq`|`sequence`"):
        decode([msgpack.packb(obj)])


def test_arm_description_consistency_is_checked() -> None:
    arm = ArmDescription.example()
    obj = msgpack.unpackb(encode(Welcome(1, 1, "controller", 1, "s", arm, 20.0, 2000.0))[0])
    obj["arm"]["joint_lower"][0] = 5.0  # above its upper limit
    with pytest.raises(ProtocolError, match="joint_lower"):
        decode([msgpack.packb(obj)])
    obj = msgpack.unpackb(encode(Welcome(1, 1, "controller", 1, "s", arm, 20.0, 2000.0))[0])
    obj["arm"]["workspace_min_m"] = [0.2, -0.1, -0.2]
    with pytest.raises(ProtocolError, match="workspace"):
        decode([msgpack.packb(obj)])
    with pytest.raises(ValueError, match="workspace"):  # nor can one be built in Python
        msgspec.structs.replace(arm, workspace_min_m=(0.2, -0.1, -0.2))
