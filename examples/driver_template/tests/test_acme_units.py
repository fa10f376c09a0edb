"""The ACME driver's own behaviour: unit and frame conversion at the vendor boundary, faults,
argument checks, hold, the simulated tissue's force, and the config.

The conformance kit (test_acme_conformance.py) proves the contract from outside; these tests
pin down how this driver meets it, and are the ones to update when you adapt the template.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import acme_arm
import numpy as np
import pytest
from acme_arm.config import AcmeArmConfig
from acme_arm.controller import (
    AXES,
    Command,
    ControllerError,
    FaultBit,
    Feedback,
    SimulatedController,
    VendorController,
    fault_names,
)
from acme_arm.driver import (
    JOINTS,
    MAX_STALE_CYCLES,
    SENSOR_TO_TIP_M,
    AcmeArm,
    joints_from_vendor,
    joints_to_vendor,
    rates_from_vendor,
    rates_to_vendor,
    rpy_to_quaternion,
    wrench_from_sensor,
)
from scipy.spatial.transform import Rotation

from slave_arm.driver import DriverError, NotEnabledError, OperatingState
from slave_arm.registry import load_driver_class

EXAMPLE_TOML = Path(acme_arm.__file__).with_name("acme_arm.toml")
IDENTITY = (0.0, 0.0, 0.0, 1.0)


def _pose(x: float, y: float, z: float, q: tuple[float, ...] = IDENTITY) -> np.ndarray:
    return np.array([x, y, z, *q])


def _quat(roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0) -> tuple[float, ...]:
    return tuple(Rotation.from_euler("xyz", [roll, pitch, yaw]).as_quat())


def _enabled(**options: object) -> AcmeArm:
    arm = AcmeArm(**options)
    arm.connect()
    arm.enable()
    return arm


def _ticks(arm: AcmeArm, seconds: float) -> None:
    for _ in range(math.ceil(seconds * arm.description.control_rate_hz)):
        arm.update()


class _Spy:
    """Records every command the driver sends to the controller."""

    def __init__(self, arm: AcmeArm) -> None:
        self.commands: list[Command | None] = []
        ctrl = arm._controller
        assert ctrl is not None
        real = ctrl.exchange

        def exchange(command: Command | None) -> Feedback:
            self.commands.append(command)
            return real(command)

        ctrl.exchange = exchange  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------
# Packaging
# ---------------------------------------------------------------------------------------------
def test_entry_point_names_the_driver() -> None:
    assert load_driver_class("acme") is AcmeArm
    assert AcmeArm.name == "acme"
    assert AcmeArm.__doc__ is not None and AcmeArm.__doc__.startswith("ACME gantry arm")


def test_constructible_with_no_arguments_as_the_simulated_arm() -> None:
    arm = AcmeArm()
    assert arm.config == AcmeArmConfig()
    assert arm.config.backend == "simulated" and arm.config.control_mode == "velocity"
    assert arm.moves_hardware is False
    assert AcmeArm(backend="vendor").moves_hardware is True  # constructing connects nothing


def test_options_override_the_config_file(tmp_path: Path) -> None:
    f = tmp_path / "arm.toml"
    f.write_text('control_mode = "position"\nmax_force_n = 5.0\n')
    arm = AcmeArm(config=str(f), max_force_n=4.0)
    assert arm.config.control_mode == "position"
    assert arm.description.max_force_n == 4.0
    assert AcmeArm(config=AcmeArmConfig(control_rate_hz=500)).description.control_rate_hz == 500


def test_unknown_option_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"unknown setting\(s\) 'contol_mode'.*control_mode"):
        AcmeArm(contol_mode="position")


# ---------------------------------------------------------------------------------------------
# Units and frames at the vendor boundary
# ---------------------------------------------------------------------------------------------
def test_vendor_positions_convert_to_our_joints() -> None:
    # the calibration zeros: X 60 mm, Y 60 mm, Z 10 mm, wrist and jaw 0 deg
    assert joints_from_vendor((60.0, 60.0, 10.0, 0.0, 0.0, 0.0, 0.0)) == pytest.approx([0.0] * 7)
    # X, Y, Z, C, B, A, G -> x, y, z (m; y and z reversed), roll = A, pitch = -B, yaw = -C, jaw
    q = joints_from_vendor((70.0, 70.0, 40.0, 10.0, 20.0, 30.0, 45.0))
    deg = math.pi / 180.0
    assert q == pytest.approx([0.01, -0.01, -0.03, 30 * deg, -20 * deg, -10 * deg, 45 * deg])


def test_conversions_round_trip() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        q = rng.uniform(-1.0, 1.0, 7).tolist()
        assert joints_from_vendor(joints_to_vendor(q)) == pytest.approx(q, abs=1e-12)
        assert rates_from_vendor(rates_to_vendor(q)) == pytest.approx(q, abs=1e-12)


def test_joint_table_covers_every_controller_axis_once() -> None:
    assert sorted(j.vendor_axis for j in JOINTS) == list(range(len(AXES)))
    assert [j.name for j in JOINTS] == list(AcmeArm().description.joint_names)


def test_forward_kinematics_quaternion_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        r, p, y = rng.uniform(-1.2, 1.2, 3)
        q = np.array(rpy_to_quaternion(r, p, y))
        ref = Rotation.from_euler("xyz", [r, p, y]).as_quat()
        assert min(np.abs(q - ref).max(), np.abs(q + ref).max()) < 1e-12


def test_readings_are_si_in_the_base_frame() -> None:
    arm = AcmeArm()
    arm.connect()
    home = np.array(arm.config.home_pose)
    assert arm.measured_cp().pose == pytest.approx(home)
    js = arm.measured_js()
    assert js.position == pytest.approx([0.0, 0.0, -0.03, 0.0, 0.0, 0.0, 0.5])
    assert arm.measured_jaw().angle_rad == pytest.approx(0.5)
    # the controller itself reads mm and degrees, machine coordinates, its own axis order
    raw = arm._controller.exchange(None)  # type: ignore[union-attr]
    assert raw.joint_position == pytest.approx(
        (60.0, 60.0, 40.0, 0.0, 0.0, 0.0, 0.5 / math.pi * 180)
    )


@pytest.mark.parametrize("mode", ["velocity", "position"])
def test_a_step_along_base_y_moves_the_vendor_y_axis_backwards(mode: str) -> None:
    arm = _enabled(control_mode=mode)
    y_before = arm._controller.exchange(None).joint_position[1]  # type: ignore[union-attr]
    arm.servo_cp(_pose(0.0, 0.01, -0.03))
    _ticks(arm, 0.5)
    assert arm.measured_cp().pose[:3] == pytest.approx([0.0, 0.01, -0.03], abs=1e-5)
    y_after = arm._controller.exchange(None).joint_position[1]  # type: ignore[union-attr]
    assert y_after - y_before == pytest.approx(-10.0, abs=0.01)  # mm, reversed


def test_orientation_goes_through_the_wrist() -> None:
    arm = _enabled()
    q = _quat(roll=0.3, pitch=-0.2, yaw=0.5)
    arm.servo_cp(_pose(0.0, 0.0, -0.03, q))
    _ticks(arm, 1.0)
    got = arm.measured_cp().pose[3:]
    assert abs(float(got @ np.array(q))) == pytest.approx(1.0, abs=1e-8)
    assert arm.measured_js().position[3:6] == pytest.approx([0.3, -0.2, 0.5], abs=1e-4)


def test_readings_are_stamped_when_the_feedback_arrives() -> None:
    arm = AcmeArm()
    arm.connect()
    before = time.monotonic_ns()
    arm.update()
    after = time.monotonic_ns()
    stamps = {
        arm.measured_cp().timestamp_ns,
        arm.setpoint_cp().timestamp_ns,
        arm.measured_js().timestamp_ns,
        arm.measured_cf().timestamp_ns,
        arm.measured_jaw().timestamp_ns,
    }
    assert len(stamps) == 1
    assert before <= stamps.pop() <= after


# ---------------------------------------------------------------------------------------------
# The simulated tissue: force sign and frame
# ---------------------------------------------------------------------------------------------
def _press(roll: float = 0.0, pitch: float = 0.0, depth_m: float = 0.005) -> AcmeArm:
    """The tool pressed ``depth_m`` into the tissue floor, held still there."""
    arm = _enabled()
    floor = arm.config.sim_tissue_floor_z_m
    q = _quat(roll=roll, pitch=pitch)
    arm.servo_cp(_pose(0.0, 0.0, floor + 0.01, q))  # above the tissue: turn the tool first
    _ticks(arm, 1.0)
    arm.servo_cp(_pose(0.0, 0.0, floor - depth_m, q))
    _ticks(arm, 1.0)
    return arm


def test_pressing_into_the_tissue_pushes_the_tool_up() -> None:
    arm = _press(depth_m=0.005)
    k = arm.config.sim_tissue_stiffness_n_m
    w = arm.measured_cf().wrench
    # identity orientation: tool frame = base frame; the tissue pushes the instrument up (+z)
    assert w[:3] == pytest.approx([0.0, 0.0, k * 0.005], abs=1e-3)
    assert w[3:] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)  # contact at the tip
    # the z motor holds the tool down against it: effort along +z is the force's opposite
    assert arm.measured_js().effort[2] == pytest.approx(-k * 0.005, rel=1e-3)
    # no contact above the floor
    arm.servo_cp(_pose(0.0, 0.0, arm.config.sim_tissue_floor_z_m + 0.01))
    _ticks(arm, 0.5)
    assert np.all(arm.measured_cf().wrench == 0.0)


@pytest.mark.parametrize(("roll", "pitch"), [(math.pi / 2, 0.0), (0.0, 0.6), (0.4, -0.5)])
def test_contact_force_is_in_the_tool_frame(roll: float, pitch: float) -> None:
    arm = _press(roll=roll, pitch=pitch, depth_m=0.004)
    f_base = np.array([0.0, 0.0, arm.config.sim_tissue_stiffness_n_m * 0.004])
    r = Rotation.from_quat(arm.measured_cp().pose[3:])
    w = arm.measured_cf().wrench
    assert w[:3] == pytest.approx(r.inv().apply(f_base), abs=1e-3)
    assert w[3:] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    if roll == math.pi / 2:
        assert w[:3] == pytest.approx([0.0, f_base[2], 0.0], abs=1e-3)


def test_sensor_torque_is_moved_to_the_tip() -> None:
    # a 2 N sideways push at the tip reads 2 N × 120 mm = 240 N·mm at the sensor: 0 at the tip
    lever_mm = SENSOR_TO_TIP_M * 1e3
    w = wrench_from_sensor((2.0, 0.0, 0.0, 0.0, 2.0 * lever_mm, 0.0))
    assert w == pytest.approx([2.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    # a pure torque: N·mm -> N·m, sensor y and z reversed in the tool frame
    assert wrench_from_sensor((0.0, 0.0, 0.0, 1000.0, 1000.0, 1000.0)) == pytest.approx(
        [0.0, 0.0, 0.0, 1.0, -1.0, -1.0]
    )


# ---------------------------------------------------------------------------------------------
# Bad arguments, states
# ---------------------------------------------------------------------------------------------
def test_readings_before_connect_and_after_disconnect_raise() -> None:
    arm = AcmeArm()
    for reading in (arm.measured_cp, arm.setpoint_cp, arm.measured_js, arm.measured_cf):
        with pytest.raises(DriverError, match="not connected"):
            reading()
    with pytest.raises(DriverError):
        arm.update()
    arm.connect()
    arm.disconnect()
    arm.disconnect()
    with pytest.raises(DriverError, match="not connected"):
        arm.measured_jaw()


@pytest.mark.parametrize(
    ("pose", "words"),
    [
        (_pose(math.nan, 0.0, -0.03), "not finite"),
        (np.zeros(6), "7 numbers"),
        (_pose(0.0, 0.0, 0.01), "outside the workspace z range"),
        (_pose(0.06, 0.0, -0.03), "outside the workspace x range"),
        (_pose(0.0, 0.0, -0.03, _quat(pitch=1.4)), "wrist pitch"),
        (_pose(0.0, 0.0, -0.03, _quat(yaw=3.0)), "wrist yaw"),
    ],
    ids=["nan", "shape", "z-above", "x-beyond", "pitch-limit", "yaw-limit"],
)
def test_bad_poses_are_refused_and_change_nothing(pose: np.ndarray, words: str) -> None:
    arm = _enabled()
    before = arm.setpoint_cp().pose
    with pytest.raises(ValueError, match=words):
        arm.servo_cp(pose)
    assert np.array_equal(arm.setpoint_cp().pose, before)


def test_jaw_outside_its_range_is_refused() -> None:
    arm = _enabled()
    with pytest.raises(ValueError, match="outside the jaw range"):
        arm.servo_jaw(1.5)
    assert arm.servo_jaw(0.2) == 0.2
    _ticks(arm, 0.5)
    assert arm.measured_jaw().angle_rad == pytest.approx(0.2, abs=1e-4)


def test_servo_needs_enabled() -> None:
    arm = AcmeArm()
    arm.connect()
    with pytest.raises(NotEnabledError, match="ENABLED"):
        arm.servo_cp(_pose(0.0, 0.0, -0.03))
    with pytest.raises(NotEnabledError):
        arm.servo_jaw(0.5)
    with pytest.raises(NotEnabledError):
        arm.home()


def test_disabled_arm_sends_no_motion_command() -> None:
    arm = AcmeArm()
    arm.connect()
    spy = _Spy(arm)
    _ticks(arm, 0.01)
    assert spy.commands and all(c is None for c in spy.commands)


# ---------------------------------------------------------------------------------------------
# Control modes, hold, home
# ---------------------------------------------------------------------------------------------
def test_velocity_mode_respects_the_joint_speed_limit() -> None:
    arm = _enabled()
    spy = _Spy(arm)
    arm.servo_cp(_pose(0.04, -0.04, -0.09))  # far: the P loop saturates
    _ticks(arm, 0.05)
    vmax_mm_s = arm.config.max_linear_joint_speed_m_s * 1e3
    sent = [c for c in spy.commands if c is not None]
    assert all(c.mode == "velocity" for c in sent)
    assert max(abs(v) for c in sent for v in c.values[:3]) == pytest.approx(vmax_mm_s)


def test_position_mode_streams_the_setpoint_in_vendor_units() -> None:
    arm = _enabled(control_mode="position")
    spy = _Spy(arm)
    arm.servo_cp(_pose(0.01, 0.02, -0.05, _quat(yaw=0.5)))
    arm.servo_jaw(0.25)
    arm.update()
    (cmd,) = spy.commands
    assert cmd is not None and cmd.mode == "position"
    assert cmd.values == pytest.approx(
        (70.0, 40.0, 60.0, -math.degrees(0.5), 0.0, 0.0, math.degrees(0.25))
    )


def test_hold_stops_a_moving_arm_in_velocity_mode() -> None:
    arm = _enabled()
    spy = _Spy(arm)
    arm.servo_cp(_pose(0.0, 0.0, -0.07))  # 40 mm down
    _ticks(arm, 0.04)
    assert abs(arm.measured_js().velocity[2]) > 0.05  # moving fast
    arm.hold()
    held = arm.measured_cp().pose
    assert np.array_equal(arm.setpoint_cp().pose, held)
    spy.commands.clear()
    arm.update()
    assert spy.commands[0] is not None and spy.commands[0].values == (0.0,) * 7  # at once
    _ticks(arm, 0.2)
    assert arm.operating_state == OperatingState.ENABLED
    assert np.linalg.norm(arm.measured_cp().pose[:3] - held[:3]) < 1e-4
    assert np.abs(arm.measured_js().velocity).max() < 1e-3


def test_home_is_busy_until_there() -> None:
    arm = _enabled()
    arm.servo_cp(_pose(0.02, 0.0, -0.05))
    arm.servo_jaw(0.9)
    _ticks(arm, 0.5)
    arm.home()
    assert arm.is_busy and not arm.is_homed
    ticks = 0
    while arm.is_busy:
        arm.update()
        ticks += 1
        assert ticks < 5000
    assert arm.is_homed
    assert arm.measured_cp().pose == pytest.approx(np.array(arm.config.home_pose), abs=1e-4)
    assert arm.measured_jaw().angle_rad == pytest.approx(arm.config.home_jaw_rad, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------
def test_estop_puts_the_arm_in_fault_until_disable_then_enable() -> None:
    arm = _enabled()
    sim = arm._controller
    assert isinstance(sim, SimulatedController)
    sim.press_estop()
    arm.update()
    assert arm.operating_state == OperatingState.FAULT
    assert "ESTOP" in arm.fault_reason
    with pytest.raises(NotEnabledError, match="FAULT"):
        arm.servo_cp(_pose(0.0, 0.0, -0.03))
    with pytest.raises(DriverError, match="disable"):
        arm.enable()
    arm.hold()  # allowed in any state
    arm.disable()  # acknowledges, but the e-stop is still pressed: the fault comes back
    arm.update()
    assert arm.operating_state == OperatingState.FAULT
    sim.release_estop()
    arm.disable()
    arm.update()
    assert arm.operating_state == OperatingState.DISABLED
    arm.enable()
    assert arm.operating_state == OperatingState.ENABLED
    arm.servo_cp(_pose(0.005, 0.0, -0.03))
    _ticks(arm, 0.5)
    assert arm.measured_cp().pose[0] == pytest.approx(0.005, abs=1e-5)


@pytest.mark.parametrize("bit", [FaultBit.OVERCURRENT, FaultBit.FOLLOWING_ERROR])
def test_any_fault_bit_means_fault(bit: FaultBit) -> None:
    arm = _enabled(control_mode="position")
    arm._controller.inject_fault(bit)  # type: ignore[union-attr]
    arm.update()
    assert arm.operating_state == OperatingState.FAULT
    assert bit.name is not None and bit.name in arm.fault_reason
    arm.disable()
    arm.enable()
    assert arm.operating_state == OperatingState.ENABLED


def test_fault_names() -> None:
    assert fault_names(0) == "none"
    assert fault_names(FaultBit.ESTOP | FaultBit.JOINT_LIMIT) == "ESTOP|JOINT_LIMIT"
    assert fault_names(0x100) == "0x100"


def _plant() -> SimulatedController:
    sim = SimulatedController(
        period_us=1000,
        lower=[0.0] * 7,
        upper=[100.0] * 7,
        max_velocity=[100.0] * 7,
        start=[50.0] * 7,
    )
    sim.open()
    return sim


def test_plant_faults_at_a_joint_limit_and_stops() -> None:
    sim = _plant()
    sim.power(True)
    while not sim.exchange(None).powered:
        pass
    fb = sim.exchange(None)
    for _ in range(2000):  # 100 mm/s toward the X limit 50 mm away
        fb = sim.exchange(Command("velocity", (100.0,) + (0.0,) * 6))
        if fb.fault_bits:
            break
    assert fb.fault_bits == FaultBit.JOINT_LIMIT
    assert fb.joint_position[0] == pytest.approx(100.0)
    assert not fb.powered and fb.joint_velocity == (0.0,) * 7
    with pytest.raises(ControllerError, match="JOINT_LIMIT"):
        sim.power(True)
    sim.clear_faults()
    sim.power(True)  # accepted once acknowledged


def test_plant_faults_on_a_command_while_powered_off() -> None:
    sim = _plant()
    fb = sim.exchange(Command("position", (50.0,) * 7))
    assert fb.fault_bits == FaultBit.NOT_POWERED


def test_plant_is_cycle_synchronous() -> None:
    sim = _plant()
    times = [sim.exchange(None).controller_time_us for _ in range(3)]
    assert times == [1000, 2000, 3000]


def test_a_repeated_feedback_changes_nothing_and_a_stuck_clock_is_a_fault() -> None:
    arm = _enabled()
    ctrl = arm._controller
    assert ctrl is not None
    last = ctrl.exchange(None)  # the feedback the driver will now see again and again
    ctrl.exchange = lambda command: last  # type: ignore[method-assign]
    arm.update()  # new to the driver: the controller's time advanced
    stamp, pose = arm.measured_cp().timestamp_ns, arm.measured_cp().pose
    for _ in range(MAX_STALE_CYCLES):  # the same feedback: nothing new to report
        arm.update()
        assert arm.measured_cp().timestamp_ns == stamp
        assert np.array_equal(arm.measured_cp().pose, pose)
    assert arm.stale_cycles == MAX_STALE_CYCLES
    assert arm.operating_state == OperatingState.ENABLED
    with pytest.raises(DriverError, match="stopped cycling"):
        arm.update()
    assert arm.operating_state == OperatingState.FAULT


def test_skipped_bus_cycles_are_counted() -> None:
    arm = AcmeArm()
    arm.connect()
    ctrl = arm._controller
    assert ctrl is not None
    ctrl.exchange(None)
    ctrl.exchange(None)  # two cycles the driver never saw
    arm.update()
    assert arm.missed_cycles == 2


# ---------------------------------------------------------------------------------------------
# The vendor skeleton
# ---------------------------------------------------------------------------------------------
def test_vendor_controller_names_the_calls_to_fill_in() -> None:
    ctrl = VendorController("10.0.0.2", 30200, 1000, 1.0)
    ctrl.close()  # never opened: nothing to do
    for call, words in (
        (ctrl.open, "connect"),
        (lambda: ctrl.power(True), "power"),
        (ctrl.clear_faults, "fault reset"),
        (lambda: ctrl.exchange(None), "cyclic write"),
    ):
        with pytest.raises(NotImplementedError, match=words):
            call()


def test_vendor_backend_connect_says_what_to_implement() -> None:
    arm = AcmeArm(backend="vendor")
    with pytest.raises(NotImplementedError, match=r"acme_arm/controller\.py"):
        arm.connect()
    arm.disconnect()  # still idempotent


# ---------------------------------------------------------------------------------------------
# The config
# ---------------------------------------------------------------------------------------------
def test_example_toml_holds_the_defaults() -> None:
    assert AcmeArmConfig.from_toml(EXAMPLE_TOML) == AcmeArmConfig()


def test_toml_driver_table_and_lists(tmp_path: Path) -> None:
    f = tmp_path / "arm.toml"
    f.write_text('[driver]\nbackend = "vendor"\nworkspace_min_m = [-0.04, -0.04, -0.09]\n')
    cfg = AcmeArmConfig.from_toml(f)
    assert cfg.backend == "vendor"
    assert cfg.workspace_min_m == (-0.04, -0.04, -0.09)


def test_toml_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    f = tmp_path / "arm.toml"
    f.write_text("max_force = 5.0\n")
    with pytest.raises(
        ValueError, match=r"arm\.toml: unknown setting\(s\) 'max_force'.*max_force_n"
    ):
        AcmeArmConfig.from_toml(f)


def test_toml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        AcmeArmConfig.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("backend = \n")
    with pytest.raises(ValueError, match=r"bad\.toml is not valid TOML"):
        AcmeArmConfig.from_toml(bad)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"control_mode": "torque"}, r"control_mode = 'torque': use \"velocity\" or \"position\""),
        ({"backend": "real"}, "backend"),
        ({"controller_port": 70000}, "controller_port"),
        ({"control_rate_hz": 0}, "control_rate_hz = 0: give a number above 0"),
        ({"max_force_n": math.inf}, "max_force_n = inf: give a finite number"),
        ({"max_force_n": "8"}, "max_force_n = '8': give a number"),
        ({"workspace_min_m": (0.0, 0.0)}, "workspace_min_m .*list of 3 numbers"),
        ({"workspace_min_m": (0.06, -0.05, -0.1)}, "x: the minimum 0.06 must be below"),
        ({"workspace_max_m": (0.07, 0.05, 0.0)}, "workspace_max_m .*within the travel"),
        ({"wrist_max_rad": (2.6, 1.6, 2.6)}, "wrist_max_rad .*pitch"),
        ({"jaw_range_rad": (1.0, 0.0)}, "jaw_range_rad"),
        ({"home_jaw_rad": 2.0}, "home_jaw_rad .*jaw_range_rad"),
        ({"home_pose": (0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 1.0)}, "home_pose .*z = 0.05 m"),
        ({"home_pose": (0.0, 0.0, -0.03, 0.0, 0.0, 0.0, 2.0)}, "home_pose .*norm 2"),
        ({"position_gain_per_s": 500.0}, "position_gain_per_s .*at most 0.2"),
    ],
)
def test_config_errors_name_the_field_and_the_fix(fields: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        AcmeArmConfig(**fields)
