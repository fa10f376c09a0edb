"""Clutch (indexing) and motion scaling: the master pose becomes an absolute arm target.

Conventions
-----------
* A **pose** is 7 floats ``(x, y, z, qx, qy, qz, qw)``: a position in metres, then a unit
  quaternion with the **scalar last** (Hamilton product, the order of scipy's
  ``Rotation.from_quat`` and of ROS). A quaternion ``q`` rotates a vector ``v`` as
  ``q v q⁻¹``; ``a ⊗ b`` applies ``b`` first, then ``a``. Orientations are the tool frame's
  rotation relative to the base frame (master poses in the master's base frame, targets in the
  arm's base frame).
* ``R`` = ``ScalingConfig.master_to_arm_xyzw``: the fixed rotation from the master's base frame
  to the arm's base frame; a vector with master coordinates ``v`` has arm coordinates ``R v R⁻¹``
  (its 3×3 matrix: ``R·v``). Identity by default.
* **Engaged** (clutch in), with the anchors ``p_m0, q_m0`` (master pose at engagement) and
  ``p_a0, q_a0`` (arm pose at engagement, as the caller passed it)::

      target position    = clamp(p_a0 + scale · R·(p_m − p_m0))
      target orientation = (R ⊗ q_m ⊗ q_m0⁻¹ ⊗ R⁻¹) ⊗ q_a0        ("relative", the default)
                         = q_a0                                    ("locked")

  ``q_m ⊗ q_m0⁻¹`` is the master's rotation since engagement, expressed in the master's base frame;
  conjugating it by ``R`` expresses the same rotation in the arm's base frame, and it is applied to
  the arm's orientation at engagement (a rotation about base-frame axes, so turning the master
  handle about the master's vertical turns the instrument about the arm's corresponding axis).
  The result depends only on the current master pose and the anchors, never on increments, so it
  does not depend on the loop rate and a dropped sample causes no drift.
* **At engagement** the target is the arm pose as given (quaternion normalised, sign fixed),
  with its position clamped into the workspace box if one is set. A quaternion already unit to
  rounding (|q|² within 2e-15 of 1, such as a previous target's) is not re-divided, so
  re-engaging on the last target reproduces it bit for bit. If the arm is outside the box,
  the first target is therefore the nearest point of the box (and ``clamped`` is True); the
  anchor stays the arm pose as given, so later targets are ``clamp(p_a0 + scale·R·Δp_m)``.
  Otherwise re-engaging never moves the target.
* **Clamping** is absolute: the unclamped target is computed from the anchors and then clamped
  per axis, so moving the master back out of a clamped region does not move the target until the
  unclamped target re-enters the box (no hidden re-anchoring, no path dependence).
* **Released** (clutch out): the target holds. ``update`` returns the held target (the last one);
  before the first engagement (and after ``reset``) it returns ``None``: there is no target yet,
  the caller must command nothing (or hold the arm itself). ``release(master_pose)`` may be given
  the master pose at the release instant, which updates the target to it before holding (``step``
  does so), so the held target does not depend on which sample came before the release.
* Input quaternions are normalised (NaN/inf anywhere, or a quaternion of norm ≤ 1e-12, raise
  ``ValueError`` naming the argument); output quaternions are unit with ``qw ≥ 0`` (when
  ``qw == 0``, the first non-zero of ``qx, qy, qz`` is positive).

The per-sample math is in two numba kernels, :func:`engage_kernel` and :func:`update_kernel`,
which work on one explicit state array (configuration and anchors, layout below) and write a
preallocated output; :class:`MotionScaler` validates input and calls them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from filters._jit import NUMBA_ENABLED, jit, pick

__all__ = ["MotionScaler", "ScalingConfig", "engage_kernel", "make_state", "update_kernel"]

if NUMBA_ENABLED:
    from numba.extending import register_jitable as _inline
else:

    def _inline(fn):  # type: ignore[no-untyped-def]
        return fn


# ---------------------------------------------------------------------------------------------
# State layout (one float64 array): configuration first, then the anchors set by engage_kernel.
S_MAT = 0  # 9: scale · R as a row-major 3×3 matrix
R_QUAT = 9  # 4: R (x, y, z, w), unit
BOX_LO = 13  # 3: workspace box, lower corner (m)
BOX_HI = 16  # 3: upper corner (m)
HAS_BOX = 19  # 1: 1.0 when the box is set
LOCKED = 20  # 1: 1.0 for orientation="locked"
M_POS0 = 21  # 3: master position at engagement
A_POS0 = 24  # 3: arm position at engagement (as given, unclamped)
A_QUAT0 = 27  # 4: arm orientation at engagement (unit, w >= 0)
Q_RIGHT = 31  # 4: q_m0⁻¹ ⊗ R⁻¹ ⊗ q_a0, so that the target orientation is R ⊗ q_m ⊗ Q_RIGHT
STATE_SIZE = 35

# Kernel return codes: >= 0 is success (1: the position was clamped into the box).
ERR_MASTER_NONFINITE = -1
ERR_MASTER_ZERO_QUAT = -2
ERR_ARM_NONFINITE = -3
ERR_ARM_ZERO_QUAT = -4

MIN_QUAT_NORM = 1e-12
UNIT_TOL = 2e-15  # |q|² this close to 1 counts as unit already (about 9 ulps)
_MIN_N2 = MIN_QUAT_NORM * MIN_QUAT_NORM


@_inline
def _qmul(ax, ay, az, aw, bx, by, bz, bw):  # type: ignore[no-untyped-def]
    """Hamilton product a ⊗ b (scalar last)."""
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by + ay * bw + az * bx - ax * bz,
        aw * bz + az * bw + ax * by - ay * bx,
        aw * bw - ax * bx - ay * by - az * bz,
    )


@_inline
def _canon(x, y, z, w):  # type: ignore[no-untyped-def]
    """``q / |q|`` with the sign that makes w >= 0 (ties: the first non-zero of x, y, z > 0).

    A quaternion already unit to rounding (|q|² within UNIT_TOL of 1, e.g. a previous target)
    is not divided, so feeding a target back as the arm pose reproduces it bit for bit.
    """
    n2 = x * x + y * y + z * z + w * w
    if abs(n2 - 1.0) > UNIT_TOL:
        n = math.sqrt(n2)
        x /= n
        y /= n
        z /= n
        w /= n
    if w < 0.0 or (w == 0.0 and (x < 0.0 or (x == 0.0 and (y < 0.0 or (y == 0.0 and z < 0.0))))):
        return -x, -y, -z, -w
    return x, y, z, w


@_inline
def _check_pose(p, err_nonfinite, err_zero):  # type: ignore[no-untyped-def]
    """0 when pose ``p`` is finite and its quaternion is not zero, else the matching error code."""
    for i in range(7):
        if not math.isfinite(p[i]):
            return err_nonfinite
    if not (p[3] * p[3] + p[4] * p[4] + p[5] * p[5] + p[6] * p[6] > _MIN_N2):
        return err_zero
    return 0


@_inline
def _write_position(state, px, py, pz, out):  # type: ignore[no-untyped-def]
    """out[0:3] = the position clamped into the box (if any); returns 1 when it clamped."""
    clamped = 0
    if state[HAS_BOX] != 0.0:
        lo = state[BOX_LO : BOX_LO + 3]
        hi = state[BOX_HI : BOX_HI + 3]
        if px < lo[0]:
            px, clamped = lo[0], 1
        elif px > hi[0]:
            px, clamped = hi[0], 1
        if py < lo[1]:
            py, clamped = lo[1], 1
        elif py > hi[1]:
            py, clamped = hi[1], 1
        if pz < lo[2]:
            pz, clamped = lo[2], 1
        elif pz > hi[2]:
            pz, clamped = hi[2], 1
    out[0] = px
    out[1] = py
    out[2] = pz
    return clamped


@jit
def engage_kernel(master, arm, state, out):  # type: ignore[no-untyped-def]
    """Record the anchors (clutch in) and write the target at engagement into ``out`` (7,).

    ``master`` and ``arm`` are (7,) poses; ``state`` is the (STATE_SIZE,) array from
    :func:`make_state`. Returns 1 if the target was clamped, 0 if not, or a negative error code
    (then neither ``state`` nor ``out`` is touched).
    """
    code = _check_pose(master, ERR_MASTER_NONFINITE, ERR_MASTER_ZERO_QUAT)
    if code != 0:
        return code
    code = _check_pose(arm, ERR_ARM_NONFINITE, ERR_ARM_ZERO_QUAT)
    if code != 0:
        return code
    mx, my, mz, mw = _canon(master[3], master[4], master[5], master[6])
    ax, ay, az, aw = _canon(arm[3], arm[4], arm[5], arm[6])
    rx = state[R_QUAT]
    ry = state[R_QUAT + 1]
    rz = state[R_QUAT + 2]
    rw = state[R_QUAT + 3]
    # Q_RIGHT = q_m0⁻¹ ⊗ R⁻¹ ⊗ q_a0 (unit quaternions: the inverse is the conjugate)
    tx, ty, tz, tw = _qmul(-mx, -my, -mz, mw, -rx, -ry, -rz, rw)
    qx, qy, qz, qw = _qmul(tx, ty, tz, tw, ax, ay, az, aw)
    for i in range(3):
        state[M_POS0 + i] = master[i]
        state[A_POS0 + i] = arm[i]
    state[A_QUAT0] = ax
    state[A_QUAT0 + 1] = ay
    state[A_QUAT0 + 2] = az
    state[A_QUAT0 + 3] = aw
    state[Q_RIGHT] = qx
    state[Q_RIGHT + 1] = qy
    state[Q_RIGHT + 2] = qz
    state[Q_RIGHT + 3] = qw
    out[3] = ax
    out[4] = ay
    out[5] = az
    out[6] = aw
    return _write_position(state, arm[0], arm[1], arm[2], out)


@jit
def update_kernel(master, state, out):  # type: ignore[no-untyped-def]
    """Write the target for master pose ``master`` (7,) into ``out`` (7,) while engaged.

    Returns 1 if the target was clamped, 0 if not, or a negative error code (then ``out`` is
    not touched).
    """
    code = _check_pose(master, ERR_MASTER_NONFINITE, ERR_MASTER_ZERO_QUAT)
    if code != 0:
        return code
    dx = master[0] - state[M_POS0]
    dy = master[1] - state[M_POS0 + 1]
    dz = master[2] - state[M_POS0 + 2]
    s = state[S_MAT : S_MAT + 9]
    px = state[A_POS0] + (s[0] * dx + s[1] * dy + s[2] * dz)
    py = state[A_POS0 + 1] + (s[3] * dx + s[4] * dy + s[5] * dz)
    pz = state[A_POS0 + 2] + (s[6] * dx + s[7] * dy + s[8] * dz)
    if state[LOCKED] != 0.0:
        ox = state[A_QUAT0]
        oy = state[A_QUAT0 + 1]
        oz = state[A_QUAT0 + 2]
        ow = state[A_QUAT0 + 3]
    else:
        mx, my, mz, mw = _canon(master[3], master[4], master[5], master[6])
        tx, ty, tz, tw = _qmul(
            state[R_QUAT], state[R_QUAT + 1], state[R_QUAT + 2], state[R_QUAT + 3], mx, my, mz, mw
        )
        ox, oy, oz, ow = _qmul(
            tx,
            ty,
            tz,
            tw,
            state[Q_RIGHT],
            state[Q_RIGHT + 1],
            state[Q_RIGHT + 2],
            state[Q_RIGHT + 3],
        )
        ox, oy, oz, ow = _canon(ox, oy, oz, ow)
    out[3] = ox
    out[4] = oy
    out[5] = oz
    out[6] = ow
    return _write_position(state, px, py, pz, out)


# ---------------------------------------------------------------------------------------------
def _float_tuple(value: Any, n: int, name: str) -> tuple[float, ...]:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {n} numbers, got {value!r}") from None
    if a.shape != (n,):
        raise ValueError(f"{name} must be {n} numbers, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds a number that is not finite: {value!r}")
    return tuple(float(v) for v in a)


@dataclass(frozen=True)
class ScalingConfig:
    """How master motion maps to arm motion (see the module docstring for the exact formulas).

    ``scale``: arm translation per unit of master translation (dimensionless, > 0; 0.2 = 5:1).
    ``master_to_arm_xyzw``: fixed rotation from the master's base frame to the arm's base frame
    (normalised when used). ``orientation``: ``"relative"`` (follows the master 1:1 since
    engagement) or ``"locked"`` (held at the arm's orientation at engagement, for 3-DoF devices).
    ``workspace_min_m`` / ``workspace_max_m``: optional box (arm frame, metres) the target position
    is clamped into; both or neither. Sequences are stored as tuples of floats.
    """

    scale: float = 0.2
    master_to_arm_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    orientation: str = "relative"
    workspace_min_m: tuple[float, float, float] | None = None
    workspace_max_m: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        try:
            scale = float(self.scale)
        except (TypeError, ValueError):
            raise ValueError(f"scale must be a number, got {self.scale!r}") from None
        if not (math.isfinite(scale) and scale > 0.0):
            raise ValueError(f"scale must be a finite number > 0, got {self.scale!r}")
        object.__setattr__(self, "scale", scale)
        q = _float_tuple(self.master_to_arm_xyzw, 4, "master_to_arm_xyzw")
        if not math.sqrt(sum(v * v for v in q)) > MIN_QUAT_NORM:
            raise ValueError(
                f"master_to_arm_xyzw is a zero quaternion: {self.master_to_arm_xyzw!r}"
            )
        object.__setattr__(self, "master_to_arm_xyzw", q)
        if self.orientation not in ("relative", "locked"):
            raise ValueError(
                f"orientation must be 'relative' or 'locked', got {self.orientation!r}"
            )
        lo_given = self.workspace_min_m is not None
        hi_given = self.workspace_max_m is not None
        if lo_given != hi_given:
            raise ValueError(
                "workspace_min_m and workspace_max_m must be given together (both or neither)"
            )
        if lo_given:
            lo = _float_tuple(self.workspace_min_m, 3, "workspace_min_m")
            hi = _float_tuple(self.workspace_max_m, 3, "workspace_max_m")
            for axis, a, b in zip("xyz", lo, hi, strict=True):
                if not a < b:
                    raise ValueError(
                        f"workspace_min_m must be < workspace_max_m on every axis; "
                        f"on {axis}: min {a!r} >= max {b!r}"
                    )
            object.__setattr__(self, "workspace_min_m", lo)
            object.__setattr__(self, "workspace_max_m", hi)

    @property
    def has_box(self) -> bool:
        return self.workspace_min_m is not None


def make_state(config: ScalingConfig) -> np.ndarray:
    """A fresh kernel state array for ``config`` (anchors zero until :func:`engage_kernel`)."""
    state = np.zeros(STATE_SIZE)
    x, y, z, w = config.master_to_arm_xyzw
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    rot = np.array(
        [
            [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w)],
            [2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w)],
            [2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y)],
        ]
    )
    state[S_MAT : S_MAT + 9] = (config.scale * rot).ravel()
    state[R_QUAT : R_QUAT + 4] = (x, y, z, w)
    if config.has_box:
        state[BOX_LO : BOX_LO + 3] = config.workspace_min_m
        state[BOX_HI : BOX_HI + 3] = config.workspace_max_m
        state[HAS_BOX] = 1.0
    state[LOCKED] = 1.0 if config.orientation == "locked" else 0.0
    return state


_F64 = np.dtype(np.float64)


def _as_pose(x: Any, name: str) -> np.ndarray:
    """A contiguous float64 (7,) array (finiteness is checked by the kernels, for speed)."""
    if type(x) is np.ndarray and x.dtype == _F64 and x.shape == (7,) and x.flags.c_contiguous:
        return x
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pose of 7 numbers (x, y, z, qx, qy, qz, qw), got {x!r}"
        ) from None
    if a.shape != (7,):
        raise ValueError(
            f"{name} must be a pose of 7 numbers (x, y, z, qx, qy, qz, qw), got shape {a.shape}"
        )
    return a


def _pose_error(code: int, pose: np.ndarray, name: str) -> ValueError:
    if code in (ERR_MASTER_NONFINITE, ERR_ARM_NONFINITE):
        return ValueError(f"{name} holds a number that is not finite: {pose}")
    return ValueError(
        f"{name} has a zero quaternion (norm <= {MIN_QUAT_NORM:g}) that cannot be normalised: "
        f"{pose}"
    )


def _check_pose_py(pose: np.ndarray, name: str) -> None:
    if not np.isfinite(pose).all():
        raise _pose_error(ERR_MASTER_NONFINITE, pose, name)
    if not float(pose[3:] @ pose[3:]) > _MIN_N2:
        raise _pose_error(ERR_MASTER_ZERO_QUAT, pose, name)


class MotionScaler:
    """Clutch + motion scaling: maps master poses to absolute arm target poses.

    ``engage(master, arm)`` (clutch in) anchors both poses and returns the arm pose (clamped into
    the box if set); ``update(master)`` returns the target for the current master pose while
    engaged, the held target while released, and ``None`` before the first engagement;
    ``release(master=None)`` (clutch out) holds the target; ``step`` does all three from a clutch
    signal. Every returned pose is a new (7,) array. See the module docstring for the formulas.
    """

    def __init__(self, config: ScalingConfig | None = None, use_numba: bool | None = None) -> None:
        self.config = ScalingConfig() if config is None else config
        if not isinstance(self.config, ScalingConfig):
            raise ValueError(f"config must be a ScalingConfig, got {type(config).__name__}")
        self.use_numba = use_numba
        self._engage_k = pick(engage_kernel, use_numba)
        self._update_k = pick(update_kernel, use_numba)
        self._state = make_state(self.config)
        self._target = np.zeros(7)  # the last target (valid when _has_target)
        self._has_target = False
        self._engaged = False
        self._clamped = False

    # -- state ------------------------------------------------------------------------------
    @property
    def engaged(self) -> bool:
        """Whether the clutch is engaged (the target follows the master)."""
        return self._engaged

    @property
    def clamped(self) -> bool:
        """Whether the last target's position was clamped into the workspace box."""
        return self._clamped

    @property
    def target(self) -> np.ndarray | None:
        """A copy of the last target (the held one while released), or None before any."""
        return self._target.copy() if self._has_target else None

    def reset(self) -> None:
        """Back to the initial state: released, no target (``update`` returns None)."""
        self._state = make_state(self.config)
        self._target[:] = 0.0
        self._has_target = False
        self._engaged = False
        self._clamped = False

    def warm_up(self) -> None:
        """Run every path once (engage, follow, release, idle) with read-only and writable
        inputs, so no kernel compiles inside a real-time loop, then :meth:`reset`."""
        pose = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
        frozen = pose.copy()
        frozen.setflags(write=False)
        for p in (pose, frozen):
            for engaged in (True, True, False, False):
                self.step(p, engaged, p)
        self.reset()

    # -- clutch -----------------------------------------------------------------------------
    def engage(self, master_pose: Any, arm_pose: Any) -> np.ndarray:
        """Clutch in: anchor the master pose and the arm pose (the arm's measured or last
        commanded pose). Returns the target now: the arm pose, its quaternion normalised with
        w >= 0 and its position clamped into the box if one is set. Engaging while engaged
        re-anchors."""
        m = _as_pose(master_pose, "master_pose")
        a = _as_pose(arm_pose, "arm_pose")
        code = self._engage_k(m, a, self._state, self._target)
        if code < 0:
            if code in (ERR_MASTER_NONFINITE, ERR_MASTER_ZERO_QUAT):
                raise _pose_error(code, m, "master_pose")
            raise _pose_error(code, a, "arm_pose")
        self._clamped = code == 1
        self._has_target = True
        self._engaged = True
        return self._target.copy()

    def release(self, master_pose: Any = None) -> None:
        """Clutch out: the target holds. With ``master_pose`` (the master at the release instant)
        the target is first updated to it, so the held target does not depend on the sample
        before. No effect when already released."""
        if self._engaged and master_pose is not None:
            self.update(master_pose)
        self._engaged = False

    def update(self, master_pose: Any) -> np.ndarray | None:
        """The target (7,) for ``master_pose`` while engaged; the held target while released;
        None before the first engagement. ``master_pose`` is validated in every case."""
        m = _as_pose(master_pose, "master_pose")
        if self._engaged:
            code = self._update_k(m, self._state, self._target)
            if code < 0:
                raise _pose_error(code, m, "master_pose")
            self._clamped = code == 1
            return self._target.copy()
        _check_pose_py(m, "master_pose")
        return self._target.copy() if self._has_target else None

    def step(self, master_pose: Any, clutch_engaged: bool, arm_pose: Any) -> np.ndarray | None:
        """One console tick: engage on a rising edge of ``clutch_engaged`` (anchoring on
        ``arm_pose``; ``None`` there means the last target, which assumes the arm tracked it),
        release on a falling edge (at this ``master_pose``), then return the target as
        :meth:`update` does. ``arm_pose`` is read only on a rising edge. The master motion that
        counts is from the sample where the clutch is first seen in to the sample where it is
        first seen out, so with the clutch edges at the same instants every loop rate gives the
        same targets at the instants it shares with the others."""
        if clutch_engaged:
            if self._engaged:
                return self.update(master_pose)
            if arm_pose is None:
                if not self._has_target:
                    raise ValueError("arm_pose is required at the first engagement")
                arm_pose = self._target.copy()
            return self.engage(master_pose, arm_pose)
        if self._engaged:
            self.release(master_pose)
            return self._target.copy()
        return self.update(master_pose)

    def __repr__(self) -> str:
        c = self.config
        box = f", box={c.workspace_min_m}..{c.workspace_max_m}" if c.has_box else ""
        return (
            f"MotionScaler(scale={c.scale:g}, master_to_arm_xyzw={c.master_to_arm_xyzw}, "
            f"orientation={c.orientation!r}{box}, engaged={self._engaged})"
        )
