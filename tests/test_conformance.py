"""The driver conformance kit: every installed driver passes it, broken drivers fail it.

Also the kinematic arm's own behaviour (first-order tracking, Euler angles, homing, errors).
"""

from __future__ import annotations

import math
from importlib.metadata import EntryPoint

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from slave_arm import conformance, registry
from slave_arm.conformance import (
    CHECKS,
    ConformanceError,
    check_name,
    conformance_params,
    driver_factory,
    format_report,
    run_conformance,
)
from slave_arm.driver import (
    ArmDriver,
    DriverError,
    NotEnabledError,
    OperatingState,
)
from slave_arm.kinematic import HOME_POSE, KinematicArm, quaternion_to_rpy
from tests.broken_drivers import (
    AcceptsNaN,
    Coasting,
    HoldDoesNothing,
    Millimetres,
    SwapsXY,
    TooSlow,
    ZeroTimestamps,
)


# ---------------------------------------------------------------------------------------------
# Every installed driver x every check
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("check", CHECKS, ids=check_name)
@pytest.mark.parametrize("driver_name", conformance_params())
def test_installed_driver_conforms(driver_name: str, check: conformance.Check) -> None:
    check(driver_factory(driver_name))


def test_kinematic_is_installed() -> None:
    names = [p.values[0] for p in conformance_params()]
    assert "kinematic" in names, "run `pip install -e .` so the entry points exist"
    assert driver_factory("kinematic") is KinematicArm


# ---------------------------------------------------------------------------------------------
# Broken drivers fail the kit, at the right check, with a message naming the cause
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("driver", "failing", "words", "only"),
    [
        (AcceptsNaN, "bad_arguments", "servo_cp accepted a NaN pose", True),
        (HoldDoesNothing, "hold", "hold() did not stop", True),
        (ZeroTimestamps, "connect", "timestamp_ns is 0", False),
        (ZeroTimestamps, "timestamps", "timestamp_ns is 0", False),
        (Millimetres, "units_and_frames", "millimetres instead of metres", False),
        (SwapsXY, "units_and_frames", "moved along another axis", False),
        (TooSlow, "rate", "too slow", True),
        (Coasting, "watchdog", "keep applying the last velocity", False),
    ],
    ids=[
        "nan",
        "hold",
        "timestamp0-connect",
        "timestamp0-timestamps",
        "millimetres",
        "swapped-axes",
        "slow",
        "coasting",
    ],
)
def test_broken_driver_fails(driver: type[ArmDriver], failing: str, words: str, only: bool) -> None:
    rows = run_conformance(driver)
    report = format_report(rows, title=driver.__name__)
    by_name = {name: (ok, msg) for name, ok, msg in rows}
    ok, msg = by_name[failing]
    assert not ok, report
    assert words in msg, report
    if only:  # the kit points at the one broken thing, not at everything
        assert [name for name, ok, _ in rows if not ok] == [failing], report


def test_check_raises_conformance_error_for_pytest() -> None:
    with pytest.raises(ConformanceError, match="hold"):
        conformance.check_hold(HoldDoesNothing)
    assert issubclass(ConformanceError, AssertionError)


def test_run_conformance_never_raises() -> None:
    def broken_factory() -> ArmDriver:
        raise RuntimeError("no hardware")

    rows = run_conformance(broken_factory)
    assert [name for name, _, _ in rows] == [check_name(c) for c in CHECKS]
    assert not any(ok for _, ok, _ in rows)
    assert all("no hardware" in msg for _, _, msg in rows)


def test_format_report() -> None:
    text = format_report(run_conformance(KinematicArm), title="kinematic")
    assert text.splitlines()[0] == f"kinematic: {len(CHECKS)}/{len(CHECKS)} checks passed"
    assert "PASS  rate" in text and "ticks/s" in text
    text = format_report([("hold", False, "it moved")])
    assert "0/1 checks passed" in text and "FAIL  hold  it moved" in text


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------
def test_unloadable_driver_is_skipped_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    group = conformance.ENTRY_POINT_GROUP
    fake = [
        EntryPoint("kinematic", "slave_arm.kinematic:KinematicArm", group),
        EntryPoint("ghost", "no_such_module_for_conformance:Arm", group),
        EntryPoint("notadriver", "math:pi", group),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: fake)
    params = {p.values[0]: p for p in conformance_params()}
    assert not params["kinematic"].marks
    for name, why in (("ghost", "ModuleNotFoundError"), ("notadriver", "not an ArmDriver")):
        (mark,) = params[name].marks
        assert mark.name == "skip"
        assert name in mark.kwargs["reason"] and why in mark.kwargs["reason"]
    with pytest.raises(LookupError, match="installed"):
        driver_factory("nope")
    with pytest.raises(ModuleNotFoundError):
        driver_factory("ghost")


def test_driver_factory_accepts_a_class() -> None:
    assert driver_factory(KinematicArm) is KinematicArm
    with pytest.raises(TypeError):
        driver_factory(int)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The kinematic arm itself
# ---------------------------------------------------------------------------------------------
def test_kinematic_readings_need_connect() -> None:
    arm = KinematicArm()
    assert arm.description.dof == 7
    with pytest.raises(DriverError, match=r"not connected: call connect\(\)"):
        arm.measured_cp()
    with arm:
        assert arm.operating_state == OperatingState.DISABLED
        np.testing.assert_allclose(arm.measured_cp().pose, HOME_POSE)
        assert arm.measured_jaw().angle_rad == 0.5
        assert arm.measured_cp().timestamp_ns > 0
    with pytest.raises(DriverError, match="not connected"):
        arm.measured_js()
    arm.disconnect()


def test_kinematic_first_order_tracking_with_injected_clock() -> None:
    now = [1_000]
    arm = KinematicArm(rate_hz=500.0, tracking_time_constant_s=0.01, clock_ns=lambda: now[0])
    arm.connect()
    arm.enable()
    target = np.array(HOME_POSE)
    target[0] = 0.01
    applied = arm.servo_cp(target)
    np.testing.assert_array_equal(applied, target)
    now[0] = 3_000
    arm.update()
    alpha = 1.0 - math.exp(-(1 / 500.0) / 0.01)
    assert arm.measured_cp().pose[0] == pytest.approx(alpha * 0.01)
    assert arm.measured_js().velocity[0] == pytest.approx(alpha * 0.01 * 500.0)
    assert arm.measured_cp().timestamp_ns == arm.measured_cf().timestamp_ns == 3_000


def test_kinematic_orientation_slerp_and_euler_joints() -> None:
    arm = KinematicArm()
    arm.connect()
    arm.enable()
    quat = Rotation.from_euler("xyz", [0.3, -0.4, 1.2]).as_quat()  # x, y, z, w
    arm.servo_cp(np.r_[0.02, -0.03, -0.05, quat])
    arm.update()
    q1 = arm.measured_cp().pose[3:]
    assert 0.0 < abs(float(q1 @ quat)) < 1.0 - 1e-6  # on its way, unit length
    assert np.linalg.norm(q1) == pytest.approx(1.0)
    for _ in range(200):
        arm.update()
    js = arm.measured_js().position
    np.testing.assert_allclose(js[:3], [0.02, -0.03, -0.05], atol=1e-9)
    np.testing.assert_allclose(js[3:6], [0.3, -0.4, 1.2], atol=1e-6)
    assert js[6] == pytest.approx(0.5)


def test_quaternion_to_rpy_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    for q in Rotation.random(50, random_state=rng).as_quat():
        expected = Rotation.from_quat(q).as_euler("xyz")
        np.testing.assert_allclose(quaternion_to_rpy(q), expected, atol=1e-9)


def test_kinematic_workspace_error_names_axis_and_limit() -> None:
    with KinematicArm() as arm:
        arm.enable()
        pose = np.array(HOME_POSE)
        pose[2] = 0.05
        with pytest.raises(ValueError, match=r"z = 0\.0500 m .*\[-0\.2000, 0\.0000\]"):
            arm.servo_cp(pose)
        arm.disable()
        with pytest.raises(NotEnabledError):
            arm.servo_cp(HOME_POSE)
        with pytest.raises(NotEnabledError):
            arm.home()


def test_kinematic_home_takes_a_few_ticks() -> None:
    with KinematicArm() as arm:
        arm.enable()
        assert not arm.is_homed
        arm.home()  # already there
        assert arm.is_homed and not arm.is_busy
        pose = np.array(HOME_POSE)
        pose[1] = 0.01
        arm.servo_cp(pose)
        for _ in range(100):
            arm.update()
        arm.home()
        ticks = 0
        while arm.is_busy:
            arm.update()
            ticks += 1
        assert 3 < ticks < 100
        assert np.linalg.norm(arm.measured_cp().pose[:3] - HOME_POSE[:3]) <= 1e-4
