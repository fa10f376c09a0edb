"""The project's tremor filter: a Kalman filter with a voluntary trend and adaptive resonators.

Model, per axis (the three axes share the model and hence the covariance and gain):

* **voluntary motion** ``p``: a smooth trend, position/velocity/acceleration driven by white
  jerk noise (the "constant acceleration" model), so it can follow fast reaches without lag;
* **tremor**: a bank of resonators, one per frequency bin over ``f_low_hz``..``f_high_hz``
  (``bin_hz`` apart); each is a phasor ``(c, d)`` rotating at its bin frequency, driven by white
  noise, so it can hold any amplitude and phase and drift off its bin;
* **measurement**: the master position ``x = p + Σ c_i`` (+ measurement noise).

The output is ``x − Σ ĉ_i``: the measured position minus the estimated tremor. Voluntary motion
therefore passes straight through (no low-pass lag); only what the model attributes to tremor is
removed.

What makes it adaptive (and beat the Bode gain–phase limit that binds every fixed linear filter):
each bin's process noise is proportional to the tremor energy recently found in that bin (summed
over the axes, smoothed with ``energy_time_constant_s``). Bins where the hand trembles get wide,
fast-tracking resonators and are cancelled deeply; empty bins stay narrow and cost nothing at the
voluntary frequencies. ``energy_floor`` keeps every bin able to pick up a new peak. The trend's
jerk noise and the measurement noise are also scaled by the total tremor energy, so the filter
behaves the same for 50 µm and 250 µm of tremor. Noise densities are per second (converted with
the sample period), so the behaviour does not depend on the sample rate.

Cost: one shared (3 + 2F)-state covariance update per sample plus three state updates; written
with rotating regressors (see ``_kalman_core``) it is ~0.3 µs per 3-axis sample with numba.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import signal

from filters._jit import jit, jit_inline, pick
from filters.base import Filter, as_block, as_vec3
from filters.lti import check_nonnegative, check_positive

_ENERGY_ABS_FLOOR_M2 = 1e-16  # (10 nm)^2: keeps the filter well-posed on a motionless input


# Layout of the single state vector (one array, so a numba call type-checks few arguments):
# [T, q_tremor, q_trend, r, beta, floor, initialised, F, unused, alpha, max_correction_gain]
# [cos F] [sin F]
# [trend 3x3] [guard band-pass b0 b1 b2 a1 a2 zi0 zi1] [E F]
# [s 3 x n] [P n x n] [phasors 2F] [h n] [Ph n] [K n] [guard state 3 x 2] [guard power 3],
# with n = 3 + 2F.
_NCONST = 11


def _state_size(F: int) -> int:
    n = 3 + 2 * F
    return _NCONST + 3 * F + 9 + 7 + 3 * n + n * n + 2 * F + 3 * n + 9


@jit_inline
def _views(st):
    """The named parts of the state vector (see the layout)."""
    F = int(st[7])
    n = 3 + 2 * F
    o = _NCONST
    cs = st[o : o + F]
    sn = st[o + F : o + 2 * F]
    o += 2 * F
    trend = st[o : o + 9].reshape((3, 3))
    o += 9
    bp = st[o : o + 7]
    o += 7
    E = st[o : o + F]
    o += F
    s = st[o : o + 3 * n].reshape((3, n))
    o += 3 * n
    P = st[o : o + n * n].reshape((n, n))
    o += n * n
    rot = st[o : o + 2 * F]
    o += 2 * F
    h = st[o : o + n]
    Ph = st[o + n : o + 2 * n]
    K = st[o + 2 * n : o + 3 * n]
    o += 3 * n
    gz = st[o : o + 6].reshape((3, 2))
    gpow = st[o + 6 : o + 9]
    return cs, sn, trend, bp, E, s, P, rot, h, Ph, K, gz, gpow


@jit
def _kalman_step(x, st):
    """One 3-axis sample; returns the filtered sample (a new array). ``st``: the whole state.

    Raises ValueError (state untouched) if ``x`` holds a non-finite number.
    """
    cs, sn, trend, bp, E, s, P, rot, h, Ph, K, gz, gpow = _views(st)
    out = np.empty(3)
    if not _kalman_core(x, out, st, cs, sn, trend, bp, E, s, P, rot, h, Ph, K, gz, gpow):
        raise ValueError("the sample holds a number that is not finite; it was ignored")
    return out


@jit_inline
def _kalman_core(x, out, consts, cs, sn, trend, bp, E, s, P, rot, h, Ph, K, gz, gpow):
    """The filter for one sample (see the module docstring and the state layout).

    The resonators are written in their equivalent rotating-regressor form: each bin's state is
    a constant weight pair (a random walk) seen through ``h = [cos φ_i, −sin φ_i]``, φ_i
    advancing by the bin's frequency every sample. A rotation is orthogonal and the resonator
    noise is isotropic, so this is the same filter as rotating the states, but only the three
    trend rows and columns of P change in the prediction.
    """
    for a in range(3):
        if not math.isfinite(x[a]):
            return False
    n = P.shape[0]
    F = E.shape[0]
    T = consts[0]
    alpha = consts[9]  # the trend's acceleration decays (a Singer model): bounded uncertainty
    beta = consts[4]
    if consts[6] == 0.0:  # first sample: the trend starts at it, no tremor yet
        for a in range(3):
            s[a, 0] = x[a]
            out[a] = x[a]
            gz[a, 0] = bp[5] * x[a]  # the guard band-pass settled at the first sample
            gz[a, 1] = bp[6] * x[a]
            gpow[a] = 0.0
        for i in range(F):
            rot[2 * i] = 1.0
            rot[2 * i + 1] = 0.0
        consts[6] = 1.0
        return True
    # the guard: the power of the input in the tremor band, measured outside the Kalman filter
    for a in range(3):
        yb = bp[0] * x[a] + gz[a, 0]
        gz[a, 0] = bp[1] * x[a] - bp[3] * yb + gz[a, 1]
        gz[a, 1] = bp[2] * x[a] - bp[4] * yb
        gpow[a] += beta * (yb * yb - gpow[a])
    # ---- advance the regressors (unit phasors, renormalised to first order every sample)
    h[0] = 1.0
    h[1] = 0.0
    h[2] = 0.0
    for i in range(F):
        c = rot[2 * i]
        d = rot[2 * i + 1]
        c2 = cs[i] * c - sn[i] * d
        d2 = sn[i] * c + cs[i] * d
        g = 1.5 - 0.5 * (c2 * c2 + d2 * d2)
        rot[2 * i] = c2 * g
        rot[2 * i + 1] = d2 * g
        h[3 + 2 * i] = c2 * g
        h[4 + 2 * i] = -d2 * g
    # ---- predict: the trend moves, the tremor weights are a random walk
    hT = 0.5 * T * T
    for a in range(3):
        p, v, acc = s[a, 0], s[a, 1], s[a, 2]
        s[a, 0] = p + v * T + hT * acc
        s[a, 1] = v + acc * T
        s[a, 2] = alpha * acc
    for j in range(n):  # P <- A P A^T with A = blockdiag(A_trend, I): rows, then columns
        p0, p1, p2 = P[0, j], P[1, j], P[2, j]
        P[0, j] = p0 + T * p1 + hT * p2
        P[1, j] = p1 + T * p2
        P[2, j] = alpha * p2
    for j in range(n):
        p0, p1, p2 = P[j, 0], P[j, 1], P[j, 2]
        P[j, 0] = p0 + T * p1 + hT * p2
        P[j, 1] = p1 + T * p2
        P[j, 2] = alpha * p2
    e_tot = 0.0
    for i in range(F):
        e_tot += E[i]
    q_trend = consts[2] * e_tot
    for i in range(3):
        for j in range(3):
            P[i, j] += trend[i, j] * q_trend
    floor = consts[5] * e_tot
    for i in range(F):
        q = consts[1] * (E[i] + floor)
        P[3 + 2 * i, 3 + 2 * i] += q
        P[4 + 2 * i, 4 + 2 * i] += q
    # ---- measurement update
    for j in range(n):
        acc = P[j, 0]
        for m in range(3, n):
            acc += P[j, m] * h[m]
        Ph[j] = acc
    S = Ph[0]
    for m in range(3, n):
        S += h[m] * Ph[m]
    S += consts[3] * e_tot
    if not S > 0.0:
        # Rounding has broken the covariance (possible after huge jumps at a tiny tremor
        # scale): start again from this sample, as after reset(). Never seen on hand motion;
        # the output is then the input, which is always safe.
        for i in range(n):
            for j in range(n):
                P[i, j] = 0.0
        for a in range(3):
            for j in range(n):
                s[a, j] = 0.0
            s[a, 0] = x[a]
            out[a] = x[a]
        return True
    for j in range(n):
        K[j] = Ph[j] / S
    for i in range(n):  # P -= K Ph^T, kept exactly symmetric (half the products)
        ki = K[i]
        for j in range(i, n):
            v = P[i, j] - ki * Ph[j]
            P[i, j] = v
            P[j, i] = v
    for a in range(3):
        pred = s[a, 0]
        for m in range(3, n):
            pred += h[m] * s[a, m]
        innovation = x[a] - pred
        for j in range(n):
            s[a, j] += K[j] * innovation
        tremor = 0.0
        for m in range(3, n):
            tremor += h[m] * s[a, m]
        # Safety: never take off more than the tremor band of the input itself can hold
        # (a multiple of its peak), whatever the filter's state: bounded input, bounded output.
        limit = consts[10] * math.sqrt(2.0 * gpow[a])
        if tremor > limit:
            tremor = limit
        elif tremor < -limit:
            tremor = -limit
        out[a] = x[a] - tremor
    # ---- where the tremor is: smoothed energy per bin, all axes (|weights|^2 = amplitude^2)
    for i in range(F):
        e = 0.0
        for a in range(3):
            c = s[a, 3 + 2 * i]
            d = s[a, 4 + 2 * i]
            e += c * c + d * d
        e_new = E[i] + beta * (e - E[i])
        E[i] = e_new if e_new > _ENERGY_ABS_FLOOR_M2 else _ENERGY_ABS_FLOOR_M2
    return True


@jit
def _kalman_block(X, Y, st):
    """Filter rows of ``X`` into ``Y``; returns the index of the first bad row, or -1."""
    cs, sn, trend, bp, E, s, P, rot, h, Ph, K, gz, gpow = _views(st)
    x = np.empty(3)
    out = np.empty(3)
    for k in range(X.shape[0]):
        for a in range(3):
            x[a] = X[k, a]
        if not _kalman_core(x, out, st, cs, sn, trend, bp, E, s, P, rot, h, Ph, K, gz, gpow):
            return k
        for a in range(3):
            Y[k, a] = out[a]
    return -1


class AdaptiveKalman(Filter):
    """The project's tremor filter (kind ``"kalman"``, and ``"default"``). See the module doc.

    Parameters (units in the names; defaults tuned on ``telesurgery-bench tremor``):

    - ``f_low_hz``, ``f_high_hz``, ``bin_hz``: the resonator grid (6–16 Hz, 1.25 Hz apart: nine
      resonators; 1 Hz gives ~2 points more reduction for ~15 % more time);
    - ``tremor_adapt_per_s``: process noise of a bin per unit of its energy, per second;
    - ``trend_noise``: the voluntary trend's jerk noise density relative to the tremor energy
      (s⁻⁵); larger follows voluntary motion more tightly but lets more tremor through;
    - ``measurement_noise``: measurement noise variance relative to the tremor energy;
    - ``energy_time_constant_s``: smoothing of the per-bin energy (where the tremor is);
    - ``energy_floor``: share of the total energy every bin keeps (to catch a new peak);
    - ``trend_accel_time_s``: the trend's acceleration relaxes to zero with this time constant
      (voluntary accelerations do not persist; it keeps the trend's uncertainty bounded);
    - ``max_correction_gain``: the correction taken off each axis is at most this many times
      the peak amplitude of the input's own 4–24 Hz band (a separate band-pass): a hard bound,
      whatever the Kalman filter's state, so the output is bounded by a multiple of the input.
    """

    kind = "kalman"

    def __init__(
        self,
        rate_hz: float,
        use_numba: bool | None = None,
        *,
        f_low_hz: float = 6.0,
        f_high_hz: float = 16.0,
        bin_hz: float = 1.25,
        tremor_adapt_per_s: float = 100.0,
        trend_noise: float = 2e7,
        measurement_noise: float = 0.01,
        energy_time_constant_s: float = 0.1,
        energy_floor: float = 0.01,
        trend_accel_time_s: float = 0.12,
        max_correction_gain: float = 2.0,
    ) -> None:
        super().__init__(rate_hz, use_numba)
        nyquist = self.rate_hz / 2
        if not 0 < f_low_hz <= f_high_hz < nyquist:
            raise ValueError(
                f"need 0 < f_low_hz <= f_high_hz < {nyquist:g} (Nyquist), "
                f"got {f_low_hz:g}..{f_high_hz:g} Hz"
            )
        if not bin_hz > 0:
            raise ValueError(f"bin_hz must be > 0, got {bin_hz!r}")
        for name, value in (
            ("tremor_adapt_per_s", tremor_adapt_per_s),
            ("trend_noise", trend_noise),
            ("measurement_noise", measurement_noise),
            ("energy_time_constant_s", energy_time_constant_s),
            ("trend_accel_time_s", trend_accel_time_s),
            ("max_correction_gain", max_correction_gain),
        ):
            check_positive(name, value)
        if not 0 <= check_nonnegative("energy_floor", energy_floor) <= 1:
            raise ValueError(f"energy_floor must be in [0, 1], got {energy_floor!r}")
        self._params = {
            "f_low_hz": float(f_low_hz),
            "f_high_hz": float(f_high_hz),
            "bin_hz": float(bin_hz),
            "tremor_adapt_per_s": float(tremor_adapt_per_s),
            "trend_noise": float(trend_noise),
            "measurement_noise": float(measurement_noise),
            "energy_time_constant_s": float(energy_time_constant_s),
            "energy_floor": float(energy_floor),
            "trend_accel_time_s": float(trend_accel_time_s),
            "max_correction_gain": float(max_correction_gain),
        }
        T = 1.0 / self.rate_hz
        self.freqs_hz = np.arange(f_low_hz, f_high_hz + 1e-9, bin_hz)
        F = len(self.freqs_hz)
        n = 3 + 2 * F
        self._n = n
        w = 2 * np.pi * self.freqs_hz * T
        st = np.zeros(_state_size(F))
        st[:_NCONST] = (
            T,
            tremor_adapt_per_s * T,
            trend_noise,
            measurement_noise,
            1.0 - math.exp(-T / energy_time_constant_s),
            energy_floor,
            0.0,
            F,
            0.0,  # unused
            math.exp(-T / trend_accel_time_s),
            max_correction_gain,
        )
        o = _NCONST
        st[o : o + F] = np.cos(w)
        st[o + F : o + 2 * F] = np.sin(w)
        o += 2 * F
        # white jerk noise of unit density over one period
        st[o : o + 9] = [
            T**5 / 20, T**4 / 8, T**3 / 6,
            T**4 / 8, T**3 / 3, T**2 / 2,
            T**3 / 6, T**2 / 2, T,
        ]  # fmt: skip
        o += 9
        self.guard_sos = signal.butter(
            1, [4.0, 24.0], btype="bandpass", fs=self.rate_hz, output="sos"
        )
        b0, b1, b2, _, a1, a2 = self.guard_sos[0]
        zi = signal.sosfilt_zi(self.guard_sos)[0]
        st[o : o + 7] = (b0, b1, b2, a1, a2, zi[0], zi[1])
        self._dyn = o + 7  # where the evolving part starts (E, s, P, ...): reset() zeroes it
        self._st = st
        self._step_k = pick(_kalman_step, use_numba)
        self._block_k = pick(_kalman_block, use_numba)
        self.reset()
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile (or load) every specialisation ``step``/``process`` can hit now, on a scratch
        state: writable and read-only inputs (device samples are often read-only). Otherwise
        the first such sample would stall a 1 kHz loop for a compile."""
        for writable in (True, False):
            st = self._st.copy()
            x = np.zeros(3)
            x.flags.writeable = writable
            self._step_k(x, st)
            self._step_k(x, st)
            X = np.zeros((2, 3))
            X.flags.writeable = writable
            self._block_k(X, np.empty((2, 3)), st)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def reset(self) -> None:
        st, F = self._st, len(self.freqs_hz)
        st[self._dyn :] = 0.0
        st[6] = 0.0  # not initialised: the next sample starts the trend
        st[self._dyn : self._dyn + F] = _ENERGY_ABS_FLOOR_M2
        # P = 0: the trend starts at rest at the first sample; uncertainty then grows with the
        # process noise, which is relative to the tremor energy, so the filter has no absolute
        # scale above the (10 nm)^2 energy floor

    def step(self, x: Any) -> np.ndarray:
        return self._step_k(as_vec3(x), self._st)  # type: ignore[no-any-return]

    def process(self, X: Any) -> np.ndarray:
        X = as_block(X)
        Y = np.empty_like(X)
        bad = self._block_k(X, Y, self._st)
        if bad >= 0:  # as_block checked finiteness, so this cannot happen; keep the contract
            raise ValueError(f"row {bad} holds a number that is not finite")
        return Y
