"""The driver interface a hardware integrator implements: :class:`ArmDriver` (CRTK names).

One class per arm. The arm server calls it from one thread, once per control tick, on its own
absolute deadlines (``description.control_rate_hz``): the readings, then at most one ``servo_cp``
and one ``servo_jaw`` (or ``hold()``), then ``update()`` (send the command to the hardware and
read it back, or step the simulation). ``update()`` must not wait for a bus cycle: the server
paces the loop, and a driver whose hardware has its own clock takes the newest feedback and
counts what it missed. The simulator (``sim.SimArm``) is just another driver.

Construction must not touch the hardware (``slave-arm check-driver`` builds a driver to ask
whether it ``moves_hardware`` before the operator confirms); ``connect()`` opens it. A driver is
constructible with no arguments (defaults for every option), since the conformance kit builds
it that way; options come as keyword arguments (``slave-arm --driver-option KEY=VALUE``).

Conventions (CRTK, SI units):

* Poses are 7 floats: position x, y, z (m) and a unit quaternion qx, qy, qz, qw, of the tool tip
  in the arm's base frame. Wrenches are fx, fy, fz (N), tx, ty, tz (N·m) in the tool frame.
* Joint values are radians (revolute) or metres (prismatic), as ``description.joint_types``.
* Every reading carries ``timestamp_ns`` (``time.monotonic_ns()`` when it was taken); 0 never.
* Commands return what was actually applied (e.g. the pose the IK solution reaches), never what
  was asked. ``servo_*`` while not ENABLED raises :class:`NotEnabledError`; a bad argument (NaN,
  wrong shape, a target outside the workspace box, a jaw outside its range) raises
  ``ValueError`` saying what was wrong, and changes nothing: drivers refuse, they do not clamp
  (the safety supervisor clamps before a target reaches the driver).
* Readings before ``connect()`` or after ``disconnect()`` raise :class:`DriverError`.
  ``setpoint_cp`` carries the time of the last ``update()``.
* ``hold()`` makes the arm stay where it is now (setpoint := measured), from any state in which
  it can move; it is what the safety supervisor calls when commands stop.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from network.protocol import ArmDescription, CameraDescription, TaskInfo

# Drivers describe themselves with these (re-exported here so a driver package, the simulator
# included, needs nothing but slave_arm).
__all__ = [
    "ArmDescription",
    "ArmDriver",
    "CameraDescription",
    "CartesianReading",
    "DriverError",
    "JawReading",
    "JointReading",
    "NotEnabledError",
    "OperatingState",
    "TaskInfo",
    "WrenchReading",
    "check_jaw_arg",
    "check_pose_arg",
]


class OperatingState(enum.StrEnum):
    """CRTK operating states."""

    DISABLED = "DISABLED"
    ENABLED = "ENABLED"
    PAUSED = "PAUSED"
    FAULT = "FAULT"


class DriverError(RuntimeError):
    """The driver cannot do what was asked (hardware fault, lost connection, ...)."""


class NotEnabledError(DriverError):
    """A motion command arrived while the arm is not ENABLED."""


@dataclass(frozen=True)
class CartesianReading:
    """A tool pose (x, y, z m; qx, qy, qz, qw) in the base frame, and when it was true."""

    pose: np.ndarray
    timestamp_ns: int


@dataclass(frozen=True)
class JointReading:
    """CRTK ``measured_js``: position (rad or m), velocity (rad/s or m/s), effort (N·m or N)."""

    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    timestamp_ns: int


@dataclass(frozen=True)
class WrenchReading:
    """CRTK ``measured_cf``: fx, fy, fz (N), tx, ty, tz (N·m) on the instrument, tool frame."""

    wrench: np.ndarray
    timestamp_ns: int


@dataclass(frozen=True)
class JawReading:
    """The jaw opening angle (rad) and the grip force between the jaws (N, >= 0)."""

    angle_rad: float
    grip_force_n: float
    timestamp_ns: int


class ArmDriver(ABC):
    """An instrument arm, real or simulated. Use as a context manager (connect/disconnect).

    Subclasses set ``name`` (the entry-point name, e.g. ``"sim"``) and implement every abstract
    member. States: connect() -> DISABLED; enable() -> ENABLED; disable() -> DISABLED;
    hold() keeps the state; a fault -> FAULT (only disable() then enable() leaves it).
    """

    name: ClassVar[str] = ""
    moves_hardware: bool = True
    """True when this driver moves a real arm: ``slave-arm check-driver`` then asks the operator
    to confirm before the conformance kit moves it. Simulators set False (a driver with a
    simulated backend may set it per instance in ``__init__``)."""

    # -- lifetime --------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the hardware (or start the simulation). The arm is then DISABLED."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop safely and release the hardware. Idempotent."""

    def __enter__(self) -> ArmDriver:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # -- training tasks (simulators) -------------------------------------------------------
    def task_counters(self) -> Mapping[str, int]:
        """Live progress of the training task the driver runs (names start ``task_``; see
        ``description.task``), published in every state's counters. Real arms: empty."""
        return {}

    # -- what the arm is ---------------------------------------------------------------------
    @property
    @abstractmethod
    def description(self) -> ArmDescription:
        """dof, joint names/types/limits, workspace box, speed/force limits, rates, camera."""

    @property
    @abstractmethod
    def operating_state(self) -> OperatingState: ...

    @property
    @abstractmethod
    def is_homed(self) -> bool: ...

    @property
    @abstractmethod
    def is_busy(self) -> bool:
        """True while a state command (e.g. home) is still moving the arm."""

    # -- state commands ----------------------------------------------------------------------
    @abstractmethod
    def enable(self) -> None:
        """Power the arm: DISABLED -> ENABLED (FAULT needs disable() first). It may return
        before the drives are powered: ENABLED must follow within 2 s of ``update()`` calls (the
        arm server and the kit tick until then)."""

    @abstractmethod
    def disable(self) -> None:
        """Brakes on, power off: any state -> DISABLED."""

    @abstractmethod
    def home(self) -> None:
        """Move to the home pose; needs ENABLED. ``is_busy`` is True as soon as this returns
        and until the arm is there (over later ``update()`` calls); then ``is_homed``."""

    @abstractmethod
    def hold(self) -> None:
        """Stay where the arm is now: the setpoint becomes the measured pose."""

    # -- the control tick ----------------------------------------------------------------------
    @abstractmethod
    def update(self) -> None:
        """Advance one control period: a simulator steps its physics, hardware reads sensors."""

    # -- readings (CRTK queries) -----------------------------------------------------------------
    @abstractmethod
    def measured_cp(self) -> CartesianReading: ...

    @abstractmethod
    def setpoint_cp(self) -> CartesianReading: ...

    @abstractmethod
    def measured_js(self) -> JointReading: ...

    @abstractmethod
    def measured_cf(self) -> WrenchReading: ...

    @abstractmethod
    def measured_jaw(self) -> JawReading: ...

    # -- motion commands (CRTK servo: a stream of absolute targets) -------------------------------
    @abstractmethod
    def servo_cp(self, pose: Any) -> np.ndarray:
        """Track this tool pose from now on; returns the pose actually set as the setpoint."""

    @abstractmethod
    def servo_jaw(self, angle_rad: float) -> float:
        """Track this jaw angle; returns the angle actually set."""


def check_pose_arg(pose: Any, name: str = "pose") -> np.ndarray:
    """A float64 (7,) pose with a unit quaternion (normalised), or ValueError saying why."""
    try:
        a = np.asarray(pose, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 7 numbers (x, y, z m; qx, qy, qz, qw)") from None
    if a.shape != (7,):
        raise ValueError(f"{name} must be 7 numbers (x, y, z m; qx, qy, qz, qw), shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds a number that is not finite: {a}")
    n = math.sqrt(float(a[3:] @ a[3:]))
    if abs(n - 1.0) > 1e-3:
        raise ValueError(f"{name} orientation quaternion has norm {n:.6g}, expected 1")
    out = a.copy()
    out[3:] /= n
    return out


def check_jaw_arg(angle_rad: Any, jaw_range_rad: tuple[float, float]) -> float:
    """A finite jaw angle within range, or ValueError saying why."""
    try:
        v = float(angle_rad)
    except (TypeError, ValueError):
        raise ValueError(f"jaw angle must be a number (rad), got {angle_rad!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"jaw angle is not finite: {v}")
    lo, hi = jaw_range_rad
    if not lo - 1e-9 <= v <= hi + 1e-9:
        raise ValueError(f"jaw angle {v:.4f} rad is outside the jaw range [{lo:.4f}, {hi:.4f}]")
    return min(max(v, lo), hi)
