"""The filter interface every tremor filter implements (see :func:`filters.make_filter`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class Filter(ABC):
    """A causal filter on 3-axis positions (m) sampled at ``rate_hz``.

    ``step(x)`` filters one sample (a 3-vector) and returns the filtered 3-vector (a new array);
    ``process(X)`` filters an ``(N, 3)`` block and returns ``(N, 3)``; both advance the same
    state, so a block gives exactly what stepping its rows one by one gives. ``reset()`` returns
    to the initial state (the next sample is treated as the first: filters start settled at it).
    """

    kind: str = ""

    def __init__(self, rate_hz: float, use_numba: bool | None = None) -> None:
        if not (rate_hz > 0 and np.isfinite(rate_hz)):
            raise ValueError(f"rate_hz must be a positive number, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        self.use_numba = use_numba
        self._out = np.zeros(3)

    @abstractmethod
    def step(self, x: Any) -> np.ndarray:
        """Filter one 3-axis sample; returns the filtered 3-vector."""

    @abstractmethod
    def process(self, X: Any) -> np.ndarray:
        """Filter an (N, 3) block; returns (N, 3)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the past: the next sample starts the filter anew."""

    @property
    def params(self) -> dict[str, Any]:
        """The parameters this filter was made with (for reports)."""
        return {}

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(rate_hz={self.rate_hz:g}{', ' + p if p else ''})"


_F64 = np.dtype(np.float64)


def as_vec3(x: Any) -> np.ndarray:
    """A float64 3-vector from ``x``; ValueError (naming the problem) for anything else.

    A contiguous float64 array of shape (3,) is returned as it is, unchecked for finiteness
    (the step kernels check that themselves, for speed): the fast path of ``step``.
    """
    if type(x) is np.ndarray and x.dtype == _F64 and x.shape == (3,) and x.flags.c_contiguous:
        return x
    # contiguous, so kernels only ever see contiguous inputs (one compiled version fewer)
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.shape != (3,):
        raise ValueError(f"expected a 3-vector (x, y, z), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"sample {a} holds a number that is not finite")
    return a


def as_block(X: Any) -> np.ndarray:
    """A C-contiguous float64 (N, 3) array from ``X``; ValueError otherwise."""
    a = np.ascontiguousarray(X, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"expected an (N, 3) block, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("the block holds numbers that are not finite")
    return a
