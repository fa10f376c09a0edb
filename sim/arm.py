"""The simulated instrument arm: :class:`SimArm`, the ``"sim"`` driver (entry point ``sim``).

A PyBullet RCM arm (``assets/rcm_arm.urdf``: yaw, pitch, insertion, roll, wrist pitch, wrist
yaw, and a two-finger jaw) in the scene of :mod:`sim.scene`, behind the
:class:`~slave_arm.driver.ArmDriver` interface:

* ``update()`` applies the current setpoint (joint targets from the IK, the jaw) and steps the
  physics exactly once (``1 / rate_hz`` s), then reads everything back (joints, tool pose from
  PyBullet's link state, contact wrench, grip force) and stamps it with ``time.monotonic_ns()``.
  With the camera on, it also hands the arm's joints and the ring poses to the camera process
  when the camera asks for them (once per frame, at the camera rate), never blocking.
* ``servo_cp(pose)`` validates the pose, refuses positions outside the workspace box
  (``ValueError`` naming the axis; the safety supervisor clamps before), needs ENABLED, solves the
  analytic RCM inverse kinematics (:func:`sim.kinematics.ik`, seeded by the previous solution) and
  returns the pose the solution actually reaches (after joint-limit clamping; which joints were
  clamped is in :attr:`SimArm.ik_clamped`).
* ``hold()`` makes the measured pose the setpoint (the joint targets become the measured joints);
  the jaw setpoint is kept, so a held ring is not dropped. ``disable()`` brakes every joint where
  it is. ``home()`` (needs ENABLED) moves the joints to :data:`HOME_Q` along a smooth joint-space
  path; ``is_busy`` until there. The simulated joint encoders are absolute, so ``is_homed`` is
  True from ``connect()``.

Identity orientation is the instrument pointing straight down; the tool frame is at the jaw tips
(see the URDF header). Grasping and force sensing: :mod:`sim.world`.

Training tasks (:mod:`sim.tasks`): ``SimArm(task="reach")`` runs one. Its
:class:`~network.protocol.TaskInfo` is in ``description.task``; it is attached to the world at
``connect()`` (a new task run each time), updated once per ``update()`` after the physics step
and the grasp logic, and its progress is :meth:`SimArm.task_counters` (``task_*``). Without a
task, ``description.task`` is None and ``task_counters()`` is empty.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from sim.kinematics import (
    JOINT_LOWER,
    JOINT_NAMES,
    JOINT_TYPES,
    JOINT_UPPER,
    fk_pose,
    ik,
)
from sim.scene import BOARD_TOP_Z, PEG_HEIGHT_M, peg_positions
from sim.tasks import TASKS, Task, make_task
from sim.world import ArmSample, SimWorld
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

logger = logging.getLogger(__name__)

WORKSPACE_MIN_M: tuple[float, float, float] = (-0.1, -0.1, -0.2)
WORKSPACE_MAX_M: tuple[float, float, float] = (0.1, 0.1, -0.02)
JAW_RANGE_RAD: tuple[float, float] = (0.0, 1.0)
HOME_Q = np.array([0.0, 0.0, 0.10, 0.0, 0.0, 0.0])
"""Home joints: the tip 10 cm below the RCM at (0, 0, -0.1) m, pointing down (identity)."""
HOME_JAW_RAD = 0.5
"""The jaw opening at connect (rad)."""
HOME_SPEED = np.array([1.0, 1.0, 0.1, 3.0, 3.0, 3.0])
"""Joint speeds a home() move plans with (rad/s; insertion m/s)."""
HOME_MIN_S = 0.1
HOME_POSITION_TOL_M = 1e-4
"""home() is done when the tip is this close to the home pose (m)..."""
HOME_JOINT_TOL = 2e-3
"""... and every joint this close to home (rad, m)."""
_WORKSPACE_TOL_M = 1e-9
_AXES = ("x", "y", "z")
_NOT_CONNECTED = "not connected: call connect()"


def _home_joints(q: np.ndarray) -> np.ndarray:
    """:data:`HOME_Q`, with the roll the 2π-equivalent (within limits) nearest ``q``'s roll."""
    out = HOME_Q.copy()
    roll = out[3] + round((float(q[3]) - out[3]) / (2.0 * math.pi)) * 2.0 * math.pi
    if JOINT_LOWER[3] <= roll <= JOINT_UPPER[3]:
        out[3] = roll
    return out


class SimArm(ArmDriver):
    """The simulated instrument arm: PyBullet physics at 1 kHz, endoscope camera, force, tasks.

    A remote-centre-of-motion arm (see the module docstring).

    Args:
        gui: open PyBullet's window (needs a display) instead of running headless (DIRECT).
        seed: the scene's seed (ring and target placement); ``None`` means 0.
        rate_hz: the control rate; each ``update()`` steps the physics by ``1 / rate_hz`` s.
        camera: run the endoscope camera process (:class:`sim.camera.CameraProcess`).
        camera_size: (width, height) of the camera image in pixels.
        camera_rate_hz: the camera frame rate.
        task: a training task to run (:data:`sim.tasks.TASKS`: ``"reach"``, ``"peg-transfer"``,
            ``"palpation"``), placed by ``seed``; ``None``: none. ValueError for an unknown name.
    """

    name: ClassVar[str] = "sim"
    moves_hardware = False
    task_names: ClassVar[tuple[str, ...]] = tuple(TASKS)
    """The training tasks ``task=`` accepts."""

    def __init__(
        self,
        gui: bool = False,
        seed: int | None = 0,
        rate_hz: float = 1000.0,
        camera: bool = False,
        camera_size: tuple[int, int] = (320, 240),
        camera_rate_hz: float = 30.0,
        task: str | None = None,
    ) -> None:
        if not (isinstance(rate_hz, int | float) and math.isfinite(rate_hz) and rate_hz > 0.0):
            raise ValueError(f"rate_hz must be a finite number > 0 (Hz), got {rate_hz!r}")
        if not (math.isfinite(camera_rate_hz) and 0.0 < camera_rate_hz <= 1000.0):
            raise ValueError(f"camera_rate_hz must be in (0, 1000] Hz, got {camera_rate_hz!r}")
        w, h = (int(v) for v in camera_size)
        if not (1 <= w <= 4096 and 1 <= h <= 4096):
            raise ValueError(
                f"camera_size must be (width, height) in 1..4096 px, got {camera_size}"
            )
        self.gui = bool(gui)
        self.seed = 0 if seed is None else int(seed)
        self._rate_hz = float(rate_hz)
        self._dt_s = 1.0 / self._rate_hz
        self._camera_on = bool(camera)
        self._camera_size = (w, h)
        self._camera_rate_hz = float(camera_rate_hz)
        home_tip = fk_pose(HOME_Q)[:3]
        self._task: Task | None = None if task is None else make_task(task, self.seed, home_tip)
        self._description = ArmDescription(
            name=self.name,
            dof=7,
            joint_names=(*JOINT_NAMES, "jaw"),
            joint_types=(*JOINT_TYPES, "revolute"),  # type: ignore[arg-type]
            joint_lower=(*(float(v) for v in JOINT_LOWER), JAW_RANGE_RAD[0]),
            joint_upper=(*(float(v) for v in JOINT_UPPER), JAW_RANGE_RAD[1]),
            workspace_min_m=WORKSPACE_MIN_M,
            workspace_max_m=WORKSPACE_MAX_M,
            max_tool_speed_m_s=0.2,
            max_angular_speed_rad_s=3.0,
            jaw_range_rad=JAW_RANGE_RAD,
            max_force_n=10.0,
            control_rate_hz=self._rate_hz,
            camera=CameraDescription(
                width=w, height=h, rate_hz=self._camera_rate_hz if self._camera_on else 0.0
            ),
            task=None if self._task is None else self._task.info(),
        )
        self._world: SimWorld | None = None
        self._camera: Any = None
        self._state = OperatingState.DISABLED
        self._sample: ArmSample | None = None
        self._stamp_ns = 0
        self._q_target = HOME_Q.copy()
        self._jaw_setpoint = HOME_JAW_RAD
        self._setpoint = fk_pose(HOME_Q)
        self._ik_clamped: tuple[str, ...] = ()
        self._homing: tuple[np.ndarray, np.ndarray, int, int] | None = None  # q0, q1, tick, n
        self._homed = False
        self._fault: str | None = None

    # -- lifetime --------------------------------------------------------------------------
    def connect(self) -> None:
        """Start the simulation (and the camera process): the arm at home, DISABLED."""
        if self._world is not None:
            self.disconnect()
        self._world = SimWorld(gui=self.gui, seed=self.seed, timestep_s=self._dt_s)
        self._world.reset_arm(HOME_Q, HOME_JAW_RAD)
        self._state = OperatingState.DISABLED
        self._homing = None
        self._fault = None
        self._homed = True
        self._jaw_setpoint = HOME_JAW_RAD
        self._read()
        self._hold_here()
        if self._task is not None:
            self._task.attach(self._world)
        if self._camera_on:
            from sim.camera import CameraProcess

            w, h = self._camera_size
            self._camera = CameraProcess(
                width=w, height=h, rate_hz=self._camera_rate_hz, seed=self.seed
            )
            self._camera.start()
            self._feed_camera()
        logger.debug("sim arm connected (seed %d, %.0f Hz)", self.seed, self._rate_hz)

    def disconnect(self) -> None:
        """Stop the camera process and the simulation. Idempotent."""
        cam, self._camera = self._camera, None
        if cam is not None:
            cam.stop()
        world, self._world = self._world, None
        if world is not None:
            world.close()
        self._state = OperatingState.DISABLED
        self._homing = None

    # -- what the arm is ---------------------------------------------------------------------
    @property
    def description(self) -> ArmDescription:
        """Joints (6 arm joints + jaw), workspace box, limits, rates; camera rate 0 when off."""
        return self._description

    @property
    def operating_state(self) -> OperatingState:
        return self._state

    @property
    def is_homed(self) -> bool:
        """True once connected: the simulated joint encoders are absolute."""
        return self._homed and self._world is not None

    @property
    def is_busy(self) -> bool:
        """True from home() until the arm is at the home pose."""
        return self._homing is not None

    # -- state commands ----------------------------------------------------------------------
    def enable(self) -> None:
        """DISABLED or PAUSED -> ENABLED, holding the current pose (enabling never moves)."""
        self._require_connected()
        if self._state is OperatingState.FAULT:
            raise DriverError(f"the arm is in FAULT ({self._fault}): call disable() first")
        if self._state is not OperatingState.ENABLED:
            self._hold_here()
            self._state = OperatingState.ENABLED

    def disable(self) -> None:
        """Any state -> DISABLED: every joint brakes where it is (the jaw keeps its grip)."""
        self._require_connected()
        self._hold_here()
        self._state = OperatingState.DISABLED
        self._fault = None

    def pause(self) -> None:
        """ENABLED -> PAUSED: hold here and refuse motion commands until resume()."""
        self._require_connected()
        if self._state is OperatingState.ENABLED:
            self._hold_here()
            self._state = OperatingState.PAUSED

    def resume(self) -> None:
        """PAUSED -> ENABLED (holding the current pose)."""
        self._require_connected()
        if self._state is OperatingState.PAUSED:
            self._hold_here()
            self._state = OperatingState.ENABLED

    def home(self) -> None:
        """Move to the home pose (needs ENABLED): is_busy until there.

        The home pose is the tip at (0, 0, -0.1) m pointing straight down (:data:`HOME_Q`: yaw
        and pitch 0, a regular point of the outer axes); the roll goes to the nearest full turn,
        so the move never unwinds the instrument needlessly.
        """
        self._require_connected()
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(f"home() needs the arm ENABLED, it is {self._state}")
        q0 = self._measured_q()
        q1 = _home_joints(q0)
        span = float(np.max(np.abs(q1 - q0) / HOME_SPEED))
        # a minimum-jerk path peaks at 1.875 x its mean speed
        n = max(1, math.ceil(max(HOME_MIN_S, 1.875 * span) * self._rate_hz))
        self._homing = (q0, q1, 0, n)

    def hold(self) -> None:
        """Stay here: the setpoint becomes the measured pose; cancels home(); state unchanged."""
        self._require_connected()
        self._hold_here()

    # -- the control tick ----------------------------------------------------------------------
    def update(self) -> None:
        """Apply the setpoint, step the physics once (1 / rate_hz s), read everything back."""
        world = self._require_connected()
        if self._homing is not None:
            q0, q1, i, n = self._homing
            i = min(i + 1, n)
            s = i / n
            s = s * s * s * (10.0 + s * (-15.0 + 6.0 * s))  # minimum jerk
            self._q_target = q0 + s * (q1 - q0)
            self._setpoint = fk_pose(self._q_target)
            self._homing = (q0, q1, i, n)
        world.command(self._q_target, self._jaw_setpoint)
        world.step()
        sample = self._read()
        world.update_grasp(self._jaw_setpoint, sample.jaw_rad, sample.grip_force_n)
        task = self._task
        if task is not None:
            task.update(world, world.steps * self._dt_s, sample.tip, sample.wrench, sample.jaw_rad)
        if not (np.isfinite(sample.q).all() and np.isfinite(sample.wrench).all()):
            self._set_fault("the simulation produced a non-finite state")
        if self._homing is not None and self._homing[2] >= self._homing[3]:
            err = float(np.linalg.norm(sample.tip - self._setpoint[:3]))
            near = np.all(np.abs(sample.q - self._homing[1]) <= HOME_JOINT_TOL)
            if err <= HOME_POSITION_TOL_M and near:
                self._homing = None
                self._homed = True
        if self._camera is not None and self._camera.state_wanted():
            self._feed_camera()

    # -- the training task -----------------------------------------------------------------------
    def task_counters(self) -> Mapping[str, int]:
        """The task's progress (``task_*`` counters, see :mod:`sim.tasks`); empty without one."""
        task = self._task
        return {} if task is None else task.counters()

    @property
    def task(self) -> Task | None:
        """The training task this arm runs (:mod:`sim.tasks`), or None."""
        return self._task

    # -- readings (CRTK queries) -----------------------------------------------------------------
    def measured_cp(self) -> CartesianReading:
        """The tool pose from PyBullet (x, y, z m; qx, qy, qz, qw), base frame."""
        s = self._sample_or_raise()
        return CartesianReading(s.pose, self._stamp_ns)

    def setpoint_cp(self) -> CartesianReading:
        """The pose the arm is tracking: what the IK solution reaches (x, y, z m; quaternion)."""
        self._sample_or_raise()
        return CartesianReading(self._setpoint.copy(), self._stamp_ns)

    def measured_js(self) -> JointReading:
        """Yaw, pitch (rad), insertion (m), roll, wrist pitch, wrist yaw, jaw (rad)."""
        s = self._sample_or_raise()
        return JointReading(
            np.append(s.q, s.jaw_q[0] - s.jaw_q[1]),
            np.append(s.qd, s.jaw_qd[0] - s.jaw_qd[1]),
            np.append(s.effort, 0.5 * (s.jaw_effort[0] - s.jaw_effort[1])),
            self._stamp_ns,
        )

    def measured_cf(self) -> WrenchReading:
        """The contact wrench on the instrument about the tool tip, tool frame (N, N·m)."""
        s = self._sample_or_raise()
        return WrenchReading(s.wrench.copy(), self._stamp_ns)

    def measured_jaw(self) -> JawReading:
        """The jaw opening (rad) and the grip force between the fingers (N)."""
        s = self._sample_or_raise()
        return JawReading(float(s.jaw_rad), float(s.grip_force_n), self._stamp_ns)

    # -- motion commands -------------------------------------------------------------------------
    def servo_cp(self, pose: Any) -> np.ndarray:
        """Track this tool pose (needs ENABLED); returns the pose the IK solution reaches.

        Raises ValueError for a malformed pose or a position outside the workspace box (no
        clamping here: the safety supervisor clamps), NotEnabledError unless ENABLED. Joint
        limits are respected: the IK clamps and reports (:attr:`ik_clamped`).
        """
        self._require_connected()
        target = check_pose_arg(pose)
        for i, axis in enumerate(_AXES):
            lo, hi = WORKSPACE_MIN_M[i], WORKSPACE_MAX_M[i]
            v = target[i]
            if not lo - _WORKSPACE_TOL_M <= v <= hi + _WORKSPACE_TOL_M:
                raise ValueError(
                    f"pose {axis} = {v:.4f} m is outside the workspace {axis} range "
                    f"[{lo:.4f}, {hi:.4f}] m"
                )
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(f"servo_cp needs the arm ENABLED, it is {self._state}")
        sol = ik(target, self._q_target)
        self._q_target = sol.q
        self._setpoint = sol.pose
        self._ik_clamped = sol.clamped
        self._homing = None
        return sol.pose.copy()

    def servo_jaw(self, angle_rad: float) -> float:
        """Track this jaw opening (rad, within the jaw range; needs ENABLED); returns it."""
        self._require_connected()
        v = check_jaw_arg(angle_rad, JAW_RANGE_RAD)
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(f"servo_jaw needs the arm ENABLED, it is {self._state}")
        self._jaw_setpoint = v
        return v

    def servo_jp(self, position: Any) -> np.ndarray:
        """Track these 7 joint positions (6 arm joints + jaw; needs ENABLED); returns them.

        Raises ValueError for the wrong shape, a non-finite value or one outside the joint
        limits (naming the joint).
        """
        self._require_connected()
        try:
            q = np.asarray(position, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("position must be 7 joint values (rad, m)") from None
        if q.shape != (7,) or not np.isfinite(q).all():
            raise ValueError(f"position must be 7 finite joint values (rad, m), got {position!r}")
        d = self._description
        for i, name in enumerate(d.joint_names):
            if not d.joint_lower[i] - 1e-9 <= q[i] <= d.joint_upper[i] + 1e-9:
                raise ValueError(
                    f"joint {name} = {q[i]:.4f} is outside its limits "
                    f"[{d.joint_lower[i]:.4f}, {d.joint_upper[i]:.4f}]"
                )
        if self._state is not OperatingState.ENABLED:
            raise NotEnabledError(f"servo_jp needs the arm ENABLED, it is {self._state}")
        q = np.clip(q, d.joint_lower, d.joint_upper)
        self._q_target = q[:6].copy()
        self._jaw_setpoint = float(q[6])
        self._setpoint = fk_pose(self._q_target)
        self._ik_clamped = ()
        self._homing = None
        return q

    # -- extras (not in the ABC): for the server and the benchmarks -------------------------------
    def latest_frame(self) -> Any:
        """The newest encoded endoscope frame (:class:`sim.camera.VideoFrameData`), or None."""
        cam = self._camera
        return None if cam is None else cam.poll_frame()

    def scene_state(self) -> dict[str, Any]:
        """The scene now (base frame, m): the 12 peg tops (left side first), the ring poses
        (n x 7), the pegs the rings started on, which ring is held, the touch targets (n x 3)."""
        world = self._require_connected()
        held = world.grasped_ring
        return {
            "seed": self.seed,
            "peg_tops": np.array([(x, y, BOARD_TOP_Z + PEG_HEIGHT_M) for x, y in peg_positions()]),
            "ring_poses": world.ring_poses(),
            "ring_start_pegs": list(world.scene.ring_pegs),
            "held_ring": None if held is None else world.scene.rings.index(held),
            "target_positions": world.scene.target_positions.copy(),
        }

    def ik_error_m(self) -> float:
        """Distance between the setpoint and the measured tool tip (m)."""
        s = self._sample_or_raise()
        return float(np.linalg.norm(self._setpoint[:3] - s.tip))

    @property
    def ik_clamped(self) -> tuple[str, ...]:
        """The joints the last servo_cp's IK had to clamp (empty when the pose is reached)."""
        return self._ik_clamped

    @property
    def world(self) -> SimWorld:
        """The PyBullet world (for tools and tests)."""
        return self._require_connected()

    @property
    def camera(self) -> Any:
        """The camera process (:class:`sim.camera.CameraProcess`), or None when off."""
        return self._camera

    # -- internals -------------------------------------------------------------------------------
    def _require_connected(self) -> SimWorld:
        if self._world is None:
            raise DriverError(_NOT_CONNECTED)
        return self._world

    def _sample_or_raise(self) -> ArmSample:
        self._require_connected()
        assert self._sample is not None
        return self._sample

    def _read(self) -> ArmSample:
        world = self._require_connected()
        self._sample = world.read()
        self._stamp_ns = time.monotonic_ns()
        return self._sample

    def _measured_q(self) -> np.ndarray:
        return self._sample_or_raise().q.copy()

    def _hold_here(self) -> None:
        s = self._sample_or_raise()
        self._q_target = s.q.copy()
        self._setpoint = s.pose
        self._ik_clamped = ()
        self._homing = None

    def _set_fault(self, reason: str) -> None:
        if self._state is not OperatingState.FAULT:
            logger.error("sim arm FAULT: %s", reason)
        self._fault = reason
        self._state = OperatingState.FAULT
        self._homing = None

    def _feed_camera(self) -> None:
        world = self._require_connected()
        s = self._sample_or_raise()
        joints = np.concatenate([s.q, s.jaw_q])
        self._camera.update_scene(joints, world.ring_poses(), self._stamp_ns)
