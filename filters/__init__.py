"""Tremor filters on 3-axis positions: numba kernels with explicit state, thin Python classes.

    from filters import make_filter, FILTERS
    f = make_filter("butterworth", rate_hz=1000.0, cutoff_hz=6.0)
    y = f.step(x)        # x: 3-vector (m) -> filtered 3-vector (a new array)
    Y = f.process(X)     # (N, 3) -> (N, 3), the same as stepping the rows
    f.reset()            # the next sample starts the filter anew (settled at it)

Kinds (:data:`FILTERS`): ``"default"`` (the recommended filter: the project's adaptive Kalman
filter, ``"kalman"``, see ``filters/kalman.py``), ``"butterworth"``, ``"critically_damped"``,
``"one_euro"``, ``"wflc"``, ``"bmflc"``. See ``filters/lti.py``, ``onefilter.py`` and
``adaptive.py`` for the others' parameters, and ``filters/registry.py`` for the table of kinds
(``filter_params(kind)`` gives a kind's parameters and defaults).

Motion scaling with clutch (indexing) is :class:`MotionScaler` (``filters/scaling.py``).
Set ``TELESURGERY_NO_NUMBA=1`` to run every kernel as plain Python.
"""

from filters._jit import NUMBA_ENABLED
from filters.base import Filter
from filters.registry import FILTERS, filter_params, make_filter
from filters.scaling import MotionScaler, ScalingConfig

__all__ = [
    "FILTERS",
    "NUMBA_ENABLED",
    "Filter",
    "MotionScaler",
    "ScalingConfig",
    "filter_params",
    "make_filter",
]
