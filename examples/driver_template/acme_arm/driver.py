"""The ACME arm's driver: :class:`AcmeArm` (``slave-arm --driver acme``).

The driver is the translator between two worlds:

* **ours** (the :class:`~slave_arm.driver.ArmDriver` contract, CRTK names): SI units (m, rad,
  N, N·m, s), the base frame (z up), poses as x, y, z + quaternion (qx, qy, qz, qw) of the tool
  tip, wrenches on the instrument in the tool frame about the tip, readings stamped with
  ``time.monotonic_ns()``;
* **the vendor's** (:mod:`acme_arm.controller`): mm and degrees, the controller's axis order
  and machine frame (Y and Z reversed, Z counting depth), a force sensor in its own frame about
  its own origin, controller time in µs.

All conversion happens here, in one place: the joint table :data:`JOINTS`, the sensor constants
:data:`SENSOR_TO_TOOL` and :data:`SENSOR_TO_TIP_M`, and the pure functions below them. Look for
``# INTEGRATOR:`` for the spots to change for another arm.

The arm: a Cartesian gantry (x, y, z prismatic) carrying a wrist (roll, pitch, yaw, whose axes
meet at the tool tip) and a gripper jaw. So the kinematics are trivial on purpose: the tip
position *is* (x, y, z) and the tool orientation is ``R = Rz(yaw) · Ry(pitch) · Rx(roll)``. A real
arm replaces :func:`forward_kinematics` and :func:`inverse_kinematics` with its own.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from acme_arm.config import AcmeArmConfig, load_config
from acme_arm.controller import (
    AXES,
    N_AXES,
    Command,
    Controller,
    ControllerError,
    Feedback,
    SimulatedController,
    VendorController,
    fault_names,
)
from slave_arm.driver import (
    ArmDescription,
    ArmDriver,
    CameraDescription,
    CartesianReading,
    DriverError,
    JawReading,
    JointReading,
    NotEnabledError,
    OperatingState,
    WrenchReading,
    check_jaw_arg,
    check_pose_arg,
)
from slave_arm.kinematic import quaternion_angle_rad, quaternion_to_rpy

logger = logging.getLogger(__name__)

_MM = 1e-3
"""Metres per millimetre."""
_DEG = math.pi / 180.0
"""Radians per degree."""


# ---------------------------------------------------------------------------------------------
# The vendor boundary: how the controller's axes map onto our joints
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JointMap:
    """One of our joints and the controller axis that drives it.

    ``ours = sign × (vendor − vendor_zero) × unit``, with unit = 0.001 m/mm (prismatic) or
    π/180 rad/deg (revolute); velocities the same without the zero; effort (N or N·m) =
    ``sign × effort_per_amp × motor current (A)``.
    """

    name: str
    """Our joint name (``description.joint_names``)."""
    vendor_axis: int
    """Its index in the controller's vectors (:data:`acme_arm.controller.AXES`)."""
    sign: float
    """+1 when our positive direction is the vendor's, -1 when it is reversed."""
    vendor_zero: float
    """The vendor's reading (mm or deg) where our joint reads 0 (calibration)."""
    prismatic: bool
    """mm <-> m (True) or deg <-> rad (False)."""
    effort_per_amp: float
    """The motor constant: N/A (prismatic) or N·m/A (revolute), from the motor's data sheet."""


# INTEGRATOR: your arm's joint table, in OUR joint order (the order of measured_js and of
# description.joint_names). Take the axis indices and directions from the controller's manual,
# the zeros from the arm's calibration sheet, the motor constants from the drives' data sheets.
# Here: the vendor's machine frame has X as our x, Y and Z reversed (Z counts depth, positive
# down), linear positions from each axis's reference mark (x = 0 at X = 60 mm, y = 0 at
# Y = 60 mm, z = 0 at Z = 10 mm); the wrist is C, B, A (rotations about the machine Z, Y, X),
# so in our frame yaw = -C, pitch = -B, roll = A.
# fmt: off
JOINTS: tuple[JointMap, ...] = (
    #        name     vendor_axis  sign  vendor_zero  prismatic  effort_per_amp
    JointMap("x",     0,           +1.0, 60.0,        True,      25.0),  # X
    JointMap("y",     1,           -1.0, 60.0,        True,      25.0),  # Y, reversed
    JointMap("z",     2,           -1.0, 10.0,        True,      20.0),  # Z (depth), reversed
    JointMap("roll",  5,           +1.0, 0.0,         False,     0.04),  # A
    JointMap("pitch", 4,           -1.0, 0.0,         False,     0.04),  # B, reversed
    JointMap("yaw",   3,           -1.0, 0.0,         False,     0.04),  # C, reversed
    JointMap("jaw",   6,           +1.0, 0.0,         False,     0.02),  # G
)
# fmt: on
N_JOINTS = len(JOINTS)
JAW = N_JOINTS - 1
"""The jaw's index in our joint vectors."""

# INTEGRATOR: how the force sensor is mounted. SENSOR_TO_TOOL rotates a vector from the sensor
# frame into the tool frame (rows: the tool's x, y, z axes in sensor coordinates). The ACME
# sensor's axes are the machine frame's turned with the wrist, so its y and z are reversed
# from our tool frame's. SENSOR_TO_TIP_M: how far the tool tip is along the sensor's +z axis;
# torques are moved from the sensor's origin to the tip. If your sensor reads the force the
# instrument applies (not the force on it), negate the force here.
SENSOR_TO_TOOL: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),
    (0.0, -1.0, 0.0),
    (0.0, 0.0, -1.0),
)
SENSOR_TO_TIP_M = 0.12
"""The instrument: the tool tip is 120 mm from the sensor's origin, along the sensor's +z."""

MAX_STALE_CYCLES = 5
"""update() calls in a row without new feedback (the controller's clock stuck) before the
driver declares FAULT: the controller has stopped cycling."""

SIM_HARD_LIMIT_MARGIN = (0.002, 0.002, 0.002, 2 * _DEG, 2 * _DEG, 2 * _DEG, 2 * _DEG)
"""The simulated controller's hard limits lie this far (m, rad) beyond the config's limits."""

_AXIS = tuple(j.vendor_axis for j in JOINTS)
_PER_VENDOR_UNIT = tuple(j.sign * (_MM if j.prismatic else _DEG) for j in JOINTS)
_VENDOR_ZERO = tuple(j.vendor_zero for j in JOINTS)
_EFFORT_PER_AMP = tuple(j.sign * j.effort_per_amp for j in JOINTS)
if sorted(_AXIS) != list(range(N_AXES)):
    raise ImportError(
        f"acme_arm.driver.JOINTS must use each controller axis {AXES} exactly once, "
        f"got vendor_axis {_AXIS}"
    )


def joints_from_vendor(position: tuple[float, ...]) -> list[float]:
    """Controller positions (mm, deg; vendor order) -> our joints (m, rad; our order)."""
    return [
        (position[a] - z) * u for a, z, u in zip(_AXIS, _VENDOR_ZERO, _PER_VENDOR_UNIT, strict=True)
    ]


def joints_to_vendor(q: list[float] | tuple[float, ...]) -> tuple[float, ...]:
    """Our joints (m, rad; our order) -> controller positions (mm, deg; vendor order)."""
    out = [0.0] * N_AXES
    for i, a in enumerate(_AXIS):
        out[a] = _VENDOR_ZERO[i] + q[i] / _PER_VENDOR_UNIT[i]
    return tuple(out)


def rates_from_vendor(velocity: tuple[float, ...]) -> list[float]:
    """Controller velocities (mm/s, deg/s) -> our joint velocities (m/s, rad/s)."""
    return [velocity[a] * u for a, u in zip(_AXIS, _PER_VENDOR_UNIT, strict=True)]


def rates_to_vendor(qd: list[float] | tuple[float, ...]) -> tuple[float, ...]:
    """Our joint velocities (m/s, rad/s) -> controller velocities (mm/s, deg/s)."""
    out = [0.0] * N_AXES
    for i, a in enumerate(_AXIS):
        out[a] = qd[i] / _PER_VENDOR_UNIT[i]
    return tuple(out)


def efforts_from_vendor(current_a: tuple[float, ...]) -> list[float]:
    """Motor currents (A, vendor order) -> our joint efforts (N, N·m; our order)."""
    return [current_a[a] * k for a, k in zip(_AXIS, _EFFORT_PER_AMP, strict=True)]


def wrench_from_sensor(ft: tuple[float, ...]) -> list[float]:
    """The sensor's reading (N, N·mm; sensor frame, about its origin) -> our wrench on the
    instrument (N, N·m; tool frame, about the tool tip)."""
    fx, fy, fz, tx, ty, tz = ft
    # move the torque's reference point to the tip: tau_tip = tau - r x f, r = (0, 0, L) mm
    lever_mm = SENSOR_TO_TIP_M / _MM
    tx, ty = tx + lever_mm * fy, ty - lever_mm * fx
    # INTEGRATOR: subtract the sensor's bias (tare it at enable()) and the instrument's weight
    # (gravity compensation) here if your sensor needs it.
    (a, b, c), (d, e, f), (g, h, i) = SENSOR_TO_TOOL
    return [
        a * fx + b * fy + c * fz,
        d * fx + e * fy + f * fz,
        g * fx + h * fy + i * fz,
        (a * tx + b * ty + c * tz) * _MM,
        (d * tx + e * ty + f * tz) * _MM,
        (g * tx + h * ty + i * tz) * _MM,
    ]


def rpy_to_quaternion(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    """The unit quaternion (x, y, z, w) of ``R = Rz(yaw) · Ry(pitch) · Rx(roll)`` (rad)."""
    cr, sr = math.cos(0.5 * roll), math.sin(0.5 * roll)
    cp, sp = math.cos(0.5 * pitch), math.sin(0.5 * pitch)
    cy, sy = math.cos(0.5 * yaw), math.sin(0.5 * yaw)
    return (
        cy * cp * sr - sy * sp * cr,
        cy * sp * cr + sy * cp * sr,
        sy * cp * cr - cy * sp * sr,
        cy * cp * cr + sy * sp * sr,
    )


# INTEGRATOR: your arm's kinematics. Ours is a gantry with a wrist whose axes meet at the tip.
def forward_kinematics(q: list[float]) -> list[float]:
    """Our joints (x, y, z m; roll, pitch, yaw rad; jaw) -> the tool pose (x, y, z, qx..qw)."""
    return [q[0], q[1], q[2], *rpy_to_quaternion(q[3], q[4], q[5])]


def inverse_kinematics(pose: np.ndarray) -> list[float]:
    """A checked pose (x, y, z m; unit quaternion) -> our joints x, y, z, roll, pitch, yaw."""
    return [float(pose[0]), float(pose[1]), float(pose[2]), *quaternion_to_rpy(pose[3:])]


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------
_NOT_CONNECTED = "the ACME arm is not connected: call connect() first"


class AcmeArm(ArmDriver):
    """ACME gantry arm with a 3-axis wrist and jaw (simulated, or the real one via its SDK).

    One :meth:`update` is one bus cycle with the controller: send this cycle's command, receive
    its feedback, convert it to our units and frames, stamp it with ``time.monotonic_ns()``.

    * ``control_mode="velocity"`` (default): a joint-space P loop here,
      ``v = position_gain_per_s × (setpoint − measured)`` per joint, limited to the joint speed
      limits, streamed as joint velocities. :meth:`hold` makes the setpoint the measured
      joints, so the very next cycle commands exactly zero velocity.
    * ``control_mode="position"``: the joint setpoint goes straight to the controller, which
      interpolates with its own limits.

    Faults reported by the controller (fault bits, or the drives losing power) put the arm in
    FAULT; :meth:`disable` acknowledges them, then :meth:`enable` powers up again.

    Args:
        config: an :class:`~acme_arm.config.AcmeArmConfig`, the path of a TOML file of its
            fields, or None for the defaults (the simulated arm in velocity mode).
        **options: fields of :class:`~acme_arm.config.AcmeArmConfig` that override the config,
            e.g. ``control_mode="position"``, ``backend="vendor"``. An unknown name is a
            ``ValueError`` listing the valid ones.
    """

    name: ClassVar[str] = "acme"

    def __init__(self, config: AcmeArmConfig | str | Path | None = None, **options: Any) -> None:
        cfg = load_config(config)
        if options:
            cfg = cfg.with_options(options, source=f"{type(self).__name__}(...)")
        self.config = cfg
        # slave-arm check-driver asks the operator before moving an arm that moves hardware
        self.moves_hardware = cfg.backend != "simulated"
        self._rate_hz = cfg.control_rate_hz
        self._period_us = max(1, round(1e6 / cfg.control_rate_hz))
        self._description = self._describe()
        self._home_q = [
            *inverse_kinematics(np.asarray(cfg.home_pose, dtype=np.float64)),
            cfg.home_jaw_rad,
        ]
        self._home_pose = np.asarray(forward_kinematics(self._home_q), dtype=np.float64)
        self._velocity_mode = cfg.control_mode == "velocity"
        self._speed_limit = [
            cfg.max_linear_joint_speed_m_s if j.prismatic else cfg.max_rotary_joint_speed_rad_s
            for j in JOINTS
        ]
        self._controller: Controller | None = None
        self._state = OperatingState.DISABLED
        self._fault_reason = ""
        self._homing = False
        self._homed = False
        self.missed_cycles = 0
        """Bus cycles the controller's clock says were skipped between two update() calls."""
        self.stale_cycles = 0
        """update() calls that found no new feedback (the controller's clock had not moved)."""
        self._stale_run = 0
        self._last_time_us: int | None = None
        self._stamp_ns = 0
        # the latest feedback, in our units and order
        self._q = list(self._home_q)
        self._pose = self._home_pose.copy()
        self._js_position = np.zeros(N_JOINTS)
        self._js_velocity = np.zeros(N_JOINTS)
        self._js_effort = np.zeros(N_JOINTS)
        self._wrench = np.zeros(6)
        # the setpoint: the pose, our joints (incl. the jaw), the same in vendor units
        self._sp_pose = self._home_pose.copy()
        self._sp_q = list(self._home_q)
        self._sp_vendor = joints_to_vendor(self._sp_q)

    # -- what the arm is ---------------------------------------------------------------------
    def _describe(self) -> ArmDescription:
        c = self.config
        return ArmDescription(
            name=self.name,
            dof=N_JOINTS,
            joint_names=tuple(j.name for j in JOINTS),
            joint_types=tuple("prismatic" if j.prismatic else "revolute" for j in JOINTS),
            joint_lower=(*c.travel_min_m, *c.wrist_min_rad, c.jaw_range_rad[0]),
            joint_upper=(*c.travel_max_m, *c.wrist_max_rad, c.jaw_range_rad[1]),
            workspace_min_m=c.workspace_min_m,
            workspace_max_m=c.workspace_max_m,
            max_tool_speed_m_s=c.max_tool_speed_m_s,
            max_angular_speed_rad_s=c.max_angular_speed_rad_s,
            jaw_range_rad=c.jaw_range_rad,
            max_force_n=c.max_force_n,
            control_rate_hz=c.control_rate_hz,
            # INTEGRATOR: an endoscope on the arm? Describe it here and add a latest_frame()
            # method (see sim.arm.SimArm); rate 0 means no camera.
            camera=CameraDescription(rate_hz=0.0),
        )

    @property
    def description(self) -> ArmDescription:
        """Joints x, y, z (m), roll, pitch, yaw, jaw (rad), the limits and the control rate."""
        return self._description

    @property
    def operating_state(self) -> OperatingState:
        return self._state

    @property
    def fault_reason(self) -> str:
        """Why the arm is in FAULT (the controller's fault bits by name); "" otherwise."""
        return self._fault_reason

    @property
    def is_homed(self) -> bool:
        """True once a :meth:`home` has reached the home pose (until disconnect)."""
        return self._homed

    @property
    def is_busy(self) -> bool:
        """True from :meth:`home` until the arm is at home."""
        return self._homing

    # -- lifetime --------------------------------------------------------------------------
    def _make_controller(self) -> Controller:
        c = self.config
        if c.backend == "vendor":
            return VendorController(
                c.controller_host, c.controller_port, self._period_us, c.controller_timeout_s
            )
        # the simulated ACME arm, its limits and tissue converted into the vendor's units
        lower = [*c.travel_min_m, *c.wrist_min_rad, c.jaw_range_rad[0]]
        upper = [*c.travel_max_m, *c.wrist_max_rad, c.jaw_range_rad[1]]
        a = joints_to_vendor([v - m for v, m in zip(lower, SIM_HARD_LIMIT_MARGIN, strict=True)])
        b = joints_to_vendor([v + m for v, m in zip(upper, SIM_HARD_LIMIT_MARGIN, strict=True)])
        floor = list(self._home_q)
        floor[2] = c.sim_tissue_floor_z_m
        return SimulatedController(
            period_us=self._period_us,
            lower=[min(u, v) for u, v in zip(a, b, strict=True)],
            upper=[max(u, v) for u, v in zip(a, b, strict=True)],
            max_velocity=[abs(v) for v in rates_to_vendor(self._speed_limit)],
            start=joints_to_vendor(self._home_q),
            floor_depth_mm=joints_to_vendor(floor)[2],
            stiffness_n_per_mm=c.sim_tissue_stiffness_n_m * _MM,
            sensor_to_tip_mm=SENSOR_TO_TIP_M / _MM,
        )

    def connect(self) -> None:
        """Open the controller, drives off; read the first feedback. The arm is DISABLED (or
        FAULT if the controller reports a fault, e.g. the e-stop pressed). A second call while
        connected does nothing."""
        if self._controller is not None:
            return
        ctrl = self._make_controller()
        try:
            ctrl.open()
            # INTEGRATOR: a controller left powered by an earlier session starts DISABLED here.
            ctrl.power(False)
            first = ctrl.exchange(None)
        except ControllerError as exc:
            self._close_quietly(ctrl)
            raise DriverError(f"cannot open the ACME controller: {exc}") from exc
        except BaseException:
            self._close_quietly(ctrl)
            raise
        self._controller = ctrl
        self._state = OperatingState.DISABLED
        self._fault_reason = ""
        self._homing = self._homed = False
        self._last_time_us = None
        self.missed_cycles = self.stale_cycles = self._stale_run = 0
        self._take_feedback(first, time.monotonic_ns())  # also: setpoint := measured
        logger.info(
            "ACME arm connected (%s backend, %s mode, %.0f Hz)",
            self.config.backend,
            self.config.control_mode,
            self._rate_hz,
        )

    def disconnect(self) -> None:
        """Drives off (brakes on) and close the controller. Idempotent; readings then raise."""
        ctrl, self._controller = self._controller, None
        self._state = OperatingState.DISABLED
        self._homing = False
        if ctrl is None:
            return
        try:
            ctrl.close()
        except ControllerError as exc:
            raise DriverError(f"closing the ACME controller failed: {exc}") from exc
        logger.info("ACME arm disconnected")

    @staticmethod
    def _close_quietly(ctrl: Controller) -> None:
        try:
            ctrl.close()
        except Exception as exc:  # already failing: keep the first error
            logger.warning("closing the ACME controller after a failed connect: %s", exc)

    # -- state commands ----------------------------------------------------------------------
    def enable(self) -> None:
        """Power the drives and wait (bus cycles, at most ``controller_timeout_s``) until the
        brakes are released: DISABLED -> ENABLED, holding the current pose. FAULT needs
        :meth:`disable` first."""
        ctrl = self._require_connected()
        if self._state is OperatingState.FAULT:
            raise DriverError(
                f"the ACME arm is in FAULT ({self._fault_reason}): call disable() to acknowledge "
                "the fault, then enable()"
            )
        if self._state is OperatingState.ENABLED:
            return
        try:
            ctrl.power(True)
        except ControllerError as exc:
            raise DriverError(f"the ACME controller refused power-on: {exc}") from exc
        for _ in range(max(1, math.ceil(self.config.controller_timeout_s * self._rate_hz))):
            fb = self._exchange(None)
            if self._state is OperatingState.FAULT:
                raise DriverError(f"the ACME arm faulted while powering up: {self._fault_reason}")
            if fb.powered:
                break
        else:
            ctrl.power(False)
            raise DriverError(
                f"the ACME drives did not power up within {self.config.controller_timeout_s:g} s"
            )
        self._hold_here()  # enabling never makes the arm move
        self._state = OperatingState.ENABLED
        logger.info("ACME arm enabled")

    def disable(self) -> None:
        """Drives off, brakes on, faults acknowledged: any state -> DISABLED. (A fault whose
        cause persists, such as a pressed e-stop, comes back on the next update().)"""
        ctrl = self._require_connected()
        try:
            ctrl.power(False)
            if self._state is OperatingState.FAULT:
                ctrl.clear_faults()
        except ControllerError as exc:
            raise DriverError(f"the ACME controller refused to power off: {exc}") from exc
        self._state = OperatingState.DISABLED
        self._fault_reason = ""
        self._hold_here()

    def home(self) -> None:
        """Move to ``home_pose`` and ``home_jaw_rad`` (needs ENABLED): ``is_busy`` until there
        (over later update() calls), then ``is_homed``."""
        self._require_connected()
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(f"home() needs the ACME arm ENABLED, it is {self._state}")
        # INTEGRATOR: an arm with incremental encoders starts its reference run here instead,
        # and is_homed stays False until the controller reports it referenced.
        self._set_setpoint(self._home_pose.copy(), list(self._home_q))
        self._homing = True
        self._check_arrived()

    def hold(self) -> None:
        """Stay here: the setpoint (pose, joints, jaw) becomes the measured one; cancels
        homing; the state is unchanged. In velocity mode the next bus cycle (the same tick in
        the arm server, which calls update() after hold()) commands exactly zero velocity."""
        self._require_connected()
        self._hold_here()

    # -- the control tick ----------------------------------------------------------------------
    def update(self) -> None:
        """One bus cycle: send the command (none unless ENABLED), read the feedback."""
        self._require_connected()
        if self._state is not OperatingState.ENABLED:
            self._exchange(None)
        elif self._velocity_mode:
            self._exchange(Command("velocity", rates_to_vendor(self._velocity_command())))
        else:
            self._exchange(Command("position", self._sp_vendor))

    def _velocity_command(self) -> list[float]:
        """The joint-space P loop: our joint velocities (m/s, rad/s), within the limits."""
        k = self.config.position_gain_per_s
        out = []
        for sp, q, lim in zip(self._sp_q, self._q, self._speed_limit, strict=True):
            # INTEGRATOR: feed-forward goes here: v = v_ff + k * (sp - q), with v_ff the
            # setpoint's own velocity (e.g. from the last two servo_cp targets and their
            # times). Zero it in hold() and when servo_cp targets stop arriving, or the arm
            # drifts past the last target. After hold() sp == q, so v is exactly 0.
            v = k * (sp - q)
            out.append(lim if v > lim else -lim if v < -lim else v)
        return out

    def _exchange(self, command: Command | None) -> Feedback:
        ctrl = self._require_connected()
        try:
            fb = ctrl.exchange(command)
        except ControllerError as exc:
            self._enter_fault(f"lost the controller: {exc}")
            raise DriverError(f"the ACME controller bus cycle failed: {exc}") from exc
        self._take_feedback(fb, time.monotonic_ns())  # stamped when the feedback arrived
        return fb

    def _take_feedback(self, fb: Feedback, stamp_ns: int) -> None:
        """Convert one feedback into our units and frames, and follow the controller's state."""
        t = fb.controller_time_us
        if self._last_time_us is not None:
            step = t - self._last_time_us
            if step < 0:
                self._enter_fault(
                    f"the controller's clock went back ({self._last_time_us} -> {t} µs)"
                )
                raise DriverError(f"the ACME controller restarted: {self._fault_reason}")
            if step == 0:  # no new feedback since the last tick: keep the readings and stamps
                self.stale_cycles += 1
                self._stale_run += 1
                if self._stale_run > MAX_STALE_CYCLES:
                    self._enter_fault(
                        f"no new feedback for {self._stale_run} cycles (controller time stuck at "
                        f"{t} µs): the controller stopped cycling"
                    )
                    raise DriverError(f"the ACME controller: {self._fault_reason}")
                return
            if step > 1.5 * self._period_us:
                self.missed_cycles += round(step / self._period_us) - 1
        self._stale_run = 0
        self._last_time_us = t
        q = joints_from_vendor(fb.joint_position)
        self._q = q
        self._pose = np.array(forward_kinematics(q))
        self._js_position = np.array(q)
        self._js_velocity = np.array(rates_from_vendor(fb.joint_velocity))
        self._js_effort = np.array(efforts_from_vendor(fb.motor_current_a))
        self._wrench = np.array(wrench_from_sensor(fb.ft_sensor))
        self._stamp_ns = stamp_ns
        if fb.fault_bits:
            if self._state is not OperatingState.FAULT:
                self._enter_fault(f"controller fault {fault_names(fb.fault_bits)}")
        elif self._state is OperatingState.ENABLED and not fb.powered:
            self._enter_fault("the drives lost power (no fault bit set)")
        if self._state is not OperatingState.ENABLED:
            self._hold_here()  # a disabled arm's setpoint is where it is: enable() never jumps
        elif self._homing:
            self._check_arrived()

    # -- readings (CRTK queries) -----------------------------------------------------------------
    def measured_cp(self) -> CartesianReading:
        """The tool tip's pose (x, y, z m; qx, qy, qz, qw) in the base frame."""
        self._require_connected()
        return CartesianReading(self._pose.copy(), self._stamp_ns)

    def setpoint_cp(self) -> CartesianReading:
        """The pose the arm is tracking (x, y, z m; qx, qy, qz, qw); the last update's time."""
        self._require_connected()
        return CartesianReading(self._sp_pose.copy(), self._stamp_ns)

    def measured_js(self) -> JointReading:
        """Joints x, y, z (m), roll, pitch, yaw, jaw (rad); velocities (m/s, rad/s); efforts
        from the motor currents (N, N·m)."""
        self._require_connected()
        return JointReading(
            self._js_position.copy(),
            self._js_velocity.copy(),
            self._js_effort.copy(),
            self._stamp_ns,
        )

    def measured_cf(self) -> WrenchReading:
        """The wrench on the instrument: fx, fy, fz (N), tx, ty, tz (N·m), tool frame, about the
        tool tip."""
        self._require_connected()
        return WrenchReading(self._wrench.copy(), self._stamp_ns)

    def measured_jaw(self) -> JawReading:
        """The jaw opening (rad). Grip force: 0 N, the ACME gripper has no force sensing."""
        self._require_connected()
        # INTEGRATOR: if your gripper measures grip force (or you estimate it from the jaw
        # motor's current), report it here, in N, >= 0.
        return JawReading(self._q[JAW], 0.0, self._stamp_ns)

    # -- motion commands -------------------------------------------------------------------------
    def servo_cp(self, pose: Any) -> np.ndarray:
        """Track this tool pose from now on (needs ENABLED); returns a copy of the new setpoint.

        Raises ValueError (and changes nothing) for a malformed pose, a position outside the
        workspace box or an orientation outside the wrist's limits: the driver refuses, the
        safety supervisor clamps. NotEnabledError unless ENABLED.
        """
        self._require_connected()
        p = check_pose_arg(pose)
        c = self.config
        for i, axis in enumerate("xyz"):
            lo, hi = c.workspace_min_m[i], c.workspace_max_m[i]
            if not lo - 1e-9 <= p[i] <= hi + 1e-9:
                raise ValueError(
                    f"pose {axis} = {p[i]:.4f} m is outside the workspace {axis} range "
                    f"[{lo:.4f}, {hi:.4f}] m"
                )
        q = inverse_kinematics(p)
        for i in range(3, 6):
            lo, hi = c.wrist_min_rad[i - 3], c.wrist_max_rad[i - 3]
            if not lo <= q[i] <= hi:
                raise ValueError(
                    f"pose orientation needs wrist {JOINTS[i].name} = {q[i]:.4f} rad, outside "
                    f"its limits [{lo:.4f}, {hi:.4f}] rad"
                )
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(self._not_enabled("servo_cp"))
        self._set_setpoint(p, [*q, self._sp_q[JAW]])
        self._homing = False
        return p.copy()

    def servo_jaw(self, angle_rad: float) -> float:
        """Track this jaw angle (rad, within ``jaw_range_rad``; needs ENABLED); returns it."""
        self._require_connected()
        v = check_jaw_arg(angle_rad, self.config.jaw_range_rad)
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(self._not_enabled("servo_jaw"))
        q = list(self._sp_q)
        q[JAW] = v
        self._set_setpoint(self._sp_pose, q)
        return v

    # -- internals -------------------------------------------------------------------------------
    def _require_connected(self) -> Controller:
        if self._controller is None:
            raise DriverError(_NOT_CONNECTED)
        return self._controller

    def _not_enabled(self, what: str) -> str:
        if self._state is OperatingState.FAULT:
            return (
                f"{what} refused: the ACME arm is in FAULT ({self._fault_reason}); disable() "
                "then enable()"
            )
        return f"{what} needs the ACME arm ENABLED, it is {self._state}"

    def _set_setpoint(self, pose: np.ndarray, q: list[float]) -> None:
        self._sp_pose = pose
        self._sp_q = q
        self._sp_vendor = joints_to_vendor(q)

    def _hold_here(self) -> None:
        self._set_setpoint(self._pose.copy(), list(self._q))
        self._homing = False

    def _enter_fault(self, reason: str) -> None:
        self._state = OperatingState.FAULT
        self._fault_reason = reason
        self._homing = False
        logger.error("ACME arm FAULT: %s", reason)

    def _check_arrived(self) -> None:
        c = self.config
        q, home = self._q, self._home_q
        dist = math.sqrt(sum((q[i] - home[i]) ** 2 for i in range(3)))
        if (
            dist <= c.home_position_tol_m
            and quaternion_angle_rad(self._pose[3:], self._home_pose[3:]) <= c.home_angle_tol_rad
            and abs(q[JAW] - home[JAW]) <= c.home_angle_tol_rad
        ):
            self._homing = False
            if not self._homed:
                logger.info("ACME arm homed")
            self._homed = True
