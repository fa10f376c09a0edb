"""A minimal arm without physics: :class:`KinematicArm` (driver name ``"kinematic"``).

For tests, benchmarks and as a worked example for integrators writing a driver for a real arm.
The tool pose tracks the setpoint with a first-order lag (time constant
``tracking_time_constant_s``), one control period per :meth:`KinematicArm.update` call, so the arm
behaves like a well-tuned position-controlled robot without any dynamics, contact or limits of its
own beyond argument checks.

Its 7 joints *are* the pose: ``x``, ``y``, ``z`` (prismatic, m, the tool tip in the base frame),
``roll``, ``pitch``, ``yaw`` (revolute, rad: the tool orientation as extrinsic X-Y-Z Euler angles,
``R = Rz(yaw) · Ry(pitch) · Rx(roll)``, the same as SciPy's ``Rotation.as_euler("xyz")``) and
``jaw`` (revolute, rad).

Out-of-workspace targets are rejected (``ValueError``), never clamped: clamping is the safety
supervisor's job, and it reports what it clamped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from network.protocol import ArmDescription, CameraDescription
from slave_arm.driver import (
    ArmDriver,
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

logger = logging.getLogger(__name__)

HOME_POSE: tuple[float, ...] = (0.0, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0)
"""The home pose: x, y, z (m), qx, qy, qz, qw (identity orientation)."""
HOME_JAW_RAD = 0.5
"""The jaw opening at connect (rad)."""
WORKSPACE_MIN_M: tuple[float, float, float] = (-0.1, -0.1, -0.2)
WORKSPACE_MAX_M: tuple[float, float, float] = (0.1, 0.1, 0.0)
JAW_RANGE_RAD: tuple[float, float] = (0.0, 1.0)
HOME_POSITION_TOL_M = 1e-4
"""The arm is at home when within 0.1 mm ..."""
HOME_ANGLE_TOL_RAD = 1e-3
"""... and 0.001 rad of the home pose."""
_WORKSPACE_TOL_M = 1e-9
_AXES = ("x", "y", "z")
_NOT_CONNECTED = "not connected: call connect()"


def quaternion_angle_rad(q0: np.ndarray, q1: np.ndarray) -> float:
    """The rotation angle (rad, in [0, π]) between two unit quaternions (x, y, z, w)."""
    d = min(1.0, abs(float(q0 @ q1)))
    return 2.0 * math.acos(d)


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation from unit quaternion q0 (t=0) to q1 (t=1), shortest path."""
    d = float(q0 @ q1)
    if d < 0.0:
        q1 = -q1
        d = -d
    if d > 0.9995:  # nearly parallel: normalised lerp is exact to ~1e-7 and avoids 0/0
        q = q0 + t * (q1 - q0)
    else:
        theta = math.acos(d)
        s = math.sin(theta)
        q = (math.sin((1.0 - t) * theta) / s) * q0 + (math.sin(t * theta) / s) * q1
    return q / math.sqrt(float(q @ q))


def quaternion_to_rpy(q: np.ndarray) -> tuple[float, float, float]:
    """Roll, pitch, yaw (rad) of a unit quaternion (x, y, z, w), extrinsic X-Y-Z.

    ``R = Rz(yaw) · Ry(pitch) · Rx(roll)``; roll, yaw ∈ [-π, π], pitch ∈ [-π/2, π/2].
    """
    x, y, z, w = (float(v) for v in q)
    roll = math.atan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2.0 * (w * y - z * x))))
    yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    return roll, pitch, yaw


def _wrap_angle(a: float) -> float:
    """An angle difference wrapped to [-π, π) (rad)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


class KinematicArm(ArmDriver):
    """An ideal arm whose tool pose follows the setpoint with a first-order lag; no physics.

    Args:
        rate_hz: the control rate (Hz): each :meth:`update` advances the arm by ``1 / rate_hz`` s
            of simulated time, whatever the wall-clock time between calls.
        tracking_time_constant_s: the first-order tracking time constant (s) of the pose and jaw.
        clock_ns: the clock that stamps readings (ns), ``time.monotonic_ns`` unless a test
            injects its own; it must be monotonic and positive.
    """

    name: ClassVar[str] = "kinematic"
    moves_hardware = False

    def __init__(
        self,
        rate_hz: float = 1000.0,
        tracking_time_constant_s: float = 0.005,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0.0):
            raise ValueError(f"rate_hz must be a finite number > 0 (Hz), got {rate_hz!r}")
        if not (math.isfinite(tracking_time_constant_s) and tracking_time_constant_s > 0.0):
            raise ValueError(
                "tracking_time_constant_s must be a finite number > 0 (s), "
                f"got {tracking_time_constant_s!r}"
            )
        self._rate_hz = float(rate_hz)
        self._dt_s = 1.0 / self._rate_hz
        self._tau_s = float(tracking_time_constant_s)
        self._alpha = 1.0 - math.exp(-self._dt_s / self._tau_s)
        self._clock_ns = clock_ns
        self._description = ArmDescription(
            name=self.name,
            dof=7,
            joint_names=("x", "y", "z", "roll", "pitch", "yaw", "jaw"),
            joint_types=("prismatic",) * 3 + ("revolute",) * 4,
            joint_lower=(*WORKSPACE_MIN_M, -math.pi, -math.pi / 2, -math.pi, JAW_RANGE_RAD[0]),
            joint_upper=(*WORKSPACE_MAX_M, math.pi, math.pi / 2, math.pi, JAW_RANGE_RAD[1]),
            workspace_min_m=WORKSPACE_MIN_M,
            workspace_max_m=WORKSPACE_MAX_M,
            max_tool_speed_m_s=0.2,
            max_angular_speed_rad_s=3.0,
            jaw_range_rad=JAW_RANGE_RAD,
            max_force_n=10.0,
            control_rate_hz=self._rate_hz,
            camera=CameraDescription(),
        )
        self._home = np.array(HOME_POSE, dtype=np.float64)
        self._connected = False
        self._state = OperatingState.DISABLED
        self._homing = False
        self._homed = False
        self._stamp_ns = 0
        self._measured = self._home.copy()
        self._setpoint = self._home.copy()
        self._jaw = HOME_JAW_RAD
        self._jaw_setpoint = HOME_JAW_RAD
        self._js = np.zeros(7)
        self._js_velocity = np.zeros(7)

    # -- lifetime --------------------------------------------------------------------------
    def connect(self) -> None:
        """Start at the home pose, jaw 0.5 rad, DISABLED, not homed."""
        self._measured = self._home.copy()
        self._setpoint = self._home.copy()
        self._jaw = self._jaw_setpoint = HOME_JAW_RAD
        self._js = self._joints()
        self._js_velocity = np.zeros(7)
        self._state = OperatingState.DISABLED
        self._homing = False
        self._homed = False
        self._stamp_ns = int(self._clock_ns())
        self._connected = True
        logger.debug("kinematic arm connected at %.0f Hz", self._rate_hz)

    def disconnect(self) -> None:
        """Forget the arm (DISABLED, readings unavailable). Idempotent."""
        if self._connected:
            logger.debug("kinematic arm disconnected")
        self._connected = False
        self._state = OperatingState.DISABLED
        self._homing = False

    # -- what the arm is ---------------------------------------------------------------------
    @property
    def description(self) -> ArmDescription:
        """The 7 pose joints, the workspace box and the limits (available before connect)."""
        return self._description

    @property
    def operating_state(self) -> OperatingState:
        return self._state

    @property
    def is_homed(self) -> bool:
        """True once a :meth:`home` has reached the home pose (until disconnect)."""
        return self._homed

    @property
    def is_busy(self) -> bool:
        """True while homing and more than 0.1 mm / 0.001 rad from the home pose."""
        return self._homing and not self._at_home()

    # -- state commands ----------------------------------------------------------------------
    def enable(self) -> None:
        """DISABLED -> ENABLED, holding the current pose (enabling never makes the arm move)."""
        self._require_connected()
        if self._state is OperatingState.FAULT:
            raise DriverError("the arm is in FAULT: call disable() before enable()")
        self._hold_here()
        self._state = OperatingState.ENABLED

    def disable(self) -> None:
        """Any state -> DISABLED: the arm stops where it is and ignores motion commands."""
        self._require_connected()
        self._hold_here()
        self._state = OperatingState.DISABLED

    def home(self) -> None:
        """Move to the home pose (needs ENABLED): is_busy until there, then is_homed."""
        self._require_connected()
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(f"home() needs the arm ENABLED, it is {self._state}")
        self._setpoint = self._home.copy()
        self._homing = True
        self._check_arrived()

    def hold(self) -> None:
        """Stay here: setpoint := measured pose (and jaw); cancels homing; state unchanged."""
        self._require_connected()
        self._hold_here()

    # -- the control tick ----------------------------------------------------------------------
    def update(self) -> None:
        """Advance one control period (1 / rate_hz s) of first-order tracking and stamp it."""
        self._require_connected()
        if self._state is OperatingState.ENABLED:
            a = self._alpha
            m = self._measured
            m[:3] += a * (self._setpoint[:3] - m[:3])
            m[3:] = slerp(m[3:], self._setpoint[3:], a)
            self._jaw += a * (self._jaw_setpoint - self._jaw)
        js = self._joints()
        v = (js - self._js) * self._rate_hz
        for i in (3, 5):  # roll and yaw wrap at ±π
            v[i] = _wrap_angle(js[i] - self._js[i]) * self._rate_hz
        self._js = js
        self._js_velocity = v
        self._stamp_ns = int(self._clock_ns())
        self._check_arrived()

    # -- readings (CRTK queries) -----------------------------------------------------------------
    def measured_cp(self) -> CartesianReading:
        """The tool pose (x, y, z m; qx, qy, qz, qw) in the base frame."""
        self._require_connected()
        return CartesianReading(self._measured.copy(), self._stamp_ns)

    def setpoint_cp(self) -> CartesianReading:
        """The pose the arm is tracking (x, y, z m; qx, qy, qz, qw)."""
        self._require_connected()
        return CartesianReading(self._setpoint.copy(), self._stamp_ns)

    def measured_js(self) -> JointReading:
        """Joints x, y, z (m), roll, pitch, yaw, jaw (rad), their velocities, zero effort."""
        self._require_connected()
        return JointReading(self._js.copy(), self._js_velocity.copy(), np.zeros(7), self._stamp_ns)

    def measured_cf(self) -> WrenchReading:
        """Always zero (N, N·m): nothing to touch."""
        self._require_connected()
        return WrenchReading(np.zeros(6), self._stamp_ns)

    def measured_jaw(self) -> JawReading:
        """The jaw angle (rad); grip force 0 N."""
        self._require_connected()
        return JawReading(float(self._jaw), 0.0, self._stamp_ns)

    # -- motion commands -------------------------------------------------------------------------
    def servo_cp(self, pose: Any) -> np.ndarray:
        """Track this pose from now on (needs ENABLED); returns a copy of the new setpoint.

        Raises ValueError for a malformed pose or a position outside the workspace box (no
        clamping here: the safety supervisor clamps), NotEnabledError unless ENABLED.
        """
        self._require_connected()
        p = check_pose_arg(pose)
        for i, axis in enumerate(_AXES):
            lo, hi = WORKSPACE_MIN_M[i], WORKSPACE_MAX_M[i]
            if not lo - _WORKSPACE_TOL_M <= p[i] <= hi + _WORKSPACE_TOL_M:
                limit = "minimum" if p[i] < lo else "maximum"
                raise ValueError(
                    f"pose {axis} = {p[i]:.4f} m is outside the workspace {axis} range "
                    f"[{lo:.4f}, {hi:.4f}] m (beyond the {limit} {lo if p[i] < lo else hi:.4f} m)"
                )
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(f"servo_cp needs the arm ENABLED, it is {self._state}")
        self._setpoint = p
        self._homing = False
        return p.copy()

    def servo_jaw(self, angle_rad: float) -> float:
        """Track this jaw angle (rad, within the jaw range; needs ENABLED); returns it."""
        self._require_connected()
        v = check_jaw_arg(angle_rad, JAW_RANGE_RAD)
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(f"servo_jaw needs the arm ENABLED, it is {self._state}")
        self._jaw_setpoint = v
        return v

    # -- internals -------------------------------------------------------------------------------
    def _require_connected(self) -> None:
        if not self._connected:
            raise DriverError(_NOT_CONNECTED)

    def _hold_here(self) -> None:
        self._setpoint = self._measured.copy()
        self._jaw_setpoint = self._jaw
        self._homing = False

    def _joints(self) -> np.ndarray:
        m = self._measured
        roll, pitch, yaw = quaternion_to_rpy(m[3:])
        return np.array([m[0], m[1], m[2], roll, pitch, yaw, self._jaw])

    def _at_home(self) -> bool:
        d = self._measured[:3] - self._home[:3]
        return (
            math.sqrt(float(d @ d)) <= HOME_POSITION_TOL_M
            and quaternion_angle_rad(self._measured[3:], self._home[3:]) <= HOME_ANGLE_TOL_RAD
        )

    def _check_arrived(self) -> None:
        if self._homing and self._at_home():
            self._homing = False
            if not self._homed:
                logger.debug("kinematic arm homed")
            self._homed = True
