"""The safety supervisor (slave_arm.safety): each pure limit, then the state machine (fake clock).

The supervisor is driven as the arm server drives it: one ``supervise`` call per 1 kHz tick, the
decision applied to a fake arm that tracks its setpoint perfectly (servo: setpoint := pose;
hold: setpoint := measured, which is the setpoint). scipy's ``Rotation`` is the independent
oracle for quaternion angles and frame changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from network.link import ReceivedCommand
from network.protocol import ArmDescription, Command
from slave_arm.safety import (
    FLAGS,
    Decision,
    SafetyConfig,
    SafetySupervisor,
    clamp_jaw,
    clamp_to_workspace,
    command_is_stale,
    limit_angular_speed,
    limit_force,
    limit_speed,
)

DESC = ArmDescription.example()  # box (-0.1,-0.1,-0.2)..(0.1,0.1,0) m, 0.2 m/s, 3 rad/s, 10 N
LO = np.array(DESC.workspace_min_m)
HI = np.array(DESC.workspace_max_m)
RATE_HZ = 1000.0
PERIOD_NS = 1_000_000
MAX_STEP_M = DESC.max_tool_speed_m_s / RATE_HZ  # 0.2 mm per tick
MAX_TURN_RAD = DESC.max_angular_speed_rad_s / RATE_HZ  # 3 mrad per tick
HOME = (0.0, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0)
EPS = 1e-12

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

coord = st.floats(-0.5, 0.5, allow_nan=False)
positions = st.tuples(coord, coord, coord).map(np.array)
unit_coord = st.floats(-1.0, 1.0, allow_nan=False)
quats = st.tuples(unit_coord, unit_coord, unit_coord, unit_coord).filter(
    lambda q: math.sqrt(sum(v * v for v in q)) > 0.1
)


@st.composite
def boxes(draw) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array(draw(st.tuples(*[st.floats(-0.4, 0.0)] * 3)))
    hi = lo + np.array(draw(st.tuples(*[st.floats(1e-4, 0.5)] * 3)))
    return lo, hi


def unit(q: Sequence[float]) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    return q / np.linalg.norm(q)


def angle_between(p, q) -> float:
    """Rotation angle (rad) from orientation p to q, by scipy."""
    return float((Rotation.from_quat(unit(q)) * Rotation.from_quat(unit(p)).inv()).magnitude())


def pose(x=0.0, y=0.0, z=-0.1, q=(0.0, 0.0, 0.0, 1.0)) -> tuple[float, ...]:
    return (float(x), float(y), float(z), *map(float, unit(q)))


def received(seq: int, target, clutch: bool = True, rx_ns: int = 0) -> ReceivedCommand:
    """An engaged servo command (operator present), as the link hands it over."""
    cmd = Command(
        seq=seq,
        send_ns=0,
        mode="servo_cp",
        servo_cp=tuple(map(float, target)),
        servo_jaw=0.3,
        clutch_engaged=clutch,
        operator_present=True,
    )
    return ReceivedCommand(cmd, rx_ns)


# ---------------------------------------------------------------------------------------------
# configuration


def test_config_from_description_fills_the_limits_and_keeps_overrides() -> None:
    cfg = SafetyConfig.from_description(DESC, watchdog_ms=50, max_tool_speed_m_s=0.1)
    assert cfg.watchdog_ms == 50.0 and isinstance(cfg.watchdog_ms, float)
    assert cfg.max_tool_speed_m_s == 0.1
    assert cfg.workspace_min_m == DESC.workspace_min_m
    assert cfg.workspace_max_m == DESC.workspace_max_m
    assert cfg.max_angular_speed_rad_s == DESC.max_angular_speed_rad_s
    assert cfg.jaw_range_rad == DESC.jaw_range_rad
    assert cfg.max_force_n == DESC.max_force_n
    assert cfg.missing() == []
    assert SafetyConfig().missing() == [
        "workspace_min_m",
        "workspace_max_m",
        "max_tool_speed_m_s",
        "max_angular_speed_rad_s",
        "jaw_range_rad",
        "max_force_n",
    ]


def test_config_may_tighten_but_never_loosen_the_arms_limits() -> None:
    tight = SafetyConfig.from_description(DESC, workspace_min_m=(-0.05, -0.05, -0.1))
    assert tight.workspace_min_m == (-0.05, -0.05, -0.1)
    with pytest.raises(ValueError, match="beyond the arm's workspace"):
        SafetyConfig.from_description(DESC, workspace_max_m=(0.1, 0.1, 0.05))
    with pytest.raises(ValueError, match="max_tool_speed_m_s"):
        SafetyConfig.from_description(DESC, max_tool_speed_m_s=1.0)
    with pytest.raises(ValueError, match="max_force_n"):
        SafetyConfig.from_description(DESC, max_force_n=11.0)
    with pytest.raises(ValueError, match="jaw range"):
        SafetyConfig.from_description(DESC, jaw_range_rad=(-0.5, 1.0))


def test_config_from_dict_rejects_unknown_keys_and_round_trips() -> None:
    with pytest.raises(ValueError, match=r"'watchdog'.*valid keys: watchdog_ms"):
        SafetyConfig.from_dict({"watchdog": 100})
    cfg = SafetyConfig.from_dict({"watchdog_ms": 80, "workspace_min_m": [-0.05, -0.05, -0.1]})
    assert cfg.workspace_min_m == (-0.05, -0.05, -0.1)  # TOML lists become tuples
    assert SafetyConfig.from_dict(cfg.to_dict()) == cfg
    full = SafetyConfig.from_description(DESC)
    assert SafetyConfig.from_dict(full.to_dict()) == full


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"watchdog_ms": 0}, "watchdog_ms"),
        ({"watchdog_ms": float("nan")}, "watchdog_ms"),
        ({"max_command_age_ms": -1}, "max_command_age_ms"),
        ({"max_force_n": True}, "max_force_n"),
        ({"max_tool_speed_m_s": "fast"}, "max_tool_speed_m_s"),
        ({"workspace_min_m": (0, 0, 0), "workspace_max_m": (1, 1, 0)}, "below"),
        ({"workspace_min_m": (0, 0)}, "3 numbers"),
        ({"jaw_range_rad": (1.0, 0.0)}, "minimum above maximum"),
        ({"force_retreat": "yes"}, "force_retreat"),
    ],
)
def test_config_rejects_bad_values(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SafetyConfig(**kwargs)


def test_supervisor_needs_a_complete_config_and_a_rate() -> None:
    with pytest.raises(ValueError, match="from_description"):
        SafetySupervisor(SafetyConfig(), RATE_HZ)
    with pytest.raises(ValueError, match="control_rate_hz"):
        SafetySupervisor(SafetyConfig.from_description(DESC), 0.0)


# ---------------------------------------------------------------------------------------------
# pure functions: known cases


def test_clamp_to_workspace_known_cases() -> None:
    out, clamped = clamp_to_workspace([0.0, 0.05, 0.0123], LO, HI)
    np.testing.assert_array_equal(out, [0.0, 0.05, 0.0])
    assert clamped
    out, clamped = clamp_to_workspace([-0.3, 0.3, -0.1], LO, HI)
    np.testing.assert_array_equal(out, [-0.1, 0.1, -0.1])
    assert clamped
    inside = np.array([0.01, -0.02, -0.05])
    out, clamped = clamp_to_workspace(inside, LO, HI)
    np.testing.assert_array_equal(out, inside)
    assert not clamped


def test_limit_speed_known_cases() -> None:
    prev, far = np.array([-0.05, 0.0, -0.1]), np.array([0.05, 0.0, -0.1])
    out, limited = limit_speed(prev, far, 0.2, 0.001)
    np.testing.assert_allclose(out, [-0.05 + 0.0002, 0.0, -0.1], rtol=0, atol=1e-15)
    assert limited
    near = prev + np.array([0.0001, -0.0001, 0.0])  # 0.14 mm: within one step
    out, limited = limit_speed(prev, near, 0.2, 0.001)
    np.testing.assert_array_equal(out, near)  # exactly the target
    assert not limited
    with pytest.raises(ValueError):
        limit_speed(prev, far, 0.2, 0.0)


def test_limit_angular_speed_known_cases() -> None:
    q0 = (0.0, 0.0, 0.0, 1.0)
    quarter_z = Rotation.from_euler("z", 90, degrees=True).as_quat()
    out, limited = limit_angular_speed(q0, quarter_z, 3.0, 0.001)
    assert limited
    expected = Rotation.from_euler("z", 0.003).as_quat()
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    # a small turn is reached exactly; -q is the same orientation (no turn at all)
    small = Rotation.from_rotvec([0.001, 0.002, 0.0]).as_quat()
    out, limited = limit_angular_speed(q0, small, 3.0, 0.001)
    np.testing.assert_allclose(out, small, rtol=0, atol=1e-15)
    assert not limited
    out, limited = limit_angular_speed(small, -small, 3.0, 0.001)
    assert not limited
    assert angle_between(out, small) < 1e-9
    # the shorter way round: from 170 deg to -170 deg about x is 20 deg, not 340
    a = Rotation.from_euler("x", 170, degrees=True).as_quat()
    b = Rotation.from_euler("x", -170, degrees=True).as_quat()
    out, limited = limit_angular_speed(a, b, 3.0, 0.001)
    assert limited
    np.testing.assert_allclose(
        Rotation.from_quat(out).as_euler("xyz")[0], math.radians(170) + 0.003, atol=1e-9
    )


def test_clamp_jaw_known_cases() -> None:
    assert clamp_jaw(1.3, 0.0, 1.0) == (1.0, True)
    assert clamp_jaw(-0.2, 0.0, 1.0) == (0.0, True)
    assert clamp_jaw(0.4, 0.0, 1.0) == (0.4, False)


def test_limit_force_known_cases() -> None:
    prev = np.array([0.0, 0.0, -0.1])
    identity = (0.0, 0.0, 0.0, 1.0)
    push_up = np.array([0.0, 0.0, 15.0, 0.0, 0.0, 0.0])  # tissue pushes the tool up (+z)
    # moving down (into the tissue) and sideways: the downward part is removed
    out, limited = limit_force(prev, prev + np.array([0.001, 0.0, -0.002]), push_up, identity, 10.0)
    np.testing.assert_allclose(out, prev + np.array([0.001, 0.0, 0.0]), rtol=0, atol=1e-15)
    assert limited
    # retreating (up) is allowed
    up = prev + np.array([0.0, 0.0, 0.002])
    out, limited = limit_force(prev, up, push_up, identity, 10.0)
    np.testing.assert_array_equal(out, up)
    assert not limited
    # under the limit nothing changes
    down = prev + np.array([0.0, 0.0, -0.002])
    out, limited = limit_force(prev, down, push_up * 0.5, identity, 10.0)
    np.testing.assert_array_equal(out, down)
    assert not limited
    # the wrench is in the tool frame: a tool turned 90 deg about x sees base +z as tool +y
    turned = Rotation.from_euler("x", 90, degrees=True)
    f_tool = turned.inv().apply([0.0, 0.0, 15.0])
    np.testing.assert_allclose(f_tool, [0.0, 15.0, 0.0], atol=1e-12)
    wrench = np.concatenate([f_tool, np.zeros(3)])
    for rotation in (turned.as_quat(), turned.as_matrix()):
        out, limited = limit_force(prev, down, wrench, rotation, 10.0)
        np.testing.assert_allclose(out, prev, rtol=0, atol=1e-15)
        assert limited


def test_command_is_stale_known_cases() -> None:
    max_age = 250_000_000
    now = 10_000_000_000
    assert not command_is_stale(now - 10_000_000, now, 0.0, max_age)
    assert not command_is_stale(now - max_age, now, 0.0, max_age)  # exactly at the limit
    assert command_is_stale(now - max_age - 1, now, 0.0, max_age)
    # the console clock runs 5 s ahead of the arm's: its send time 5.1 s ahead is 100 ms ago
    assert not command_is_stale(now + 4_900_000_000, now, 5e9, max_age)
    assert command_is_stale(now + 4_700_000_000, now, 5e9, max_age)
    # far in the future by the offset: the age cannot be vouched for
    assert command_is_stale(now + 1_000_000_000, now, 0.0, max_age)
    # NaN offset (not measured yet) counts as 0, as ArmLink.command_age_ns does
    assert not command_is_stale(now - 1_000_000, now, float("nan"), max_age)


# ---------------------------------------------------------------------------------------------
# pure functions: properties


@SETTINGS
@given(box=boxes(), p=positions)
def test_clamp_keeps_inside_is_nearest_and_idempotent(box, p) -> None:
    lo, hi = box
    out, clamped = clamp_to_workspace(p, lo, hi)
    assert np.all(out >= lo) and np.all(out <= hi)
    np.testing.assert_array_equal(out, np.clip(p, lo, hi))  # the nearest point of the box
    assert clamped == bool(np.any(out != p))
    again, clamped_again = clamp_to_workspace(out, lo, hi)
    np.testing.assert_array_equal(again, out)
    assert not clamped_again


@SETTINGS
@given(
    prev=positions,
    target=positions,
    speed=st.floats(0.0, 2.0),
    dt=st.floats(1e-4, 0.1),
)
def test_speed_limit_never_exceeds_the_step_and_reaches_a_close_target(prev, target, speed, dt):
    out, limited = limit_speed(prev, target, speed, dt)
    step = speed * dt
    moved = float(np.linalg.norm(out - prev))
    assert moved <= step * (1 + 1e-12) + 1e-15
    dist = float(np.linalg.norm(target - prev))
    if dist <= step:
        np.testing.assert_array_equal(out, target)
        assert not limited
    else:
        assert limited
        assert moved == pytest.approx(step, rel=1e-9, abs=1e-15)
        # on the straight line towards the target: no sideways offset, and forwards
        u = (target - prev) / dist
        along = float((out - prev) @ u)
        assert along >= -1e-15
        np.testing.assert_allclose(out - prev - along * u, 0.0, rtol=0, atol=1e-15)


@SETTINGS
@given(p=quats, q=quats, rate=st.floats(0.0, 20.0), dt=st.floats(1e-4, 0.05))
def test_angular_limit_never_exceeds_the_turn_and_reaches_a_close_target(p, q, rate, dt):
    out, limited = limit_angular_speed(p, q, rate, dt)
    assert abs(np.linalg.norm(out) - 1.0) < 1e-12
    turn = rate * dt
    total = angle_between(p, q)
    moved = angle_between(p, out)
    assert moved <= turn + 1e-9
    if total <= turn - 1e-9:
        assert not limited
        np.testing.assert_allclose(out, unit(q), rtol=0, atol=1e-12)
    elif total > turn + 1e-9:
        assert limited
        assert moved == pytest.approx(turn, abs=1e-9)
        # on the shortest arc: what is left is the rest of the way
        assert angle_between(out, q) == pytest.approx(total - turn, abs=1e-8)


@SETTINGS
@given(a=st.floats(-4, 4), lo=st.floats(-1, 1), width=st.floats(0, 2))
def test_clamp_jaw_properties(a, lo, width) -> None:
    hi = lo + width
    out, clamped = clamp_jaw(a, lo, hi)
    assert lo <= out <= hi
    assert clamped == (out != a)
    assert clamp_jaw(out, lo, hi) == (out, False)


@SETTINGS
@given(
    prev=positions,
    d=st.tuples(*[st.floats(-0.01, 0.01)] * 3).map(np.array),
    f=st.tuples(*[st.floats(-50, 50)] * 3).map(np.array),
    q=quats,
    max_force=st.floats(0.5, 30),
)
def test_force_limit_never_pushes_further_into_the_contact_and_allows_retreat(
    prev, d, f, q, max_force
):
    target = prev + d
    wrench = np.concatenate([f, np.zeros(3)])
    out, limited = limit_force(prev, target, wrench, q, max_force)
    fmag = float(np.linalg.norm(f))
    if fmag <= max_force:
        np.testing.assert_array_equal(out, target)
        assert not limited
        return
    n = Rotation.from_quat(unit(q)).apply(f) / fmag  # the contact force direction, base frame
    pushed = -float((out - prev) @ n)  # how far further into the contact the motion goes
    assert pushed <= 1e-12
    along = float((target - prev) @ n)  # the motion asked for, along the force
    if along >= 1e-12:  # retreat (or slide, further below): untouched
        np.testing.assert_array_equal(out, target)
        assert not limited
    elif along <= -1e-12:
        assert limited
        # only the part along the force was removed; the sideways motion is kept
        removed = target - out
        np.testing.assert_allclose(removed - (removed @ n) * n, 0.0, atol=1e-12)
        assert np.linalg.norm(out - prev) <= np.linalg.norm(target - prev) + 1e-15
    else:  # sliding along the surface: kept (up to rounding of the direction)
        np.testing.assert_allclose(out, target, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the supervisor on a fake clock


class Arm:
    """The server's tick on a fake clock, with a fake arm that tracks its setpoint perfectly."""

    def __init__(self, **overrides) -> None:
        self.config = SafetyConfig.from_description(DESC, **overrides)
        self.sup = SafetySupervisor(self.config, RATE_HZ)
        self.now = 1_000_000_000_000
        self.seq = 0
        self.setpoint = np.array(HOME)
        self.wrench = np.zeros(6)
        self.decisions: list[Decision] = []
        self.holds = 0

    def tick(
        self,
        target: Sequence[float] | None = None,
        *,
        clutch: bool = True,
        present: bool = True,
        mode: str = "servo_cp",
        jaw: float = 0.3,
        seq: int | None = None,
        age_ms: float | None = 1.0,
        advance_ns: int = PERIOD_NS,
    ) -> Decision:
        """Advance one period; send a command (unless ``target`` is None); apply the decision."""
        self.now += advance_ns
        rc = None
        age = None
        if target is not None:
            if seq is None:
                self.seq += 1
                seq = self.seq
            age = None if age_ms is None else round(age_ms * 1e6)
            cmd = Command(
                seq=seq,
                send_ns=max(0, self.now - (age or 0)),
                mode=mode,
                servo_cp=tuple(map(float, target)),
                servo_jaw=jaw,
                clutch_engaged=clutch,
                operator_present=present,
            )
            rc = ReceivedCommand(cmd, self.now)
        d = self.sup.supervise(self.now, rc, age, self.setpoint, self.setpoint, self.wrench)
        if d.action == "servo":
            assert d.pose is not None
            self.setpoint = d.pose.copy()
        elif d.action in ("hold", "estop"):
            self.holds += 1  # measured == setpoint: a hold keeps the setpoint
        self.decisions.append(d)
        return d

    def idle(self, n: int = 1) -> Decision:
        for _ in range(n):
            d = self.tick(None)
        return d

    def engage(self, target: Sequence[float] = HOME) -> Decision:
        """The console releases and re-engages the clutch (the edge the arm needs)."""
        self.tick(target, clutch=False)
        d = self.tick(target, clutch=True)
        assert d.action == "servo", d
        return d


def test_all_flags_are_counted_from_the_start() -> None:
    sup = SafetySupervisor(SafetyConfig.from_description(DESC), RATE_HZ)
    assert sup.counters == dict.fromkeys(FLAGS, 0)
    assert sup.last_decision is None and not sup.estopped


def test_engaged_from_the_start_waits_for_release_and_reengage() -> None:
    arm = Arm()
    target = pose(x=0.0001)
    d = arm.tick(target)
    assert d.action == "hold" and d.flags == ("wait_reengage",)
    assert d.pose is None and d.commanded_pose is not None
    np.testing.assert_array_equal(d.commanded_pose, target)
    for _ in range(20):
        d = arm.tick(target)
        assert d.action == "none" and d.flags == ("wait_reengage",)
    np.testing.assert_array_equal(arm.setpoint, HOME)
    d = arm.tick(target, clutch=False)
    assert d.action == "none" and d.flags == ("not_engaged",)
    d = arm.tick(target)
    assert d.action == "servo" and d.flags == ()
    np.testing.assert_array_equal(d.pose, target)
    assert arm.sup.counters["wait_reengage"] == 21


def test_a_stream_of_good_commands_is_applied_as_commanded() -> None:
    arm = Arm()
    arm.engage()
    q = Rotation.from_euler("z", 0.001).as_quat()
    for i in range(200):
        target = pose(x=0.0001 * math.sin(i / 10), y=0.00005 * i, q=q)
        d = arm.tick(target, jaw=0.5)
        assert d.action == "servo" and d.flags == () and d.reasons == ()
        np.testing.assert_array_equal(d.pose[:3], target[:3])
        np.testing.assert_allclose(d.pose[3:], target[3:], rtol=0, atol=1e-15)
        np.testing.assert_array_equal(d.commanded_pose, target)
        assert d.jaw == 0.5 and d.commanded_jaw == 0.5
        assert arm.sup.last_decision is d
    assert all(v == 0 for k, v in arm.sup.counters.items() if k != "not_engaged")


@pytest.mark.parametrize("watchdog_ms, first_hold_tick", [(100.0, 101), (25.5, 26), (3.0, 4)])
def test_watchdog_holds_exactly_at_the_first_tick_past_the_limit(watchdog_ms, first_hold_tick):
    arm = Arm(watchdog_ms=watchdog_ms)
    arm.engage()
    arm.tick(pose(x=0.0001))
    holds = arm.holds
    for k in range(1, first_hold_tick):  # silent, but within the limit: keep going
        d = arm.idle()
        assert d.action == "none" and d.flags == (), (k, d)
    d = arm.idle()
    assert d.action == "hold" and d.flags == ("watchdog_hold",)
    assert f"no valid command for {first_hold_tick:.1f} ms" in d.reasons[0]
    d = arm.idle()
    assert d.action == "none" and d.flags == ("watchdog_hold",)  # held: no second hold
    assert arm.sup.counters["watchdog_hold"] == 2
    assert arm.holds == holds + 1


def test_after_a_watchdog_hold_good_commands_wait_for_release_and_reengage() -> None:
    arm = Arm()
    arm.engage()
    arm.idle(150)
    held = arm.setpoint.copy()
    far = pose(x=0.03)  # the console moved meanwhile: obeying it now would be a surprise
    for _ in range(50):
        d = arm.tick(far)
        assert d.action == "none" and d.flags == ("wait_reengage",) and d.pose is None
    np.testing.assert_array_equal(arm.setpoint, held)
    d = arm.tick(far, clutch=False)
    assert d.action == "none" and d.flags == ("not_engaged",)
    d = arm.tick(far)
    assert d.action == "servo"
    # even then the arm only moves at the speed limit
    assert np.linalg.norm(d.pose[:3] - held[:3]) == pytest.approx(MAX_STEP_M, rel=1e-12)


def test_stale_commands_are_refused_counted_and_do_not_feed_the_watchdog() -> None:
    arm = Arm()
    arm.engage()
    start = arm.setpoint.copy()
    for k in range(1, 101):
        d = arm.tick(pose(x=0.01), age_ms=300.0)
        assert d.action == "none" and d.flags == ("stale_command",), k
        assert "300.0 ms old (limit 250.0 ms)" in d.reasons[0]
    d = arm.tick(pose(x=0.01), age_ms=300.0)
    assert d.action == "hold" and set(d.flags) == {"watchdog_hold", "stale_command"}
    np.testing.assert_array_equal(arm.setpoint, start)
    assert arm.sup.counters["stale_command"] == 101
    # a fresh command after the trip still needs a re-engage
    d = arm.tick(pose(x=0.01))
    assert d.flags == ("wait_reengage",)


def test_a_command_after_a_stall_longer_than_the_watchdog_still_trips_it() -> None:
    arm = Arm()
    arm.engage()
    d = arm.tick(pose(x=0.0001), advance_ns=150 * PERIOD_NS)  # the server missed 149 ticks
    assert d.action == "hold" and d.flags == ("watchdog_hold", "wait_reengage")
    np.testing.assert_array_equal(arm.setpoint, HOME)
    d = arm.tick(pose(x=0.0001))
    assert d.action == "none" and d.flags == ("wait_reengage",)


def test_commands_from_the_future_or_without_an_age_are_stale() -> None:
    arm = Arm()
    arm.engage()
    d = arm.tick(pose(x=0.0001), age_ms=-400.0)
    assert d.flags == ("stale_command",) and "in the future" in d.reasons[0]
    d = arm.tick(pose(x=0.0001), age_ms=None)
    assert d.flags == ("stale_command",) and "unknown" in d.reasons[0]
    d = arm.tick(pose(x=0.0001), age_ms=-10.0)  # small clock-offset error: fine
    assert d.action == "servo"


def test_duplicate_and_out_of_order_commands_are_refused_and_counted() -> None:
    arm = Arm()
    arm.engage()
    arm.tick(pose(x=0.0001), seq=10)
    arm.seq = 10
    at = arm.setpoint.copy()
    d = arm.tick(pose(x=0.0002), seq=10)
    assert d.action == "none" and d.flags == ("duplicate_command",) and d.pose is None
    d = arm.tick(pose(x=0.0002), seq=7)
    assert d.action == "none" and d.flags == ("out_of_order_command",)
    assert "seq 7 is older than the last accepted seq 10" in d.reasons[0]
    np.testing.assert_array_equal(arm.setpoint, at)
    # a stale command is refused but still moves the sequence on: older ones stay refused
    d = arm.tick(pose(x=0.0002), seq=12, age_ms=500.0)
    assert d.flags == ("stale_command",)
    d = arm.tick(pose(x=0.0002), seq=11)
    assert d.flags == ("out_of_order_command",)
    d = arm.tick(pose(x=0.0002), seq=13)
    assert d.action == "servo"  # still engaged: refusals do not stop the stream
    c = arm.sup.counters
    assert (c["duplicate_command"], c["out_of_order_command"], c["stale_command"]) == (1, 2, 1)


def test_a_watchdog_trip_forgets_the_sequence_so_a_new_console_is_heard() -> None:
    arm = Arm()
    arm.engage()
    arm.tick(pose(), seq=5000)
    d = arm.tick(pose(), seq=1)  # a new console before the trip: refused
    assert d.flags == ("out_of_order_command",)
    arm.idle(101)
    assert arm.decisions[-1].flags == ("watchdog_hold",)
    arm.seq = 0  # the new console numbers from 1
    d = arm.tick(pose())
    assert d.flags == ("wait_reengage",)
    arm.engage()


def test_a_new_controller_is_heard_at_once_and_must_engage() -> None:
    """The arm server calls new_controller() when a console takes control: a take-over within
    the watchdog period numbers afresh and is heard, after its own release and engage."""
    arm = Arm()
    arm.engage()
    arm.tick(pose(x=0.0001), seq=5000)
    at = arm.setpoint.copy()
    arm.sup.new_controller()
    arm.seq = 0  # the new console numbers from 1
    d = arm.tick(pose(x=0.0003))
    assert d.action == "hold" and d.flags == ("wait_reengage",)  # heard, not out of order
    np.testing.assert_array_equal(arm.setpoint, at)
    arm.engage()
    d = arm.tick(pose(x=0.0002))
    assert d.action == "servo" and d.flags == ()


def test_estop_latches_through_good_commands_until_reset_then_needs_reengage() -> None:
    arm = Arm()
    arm.engage()
    arm.tick(pose(x=0.0001))
    arm.sup.estop("pedal pressed")
    assert arm.sup.estopped
    d = arm.tick(pose(x=0.0002))
    assert d.action == "estop" and d.flags == ("estop",) and d.pose is None
    assert "pedal pressed" in d.reasons[0]
    at = arm.setpoint.copy()
    for i in range(300):  # good commands, release/engage, silence: nothing moves
        if i % 50 == 10:
            d = arm.tick(pose(x=0.0002), clutch=False)
        elif i % 7 == 0:
            d = arm.idle()
        else:
            d = arm.tick(pose(x=0.0002))
        assert d.action == "none" and "estop" in d.flags and d.pose is None
    np.testing.assert_array_equal(arm.setpoint, at)
    assert arm.sup.estopped
    arm.sup.reset_estop()
    assert not arm.sup.estopped
    d = arm.tick(pose(x=0.0002))
    assert d.action == "hold" and d.flags == ("wait_reengage",)
    d = arm.tick(pose(x=0.0002))
    assert d.action == "none" and d.flags == ("wait_reengage",)
    arm.engage(pose(x=0.0002))
    assert arm.sup.counters["estop"] == 301
    arm.sup.reset_estop()  # not latched: nothing happens
    assert arm.tick(pose(x=0.0002)).action == "servo"
    arm.sup.estop("again")
    arm.sup.estop("and again")  # still latched, the newest reason
    d = arm.tick(pose(x=0.0002))
    assert d.action == "estop" and "and again" in d.reasons[0]


def test_a_target_10_cm_away_moves_at_most_max_speed_per_tick() -> None:
    arm = Arm()
    arm.setpoint = np.array(pose(x=-0.05))
    arm.engage(pose(x=-0.05))
    target = pose(x=0.05)
    prev = arm.setpoint.copy()
    for tick in range(1, 10_000):  # noqa: B007 (used after the loop)
        d = arm.tick(target)
        assert d.action == "servo"
        step = np.linalg.norm(d.pose[:3] - prev[:3])
        assert step <= MAX_STEP_M * (1 + 1e-12)
        np.testing.assert_array_equal(d.commanded_pose, target)
        prev = d.pose
        if "speed_limited" not in d.flags:
            break
        assert "step limited to 0.2000 mm (0.2 m/s at 1000 Hz)" in d.reasons[0]
    np.testing.assert_array_equal(arm.setpoint, target)  # reached exactly
    assert tick == pytest.approx(0.1 / MAX_STEP_M, abs=1)  # 500 ticks = 0.5 s at 0.2 m/s


def test_speed_is_limited_from_the_setpoint_not_the_measured_pose() -> None:
    sup = SafetySupervisor(SafetyConfig.from_description(DESC), RATE_HZ)
    setpoint = np.array(HOME)
    measured = np.array(pose(x=0.009))  # lagging far behind would allow a big jump if used
    sup.supervise(0, received(1, HOME, clutch=False), 0, measured, setpoint, np.zeros(6))
    d = sup.supervise(PERIOD_NS, received(2, pose(x=0.01)), 0, measured, setpoint, np.zeros(6))
    assert d.action == "servo" and "speed_limited" in d.flags
    np.testing.assert_allclose(d.pose[:3], [MAX_STEP_M, 0.0, -0.1], rtol=0, atol=1e-15)


def test_workspace_clamping_is_reported_with_commanded_and_applied() -> None:
    arm = Arm()
    arm.setpoint = np.array(pose(z=-0.0001))
    arm.engage(pose(z=-0.0001))
    target = pose(z=0.0123)
    d = arm.tick(target)
    assert d.action == "servo" and d.flags == ("workspace_clamped",)
    assert d.reasons == ("target outside the workspace by 12.3 mm in z (above); clamped",)
    np.testing.assert_array_equal(d.commanded_pose, target)
    np.testing.assert_array_equal(d.pose, pose(z=0.0))
    d = arm.tick(pose(x=0.15, y=-0.2, z=-0.05))
    assert "50.0 mm in x (above), 100.0 mm in y (below)" in d.reasons[0]
    assert arm.sup.counters["workspace_clamped"] == 2


def test_a_setpoint_outside_the_box_returns_at_the_speed_limit() -> None:
    arm = Arm()
    arm.setpoint = np.array(pose(z=0.001))  # 1 mm above the workspace (z <= 0)
    arm.tick(pose(z=0.001), clutch=False)
    d = arm.tick(pose(z=0.001))
    assert d.action == "servo" and d.flags == ("workspace_clamped", "speed_limited")
    assert "above" in d.reasons[0]  # the target itself was clamped
    np.testing.assert_allclose(d.pose[:3], [0.0, 0.0, 0.001 - MAX_STEP_M], rtol=0, atol=1e-15)
    for _ in range(4):
        d = arm.tick(pose(z=-0.01))
        assert np.linalg.norm(d.pose[:3] - arm.decisions[-2].pose[:3]) <= MAX_STEP_M * (1 + EPS)
        assert "workspace_clamped" in d.flags or d.pose[2] <= 0.0
    assert arm.setpoint[2] == pytest.approx(0.0, abs=1e-15)
    d = arm.tick(pose(z=-0.01))
    assert d.flags == ("speed_limited",) and d.pose[2] <= 0.0


def test_the_rotation_is_limited_per_tick() -> None:
    arm = Arm()
    arm.engage()
    turned = pose(q=Rotation.from_euler("y", 30, degrees=True).as_quat())
    d = arm.tick(turned)
    assert d.flags == ("angular_speed_limited",)
    assert angle_between(HOME[3:], d.pose[3:]) == pytest.approx(MAX_TURN_RAD, rel=1e-9)
    for _ in range(200):
        d = arm.tick(turned)
    assert d.flags == ()
    np.testing.assert_allclose(d.pose, turned, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"present": False}, "operator_absent"),
        ({"mode": "hold"}, "hold_command"),
        ({"clutch": False}, "not_engaged"),
    ],
)
def test_operator_absent_hold_mode_or_released_clutch_hold_and_need_reengage(kwargs, flag):
    arm = Arm()
    arm.engage()
    arm.tick(pose(x=0.0001))
    d = arm.tick(pose(x=0.0002), **kwargs)
    assert d.action == "hold" and d.flags == (flag,)
    d = arm.tick(pose(x=0.0002), **kwargs)
    assert d.action == "none" and d.flags == (flag,)
    np.testing.assert_array_equal(arm.setpoint, pose(x=0.0001))
    if flag != "not_engaged":
        d = arm.tick(pose(x=0.0002))  # back, still engaged: not enough
        assert d.action == "none" and d.flags == ("wait_reengage",)
    arm.engage(pose(x=0.0002))


def test_force_limit_in_the_supervisor_blocks_pushing_but_allows_retreat() -> None:
    arm = Arm()
    arm.engage()
    arm.wrench = np.array([0.0, 0.0, 12.0, 0.0, 0.0, 0.0])  # the tissue pushes back up
    d = arm.tick(pose(x=0.0001, z=-0.1001))  # down-and-sideways: only sideways is applied
    assert d.flags == ("force_over_limit", "force_limited")
    assert "12.00 N over the 10.00 N limit" in d.reasons[0]
    np.testing.assert_allclose(d.pose[:3], [0.0001, 0.0, -0.1], rtol=0, atol=1e-15)
    d = arm.tick(pose(x=0.0001, z=-0.0999))  # retreat: applied as commanded
    assert d.flags == ("force_over_limit",)
    np.testing.assert_array_equal(d.pose, pose(x=0.0001, z=-0.0999))
    arm.wrench[:] = 0.0
    d = arm.tick(pose(x=0.0001, z=-0.1))
    assert d.flags == ()
    np.testing.assert_array_equal(d.pose, pose(x=0.0001, z=-0.1))


def test_force_limit_uses_the_measured_tool_orientation() -> None:
    sup = SafetySupervisor(SafetyConfig.from_description(DESC), RATE_HZ)
    turned = Rotation.from_euler("x", 90, degrees=True)
    setpoint = np.array(pose(q=turned.as_quat()))
    f_tool = turned.inv().apply([0.0, 0.0, 20.0])  # base +z, in the tool frame
    wrench = np.concatenate([f_tool, np.zeros(3)])
    sup.supervise(0, received(1, setpoint, clutch=False), 0, setpoint, setpoint, wrench)
    down = (*setpoint[:2], setpoint[2] - 0.0001, *setpoint[3:])
    d = sup.supervise(PERIOD_NS, received(2, down), 0, setpoint, setpoint, wrench)
    assert d.action == "servo" and "force_limited" in d.flags
    np.testing.assert_allclose(d.pose[:3], setpoint[:3], rtol=0, atol=1e-15)


def test_force_retreat_off_only_reports_the_excess_force() -> None:
    arm = Arm(force_retreat=False)
    arm.engage()
    arm.wrench = np.array([0.0, 0.0, 12.0, 0.0, 0.0, 0.0])
    d = arm.tick(pose(z=-0.1001))
    assert d.flags == ("force_over_limit",) and "force_retreat off" in d.reasons[0]
    np.testing.assert_array_equal(d.pose, pose(z=-0.1001))


def test_jaw_is_clamped_and_reported() -> None:
    arm = Arm()
    arm.engage()
    d = arm.tick(pose(), jaw=-0.5)
    assert d.flags == ("jaw_clamped",) and d.jaw == 0.0 and d.commanded_jaw == -0.5
    assert "jaw -0.5000 rad outside [0.0000, 1.0000] rad" in d.reasons[0]


@pytest.mark.parametrize(
    "setpoint, wrench, words",
    [
        ((float("nan"), *HOME[1:]), np.zeros(6), "not finite"),
        (HOME, np.array([0.0, 0.0, float("inf"), 0.0, 0.0, 0.0]), "not finite"),
        ((*HOME[:3], 0.0, 0.0, 0.0, 0.0), np.zeros(6), "quaternion has norm 0"),
        (HOME[:3], np.zeros(6), "wrong size"),
        (HOME, np.zeros(3), "wrong size"),
    ],
)
def test_unusable_feedback_holds_and_needs_reengage(setpoint, wrench, words) -> None:
    arm = Arm()
    arm.engage()
    arm.setpoint, arm.wrench = np.array(setpoint), wrench
    d = arm.tick(pose())
    assert d.action == "hold" and d.flags[-1] == "invalid_feedback"  # (inf N is over the limit)
    assert words in d.reasons[-1]
    arm.setpoint, arm.wrench = np.array(HOME), np.zeros(6)
    d = arm.tick(pose())
    assert d.flags == ("wait_reengage",)
    arm.engage()


# ---------------------------------------------------------------------------------------------
# random command streams


def _command(draw, *, clutch=None, odd: bool = False) -> tuple:
    box = st.floats(-0.15, 0.15)  # partly outside the workspace
    return (
        "cmd",
        (draw(box), draw(box), draw(st.floats(-0.25, 0.05))),
        draw(quats),
        draw(st.sampled_from([1, 2, 0, -1, -3])) if odd else 1,  # seq step
        draw(st.sampled_from([0.5, 1.0, 5.0, 200.0, 260.0, 1000.0, -5.0, -300.0, None]))
        if odd
        else draw(st.sampled_from([0.5, 1.0, 20.0])),  # age, ms
        draw(st.booleans()) if clutch is None else clutch,
        draw(st.sampled_from([True, True, False])) if odd else True,  # operator present
        draw(st.sampled_from(["servo_cp", "servo_cp", "hold"])) if odd else "servo_cp",
        draw(st.floats(-1.0, 2.0)),  # jaw
    )


@st.composite
def streams(draw) -> list[tuple]:
    """Bursts of good commands towards a target (often far, or outside the box), releases, odd
    commands (bad seq, stale or future ages, no operator, hold mode), silences, stalls, e-stops,
    resets and contact forces."""
    out: list[tuple] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(
            st.sampled_from(
                ["burst"] * 6
                + ["release"] * 3
                + ["odd"] * 3
                + ["gap", "stall", "estop", "reset"]
                + ["push"] * 2
            )
        )
        if kind == "burst":
            out += [_command(draw, clutch=True)] * draw(st.integers(1, 60))
        elif kind == "release":
            out.append(_command(draw, clutch=False))
        elif kind == "odd":
            out.append(_command(draw, odd=True))
        elif kind == "gap":
            out += [("idle",)] * draw(st.integers(1, 150))
        elif kind == "stall":  # the server missed ticks: time jumps in one call
            out.append(("stall", draw(st.integers(2, 150))))
        elif kind == "push":  # a contact force in the tool frame, from now on (or none)
            f = draw(st.tuples(*[st.floats(-30, 30)] * 3) | st.just((0.0, 0.0, 0.0)))
            out.append(("push", f))
        else:
            out.append((kind,))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams())
def test_random_streams_stay_in_the_box_under_the_speed_limits_and_obey_estop(stream):
    arm = Arm()
    sup = arm.sup
    need_release = True  # at start-up, after a watchdog hold and after an e-stop reset
    valid_since_release = False
    for ev in stream:
        prev = arm.setpoint.copy()
        kind = ev[0]
        rc_cmd = None
        if kind == "cmd":
            _, xyz, q, dseq, age, clutch, present, mode, jaw = ev
            seq = max(0, arm.seq + dseq)
            arm.seq = max(arm.seq, seq)
            target = (*xyz, *unit(q))
            d = arm.tick(
                target,
                seq=seq,
                age_ms=age,
                clutch=clutch,
                present=present,
                mode=mode,
                jaw=jaw,
            )
            rc_cmd = (clutch, present, mode, jaw, target)
        elif kind == "idle":
            d = arm.idle()
        elif kind == "stall":
            d = arm.tick(None, advance_ns=ev[1] * PERIOD_NS)
        elif kind == "estop":
            sup.estop("random")
            continue
        elif kind == "reset":
            if sup.estopped:
                need_release, valid_since_release = True, False
            sup.reset_estop()
            continue
        else:  # a contact force (in the tool frame) from now on
            arm.wrench = np.array([*ev[1], 0.0, 0.0, 0.0])
            continue

        refused = {"stale_command", "duplicate_command", "out_of_order_command"}
        if "watchdog_hold" in d.flags:
            need_release, valid_since_release = True, False
        if rc_cmd is not None and not refused & set(d.flags) and not sup.estopped:
            clutch, present, mode, *_ = rc_cmd
            if not present or mode != "servo_cp":
                need_release, valid_since_release = True, False
            if not clutch:
                valid_since_release = True

        if sup.estopped:
            assert d.action in ("estop", "none") and d.pose is None and "estop" in d.flags
            np.testing.assert_array_equal(arm.setpoint, prev)
            continue
        if d.action != "servo":
            assert d.pose is None and d.jaw is None
            np.testing.assert_array_equal(arm.setpoint, prev)
            continue

        # servo: only an engaged, valid, fresh command after a release, inside every limit
        assert rc_cmd is not None
        clutch, present, mode, jaw, target = rc_cmd
        assert clutch and present and mode == "servo_cp"
        assert not refused & set(d.flags)
        assert not need_release or valid_since_release
        need_release = False
        p = d.pose
        assert np.all(p[:3] >= LO) and np.all(p[:3] <= HI), p
        assert np.linalg.norm(p[:3] - prev[:3]) <= MAX_STEP_M * (1 + 1e-9)
        assert angle_between(prev[3:], p[3:]) <= MAX_TURN_RAD + 1e-9
        assert abs(np.linalg.norm(p[3:]) - 1.0) < 1e-12
        assert DESC.jaw_range_rad[0] <= d.jaw <= DESC.jaw_range_rad[1]
        np.testing.assert_array_equal(d.commanded_pose, target)
        f = arm.wrench[:3]
        if np.linalg.norm(f) > DESC.max_force_n:
            n = Rotation.from_quat(prev[3:]).apply(f) / np.linalg.norm(f)
            assert float((p[:3] - prev[:3]) @ n) >= -1e-12  # never further into the contact
    # every flag ever raised was counted, and nothing else
    totals = dict.fromkeys(FLAGS, 0)
    for dec in arm.decisions:
        for flag in dec.flags:
            totals[flag] += 1
    assert sup.counters == totals
