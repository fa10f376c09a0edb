"""The numba switch: kernels are compiled with numba unless ``TELESURGERY_NO_NUMBA=1``.

Kernels are pure functions on arrays with explicit state (no Python objects, no allocation in the
per-sample path). ``jit`` compiles them with ``cache=True``; :func:`plain` returns the original
Python function of a kernel, so one process can run both paths (tests compare them) and a
debugger or coverage tool can step through the Python version.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

NUMBA_ENABLED = os.environ.get("TELESURGERY_NO_NUMBA", "").lower() not in ("1", "true", "yes")

if NUMBA_ENABLED:
    import numba

    def jit(fn: F) -> F:
        """Compile a kernel with numba (nopython, cached on disk)."""
        return numba.njit(cache=True, nogil=True)(fn)  # type: ignore[return-value]

    def jit_inline(fn: F) -> F:
        """Compile a helper kernel that numba inlines into its callers (no call overhead)."""
        return numba.njit(cache=True, nogil=True, inline="always")(fn)  # type: ignore[return-value]

else:

    def jit(fn: F) -> F:
        """numba is switched off: the kernel runs as plain Python."""
        return fn

    jit_inline = jit


_PLAIN_NAMESPACES: dict[int, dict[str, Any]] = {}


def _plain_namespace(module_globals: dict[str, Any]) -> dict[str, Any]:
    """A copy of a module's namespace where every compiled kernel is replaced by plain Python.

    A kernel's ``py_func`` still calls the *compiled* helpers it names; rebinding its globals
    here makes the whole call tree plain, so the plain path really is Python throughout.
    """
    ns = _PLAIN_NAMESPACES.get(id(module_globals))
    if ns is None:
        ns = dict(module_globals)
        # registered before recursing: modules may import each other
        _PLAIN_NAMESPACES[id(module_globals)] = ns
        for name, value in module_globals.items():
            fn = getattr(value, "py_func", None)
            if isinstance(fn, types.FunctionType):
                ns[name] = types.FunctionType(
                    fn.__code__,
                    _plain_namespace(fn.__globals__),
                    fn.__name__,
                    fn.__defaults__,
                    fn.__closure__,
                )
    return ns


def plain(kernel: F) -> F:
    """The plain-Python version of a kernel, helpers it calls included (itself if numba is off)."""
    fn = getattr(kernel, "py_func", None)
    if fn is None:
        return kernel
    return _plain_namespace(fn.__globals__)[fn.__name__]  # type: ignore[no-any-return]


def pick(kernel: F, use_numba: bool | None) -> F:
    """``kernel`` compiled or plain: ``use_numba=None`` follows the switch."""
    if use_numba is None:
        use_numba = NUMBA_ENABLED
    return kernel if use_numba else plain(kernel)
