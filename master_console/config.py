"""The console's configuration file (TOML) and the input-device factory.

Everything has a default, so no file is needed; a file overrides what it names, and command-line
flags override the file. Units are in the names. An unknown section or key, or a value of the
wrong type, is an error that names it (a typo must never silently fall back to a default).

.. code-block:: toml

    [console]
    rate_hz = 1000.0          # control loop rate
    filter = "default"        # tremor filter kind (filters.FILTERS) or "none"; unset: "default"
                              # for pose devices, "none" for rate devices (joystick, SpaceMouse,
                              # keyboard: their integrated pose carries no hand tremor)
    scale = 0.2               # motion scale, 0.2 = 5:1
    rt_priority = 30          # SCHED_FIFO priority where permitted; 0 = normal scheduling

    [link]
    endpoint = "tcp://10.0.0.2:5555"    # the arm; "" (default) = start a local simulated arm
    profile = "lan"                     # network impairment profile, "" = none
    heartbeat_interval_ms = 20.0        # LOST after two silent periods
    console_key = ""                    # CURVE: this console's NAME.key_secret
    arm_public_key = ""                 # CURVE: the arm's NAME.key

    [input]
    device = "synthetic"      # synthetic | keyboard | glove | replay | joystick | spacemouse
                              # | expert (a scripted surgeon that performs --task by itself)
                              # | a device another package installed (master-console
                              #   --list-inputs) | "package.module:Class"

    [devices.acme-stylus]     # a plug-in device's constructor keywords (each one checked
    backend = "udp"           # against its signature); --input-option KEY=VALUE overrides
    port = 5700

    [synthetic]               # the seeded synthetic surgeon hand
    seed = 0
    amplitude_class = "typical"

    [glove]
    endpoint = "tcp://127.0.0.1:5580"
    jaw_open_rad = 1.0
    sample_rate_hz = 100.0    # the rate the glove sends at (declared for check-input)

    [replay]
    path = "session.rec"      # a console recording (.rec) or an InputRecording (.npz)
    speed = 1.0
    loop = false

    [keyboard]                # in the console window
    max_speed_m_s = 0.05

    [joystick]                # see master_console.joystick.JoystickConfig
    [spacemouse]              # see master_console.joystick.SpaceMouseConfig
    [force_feedback]          # see master_console.haptics.ForceFeedbackConfig
    [display]                 # see master_console.display.DisplayConfig

    [task]                    # training: master-console --task NAME
    name = ""                 # reach | peg-transfer | palpation ("" = no task)
    trainee = ""              # whose attempt ("" = $USER)
    report_dir = "results/reports"
    history = ""              # attempt history (SQLite); "" = ~/.telesurgery/history.sqlite
    [task.reach]              # pass/fail thresholds (see master_console.scoring)
    max_time_s = 60.0

    [record]
    path = ""                 # record the session here ("" = no recording)
    video = false             # also record the endoscope video frames
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from filters import FILTERS
from master_console.devices import (
    AxisMapping,
    GloveReceiver,
    InputDevice,
    InputRecording,
    KeyboardDevice,
    ReplayDevice,
)

log = logging.getLogger(__name__)

INPUTS = ("synthetic", "keyboard", "glove", "replay", "joystick", "spacemouse", "expert")
"""The built-in input devices, configured from their own sections (``[synthetic]``, ...)."""

ENTRY_POINT_GROUP = "telesurgery.input_devices"
"""The entry-point group a package registers its :class:`InputDevice` classes in."""

BUILTIN_TARGETS: dict[str, str] = {
    "synthetic": "master_console.synthetic:SyntheticHand",
    "keyboard": "master_console.devices:KeyboardDevice",
    "glove": "master_console.devices:GloveReceiver",
    "replay": "master_console.devices:ReplayDevice",
    "joystick": "master_console.joystick:JoystickDevice",
    "spacemouse": "master_console.joystick:SpaceMouseDevice",
    "expert": "master_console.expert:ScriptedExpert",
}
"""The class behind each built-in name (also registered in the entry-point group)."""


class ConfigError(ValueError):
    """A configuration file or value that cannot be used; the message says what and where."""


@dataclass(frozen=True)
class ConsoleSection:
    rate_hz: float = 1000.0
    filter: str = ""  # "" = by device: see filter_kind()
    scale: float = 0.2
    rt_priority: int = 30
    link_stats_hz: float = 2.0

    def __post_init__(self) -> None:
        if self.filter and self.filter != "none" and self.filter not in FILTERS:
            raise ConfigError(
                f"[console] filter {self.filter!r} is not one of none, {', '.join(FILTERS)}"
            )


@dataclass(frozen=True)
class LinkSection:
    endpoint: str = ""
    profile: str = ""
    heartbeat_interval_ms: float = 20.0
    console_key: str = ""
    arm_public_key: str = ""


@dataclass(frozen=True)
class InputSection:
    device: str = "synthetic"

    def __post_init__(self) -> None:
        if self.device in INPUTS or ":" in self.device:  # module:Class is loaded by validate()
            return
        if self.device not in input_entry_points():
            raise ConfigError(f"[input] {unknown_input_message(self.device)}")


@dataclass(frozen=True)
class SyntheticSection:
    seed: int = 0
    amplitude_class: str = "typical"
    noise_fraction: float = 0.25


@dataclass(frozen=True)
class GloveSection:
    endpoint: str = "tcp://127.0.0.1:5580"
    bind: bool = False
    jaw_open_rad: float = 1.0
    sample_rate_hz: float = 100.0


@dataclass(frozen=True)
class ReplaySection:
    path: str = ""
    speed: float = 1.0
    loop: bool = False


@dataclass(frozen=True)
class KeyboardSection:
    max_speed_m_s: float = 0.05
    max_rate_rad_s: float = 1.0
    jaw_rate_rad_s: float = 1.0
    jaw_max_rad: float = 1.0


@dataclass(frozen=True)
class RecordSection:
    path: str = ""
    video: bool = False


def filter_kind(settings: ConsoleSettings, device: InputDevice | None = None) -> str:
    """The tremor filter to run: the one configured, else ``"none"`` for a device whose motion
    is an integrated rate (its declared ``rate_input``: the keyboard, joystick and SpaceMouse
    among the built-ins; read from ``device`` when given, else from its class) and
    ``"default"`` for pose devices."""
    if settings.console.filter:
        return settings.console.filter
    source = device if device is not None else resolve_input_class(settings.input.device)
    return "none" if getattr(source, "rate_input", False) is True else "default"


_SIMPLE: dict[str, type] = {
    "console": ConsoleSection,
    "link": LinkSection,
    "input": InputSection,
    "synthetic": SyntheticSection,
    "glove": GloveSection,
    "replay": ReplaySection,
    "keyboard": KeyboardSection,
    "record": RecordSection,
}
# sections whose dataclasses live with their feature and validate themselves (``from_dict``);
# ``devices`` holds one table per plug-in device: its constructor's keywords
_DELEGATED = ("joystick", "spacemouse", "force_feedback", "display", "task", "devices")


@dataclass(frozen=True)
class ConsoleSettings:
    """The whole configuration: one attribute per section; delegated sections stay raw dicts
    (validated by their feature's ``from_dict`` when :meth:`validate` runs)."""

    console: ConsoleSection = field(default_factory=ConsoleSection)
    link: LinkSection = field(default_factory=LinkSection)
    input: InputSection = field(default_factory=InputSection)
    synthetic: SyntheticSection = field(default_factory=SyntheticSection)
    glove: GloveSection = field(default_factory=GloveSection)
    replay: ReplaySection = field(default_factory=ReplaySection)
    keyboard: KeyboardSection = field(default_factory=KeyboardSection)
    record: RecordSection = field(default_factory=RecordSection)
    joystick: dict[str, Any] = field(default_factory=dict)
    spacemouse: dict[str, Any] = field(default_factory=dict)
    force_feedback: dict[str, Any] = field(default_factory=dict)
    display: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, Any] = field(default_factory=dict)

    def replace(self, section: str, **values: Any) -> ConsoleSettings:
        """A copy with ``values`` set in ``section`` (how CLI flags override the file)."""
        if section in _DELEGATED:
            return dataclasses.replace(self, **{section: {**getattr(self, section), **values}})
        current = getattr(self, section)
        return dataclasses.replace(
            self, **{section: _build(_SIMPLE[section], section, {**_asdict(current), **values})}
        )

    def validate(self) -> None:
        """Build every delegated section once, so a bad value fails before anything starts."""
        self.joystick_config()
        self.force_feedback_config()
        self.display_config()
        self.task_config()
        if self.input.device == "spacemouse":
            self.spacemouse_config()
        self.device_options()

    def device_options(self, name: str | None = None) -> dict[str, Any]:
        """The checked constructor keywords (``[devices.NAME]``) of plug-in device ``name``
        (default: the one ``[input] device`` names; ``{}`` for a built-in). Checks that every
        ``[devices.*]`` entry is a table and names no built-in, loads the plug-in's class and
        checks each key against its constructor's signature (:class:`ConfigError` otherwise)."""
        for key, table in self.devices.items():
            if not isinstance(table, dict):
                raise ConfigError(f"[devices.{key}] must be a table, got {table!r}")
            if key in INPUTS:
                raise ConfigError(
                    f"[devices.{key}]: {key} is a built-in device, configured in its own "
                    f"section [{key}]"
                )
        name = self.input.device if name is None else name
        if name in INPUTS:
            return {}
        return check_device_options(
            resolve_input_class(name), self.devices.get(name, {}), f"[devices.{name}]"
        )

    def joystick_config(self) -> Any:
        from master_console.joystick import JoystickConfig

        return _delegate(JoystickConfig, "joystick", self.joystick)

    def spacemouse_config(self) -> Any:
        from master_console.joystick import SpaceMouseConfig

        return _delegate(SpaceMouseConfig, "spacemouse", self.spacemouse)

    def force_feedback_config(self) -> Any:
        from master_console.haptics import ForceFeedbackConfig

        return _delegate(ForceFeedbackConfig, "force_feedback", self.force_feedback)

    def task_config(self) -> dict[str, Any]:
        """``[task]``: name, trainee, report_dir, history, and per-task threshold tables
        (``[task.reach] max_time_s = 45``), validated by the scoring module."""
        from master_console.training import TASK_NAMES

        t = self.task
        keys = ("name", "trainee", "report_dir", "history", *TASK_NAMES)
        unknown = sorted(set(t) - set(keys))
        if unknown:
            raise ConfigError(
                f"[task] unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(keys)}"
            )
        for k in ("name", "trainee", "report_dir", "history"):
            if k in t and not isinstance(t[k], str):
                raise ConfigError(f"[task] {k} must be a string, got {t[k]!r}")
        if t.get("name") and t["name"] not in TASK_NAMES:
            raise ConfigError(f"[task] name {t['name']!r} is not one of {', '.join(TASK_NAMES)}")
        for name in TASK_NAMES:
            if name in t:
                from master_console.scoring import thresholds_from_dict

                try:
                    thresholds_from_dict(name, t[name])
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"[task.{name}] {exc}") from exc
        return t

    def display_config(self) -> Any:
        from master_console.display import DisplayConfig

        return _delegate(DisplayConfig, "display", self.display)


def _asdict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _delegate(cls: Any, section: str, values: dict[str, Any]) -> Any:
    try:
        return cls.from_dict(dict(values))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[{section}] {exc}") from exc


_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _type_ok(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _build(cls: type, section: str, values: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"[{section}] unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(fields)}"
        )
    out = {}
    for name, value in values.items():
        default = fields[name].default
        if not _type_ok(value, default):
            kind = _KIND_NAMES.get(type(default).__name__, type(default).__name__)
            raise ConfigError(f"[{section}] {name} must be {kind}, got {value!r}")
        out[name] = float(value) if isinstance(default, float) else value
    try:
        return cls(**out)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"[{section}] {exc}") from exc


def settings_from_dict(data: dict[str, Any]) -> ConsoleSettings:
    """Build :class:`ConsoleSettings` from a parsed TOML document."""
    valid = [*_SIMPLE, *_DELEGATED]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table, got {value!r}")
        if name == "devices":
            value = {k: dict(v) if isinstance(v, dict) else v for k, v in value.items()}
        kwargs[name] = dict(value) if name in _DELEGATED else _build(_SIMPLE[name], name, value)
    settings = ConsoleSettings(**kwargs)
    settings.validate()
    return settings


def load_settings(path: str | Path | None) -> ConsoleSettings:
    """Read a console TOML file (None: all defaults)."""
    if path is None:
        return ConsoleSettings()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {p} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    try:
        return settings_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Input devices from other packages (entry points) and their options


@dataclass(frozen=True)
class InstalledInput:
    """An input device the console can use: a built-in, or a class registered in
    :data:`ENTRY_POINT_GROUP`; ``error`` says why it cannot be loaded (then ``cls`` is None)."""

    name: str
    target: str
    """``module:Class``."""
    cls: type[InputDevice] | None
    error: str | None
    builtin: bool

    @property
    def description(self) -> str:
        """The first line of the class docstring ("" when it has none or cannot load)."""
        doc = inspect.getdoc(self.cls) if self.cls is not None else None
        if not doc:
            return ""
        line = doc.strip().splitlines()[0]
        return re.sub(r":\w+:`~?([^`]+)`", r"\1", line).replace("``", "")  # reST markup


def input_entry_points() -> dict[str, Any]:
    """The entry points in :data:`ENTRY_POINT_GROUP` by name (not loaded)."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            log.warning(
                "input device %r is registered twice (%s and %s); using the first",
                ep.name,
                found[ep.name].value,
                ep.value,
            )
        found.setdefault(ep.name, ep)  # an install seen twice lists its entry points twice
    return found


def input_names() -> list[str]:
    """Every name ``--input`` accepts: the built-ins, then the installed plug-ins (sorted)."""
    return [*INPUTS, *sorted(set(input_entry_points()) - set(INPUTS))]


def unknown_input_message(name: str) -> str:
    """Why ``name`` is no input device, with what is installed and how to add one."""
    plugins = sorted(set(input_entry_points()) - set(INPUTS))
    return (
        f"device {name!r} is not one of {', '.join(INPUTS)}, nor an installed input device "
        f"(entry-point group {ENTRY_POINT_GROUP!r}: {', '.join(plugins) or 'none installed'}); "
        "install the package that provides it (pip install ...), give it as "
        "package.module:Class, or see master-console --list-inputs"
    )


def load_input_class(target: str) -> type[InputDevice]:
    """Import ``module:Class`` (``module:Outer.Inner`` works too) and check it is an
    :class:`InputDevice` subclass; raises ImportError, AttributeError or TypeError."""
    module_name, sep, qualname = target.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"{target!r} is not module:Class")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, InputDevice)):
        raise TypeError(
            f"{target} is {obj!r}, not a subclass of master_console.devices.InputDevice"
        )
    return obj


def resolve_input_class(name: str) -> type[InputDevice]:
    """The class behind an input name: a built-in, an installed entry point, or
    ``module:Class``. Raises :class:`ConfigError` for an unknown name or one that cannot load."""
    if name in INPUTS:
        target = BUILTIN_TARGETS[name]
    elif ":" in name:
        target = name
    else:
        eps = input_entry_points()
        if name not in eps:
            raise ConfigError(unknown_input_message(name))
        target = eps[name].value
    try:
        return load_input_class(target)
    except (Exception, SystemExit) as exc:  # a missing dependency, a broken module
        raise ConfigError(
            f"input device {name!r} ({target}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc


def installed_input_devices() -> list[InstalledInput]:
    """The built-in devices, then every device in :data:`ENTRY_POINT_GROUP`, each loaded or
    with the error that stopped it (never raises for a broken plug-in)."""
    out: list[InstalledInput] = []
    eps = input_entry_points()
    for name in INPUTS:
        target = BUILTIN_TARGETS[name]
        try:
            out.append(InstalledInput(name, target, load_input_class(target), None, True))
        except (Exception, SystemExit) as exc:
            out.append(InstalledInput(name, target, None, f"{type(exc).__name__}: {exc}", True))
    for name, ep in sorted(eps.items()):
        if name in INPUTS:
            if ep.value != BUILTIN_TARGETS[name]:
                out.append(
                    InstalledInput(
                        name,
                        ep.value,
                        None,
                        f"the name {name!r} is taken by a built-in device "
                        f"({BUILTIN_TARGETS[name]}): register it under another name",
                        False,
                    )
                )
            continue
        try:
            out.append(InstalledInput(name, ep.value, load_input_class(ep.value), None, False))
        except (Exception, SystemExit) as exc:
            log.info("input device %r (%s) cannot be loaded: %s", name, ep.value, exc)
            out.append(InstalledInput(name, ep.value, None, f"{type(exc).__name__}: {exc}", False))
    return out


def _signature(cls: type) -> tuple[list[str], list[str], bool]:
    """(keyword names, required names, takes **kwargs) of ``cls``'s constructor."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the constructor judge
        return [], [], True
    kw = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in params if p.kind in kw]
    required = [p.name for p in params if p.kind in kw and p.default is inspect.Parameter.empty]
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return names, required, var_kw


def check_device_options(
    cls: type[InputDevice], options: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """``options`` checked against ``cls``'s constructor: an unknown key, or a required keyword
    left out, is a :class:`ConfigError` that names it and the accepted ones (``where`` says
    where the options came from, e.g. ``[devices.acme-stylus]``)."""
    names, required, var_kw = _signature(cls)
    unknown = sorted(k for k in options if k not in names)
    if unknown and not var_kw:
        raise ConfigError(
            f"{where} unknown option(s) {', '.join(unknown)} for {cls.__name__}; accepted: "
            f"{', '.join(names) or 'none'}"
        )
    missing = [k for k in required if k not in options]
    if missing:
        raise ConfigError(
            f"{where} {cls.__name__} needs {', '.join(missing)}: set them in that table or "
            "with --input-option KEY=VALUE"
        )
    return dict(options)


def construct_input(cls: type[InputDevice], options: Mapping[str, Any], where: str) -> InputDevice:
    """``cls(**options)`` after :func:`check_device_options`; a constructor's TypeError or
    ValueError becomes a :class:`ConfigError` that says where the options came from."""
    opts = check_device_options(cls, options, where)
    try:
        return cls(**opts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} {cls.__name__} refused its options {opts}: {exc}") from exc


def parse_option_value(text: str) -> Any:
    """A ``--input-option`` value: a TOML value (``5700``, ``1.5``, ``true``, ``"a b"``,
    ``[1, 2]``), else the text itself as a string (``udp``, ``/tmp/x.npz``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_input_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` (repeatable ``--input-option``) as a dict of parsed values."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--input-option wants KEY=VALUE (KEY a name), got {pair!r}")
        out[key] = parse_option_value(value.strip())
    return out


def with_input_options(settings: ConsoleSettings, options: Mapping[str, Any]) -> ConsoleSettings:
    """``settings`` with ``options`` set on the selected input device: in its own section for a
    built-in (``[synthetic] seed``, ``[replay] path``, ...), in ``[devices.NAME]`` for a plug-in.
    Checked like a file's values (:class:`ConfigError` naming a bad key)."""
    if not options:
        return settings
    kind = settings.input.device
    if kind == "expert":
        raise ConfigError("--input-option: the expert takes no options (it uses --seed)")
    if kind in INPUTS:
        out = settings.replace(kind, **options)
    else:
        out = settings.replace("devices", **{kind: {**settings.devices.get(kind, {}), **options}})
    out.validate()
    return out


def settings_for_input(
    name: str, options: Mapping[str, Any] | None = None, base: ConsoleSettings | None = None
) -> ConsoleSettings:
    """``base`` (default: all defaults) with ``[input] device = name`` and ``options`` applied,
    validated (:class:`ConfigError` for an unknown name or a bad option)."""
    s = (base or ConsoleSettings()).replace("input", device=name)
    s.validate()
    return with_input_options(s, options or {})


# ---------------------------------------------------------------------------------------------
# Devices


def input_recording_from_session(path: str | Path) -> InputRecording:
    """The ``input`` records of a console recording (``--record``) as an InputRecording."""
    from master_console.recording import load_recording

    rec = load_recording(path)
    if rec.count("input") == 0:
        raise ConfigError(f"{path} holds no input samples to replay")
    a = rec.arrays("input")
    t = np.asarray(a["t"], dtype=np.int64)
    return InputRecording(
        t_s=(t - t[0]) / 1e9,
        pose=np.asarray(a["pose"], dtype=float),
        jaw=np.asarray(a["jaw"], dtype=float),
        clutch=np.asarray(a["clutch"], dtype=bool),
        operator_present=np.asarray(a["present"], dtype=bool),
    )


def make_device(settings: ConsoleSettings) -> InputDevice:
    """The input device that ``[input] device`` names, configured from its section (a built-in)
    or from ``[devices.NAME]`` (a plug-in: keywords of its constructor)."""
    kind = settings.input.device
    if kind not in INPUTS:
        cls = resolve_input_class(kind)
        return construct_input(cls, settings.device_options(kind), f"[devices.{kind}]")
    if kind == "synthetic":
        from master_console.synthetic import SyntheticHand

        s = settings.synthetic
        return SyntheticHand(
            seed=s.seed, amplitude_class=s.amplitude_class, noise_fraction=s.noise_fraction
        )
    if kind == "keyboard":
        k = settings.keyboard
        return KeyboardDevice(
            AxisMapping(max_speed_m_s=k.max_speed_m_s, max_rate_rad_s=k.max_rate_rad_s),
            jaw_rate_rad_s=k.jaw_rate_rad_s,
            jaw_max_rad=k.jaw_max_rad,
        )
    if kind == "glove":
        g = settings.glove
        return GloveReceiver(
            g.endpoint, bind=g.bind, jaw_open_rad=g.jaw_open_rad, sample_rate_hz=g.sample_rate_hz
        )
    if kind == "replay":
        r = settings.replay
        if not r.path:
            raise ConfigError("--input replay needs a file: --replay PATH or [replay] path")
        path = Path(r.path)
        if not path.exists():
            raise ConfigError(f"replay file {path} does not exist")
        recording = (
            InputRecording.load(path)
            if path.suffix == ".npz"
            else input_recording_from_session(path)
        )
        return ReplayDevice(recording, speed=r.speed, loop=r.loop)
    if kind == "joystick":
        from master_console.joystick import JoystickDevice

        return JoystickDevice(settings.joystick_config())
    if kind == "spacemouse":
        from master_console.joystick import SpaceMouseDevice

        return SpaceMouseDevice(settings.spacemouse_config())
    if kind == "expert":  # the scripted expert surgeon: a pose device (the tremor filter applies)
        from master_console.expert import ScriptedExpert

        return ScriptedExpert(seed=settings.synthetic.seed, scale=settings.console.scale)
    raise ConfigError(f"unknown input device {kind!r}; one of {', '.join(INPUTS)}")


__all__ = [
    "BUILTIN_TARGETS",
    "ENTRY_POINT_GROUP",
    "INPUTS",
    "ConfigError",
    "ConsoleSettings",
    "InstalledInput",
    "check_device_options",
    "construct_input",
    "filter_kind",
    "input_entry_points",
    "input_names",
    "input_recording_from_session",
    "installed_input_devices",
    "load_input_class",
    "load_settings",
    "make_device",
    "parse_input_options",
    "parse_option_value",
    "resolve_input_class",
    "settings_for_input",
    "settings_from_dict",
    "unknown_input_message",
    "with_input_options",
]
