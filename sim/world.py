"""The PyBullet world: the RCM arm (base fixed), the scene, joint control, contact force, grasping.

One :class:`SimWorld` owns one PyBullet client (DIRECT by default, GUI on request), steps it at a
fixed time step (1 ms by default), drives the arm's joints with stiff position control and reads
back everything a driver needs in one :meth:`SimWorld.read` after each step.

Force sensing (:meth:`SimWorld.read`): every contact on an instrument link (shaft, wrist, clevis,
fingers) is summed, normal force and both friction components, into the wrench the instrument
feels about the tool tip, expressed in the tool frame (what a force/torque sensor at the wrist
would report, contacts only: the instrument's own weight is not in it). Squeezing forces between
the two fingers cancel in that sum; the grip force is reported on its own: the smaller of the two
fingers' forces pushing them open.

Grasping: PyBullet's friction alone does not hold a small object between two position-controlled
fingers reliably, so a grasp is made explicit, as is usual in PyBullet: when *both* fingers press
on the same ring (grip force at least ``GRASP_MIN_GRIP_N``) and the jaw is squeezing (its setpoint
is more than ``SQUEEZE_RAD`` below the measured opening), a fixed constraint (max force
``GRASP_MAX_FORCE_N``) is created between the clevis (``jaw_base_link``) and the ring, holding the
ring where it is relative to the jaws. While it holds:

* the fingers stay at the angles where they closed on the ring (the jaw stalls on it, as a real
  one does) and the ring's contacts with the instrument are switched off: the constraint carries
  the ring (a constraint *and* contacts on the same pair fight each other in PyBullet's solver);
* ``grip_force_n`` is the squeeze the stalled finger motors exert at the contact
  (``FINGER_TORQUE_NM`` / the contact's distance from the jaw pivot);
* the load the ring puts on the instrument (its weight, and whatever it is pushed against) is
  read from the constraint's force and is part of the measured wrench.

The grasp is released as soon as the jaw stops squeezing (the setpoint opens to within
``RELEASE_RAD`` of the measured opening): the constraint is removed, the contacts come back, and
the ring falls or stays where it is put. Only rings can be grasped.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import pybullet as p

from sim.kinematics import quat_to_matrix
from sim.scene import ArmHandles, Scene, build_scene, load_arm

GRAVITY_M_S2 = 9.81
ARM_FORCES = (30.0, 30.0, 60.0, 2.0, 1.0, 1.0)
"""The most each arm joint motor may exert (N·m; insertion N): stiff enough for tight tracking."""
ARM_POSITION_GAIN = 0.5
"""PyBullet position gain (fraction of the position error corrected per step)."""
ARM_VELOCITY_GAIN = 1.0
FINGER_TORQUE_NM = 0.03
"""Each finger's motor torque: ~4 N of grip 7 mm from the pivot."""
FINGER_POSITION_GAIN = 0.3
JAW_SPEED_RAD_S = 2.0
"""How fast the jaw opening follows its setpoint (rad/s): the jaws close gently on objects."""
SQUEEZE_RAD = 0.02
RELEASE_RAD = 0.01
GRASP_MIN_GRIP_N = 0.2
GRASP_MAX_FORCE_N = 20.0
SOLVER_ITERATIONS = 30


@dataclass(frozen=True)
class Contact:
    """One contact on the instrument, in the base frame."""

    link: int
    body: int
    position_xyz: tuple[float, float, float]
    """Where (m), on the instrument."""
    force_xyz: tuple[float, float, float]
    """Force on the instrument (N): normal + friction."""
    normal_force_n: float

    @property
    def position(self) -> np.ndarray:
        return np.array(self.position_xyz)

    @property
    def force(self) -> np.ndarray:
        return np.array(self.force_xyz)


@dataclass(frozen=True)
class _Grasp:
    ring: int
    constraint: int
    finger_angles: tuple[float, float]
    grip_force_n: float


@dataclass(frozen=True)
class ArmSample:
    """Everything read after one step."""

    q: np.ndarray
    """The 6 arm joints (rad, m)."""
    qd: np.ndarray
    effort: np.ndarray
    jaw_q: tuple[float, float]
    """The two finger angles (rad): opening = a - b."""
    jaw_qd: tuple[float, float]
    jaw_effort: tuple[float, float]
    tip: np.ndarray
    orientation: np.ndarray
    """Tool quaternion (x, y, z, w)."""
    wrench: np.ndarray
    """Contact wrench on the instrument about the tool tip, tool frame (N, N·m)."""
    grip_force_n: float
    n_contacts: int

    @property
    def jaw_rad(self) -> float:
        return self.jaw_q[0] - self.jaw_q[1]

    @property
    def pose(self) -> np.ndarray:
        return np.concatenate([self.tip, self.orientation])


class SimWorld:
    """A PyBullet client with the arm and the scene; see the module docstring."""

    def __init__(
        self,
        gui: bool = False,
        seed: int = 0,
        timestep_s: float = 0.001,
        n_rings: int = 3,
        n_targets: int = 4,
    ) -> None:
        self.gui = gui
        self.seed = seed
        self.timestep_s = timestep_s
        if gui and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            # PyBullet's GUI exits the whole process when it cannot reach an X server
            raise RuntimeError("gui=True needs a display: DISPLAY is not set (run headless)")
        self.client = p.connect(p.GUI if gui else p.DIRECT)
        if self.client < 0:
            raise RuntimeError("could not start PyBullet (GUI needs a display)")
        c = self.client
        try:
            if gui:
                p.configureDebugVisualizer(p.COV_ENABLE_GUI, 0, physicsClientId=c)
                p.resetDebugVisualizerCamera(
                    0.35, 20.0, -35.0, (0.0, 0.0, -0.17), physicsClientId=c
                )
            p.setGravity(0.0, 0.0, -GRAVITY_M_S2, physicsClientId=c)
            p.setPhysicsEngineParameter(
                fixedTimeStep=timestep_s,
                numSubSteps=0,
                numSolverIterations=SOLVER_ITERATIONS,
                physicsClientId=c,
            )
            self.arm: ArmHandles = load_arm(c)
            self.scene: Scene = build_scene(c, seed, n_rings=n_rings, n_targets=n_targets)
        except Exception:
            p.disconnect(c)
            raise
        self._body = self.arm.body
        self._joints = list(self.arm.all_joints)
        self._instrument = set(self.arm.instrument_links)
        self._rings = set(self.scene.rings)
        self._grasp: _Grasp | None = None
        self._jaw_cmd = 0.0
        self._jaw_step = JAW_SPEED_RAD_S * timestep_s
        self._last_contacts: list[Contact] = []
        self._closed = False
        self.steps = 0

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(p.error):
                p.disconnect(self.client)

    # -- control -------------------------------------------------------------------------------
    def reset_arm(self, q: np.ndarray, jaw_rad: float) -> None:
        """Teleport the arm to joints ``q`` and jaw opening (no dynamics), at rest."""
        self.release()
        values = [*q, jaw_rad / 2, -jaw_rad / 2]
        for j, v in zip(self._joints, values, strict=True):
            p.resetJointState(self._body, j, float(v), 0.0, physicsClientId=self.client)
        self._jaw_cmd = float(jaw_rad)
        self.command(np.asarray(q), jaw_rad)

    def command(self, q: np.ndarray, jaw_rad: float) -> None:
        """Position targets for the 6 arm joints and the jaw opening (fingers at ±jaw/2).

        The jaw target moves towards ``jaw_rad`` at ``JAW_SPEED_RAD_S`` at most; while a ring is
        held, the fingers stay where they closed on it.
        """
        if self._grasp is not None:
            a, b = self._grasp.finger_angles
        else:
            d = float(jaw_rad) - self._jaw_cmd
            self._jaw_cmd += max(-self._jaw_step, min(self._jaw_step, d))
            a = 0.5 * self._jaw_cmd
            b = -a
        p.setJointMotorControlArray(
            self._body,
            self._joints,
            p.POSITION_CONTROL,
            targetPositions=[*(float(v) for v in q), a, b],
            targetVelocities=[0.0] * 8,
            forces=[*ARM_FORCES, FINGER_TORQUE_NM, FINGER_TORQUE_NM],
            positionGains=[ARM_POSITION_GAIN] * 6 + [FINGER_POSITION_GAIN] * 2,
            velocityGains=[ARM_VELOCITY_GAIN] * 8,
            physicsClientId=self.client,
        )

    def step(self) -> None:
        p.stepSimulation(physicsClientId=self.client)
        self.steps += 1

    # -- readings ------------------------------------------------------------------------------
    def read(self) -> ArmSample:
        """Joints, tool pose, contact wrench and grip force, now."""
        c = self.client
        states = p.getJointStates(self._body, self._joints, physicsClientId=c)
        q = np.array([s[0] for s in states[:6]])
        qd = np.array([s[1] for s in states[:6]])
        eff = np.array([s[3] for s in states[:6]])
        ls = p.getLinkState(
            self._body, self.arm.tool_link, computeForwardKinematics=True, physicsClientId=c
        )
        tip = np.array(ls[4])
        orn = np.array(ls[5])
        if orn[3] < 0.0:
            orn = -orn
        contacts = self._contacts()
        wrench = np.zeros(6)
        grip = 0.0
        held = self._grasp
        if contacts or held is not None:
            rot = quat_to_matrix(orn)
            tx, ty, tz = ls[4]
            # plain floats: this runs every tick in contact, numpy per contact costs ~10x more
            fx = fy = fz = mx = my = mz = 0.0
            pa = [0.0, 0.0, 0.0]
            pb = [0.0, 0.0, 0.0]
            ja, jb = self.arm.jaw_a_link, self.arm.jaw_b_link
            for ct in contacts:
                cx, cy, cz = ct.force_xyz
                rx, ry, rz = (
                    ct.position_xyz[0] - tx,
                    ct.position_xyz[1] - ty,
                    ct.position_xyz[2] - tz,
                )
                fx += cx
                fy += cy
                fz += cz
                mx += ry * cz - rz * cy
                my += rz * cx - rx * cz
                mz += rx * cy - ry * cx
                if ct.link == ja:
                    pa[0] += cx
                    pa[1] += cy
                    pa[2] += cz
                elif ct.link == jb:
                    pb[0] += cx
                    pb[1] += cy
                    pb[2] += cz
            f = np.array([fx, fy, fz])
            tau = np.array([mx, my, mz])
            if held is not None:
                # the held ring's load on the jaws, through the constraint, at the ring
                load = p.getConstraintState(held.constraint, physicsClientId=c)
                ring_pos = p.getBasePositionAndOrientation(held.ring, physicsClientId=c)[0]
                fl = np.asarray(load[:3])
                f += fl
                tau += np.cross(np.asarray(ring_pos) - tip, fl) + np.asarray(load[3:6])
                grip = held.grip_force_n
            else:
                # each finger's inner face normal is +x (a) / -x (b) of its link frame
                qa, qb = states[6][0], states[7][0]
                xa = rot @ (math.cos(qa), 0.0, -math.sin(qa))
                xb = rot @ (math.cos(qb), 0.0, -math.sin(qb))
                grip = max(0.0, min(-float(np.dot(pa, xa)), float(np.dot(pb, xb))))
            wrench[:3] = rot.T @ f
            wrench[3:] = rot.T @ tau
        return ArmSample(
            q=q,
            qd=qd,
            effort=eff,
            jaw_q=(states[6][0], states[7][0]),
            jaw_qd=(states[6][1], states[7][1]),
            jaw_effort=(states[6][3], states[7][3]),
            tip=tip,
            orientation=orn,
            wrench=wrench,
            grip_force_n=grip,
            n_contacts=len(contacts),
        )

    def _contacts(self) -> list[Contact]:
        """Contacts on the instrument links (force on the instrument, base frame)."""
        out: list[Contact] = []
        body = self._body
        for cp in p.getContactPoints(bodyA=body, physicsClientId=self.client):
            if cp[1] == body:
                link, other, pos, sign = cp[3], cp[2], cp[5], 1.0
            elif cp[2] == body:
                link, other, pos, sign = cp[4], cp[1], cp[6], -1.0
            else:  # pragma: no cover - PyBullet filters by body
                continue
            if link not in self._instrument:
                continue
            # normal on B points from B to A; the friction directions act on A the same way
            nf, n, f1, d1, f2, d2 = cp[9], cp[7], cp[10], cp[11], cp[12], cp[13]
            force = (
                sign * (nf * n[0] + f1 * d1[0] + f2 * d2[0]),
                sign * (nf * n[1] + f1 * d1[1] + f2 * d2[1]),
                sign * (nf * n[2] + f1 * d1[2] + f2 * d2[2]),
            )
            out.append(Contact(link, other, tuple(pos), force, float(nf)))
        self._last_contacts = out
        return out

    @property
    def contacts(self) -> list[Contact]:
        """The instrument contacts of the last :meth:`read`."""
        return self._last_contacts

    # -- grasping --------------------------------------------------------------------------------
    @property
    def grasped_ring(self) -> int | None:
        """The body id of the ring held by a grasp constraint, or None."""
        return None if self._grasp is None else self._grasp.ring

    def update_grasp(
        self, jaw_setpoint_rad: float, jaw_measured_rad: float, grip_force_n: float
    ) -> None:
        """Create or release the grasp constraint (see the module docstring)."""
        if self._grasp is not None:
            if jaw_setpoint_rad >= jaw_measured_rad - RELEASE_RAD:
                self.release()
                self._jaw_cmd = jaw_measured_rad
            return
        if jaw_setpoint_rad >= jaw_measured_rad - SQUEEZE_RAD or grip_force_n < GRASP_MIN_GRIP_N:
            return
        arm = self.arm
        on_a = {
            ct.body
            for ct in self._last_contacts
            if ct.link == arm.jaw_a_link and ct.body in self._rings
        }
        on_b = {
            ct.body
            for ct in self._last_contacts
            if ct.link == arm.jaw_b_link and ct.body in self._rings
        }
        both = sorted(on_a & on_b)
        if both:
            self._attach(both[0])

    def _attach(self, ring: int) -> None:
        c = self.client
        arm = self.arm
        ls = p.getLinkState(
            self._body, arm.jaw_base_link, computeForwardKinematics=True, physicsClientId=c
        )
        parent_pos, parent_orn = ls[0], ls[1]  # the link's centre-of-mass frame
        pivot = np.asarray(ls[4])
        ring_pos, ring_orn = p.getBasePositionAndOrientation(ring, physicsClientId=c)
        inv_pos, inv_orn = p.invertTransform(parent_pos, parent_orn)
        rel_pos, rel_orn = p.multiplyTransforms(inv_pos, inv_orn, ring_pos, ring_orn)
        cid = p.createConstraint(
            self._body,
            arm.jaw_base_link,
            ring,
            -1,
            p.JOINT_FIXED,
            (0.0, 0.0, 0.0),
            rel_pos,
            (0.0, 0.0, 0.0),
            parentFrameOrientation=rel_orn,
            childFrameOrientation=(0.0, 0.0, 0.0, 1.0),
            physicsClientId=c,
        )
        p.changeConstraint(cid, maxForce=GRASP_MAX_FORCE_N, physicsClientId=c)
        levers = [
            float(np.linalg.norm(ct.position - pivot))
            for ct in self._last_contacts
            if ct.body == ring and ct.link in (arm.jaw_a_link, arm.jaw_b_link)
        ]
        lever = max(1e-3, sum(levers) / len(levers)) if levers else 0.008
        for link in arm.instrument_links:
            p.setCollisionFilterPair(self._body, ring, link, -1, 0, physicsClientId=c)
        qa = p.getJointState(self._body, arm.jaw_joints[0], physicsClientId=c)[0]
        qb = p.getJointState(self._body, arm.jaw_joints[1], physicsClientId=c)[0]
        self._grasp = _Grasp(ring, cid, (qa, qb), FINGER_TORQUE_NM / lever)

    def release(self) -> None:
        """Remove the grasp constraint, if any, and give the ring its contacts back."""
        g = self._grasp
        if g is None:
            return
        self._grasp = None
        c = self.client
        p.removeConstraint(g.constraint, physicsClientId=c)
        for link in self.arm.instrument_links:
            p.setCollisionFilterPair(self._body, g.ring, link, -1, 1, physicsClientId=c)

    # -- the scene -------------------------------------------------------------------------------
    def ring_poses(self) -> np.ndarray:
        """(n, 7) ring poses: x, y, z (m), qx, qy, qz, qw."""
        out = np.empty((len(self.scene.rings), 7))
        for i, r in enumerate(self.scene.rings):
            pos, orn = p.getBasePositionAndOrientation(r, physicsClientId=self.client)
            out[i, :3] = pos
            out[i, 3:] = orn
        return out
