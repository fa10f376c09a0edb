"""Adaptive tremor cancellers: WFLC (Riviere, Rader, Thakor 1998) and BMFLC (Veluvolu et al. 2007).

Both follow the same plan, per axis:

1. a prefilter removes the voluntary motion: a Butterworth high-pass (published setups use
   2–4 Hz). It starts settled at the first sample, so a constant input prefilters to 0 (to
   rounding), and an order >= 2 rejects a constant-velocity ramp completely in steady state;
2. a linear combiner of sines and cosines is fitted to the prefiltered signal ``s`` by normalised
   LMS; its a-priori estimate ``ŝ`` (weights before this sample's update) is the tremor estimate;
3. the output is ``x − ŝ`` (or ``x − ŝ_raw``, see ``compensate_prefilter``).

Prefilter defaults: WFLC 4th order at 3 Hz, BMFLC 2nd order at 2 Hz. The WFLC's frequency is
pulled by whatever voluntary motion leaks through (with 2nd order at 2 Hz a 1 cm, 0.5 Hz motion
drags it to the 6 Hz clamp), so it gets the steeper filter (0.5 Hz: −62 dB instead of −24 dB);
its phase lead at the tremor (57/46/38° at 8/10/12 Hz) is undone by ``compensate_prefilter``,
on by default for the WFLC. The BMFLC is a linear time-invariant filter (fixed frequencies,
constant NLMS normalisation); its published, uncompensated form needs the small phase lead of
the gentler filter (21/16/14° at 8/10/12 Hz).

``compensate_prefilter``: ``ŝ`` models the *prefiltered* tremor, which leads the raw tremor by the
prefilter's phase: subtracting it from ``x`` leaves |1 − e^{jφ}| of the tremor (30 % for 17°).
With the option on, each sine/cosine pair of weights is rotated by −arg H(f) and scaled by
1/|H(f)| (H the prefilter's response at that pair's frequency) before it is subtracted, so the
estimate refers to the raw signal; the adaptation itself is unchanged. For the WFLC this plays
the part of Riviere's WFLC–FLC pair (an FLC on the unfiltered input, driven by the WFLC's
frequency) without letting voluntary motion into the combiner.

Step sizes are given independently of the sample rate (per second) and normalised:

* amplitudes: NLMS, ``w += (mu/rate_hz)·err·ref / |ref|²`` (|ref|² is the number of sine/cosine
  pairs, exactly: the references have unit amplitude). The a-posteriori error shrinks by
  ``mu/rate_hz`` per sample: a time constant of ~1/mu seconds at any rate; the update is linear
  in the signal, so it behaves the same for 50 µm and 250 µm tremor.
* WFLC frequency: ``ω += (mu0/rate_hz²)·err·Σ r(w_r cos rθ − w_{M+r} sin rθ) / (P + P_floor)``
  (ω in rad/sample), P a running mean of s² (time constant ``power_tau_s``). err·Σ(...) scales
  with the squared tremor amplitude and so does P: the frequency adapts at the same speed for any
  amplitude. ``power_floor_m2`` (1e-12 m² = (1 µm)²) keeps a still hand from blowing the step up.

BMFLC's references come from rotating phasors, one complex multiply per frequency per sample
plus a one-step Newton renormalisation of the modulus, shared by the three axes.

Known limit of the BMFLC (measured, and what the LTI view predicts): a tone exactly between two
grid frequencies is hardly cancelled (the notches of neighbouring bins cancel each other's pull
there); over a band of width B Hz it leaves roughly a fraction 1/(1 + mu/(4·B)) of the power
of a broad tremor. A bigger ``mu`` widens the notches but lets more voluntary motion into the
estimate. Its bins' phases also all realign every 1/df_hz = 2 s: after a fast move the
estimate decays in bursts at that period rather than smoothly (a 2 cm, 0.2 s reach leaves
~0.2 mm at +2 s, ~0.06 mm at +4 s; the WFLC's is gone within 1 s).

Kernel pieces (reuse them for variants): :func:`harmonic_refs`, :func:`sos_response`,
:func:`wflc_axis` (WFLC); :func:`bank_refs`, :func:`bank_estimate`, :func:`bank_nlms`,
:func:`bank_advance`, :func:`bmflc_axis` (BMFLC); ``filters.lti``'s :func:`sos_settle_axis` /
:func:`sos_axis` for the prefilter. Step kernels apply the per-axis pieces to ``x[a]``, block
kernels to ``X[n, a]``, in the same order (bit-identical, and no per-row array views).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from filters._jit import jit
from filters.lti import (
    KernelFilter,
    check_bool,
    check_frequency,
    check_int,
    check_positive,
    finite3,
    finite_row,
    sos_axis,
    sos_coef,
    sos_settle,
    sos_settle_axis,
)

TWO_PI = 2.0 * math.pi

# ---------------------------------------------------------------------------------------------
# Shared Python-side design


def highpass_coef(order: int, cutoff_hz: float, rate_hz: float) -> np.ndarray:
    """The prefilter: a Butterworth high-pass as an (S, 8) coefficient array (see filters.lti)."""
    from scipy import signal

    return sos_coef(signal.butter(order, cutoff_hz, btype="highpass", fs=rate_hz, output="sos"))


def prefilter_response(coef: np.ndarray, freqs_hz: np.ndarray, rate_hz: float) -> np.ndarray:
    """The prefilter's complex response H(e^{j2πf/rate}) at ``freqs_hz``."""
    from scipy import signal

    _, h = signal.sosfreqz(coef[:, :6], worN=np.asarray(freqs_hz, dtype=float), fs=rate_hz)
    return h


def _check_prefilter(rate_hz: float, prefilter_hz: Any, prefilter_order: Any, f_low_hz: float):
    order = check_int("prefilter_order", prefilter_order, 1, 8)
    cutoff = check_frequency("prefilter_hz", prefilter_hz, rate_hz)
    if cutoff >= f_low_hz:
        raise ValueError(
            f"prefilter_hz={cutoff:g} must lie below the tremor band's f_low_hz={f_low_hz:g}"
        )
    return cutoff, order


def _check_band(rate_hz: float, f_low_hz: Any, f_high_hz: Any) -> tuple[float, float]:
    lo = check_frequency("f_low_hz", f_low_hz, rate_hz)
    hi = check_frequency("f_high_hz", f_high_hz, rate_hz)
    if hi <= lo:
        raise ValueError(f"f_high_hz={hi:g} must be above f_low_hz={lo:g}")
    return lo, hi


def _check_rate_step(name: str, value: Any, rate_hz: float) -> float:
    v = check_positive(name, value)
    if v >= rate_hz:
        raise ValueError(f"{name}={v:g} per second must be below rate_hz={rate_hz:g} (unstable)")
    return v


# ---------------------------------------------------------------------------------------------
# WFLC kernels

# sc of the WFLC: the started flag, then the constants
W_STARTED, W_MU0, W_MU1, W_OMEGA_MIN, W_OMEGA_MAX, W_POWER_ALPHA, W_POWER_FLOOR, W_COMPENSATE = (
    range(8)
)
W_NSC = 8
# ax[a] of the WFLC: phase (rad), frequency (rad/sample), running power of s (m²)
A_THETA, A_OMEGA, A_POWER = range(3)


@jit
def harmonic_refs(theta, ref, m):
    """``ref[r] = sin((r+1)θ)``, ``ref[m+r] = cos((r+1)θ)`` for r < m (two trig calls)."""
    s1 = math.sin(theta)
    c1 = math.cos(theta)
    ref[0] = s1
    ref[m] = c1
    for r in range(1, m):
        ref[r] = ref[r - 1] * c1 + ref[m + r - 1] * s1
        ref[m + r] = ref[m + r - 1] * c1 - ref[r - 1] * s1


@jit
def sos_response(coef, omega):
    """The cascade's complex response H(e^{jω}) at ω rad/sample."""
    z1 = complex(math.cos(omega), -math.sin(omega))
    z2 = z1 * z1
    h = complex(1.0, 0.0)
    for s in range(coef.shape[0]):
        num = coef[s, 0] + coef[s, 1] * z1 + coef[s, 2] * z2
        den = coef[s, 3] + coef[s, 4] * z1 + coef[s, 5] * z2
        h = h * num / den
    return h


@jit
def wflc_axis(pf, zpf, sc, ax, w, ref, a, v):
    """One sample ``v`` of axis ``a``: prefilter, estimate, adapt; returns ``v`` − estimate.

    ``pf``/``zpf``: prefilter coefficients and state; ``sc``: flag and constants; ``ax`` (3, 3):
    phase, frequency, power per axis; ``w`` (3, 2M): sine weights, then cosine weights; ``ref``
    (2M,): scratch.
    """
    s = sos_axis(pf, zpf, a, v)
    m = w.shape[1] // 2
    omega = ax[a, A_OMEGA]
    theta = ax[a, A_THETA] + omega
    if theta > math.pi:
        theta -= TWO_PI
    ax[a, A_THETA] = theta
    harmonic_refs(theta, ref, m)
    est = 0.0
    for j in range(2 * m):
        est += w[a, j] * ref[j]
    err = s - est
    power = ax[a, A_POWER] + sc[W_POWER_ALPHA] * (s * s - ax[a, A_POWER])
    ax[a, A_POWER] = power
    est_raw = est
    if sc[W_COMPENSATE] != 0.0:
        est_raw = 0.0
        for r in range(m):
            g = 1.0 / sos_response(pf, (r + 1) * omega)
            sr = ref[r]
            cr = ref[m + r]
            est_raw += w[a, r] * (g.real * sr + g.imag * cr)
            est_raw += w[a, m + r] * (g.real * cr - g.imag * sr)
    grad = 0.0
    for r in range(m):
        grad += (r + 1) * (w[a, r] * ref[m + r] - w[a, m + r] * ref[r])
    omega += sc[W_MU0] * err * grad / (power + sc[W_POWER_FLOOR])
    ax[a, A_OMEGA] = min(max(omega, sc[W_OMEGA_MIN]), sc[W_OMEGA_MAX])
    step = sc[W_MU1] * err
    for j in range(2 * m):
        w[a, j] += step * ref[j]
    return v - est_raw


@jit
def wflc_step(x, y, pf, zpf, sc, ax, w, ref):
    """Step kernel of the WFLC: False (state untouched) if ``x`` is not finite."""
    if not finite3(x):
        return False
    if sc[W_STARTED] == 0.0:
        sos_settle(pf, zpf, x)
        sc[W_STARTED] = 1.0
    for a in range(3):
        y[a] = wflc_axis(pf, zpf, sc, ax, w, ref, a, x[a])
    return True


@jit
def wflc_block(X, Y, pf, zpf, sc, ax, w, ref):
    """Block kernel: ``wflc_step`` on each row; returns the number of rows done."""
    for n in range(X.shape[0]):
        if not finite_row(X, n):
            return n
        if sc[W_STARTED] == 0.0:
            for a in range(3):
                sos_settle_axis(pf, zpf, a, X[n, a])
            sc[W_STARTED] = 1.0
        for a in range(3):
            Y[n, a] = wflc_axis(pf, zpf, sc, ax, w, ref, a, X[n, a])
    return X.shape[0]


class WFLC(KernelFilter):
    """Weighted-frequency Fourier linear combiner, one adaptive frequency per axis.

    Parameters (defaults): ``harmonics`` M (1); ``f0_hz`` start frequency (10.0); ``f_low_hz`` /
    ``f_high_hz``, the clamp on the frequency (6.0 / 16.0); ``mu0`` frequency step (500, rad/s²
    per unit of normalised error, see the module doc); ``mu1`` amplitude step (20 /s);
    ``power_tau_s`` (0.1); ``power_floor_m2`` (1e-12); ``prefilter_hz`` (3.0);
    ``prefilter_order`` (4); ``compensate_prefilter`` (True).

    With the defaults at 1 kHz a steady tone anywhere in 7–13 Hz is locked within ~1–1.5 s from
    the 10 Hz start, at 50 µm as at 250 µm. A larger ``mu0`` (2000) locks faster but can limit-cycle
    against the clamp near 6–7 Hz.
    """

    kind = "wflc"

    def __init__(
        self,
        rate_hz: float,
        use_numba: bool | None = None,
        *,
        harmonics: int = 1,
        f0_hz: float = 10.0,
        f_low_hz: float = 6.0,
        f_high_hz: float = 16.0,
        mu0: float = 500.0,
        mu1: float = 20.0,
        power_tau_s: float = 0.1,
        power_floor_m2: float = 1e-12,
        prefilter_hz: float = 3.0,
        prefilter_order: int = 4,
        compensate_prefilter: bool = True,
    ) -> None:
        super().__init__(rate_hz, use_numba)
        rate = self.rate_hz
        self.harmonics = check_int("harmonics", harmonics, 1, 8)
        self.f_low_hz, self.f_high_hz = _check_band(rate, f_low_hz, f_high_hz)
        if self.harmonics * self.f_high_hz >= rate / 2:
            raise ValueError(
                f"harmonics × f_high_hz = {self.harmonics * self.f_high_hz:g} Hz must lie below "
                f"the Nyquist frequency {rate / 2:g} Hz"
            )
        self.f0_hz = check_positive("f0_hz", f0_hz)
        if not self.f_low_hz <= self.f0_hz <= self.f_high_hz:
            raise ValueError(f"f0_hz={self.f0_hz:g} must lie in [f_low_hz, f_high_hz]")
        self.mu0 = check_positive("mu0", mu0)
        self.mu1 = _check_rate_step("mu1", mu1, rate)
        self.power_tau_s = check_positive("power_tau_s", power_tau_s)
        self.power_floor_m2 = check_positive("power_floor_m2", power_floor_m2)
        self.prefilter_hz, self.prefilter_order = _check_prefilter(
            rate, prefilter_hz, prefilter_order, self.f_low_hz
        )
        self.compensate_prefilter = check_bool("compensate_prefilter", compensate_prefilter)

        m = self.harmonics
        pf = highpass_coef(self.prefilter_order, self.prefilter_hz, rate)
        sc = np.zeros(W_NSC)
        sc[W_MU0] = self.mu0 / rate**2
        sc[W_MU1] = self.mu1 / rate / m  # NLMS: |ref|² = m
        sc[W_OMEGA_MIN] = TWO_PI * self.f_low_hz / rate
        sc[W_OMEGA_MAX] = TWO_PI * self.f_high_hz / rate
        sc[W_POWER_ALPHA] = -math.expm1(-1.0 / (rate * self.power_tau_s))
        sc[W_POWER_FLOOR] = self.power_floor_m2
        sc[W_COMPENSATE] = float(self.compensate_prefilter)
        ax = np.zeros((3, 3))
        ax[:, A_OMEGA] = TWO_PI * self.f0_hz / rate
        self._ax = ax
        self._w = np.zeros((3, 2 * m))
        zpf = np.zeros((pf.shape[0], 2, 3))
        self._bind(wflc_step, wflc_block, pf, zpf, sc, ax, self._w, np.zeros(2 * m))

    @property
    def weights(self) -> np.ndarray:
        """A copy of the weights (3, 2M): per axis the sine weights, then the cosine weights."""
        return self._w.copy()

    @property
    def frequency_hz(self) -> np.ndarray:
        """The current tremor frequency estimate per axis (Hz)."""
        return self._ax[:, A_OMEGA] * self.rate_hz / TWO_PI

    @property
    def params(self) -> dict[str, Any]:
        return {
            "harmonics": self.harmonics,
            "f0_hz": self.f0_hz,
            "f_low_hz": self.f_low_hz,
            "f_high_hz": self.f_high_hz,
            "mu0": self.mu0,
            "mu1": self.mu1,
            "power_tau_s": self.power_tau_s,
            "power_floor_m2": self.power_floor_m2,
            "prefilter_hz": self.prefilter_hz,
            "prefilter_order": self.prefilter_order,
            "compensate_prefilter": self.compensate_prefilter,
        }


# ---------------------------------------------------------------------------------------------
# BMFLC kernels

# bank[i], one row per frequency bin i (constants, then state, then per-sample scratch):
BK_ROT_C, BK_ROT_S = 0, 1  # cos ω_i, sin ω_i: the phasor's rotation per sample
BK_G_R, BK_G_I = 2, 3  # the compensation 1/H(f_i) (1, 0 when off)
BK_PH_C, BK_PH_S = 4, 5  # the phasor now: cos, sin of the bin's phase
BK_REF = 6  # sin, cos: the references of this sample
BK_REF_COMP = 8  # the same rotated by the compensation
BK_COLS = 10
# sc: the started flag, then the NLMS step per sample over |ref|² = mu / rate_hz / K
SC_STARTED, SC_MU = 0, 1
# w[a, i]: the sine and cosine weights of axis a, bin i.


@jit
def bank_refs(bank):
    """Fill the references from the phasors: sin, cos, and the same rotated by the compensation."""
    for i in range(bank.shape[0]):
        c = bank[i, BK_PH_C]
        s = bank[i, BK_PH_S]
        gr = bank[i, BK_G_R]
        gi = bank[i, BK_G_I]
        bank[i, BK_REF] = s
        bank[i, BK_REF + 1] = c
        bank[i, BK_REF_COMP] = gr * s + gi * c
        bank[i, BK_REF_COMP + 1] = gr * c - gi * s


@jit
def bank_estimate(w, a, bank):
    """Axis ``a``'s estimates: (of the prefiltered signal, compensated), i.e.
    Σ_i w[a, i, 0]·sin_i + w[a, i, 1]·cos_i with the plain and the compensated references."""
    est = 0.0
    est_comp = 0.0
    for i in range(w.shape[1]):
        ws = w[a, i, 0]
        wc = w[a, i, 1]
        est += ws * bank[i, BK_REF] + wc * bank[i, BK_REF + 1]
        est_comp += ws * bank[i, BK_REF_COMP] + wc * bank[i, BK_REF_COMP + 1]
    return est, est_comp


@jit
def bank_nlms(w, a, bank, step_err):
    """The LMS update of axis ``a``'s weights: ``w[a] += step_err · (sin, cos)``."""
    for i in range(w.shape[1]):
        w[a, i, 0] += step_err * bank[i, BK_REF]
        w[a, i, 1] += step_err * bank[i, BK_REF + 1]


@jit
def bank_advance(bank):
    """Rotate every phasor by its bin's frequency (one complex multiply), then pull its modulus
    back to 1 with one Newton step for 1/sqrt (rounding never accumulates)."""
    for i in range(bank.shape[0]):
        c = bank[i, BK_PH_C]
        s = bank[i, BK_PH_S]
        c2 = c * bank[i, BK_ROT_C] - s * bank[i, BK_ROT_S]
        s2 = c * bank[i, BK_ROT_S] + s * bank[i, BK_ROT_C]
        k = 1.5 - 0.5 * (c2 * c2 + s2 * s2)
        bank[i, BK_PH_C] = c2 * k
        bank[i, BK_PH_S] = s2 * k


@jit
def bmflc_axis(pf, zpf, bank, w, sc, a, v):
    """One sample ``v`` of axis ``a`` (references already made): prefilter, estimate, adapt;
    returns ``v`` − estimate."""
    s = sos_axis(pf, zpf, a, v)
    est, est_raw = bank_estimate(w, a, bank)
    bank_nlms(w, a, bank, sc[SC_MU] * (s - est))
    return v - est_raw


@jit
def bmflc_step(x, y, pf, zpf, bank, w, sc):
    """Step kernel of the BMFLC: False (state untouched) if ``x`` is not finite."""
    if not finite3(x):
        return False
    if sc[SC_STARTED] == 0.0:
        sos_settle(pf, zpf, x)
        sc[SC_STARTED] = 1.0
    bank_refs(bank)
    for a in range(3):
        y[a] = bmflc_axis(pf, zpf, bank, w, sc, a, x[a])
    bank_advance(bank)
    return True


@jit
def bmflc_block(X, Y, pf, zpf, bank, w, sc):
    """Block kernel: ``bmflc_step`` on each row; returns the number of rows done."""
    for n in range(X.shape[0]):
        if not finite_row(X, n):
            return n
        if sc[SC_STARTED] == 0.0:
            for a in range(3):
                sos_settle_axis(pf, zpf, a, X[n, a])
            sc[SC_STARTED] = 1.0
        bank_refs(bank)
        for a in range(3):
            Y[n, a] = bmflc_axis(pf, zpf, bank, w, sc, a, X[n, a])
        bank_advance(bank)
    return X.shape[0]


class BMFLC(KernelFilter):
    """Band-limited multiple Fourier linear combiner: fixed frequencies, NLMS weights.

    Parameters (defaults): ``f_low_hz`` (6.0), ``f_high_hz`` (16.0), ``df_hz`` (0.5): the grid
    f_low, f_low + df, ..., up to f_high (21 bins); ``mu`` NLMS step (50 /s, see the module doc);
    ``prefilter_hz`` (2.0); ``prefilter_order`` (2); ``compensate_prefilter`` (False).

    Variants: override :meth:`_design_bank` to change the frequencies (set ``freqs_hz`` there)
    or the compensation, or write new step and block kernels from :func:`bmflc_axis` and the
    ``bank_*`` pieces and bind them with :meth:`_bind`.
    """

    kind = "bmflc"

    def __init__(
        self,
        rate_hz: float,
        use_numba: bool | None = None,
        *,
        f_low_hz: float = 6.0,
        f_high_hz: float = 16.0,
        df_hz: float = 0.5,
        mu: float = 50.0,
        prefilter_hz: float = 2.0,
        prefilter_order: int = 2,
        compensate_prefilter: bool = False,
    ) -> None:
        super().__init__(rate_hz, use_numba)
        rate = self.rate_hz
        self.f_low_hz, self.f_high_hz = _check_band(rate, f_low_hz, f_high_hz)
        self.df_hz = check_positive("df_hz", df_hz)
        n_bins = math.floor((self.f_high_hz - self.f_low_hz) / self.df_hz + 1e-9) + 1
        if n_bins > 1000:
            raise ValueError(f"df_hz={self.df_hz:g} makes {n_bins} frequencies (at most 1000)")
        self.mu = _check_rate_step("mu", mu, rate)
        self.prefilter_hz, self.prefilter_order = _check_prefilter(
            rate, prefilter_hz, prefilter_order, self.f_low_hz
        )
        self.compensate_prefilter = check_bool("compensate_prefilter", compensate_prefilter)

        self.freqs_hz = self.f_low_hz + self.df_hz * np.arange(n_bins)
        pf = highpass_coef(self.prefilter_order, self.prefilter_hz, rate)
        design = self._design_bank(pf)
        k = design.shape[0]
        self._w = np.zeros((3, k, 2))
        bank = np.zeros((k, BK_COLS))
        bank[:, :4] = design
        bank[:, BK_PH_C] = 1.0  # every phasor starts at phase 0
        sc = np.array([0.0, self.mu / rate / k])
        self._bind(bmflc_step, bmflc_block, pf, np.zeros((pf.shape[0], 2, 3)), bank, self._w, sc)

    @property
    def weights(self) -> np.ndarray:
        """A copy of the weights (3, K, 2): per axis and frequency, the sine and cosine weight."""
        return self._w.copy()

    def _design_bank(self, pf: np.ndarray) -> np.ndarray:
        """The bank's constants, (K, 4): per bin the rotation (cos, sin of 2πf/rate) and the
        compensation (1/H(f) as real, imaginary parts)."""
        omega = TWO_PI * self.freqs_hz / self.rate_hz
        bank = np.zeros((len(omega), 4))
        bank[:, 0] = np.cos(omega)
        bank[:, 1] = np.sin(omega)
        if self.compensate_prefilter:
            g = 1.0 / prefilter_response(pf, self.freqs_hz, self.rate_hz)
            bank[:, 2] = g.real
            bank[:, 3] = g.imag
        else:
            bank[:, 2] = 1.0
        return bank

    @property
    def params(self) -> dict[str, Any]:
        return {
            "f_low_hz": self.f_low_hz,
            "f_high_hz": self.f_high_hz,
            "df_hz": self.df_hz,
            "mu": self.mu,
            "prefilter_hz": self.prefilter_hz,
            "prefilter_order": self.prefilter_order,
            "compensate_prefilter": self.compensate_prefilter,
        }
