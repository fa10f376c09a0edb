"""Arm drivers from installed packages: the entry-point group, loading, and construction.

A driver package registers its :class:`~slave_arm.driver.ArmDriver` subclass in the entry-point
group :data:`ENTRY_POINT_GROUP` (``telesurgery.arm_drivers``), in its ``pyproject.toml``::

    [project.entry-points."telesurgery.arm_drivers"]
    acme = "acme_arm.driver:AcmeArm"

``slave-arm --driver acme`` then serves it, ``slave-arm --list-drivers`` lists it with the first
line of its class docstring, and ``slave-arm check-driver acme`` runs the conformance kit on it.
A driver not yet registered can be named by its import path, ``module:Class`` (the current
directory is searched too, as ``python -m`` does).

Options reach the driver's constructor as keyword arguments (``--driver-option KEY=VALUE``,
``--driver-config FILE.toml``); a key the constructor does not take is an error naming the keys
it does take. A driver must also be constructible with no arguments (the conformance kit builds
it that way), so every option needs a default.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from slave_arm.driver import ArmDriver

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "telesurgery.arm_drivers"
"""The entry-point group a driver package registers its ArmDriver class in."""


class DriverLookupError(LookupError):
    """No driver by that name, or the name does not lead to an ArmDriver class."""


@dataclass(frozen=True)
class InstalledDriver:
    """A driver registered in :data:`ENTRY_POINT_GROUP`; ``error`` says why it cannot load."""

    name: str
    target: str
    """The entry point's value, ``module:Class``."""
    cls: type[ArmDriver] | None
    error: str | None

    @property
    def summary(self) -> str:
        """The first line of the class docstring ("" when it cannot load or has none)."""
        return driver_summary(self.cls) if self.cls is not None else ""


def driver_summary(cls: type) -> str:
    """The first line of a class's own docstring, or ""."""
    doc = cls.__dict__.get("__doc__") or ""
    return inspect.cleandoc(doc).split("\n", 1)[0].strip() if doc.strip() else ""


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)  # an install seen twice lists its entry points twice
    return found


def _checked(obj: object, where: str) -> type[ArmDriver]:
    if not (isinstance(obj, type) and issubclass(obj, ArmDriver)):
        raise DriverLookupError(f"{where} is {obj!r}, not an ArmDriver subclass")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise DriverLookupError(f"{where} is abstract: it does not implement {missing}")
    return obj


def installed_drivers() -> list[InstalledDriver]:
    """Every driver in the entry-point group, loaded, or with the error that stopped it."""
    out = []
    for name, ep in sorted(_entry_points().items()):
        try:
            out.append(InstalledDriver(name, ep.value, _checked(ep.load(), ep.value), None))
        except Exception as exc:  # a missing dependency, a broken module, not a driver
            logger.info("driver %r (%s) cannot be loaded: %s", name, ep.value, exc)
            out.append(InstalledDriver(name, ep.value, None, f"{type(exc).__name__}: {exc}"))
    return out


def load_driver_class(name: str) -> type[ArmDriver]:
    """The driver class registered as ``name``, or at the import path ``module:Class``.

    Raises :class:`DriverLookupError` naming the installed drivers for an unknown name, and
    whatever importing the driver raises (a missing dependency of the driver package).
    """
    if ":" in name:
        module, _, attr = name.partition(":")
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # like ``python -m``: a module next to you
        try:
            obj: object = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise DriverLookupError(
                f"cannot import {module!r} for driver {name!r}: {exc} (is the package installed, "
                "or the module on PYTHONPATH?)"
            ) from exc
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise DriverLookupError(f"module {module!r} has no {attr!r} (driver {name!r})")
            obj = getattr(obj, part)
        return _checked(obj, name)
    eps = _entry_points()
    if name not in eps:
        raise DriverLookupError(
            f"no arm driver named {name!r}; installed: {', '.join(sorted(eps)) or 'none'} "
            f"(a driver package registers its class in the entry-point group "
            f"{ENTRY_POINT_GROUP!r} and must be installed, e.g. pip install -e PATH; or name the "
            "class as module:Class)"
        )
    return _checked(eps[name].load(), f"entry point {name!r} ({eps[name].value})")


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as a TOML value (``3``, ``true``, ``"a"``, ``[1, 2]``);
    a VALUE that is not TOML is taken as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ValueError(f'option {text!r} is not KEY=VALUE (e.g. control_mode="position")')
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def load_options(path: str | Path | None, pairs: list[str] | None = None) -> dict[str, Any]:
    """Driver options: the ``[driver]`` table of a TOML file (or its top level when it has no
    such table), then each ``KEY=VALUE`` pair on top."""
    options: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ValueError(f"driver config {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"driver config {p} is not valid TOML: {exc}") from None
        table = data.get("driver", data)
        if not isinstance(table, dict):
            raise ValueError(f"driver config {p}: [driver] must be a table")
        options.update(table)
    for text in pairs or ():
        key, value = parse_option(text)
        options[key] = value
    return options


def make_driver(
    name_or_cls: str | type[ArmDriver],
    options: Mapping[str, Any] | None = None,
    *,
    if_accepted: Mapping[str, Any] | None = None,
) -> ArmDriver:
    """Build a driver with the user's ``options`` (each must be a constructor parameter) and the
    ``if_accepted`` ones (passed only where the constructor takes them and the value is not None:
    the CLI's generic flags such as ``gui`` or ``seed``)."""
    cls = load_driver_class(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = [k for k in options or {} if k not in params and not takes_any]
    if unknown:
        raise ValueError(
            f"driver {cls.__name__} takes no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(accepted) or 'none'}"
        )
    kwargs = {k: v for k, v in (if_accepted or {}).items() if k in params and v is not None}
    kwargs.update(options or {})
    return cls(**kwargs)


__all__ = [
    "ENTRY_POINT_GROUP",
    "DriverLookupError",
    "InstalledDriver",
    "driver_summary",
    "installed_drivers",
    "load_driver_class",
    "load_options",
    "make_driver",
    "parse_option",
]
