"""Joystick/gamepad (SDL, through pygame) and 3Dconnexion SpaceMouse input devices.

Both are *rate* devices: deflecting an axis commands a velocity, which is integrated into a pose
by sample time (:class:`~master_console.devices.RateIntegrator`), so each
:class:`~master_console.devices.InputSample` carries both the integrated ``pose`` and the
``twist`` (vx vy vz m/s, wx wy wz rad/s) being applied. Everything a user may need to change is in
:class:`JoystickConfig` / :class:`SpaceMouseConfig` (loadable from a TOML table with ``from_dict``).

Fixing a wrong axis or direction (no code change)
-------------------------------------------------
SDL numbers a device's axes and buttons as the driver reports them, so they differ between
devices and even between operating systems for the same gamepad. Run::

    python -m master_console.joystick            # list joysticks: index, name, axes, buttons
    python -m master_console.joystick --watch 0  # live raw axes/buttons of joystick 0

and move one stick at a time. Then, in the config: ``axes[i]`` is the SDL axis that drives output
``i`` (order vx vy vz wx wy wz; ``-1`` = unused), and ``invert[i] = true`` flips the direction of
output ``i`` (e.g. the arm goes left when you push right: set ``invert[0] = true``; pushing a
stick *up* reads negative on almost every gamepad, hence the default
``invert[1] = invert[2] = true``).
A trigger rests at -1, so never map a trigger to a motion axis (opening warns when a mapped axis is
not centred at rest). The same ``axes``/``invert`` keys exist for the SpaceMouse, with axis names.

Buttons and safety
------------------
* ``clutch_button``: the arm follows only while the clutch is engaged; ``clutch_mode = "hold"``
  (default: a dead-man switch, engaged while held) or ``"toggle"`` (each press flips it). The
  clutch reads disengaged after connecting or re-plugging until the button has been seen released.
* ``operator_present_button``: ``None`` (TOML: ``-1``, the joystick default) means *present while
  the device is plugged in*: with the default hold clutch, the clutch button is the dead-man switch.
  With a toggle clutch, configure a presence button (opening warns otherwise). Whenever presence
  drops, a toggled clutch is released.
* Unplugged mid-run: logged once, ``operator_present`` and ``clutch`` go False and the twist goes to
  zero (the console stops motion); the device is re-opened when it comes back (same name), and the
  clutch must be released and pressed again.

SDL and threads (Linux-tested)
------------------------------
Only SDL's joystick subsystem is used: no window and no video subsystem (``pygame.event.pump()``
would need one, so the reader thread calls ``SDL_JoystickUpdate`` itself, through ctypes on the
very SDL library pygame loaded: see :func:`sdl_library`). ``SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS``
is set, because otherwise SDL freezes joystick state while a window of this process (the display)
is unfocused, and a frozen deflected stick would keep the arm moving. The joystick subsystem is left
initialised on disconnect (``pygame.joystick.quit()`` would close every joystick in the process).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from master_console.devices import (
    BUTTON_ROLES,
    AxisMapping,
    Buttons,
    InputSample,
    RateIntegrator,
    ThreadedDevice,
    _frozen,
)

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

log = logging.getLogger(__name__)

SDL_INIT_JOYSTICK = 0x200
_SDL_JOYSTICK_EVENTS = (0x600, 0x6FF)  # SDL_JOYAXISMOTION .. the end of the controller range
SPACEMOUSE_AXES = ("x", "y", "z", "roll", "pitch", "yaw")
_MODES = ("hold", "toggle")


# ---------------------------------------------------------------------------------------------
# The SDL library pygame uses


def _sdl_candidates() -> list[str]:
    import pygame

    pkg = os.path.dirname(os.path.abspath(pygame.__file__))
    pats = [
        os.path.join(os.path.dirname(pkg), "pygame.libs", "libSDL2-2*.so*"),  # manylinux wheels
        os.path.join(pkg, ".dylibs", "libSDL2*.dylib"),  # macOS wheels
        os.path.join(pkg, "SDL2.dll"),  # Windows wheels
    ]
    found = [p for pat in pats for p in sorted(glob.glob(pat))]
    if sys.platform.startswith("linux"):  # a pygame built against the system SDL: what is mapped
        try:
            with open("/proc/self/maps") as f:
                for line in f:
                    path = line.split()[-1]
                    if "libSDL2-2" in os.path.basename(path) and path not in found:
                        found.append(path)
        except OSError:
            pass
    system = ctypes.util.find_library("SDL2") or ctypes.util.find_library("SDL2-2.0")
    if system:
        found.append(system)
    return found


_sdl_lock = threading.Lock()
_sdl: ctypes.CDLL | None = None


def sdl_library() -> ctypes.CDLL:
    """The SDL2 library pygame itself loaded (the same copy, so its joysticks are pygame's).

    Raises RuntimeError when pygame or its SDL cannot be found, or when the library found is not
    the one pygame uses (a second copy of SDL would have its own, empty, list of joysticks).
    """
    global _sdl
    with _sdl_lock:
        if _sdl is not None:
            return _sdl
        try:
            import pygame
            import pygame.joystick
        except ImportError as exc:
            raise RuntimeError(
                f"pygame is needed for joysticks ({exc}); install it: pip install 'pygame>=2.5'"
            ) from exc
        pygame.joystick.init()  # so that the copy pygame uses reports the subsystem as running
        tried = _sdl_candidates()
        for path in tried:
            try:
                lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                lib.SDL_JoystickAttachVirtual  # noqa: B018 - SDL >= 2.0.14
            except (OSError, AttributeError):
                continue
            lib.SDL_WasInit.restype = ctypes.c_uint32
            lib.SDL_WasInit.argtypes = [ctypes.c_uint32]
            if not lib.SDL_WasInit(SDL_INIT_JOYSTICK):
                continue  # a different copy than pygame's
            _declare(lib)
            _sdl = lib
            return lib
        raise RuntimeError(
            "cannot find the SDL2 library that pygame uses (looked for pygame.libs/libSDL2-2*.so, "
            f"pygame/.dylibs, pygame/SDL2.dll, the mapped libSDL2 and the system one; tried "
            f"{tried or 'nothing'}); reinstall pygame from a wheel: pip install --force-reinstall "
            "'pygame>=2.5'"
        )


def _declare(lib: ctypes.CDLL) -> None:
    p, i, c = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "SDL_JoystickUpdate": (None, []),
        "SDL_NumJoysticks": (i, []),
        "SDL_JoystickNameForIndex": (c, [i]),
        "SDL_JoystickGetDeviceInstanceID": (ctypes.c_int32, [i]),
        "SDL_JoystickFromInstanceID": (p, [ctypes.c_int32]),
        "SDL_JoystickGetAttached": (i, [p]),
        "SDL_JoystickInstanceID": (ctypes.c_int32, [p]),
        "SDL_JoystickOpen": (p, [i]),
        "SDL_JoystickClose": (None, [p]),
        "SDL_JoystickName": (c, [p]),
        "SDL_JoystickAttachVirtual": (i, [i, i, i, i]),
        "SDL_JoystickAttachVirtualEx": (i, [p]),
        "SDL_JoystickDetachVirtual": (i, [i]),
        "SDL_JoystickSetVirtualAxis": (i, [p, i, ctypes.c_int16]),
        "SDL_JoystickSetVirtualButton": (i, [p, i, ctypes.c_uint8]),
        "SDL_FlushEvents": (None, [ctypes.c_uint32, ctypes.c_uint32]),
        "SDL_SetHint": (i, [c, c]),
        "SDL_GetError": (c, []),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args


def _sdl_str(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b else ""


def list_joysticks() -> list[tuple[int, str]]:
    """``(SDL index, name)`` of every joystick SDL sees now (after a hotplug check)."""
    sdl = sdl_library()
    sdl.SDL_JoystickUpdate()
    return [(k, _sdl_str(sdl.SDL_JoystickNameForIndex(k))) for k in range(sdl.SDL_NumJoysticks())]


# ---------------------------------------------------------------------------------------------
# Config validation helpers


def _is_int(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_num(v: object) -> bool:
    return (isinstance(v, int | float | np.integer | np.floating)) and not isinstance(
        v, bool | np.bool_
    )


def _check_int(name: str, v: object, lo: int, optional: bool = False) -> int | None:
    if optional and (v is None or (_is_int(v) and int(v) == -1)):
        return None
    if not _is_int(v) or int(v) < lo:  # type: ignore[call-overload]
        none = " or -1/None for none" if optional else ""
        raise ValueError(f"{name} must be an integer >= {lo}{none}, got {v!r}")
    return int(v)  # type: ignore[call-overload]


def _check_float(name: str, v: object, lo: float, lo_open: bool, hi: float | None = None) -> float:
    ok = _is_num(v) and math.isfinite(float(v))  # type: ignore[arg-type]
    f = float(v) if ok else math.nan  # type: ignore[arg-type]
    if ok:
        ok = (f > lo if lo_open else f >= lo) and (hi is None or f < hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo:g}, {'inf' if hi is None else format(hi, 'g')})"
        raise ValueError(f"{name} must be a finite number in {rng}, got {v!r}")
    return f


def _check_mode(name: str, v: object) -> str:
    if v not in _MODES:
        raise ValueError(f"{name} must be one of {list(_MODES)}, got {v!r}")
    return str(v)


def _check_bool(name: str, v: object) -> bool:
    if not isinstance(v, bool | np.bool_):
        raise ValueError(f"{name} must be true or false, got {v!r}")
    return bool(v)


def _check_invert(v: object) -> tuple[bool, ...]:
    if isinstance(v, str | bytes) or not isinstance(v, Sequence | np.ndarray) or len(v) != 6:
        raise ValueError(f"invert must be 6 booleans (vx vy vz wx wy wz), got {v!r}")
    return tuple(_check_bool(f"invert[{k}]", b) for k, b in enumerate(v))


def _from_dict(cls: type, d: Mapping[str, Any]) -> Any:
    if not isinstance(d, Mapping):
        raise ValueError(f"{cls.__name__} must be a table/dict, got {type(d).__name__}")
    valid = [f.name for f in fields(cls)]
    for key in d:
        if key not in valid:
            raise ValueError(
                f"unknown {cls.__name__} key {key!r}; valid keys: {', '.join(sorted(valid))}"
            )
    return cls(**dict(d))


#: the button roles both device configs have; no button may serve two of them
_ROLE_KEYS = (
    "clutch_button",
    "operator_present_button",
    "camera_button",
    "jaw_open_button",
    "jaw_close_button",
)


def _check_roles(roles: dict[str, int | None]) -> None:
    seen: dict[int, str] = {}
    for role, b in roles.items():
        if b is None:
            continue
        if b in seen:
            raise ValueError(f"{seen[b]} and {role} are both button {b}; give each role its own")
        seen[b] = role


# ---------------------------------------------------------------------------------------------
# Button roles, jaw and integration: shared by both devices


class _Controls:
    """The device-independent part: raw axes + buttons (+ a jaw axis) -> :class:`InputSample`."""

    def __init__(self, cfg: JoystickConfig | SpaceMouseConfig, pose: np.ndarray | None) -> None:
        self.cfg = cfg
        mapping = AxisMapping(
            invert=cfg.invert,
            dead_zone=cfg.dead_zone,
            max_speed_m_s=cfg.max_speed_m_s,
            max_rate_rad_s=cfg.max_rate_rad_s,
        )
        self.integrator = RateIntegrator(mapping, pose)
        self.lock = threading.Lock()
        self._seq = 0
        self._jaw = float(cfg.jaw_initial_rad)
        self._jaw_dir = 0.0
        self._jaw_t: int | None = None
        self._prev: tuple[bool, ...] | None = None
        self._clutch_toggled = False
        self._present_toggled = False
        self._clutch_seen_released = False
        self.attached = False

    @staticmethod
    def _pressed(buttons: Sequence[bool], b: int | None) -> bool:
        return b is not None and 0 <= b < len(buttons) and bool(buttons[b])

    def _edge(self, buttons: Sequence[bool], b: int | None) -> bool:
        if self._prev is None:
            return False
        return self._pressed(buttons, b) and not self._pressed(self._prev, b)

    def reset_pose(self, pose: np.ndarray) -> None:
        p = np.asarray(pose, dtype=float)
        if p.shape != (7,) or not np.all(np.isfinite(p)):
            raise ValueError(f"pose must be 7 finite numbers (x y z qx qy qz qw), got {pose!r}")
        with self.lock:
            self.integrator.reset(p, t_ns=None)

    def _advance_jaw(self, t_ns: int) -> None:
        if self._jaw_t is not None and t_ns > self._jaw_t:
            dj = self._jaw_dir * self.cfg.jaw_rate_rad_s * (t_ns - self._jaw_t) / 1e9
            self._jaw = min(max(self._jaw + dj, 0.0), self.cfg.jaw_max_rad)
        if self._jaw_t is None or t_ns > self._jaw_t:
            self._jaw_t = t_ns

    def _sample(self, t_ns: int, buttons: Buttons) -> InputSample:
        self._seq += 1
        return InputSample(
            t_ns=t_ns,
            pose=_frozen(self.integrator.pose),
            twist=_frozen(self.integrator.twist),
            jaw=self._jaw,
            buttons=buttons,
            seq=self._seq,
        )

    def step(
        self, t_ns: int, raw: np.ndarray, buttons: Sequence[bool], jaw_axis: float | None = None
    ) -> InputSample:
        """One reading of an attached device: ``raw`` (6,) in [-1, 1] in output order."""
        cfg = self.cfg
        with self.lock:
            if not self.attached:
                self.attached = True
                self._prev = None
                self._clutch_seen_released = False
            # presence
            pb = cfg.operator_present_button
            if pb is None:
                present = True
            elif cfg.operator_present_mode == "hold":
                present = self._pressed(buttons, pb)
            else:
                if self._edge(buttons, pb):
                    self._present_toggled = not self._present_toggled
                present = self._present_toggled
            # clutch: never engaged before the button was seen released (connect, re-plug)
            held = self._pressed(buttons, cfg.clutch_button)
            if not held:
                self._clutch_seen_released = True
            if cfg.clutch_mode == "hold":
                clutch = held and self._clutch_seen_released
            else:
                if self._edge(buttons, cfg.clutch_button) and self._clutch_seen_released:
                    self._clutch_toggled = not self._clutch_toggled
                if not present:
                    self._clutch_toggled = False
                clutch = self._clutch_toggled
            camera = self._pressed(buttons, cfg.camera_button)
            # jaw
            self._advance_jaw(t_ns)
            if jaw_axis is not None:
                a = min(max(float(jaw_axis), -1.0), 1.0) if math.isfinite(jaw_axis) else -1.0
                if getattr(cfg, "jaw_axis_invert", False):
                    a = -a
                self._jaw = 0.5 * (a + 1.0) * cfg.jaw_max_rad
                self._jaw_dir = 0.0
            else:
                self._jaw_dir = float(
                    self._pressed(buttons, cfg.jaw_open_button)
                    - self._pressed(buttons, cfg.jaw_close_button)
                )
            self.integrator.step(t_ns, raw)
            self._prev = tuple(bool(b) for b in buttons)
            return self._sample(t_ns, Buttons(clutch, present, camera))

    def detached(self, t_ns: int) -> InputSample:
        """The device is gone: stop (zero twist), not present, clutch out, jaw held."""
        with self.lock:
            self.attached = False
            self._clutch_toggled = False
            self._present_toggled = False
            self._clutch_seen_released = False
            self._advance_jaw(t_ns)
            self._jaw_dir = 0.0
            self.integrator.step(t_ns, np.zeros(6))
            return self._sample(t_ns, Buttons(False, False, False))


# ---------------------------------------------------------------------------------------------
# Joystick / gamepad


@dataclass(frozen=True)
class JoystickConfig:
    """A joystick or gamepad as a rate device. Load a TOML table with :meth:`from_dict`.

    Defaults suit a gamepad in SDL's standard controller order (SDL's HIDAPI and XInput drivers,
    and :class:`~master_console.virtual_joystick.VirtualJoystick`): left stick = x/y, right stick
    vertical = z, hold left shoulder (button 9) to move, right trigger (axis 5) squeezes the jaw
    closed, right shoulder (button 10) = camera. Linux's evdev driver numbers an Xbox pad
    differently (right stick vertical is axis 4, shoulders are buttons 4 and 5): run
    ``python -m master_console.joystick --watch 0`` and set the indices.

    * ``index``: SDL joystick index, used when ``name_contains`` is None; ``name_contains``: pick
      the first joystick whose name contains this (case-insensitive).
    * ``axes``: the SDL axis feeding vx vy vz wx wy wz (``-1``: none); ``invert``: flip that output.
    * ``dead_zone`` (fraction of full deflection), ``max_speed_m_s`` (full deflection, linear),
      ``max_rate_rad_s`` (full deflection, angular): see :class:`AxisMapping`.
    * ``clutch_button`` + ``clutch_mode`` (``"hold"``/``"toggle"``); ``operator_present_button``
      (``None``/``-1``: present while plugged in) + ``operator_present_mode``; ``camera_button``
      (held; ``None``: none).
    * Jaw: either ``jaw_axis`` (an axis, -1..1 -> 0..``jaw_max_rad``; ``jaw_axis_invert`` flips it:
      the default makes a resting trigger (-1) open and a squeezed one closed) or, with
      ``jaw_axis = -1``, ``jaw_open_button``/``jaw_close_button`` moving it at ``jaw_rate_rad_s``
      within [0, ``jaw_max_rad``] from ``jaw_initial_rad``.
    * ``rate_hz``: how often the device is read.

    TOML has no null: ``-1`` means "none" for every optional index.
    """

    index: int = 0
    name_contains: str | None = None
    axes: tuple[int, ...] = (0, 1, 3, -1, -1, -1)
    invert: tuple[bool, ...] = (False, True, True, False, False, False)
    dead_zone: float = 0.15
    max_speed_m_s: float = 0.05
    max_rate_rad_s: float = 1.0
    clutch_button: int = 9
    clutch_mode: str = "hold"
    operator_present_button: int | None = None
    operator_present_mode: str = "hold"
    camera_button: int | None = 10
    jaw_axis: int | None = 5
    jaw_axis_invert: bool = True
    jaw_open_button: int | None = None
    jaw_close_button: int | None = None
    jaw_rate_rad_s: float = 1.0
    jaw_max_rad: float = 1.0
    jaw_initial_rad: float = 0.0
    rate_hz: float = 1000.0

    def __post_init__(self) -> None:
        s = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        s("index", _check_int("index", self.index, 0))
        if self.name_contains is not None and (
            not isinstance(self.name_contains, str) or not self.name_contains.strip()
        ):
            raise ValueError(
                f"name_contains must be a non-empty string, got {self.name_contains!r}"
            )
        ax = self.axes
        if isinstance(ax, str | bytes) or not isinstance(ax, Sequence | np.ndarray) or len(ax) != 6:
            raise ValueError(
                f"axes must be 6 SDL axis indices (vx vy vz wx wy wz, -1 = none), got {ax!r}"
            )
        axes = tuple(_check_int(f"axes[{k}]", a, -1) for k, a in enumerate(ax))
        used = [a for a in axes if a is not None and a >= 0]
        if len(set(used)) != len(used):
            raise ValueError(f"axes uses an SDL axis twice: {axes}")
        s("axes", axes)
        s("invert", _check_invert(self.invert))
        s("dead_zone", _check_float("dead_zone", self.dead_zone, 0.0, False, 1.0))
        s("max_speed_m_s", _check_float("max_speed_m_s", self.max_speed_m_s, 0.0, True))
        s("max_rate_rad_s", _check_float("max_rate_rad_s", self.max_rate_rad_s, 0.0, True))
        s("clutch_button", _check_int("clutch_button", self.clutch_button, 0))
        s("clutch_mode", _check_mode("clutch_mode", self.clutch_mode))
        for k in ("operator_present_button", "camera_button", "jaw_open_button"):
            s(k, _check_int(k, getattr(self, k), 0, optional=True))
        s("jaw_close_button", _check_int("jaw_close_button", self.jaw_close_button, 0, True))
        s("operator_present_mode", _check_mode("operator_present_mode", self.operator_present_mode))
        s("jaw_axis", _check_int("jaw_axis", self.jaw_axis, 0, optional=True))
        s("jaw_axis_invert", _check_bool("jaw_axis_invert", self.jaw_axis_invert))
        s("jaw_rate_rad_s", _check_float("jaw_rate_rad_s", self.jaw_rate_rad_s, 0.0, True))
        s("jaw_max_rad", _check_float("jaw_max_rad", self.jaw_max_rad, 0.0, True))
        s("jaw_initial_rad", _check_float("jaw_initial_rad", self.jaw_initial_rad, 0.0, False))
        if self.jaw_initial_rad > self.jaw_max_rad:
            raise ValueError(
                f"jaw_initial_rad ({self.jaw_initial_rad}) must be <= jaw_max_rad "
                f"({self.jaw_max_rad})"
            )
        s("rate_hz", _check_float("rate_hz", self.rate_hz, 0.0, True))
        if self.jaw_axis is not None:
            if self.jaw_open_button is not None or self.jaw_close_button is not None:
                raise ValueError(
                    f"the jaw is driven by jaw_axis {self.jaw_axis} and by jaw buttons: set "
                    "jaw_axis = -1 to use jaw_open_button/jaw_close_button, or set both buttons "
                    "to -1"
                )
            if self.jaw_axis in used:
                raise ValueError(f"jaw_axis {self.jaw_axis} is also a motion axis in axes {axes}")
        _check_roles({k: getattr(self, k) for k in _ROLE_KEYS})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JoystickConfig:
        """Build from a dict (e.g. a TOML table); unknown keys and bad values raise ValueError."""
        return _from_dict(cls, d)


class _RateDevice(ThreadedDevice):
    """What the joystick and the SpaceMouse share: the config, the controls that integrate the
    twist into a pose, the clock, and their declarations for ``master-console check-input``
    (the integrated pose is unbounded, the twist within the configured speeds, the jaw within its
    range, the camera role only when a button is assigned to it)."""

    rate_input = True
    position_range_m = None

    def __init__(
        self,
        config: JoystickConfig | SpaceMouseConfig,
        pose: np.ndarray | None,
        clock: Callable[[], int],
    ) -> None:
        self.config = config
        super().__init__(config.rate_hz)
        self._controls = _Controls(config, pose)
        self._clock = clock
        self._next_retry_ns = 0
        self.max_speed_m_s = config.max_speed_m_s
        self.max_rate_rad_s = config.max_rate_rad_s
        self.jaw_range_rad = (0.0, config.jaw_max_rad)
        self.button_roles = BUTTON_ROLES if config.camera_button is not None else BUTTON_ROLES[:2]

    def reset_pose(self, pose: np.ndarray) -> None:
        """Restart the integrated pose at ``pose`` (7,) x y z qx qy qz qw."""
        self._controls.reset_pose(pose)


class JoystickDevice(_RateDevice):
    """A joystick/gamepad read through SDL (pygame) on its own thread, as a rate device.

    ``connect()`` finds the device (``config.name_contains`` or ``config.index``) and raises
    RuntimeError with the connected joysticks listed when there is none to use, or when the device
    lacks a configured axis or button. Each read integrates the mapped twist by sample time into
    the reported pose (starting at ``pose``, default the identity; :meth:`reset_pose` moves it).
    See the module docstring for fixing axis directions and the clutch/presence rules.
    """

    name: ClassVar[str] = "joystick"
    RECONNECT_PERIOD_S: ClassVar[float] = 0.5

    def __init__(
        self,
        config: JoystickConfig | None = None,
        pose: np.ndarray | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        super().__init__(config or JoystickConfig(), pose, clock)
        self._joy: Any = None  # pygame.joystick.JoystickType
        self._sdl: Any = None
        self._instance_id = -1
        self.device_name = ""
        self._unplugged_at: int | None = None
        self._motion_axes = [(k, a) for k, a in enumerate(self.config.axes) if a >= 0]

    # -- discovery -----------------------------------------------------------------------------
    @staticmethod
    def _listing(found: list[tuple[int, str]]) -> str:
        return ", ".join(f"[{k}] {n!r}" for k, n in found) or "none"

    def _choose(self, found: list[tuple[int, str]]) -> int | None:
        cfg = self.config
        if cfg.name_contains is not None:
            want = cfg.name_contains.strip().lower()
            return next((k for k, n in found if want in n.lower()), None)
        return cfg.index if cfg.index < len(found) else None

    def _open(self) -> None:
        sdl = sdl_library()
        # joystick state must not freeze while a window of ours (the display) is unfocused
        sdl.SDL_SetHint(b"SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", b"1")
        found = list_joysticks()
        cfg = self.config
        if not found:
            raise RuntimeError(
                "no joystick connected: plug one in (and check that this user may read "
                "/dev/input/event*), or use --input keyboard"
            )
        k = self._choose(found)
        if k is None:
            what = (
                f"no joystick matching {cfg.name_contains!r}"
                if cfg.name_contains is not None
                else f"no joystick at index {cfg.index}"
            )
            raise RuntimeError(f"{what}; connected: {self._listing(found)}")
        self._attach(k, check=True)
        self._sdl = sdl
        self._unplugged_at = None
        self._controls.attached = False  # a fresh start: the clutch must be seen released
        log.info(
            "joystick %r (SDL index %d): %d axes, %d buttons",
            self.device_name,
            k,
            self._joy.get_numaxes(),
            self._joy.get_numbuttons(),
        )
        if cfg.clutch_mode == "toggle" and cfg.operator_present_button is None:
            log.warning(
                "joystick: toggle clutch without an operator_present_button: the arm follows the "
                "stick until the clutch is toggled off; consider clutch_mode = 'hold'"
            )
        raw = self._raw()
        off = [
            (cfg.axes[i], float(raw[i]))
            for i, _ in self._motion_axes
            if abs(raw[i]) > max(cfg.dead_zone, 0.5)
        ]
        for axis, v in off:
            log.warning(
                "joystick axis %d reads %+.2f at rest: a trigger or a drifting stick? Motion axes "
                "must rest at 0 (set axes[...] = -1 or pick another axis)",
                axis,
                v,
            )

    def _attach(self, k: int, check: bool) -> None:
        import pygame.joystick

        joy = pygame.joystick.Joystick(k)
        joy.init()
        nax, nbt = joy.get_numaxes(), joy.get_numbuttons()
        name = joy.get_name()
        cfg = self.config
        if check:
            bad = [f"axes[{i}] = {a}" for i, a in enumerate(cfg.axes) if a >= nax]
            if cfg.jaw_axis is not None and cfg.jaw_axis >= nax:
                bad.append(f"jaw_axis = {cfg.jaw_axis}")
            for role in (
                "clutch_button",
                "operator_present_button",
                "camera_button",
                "jaw_open_button",
                "jaw_close_button",
            ):
                b = getattr(cfg, role)
                if b is not None and b >= nbt:
                    bad.append(f"{role} = {b}")
            if bad:
                joy.quit()
                raise RuntimeError(
                    f"joystick {name!r} has {nax} axes (0..{nax - 1}) and {nbt} buttons "
                    f"(0..{nbt - 1}), but the config has {', '.join(bad)}; run "
                    "`python -m master_console.joystick --watch` to find the right indices"
                )
        self._joy = joy
        self._instance_id = joy.get_instance_id()
        self.device_name = name

    def _close(self) -> None:
        if self._joy is not None:
            with contextlib.suppress(Exception):  # pygame already shut down
                self._joy.quit()  # closes our handle only; the subsystem stays up
            self._joy = None

    # -- reading -------------------------------------------------------------------------------
    def _raw(self) -> np.ndarray:
        joy = self._joy
        raw = np.zeros(6)
        for i, a in self._motion_axes:
            raw[i] = joy.get_axis(a)
        # pygame divides by 32768: make full deflection exactly ±1
        return np.clip(raw * (32768.0 / 32767.0), -1.0, 1.0)

    def _attached(self, sdl: ctypes.CDLL) -> bool:
        ptr = sdl.SDL_JoystickFromInstanceID(self._instance_id)
        return bool(ptr) and bool(sdl.SDL_JoystickGetAttached(ptr))

    def _try_reconnect(self, sdl: ctypes.CDLL, now: int) -> bool:
        if now < self._next_retry_ns:
            return False
        self._next_retry_ns = now + int(self.RECONNECT_PERIOD_S * 1e9)
        n = sdl.SDL_NumJoysticks()
        for k in range(n):
            if _sdl_str(sdl.SDL_JoystickNameForIndex(k)) == self.device_name:
                old = self._joy
                try:
                    self._attach(k, check=True)
                except Exception as exc:
                    log.error("joystick %r is back but unusable: %s", self.device_name, exc)
                    return False
                if old is not None and old is not self._joy:
                    with contextlib.suppress(Exception):
                        old.quit()
                log.warning(
                    "joystick %r plugged back in (SDL index %d): release and press the clutch "
                    "to move",
                    self.device_name,
                    k,
                )
                self._unplugged_at = None
                return True
        return False

    def read_once(self) -> InputSample | None:
        sdl = self._sdl
        sdl.SDL_JoystickUpdate()
        sdl.SDL_FlushEvents(*_SDL_JOYSTICK_EVENTS)  # nobody may pump: keep the queue empty
        t = self._clock()
        if self._unplugged_at is None and not self._attached(sdl):
            self._unplugged_at = t
            self._next_retry_ns = t + int(self.RECONNECT_PERIOD_S * 1e9)
            log.error(
                "joystick %r unplugged: operator not present, motion stopped; plug it back in "
                "(then release and press the clutch) to go on",
                self.device_name,
            )
        if self._unplugged_at is not None and not self._try_reconnect(sdl, t):
            return self._controls.detached(t)
        joy, cfg = self._joy, self.config
        try:
            buttons = [bool(joy.get_button(b)) for b in range(joy.get_numbuttons())]
            jaw = joy.get_axis(cfg.jaw_axis) if cfg.jaw_axis is not None else None
            raw = self._raw()
        except Exception:
            # e.g. pygame.quit() elsewhere closed it: publish "stopped", then let it be counted
            self._store(self._controls.detached(t))
            raise
        if jaw is not None:
            jaw = min(max(jaw * (32768.0 / 32767.0), -1.0), 1.0)
        return self._controls.step(t, raw, buttons, jaw)

    @property
    def unplugged(self) -> bool:
        """True while the opened device is unplugged."""
        return self._unplugged_at is not None


# ---------------------------------------------------------------------------------------------
# SpaceMouse

_PIP_HINT = (
    "pip install 'telesurgery[spacemouse]' (pyspacemouse), and the hidapi C library: "
    "Debian/Ubuntu `apt install libhidapi-hidraw0`, macOS `brew install hidapi`"
)


@dataclass(frozen=True)
class SpaceMouseConfig:
    """A 3Dconnexion SpaceMouse as a 6-DoF rate device. Load a TOML table with :meth:`from_dict`.

    * ``axes``: the SpaceMouse axis feeding vx vy vz wx wy wz, by name (``"x" "y" "z" "roll"
      "pitch" "yaw"``, or ``"none"``); ``invert``: flip that output. With the default
      ``axis_convention = "hid_z_up"`` (pyspacemouse >= 2) the cap's frame is right-handed: x
      right, y away from you, z up, rotations counter-clockwise about those axes.
    * ``dead_zone``, ``max_speed_m_s``, ``max_rate_rad_s``: see :class:`AxisMapping`.
    * Buttons (0 = left, 1 = right on two-button models): ``clutch_button`` (default left, held),
      ``operator_present_button`` (default right, ``operator_present_mode = "toggle"``: press once
      to be present, again to leave; ``None``/-1: present while plugged in), ``camera_button``,
      ``jaw_open_button``/``jaw_close_button`` (at ``jaw_rate_rad_s`` within [0, ``jaw_max_rad``]
      from ``jaw_initial_rad``; with none the jaw stays at ``jaw_initial_rad``).
    * ``device_name``: a pyspacemouse device name (e.g. ``"SpaceNavigator"``; None: the first
      found), ``device_index`` among several of that kind; ``rate_hz``: how often it is polled.
    """

    axes: tuple[str, ...] = SPACEMOUSE_AXES
    invert: tuple[bool, ...] = (False,) * 6
    dead_zone: float = 0.1
    max_speed_m_s: float = 0.05
    max_rate_rad_s: float = 1.0
    axis_convention: str = "hid_z_up"
    clutch_button: int = 0
    clutch_mode: str = "hold"
    operator_present_button: int | None = 1
    operator_present_mode: str = "toggle"
    camera_button: int | None = None
    jaw_open_button: int | None = None
    jaw_close_button: int | None = None
    jaw_rate_rad_s: float = 1.0
    jaw_max_rad: float = 1.0
    jaw_initial_rad: float = 0.0
    device_name: str | None = None
    device_index: int = 0
    rate_hz: float = 500.0

    def __post_init__(self) -> None:
        s = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        ax = self.axes
        if isinstance(ax, str | bytes) or not isinstance(ax, Sequence) or len(ax) != 6:
            raise ValueError(
                f"axes must be 6 SpaceMouse axis names (for vx vy vz wx wy wz), each one of "
                f"{[*SPACEMOUSE_AXES, 'none']}, got {ax!r}"
            )
        for k, a in enumerate(ax):
            if a not in (*SPACEMOUSE_AXES, "none"):
                raise ValueError(
                    f"axes[{k}] must be one of {[*SPACEMOUSE_AXES, 'none']}, got {a!r}"
                )
        used = [a for a in ax if a != "none"]
        if len(set(used)) != len(used):
            raise ValueError(f"axes uses a SpaceMouse axis twice: {tuple(ax)}")
        s("axes", tuple(ax))
        s("invert", _check_invert(self.invert))
        s("dead_zone", _check_float("dead_zone", self.dead_zone, 0.0, False, 1.0))
        s("max_speed_m_s", _check_float("max_speed_m_s", self.max_speed_m_s, 0.0, True))
        s("max_rate_rad_s", _check_float("max_rate_rad_s", self.max_rate_rad_s, 0.0, True))
        conventions = ("legacy", "hid", "hid_z_up", "ros", "unity")
        if self.axis_convention not in conventions:
            raise ValueError(
                f"axis_convention must be one of {list(conventions)}, got {self.axis_convention!r}"
            )
        s("clutch_button", _check_int("clutch_button", self.clutch_button, 0))
        s("clutch_mode", _check_mode("clutch_mode", self.clutch_mode))
        for k in ("operator_present_button", "camera_button", "jaw_open_button"):
            s(k, _check_int(k, getattr(self, k), 0, optional=True))
        s("jaw_close_button", _check_int("jaw_close_button", self.jaw_close_button, 0, True))
        s("operator_present_mode", _check_mode("operator_present_mode", self.operator_present_mode))
        s("jaw_rate_rad_s", _check_float("jaw_rate_rad_s", self.jaw_rate_rad_s, 0.0, True))
        s("jaw_max_rad", _check_float("jaw_max_rad", self.jaw_max_rad, 0.0, True))
        s("jaw_initial_rad", _check_float("jaw_initial_rad", self.jaw_initial_rad, 0.0, False))
        if self.jaw_initial_rad > self.jaw_max_rad:
            raise ValueError(
                f"jaw_initial_rad ({self.jaw_initial_rad}) must be <= jaw_max_rad "
                f"({self.jaw_max_rad})"
            )
        if self.device_name is not None and (
            not isinstance(self.device_name, str) or not self.device_name
        ):
            raise ValueError(f"device_name must be a non-empty string, got {self.device_name!r}")
        s("device_index", _check_int("device_index", self.device_index, 0))
        s("rate_hz", _check_float("rate_hz", self.rate_hz, 0.0, True))
        _check_roles({k: getattr(self, k) for k in _ROLE_KEYS})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SpaceMouseConfig:
        """Build from a dict (e.g. a TOML table); unknown keys and bad values raise ValueError."""
        return _from_dict(cls, d)


def _import_pyspacemouse() -> Any:
    try:
        import pyspacemouse
    except ImportError as exc:
        raise RuntimeError(f"the SpaceMouse needs pyspacemouse ({exc}): {_PIP_HINT}") from exc
    except OSError as exc:  # cffi could not load hidapi
        raise RuntimeError(
            f"the SpaceMouse needs the hidapi C library ({exc}): {_PIP_HINT}"
        ) from exc
    try:  # easyhid falls back to the process itself when hidapi is missing: probe a symbol
        from easyhid import easyhid as _eh

        _eh.hidapi.hid_enumerate  # noqa: B018
    except (ImportError, AttributeError, OSError) as exc:
        raise RuntimeError(
            f"the SpaceMouse needs the hidapi C library, which was not found: {_PIP_HINT}"
        ) from exc
    return pyspacemouse


class SpaceMouseDevice(_RateDevice):
    """A 3Dconnexion SpaceMouse (via pyspacemouse) read on its own thread, as a 6-DoF rate device.

    :meth:`process_state` turns one pyspacemouse state (attributes ``t x y z roll pitch yaw`` as
    floats, axes in [-1, 1], ``buttons`` a list of 0/1) into an :class:`InputSample`, without I/O;
    the reader thread drains the device and calls it. A read error (unplugged) is logged once and
    reported as not present, clutch out, zero twist; the device is re-opened when it comes back.
    """

    name: ClassVar[str] = "spacemouse"
    RECONNECT_PERIOD_S: ClassVar[float] = 1.0
    MAX_REPORTS_PER_READ: ClassVar[int] = 64

    def __init__(
        self,
        config: SpaceMouseConfig | None = None,
        pose: np.ndarray | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        super().__init__(config or SpaceMouseConfig(), pose, clock)
        self._psm: Any = None
        self._dev: Any = None
        self._failed_at: int | None = None
        self._sel = [
            (k, SPACEMOUSE_AXES.index(a)) for k, a in enumerate(self.config.axes) if a != "none"
        ]

    def raw_axes(self, state: Any) -> np.ndarray:
        """The raw 6-vector (output order vx..wz) of a pyspacemouse state."""
        vals = [float(getattr(state, a)) for a in SPACEMOUSE_AXES]
        raw = np.zeros(6)
        for k, j in self._sel:
            raw[k] = vals[j]
        return raw

    def process_state(self, state: Any, t_ns: int | None = None) -> InputSample:
        """One pyspacemouse state -> an :class:`InputSample` at ``t_ns`` (default: now)."""
        t = self._clock() if t_ns is None else t_ns
        buttons = [bool(b) for b in getattr(state, "buttons", ())]
        return self._controls.step(t, self.raw_axes(state), buttons)

    def _open_device(self) -> Any:
        psm, cfg = self._psm, self.config
        kwargs: dict[str, Any] = {"device_index": cfg.device_index}
        if cfg.device_name is not None:
            kwargs["device"] = cfg.device_name
        if hasattr(psm, "AxisConvention"):
            kwargs["axis_convention"] = psm.AxisConvention(cfg.axis_convention)
        try:
            try:
                dev = psm.open(**kwargs)
            except TypeError:  # pyspacemouse 1.x: open(device=None, DeviceNumber=0), legacy axes
                old: dict[str, Any] = {"DeviceNumber": cfg.device_index}
                if cfg.device_name is not None:
                    old["device"] = cfg.device_name
                dev = psm.open(**old)
        except RuntimeError as exc:
            if "HID API" in str(exc):
                raise RuntimeError(
                    f"the SpaceMouse needs the hidapi C library: {_PIP_HINT}"
                ) from exc
            raise RuntimeError(
                f"no SpaceMouse found ({exc}): plug one in; on Linux this user must be able to "
                "read its /dev/hidraw* node (a udev rule), or use --input keyboard"
            ) from exc
        if dev is None or dev is False:  # pyspacemouse 1.x returns None on failure
            raise RuntimeError(
                "no SpaceMouse found: plug one in; on Linux this user must be able to read its "
                "/dev/hidraw* node (a udev rule), or use --input keyboard"
            )
        return dev

    def _open(self) -> None:
        self._psm = _import_pyspacemouse()
        self._dev = self._open_device()
        self._failed_at = None
        self._controls.attached = False  # a fresh start: the clutch must be seen released
        log.info("SpaceMouse %s", getattr(self._dev, "describe_connection", lambda: "opened")())

    def _close(self) -> None:
        if self._dev is not None:
            with contextlib.suppress(Exception):  # already gone
                self._dev.close()
            self._dev = None

    def _read_state(self) -> Any:
        dev = self._dev
        read = dev.read if hasattr(dev, "read") else self._psm.read
        state = read()
        for _ in range(self.MAX_REPORTS_PER_READ):  # one HID report per read: drain them
            before = state.t
            state = read()
            if state.t == before:
                break
        return state

    def read_once(self) -> InputSample | None:
        t = self._clock()
        if self._failed_at is not None:
            if t < self._next_retry_ns:
                return self._controls.detached(t)
            self._next_retry_ns = t + int(self.RECONNECT_PERIOD_S * 1e9)
            try:
                self._close()
                self._dev = self._open_device()
            except Exception:
                return self._controls.detached(t)
            log.warning("SpaceMouse is back: release and press the clutch to move")
            self._failed_at = None
        try:
            state = self._read_state()
        except Exception as exc:
            self._failed_at = t
            self._next_retry_ns = t + int(self.RECONNECT_PERIOD_S * 1e9)
            log.error(
                "SpaceMouse read failed (%s): unplugged? Operator not present, motion stopped", exc
            )
            return self._controls.detached(t)
        return self.process_state(state, self._clock())

    @property
    def unplugged(self) -> bool:
        return self._failed_at is not None


# ---------------------------------------------------------------------------------------------
# python -m master_console.joystick: find indices and directions


def main(argv: list[str] | None = None) -> int:
    """List joysticks, or ``--watch INDEX`` to print raw axes and pressed buttons live."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m master_console.joystick", description=main.__doc__)
    p.add_argument("--watch", type=int, metavar="INDEX", help="show this joystick's raw input")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to watch")
    args = p.parse_args(argv)
    found = list_joysticks()
    if args.watch is None:
        if not found:
            print("no joystick connected")
            return 1
        import pygame.joystick

        for k, n in found:
            j = pygame.joystick.Joystick(k)
            print(f"[{k}] {n!r}: {j.get_numaxes()} axes, {j.get_numbuttons()} buttons")
        return 0
    import pygame.joystick

    if not 0 <= args.watch < len(found):
        print(f"no joystick at index {args.watch}; connected: {JoystickDevice._listing(found)}")
        return 1
    sdl = sdl_library()
    j = pygame.joystick.Joystick(args.watch)
    print(f"{j.get_name()!r}: move one control at a time (Ctrl-C to stop)")
    end = time.monotonic() + args.seconds
    try:
        while time.monotonic() < end:
            sdl.SDL_JoystickUpdate()
            sdl.SDL_FlushEvents(*_SDL_JOYSTICK_EVENTS)
            axes = " ".join(f"{a}:{j.get_axis(a):+.2f}" for a in range(j.get_numaxes()))
            pressed = [b for b in range(j.get_numbuttons()) if j.get_button(b)]
            print(f"\raxes {axes}  buttons {pressed}   ", end="", flush=True)
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    print()
    return 0


__all__ = [
    "JoystickConfig",
    "JoystickDevice",
    "SpaceMouseConfig",
    "SpaceMouseDevice",
    "list_joysticks",
    "sdl_library",
]

if __name__ == "__main__":
    sys.exit(main())
