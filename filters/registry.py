"""The kinds of tremor filter, by name, and :func:`make_filter`.

Each entry maps a kind to a filter class and the parameters that kind fixes on top of the class's
defaults (a caller's parameters override them). ``"default"`` is the project's recommended
filter: re-point it here, in one line.
"""

from __future__ import annotations

import inspect
from typing import Any

from filters.adaptive import BMFLC, WFLC
from filters.base import Filter
from filters.kalman import AdaptiveKalman
from filters.lti import Butterworth, CriticallyDamped
from filters.onefilter import OneEuro

REGISTRY: dict[str, tuple[type[Filter], dict[str, Any]]] = {
    "default": (AdaptiveKalman, {}),
    "kalman": (AdaptiveKalman, {}),
    "butterworth": (Butterworth, {}),
    "critically_damped": (CriticallyDamped, {}),
    "one_euro": (OneEuro, {}),
    "wflc": (WFLC, {}),
    "bmflc": (BMFLC, {}),
}

FILTERS: tuple[str, ...] = tuple(REGISTRY)


def filter_params(kind: str) -> dict[str, Any]:
    """The parameters ``kind`` takes, with the values it uses when none are given."""
    cls, fixed = _lookup(kind)
    return {**_class_params(cls), **fixed}


def make_filter(kind: str, rate_hz: float, use_numba: bool | None = None, **params: Any) -> Filter:
    """A new filter of ``kind`` (one of :data:`FILTERS`) for 3-axis samples at ``rate_hz``.

    ``use_numba``: None follows ``TELESURGERY_NO_NUMBA``; False runs the plain-Python kernels.
    ``params`` override the kind's defaults; an unknown or invalid one raises ValueError.
    """
    cls, fixed = _lookup(kind)
    known = _class_params(cls)
    for name in params:
        if name not in known:
            raise ValueError(
                f"unknown parameter {name!r} for filter {kind!r}; it takes: {', '.join(known)}"
            )
    return cls(rate_hz, use_numba, **{**fixed, **params})


def _lookup(kind: str) -> tuple[type[Filter], dict[str, Any]]:
    try:
        return REGISTRY[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown filter kind {kind!r}; known: {', '.join(FILTERS)}") from None


def _class_params(cls: type[Filter]) -> dict[str, Any]:
    """The keyword-only parameters of ``cls`` with their defaults."""
    return {
        p.name: p.default
        for p in inspect.signature(cls).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
