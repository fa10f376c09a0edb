"""Force feedback for the surgeon's console, guarded by a time-domain passivity controller.

What is rendered
----------------
The arm publishes ``State.measured_cf``: the contact wrench the environment exerts **on the
instrument**, about the tool tip, in the **tool frame** (fx fy fz N, tx ty tz N·m; see
``sim/world.py``), and ``State.measured_cp``: the tool pose in the arm's base frame (x y z m,
qx qy qz qw). Each console tick :meth:`ForceFeedback.step` turns them into the wrench the haptic
master should apply **on the operator's hand**, in the device frame, pushing the hand the way the
tissue pushes the tool:

1. **Frames**: ``f_base = q_tool f_tool q_tool⁻¹`` (``measured_cp``'s quaternion), then
   ``f_dev = q_bd f_base q_bd⁻¹`` with ``q_bd`` = ``base_to_device_quat``. The device frame is the
   frame the device reports its pose (and twist) in; the console maps master motion to the arm
   with ``ScalingConfig.master_to_arm_xyzw`` = R, so ``base_to_device_quat`` is normally R⁻¹ (the
   conjugate ``(-x, -y, -z, w)``). Torques are rotated the same way.
2. **Deadband** ``deadband_n`` (``deadband_n_m`` for torques), on the norm and in the sensor's
   units (at the tool): ``f ← f · max(0, |f| − d) / |f|``. It shrinks rather than gates, so the
   output has no step at the threshold.
3. **Scale** by ``force_scale`` (master newtons per newton at the tool; torques use the same gain).
4. **Low-pass**, first order at ``lowpass_hz`` (0 = off), discretised from the sample time
   (``a = 1 − exp(−2π·f_c·dt)``), seeded with the first value after engagement.
5. **Saturate** in norm at ``max_force_n`` (``max_torque_n_m``); counted in :attr:`saturated`.
6. **Slew limit** the output at ``max_force_rate_n_per_s`` (``max_torque_rate_n_m_per_s``) in
   norm. It acts on the saturated value and starts from the output actually sent, so it never
   leaves the saturation ball and a contact that appears (or an engagement in contact) ramps up
   instead of jolting the hand.
7. **Passivity controller** (below), then one more saturation of the total, so the wrench sent
   never exceeds ``max_force_n`` / ``max_torque_n_m``.

Gains and scaling
-----------------
With the console's motion scale ``s`` (arm motion per master motion, 0.2 for 5:1) and
``g = force_scale``: pushing the master ``Δx`` moves the tool ``s·Δx`` into tissue of stiffness
``k``, which pushes back ``k·s·Δx``, rendered as ``g·k·s·Δx``. So the **apparent stiffness gain
is g·s** (:attr:`ForceFeedback.stiffness_gain`): at 5:1 the tissue feels *softer* by s unless g
compensates. The **power (energy) gain is g/s** (:attr:`ForceFeedback.power_gain`): the master
moves 1/s as fast as the tool, so the feedback does 1/s times the work the tissue does; above 1
the scaling itself amplifies energy, which is what makes delayed, stiff contact oscillate. The
default ``force_scale = 0.2`` makes the power gain exactly 1 at the dVRK's 5:1 (the scaling
neither adds nor removes energy) and renders stiffness at 1/25; raise it for more feel, with the
passivity controller on.

Passivity (Hannaford & Ryu 2002)
--------------------------------
B. Hannaford and J.-H. Ryu, "Time-domain passivity control of haptic interfaces", IEEE Trans.
Robotics and Automation 18(1), 2002. The observer watches the one port where the device meets
the hand. With ``f(k)`` the wrench the device applies on the hand (what this class outputs) and
``v(k)`` the handle velocity, both in the device frame, ``f·v`` is the power flowing **out of the
teleoperator into the hand**. The observed energy is the energy the teleoperator has *absorbed*
from the hand::

    E(n) = −ΔT · Σ_{k ≤ n} f(k)·v(k)        (= ΔT·Σ f_hand·v, with f_hand = −f the hand's force)

Pressing into a spring stores energy (the feedback opposes the motion: f·v < 0, E grows); a
passive teleoperator can only give back what it took, so ``E ≥ 0`` always. ``E < 0`` means the
teleoperator (its delay, scaling, filters) has pushed more energy into the hand than the hand put
in: it is active. Then the controller adds a series damper on the port::

    E_pre = E(n−1) − ΔT·f(n)·v(n)
    α(n)  = min(−E_pre / (ΔT·|v(n)|²), max_damping)   when E_pre < 0, else 0
    f_out = f(n) − α(n)·v(n)
    E(n)  = E(n−1) − ΔT·f_out·v(n)           (= E_pre + ΔT·α|v|²: the dissipated energy is
                                              added back, bringing E to 0 unless α is bounded)

The energy is always integrated from the wrench actually sent, after the final saturation, so the
observer stays honest. The translational port (N, m/s, ``max_damping_n_s_per_m``) and the
rotational port (N·m, rad/s, ``max_angular_damping_n_m_s_per_rad``) have one observer each.
``passivity = False`` switches the controller off but keeps the observer running
(:attr:`ForceFeedback.energy_j` still reports). ``E`` restarts at 0 at each engagement: energy
stored during an earlier contact must not license an active release later.

Known limits of the method, kept on purpose (they err on the side of damping): α is capped, and a
damper takes nothing from a hand that is nearly still (α|v|² → 0), so ``E`` can dip a little below
zero (in the 200 ms delayed-wall test, −8 mJ against −0.5 J unguarded) and stays there until the
hand moves; engaging while already in contact and then backing off, or moving along a steady
load (a held ring's weight), is seen as energy flowing out and is damped until it is paid back.

Velocity: the device's twist when the caller passes one (``master_vel``), else a filtered finite
difference of the master positions by sample time (first-order low-pass at
``velocity_lowpass_hz``); the angular velocity comes from successive master quaternions when the
caller passes a (7,) pose. With ``torque`` and ``passivity`` on but no angular velocity available,
torques are **not** rendered (they could not be guarded); this is logged once.

Clutch and bad input
--------------------
* Not engaged (clutch out, operator absent, link lost: the caller decides): the output is zero
  at once. Instantaneous removal on clutch release is the convention of surgical masters (the
  hand is then decoupled from the arm; holding a force with nothing behind it would push the
  handle away). Re-engaging ramps the force up through the slew limit.
* A non-finite input, one beyond ±1e6 (SI units: a sensor or device fault), or a zero
  quaternion: zero output, the slew state restarts from zero, and the sample is counted in
  :attr:`ForceFeedback.rejected`; a warning is logged at the start of each burst and an info line
  when it ends. The wrench inputs are read only while engaged. Wrong shapes are programming
  errors and raise ``ValueError``. The output is checked once more before it leaves the kernel:
  the wrench returned is always finite and within the saturation limits.
* A ``t_ns`` that does not advance advances nothing (filters, slew, energy): the previous
  feedback is held, without damping. A gap over 50 ms between master samples restarts the
  finite-difference velocity.

The per-sample work is one numba kernel, :func:`feedback_kernel`, a pure function of arrays with
an explicit state array (layouts below), compiled through the project's switch
(``filters._jit``; ``TELESURGERY_NO_NUMBA=1`` runs it as plain Python).

:class:`SimulatedHapticDevice` is a fake haptic master (hand + handle mass-spring-damper) for
closing the loop in tests and demos.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.linalg import expm

from filters._jit import jit, pick
from master_console.devices import Buttons, InputDevice, InputSample, _frozen

log = logging.getLogger(__name__)

__all__ = [
    "ForceFeedback",
    "ForceFeedbackConfig",
    "SimulatedHapticDevice",
    "feedback_kernel",
    "make_params",
]

# ---------------------------------------------------------------------------------------------
# Configuration


def _number(name: str, value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"ForceFeedbackConfig.{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (v <= 0.0 if positive else v < 0.0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(
            f"ForceFeedbackConfig.{name} must be a finite number {bound}, got {value!r}"
        )
    return v


def _finite_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"ForceFeedbackConfig.{name} must hold numbers, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"ForceFeedbackConfig.{name} must hold finite numbers, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ForceFeedbackConfig:
    """Force-feedback settings; units in the names (see the module docstring for the pipeline).

    ``enabled``: render anything at all (off by default). ``force_scale``: master force per
    newton at the tool (also master N·m per N·m for torques); the apparent stiffness gain is
    ``force_scale × motion_scale`` and the power gain ``force_scale / motion_scale``.
    ``max_force_n``: saturation of the force sent, in norm. ``max_force_rate_n_per_s``: slew limit
    of the force, in norm. ``deadband_n``: contact forces (at the tool) below this norm are sensor
    noise. ``base_to_device_quat``: rotation (x, y, z, w) from the arm's base frame to the device
    frame (normally the inverse of the console's ``master_to_arm_xyzw``). ``torque``: render
    torques too (only for devices that can). ``passivity``: the time-domain passivity controller.
    ``lowpass_hz``: first-order smoothing of the measured wrench (0 = off).
    ``max_damping_n_s_per_m``: the most damping the passivity controller may add.
    ``velocity_lowpass_hz``: smoothing of the finite-difference master velocity (0 = off).
    ``max_torque_n_m``, ``max_torque_rate_n_m_per_s``, ``deadband_n_m``,
    ``max_angular_damping_n_m_s_per_rad``: the same for torques.
    """

    enabled: bool = False
    force_scale: float = 0.2
    max_force_n: float = 3.0
    max_force_rate_n_per_s: float = 100.0
    deadband_n: float = 0.05
    base_to_device_quat: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    torque: bool = False
    passivity: bool = True
    lowpass_hz: float = 50.0
    max_damping_n_s_per_m: float = 30.0
    velocity_lowpass_hz: float = 100.0
    max_torque_n_m: float = 0.05
    max_torque_rate_n_m_per_s: float = 2.0
    deadband_n_m: float = 0.002
    max_angular_damping_n_m_s_per_rad: float = 0.02

    _POSITIVE: ClassVar[tuple[str, ...]] = (
        "force_scale",
        "max_force_n",
        "max_force_rate_n_per_s",
        "max_damping_n_s_per_m",
        "max_torque_n_m",
        "max_torque_rate_n_m_per_s",
        "max_angular_damping_n_m_s_per_rad",
    )
    _NONNEGATIVE: ClassVar[tuple[str, ...]] = (
        "deadband_n",
        "deadband_n_m",
        "lowpass_hz",
        "velocity_lowpass_hz",
    )

    def __post_init__(self) -> None:
        for name in ("enabled", "torque", "passivity"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"ForceFeedbackConfig.{name} must be true or false, got {value!r}")
            object.__setattr__(self, name, bool(value))
        for name in self._POSITIVE:
            object.__setattr__(self, name, _number(name, getattr(self, name), positive=True))
        for name in self._NONNEGATIVE:
            object.__setattr__(self, name, _number(name, getattr(self, name), positive=False))
        q = self.base_to_device_quat
        if isinstance(q, str | bytes) or not isinstance(q, Sequence | np.ndarray) or len(q) != 4:
            raise ValueError(
                f"ForceFeedbackConfig.base_to_device_quat must be 4 numbers (x, y, z, w), got {q!r}"
            )
        qt = tuple(_finite_number("base_to_device_quat", v) for v in q)
        if not math.sqrt(sum(v * v for v in qt)) > 1e-12:
            raise ValueError(f"ForceFeedbackConfig.base_to_device_quat is a zero quaternion: {q!r}")
        object.__setattr__(self, "base_to_device_quat", qt)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> ForceFeedbackConfig:
        """From a plain mapping (a TOML table); unknown keys raise ``ValueError`` naming them."""
        valid = cls.field_names()
        unknown = [k for k in mapping if k not in valid]
        if unknown:
            raise ValueError(
                f"unknown force-feedback setting(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(valid)}"
            )
        return cls(**dict(mapping))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Kernel layouts (float64 arrays)

# params (from make_params; read-only for the kernel). Index + g: g = 0 force port, 1 torque port.
P_Q_BD = 0  # 4: base -> device rotation, unit quaternion (x, y, z, w)
P_SCALE = 4  # 2: master units per tool unit
P_DEAD = 6  # 2: deadband at the tool (N, N·m)
P_MAX = 8  # 2: saturation in norm (N, N·m)
P_RATE = 10  # 2: slew limit in norm (N/s, N·m/s)
P_ALPHA_MAX = 12  # 2: largest passivity damping (N·s/m, N·m·s/rad)
P_ON = 14  # 2: 1.0 when the port is rendered
P_LP_HZ = 16  # 1: wrench low-pass cut-off (0: off)
P_VEL_HZ = 17  # 1: finite-difference velocity low-pass cut-off (0: off)
P_PASSIVE = 18  # 1: 1.0 when the passivity controller acts
P_MAX_GAP_S = 19  # 1: no finite difference across a longer gap between master samples
PARAMS_SIZE = 20

# state (make_state: zeros). Times are seconds since the caller's origin.
S_HAS_T = 0  # 1: a time has been seen
S_T_LAST = 1  # 1: the newest time seen
S_ENGAGED = 2  # 1: engaged at the last accepted sample
S_HAS_PREV = 3  # 1: a master sample is stored
S_T_POS = 4  # 1: its time
S_PREV_POS = 5  # 3: its position (m, device frame)
S_PREV_QUAT = 8  # 4: its orientation, when S_PREV_HAS_QUAT
S_PREV_HAS_QUAT = 12  # 1
S_VEL = 13  # 6: master velocity estimate (m/s, rad/s), device frame
S_VEL_OK = 19  # 2: whether the linear / angular estimate is valid
S_LP = 21  # 6: low-passed, scaled wrench (device frame)
S_LP_SEEDED = 27  # 1
S_OUT = 28  # 6: feedback after saturation and slew (before the passivity damper)
S_ENERGY = 34  # 2: observed energy per port (J)
S_ALPHA = 36  # 2: damping added at the last sample
S_DISSIPATED = 38  # 2: energy the damper removed since make_state (J)
STATE_SIZE = 40

# mode bits: which optional inputs are valid
MODE_QUAT = 1  # master[3:7] holds the master orientation
MODE_LIN_VEL = 2  # mvel[0:3] is the device's linear velocity
MODE_ANG_VEL = 4  # mvel[3:6] is the device's angular velocity

# return codes: < 0 rejected (zero output); >= 0 a bit set of these flags
ERR_MASTER = -1
ERR_VELOCITY = -2
ERR_WRENCH = -3
ERR_NUMERIC = -4
FLAG_SAT_FORCE = 1
FLAG_SAT_TORQUE = 2
FLAG_SLEW = 4
FLAG_DAMPING = 8
FLAG_DAMPING_AT_MAX = 16
FLAG_TORQUE_UNGUARDED = 32

MAX_ABS_INPUT = 1e6  # N, N·m, m, m/s, rad/s: larger is a fault, rejected like NaN
MIN_QUAT_NORM2 = 1e-24
MIN_SPEED2 = 1e-18  # |v|² below this: no damping can dissipate anything
MAX_GAP_S = 0.05


def make_params(config: ForceFeedbackConfig) -> np.ndarray:
    """The kernel's parameter array for ``config``."""
    p = np.zeros(PARAMS_SIZE)
    q = np.asarray(config.base_to_device_quat, dtype=float)
    q = q / np.linalg.norm(q)
    p[P_Q_BD : P_Q_BD + 4] = q
    p[P_SCALE : P_SCALE + 2] = config.force_scale
    p[P_DEAD : P_DEAD + 2] = (config.deadband_n, config.deadband_n_m)
    p[P_MAX : P_MAX + 2] = (config.max_force_n, config.max_torque_n_m)
    p[P_RATE : P_RATE + 2] = (config.max_force_rate_n_per_s, config.max_torque_rate_n_m_per_s)
    p[P_ALPHA_MAX : P_ALPHA_MAX + 2] = (
        config.max_damping_n_s_per_m,
        config.max_angular_damping_n_m_s_per_rad,
    )
    p[P_ON : P_ON + 2] = (1.0, 1.0 if config.torque else 0.0)
    p[P_LP_HZ] = config.lowpass_hz
    p[P_VEL_HZ] = config.velocity_lowpass_hz
    p[P_PASSIVE] = 1.0 if config.passivity else 0.0
    p[P_MAX_GAP_S] = MAX_GAP_S
    return p


def make_state() -> np.ndarray:
    """A fresh kernel state (released, nothing seen)."""
    return np.zeros(STATE_SIZE)


# ---------------------------------------------------------------------------------------------
# Kernels


@jit
def _plausible(a, i0, n):  # type: ignore[no-untyped-def]
    """True when ``a[i0 : i0 + n]`` is finite and within ±MAX_ABS_INPUT (a loop: numba has no
    generators)."""
    for i in range(i0, i0 + n):  # noqa: SIM110
        if not abs(a[i]) <= MAX_ABS_INPUT:  # False for NaN too
            return False
    return True


@jit
def _quat_ok(a, i0):  # type: ignore[no-untyped-def]
    """True when ``a[i0 : i0 + 4]`` is a plausible, non-zero quaternion."""
    if not _plausible(a, i0, 4):
        return False
    n2 = a[i0] * a[i0] + a[i0 + 1] * a[i0 + 1] + a[i0 + 2] * a[i0 + 2] + a[i0 + 3] * a[i0 + 3]
    return n2 > MIN_QUAT_NORM2


@jit
def _rotate(qx, qy, qz, qw, vx, vy, vz):  # type: ignore[no-untyped-def]
    """``q v q⁻¹`` for a unit quaternion q (x, y, z, w): v + w·t + u × t, t = 2·u × v."""
    tx = 2.0 * (qy * vz - qz * vy)
    ty = 2.0 * (qz * vx - qx * vz)
    tz = 2.0 * (qx * vy - qy * vx)
    return (
        vx + qw * tx + (qy * tz - qz * ty),
        vy + qw * ty + (qz * tx - qx * tz),
        vz + qw * tz + (qx * ty - qy * tx),
    )


@jit
def _lowpass_gain(cutoff_hz, dt):  # type: ignore[no-untyped-def]
    """The first-order low-pass gain for a step of ``dt`` s (1: pass through when off)."""
    if cutoff_hz <= 0.0:
        return 1.0
    return 1.0 - math.exp(-2.0 * math.pi * cutoff_hz * dt)


@jit
def _cut(state, out):  # type: ignore[no-untyped-def]
    """Zero output; the slew limit restarts from zero, no damping."""
    for i in range(6):
        out[i] = 0.0
        state[S_OUT + i] = 0.0
    state[S_ALPHA] = 0.0
    state[S_ALPHA + 1] = 0.0


@jit
def _update_velocity(t, master, mvel, has_quat, lin_given, ang_given, params, state):  # type: ignore[no-untyped-def]
    """Update the master velocity estimate (device frame) and store the master sample."""
    have_prev = state[S_HAS_PREV] != 0.0
    dtp = t - state[S_T_POS] if have_prev else 0.0
    fresh = have_prev and dtp > 0.0  # a new sample after a stored one
    smooth = have_prev and 0.0 < dtp <= params[P_MAX_GAP_S]
    # linear
    if lin_given:
        for i in range(3):
            state[S_VEL + i] = mvel[i]
        state[S_VEL_OK] = 1.0
    elif smooth:
        a = _lowpass_gain(params[P_VEL_HZ], dtp)
        seeded = state[S_VEL_OK] != 0.0
        for i in range(3):
            raw = (master[i] - state[S_PREV_POS + i]) / dtp
            if seeded:
                state[S_VEL + i] += a * (raw - state[S_VEL + i])
            else:
                state[S_VEL + i] = raw
        state[S_VEL_OK] = 1.0
    elif not have_prev or fresh:  # the first sample, or one after a gap: no estimate
        for i in range(3):
            state[S_VEL + i] = 0.0
        state[S_VEL_OK] = 0.0
    # angular
    if ang_given:
        for i in range(3):
            state[S_VEL + 3 + i] = mvel[3 + i]
        state[S_VEL_OK + 1] = 1.0
    elif smooth and has_quat and state[S_PREV_HAS_QUAT] != 0.0:
        n = math.sqrt(
            master[3] * master[3]
            + master[4] * master[4]
            + master[5] * master[5]
            + master[6] * master[6]
        )
        ax, ay, az, aw = master[3] / n, master[4] / n, master[5] / n, master[6] / n
        bx = -state[S_PREV_QUAT]
        by = -state[S_PREV_QUAT + 1]
        bz = -state[S_PREV_QUAT + 2]
        bw = state[S_PREV_QUAT + 3]
        # d = q ⊗ q_prev⁻¹: the rotation since the stored sample, in the device's base frame
        dx = aw * bx + ax * bw + ay * bz - az * by
        dy = aw * by + ay * bw + az * bx - ax * bz
        dz = aw * bz + az * bw + ax * by - ay * bx
        dw = aw * bw - ax * bx - ay * by - az * bz
        if dw < 0.0:
            dx, dy, dz, dw = -dx, -dy, -dz, -dw
        s = math.sqrt(dx * dx + dy * dy + dz * dz)
        k = 2.0 * math.atan2(s, dw) / s if s > 1e-12 else 2.0
        a = _lowpass_gain(params[P_VEL_HZ], dtp)
        seeded = state[S_VEL_OK + 1] != 0.0
        raw_x, raw_y, raw_z = k * dx / dtp, k * dy / dtp, k * dz / dtp
        if seeded:
            state[S_VEL + 3] += a * (raw_x - state[S_VEL + 3])
            state[S_VEL + 4] += a * (raw_y - state[S_VEL + 4])
            state[S_VEL + 5] += a * (raw_z - state[S_VEL + 5])
        else:
            state[S_VEL + 3] = raw_x
            state[S_VEL + 4] = raw_y
            state[S_VEL + 5] = raw_z
        state[S_VEL_OK + 1] = 1.0
    elif not have_prev or fresh or not has_quat:
        for i in range(3):
            state[S_VEL + 3 + i] = 0.0
        state[S_VEL_OK + 1] = 0.0
    # store the sample (a repeated or older time keeps the stored one)
    if not have_prev or fresh:
        for i in range(3):
            state[S_PREV_POS + i] = master[i]
        if has_quat:
            n = math.sqrt(
                master[3] * master[3]
                + master[4] * master[4]
                + master[5] * master[5]
                + master[6] * master[6]
            )
            for i in range(4):
                state[S_PREV_QUAT + i] = master[3 + i] / n
            state[S_PREV_HAS_QUAT] = 1.0
        else:
            state[S_PREV_HAS_QUAT] = 0.0
        state[S_T_POS] = t
        state[S_HAS_PREV] = 1.0


@jit
def feedback_kernel(t, cf, cp, master, mvel, mode, engaged, params, state, out):  # type: ignore[no-untyped-def]
    """One console tick of force feedback; writes the device wrench into ``out`` (6,).

    ``t``: sample time (s, since any fixed origin); ``cf`` (6,) ``measured_cf`` (tool frame);
    ``cp`` (7,) ``measured_cp``; ``master`` (7,) the master position (m, device frame) and, when
    ``mode & MODE_QUAT``, its orientation; ``mvel`` (6,) the device's twist (device frame), valid
    per ``mode & MODE_LIN_VEL`` / ``MODE_ANG_VEL``; ``engaged`` (bool); ``params`` from
    :func:`make_params`; ``state`` from :func:`make_state`, updated in place.

    Returns a negative code when an input is not finite or beyond ±MAX_ABS_INPUT (``out`` is
    then zero; ``ERR_MASTER``, ``ERR_VELOCITY``, ``ERR_WRENCH``; ``ERR_NUMERIC`` if a result were
    not finite), else a bit set of ``FLAG_*``. ``cf`` and ``cp`` are read
    only while engaged. The pipeline and the passivity controller are in the module docstring.
    """
    # -- time: dt since the newest time seen (0 for the first, a repeated or an older one)
    dt = 0.0
    if state[S_HAS_T] != 0.0:
        if t > state[S_T_LAST]:
            dt = t - state[S_T_LAST]
            state[S_T_LAST] = t
    else:
        state[S_T_LAST] = t
        state[S_HAS_T] = 1.0
    has_quat = (mode & MODE_QUAT) != 0
    lin_given = (mode & MODE_LIN_VEL) != 0
    ang_given = (mode & MODE_ANG_VEL) != 0

    # -- the master side: always tracked, so the velocity is known at engagement
    if not _plausible(master, 0, 3) or (has_quat and not _quat_ok(master, 3)):
        state[S_HAS_PREV] = 0.0
        state[S_VEL_OK] = 0.0
        state[S_VEL_OK + 1] = 0.0
        _cut(state, out)
        return ERR_MASTER
    if (lin_given and not _plausible(mvel, 0, 3)) or (ang_given and not _plausible(mvel, 3, 3)):
        _cut(state, out)
        return ERR_VELOCITY
    _update_velocity(t, master, mvel, has_quat, lin_given, ang_given, params, state)

    if not engaged:
        _cut(state, out)
        state[S_ENGAGED] = 0.0
        return 0
    if not (_plausible(cf, 0, 6) and _plausible(cp, 0, 3) and _quat_ok(cp, 3)):
        _cut(state, out)
        return ERR_WRENCH
    if state[S_ENGAGED] == 0.0:  # engagement: a fresh energy account, the filter re-seeds
        state[S_ENGAGED] = 1.0
        state[S_ENERGY] = 0.0
        state[S_ENERGY + 1] = 0.0
        state[S_LP_SEEDED] = 0.0

    # -- the wrench in the device frame (out is scratch until the loop below writes it)
    n = math.sqrt(cp[3] * cp[3] + cp[4] * cp[4] + cp[5] * cp[5] + cp[6] * cp[6])
    qx, qy, qz, qw = cp[3] / n, cp[4] / n, cp[5] / n, cp[6] / n
    bx, by, bz, bw = params[P_Q_BD], params[P_Q_BD + 1], params[P_Q_BD + 2], params[P_Q_BD + 3]
    for i0 in (0, 3):
        x, y, z = _rotate(qx, qy, qz, qw, cf[i0], cf[i0 + 1], cf[i0 + 2])
        x, y, z = _rotate(bx, by, bz, bw, x, y, z)
        out[i0] = x
        out[i0 + 1] = y
        out[i0 + 2] = z

    a_lp = _lowpass_gain(params[P_LP_HZ], dt)
    seeded = state[S_LP_SEEDED] != 0.0
    passive = params[P_PASSIVE] != 0.0
    flags = 0
    for g in range(2):
        i0 = 3 * g
        if params[P_ON + g] == 0.0:
            for i in range(i0, i0 + 3):
                out[i] = 0.0
                state[S_OUT + i] = 0.0
                state[S_LP + i] = 0.0
            state[S_ALPHA + g] = 0.0
            continue
        fmax = params[P_MAX + g]
        # deadband (tool units, continuous) and scale
        x, y, z = out[i0], out[i0 + 1], out[i0 + 2]
        n = math.sqrt(x * x + y * y + z * z)
        dead = params[P_DEAD + g]
        k = (n - dead) / n * params[P_SCALE + g] if n > dead else 0.0
        x, y, z = k * x, k * y, k * z
        # low-pass
        if seeded:
            x = state[S_LP + i0] + a_lp * (x - state[S_LP + i0])
            y = state[S_LP + i0 + 1] + a_lp * (y - state[S_LP + i0 + 1])
            z = state[S_LP + i0 + 2] + a_lp * (z - state[S_LP + i0 + 2])
        state[S_LP + i0] = x
        state[S_LP + i0 + 1] = y
        state[S_LP + i0 + 2] = z
        # saturate
        n = math.sqrt(x * x + y * y + z * z)
        if n > fmax:
            k = fmax / n
            x, y, z = k * x, k * y, k * z
            flags |= FLAG_SAT_FORCE if g == 0 else FLAG_SAT_TORQUE
        # slew limit, from what was sent
        dx = x - state[S_OUT + i0]
        dy = y - state[S_OUT + i0 + 1]
        dz = z - state[S_OUT + i0 + 2]
        d = math.sqrt(dx * dx + dy * dy + dz * dz)
        step = params[P_RATE + g] * dt
        if d > step:
            k = step / d
            x = state[S_OUT + i0] + k * dx
            y = state[S_OUT + i0 + 1] + k * dy
            z = state[S_OUT + i0 + 2] + k * dz
            flags |= FLAG_SLEW
        state[S_OUT + i0] = x
        state[S_OUT + i0 + 1] = y
        state[S_OUT + i0 + 2] = z
        # the passivity observer and controller on this port
        if state[S_VEL_OK + g] != 0.0:
            ux, uy, uz = state[S_VEL + i0], state[S_VEL + i0 + 1], state[S_VEL + i0 + 2]
        else:
            ux = uy = uz = 0.0
            if g == 1 and passive:  # torques nobody can guard are not rendered
                out[3] = out[4] = out[5] = 0.0
                state[S_OUT + 3] = state[S_OUT + 4] = state[S_OUT + 5] = 0.0
                state[S_ALPHA + 1] = 0.0
                flags |= FLAG_TORQUE_UNGUARDED
                continue
        energy = state[S_ENERGY + g]
        uu = ux * ux + uy * uy + uz * uz
        e_pre = energy - dt * (x * ux + y * uy + z * uz)
        alpha = 0.0
        if passive and e_pre < 0.0 and dt > 0.0 and uu > MIN_SPEED2:
            alpha = -e_pre / (dt * uu)
            flags |= FLAG_DAMPING
            if alpha > params[P_ALPHA_MAX + g]:
                alpha = params[P_ALPHA_MAX + g]
                flags |= FLAG_DAMPING_AT_MAX
        x -= alpha * ux
        y -= alpha * uy
        z -= alpha * uz
        c = 1.0
        n = math.sqrt(x * x + y * y + z * z)
        if n > fmax:
            c = fmax / n
            x, y, z = c * x, c * y, c * z
            flags |= FLAG_SAT_FORCE if g == 0 else FLAG_SAT_TORQUE
        state[S_ENERGY + g] = energy - dt * (x * ux + y * uy + z * uz)
        state[S_DISSIPATED + g] += c * alpha * uu * dt
        state[S_ALPHA + g] = alpha
        out[i0] = x
        out[i0 + 1] = y
        out[i0 + 2] = z
    state[S_LP_SEEDED] = 1.0
    if not _plausible(out, 0, 6):  # cannot happen with sane settings; never send it anyway
        _cut(state, out)
        for i in range(6):
            state[S_LP + i] = 0.0
        state[S_LP_SEEDED] = 0.0
        state[S_ENERGY] = 0.0
        state[S_ENERGY + 1] = 0.0
        return ERR_NUMERIC
    return flags


# ---------------------------------------------------------------------------------------------
# The Python side


def _fill(buf: np.ndarray, value: Any, name: str, what: str) -> None:
    if np.shape(value) != buf.shape:
        raise ValueError(f"{name} must be {what}, shape {buf.shape}, got shape {np.shape(value)}")
    try:
        buf[:] = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, got {value!r}") from None


_REASONS = {
    ERR_MASTER: "master pose",
    ERR_VELOCITY: "master velocity",
    ERR_WRENCH: "measured_cf / measured_cp",
    ERR_NUMERIC: "intermediate result",
}


class ForceFeedback:
    """Turns the arm's measured wrench into the wrench a haptic master renders, passively.

    ``ForceFeedback(config, motion_scale)``: ``motion_scale`` is the console's arm motion per
    master motion (``ScalingConfig.scale``), used for the reported gains. Call :meth:`step` once
    per console tick; see the module docstring for the frames, the pipeline, the passivity
    controller and what happens on clutch release or bad input.

    In the console loop, once per tick (the link's newest ``State`` as ``st``, the device's
    newest sample as ``sample``; ``engaged`` is the same condition that lets the master drive
    the arm: clutch in, operator present, link not LOST)::

        if device.has_force_feedback and sample is not None:
            cf, cp = (st.measured_cf, st.measured_cp) if st is not None else (None, None)
            wrench = ff.step(sample.t_ns, cf, cp, sample.pose, sample.twist, engaged)
            device.send_force(wrench)     # zeros before any state, when released, on bad input

    Observable after each step: :attr:`energy_j` / :attr:`energy_rot_j` (observed energy of the
    translational / rotational port since engagement, J; never below ~0 with the controller on),
    :attr:`damping_n_s_per_m` / :attr:`damping_rot_n_m_s_per_rad` (the damping added at the last
    step), :attr:`dissipated_j` (energy the controller removed, both ports, J), :attr:`saturated`
    (steps whose demand exceeded a maximum), :attr:`rejected` (steps with a non-finite or absurd
    input), :attr:`damped` (steps where the passivity controller added damping),
    :attr:`velocity` (the master velocity estimate).
    """

    def __init__(
        self,
        config: ForceFeedbackConfig | None = None,
        motion_scale: float = 0.2,
        use_numba: bool | None = None,
    ) -> None:
        self.config = ForceFeedbackConfig() if config is None else config
        if not isinstance(self.config, ForceFeedbackConfig):
            raise ValueError(f"config must be a ForceFeedbackConfig, got {type(config).__name__}")
        if isinstance(motion_scale, bool) or not isinstance(
            motion_scale, int | float | np.integer | np.floating
        ):
            raise ValueError(f"motion_scale must be a number, got {motion_scale!r}")
        if not (math.isfinite(motion_scale) and motion_scale > 0):
            raise ValueError(f"motion_scale must be a finite number > 0, got {motion_scale!r}")
        self.motion_scale = float(motion_scale)
        self.use_numba = use_numba
        self._kernel = pick(feedback_kernel, use_numba)
        self._params = make_params(self.config)
        self._cf = np.zeros(6)
        self._cp = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
        self._master = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
        self._mvel = np.zeros(6)
        self._out = np.zeros(6)
        self._warm_up()
        self.reset()
        if self.config.enabled:
            log.info(
                "force feedback on: force_scale %.3g, motion scale %.3g -> stiffness gain %.3g, "
                "power gain %.3g; max %.3g N; passivity %s",
                self.config.force_scale,
                self.motion_scale,
                self.stiffness_gain,
                self.power_gain,
                self.config.max_force_n,
                "on" if self.config.passivity else "OFF",
            )
            if not self.config.passivity and self.power_gain > 1.0:
                log.warning(
                    "force feedback without the passivity controller at power gain %.3g > 1: "
                    "stiff contact under delay may oscillate",
                    self.power_gain,
                )

    def _warm_up(self) -> None:
        """Compile (or load numba's cache) now, not on the first tick of the real-time loop."""
        state = make_state()
        for i, engaged in enumerate((False, True, True)):
            self._kernel(
                0.001 * i, self._cf, self._cp, self._master, self._mvel, 7, engaged,
                self._params, state, self._out,
            )  # fmt: skip

    # -- derived gains -------------------------------------------------------------------------
    @property
    def stiffness_gain(self) -> float:
        """Apparent stiffness at the master per stiffness at the tool (force_scale × scale)."""
        return self.config.force_scale * self.motion_scale

    @property
    def power_gain(self) -> float:
        """Power rendered at the master per power at the tool: force_scale / motion_scale."""
        return self.config.force_scale / self.motion_scale

    # -- observables ---------------------------------------------------------------------------
    @property
    def energy_j(self) -> float:
        """Observed energy of the translational port since engagement (J; < 0: active)."""
        return float(self._state[S_ENERGY])

    @property
    def energy_rot_j(self) -> float:
        """Observed energy of the rotational port since engagement (J)."""
        return float(self._state[S_ENERGY + 1])

    @property
    def damping_n_s_per_m(self) -> float:
        """The translational damping α the controller added at the last step (N·s/m)."""
        return float(self._state[S_ALPHA])

    @property
    def damping_rot_n_m_s_per_rad(self) -> float:
        """The rotational damping added at the last step (N·m·s/rad)."""
        return float(self._state[S_ALPHA + 1])

    @property
    def dissipated_j(self) -> float:
        """Energy the passivity controller has dissipated since reset, both ports (J)."""
        return float(self._state[S_DISSIPATED] + self._state[S_DISSIPATED + 1])

    @property
    def velocity(self) -> np.ndarray:
        """The master velocity estimate (vx vy vz m/s, wx wy wz rad/s; device frame)."""
        return self._state[S_VEL : S_VEL + 6].copy()

    @property
    def output(self) -> np.ndarray:
        """A copy of the last wrench returned by :meth:`step`."""
        return self._out.copy()

    def reset(self) -> None:
        """Back to the initial state: released, nothing seen, counters zero."""
        self._state = make_state()
        self._out[:] = 0.0
        self._t0_ns: int | None = None
        self.saturated = 0
        self.rejected = 0
        self.damped = 0
        self._burst = 0
        self._warned_torque = False

    # -- the tick ------------------------------------------------------------------------------
    def step(
        self,
        t_ns: int,
        measured_cf: Any,
        measured_cp: Any,
        master_pos: Any,
        master_vel: Any = None,
        engaged: bool = False,
    ) -> np.ndarray:
        """The wrench (6,) to send to the device now (a new array; zeros when disabled, not
        engaged, or on a non-finite or absurd input).

        ``t_ns``: the sample time (ns, monotonic; the master sample's time is best).
        ``measured_cf`` (6,) and ``measured_cp`` (7,): from the newest ``State`` (None before
        any: zero output, not counted). ``master_pos``: the master position (3,) in the device
        frame (m), or its pose (7,) x y z qx qy qz qw, which also gives the angular velocity.
        ``master_vel``: the device's measured velocity (3,) m/s or twist (6,) m/s, rad/s, device
        frame; None: estimated from ``master_pos``. ``engaged``: the master drives the arm now
        (False while the clutch is out, the operator absent or the link LOST: the force is then
        zero at once and stale contact forces are never rendered).
        """
        if not self.config.enabled:
            return np.zeros(6)
        if self._t0_ns is None:
            self._t0_ns = int(t_ns)
        t = (int(t_ns) - self._t0_ns) * 1e-9
        mode = 0
        shape = np.shape(master_pos)
        if shape == (7,):
            _fill(self._master, master_pos, "master_pos", "a position (3,) or a pose (7,)")
            mode |= MODE_QUAT
        else:
            if shape != (3,):
                raise ValueError(
                    f"master_pos must be a position (3,) or a pose (7,), got shape {shape}"
                )
            _fill(self._master[:3], master_pos, "master_pos", "a position (3,)")
        if master_vel is not None:
            vshape = np.shape(master_vel)
            if vshape == (6,):
                _fill(self._mvel, master_vel, "master_vel", "a velocity (3,) or a twist (6,)")
                mode |= MODE_LIN_VEL | MODE_ANG_VEL
            elif vshape == (3,):
                _fill(self._mvel[:3], master_vel, "master_vel", "a velocity (3,)")
                mode |= MODE_LIN_VEL
            else:
                raise ValueError(
                    f"master_vel must be a velocity (3,) or a twist (6,), got shape {vshape}"
                )
        engaged = bool(engaged)
        if measured_cf is None or measured_cp is None:
            engaged = False  # no state from the arm yet: nothing to render
        else:
            _fill(self._cf, measured_cf, "measured_cf", "a wrench of 6 numbers")
            _fill(self._cp, measured_cp, "measured_cp", "a pose of 7 numbers")
        code = self._kernel(
            t, self._cf, self._cp, self._master, self._mvel, mode, engaged,
            self._params, self._state, self._out,
        )  # fmt: skip
        if code < 0:
            self.rejected += 1
            self._burst += 1
            if self._burst == 1:
                log.warning(
                    "force feedback: bad %s (not finite or absurd); sending zero force "
                    "(%d rejected so far)",
                    _REASONS.get(code, "input"),
                    self.rejected,
                )
        else:
            if self._burst:
                log.info("force feedback: inputs good again after %d rejected", self._burst)
                self._burst = 0
            if code & (FLAG_SAT_FORCE | FLAG_SAT_TORQUE):
                self.saturated += 1
            if code & FLAG_DAMPING:
                self.damped += 1
            if code & FLAG_TORQUE_UNGUARDED and not self._warned_torque:
                self._warned_torque = True
                log.warning(
                    "force feedback: torques are not rendered: the passivity controller needs "
                    "the master's angular velocity (pass a (7,) pose or a (6,) twist)"
                )
        return self._out.copy()


# ---------------------------------------------------------------------------------------------
# A simulated haptic master


class SimulatedHapticDevice(InputDevice):
    """A fake haptic master: a handle held by a hand, as a mass-spring-damper per axis.

    Along each simulated axis (``dof`` = 1: x only; 3: x, y, z), with the handle position ``x``,
    the hand's intended position ``x_h(t)`` and the device force ``f`` (the x, y, z of the last
    :meth:`send_force`, held until the next, as a real device's zero-order hold)::

        m ẍ = f − k (x − x_h) − b ẋ

    ``m`` = ``mass_kg`` (hand + handle), ``k`` = ``hand_stiffness_n_per_m``, ``b`` =
    ``hand_damping_n_s_per_m``: the operator's hand impedance (defaults 0.5 kg, 200 N/m,
    2 N·s/m, a relaxed grasp). :meth:`advance` integrates over ``dt`` in fixed steps of
    ``step_s``, each exact for the held force and intended position (the zero-order-hold
    discretisation, from the matrix exponential), so a closed loop is deterministic and does not
    depend on the integrator. Time starts at ``t0_ns`` and moves only with :meth:`advance`.

    ``intended``: a function of the time (s since ``t0_ns``) giving the intended position (3,), or
    None to hold ``position_m``; :meth:`set_intended` replaces it. :attr:`work_on_hand_j` is the
    exact work the device force has done on the handle (J; > 0: energy went into the hand).
    Torques sent are kept in :attr:`torque` but move nothing. ``latest()`` reports the pose
    (identity orientation), and with ``report_twist`` the handle velocity as the twist (a
    measured velocity, as a haptic device's encoders give, not a rate command).
    """

    name = "haptic-sim"

    def __init__(
        self,
        *,
        dof: int = 3,
        mass_kg: float = 0.5,
        hand_stiffness_n_per_m: float = 200.0,
        hand_damping_n_s_per_m: float = 2.0,
        step_s: float = 1e-4,
        position_m: Sequence[float] = (0.0, 0.0, 0.0),
        intended: Callable[[float], Any] | None = None,
        report_twist: bool = False,
        clutch: bool = True,
        t0_ns: int = 0,
    ) -> None:
        if dof not in (1, 3):
            raise ValueError(f"dof must be 1 or 3, got {dof!r}")
        for name, v, positive in (
            ("mass_kg", mass_kg, True),
            ("hand_stiffness_n_per_m", hand_stiffness_n_per_m, False),
            ("hand_damping_n_s_per_m", hand_damping_n_s_per_m, False),
            ("step_s", step_s, True),
        ):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
            if v < 0 or (positive and v == 0):
                raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {v!r}")
        pos = np.array(position_m, dtype=float)
        if pos.shape != (3,) or not np.isfinite(pos).all():
            raise ValueError(f"position_m must be 3 finite numbers, got {position_m!r}")
        self.dof = dof
        self.mass_kg = float(mass_kg)
        self.hand_stiffness_n_per_m = float(hand_stiffness_n_per_m)
        self.hand_damping_n_s_per_m = float(hand_damping_n_s_per_m)
        self.step_s = float(step_s)
        self._step_ns = round(step_s * 1e9)
        if self._step_ns < 1 or abs(self._step_ns - step_s * 1e9) > 1e-6 * step_s * 1e9:
            raise ValueError(f"step_s must be a whole number of nanoseconds, got {step_s!r}")
        self.report_twist = bool(report_twist)
        self._clutch = bool(clutch)
        self._present = True
        self._sample: InputSample | None = None
        self._home = pos.copy()
        self._intended = intended
        # exact ZOH discretisation of d/dt [x, v] = A [x, v] + B u, u = f + k·x_h
        m, k, b = self.mass_kg, self.hand_stiffness_n_per_m, self.hand_damping_n_s_per_m
        aug = np.zeros((3, 3))
        aug[0, 1] = 1.0
        aug[1, 0] = -k / m
        aug[1, 1] = -b / m
        aug[1, 2] = 1.0 / m
        e = expm(aug * self.step_s)
        self._phi = e[:2, :2]
        self._gamma = e[:2, 2]
        self._t0_ns = int(t0_ns)
        self._t_ns = int(t0_ns)
        self._x = pos.copy()
        self._v = np.zeros(3)
        self._force = np.zeros(3)
        self.torque = np.zeros(3)
        self.work_on_hand_j = 0.0
        self.forces_sent = 0
        self._seq = 0
        self._connected = False

    # -- InputDevice -----------------------------------------------------------------------
    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        """Close: the force output stops (a real device drops its motor current)."""
        self._connected = False
        self._force[:] = 0.0
        self.torque[:] = 0.0

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def has_force_feedback(self) -> bool:
        return True

    def send_force(self, wrench: np.ndarray) -> None:
        """Hold this wrench (fx fy fz N, tx ty tz N·m; device frame) until the next one.

        Raises ``ValueError`` for a shape other than (6,) or a non-finite value (a real device
        must never be handed NaN), and ``RuntimeError`` when not connected.
        """
        w = np.asarray(wrench, dtype=float)
        if w.shape != (6,):
            raise ValueError(f"wrench must have shape (6,), got {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError(f"wrench must be finite, got {w}")
        if not self._connected:
            raise RuntimeError(f"{self.name}: send_force before connect()")
        self._force[:] = w[:3]
        if self.dof == 1:
            self._force[1:] = 0.0
        self.torque[:] = w[3:]
        self.forces_sent += 1

    def latest(self) -> InputSample | None:
        """The handle's state at the simulated time (None until connected). Each
        :meth:`advance` makes a new sample (``seq`` + 1); reading again returns the same one
        (setting :attr:`clutch` or :attr:`operator_present` also makes a new one)."""
        if not self._connected:
            return None
        if self._sample is None:
            self._seq += 1
            pose = np.array([*self._x, 0.0, 0.0, 0.0, 1.0])
            twist = _frozen(np.array([*self._v, 0.0, 0.0, 0.0])) if self.report_twist else None
            self._sample = InputSample(
                t_ns=self._t_ns,
                pose=_frozen(pose),
                twist=twist,
                jaw=0.0,
                buttons=Buttons(clutch=self.clutch, operator_present=self.operator_present),
                seq=self._seq,
            )
        return self._sample

    # -- buttons ---------------------------------------------------------------------------
    @property
    def clutch(self) -> bool:
        return self._clutch

    @clutch.setter
    def clutch(self, value: bool) -> None:
        self._clutch = bool(value)
        self._sample = None  # the next latest() is a new sample

    @property
    def operator_present(self) -> bool:
        return self._present

    @operator_present.setter
    def operator_present(self, value: bool) -> None:
        self._present = bool(value)
        self._sample = None

    # -- the simulation --------------------------------------------------------------------
    @property
    def t_ns(self) -> int:
        """The simulated time (ns)."""
        return self._t_ns

    @property
    def position_m(self) -> np.ndarray:
        return self._x.copy()

    @property
    def velocity_m_s(self) -> np.ndarray:
        return self._v.copy()

    @property
    def force_n(self) -> np.ndarray:
        """The force being applied on the handle (N)."""
        return self._force.copy()

    def set_intended(self, intended: Callable[[float], Any] | None) -> None:
        """Where the hand wants the handle: a function of time (s since t0), or None to hold."""
        self._intended = intended

    def intended_at(self, t_s: float) -> np.ndarray:
        if self._intended is None:
            return self._home
        return np.asarray(self._intended(t_s), dtype=float)

    def advance(self, dt_s: float) -> None:
        """Integrate ``dt_s`` seconds (a whole number of ``step_s`` steps) with the held force."""
        n = round(dt_s / self.step_s)
        if n < 0 or abs(n * self.step_s - dt_s) > 1e-9 * max(1.0, abs(dt_s)):
            raise ValueError(f"dt_s must be a whole number of steps of {self.step_s} s, got {dt_s}")
        axes = 1 if self.dof == 1 else 3
        phi, gamma, k = self._phi, self._gamma, self.hand_stiffness_n_per_m
        f = self._force[:axes]
        for _ in range(n):
            xh = self.intended_at((self._t_ns - self._t0_ns) * 1e-9)[:axes]
            u = f + k * xh
            x0 = self._x[:axes].copy()
            x1 = phi[0, 0] * x0 + phi[0, 1] * self._v[:axes] + gamma[0] * u
            v1 = phi[1, 0] * x0 + phi[1, 1] * self._v[:axes] + gamma[1] * u
            self.work_on_hand_j += float(f @ (x1 - x0))
            self._x[:axes] = x1
            self._v[:axes] = v1
            self._t_ns += self._step_ns
        if n:
            self._sample = None
