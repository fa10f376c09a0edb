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

    [synthetic]               # the seeded synthetic surgeon hand
    seed = 0
    amplitude_class = "typical"

    [glove]
    endpoint = "tcp://127.0.0.1:5580"
    jaw_open_rad = 1.0

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
import tomllib
from dataclasses import dataclass, field
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

INPUTS = ("synthetic", "keyboard", "glove", "replay", "joystick", "spacemouse", "expert")


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
        if self.device not in INPUTS:
            raise ConfigError(f"[input] device {self.device!r} is not one of {', '.join(INPUTS)}")


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


RATE_DEVICES = ("keyboard", "joystick", "spacemouse")


def filter_kind(settings: ConsoleSettings) -> str:
    """The tremor filter to run: the one configured, else ``"default"`` for pose devices and
    ``"none"`` for rate devices."""
    if settings.console.filter:
        return settings.console.filter
    return "none" if settings.input.device in RATE_DEVICES else "default"


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
# sections whose dataclasses live with their feature and validate themselves (``from_dict``)
_DELEGATED = ("joystick", "spacemouse", "force_feedback", "display", "task")


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
    """The input device that ``[input] device`` names, configured from its section."""
    kind = settings.input.device
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
        return GloveReceiver(g.endpoint, bind=g.bind, jaw_open_rad=g.jaw_open_rad)
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
    "INPUTS",
    "ConfigError",
    "ConsoleSettings",
    "filter_kind",
    "input_recording_from_session",
    "load_settings",
    "make_device",
    "settings_from_dict",
]
