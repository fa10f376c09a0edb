"""The 1€ filter (Casiez, Roussel, Vogel, CHI 2012): a first-order low-pass whose cutoff rises with
speed, so slow motion is smoothed hard and fast motion passes with little lag.

Per axis, at each sample (te = 1 / rate_hz, alpha(fc) = 1 / (1 + 1 / (2π·fc·te))):

    dx   = (x − x̂_prev) / te                      the raw speed
    dx̂  = dx̂_prev + alpha(d_cutoff_hz)·(dx − dx̂_prev)
    fc   = min_cutoff_hz + beta·|dx̂|
    x̂   = x̂_prev + alpha(fc)·(x − x̂_prev)         the output

The first sample passes unchanged (x̂ = x, dx̂ = 0), so a constant input is never disturbed. Each
output is a convex combination of the input and the previous output: |y| <= max |x|.

``beta`` is in Hz per (m/s). The default 10 keeps the filter shut against tremor (250 µm RMS at
10 Hz is ~0.02 m/s peak, ~0.002 m/s after the 1 Hz speed filter: +0.02 Hz) and opens it for
voluntary motion: 1 cm/s adds 0.1 Hz, 0.1 m/s (a fast reach) adds 1 Hz, doubling the 1 Hz cutoff.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from filters._jit import jit
from filters.lti import KernelFilter, check_nonnegative, check_positive, finite3, finite_row

# prm: the constants; st: the state
P_RATE, P_ALPHA_D, P_MIN_CUTOFF, P_BETA = range(4)
S_STARTED = 6  # st[0:3] = x̂, st[3:6] = dx̂, st[6] = 1 once a sample came


@jit
def one_euro_axis(prm, st, a, v):
    """One sample ``v`` of axis ``a``; returns the output."""
    rate = prm[P_RATE]
    prev = st[a]
    dx = (v - prev) * rate
    edx = st[3 + a] + prm[P_ALPHA_D] * (dx - st[3 + a])
    st[3 + a] = edx
    cutoff = prm[P_MIN_CUTOFF] + prm[P_BETA] * abs(edx)
    alpha = 1.0 / (1.0 + rate / (2.0 * math.pi * cutoff))
    out = prev + alpha * (v - prev)
    st[a] = out
    return out


@jit
def one_euro_start(st, a, v):
    """The first sample of axis ``a``: x̂ = v, dx̂ = 0."""
    st[a] = v
    st[3 + a] = 0.0


@jit
def one_euro_step(x, y, prm, st):
    """Step kernel: one 3-axis sample; False (state untouched) if ``x`` is not finite."""
    if not finite3(x):
        return False
    if st[S_STARTED] == 0.0:
        for a in range(3):
            one_euro_start(st, a, x[a])
        st[S_STARTED] = 1.0
    for a in range(3):
        y[a] = one_euro_axis(prm, st, a, x[a])
    return True


@jit
def one_euro_block(X, Y, prm, st):
    """Block kernel: ``one_euro_step`` on each row; returns the number of rows done."""
    for n in range(X.shape[0]):
        if not finite_row(X, n):
            return n
        if st[S_STARTED] == 0.0:
            for a in range(3):
                one_euro_start(st, a, X[n, a])
            st[S_STARTED] = 1.0
        for a in range(3):
            Y[n, a] = one_euro_axis(prm, st, a, X[n, a])
    return X.shape[0]


class OneEuro(KernelFilter):
    """The 1€ filter on 3 axes: ``min_cutoff_hz`` (1.0), ``beta`` (10.0 Hz per m/s),
    ``d_cutoff_hz`` (1.0, the cutoff of the speed estimate)."""

    kind = "one_euro"

    def __init__(
        self,
        rate_hz: float,
        use_numba: bool | None = None,
        *,
        min_cutoff_hz: float = 1.0,
        beta: float = 10.0,
        d_cutoff_hz: float = 1.0,
    ) -> None:
        super().__init__(rate_hz, use_numba)
        self.min_cutoff_hz = check_positive("min_cutoff_hz", min_cutoff_hz)
        self.beta = check_nonnegative("beta", beta)
        self.d_cutoff_hz = check_positive("d_cutoff_hz", d_cutoff_hz)
        prm = np.zeros(4)
        prm[P_RATE] = self.rate_hz
        prm[P_ALPHA_D] = 1.0 / (1.0 + self.rate_hz / (2.0 * math.pi * self.d_cutoff_hz))
        prm[P_MIN_CUTOFF] = self.min_cutoff_hz
        prm[P_BETA] = self.beta
        self._bind(one_euro_step, one_euro_block, prm, np.zeros(7))

    @property
    def params(self) -> dict[str, Any]:
        return {
            "min_cutoff_hz": self.min_cutoff_hz,
            "beta": self.beta,
            "d_cutoff_hz": self.d_cutoff_hz,
        }
