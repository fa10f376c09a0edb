"""Forward and inverse kinematics of the RCM instrument arm (``assets/rcm_arm.urdf``), analytic.

The chain (every joint frame aligned with the base frame at zero joints, the RCM at the origin)::

    T = Ry(yaw) · Rx(pitch) · Tz(OFFSET - insertion) · Rz(roll) · Rx(wrist_pitch)
        · Tz(-WRIST) · Ry(wrist_yaw) · Tz(-JAW)

with ``OFFSET = WRIST + JAW`` (insertion is the distance from the RCM to the jaw tips with a
straight wrist). The tool frame is at the jaw tips; the jaws point along its -z axis; identity
orientation = instrument straight down.

The outer yaw axis is horizontal (the base y axis) and the outer pitch axis (x, carried by yaw)
is perpendicular to it, both through the RCM, as on the da Vinci PSM. The shaft direction (into
the patient) is ``s = Ry(yaw)·Rx(pitch)·(0, 0, -1) = (-cos p·sin y, sin p, -cos p·cos y)``, so
``pitch = asin(s_y)`` and ``yaw = atan2(-s_x, -s_z)``. The pair is singular only with the shaft
along ±y (horizontal, pitch = ±π/2), outside the joint limits and far from the workspace below
the RCM: straight down (the middle of the workspace) is the regular point yaw = pitch = 0.

Inverse kinematics (:func:`ik`), exact and closed form:

1. The jaw pivot (the wrist-yaw axis point) is ``Y = p + JAW · z_tool``; the wrist-yaw axis is
   ``y_tool``.
2. The wrist link, the shaft and the RCM all lie in the plane through the RCM and ``Y`` that
   contains the wrist-yaw axis (the wrist-pitch axis is that plane's normal). In that plane the
   wrist link is perpendicular to the wrist-yaw axis, which gives the wrist-pitch point ``W``.
3. The shaft is the line RCM–``W``: yaw and pitch from its direction, insertion from ``|W|``.
   Of the two (yaw, pitch) branches (``(yaw, pitch)`` and ``(yaw + π, π - pitch)``) and the
   2π-equivalents, the one within the limits nearest the previous solution wins (continuity;
   within the limits only the first branch exists, so the choice is unique in practice).
4. Roll, wrist pitch, wrist yaw: ``Rz(roll)·Rx(wp)·Ry(wy) = R_shaftᵀ · R_tool`` with
   ``R_shaft = Ry(yaw)·Rx(pitch)`` (Euler decomposition); roll takes the 2π-equivalent nearest
   the previous roll within its limits.

Joints beyond their limits are clamped and reported. Position comes first: when the exact
solution needs a joint beyond its limits, the wrist joints are clamped and yaw, pitch and
insertion solved again for them (closed form), iterating a few times, so the tip still reaches
the target when it can and the tool turns as near the asked orientation as the limits allow
(unless that costs more than ``ORIENTATION_WEIGHT_M_PER_RAD`` of position per radian turned:
then the plainly clamped solution is kept). The pose returned is always the one the joints
actually reach (forward kinematics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WRIST_M = 0.010
"""Wrist pitch axis to wrist yaw axis (the jaw pivot)."""
JAW_M = 0.010
"""Jaw pivot to the jaw tips (the tool frame origin)."""
OFFSET_M = WRIST_M + JAW_M
"""At insertion 0 with a straight wrist, the jaw tips are at the RCM."""

JOINT_NAMES: tuple[str, ...] = (
    "outer_yaw",
    "outer_pitch",
    "insertion",
    "tool_roll",
    "wrist_pitch",
    "wrist_yaw",
)
"""The six arm joints, in chain order (the jaw is the seventh joint of the driver)."""
JOINT_TYPES: tuple[str, ...] = (
    "revolute",
    "revolute",
    "prismatic",
    "revolute",
    "revolute",
    "revolute",
)
JOINT_LOWER = np.array([-1.45, -1.45, 0.0, -4.5, -1.4, -1.4])
"""Lower joint limits (rad; insertion in m), as in the URDF."""
JOINT_UPPER = np.array([1.45, 1.45, 0.26, 4.5, 1.4, 1.4])
"""Upper joint limits (rad; insertion in m), as in the URDF."""

ORIENTATION_WEIGHT_M_PER_RAD = 0.005
"""When a pose is out of reach: 1 rad of orientation error weighs as much as 5 mm of position."""

_TWO_PI = 2.0 * math.pi
_EPS = 1e-9


# ---------------------------------------------------------------------------------------------
# Rotations
# ---------------------------------------------------------------------------------------------
def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _outer(yaw: float, pitch: float) -> np.ndarray:
    """The shaft frame's rotation (before roll): ``Ry(yaw) · Rx(pitch)``."""
    return _ry(yaw) @ _rx(pitch)


def shaft_yaw_pitch(s: np.ndarray, prev_yaw: float = 0.0) -> tuple[float, float]:
    """Yaw and pitch (rad) of a unit shaft direction ``s`` (pointing into the patient).

    ``s = (-cos p·sin y, sin p, -cos p·cos y)``: ``pitch = asin(s_y)`` in [-π/2, π/2] and
    ``yaw = atan2(-s_x, -s_z)``; at the singularity (shaft along ±y) yaw keeps ``prev_yaw``.
    """
    pitch = math.asin(_clamp(float(s[1]), -1.0, 1.0))
    if math.hypot(float(s[0]), float(s[2])) > 1e-12:
        yaw = math.atan2(-float(s[0]), -float(s[2]))
    else:
        yaw = float(prev_yaw)
    return yaw, pitch


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """The rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """The unit quaternion (x, y, z, w, with w >= 0) of a rotation matrix."""
    t = m[0, 0] + m[1, 1] + m[2, 2]
    if t > 0.0:
        s = 2.0 * math.sqrt(t + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    a = np.array(q)
    a /= math.sqrt(float(a @ a))
    return -a if a[3] < 0.0 else a


def quat_angle_rad(q0: np.ndarray, q1: np.ndarray) -> float:
    """The rotation angle (rad, in [0, π]) between two unit quaternions (x, y, z, w)."""
    x0, y0, z0, w0 = (float(v) for v in q0)
    x1, y1, z1, w1 = (float(v) for v in q1)
    # the relative rotation conj(q0) * q1; atan2 keeps small angles accurate (acos does not)
    w = w0 * w1 + x0 * x1 + y0 * y1 + z0 * z1
    x = w0 * x1 - x0 * w1 - y0 * z1 + z0 * y1
    y = w0 * y1 + x0 * z1 - y0 * w1 - z0 * x1
    z = w0 * z1 - x0 * y1 + y0 * x1 - z0 * w1
    return 2.0 * math.atan2(math.sqrt(x * x + y * y + z * z), abs(w))


# ---------------------------------------------------------------------------------------------
# Forward kinematics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frames:
    """Forward kinematics of one joint vector: the tool pose and the chain's key points (m)."""

    tip: np.ndarray
    """Tool tip position (the jaw tips)."""
    rotation: np.ndarray
    """Tool rotation matrix (base frame)."""
    shaft_dir: np.ndarray
    """Unit vector along the shaft, pointing into the patient."""
    wrist: np.ndarray
    """The wrist pitch point (the shaft's end)."""
    pivot: np.ndarray
    """The jaw pivot (the wrist yaw axis point)."""

    @property
    def pose(self) -> np.ndarray:
        """The tool pose: x, y, z (m), qx, qy, qz, qw."""
        return np.concatenate([self.tip, matrix_to_quat(self.rotation)])


def fk(q: np.ndarray) -> Frames:
    """Forward kinematics of the six arm joints (yaw, pitch, insertion, roll, wp, wy)."""
    r12 = _outer(q[0], q[1])
    shaft_dir = -r12[:, 2]
    wrist = (q[2] - OFFSET_M) * shaft_dir
    r5 = r12 @ _rz(q[3]) @ _rx(q[4])
    pivot = wrist - WRIST_M * r5[:, 2]
    r6 = r5 @ _ry(q[5])
    tip = pivot - JAW_M * r6[:, 2]
    return Frames(tip, r6, shaft_dir, wrist, pivot)


def fk_pose(q: np.ndarray) -> np.ndarray:
    """The tool pose (x, y, z m; qx, qy, qz, qw) of the six arm joints."""
    return fk(q).pose


def shaft_distance_from_rcm(q: np.ndarray) -> float:
    """How far the shaft line passes from the RCM (m): 0 by construction of the chain."""
    f = fk(q)
    v = f.wrist
    return float(np.linalg.norm(v - (v @ f.shaft_dir) * f.shaft_dir))


# ---------------------------------------------------------------------------------------------
# Inverse kinematics
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IkResult:
    """An IK solution: the joints, the pose they reach, and what had to give way."""

    q: np.ndarray
    """Yaw, pitch (rad), insertion (m), roll, wrist pitch, wrist yaw (rad), within the limits."""
    pose: np.ndarray
    """The tool pose the joints reach (x, y, z m; qx, qy, qz, qw): the applied pose."""
    clamped: tuple[str, ...]
    """Names of the joints that were clamped to a limit (empty when the target is reached)."""
    position_error_m: float
    """Distance from the asked position to the reached one."""
    orientation_error_rad: float
    """Rotation from the asked orientation to the reached one."""

    @property
    def exact(self) -> bool:
        """True when no joint was clamped (the target is reached)."""
        return not self.clamped


def _nearest_equivalent(a: float, ref: float, lo: float, hi: float) -> float | None:
    """The angle a + 2πk nearest ``ref`` within [lo, hi], or None when there is none."""
    best = None
    k0 = round((ref - a) / _TWO_PI)
    for k in (k0 - 1, k0, k0 + 1):
        c = a + k * _TWO_PI
        if lo - _EPS <= c <= hi + _EPS and (best is None or abs(c - ref) < abs(best - ref)):
            best = c
    return best


def _clamp(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def _yaw_pitch_candidates(yaw: float, pitch: float) -> list[tuple[float, float]]:
    """(yaw, pitch) and its mirror (yaw + π, π - pitch): the same shaft direction."""
    return [(yaw, pitch), (yaw + math.pi, math.remainder(math.pi - pitch, _TWO_PI))]


def _choose_yaw_pitch(
    cands: list[tuple[float, float]], prev: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[float, float, tuple[str, ...]]:
    """The candidate within limits nearest ``prev`` (2π-equivalent yaws allowed).

    Returns (yaw, pitch, clamped joint names); when no candidate is within the limits, the one
    that needs the least clamping, clamped.
    """
    best: tuple[float, float] | None = None
    best_cost = math.inf
    for y0, pch in cands:
        if not lo[1] - _EPS <= pch <= hi[1] + _EPS:
            continue
        y = _nearest_equivalent(y0, prev[0], lo[0], hi[0])
        if y is None:
            continue
        cost = (y - prev[0]) ** 2 + (pch - prev[1]) ** 2
        if cost < best_cost:
            best, best_cost = (y, _clamp(pch, lo[1], hi[1])), cost
    if best is not None:
        return best[0], best[1], ()
    fallback = (0.0, 0.0)
    fallback_cost = math.inf
    names: tuple[str, ...] = ()
    for y0, pch in cands:
        y = y0 + round((prev[0] - y0) / _TWO_PI) * _TWO_PI
        yc, pc = _clamp(y, lo[0], hi[0]), _clamp(pch, lo[1], hi[1])
        cost = (yc - y) ** 2 + (pc - pch) ** 2
        if cost < fallback_cost:
            fallback, fallback_cost = (yc, pc), cost
            names = tuple(
                name for name, a, b in (("outer_yaw", y, yc), ("outer_pitch", pch, pc)) if a != b
            )
    return fallback[0], fallback[1], names


def _resolve_position(
    p: np.ndarray, q: np.ndarray, prev: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[float, float, float] | None:
    """Yaw, pitch, insertion that put the tip at ``p`` for fixed roll and wrist joints ``q[3:]``.

    Solves ``Ry(yaw)·Rx(pitch)·c = p`` with ``c = (0, 0, OFFSET - insertion) + v``; None when no
    solution lies within the limits. Ry leaves y alone, so ``(Rx(pitch)·c)_y = p_y`` gives the
    pitch (two roots), then yaw turns ``Rx(pitch)·c`` about y onto ``p`` in the x-z plane.
    """
    v = _rz(q[3]) @ _rx(q[4]) @ (np.array([0.0, 0.0, -WRIST_M]) + _ry(q[5]) @ [0.0, 0.0, -JAW_M])
    pp = float(p @ p)
    lateral = v[0] * v[0] + v[1] * v[1]
    if pp < lateral:
        return None
    ins = OFFSET_M + v[2] + math.sqrt(pp - lateral)
    if not lo[2] - _EPS <= ins <= hi[2] + _EPS:
        return None
    c = np.array([v[0], v[1], OFFSET_M - ins + v[2]])
    # (Rx(pitch)·c)_y = cos(pitch)·c_y - sin(pitch)·c_z = r·cos(pitch + alpha) = p_y
    r = math.hypot(c[1], c[2])
    if r < _EPS or abs(p[1]) > r:
        return None
    alpha = math.atan2(c[2], c[1])
    beta = math.acos(_clamp(p[1] / r, -1.0, 1.0))
    best: tuple[float, float, float] | None = None
    best_cost = math.inf
    for pitch in (beta - alpha, -beta - alpha):
        pitch = math.remainder(pitch, _TWO_PI)
        if not lo[1] - _EPS <= pitch <= hi[1] + _EPS:
            continue
        cp, sp = math.cos(pitch), math.sin(pitch)
        x1, z1 = c[0], sp * c[1] + cp * c[2]
        # Ry(yaw) turns (z, x) by yaw: (z' + i x') = e^(i yaw)·(z1 + i x1)
        yaw0 = math.atan2(p[0], p[2]) - math.atan2(x1, z1)
        yaw = _nearest_equivalent(yaw0, prev[0], lo[0], hi[0])
        if yaw is None:
            continue
        cost = (yaw - prev[0]) ** 2 + (pitch - prev[1]) ** 2
        if cost < best_cost:
            best, best_cost = (yaw, pitch, _clamp(ins, lo[2], hi[2])), cost
    return best


def _wrist(
    yaw: float, pitch: float, rt: np.ndarray, prev_roll: float, lo: np.ndarray, hi: np.ndarray
) -> tuple[float, float, float]:
    """Roll, wrist pitch, wrist yaw with ``Rz(roll)·Rx(wp)·Ry(wy) = (Ry(yaw)·Rx(pitch))ᵀ·R_tool``.

    The roll is the 2π-equivalent nearest ``prev_roll`` within its limits; wp, wy in (-π/2, π/2].
    """
    m = _outer(yaw, pitch).T @ rt
    wp = math.asin(_clamp(float(m[2, 1]), -1.0, 1.0))
    roll0 = math.atan2(-m[0, 1], m[1, 1])
    wy = math.atan2(-m[2, 0], m[2, 2])
    roll = _nearest_equivalent(roll0, prev_roll, lo[3], hi[3])
    if roll is None:  # only when the roll range is narrower than 2π
        roll = roll0 + round((prev_roll - roll0) / _TWO_PI) * _TWO_PI
    return roll, wp, wy


def _position_first(
    p: np.ndarray,
    rt: np.ndarray,
    q_exact: np.ndarray,
    prev: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """Joints within limits that reach ``p`` (if any do) with the tool turned as near ``rt``.

    Fixed-point iteration: wrist joints for the orientation given the shaft (clamped), then yaw,
    pitch, insertion for the position given the wrist, a few times; started from the clamped
    exact solution and from a straight tool pointing at ``p``. Of those and the plainly clamped
    exact solution, the one with the least ``position error + ORIENTATION_WEIGHT_M_PER_RAD x
    orientation error`` wins: position first, but not at the price of turning the tool round.
    """
    clipped = np.clip(q_exact, lo, hi)
    candidates = [clipped]
    starts = [clipped]
    dist = math.sqrt(float(p @ p))
    if dist > 1e-9:
        yaw0, pitch0 = shaft_yaw_pitch(p / dist, float(prev[0]))
        yaw, pitch, _ = _choose_yaw_pitch(_yaw_pitch_candidates(yaw0, pitch0), prev, lo, hi)
        starts.append(np.array([yaw, pitch, _clamp(dist, lo[2], hi[2]), prev[3], 0.0, 0.0]))
    for start in starts:
        q = start.copy()
        for _ in range(6):
            q[3:] = _wrist(q[0], q[1], rt, float(q[3]), lo, hi)
            q[3:] = np.clip(q[3:], lo[3:], hi[3:])
            sol = _resolve_position(p, q, q, lo, hi)
            if sol is None:
                break
            q[0], q[1], q[2] = sol
        candidates.append(np.clip(q, lo, hi))
    q_target = matrix_to_quat(rt)
    best = clipped
    best_cost = math.inf
    for q in candidates:
        f = fk(q)
        cost = float(np.linalg.norm(f.tip - p)) + ORIENTATION_WEIGHT_M_PER_RAD * quat_angle_rad(
            matrix_to_quat(f.rotation), q_target
        )
        if cost < best_cost:
            best, best_cost = q, cost
    return best


def ik(
    pose: np.ndarray,
    prev: np.ndarray,
    lower: np.ndarray = JOINT_LOWER,
    upper: np.ndarray = JOINT_UPPER,
) -> IkResult:
    """Joints for a tool pose (x, y, z m; qx, qy, qz, qw), seeded by the previous joints ``prev``.

    Closed form (see the module docstring); limits respected (clamped and reported).
    """
    p = np.asarray(pose[:3], dtype=np.float64)
    q_in = np.asarray(pose[3:], dtype=np.float64)
    q_in = q_in / math.sqrt(float(q_in @ q_in))
    rt = quat_to_matrix(q_in)
    prev = np.asarray(prev, dtype=np.float64)
    z_t = rt[:, 2]
    a_y = rt[:, 1]
    pivot = p + JAW_M * z_t
    prev_frames: Frames | None = None

    # the plane of the shaft, the wrist link and the RCM: normal n (the wrist pitch axis)
    n = np.cross(a_y, pivot)
    nn = math.sqrt(float(n @ n))
    if nn < 1e-7:  # the wrist yaw axis points at the RCM: keep the previous wrist pitch axis
        prev_frames = fk(prev)
        n = prev_frames.rotation @ _ry(-prev[5]) @ [1.0, 0.0, 0.0]
        n = n - (n @ a_y) * a_y
        nn = math.sqrt(float(n @ n))
    n = n / nn
    u = np.cross(a_y, n)  # the wrist link direction (wrist pitch point -> jaw pivot), up to sign
    if u @ z_t > 0.0:  # the jaws point along -z_t and the wrist yaw stays within ±90°
        u = -u
    wrist = pivot - WRIST_M * u
    dist = math.sqrt(float(wrist @ wrist))
    if dist > 1e-7:
        s = wrist / dist
        if s @ u < 0.0:  # the wrist pitch stays within ±90°: the shaft points along the wrist
            s = -s
    else:  # the wrist pitch point is at the RCM: any shaft direction in the plane; keep the last
        if prev_frames is None:
            prev_frames = fk(prev)
        s = prev_frames.shaft_dir - (prev_frames.shaft_dir @ n) * n
        s = s / math.sqrt(float(s @ s))
    insertion = float(wrist @ s) + OFFSET_M

    # yaw, pitch from the shaft direction s = (-cos(p) sin(y), sin(p), -cos(p) cos(y)); the
    # singularity (shaft along ±y, horizontal) is outside the limits
    yaw0, pitch0 = shaft_yaw_pitch(s, float(prev[0]))
    yaw, pitch, clamped_yp = _choose_yaw_pitch(
        _yaw_pitch_candidates(yaw0, pitch0), prev, lower, upper
    )

    roll, wp, wy = _wrist(yaw, pitch, rt, float(prev[3]), lower, upper)
    q = np.array([yaw, pitch, insertion, roll, wp, wy])
    out = (q < lower - 1e-12) | (q > upper + 1e-12)
    clamped = tuple(name for i, name in enumerate(JOINT_NAMES) if out[i] or name in clamped_yp)
    if clamped:
        q = _position_first(p, rt, q, prev, lower, upper)
        at_limit = (np.abs(q - lower) < 1e-9) | (np.abs(q - upper) < 1e-9)
        clamped = tuple(name for i, name in enumerate(JOINT_NAMES) if at_limit[i]) or clamped
    frames = fk(q)
    reached = frames.pose
    return IkResult(
        q=q,
        pose=reached,
        clamped=clamped,
        position_error_m=float(np.linalg.norm(frames.tip - p)),
        orientation_error_rad=quat_angle_rad(reached[3:], q_in),
    )
