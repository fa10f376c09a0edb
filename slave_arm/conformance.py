"""The driver conformance kit: the :class:`~slave_arm.driver.ArmDriver` contract, as checks.

Every driver (the simulator's, a real arm's) must pass it. Each check in :data:`CHECKS` is a
function ``check(make_driver)`` that builds a fresh driver with ``make_driver()`` (no arguments),
connects it, exercises one part of the contract, disconnects it, and raises
:class:`ConformanceError` (an ``AssertionError``) with a message that points at the cause. A check
may return a short note (e.g. the achieved rate) when it passes.

From pytest (an integrator's own test file)::

    import pytest
    from slave_arm.conformance import CHECKS, conformance_params, driver_factory

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    @pytest.mark.parametrize("driver_name", conformance_params())
    def test_conformance(check, driver_name):
        check(driver_factory(driver_name))

or, for one class, ``run_conformance(MyArm)`` and ``format_report(rows)``.

Checks drive the arm only through the interface, at its own rate: "0.5 s of ticks" means
``ceil(0.5 * description.control_rate_hz)`` calls of ``update()``. Motions are small (5 mm)
and stay inside the described workspace box.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from network.link import ReceivedCommand
from network.protocol import ArmDescription, Command
from slave_arm.driver import ArmDriver, NotEnabledError, OperatingState
from slave_arm.registry import (
    ENTRY_POINT_GROUP,
    InstalledDriver,
    installed_drivers,
    load_driver_class,
)
from slave_arm.safety import SafetyConfig, SafetySupervisor

logger = logging.getLogger(__name__)

DriverFactory = Callable[[], ArmDriver]
Check = Callable[[DriverFactory], str | None]

STEP_M = 0.005
"""The test motion: 5 mm."""
POSITION_TOL_M = 0.5e-3
"""How closely a 5 mm step must be followed, and how still a held arm must stay (m)."""
ORIENTATION_TOL_RAD = 0.05
"""How far the tool may turn during a pure translation (rad)."""
WORKSPACE_MARGIN_M = 0.002
"""How far outside the workspace box a measured pose may be at connect (m)."""
JOINT_LIMIT_TOL = 1e-3
"""How far outside its limits a measured joint may be (rad or m)."""
QUATERNION_NORM_TOL = 1e-3
HOME_TIMEOUT_S = 10.0
"""The longest home() may take, in seconds of ticks."""
STATE_TIMEOUT_S = 2.0
"""The longest enable()/disable() may take to reach their state, in seconds of ticks."""
SETTLE_S = 0.5
"""How long a 5 mm step may take to settle (s of ticks)."""
HOLD_S = 0.2
"""How long a held arm is watched (s of ticks)."""
HOLD_STILL_M = 0.05e-3
"""A held arm is at rest once it stays within this of where it ends (m) ..."""
HOLD_STOP_MS = 50.0
"""... and it must get there within this long of hold() (ms of ticks)."""
WATCHDOG_SPEED_M_S = 0.02
"""The watchdog check's streamed motion: 20 mm/s (or half the arm's speed limit) ..."""
WATCHDOG_STREAM_S = 0.15
"""... for this long (s of ticks), at most 5 mm."""
RATE_S = 0.5
"""How long the achieved rate is measured (s of ticks)."""
MIN_RATE_FRACTION = 0.5
"""A driver slower than this fraction of its control rate fails."""
TIMESTAMP_WINDOW_NS = 60 * 10**9
"""A reading stamped more than this far from ``time.monotonic_ns()`` is not on that clock."""


class ConformanceError(AssertionError):
    """A driver broke the contract; the message says how and what to fix."""


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _fail(message: str) -> None:
    raise ConformanceError(message)


def _mm(v: Any) -> str:
    """A position or displacement (m) as a readable millimetre vector."""
    a = np.asarray(v, dtype=np.float64).ravel() * 1000.0
    return "(" + ", ".join(f"{x:+.3f}" for x in a) + ") mm"


def _new_driver(make_driver: DriverFactory) -> ArmDriver:
    try:
        d = make_driver()
    except Exception as exc:
        raise ConformanceError(
            f"make_driver() raised {type(exc).__name__}: {exc} (a driver must be constructible "
            "with no arguments)"
        ) from exc
    if not isinstance(d, ArmDriver):
        _fail(f"make_driver() returned {type(d).__name__}, not an ArmDriver")
    return d


@contextlib.contextmanager
def _connected(make_driver: DriverFactory, enable: bool = False) -> Iterator[ArmDriver]:
    """A fresh driver, connected (and ENABLED if asked); disconnected afterwards."""
    d = _new_driver(make_driver)
    try:
        d.connect()
    except Exception as exc:
        with contextlib.suppress(Exception):
            d.disconnect()  # release whatever connect() got hold of
        raise ConformanceError(f"connect() raised {type(exc).__name__}: {exc}") from exc
    try:
        if enable:
            _enable(d)
        yield d
    finally:
        failing = sys.exc_info()[1] is not None
        try:
            d.disconnect()
        except Exception as exc:
            if not failing:
                raise ConformanceError(f"disconnect() raised {type(exc).__name__}: {exc}") from exc
            logger.warning(
                "disconnect() raised %s after a failed check: %s", type(exc).__name__, exc
            )


def _rate_hz(d: ArmDriver) -> float:
    rate = float(d.description.control_rate_hz)
    if not (math.isfinite(rate) and rate > 0.0):
        _fail(f"description.control_rate_hz is {rate}: it must be a finite rate > 0 (Hz)")
    return rate


def _n_ticks(d: ArmDriver, seconds: float) -> int:
    """How many update() calls make ``seconds`` of control time (at least 1)."""
    return max(1, math.ceil(seconds * _rate_hz(d)))


def _tick(d: ArmDriver, seconds: float) -> None:
    for _ in range(_n_ticks(d, seconds)):
        d.update()


def _tick_until(d: ArmDriver, done: Callable[[], bool], seconds: float) -> int | None:
    """update() until ``done()``, at most ``seconds`` of ticks; the ticks it took, or None."""
    if done():
        return 0
    for i in range(_n_ticks(d, seconds)):
        d.update()
        if done():
            return i + 1
    return None


def _enable(d: ArmDriver) -> None:
    d.enable()
    if _tick_until(d, lambda: d.operating_state == OperatingState.ENABLED, STATE_TIMEOUT_S) is None:
        _fail(
            f"enable() did not reach ENABLED within {STATE_TIMEOUT_S:g} s of ticks "
            f"(operating_state is {d.operating_state})"
        )


def _pose(d: ArmDriver, what: str = "measured_cp") -> np.ndarray:
    """measured_cp or setpoint_cp as a checked float (7,) array."""
    r = getattr(d, what)()
    p = np.asarray(r.pose, dtype=np.float64)
    if p.shape != (7,):
        _fail(f"{what}().pose has shape {p.shape}, expected (7,): x, y, z (m), qx, qy, qz, qw")
    if not np.isfinite(p).all():
        _fail(f"{what}().pose holds a number that is not finite: {p}")
    n = float(np.linalg.norm(p[3:]))
    if abs(n - 1.0) > QUATERNION_NORM_TOL:
        _fail(f"{what}() quaternion has norm {n:.6g}, expected 1 (pose = {p})")
    return p


def _angle_rad(q0: np.ndarray, q1: np.ndarray) -> float:
    d = abs(float(q0 @ q1)) / float(np.linalg.norm(q0) * np.linalg.norm(q1))
    return 2.0 * math.acos(min(1.0, d))


def _box(desc: ArmDescription, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(desc.workspace_min_m, dtype=np.float64) - margin
    hi = np.asarray(desc.workspace_max_m, dtype=np.float64) + margin
    return lo, hi


def _in_box(pos: np.ndarray, desc: ArmDescription, margin: float = 0.0) -> bool:
    lo, hi = _box(desc, margin)
    return bool(np.all(pos >= lo) and np.all(pos <= hi))


def _check_in_workspace(pos: np.ndarray, desc: ArmDescription, what: str) -> None:
    """Fail (with a units hint) when ``pos`` is outside the workspace box + margin."""
    if _in_box(pos, desc, WORKSPACE_MARGIN_M):
        return
    msg = (
        f"{what} position {np.array2string(pos, precision=4)} m is outside the workspace box "
        f"{desc.workspace_min_m}..{desc.workspace_max_m} m (+{WORKSPACE_MARGIN_M * 1e3:g} mm)"
    )
    if _in_box(pos / 1000.0, desc, WORKSPACE_MARGIN_M):
        msg += ": it fits if divided by 1000, are positions in millimetres instead of metres?"
    elif _in_box(pos * 1000.0, desc, WORKSPACE_MARGIN_M):
        msg += ": it fits if multiplied by 1000, are positions in kilometres?"
    _fail(msg)


def _step_target(p: np.ndarray, desc: ArmDescription, axis: int = 0) -> tuple[np.ndarray, float]:
    """``p`` moved 5 mm along a base axis: +5 mm if it stays in the box, else -5 mm."""
    _check_in_workspace(p[:3], desc, "measured_cp()")
    for sign in (1.0, -1.0):
        t = p.copy()
        t[axis] += sign * STEP_M
        if _in_box(t[:3], desc):
            return t, sign
    _fail(f"the pose {p} leaves no room for a 5 mm step along axis {axis} in the workspace box")
    raise AssertionError  # unreachable


def _check_stamp(stamp: Any, what: str) -> int:
    if isinstance(stamp, bool) or not isinstance(stamp, int | np.integer):
        _fail(f"{what}.timestamp_ns is {stamp!r} ({type(stamp).__name__}), expected an int (ns)")
    s = int(stamp)
    if s <= 0:
        _fail(
            f"{what}.timestamp_ns is {s}: every reading must carry time.monotonic_ns() when it "
            "was taken (0 never)"
        )
    now = time.monotonic_ns()
    if abs(now - s) > TIMESTAMP_WINDOW_NS:
        _fail(
            f"{what}.timestamp_ns is {s}, {(s - now) / 1e9:+.3g} s from time.monotonic_ns(): "
            "readings must be stamped with time.monotonic_ns() (not time.time_ns() or a "
            "simulation clock)"
        )
    return s


def _all_stamps(d: ArmDriver) -> dict[str, int]:
    return {
        "measured_cp()": _check_stamp(d.measured_cp().timestamp_ns, "measured_cp()"),
        "setpoint_cp()": _check_stamp(d.setpoint_cp().timestamp_ns, "setpoint_cp()"),
        "measured_js()": _check_stamp(d.measured_js().timestamp_ns, "measured_js()"),
        "measured_cf()": _check_stamp(d.measured_cf().timestamp_ns, "measured_cf()"),
        "measured_jaw()": _check_stamp(d.measured_jaw().timestamp_ns, "measured_jaw()"),
    }


def _raises_value_error(call: Callable[[], Any], command: str, label: str) -> str | None:
    """None when ``call()`` raises ValueError with a message, else what went wrong."""
    try:
        call()
    except ValueError as exc:
        if not str(exc).strip():
            return (
                f"{command} raised ValueError with an empty message for {label}: say what was wrong"
            )
        return None
    except Exception as exc:
        name = type(exc).__name__
        return (
            f"{command} raised {name} ({exc}) for {label}: bad arguments must raise ValueError, "
            f"not {name}"
        )
    return f"{command} accepted {label}: drivers must raise ValueError and change nothing"


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------
def check_connect(make_driver: DriverFactory) -> None:
    """connect() -> DISABLED; every reading is available, timestamped and of the right shape."""
    with _connected(make_driver) as d:
        if d.operating_state != OperatingState.DISABLED:
            _fail(f"after connect() operating_state is {d.operating_state}, expected DISABLED")
        _pose(d, "measured_cp")
        _pose(d, "setpoint_cp")
        desc = d.description
        js = d.measured_js()
        for field in ("position", "velocity", "effort"):
            a = np.asarray(getattr(js, field), dtype=np.float64)
            if a.shape != (desc.dof,):
                _fail(
                    f"measured_js().{field} has shape {a.shape}, expected ({desc.dof},) "
                    "(description.dof)"
                )
            if not np.isfinite(a).all():
                _fail(f"measured_js().{field} holds a number that is not finite: {a}")
        w = np.asarray(d.measured_cf().wrench, dtype=np.float64)
        if w.shape != (6,) or not np.isfinite(w).all():
            _fail(
                f"measured_cf().wrench must be 6 finite numbers (fx, fy, fz N; tx, ty, tz N·m), "
                f"got {w!r}"
            )
        jaw = d.measured_jaw()
        if not (math.isfinite(jaw.angle_rad) and math.isfinite(jaw.grip_force_n)):
            _fail(f"measured_jaw() is not finite: {jaw}")
        if jaw.grip_force_n < 0.0:
            _fail(f"measured_jaw().grip_force_n is {jaw.grip_force_n} N, must be >= 0")
        _all_stamps(d)


def check_description(make_driver: DriverFactory) -> None:
    """The description is consistent, and the arm is inside its joint limits and workspace."""
    with _connected(make_driver) as d:
        if not isinstance(d.name, str) or not d.name:
            _fail(f"{type(d).__name__}.name is {d.name!r}: set it to the entry-point name")
        desc = d.description
        if not isinstance(desc, ArmDescription):
            _fail(
                f"description is a {type(desc).__name__}, expected network.protocol.ArmDescription"
            )
        n = desc.dof
        for field in ("joint_names", "joint_types", "joint_lower", "joint_upper"):
            if len(getattr(desc, field)) != n:
                _fail(f"description.{field} has {len(getattr(desc, field))} items, dof is {n}")
        if len(set(desc.joint_names)) != n:
            _fail(f"description.joint_names are not unique: {desc.joint_names}")
        for name in (
            "max_tool_speed_m_s",
            "max_angular_speed_rad_s",
            "max_force_n",
            "control_rate_hz",
        ):
            v = float(getattr(desc, name))
            if not (math.isfinite(v) and v > 0.0):
                _fail(f"description.{name} is {v}: it must be a finite figure > 0")
        lo_j = np.asarray(desc.joint_lower, dtype=np.float64)
        hi_j = np.asarray(desc.joint_upper, dtype=np.float64)
        if np.any(lo_j > hi_j):
            _fail(f"description.joint_lower {lo_j} is above joint_upper {hi_j}")
        lo_w, hi_w = _box(desc)
        if np.any(lo_w >= hi_w):
            _fail(f"description.workspace_min_m {lo_w} is not below workspace_max_m {hi_w}")
        jl, jh = desc.jaw_range_rad
        if not (math.isfinite(jl) and math.isfinite(jh) and jl <= jh):
            _fail(f"description.jaw_range_rad {desc.jaw_range_rad} is not a finite [min, max]")
        q = np.asarray(d.measured_js().position, dtype=np.float64)
        if q.shape != (n,):
            _fail(f"measured_js().position has shape {q.shape}, description.dof is {n}")
        bad = np.flatnonzero((q < lo_j - JOINT_LIMIT_TOL) | (q > hi_j + JOINT_LIMIT_TOL))
        if bad.size:
            i = int(bad[0])
            unit = "m" if desc.joint_types[i] == "prismatic" else "rad"
            _fail(
                f"measured_js() joint {desc.joint_names[i]!r} = {q[i]:.6g} {unit} is outside its "
                f"limits [{lo_j[i]:.6g}, {hi_j[i]:.6g}] {unit} "
                "(revolute joints in radians, prismatic in metres)"
            )
        _check_in_workspace(_pose(d)[:3], desc, "measured_cp()")


def check_timestamps(make_driver: DriverFactory) -> None:
    """Timestamps never go back across update() calls and advance when time passes."""
    with _connected(make_driver) as d:
        prev = _all_stamps(d)
        for _ in range(5):
            d.update()
            cur = _all_stamps(d)
            for what, s in cur.items():
                if s < prev[what]:
                    _fail(f"{what}.timestamp_ns went back from {prev[what]} to {s} after update()")
            prev = cur
        time.sleep(0.002)
        d.update()
        cur = _all_stamps(d)
        if cur["measured_cp()"] <= prev["measured_cp()"]:
            _fail(
                "measured_cp().timestamp_ns did not increase across an update() 2 ms later "
                f"({prev['measured_cp()']} -> {cur['measured_cp()']}): stamp each reading with "
                "time.monotonic_ns() when it is taken"
            )


def check_state_transitions(make_driver: DriverFactory) -> None:
    """enable() -> ENABLED, disable() -> DISABLED, and enable() again -> ENABLED."""
    with _connected(make_driver) as d:
        _enable(d)
        d.disable()
        if (
            _tick_until(d, lambda: d.operating_state == OperatingState.DISABLED, STATE_TIMEOUT_S)
            is None
        ):
            _fail(f"disable() did not reach DISABLED (operating_state is {d.operating_state})")
        _enable(d)


def check_servo_needs_enabled(make_driver: DriverFactory) -> None:
    """servo_cp/servo_jaw while DISABLED raise NotEnabledError and do not move the setpoint."""
    with _connected(make_driver) as d:
        sp = _pose(d, "setpoint_cp")
        target, _ = _step_target(_pose(d), d.description)
        try:
            d.servo_cp(target)
        except NotEnabledError:
            pass
        except Exception as exc:
            _fail(
                f"servo_cp while DISABLED raised {type(exc).__name__} ({exc}), "
                "expected NotEnabledError"
            )
        else:
            _fail("servo_cp while DISABLED was accepted: it must raise NotEnabledError")
        after = _pose(d, "setpoint_cp")
        if not np.allclose(after, sp, atol=1e-9):
            _fail(f"servo_cp while DISABLED moved the setpoint by {_mm(after[:3] - sp[:3])}")
        lo, hi = d.description.jaw_range_rad
        try:
            d.servo_jaw(0.5 * (lo + hi))
        except NotEnabledError:
            pass
        except Exception as exc:
            _fail(
                f"servo_jaw while DISABLED raised {type(exc).__name__} ({exc}), "
                "expected NotEnabledError"
            )
        else:
            _fail("servo_jaw while DISABLED was accepted: it must raise NotEnabledError")


def check_home(make_driver: DriverFactory) -> str:
    """home(): is_busy while moving, then not busy and is_homed, back at the same home pose."""
    with _connected(make_driver, enable=True) as d:
        d.home()

        def arrived() -> bool:
            return not d.is_busy and d.is_homed

        if _tick_until(d, arrived, HOME_TIMEOUT_S) is None:
            _fail(
                f"home() did not finish within {HOME_TIMEOUT_S:g} s of ticks "
                f"(is_busy={d.is_busy}, is_homed={d.is_homed})"
            )
        home = _pose(d)
        target, _ = _step_target(home, d.description)
        d.servo_cp(target)
        _tick(d, SETTLE_S)
        away = _pose(d)
        if np.linalg.norm(away[:3] - home[:3]) < 0.5 * STEP_M:
            _fail(f"servo_cp 5 mm away from home moved the arm only {_mm(away[:3] - home[:3])}")
        d.home()
        if not d.is_busy:
            _fail(
                "is_busy is False right after home() with the arm 5 mm from home: it must be "
                "True from the call until the arm is home"
            )
        ticks = _tick_until(d, arrived, HOME_TIMEOUT_S)
        if ticks is None:
            _fail(
                f"home() from 5 mm away did not finish within {HOME_TIMEOUT_S:g} s of ticks "
                f"(is_busy={d.is_busy}, is_homed={d.is_homed})"
            )
        back = _pose(d)
        err = float(np.linalg.norm(back[:3] - home[:3]))
        if err > 2 * POSITION_TOL_M:
            _fail(
                f"home() ended {err * 1e3:.3f} mm from where the previous home() ended: "
                "is_busy went False before the arm was home"
            )
        return f"home from 5 mm took {ticks} ticks"


def check_units_and_frames(make_driver: DriverFactory) -> None:
    """A 5 mm step along base +x moves measured_cp 5 mm along x only (metres, base frame)."""
    with _connected(make_driver, enable=True) as d:
        desc = d.description
        p0 = _pose(d)
        _check_in_workspace(p0[:3], desc, "measured_cp()")
        target, sign = _step_target(p0, desc)
        d.servo_cp(target)
        _tick(d, SETTLE_S)
        p1 = _pose(d)
        moved = p1[:3] - p0[:3]
        expect = np.array([sign * STEP_M, 0.0, 0.0])
        if np.max(np.abs(moved - expect)) > POSITION_TOL_M:
            msg = (
                f"servo_cp to {sign * STEP_M * 1e3:+.0f} mm along base x moved measured_cp by "
                f"{_mm(moved)} in {SETTLE_S:g} s, expected {_mm(expect)} ± "
                f"{POSITION_TOL_M * 1e3:g} mm"
            )
            dist = float(np.linalg.norm(moved))
            if 300 * STEP_M < dist < 3000 * STEP_M:
                msg += ": 1000 times too far, are positions in millimetres instead of metres?"
            elif 0.0003 * STEP_M < dist < 0.003 * STEP_M:
                msg += ": 1000 times too short, are positions in kilometres?"
            elif dist > 0.5 * STEP_M and abs(moved[0]) < 0.5 * dist:
                msg += (
                    ": the arm moved along another axis, is the pose in the base frame and "
                    "ordered x, y, z, qx, qy, qz, qw?"
                )
            elif dist > 0.5 * STEP_M and moved[0] * sign < 0:
                msg += ": the arm moved the opposite way"
            elif dist < 0.5 * STEP_M:
                msg += ": the arm did not follow the setpoint (or too slowly)"
            _fail(msg)
        turn = _angle_rad(p0[3:], p1[3:])
        if turn > ORIENTATION_TOL_RAD:
            _fail(
                f"a pure translation turned the tool by {turn:.3f} rad (tolerance "
                f"{ORIENTATION_TOL_RAD} rad): is the quaternion ordered qx, qy, qz, qw?"
            )


def check_servo_returns_copy(make_driver: DriverFactory) -> None:
    """servo_cp returns the applied pose as a copy, and keeps no reference to its argument."""
    with _connected(make_driver, enable=True) as d:
        target, _ = _step_target(_pose(d), d.description)
        arg = target.copy()
        applied = d.servo_cp(arg)
        if not isinstance(applied, np.ndarray) or applied.shape != (7,):
            _fail(f"servo_cp returned {applied!r}, expected the applied pose as a (7,) ndarray")
        sp = _pose(d, "setpoint_cp")
        if not np.allclose(sp, applied, atol=1e-9):
            _fail(f"servo_cp returned {applied}, but setpoint_cp() is {sp}: return what was set")
        kept = applied.copy()
        applied[:3] += 0.01
        arg[:3] -= 0.01
        sp2 = _pose(d, "setpoint_cp")
        if not np.allclose(sp2, kept, atol=1e-9):
            _fail(
                "changing the array servo_cp returned (or was given) changed setpoint_cp(): "
                "copy the pose in and out"
            )


def check_workspace_limits(make_driver: DriverFactory) -> None:
    """A target outside the workspace box raises ValueError and does not move the setpoint."""
    with _connected(make_driver, enable=True) as d:
        desc = d.description
        base = _pose(d, "setpoint_cp")
        lo, hi = _box(desc)
        problems: list[str] = []
        for i, axis in enumerate("xyz"):
            for bound, beyond in ((lo[i], -0.01), (hi[i], +0.01)):
                t = base.copy()
                t[i] = bound + beyond
                what = f"a target with {axis} = {t[i]:+.3f} m, 1 cm outside the workspace box"
                p = _raises_value_error(lambda t=t: d.servo_cp(t), "servo_cp", what)
                if p:
                    problems.append(p)
                after = _pose(d, "setpoint_cp")
                if not np.allclose(after, base, atol=1e-9):
                    problems.append(f"servo_cp with {what} moved the setpoint to {after[:3]} m")
                    with contextlib.suppress(Exception):
                        d.servo_cp(base)
        if problems:
            _fail("; ".join(problems))


def check_jaw_limits(make_driver: DriverFactory) -> None:
    """servo_jaw outside the jaw range raises ValueError; inside it, the jaw follows (rad)."""
    with _connected(make_driver, enable=True) as d:
        lo, hi = d.description.jaw_range_rad
        problems = [
            p
            for v in (lo - 0.5, hi + 0.5)
            if (
                p := _raises_value_error(
                    lambda v=v: d.servo_jaw(v),
                    "servo_jaw",
                    f"{v:.3f} rad, outside the jaw range [{lo:.3f}, {hi:.3f}] rad",
                )
            )
        ]
        if problems:
            _fail("; ".join(problems))
        goal = (
            lo + 0.25 * (hi - lo)
            if d.measured_jaw().angle_rad > 0.5 * (lo + hi)
            else (lo + 0.75 * (hi - lo))
        )
        applied = float(d.servo_jaw(goal))
        if abs(applied - goal) > 1e-6:
            _fail(f"servo_jaw({goal:.4f}) within the jaw range returned {applied:.4f}")
        _tick(d, SETTLE_S)
        got = d.measured_jaw().angle_rad
        if abs(got - goal) > 0.05 * (hi - lo) + 1e-3:
            _fail(
                f"servo_jaw({goal:.4f} rad) left measured_jaw() at {got:.4f} rad after "
                f"{SETTLE_S:g} s: the jaw does not follow (radians?)"
            )


def _settle_ticks(xs: list[np.ndarray], tol_m: float) -> int:
    """How many samples until the positions ``xs`` stay within ``tol_m`` of the last one."""
    last = xs[-1]
    for i in range(len(xs) - 1, -1, -1):
        if float(np.linalg.norm(xs[i] - last)) > tol_m:
            return i + 1
    return 0


def check_hold(make_driver: DriverFactory) -> str:
    """hold() while moving: setpoint := measured, the arm stops (< 0.5 mm in 0.2 s, within
    50 ms), stays ENABLED. The note gives the hold latency (time to stop) and the overshoot.

    The arm is commanded 5 mm away and ticked for 5 ms, so it is moving when hold() is called.
    """
    with _connected(make_driver, enable=True) as d:
        rate = _rate_hz(d)
        target, _ = _step_target(_pose(d), d.description)
        d.servo_cp(target)
        _tick(d, 0.005)
        before = _pose(d)
        d.update()
        speed = float(np.linalg.norm(_pose(d)[:3] - before[:3])) * rate
        d.hold()
        if d.operating_state != OperatingState.ENABLED:
            _fail(f"hold() changed operating_state to {d.operating_state}: it must keep the state")
        held = _pose(d)
        sp = _pose(d, "setpoint_cp")
        problems = []
        gap = float(np.linalg.norm(sp[:3] - held[:3]))
        if gap > 0.2 * POSITION_TOL_M:
            problems.append(
                f"after hold() setpoint_cp() is {gap * 1e3:.3f} mm from measured_cp() "
                "(hold() must set the setpoint to the measured pose)"
            )
        path = [held[:3]]
        for _ in range(_n_ticks(d, HOLD_S)):
            d.update()
            path.append(_pose(d)[:3])
        drift = float(np.linalg.norm(path[-1] - held[:3]))
        stop_ms = _settle_ticks(path, HOLD_STILL_M) / rate * 1e3
        if drift >= POSITION_TOL_M:
            problems.append(
                f"the arm moved {drift * 1e3:.3f} mm in {HOLD_S:g} s after hold() (limit "
                f"{POSITION_TOL_M * 1e3:g} mm): hold() did not stop it at the measured pose"
            )
        elif stop_ms > HOLD_STOP_MS:
            problems.append(
                f"the arm took {stop_ms:.0f} ms to come to rest after hold() (limit "
                f"{HOLD_STOP_MS:g} ms): it must stop at once"
            )
        if problems:
            _fail("; ".join(problems))
        return (
            f"moving at {speed * 1e3:.0f} mm/s, stopped {stop_ms:.1f} ms after hold(), "
            f"{drift * 1e3:.3f} mm from the hold point"
        )


def _watchdog_tick(
    d: ArmDriver, sup: SafetySupervisor, now_ns: int, rc: ReceivedCommand | None
) -> str:
    """One arm-server tick without the link: supervise, act through the driver, update()."""
    m, s, w = d.measured_cp(), d.setpoint_cp(), d.measured_cf()
    dec = sup.supervise(now_ns, rc, 0 if rc is not None else None, m.pose, s.pose, w.wrench)
    if dec.action == "servo":
        d.servo_cp(dec.pose)
        if dec.jaw is not None:
            d.servo_jaw(dec.jaw)
    elif dec.action in ("hold", "estop"):
        d.hold()
    d.update()
    if dec.action not in ("servo", "none") or not rc:
        return dec.action
    if dec.action == "none" and rc.command.clutch_engaged:
        _fail(
            "the safety supervisor refused the driver's own stream: "
            + ("; ".join(dec.reasons) or "no reason given")
        )
    return dec.action


def check_watchdog(make_driver: DriverFactory) -> str:
    """Served as the arm server does (the safety supervisor with the default watchdog), a
    console streams a 20 mm/s motion and goes silent: the arm goes no further than the last
    target, the supervisor calls hold() when the watchdog trips, and the arm stays there."""
    with _connected(make_driver, enable=True) as d:
        desc = d.description
        rate = _rate_hz(d)
        config = SafetyConfig.from_description(desc)
        sup = SafetySupervisor(config, rate)
        period_ns = round(1e9 / rate)
        p0 = _pose(d)
        _, sign = _step_target(p0, desc)
        speed = min(WATCHDOG_SPEED_M_S, 0.5 * float(desc.max_tool_speed_m_s))
        lo, hi = desc.jaw_range_rad
        jaw = min(max(d.measured_jaw().angle_rad, lo), hi)
        now = time.monotonic_ns()
        n_stream = _n_ticks(d, WATCHDOG_STREAM_S)
        last = p0.copy()
        for i in range(n_stream + 1):
            now += period_ns
            last = p0.copy()
            last[0] += sign * min(STEP_M, speed * max(0, i - 1) / rate)
            cmd = Command(
                seq=i + 1,
                send_ns=now,
                mode="servo_cp",
                servo_cp=tuple(last.tolist()),  # type: ignore[arg-type]
                servo_jaw=jaw,
                clutch_engaged=i > 0,  # released first: the supervisor arms on the engage edge
                operator_present=True,
            )
            _watchdog_tick(d, sup, now, ReceivedCommand(cmd, now))
        followed = (_pose(d)[0] - p0[0]) * sign
        expect = (last[0] - p0[0]) * sign
        if followed < 0.3 * expect:
            _fail(
                f"streamed {expect * 1e3:.1f} mm along x through the safety supervisor, the arm "
                f"followed {followed * 1e3:.2f} mm: it does not track a stream of servo_cp targets"
            )
        silent_from = now
        hold_at_ns = None
        overshoot = 0.0
        path: list[np.ndarray] = []
        for _ in range(_n_ticks(d, config.watchdog_ms / 1e3 + HOLD_S)):
            now += period_ns
            action = _watchdog_tick(d, sup, now, None)
            p = _pose(d)
            if hold_at_ns is None:
                overshoot = max(overshoot, (p[0] - last[0]) * sign)
                if action == "hold":
                    hold_at_ns = now
                    held = p[:3].copy()
            else:
                path.append(p[:3])
        if overshoot > POSITION_TOL_M:
            _fail(
                f"with no new command the arm went {overshoot * 1e3:.2f} mm past the last target "
                f"(limit {POSITION_TOL_M * 1e3:g} mm): servo_cp targets are absolute; does the "
                "driver keep applying the last velocity?"
            )
        if hold_at_ns is None or not path:
            _fail(
                f"the safety supervisor never asked for hold() in {config.watchdog_ms:g} ms + "
                f"{HOLD_S:g} s of silence"
            )
        drift = float(np.linalg.norm(path[-1] - held))
        if drift >= POSITION_TOL_M:
            _fail(
                f"after the watchdog's hold() the arm moved {drift * 1e3:.3f} mm in {HOLD_S:g} s "
                f"(limit {POSITION_TOL_M * 1e3:g} mm): it must stay where hold() found it"
            )
        silence_ms = (hold_at_ns - silent_from) / 1e6
        return (
            f"hold() {silence_ms:.0f} ms after the last command (watchdog "
            f"{config.watchdog_ms:g} ms); {max(overshoot, 0.0) * 1e3:.3f} mm past the last "
            f"target, {drift * 1e3:.3f} mm drift in {HOLD_S:g} s after"
        )


def check_bad_arguments(make_driver: DriverFactory) -> None:
    """NaN, inf, wrong shapes, a string, a zero quaternion, None: ValueError, nothing changes."""
    with _connected(make_driver, enable=True) as d:
        base = _pose(d, "setpoint_cp")
        nan, inf = base.copy(), base.copy()
        nan[0] = math.nan
        inf[1] = math.inf
        zero_q = base.copy()
        zero_q[3:] = 0.0
        cases: list[tuple[str, Any]] = [
            ("a NaN pose", nan),
            ("an inf pose", inf),
            ("a pose of shape (3,)", base[:3].copy()),
            ("a pose of shape (8,)", np.append(base, 0.0)),
            ("a string", "not a pose"),
            ("a zero quaternion", zero_q),
            ("None", None),
        ]
        problems: list[str] = []
        for label, arg in cases:
            p = _raises_value_error(lambda arg=arg: d.servo_cp(arg), "servo_cp", label)
            if p:
                problems.append(p)
            after = np.asarray(d.setpoint_cp().pose, dtype=np.float64)
            if after.shape != base.shape or not np.array_equal(after, base):
                problems.append(f"servo_cp with {label} changed the setpoint to {after}")
                with contextlib.suppress(Exception):
                    d.servo_cp(base)
        for label, arg in (
            ("a NaN angle", math.nan),
            ("an inf angle", math.inf),
            ("a string", "open"),
            ("None", None),
        ):
            p = _raises_value_error(lambda arg=arg: d.servo_jaw(arg), "servo_jaw", label)
            if p:
                problems.append(p)
        _tick(d, 0.01)
        if not math.isfinite(d.measured_jaw().angle_rad):
            problems.append("measured_jaw() is not finite after bad servo_jaw arguments")
        if problems:
            _fail("; ".join(problems))


def check_disconnect(make_driver: DriverFactory) -> None:
    """disconnect() is idempotent: twice after connect, and before any connect, never raises."""
    d = _new_driver(make_driver)
    for when in ("before connect()", "after connect()", "a second time"):
        if when == "after connect()":
            d.connect()
        try:
            d.disconnect()
        except Exception as exc:
            _fail(f"disconnect() {when} raised {type(exc).__name__}: {exc} (it must be idempotent)")


class _Marker(Exception):
    """Raised inside a with-block to see that __exit__ disconnects and does not swallow it."""


def _with_block(make_driver: DriverFactory, raising: bool) -> None:
    """One ``with driver:`` block, watching connect()/disconnect(); raise in it if asked."""
    d = _new_driver(make_driver)
    calls: list[str] = []
    connect, disconnect = d.connect, d.disconnect

    def spy_connect() -> None:
        calls.append("connect")
        connect()

    def spy_disconnect() -> None:
        calls.append("disconnect")
        disconnect()

    d.connect = spy_connect  # type: ignore[method-assign]
    d.disconnect = spy_disconnect  # type: ignore[method-assign]
    try:
        with d as entered:
            if entered is not d:
                _fail(f"__enter__ returned {entered!r}, expected the driver itself")
            if calls != ["connect"]:
                _fail(f"entering the with-block made the calls {calls}, expected connect()")
            _pose(entered)
            if raising:
                raise _Marker
    except _Marker:
        pass
    else:
        if raising:
            _fail("__exit__ swallowed an exception raised in the with-block")
    finally:
        with contextlib.suppress(Exception):
            disconnect()
    if calls.count("disconnect") != 1:
        how = "on an exception" if raising else "normally"
        _fail(
            f"leaving the with-block {how} called disconnect() {calls.count('disconnect')} "
            "times, expected once"
        )


def check_context_manager(make_driver: DriverFactory) -> None:
    """``with driver as d`` connects and returns the driver; leaving disconnects, even on error."""
    _with_block(make_driver, raising=False)
    _with_block(make_driver, raising=True)


def check_rate(make_driver: DriverFactory) -> str:
    """update() + readings + servo_cp/servo_jaw per tick keep up with the control rate."""
    with _connected(make_driver, enable=True) as d:
        desc = d.description
        rate = _rate_hz(d)
        n = _n_ticks(d, RATE_S)
        p0 = _pose(d)
        _check_in_workspace(p0[:3], desc, "measured_cp()")
        lo, hi = desc.jaw_range_rad
        jaw = min(max(d.measured_jaw().angle_rad, lo), hi)
        r = 0.001
        circle = all(
            _in_box(p0[:3] + np.array([dx, dy, 0.0]), desc)
            for dx, dy in ((r, 0), (-r, 0), (0, r), (0, -r))
        )
        t_update = t_read = t_servo = 0
        worst = 0
        target = p0.copy()
        clock = time.perf_counter_ns
        for i in range(n):
            if circle:
                a = 2.0 * math.pi * i / n
                target[0] = p0[0] + r * math.cos(a) - r
                target[1] = p0[1] + r * math.sin(a)
            t0 = clock()
            d.update()
            t1 = clock()
            d.measured_cp()
            d.setpoint_cp()
            d.measured_js()
            d.measured_cf()
            d.measured_jaw()
            _ = d.operating_state
            t2 = clock()
            d.servo_cp(target)
            d.servo_jaw(jaw)
            t3 = clock()
            t_update += t1 - t0
            t_read += t2 - t1
            t_servo += t3 - t2
            worst = max(worst, t3 - t0)
        mean_us = (t_update + t_read + t_servo) / n / 1e3
        achieved = 1e6 / mean_us if mean_us > 0 else math.inf
        period_us = 1e6 / rate
        detail = (
            f"achieved {achieved:.0f} ticks/s at control rate {rate:g} Hz: mean "
            f"{mean_us:.1f} µs per tick (update() {t_update / n / 1e3:.1f}, readings "
            f"{t_read / n / 1e3:.1f}, servo {t_servo / n / 1e3:.1f}), max {worst / 1e3:.0f} µs; "
            f"control period {period_us:.0f} µs"
        )
        logger.info("%s: %s", type(d).__name__, detail)
        if achieved < MIN_RATE_FRACTION * rate:
            _fail(f"too slow: {detail}; below {MIN_RATE_FRACTION:g} × the control rate")
        if achieved < rate:
            return f"WARNING slower than the control rate: {detail}"
        return detail


CHECKS: list[Check] = [
    check_connect,
    check_description,
    check_timestamps,
    check_state_transitions,
    check_servo_needs_enabled,
    check_home,
    check_units_and_frames,
    check_servo_returns_copy,
    check_workspace_limits,
    check_jaw_limits,
    check_hold,
    check_watchdog,
    check_bad_arguments,
    check_disconnect,
    check_context_manager,
    check_rate,
]
"""Every check, in the order they are run: basics first, timing last."""


def check_name(check: Check) -> str:
    """A check's short name: ``check_hold`` -> ``"hold"``."""
    return check.__name__.removeprefix("check_")


# ---------------------------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------------------------
Progress = Callable[[int, int, str, bool, str], None]
"""``progress(index, total, name, passed, message)``, called after each check."""


def run_conformance(
    make_driver: DriverFactory, checks: list[Check] | None = None, progress: Progress | None = None
) -> list[tuple[str, bool, str]]:
    """Run every check (or ``checks``); rows of (short name, passed, message). Never raises.

    A passing row's message is the check's note (often empty); a failing row's is the
    :class:`ConformanceError` message, or the unexpected exception and where it was raised.
    """
    rows: list[tuple[str, bool, str]] = []
    todo = CHECKS if checks is None else checks
    for check in todo:
        name = check_name(check)
        try:
            note = check(make_driver)
        except ConformanceError as exc:
            rows.append((name, False, str(exc)))
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            rows.append(
                (
                    name,
                    False,
                    f"unexpected {type(exc).__name__}: {exc} (at {frame.filename}:{frame.lineno} "
                    f"in {frame.name})",
                )
            )
        else:
            rows.append((name, True, note or ""))
        logger.debug("conformance %s: %s", name, "pass" if rows[-1][1] else rows[-1][2])
        if progress is not None:
            progress(len(rows), len(todo), *rows[-1])
    return rows


CATEGORIES: dict[str, tuple[str, ...]] = {
    "contract": (
        "connect",
        "description",
        "state_transitions",
        "servo_needs_enabled",
        "home",
        "servo_returns_copy",
        "disconnect",
        "context_manager",
    ),
    "units and frames": ("units_and_frames",),
    "limits": ("workspace_limits", "jaw_limits"),
    "timestamps": ("timestamps",),
    "hold and its latency": ("hold",),
    "watchdog (behind the safety supervisor)": ("watchdog",),
    "bad arguments": ("bad_arguments",),
    "control rate": ("rate",),
}
"""The report's sections: which checks prove which part of the contract."""


def format_report(rows: list[tuple[str, bool, str]], title: str = "driver conformance") -> str:
    """The rows as a plain-text report: a summary line, then the checks by section, one line
    each (PASS/FAIL, name, note or what was wrong)."""
    passed = sum(1 for _, ok, _ in rows if ok)
    width = max((len(name) for name, _, _ in rows), default=0)
    lines = [f"{title}: {passed}/{len(rows)} checks passed"]
    if passed < len(rows):
        failed = ", ".join(name for name, ok, _ in rows if not ok)
        lines[0] += f"; FAILED: {failed}"
    known = {name for names in CATEGORIES.values() for name in names}
    sections = [*CATEGORIES.items(), ("other", tuple(n for n, _, _ in rows if n not in known))]
    for section, names in sections:
        members = [r for r in rows if r[0] in names]
        if not members:
            continue
        lines.append(f"  {section}")
        for name, ok, message in members:
            line = f"    {'PASS' if ok else 'FAIL'}  {name:<{width}}"
            if message:
                line += f"  {message}"
            lines.append(line.rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Installed drivers (entry points: slave_arm.registry)
# ---------------------------------------------------------------------------------------------
def conformance_params() -> list[Any]:
    """The installed drivers' names as ``pytest.param``s; ones that fail to load are skipped,
    and ones that move a real arm get the ``hardware`` marker (run only with ``--hardware``).

    For ``@pytest.mark.parametrize("driver_name", conformance_params())``; pass the name to
    :func:`driver_factory`. Needs pytest (imported here only).
    """
    import pytest

    params = []
    for drv in installed_drivers():
        marks = []
        error = drv.error
        if error is None and drv.cls is not None:
            try:  # constructing a driver must not touch the hardware (slave_arm.driver)
                if drv.cls().moves_hardware:
                    marks.append(pytest.mark.hardware)  # skipped unless pytest --hardware
            except Exception as exc:
                error = f"{drv.cls.__name__}() raised {type(exc).__name__}: {exc}"
        if error is not None:
            reason = f"driver {drv.name!r} ({drv.target}) cannot be loaded: {error}"
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(drv.name, id=drv.name, marks=marks))
    return params


def driver_factory(name: str | type[ArmDriver]) -> DriverFactory:
    """A zero-argument constructor for the driver registered as ``name`` (an entry-point name
    or ``module:Class``), or for a class.

    Raises LookupError for an unknown name, and whatever importing the driver raises.
    """
    if isinstance(name, type):
        if not issubclass(name, ArmDriver):
            raise TypeError(f"{name!r} is not an ArmDriver subclass")
        return name
    return load_driver_class(name)


__all__ = [
    "CATEGORIES",
    "CHECKS",
    "ENTRY_POINT_GROUP",
    "Check",
    "ConformanceError",
    "DriverFactory",
    "InstalledDriver",
    "Progress",
    "check_name",
    "conformance_params",
    "driver_factory",
    "format_report",
    "installed_drivers",
    "run_conformance",
]
