"""A software joystick inside this process, for tests and demos (not for surgery).

:class:`VirtualJoystick` attaches an SDL *virtual joystick* (``SDL_JoystickAttachVirtualEx``) to
the SDL library pygame itself loaded (:func:`master_console.joystick.sdl_library`), so it shows up
in ``pygame.joystick`` and can be opened by :class:`~master_console.joystick.JoystickDevice` like a
real gamepad. No window, display or ``/dev/uinput`` is needed.

* It is visible at once: ``pygame.joystick.get_count()`` counts it right after construction (no
  re-init or event pump needed); :attr:`VirtualJoystick.device_index` is its SDL index.
* Values set with :meth:`~VirtualJoystick.set_axis` / :meth:`~VirtualJoystick.set_button` reach
  readers on the next ``SDL_JoystickUpdate`` (which ``JoystickDevice`` calls on every read; call
  :meth:`~VirtualJoystick.update` yourself when reading it with pygame directly).
* :meth:`~VirtualJoystick.close` (or leaving ``with``) detaches it, as if it were unplugged.
* With ``joystick_type = SDL_JOYSTICK_TYPE_GAMECONTROLLER`` (the default) SDL treats it as a
  standard gamepad: axes in SDL's controller order (left x, left y, right x, right y, left trigger,
  right trigger), and the two trigger axes start at -1 like a real, released trigger. Use
  ``SDL_JOYSTICK_TYPE_GENERIC`` for a plain joystick whose axes all start at 0.
"""

from __future__ import annotations

import ctypes
import math
import threading

from master_console.joystick import sdl_library

SDL_JOYSTICK_TYPE_GENERIC = 0  # SDL_JOYSTICK_TYPE_UNKNOWN
SDL_JOYSTICK_TYPE_GAMECONTROLLER = 1
SDL_VIRTUAL_JOYSTICK_DESC_VERSION = 1


class _VirtualJoystickDesc(ctypes.Structure):
    """``SDL_VirtualJoystickDesc`` (SDL 2.24+, version 1)."""

    _fields_ = [
        ("version", ctypes.c_uint16),
        ("type", ctypes.c_uint16),
        ("naxes", ctypes.c_uint16),
        ("nbuttons", ctypes.c_uint16),
        ("nhats", ctypes.c_uint16),
        ("vendor_id", ctypes.c_uint16),
        ("product_id", ctypes.c_uint16),
        ("padding", ctypes.c_uint16),
        ("button_mask", ctypes.c_uint32),
        ("axis_mask", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("userdata", ctypes.c_void_p),
        ("Update", ctypes.c_void_p),
        ("SetPlayerIndex", ctypes.c_void_p),
        ("Rumble", ctypes.c_void_p),
        ("RumbleTriggers", ctypes.c_void_p),
        ("SetLED", ctypes.c_void_p),
        ("SendEffect", ctypes.c_void_p),
    ]


class VirtualJoystick:
    """An SDL virtual joystick with ``naxes`` axes and ``nbuttons`` buttons, named ``name``.

    Raises RuntimeError when pygame's SDL library cannot be found or SDL refuses the device.
    Thread-safe (SDL locks its joystick list); use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        naxes: int = 6,
        nbuttons: int = 16,
        nhats: int = 0,
        name: str = "Virtual Gamepad",
        joystick_type: int = SDL_JOYSTICK_TYPE_GAMECONTROLLER,
    ) -> None:
        for what, n, hi in (("naxes", naxes, 32), ("nbuttons", nbuttons, 32), ("nhats", nhats, 8)):
            if not (isinstance(n, int) and 0 <= n <= hi):
                raise ValueError(f"{what} must be an integer in [0, {hi}], got {n!r}")
        self._sdl = sdl_library()
        self._name_bytes = name.encode("utf-8")  # SDL copies it, but keep it alive regardless
        desc = _VirtualJoystickDesc(
            version=SDL_VIRTUAL_JOYSTICK_DESC_VERSION,
            type=joystick_type,
            naxes=naxes,
            nbuttons=nbuttons,
            nhats=nhats,
            name=self._name_bytes,
        )
        index = self._sdl.SDL_JoystickAttachVirtualEx(ctypes.byref(desc))
        if index < 0:
            raise RuntimeError(f"SDL could not attach a virtual joystick: {self._error()}")
        handle = self._sdl.SDL_JoystickOpen(index)
        if not handle:
            self._sdl.SDL_JoystickDetachVirtual(index)
            raise RuntimeError(f"SDL could not open the virtual joystick: {self._error()}")
        self._handle: int | None = handle
        self.instance_id = int(self._sdl.SDL_JoystickInstanceID(handle))
        self.naxes, self.nbuttons = naxes, nbuttons
        self._lock = threading.Lock()

    def _error(self) -> str:
        e = self._sdl.SDL_GetError()
        return e.decode("utf-8", "replace") if e else "unknown error"

    @property
    def name(self) -> str:
        """The name it shows in ``pygame.joystick.Joystick(i).get_name()``."""
        return self._name_bytes.decode("utf-8")

    @property
    def attached(self) -> bool:
        return self._handle is not None

    @property
    def device_index(self) -> int:
        """Its current SDL device index (indices shift when other joysticks go away)."""
        k = self._index_of(self.instance_id)
        if k < 0:
            raise RuntimeError("the virtual joystick is not attached")
        return k

    def _live(self) -> int:
        if self._handle is None:
            raise RuntimeError("the virtual joystick is closed")
        return self._handle

    def set_axis(self, axis: int, value: float) -> None:
        """Set axis ``axis`` to ``value`` in [-1, 1] (delivered on the next joystick update)."""
        if not 0 <= axis < self.naxes:
            raise ValueError(f"axis must be in [0, {self.naxes - 1}], got {axis}")
        v = float(value)
        if not (math.isfinite(v) and -1.0 <= v <= 1.0):
            raise ValueError(f"axis value must be in [-1, 1], got {value!r}")
        raw = round(v * 32767) if v >= 0 else round(v * 32768)
        with self._lock:
            if self._sdl.SDL_JoystickSetVirtualAxis(self._live(), axis, raw) < 0:
                raise RuntimeError(f"SDL refused axis {axis}: {self._error()}")

    def set_button(self, button: int, pressed: bool) -> None:
        """Press or release button ``button`` (delivered on the next joystick update)."""
        if not 0 <= button < self.nbuttons:
            raise ValueError(f"button must be in [0, {self.nbuttons - 1}], got {button}")
        with self._lock:
            if self._sdl.SDL_JoystickSetVirtualButton(self._live(), button, int(bool(pressed))) < 0:
                raise RuntimeError(f"SDL refused button {button}: {self._error()}")

    def update(self) -> None:
        """Run ``SDL_JoystickUpdate`` so that pygame's readings show the values set."""
        self._sdl.SDL_JoystickUpdate()

    def close(self) -> None:
        """Detach (unplug) and close it; idempotent."""
        with self._lock:
            if self._handle is None:
                return
            handle, self._handle = self._handle, None
            try:
                k = self._index_of(self.instance_id)
                if k >= 0:
                    self._sdl.SDL_JoystickDetachVirtual(k)
            finally:
                self._sdl.SDL_JoystickClose(handle)

    def _index_of(self, instance_id: int) -> int:
        sdl = self._sdl
        for k in range(sdl.SDL_NumJoysticks()):
            if sdl.SDL_JoystickGetDeviceInstanceID(k) == instance_id:
                return k
        return -1

    def __enter__(self) -> VirtualJoystick:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "attached" if self.attached else "closed"
        return (
            f"VirtualJoystick({self.name!r}, {self.naxes} axes, {self.nbuttons} buttons, {state})"
        )


__all__ = [
    "SDL_JOYSTICK_TYPE_GAMECONTROLLER",
    "SDL_JOYSTICK_TYPE_GENERIC",
    "VirtualJoystick",
]
