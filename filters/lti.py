"""Linear low-pass filters run as second-order-section cascades, and the kernel-filter machinery.

Two kinds live here: ``"butterworth"`` and ``"critically_damped"``. Both run the same kernel, a
cascade of second-order sections in transposed direct form II, written exactly as scipy's
``sosfilt`` runs it, so ``Butterworth(...).process(X)`` equals
``scipy.signal.sosfilt(f.sos, X, axis=0, zi=f.zi_for(X[0]))`` to rounding.

The shared pieces every filter of the package is built from are here too (the other modules import
them): :class:`KernelFilter`, the thin Python class around a step kernel and a block kernel; the
parameter checks; and the SOS kernels :func:`sos_settle_axis` and :func:`sos_axis`, which the
adaptive filters reuse for their prefilter.

A coefficient array ``coef`` of shape (S, 8) holds one section per row: ``b0 b1 b2 a0 a1 a2``
(``a0 == 1``) and then ``zi0 zi1``, that section's state for a constant input of 1 (scipy's
``sosfilt_zi``). The cascade state ``z`` has shape (S, 2, 3), the layout scipy's ``zi`` takes for
an (N, 3) signal filtered along axis 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from filters._jit import jit, pick
from filters.base import Filter, as_block, as_vec3

# ---------------------------------------------------------------------------------------------
# Parameter checks (ValueError naming the parameter)


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_nonnegative(name: str, value: Any) -> float:
    """A finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_frequency(name: str, value: Any, rate_hz: float) -> float:
    """A frequency strictly between 0 and the Nyquist frequency ``rate_hz / 2``."""
    v = check_positive(name, value)
    if v >= rate_hz / 2:
        raise ValueError(
            f"{name}={v:g} Hz must lie below the Nyquist frequency {rate_hz / 2:g} Hz "
            f"(rate_hz={rate_hz:g})"
        )
    return v


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """True or False (numpy bools too), nothing else."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# ---------------------------------------------------------------------------------------------
# Kernels


@jit
def finite3(x):
    """True when the three components of ``x`` are finite."""
    return math.isfinite(x[0]) and math.isfinite(x[1]) and math.isfinite(x[2])


@jit
def finite_row(X, n):
    """True when the three components of row ``n`` of ``X`` are finite."""
    return math.isfinite(X[n, 0]) and math.isfinite(X[n, 1]) and math.isfinite(X[n, 2])


# Kernels come in two layers. Per-axis pieces take and return scalars (``sos_axis``): they hold
# all the arithmetic. Step kernels apply them to ``x[a]`` and block kernels to ``X[n, a]``, the
# same calls in the same order, so a block is bit-identical to stepping its rows. (Taking row
# views ``X[n]`` inside numba costs ~35 ns each: more than a whole SOS section.)


@jit
def sos_settle_axis(coef, z, a, v):
    """Set axis ``a`` of the cascade state ``z`` (S, 2, 3) to its steady state for input ``v``."""
    for s in range(coef.shape[0]):
        z[s, 0, a] = coef[s, 6] * v
        z[s, 1, a] = coef[s, 7] * v


@jit
def sos_axis(coef, z, a, v):
    """One sample ``v`` of axis ``a`` through the cascade; returns the output.

    Transposed direct form II, the same operations in the same order as scipy's ``sosfilt``.
    """
    for s in range(coef.shape[0]):
        u = coef[s, 0] * v + z[s, 0, a]
        z[s, 0, a] = coef[s, 1] * v - coef[s, 4] * u + z[s, 1, a]
        z[s, 1, a] = coef[s, 2] * v - coef[s, 5] * u
        v = u
    return v


@jit
def sos_settle(coef, z, x):
    """Set the cascade state to its steady state for the constant 3-axis input ``x``."""
    for a in range(3):
        sos_settle_axis(coef, z, a, x[a])


@jit
def lti_step(x, y, coef, z, flag):
    """Step kernel: filter one sample ``x`` into ``y``; False (state untouched) if not finite.

    ``flag[0] == 0`` means "no sample yet": the cascade first settles at ``x``.
    """
    if not finite3(x):
        return False
    if flag[0] == 0.0:
        sos_settle(coef, z, x)
        flag[0] = 1.0
    for a in range(3):
        y[a] = sos_axis(coef, z, a, x[a])
    return True


@jit
def lti_block(X, Y, coef, z, flag):
    """Block kernel: ``lti_step`` on each row; returns the number of rows done."""
    for n in range(X.shape[0]):
        if not finite_row(X, n):
            return n
        if flag[0] == 0.0:
            for a in range(3):
                sos_settle_axis(coef, z, a, X[n, a])
            flag[0] = 1.0
        for a in range(3):
            Y[n, a] = sos_axis(coef, z, a, X[n, a])
    return X.shape[0]


# ---------------------------------------------------------------------------------------------
# The Python side


class KernelFilter(Filter):
    """A filter made of a step kernel, a block kernel and the arrays they work on.

    Kernels take ``(x, y, *arrays)``: the input (3,) or (N, 3), the output of the same shape,
    then the filter's arrays (coefficients and state), and return True / the row count. A
    subclass builds its arrays and calls :meth:`_bind`; ``step``, ``process`` and ``reset`` are
    shared. ``reset`` restores every array to the copy taken by ``_bind``.
    """

    def _bind(self, step_kernel: Any, block_kernel: Any, *arrays: np.ndarray) -> None:
        self._kstep = pick(step_kernel, self.use_numba)
        self._kblock = pick(block_kernel, self.use_numba)
        self._args = arrays
        self._initial = tuple(a.copy() for a in arrays)
        self._warm_up()

    def _warm_up(self) -> None:
        """Call both kernels on scratch copies, so compiling (or loading numba's on-disk cache)
        happens here, at construction, and never on the first ``step`` of a real-time loop.

        numba compiles one version per input type, so both inputs ``step`` and ``process`` pass
        on are warmed: C-contiguous and read-only (``np.frombuffer`` of a received message);
        ``as_vec3``/``as_block`` make everything else contiguous.
        """
        scratch = tuple(a.copy() for a in self._initial)
        readonly = np.zeros(3)
        readonly.flags.writeable = False
        for x in (np.zeros(3), readonly):
            self._kstep(x, np.zeros(3), *scratch)
        block = np.zeros((1, 3))
        self._kblock(block, np.zeros((1, 3)), *scratch)
        block.flags.writeable = False
        self._kblock(block, np.zeros((1, 3)), *scratch)

    def step(self, x: Any) -> np.ndarray:
        x = as_vec3(x)
        out = self._out
        if not self._kstep(x, out, *self._args):
            raise ValueError(
                f"sample {x!r} holds a number that is not finite (NaN or inf); "
                "it was rejected and the filter state is unchanged"
            )
        return out.copy()

    def process(self, X: Any) -> np.ndarray:
        X = as_block(X)
        Y = np.empty_like(X)
        done = self._kblock(X, Y, *self._args)
        if done != X.shape[0]:  # as_block checked finiteness: this cannot happen
            raise ValueError(f"row {done} of the block holds a number that is not finite")
        return Y

    def reset(self) -> None:
        for a, a0 in zip(self._args, self._initial, strict=True):
            a[...] = a0


def sos_coef(sos: np.ndarray) -> np.ndarray:
    """The (S, 8) coefficient array for an SOS matrix: sections normalised to ``a0 = 1``, then
    each section's steady state for a unit input (scipy's ``sosfilt_zi``) in columns 6 and 7."""
    from scipy import signal

    sos = np.array(sos, dtype=np.float64, ndmin=2)
    sos = sos / sos[:, 3:4]
    coef = np.zeros((sos.shape[0], 8))
    coef[:, :6] = sos
    coef[:, 6:] = signal.sosfilt_zi(sos)
    return coef


class SOSFilter(KernelFilter):
    """A linear filter run as an SOS cascade (transposed direct form II) on 3 axes."""

    def _bind_sos(self, sos: np.ndarray) -> None:
        self._coef = sos_coef(sos)
        self._z = np.zeros((self._coef.shape[0], 2, 3))
        self._flag = np.zeros(1)
        self._bind(lti_step, lti_block, self._coef, self._z, self._flag)

    @property
    def sos(self) -> np.ndarray:
        """The (S, 6) second-order sections (``a0 = 1``), as scipy's ``sosfilt`` takes them."""
        return self._coef[:, :6].copy()

    def zi_for(self, x0: Any) -> np.ndarray:
        """The (S, 2, 3) initial state this filter starts from when its first sample is ``x0``:
        ``scipy.signal.sosfilt(f.sos, X, axis=0, zi=f.zi_for(X[0]))`` equals ``f.process(X)``."""
        x0 = as_vec3(x0)
        return self._coef[:, 6:8, None] * x0[None, None, :]


MAX_ORDER = 32


class Butterworth(SOSFilter):
    """Butterworth low-pass of any ``order`` (default 2) with ``cutoff_hz`` (default 6.0, −3 dB).

    Designed by ``scipy.signal.butter(order, cutoff_hz, fs=rate_hz, output="sos")``. At 1 kHz the
    2nd-order 6 Hz filter lags slow motion by ~38 ms and attenuates 8/10/12 Hz by −6/−9/−12 dB.
    """

    kind = "butterworth"

    def __init__(
        self,
        rate_hz: float,
        use_numba: bool | None = None,
        *,
        order: int = 2,
        cutoff_hz: float = 6.0,
    ) -> None:
        super().__init__(rate_hz, use_numba)
        from scipy import signal

        self.order = check_int("order", order, 1, MAX_ORDER)
        self.cutoff_hz = check_frequency("cutoff_hz", cutoff_hz, self.rate_hz)
        self._bind_sos(signal.butter(self.order, self.cutoff_hz, fs=self.rate_hz, output="sos"))

    @property
    def params(self) -> dict[str, Any]:
        return {"order": self.order, "cutoff_hz": self.cutoff_hz}


class CriticallyDamped(SOSFilter):
    """Low-pass with ``order`` (default 2) real poles, all at ``cutoff_hz`` (default 4.0).

    H(s) = (w / (s + w))**order with w = 2π·cutoff_hz, discretised by the bilinear transform
    prewarped at the cutoff (``scipy.signal.bilinear_zpk``), as SOS, each section scaled to unit
    DC gain. The step response has no overshoot while ``cutoff_hz <= rate_hz / 4`` (the digital
    poles are then real and >= 0). Note that ``cutoff_hz`` is the pole frequency, not the −3 dB
    frequency: a 2nd-order filter is −3 dB at 0.644·cutoff_hz, −6 dB at cutoff_hz.
    """

    kind = "critically_damped"

    def __init__(
        self,
        rate_hz: float,
        use_numba: bool | None = None,
        *,
        order: int = 2,
        cutoff_hz: float = 4.0,
    ) -> None:
        super().__init__(rate_hz, use_numba)
        from scipy import signal

        self.order = check_int("order", order, 1, MAX_ORDER)
        self.cutoff_hz = check_frequency("cutoff_hz", cutoff_hz, self.rate_hz)
        fs = self.rate_hz
        w = 2 * fs * math.tan(math.pi * self.cutoff_hz / fs)  # prewarped: exact at the cutoff
        z, p, _ = signal.bilinear_zpk([], [-w] * self.order, w**self.order, fs)
        # All zeros are at −1 and all poles at the same real point: pair them into sections by
        # hand (zpk2sos would pad an odd order with a pole and a zero at the origin), each
        # scaled to unit DC gain, as the analog prototype has (this also spreads the gain).
        sos = np.zeros(((self.order + 1) // 2, 6))
        for i, sec in enumerate(sos):
            b = np.poly(z[2 * i : 2 * i + 2].real)
            a = np.poly(p[2 * i : 2 * i + 2].real)
            sec[: len(b)] = b * (a.sum() / b.sum())
            sec[3 : 3 + len(a)] = a
        self._bind_sos(sos)

    @property
    def params(self) -> dict[str, Any]:
        return {"order": self.order, "cutoff_hz": self.cutoff_hz}
