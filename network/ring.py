"""A bounded buffer of the newest samples, for the per-tick figures of long-running loops."""

from __future__ import annotations

import numpy as np


class Ring:
    """The newest ``capacity`` float samples (older ones are overwritten); O(1) append.

    A 1 kHz loop appending one sample per tick keeps the last ``capacity`` ms: 600,000 samples
    (10 minutes) take 4.8 MB, however long the process runs.
    """

    __slots__ = ("_a", "_i", "_n")

    def __init__(self, capacity: int = 600_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._a = np.empty(capacity)
        self._i = 0
        self._n = 0

    def append(self, x: float) -> None:
        a = self._a
        a[self._i] = x
        self._i = (self._i + 1) % a.shape[0]
        if self._n < a.shape[0]:
            self._n += 1

    def values(self) -> np.ndarray:
        """The samples held, oldest first (a copy)."""
        if self._n < self._a.shape[0]:
            return self._a[: self._n].copy()
        return np.concatenate([self._a[self._i :], self._a[: self._i]])

    def newest(self, n: int) -> np.ndarray:
        """The newest ``min(n, len)`` samples, oldest first (a copy; O(n), not O(capacity))."""
        n = min(max(n, 0), self._n)
        if n == 0:
            return self._a[:0].copy()
        start = self._i - n
        if start >= 0:
            return self._a[start : self._i].copy()
        return np.concatenate([self._a[start:], self._a[: self._i]])

    def __len__(self) -> int:
        return self._n
