"""Input devices for the surgeon's console: the device interface, rate integration, and devices.

Every device implements :class:`InputDevice`: ``connect``/``disconnect`` (or ``with device:``),
``latest()`` for the newest :class:`InputSample` (cheap, never blocks: the console loop calls it on
every tick), and an optional force output (``has_force_feedback``, ``send_force``). Devices that
must be polled or read from a socket derive from :class:`ThreadedDevice`, which reads them on their
own thread (STYLE.md principle 11) against absolute deadlines and keeps only the newest sample.

Devices here:

* :class:`ReplayDevice`: plays an :class:`InputRecording` (``.npz``) at real time or faster.
* :class:`GloveReceiver` / :class:`GloveSender`: a data glove over ZeroMQ (format below).
* :class:`KeyboardDevice`: a key-event state machine integrated by :class:`RateIntegrator`.
* ``master_console.synthetic.SyntheticHand``: a seeded synthetic hand with physiological tremor.

Pose devices fill ``InputSample.pose``; pure rate devices fill ``InputSample.twist``. Devices that
integrate a rate input into a pose (the keyboard) report both: the integrated pose, and the twist
(m/s, rad/s) that was being applied.

Every device also *declares* what it delivers (class attributes, or instance attributes where
they depend on its configuration): ``sample_rate_hz``, ``button_roles``, ``position_range_m``,
``max_speed_m_s``/``max_rate_rad_s``, ``jaw_range_rad`` and ``rate_input`` (see
:class:`InputDevice`). The console uses ``rate_input`` to pick its tremor filter, and
``master_console.device_check`` (``master-console check-input NAME``) holds a device to all of
them. Devices from other packages register their class in the entry-point group
``telesurgery.input_devices`` (see ``examples/input_template``).

Data-glove wire format (version 1)
----------------------------------
* Sockets: ZeroMQ **PUB on the glove** (binds, default ``tcp://*:5580``; :class:`GloveSender`
  uses XPUB, which behaves as PUB and also sees subscriptions), **SUB at the console** (connects,
  default ``tcp://127.0.0.1:5580``, subscribes to everything). Port 5580 by default
  (:data:`GLOVE_PORT`). No topic prefix; one single-frame message per sample.
* Each message is one msgpack **map** (at most 1024 bytes) with exactly these keys:

  ===========  ===================  ==========================================================
  key          msgpack type         meaning
  ===========  ===================  ==========================================================
  ``v``        int                  format version, must be ``1``
  ``t_ns``     int, 0 ≤ t < 2**63   the glove's monotonic clock when sampled (ns)
  ``pose``     array of 7 numbers   x, y, z (m), qx, qy, qz, qw (unit quaternion; a norm outside
                                    1 ± 0.05 is rejected, the rest are renormalised)
  ``grip``     number in [0, 1]     0 = hand open, 1 = fully squeezed
  ``clutch``   bool                 clutch engaged
  ``present``  bool                 operator present (hand in the glove)
  ===========  ===================  ==========================================================

  "number" is a msgpack int or float (not bool); every number must be finite. Any other key,
  missing key, wrong type, NaN/inf, out-of-range value, oversized or undecodable message, or
  multi-frame message is dropped and counted by reason (:attr:`GloveReceiver.stats`); the
  receiver never raises on bad input. The console maps grip to the jaw command as
  ``jaw = (1 − grip) · jaw_open_rad`` (squeezing closes the jaws).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import msgpack
import numpy as np
import zmq

log = logging.getLogger(__name__)

GLOVE_PORT = 5580
GLOVE_VERSION = 1
GLOVE_MAX_MESSAGE_BYTES = 1024
IDENTITY_POSE = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
BUTTON_ROLES: tuple[str, ...] = ("clutch", "operator_present", "camera")
"""The :class:`Buttons` fields, i.e. the roles a device's buttons can drive."""

PositionRange = tuple[tuple[float, float, float], tuple[float, float, float]]
"""A box of positions: ``((x_min, y_min, z_min), (x_max, y_max, z_max))`` in metres."""


# ---------------------------------------------------------------------------------------------
# Samples and the device interface


@dataclass(frozen=True)
class Buttons:
    clutch: bool = False
    operator_present: bool = False
    camera: bool = False


@dataclass(frozen=True)
class InputSample:
    """One reading of an input device.

    ``t_ns`` is ``time.monotonic_ns()`` on the console when the sample was taken; ``pose`` is
    (7,) x y z (m) qx qy qz qw for pose devices, else None; ``twist`` is (6,) vx vy vz (m/s)
    wx wy wz (rad/s) for rate devices, else None; ``jaw`` is the jaw command (rad); ``seq``
    increases by at least one per new sample of a device.
    """

    t_ns: int
    pose: np.ndarray | None
    twist: np.ndarray | None
    jaw: float
    buttons: Buttons
    seq: int


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class InputDevice(ABC):
    """A master input device: connect, read the newest sample, optionally render force.

    What a device delivers is declared in these attributes (override them as class attributes,
    or set them on the instance where they depend on configuration); the defaults suit a
    hand-held pose device. ``master_console.device_check`` verifies a device against them.

    * ``sample_rate_hz``: the nominal rate of new samples (Hz).
    * ``button_roles``: the :class:`Buttons` fields the device can drive (a subset of
      :data:`BUTTON_ROLES`); the others must always read False.
    * ``position_range_m``: the box (device frame, metres) every reported pose position lies in,
      ``((x_min, y_min, z_min), (x_max, y_max, z_max))``; None for a pure rate device whose
      integrated pose is unbounded.
    * ``max_speed_m_s``/``max_rate_rad_s``: bounds on a reported twist's linear and angular speed;
      None for devices that report no twist.
    * ``jaw_range_rad``: ``(min, max)`` of the jaw command (rad).
    * ``rate_input``: True when motion comes from integrating a rate (joystick, SpaceMouse,
      keyboard): the integrated pose carries no hand tremor, so the console's tremor filter
      defaults to ``"none"``.
    """

    name: ClassVar[str] = "device"
    sample_rate_hz: float = 100.0
    button_roles: tuple[str, ...] = ("clutch", "operator_present")
    position_range_m: PositionRange | None = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
    max_speed_m_s: float | None = None
    max_rate_rad_s: float | None = None
    jaw_range_rad: tuple[float, float] = (0.0, math.pi)
    rate_input: bool = False

    @abstractmethod
    def connect(self) -> None:
        """Open the device (idempotent)."""

    @abstractmethod
    def disconnect(self) -> None:
        """Close the device (idempotent); ``latest()`` may keep returning the last sample."""

    @abstractmethod
    def latest(self) -> InputSample | None:
        """The newest sample, or None before the first one. Cheap; never blocks."""

    def __enter__(self) -> InputDevice:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    @property
    def has_force_feedback(self) -> bool:
        return False

    def send_force(self, wrench: np.ndarray) -> None:
        """Render a wrench (fx fy fz (N), tx ty tz (N·m)); a no-op for devices without output.

        Raises ValueError for a shape other than (6,) or a value that is not finite.
        """
        check_wrench(wrench)


def check_wrench(wrench: Any) -> np.ndarray:
    """``wrench`` as a float (6,) array; ValueError (saying what was wrong) for a bad shape or a
    non-finite value, so that a device is never handed NaN."""
    try:
        w = np.asarray(wrench, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"wrench must be 6 numbers (fx fy fz N, tx ty tz N·m): {exc}") from None
    if w.shape != (6,):
        raise ValueError(f"wrench must have shape (6,), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError(f"wrench must be finite, got {w}")
    return w


class ThreadedDevice(InputDevice):
    """A device read on its own thread; ``latest()`` returns the newest sample under a lock.

    Subclasses implement :meth:`read_once`. With ``rate_hz`` set, the thread calls it once per
    period against absolute deadlines (missed deadlines are skipped and counted in ``overruns``,
    never made up in a burst). With ``rate_hz=None`` it is called back to back, and
    ``read_once`` must itself wait a short time (e.g. poll a socket with a timeout).
    ``_open``/``_close`` are hooks run before the thread starts and after it has been joined.
    An exception in ``read_once`` is logged and counted in ``errors``; the thread goes on.
    """

    def __init__(self, rate_hz: float | None = 1000.0) -> None:
        if rate_hz is not None and not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.rate_hz = rate_hz
        self._lock = threading.Lock()
        self._latest: InputSample | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.overruns = 0
        self.errors = 0

    @property
    def sample_rate_hz(self) -> float:  # type: ignore[override]
        """The nominal sample rate: the thread's ``rate_hz`` unless declared otherwise (set it,
        or override it with a class attribute, for a device read with ``rate_hz=None``)."""
        declared = self.__dict__.get("_sample_rate_hz")
        if declared is not None:
            return declared
        return float(self.rate_hz) if self.rate_hz is not None else InputDevice.sample_rate_hz

    @sample_rate_hz.setter
    def sample_rate_hz(self, value: float) -> None:
        self.__dict__["_sample_rate_hz"] = float(value)

    @abstractmethod
    def read_once(self) -> InputSample | None:
        """Read the device once; None when there is nothing new."""

    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _store(self, sample: InputSample) -> None:
        with self._lock:
            self._latest = sample

    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    def connect(self) -> None:
        if self._thread is not None:
            return
        self._open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-reader", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():  # pragma: no cover - a read_once that ignores its timeout
            log.error("%s: reader thread did not stop", self.name)
        self._thread = None
        self._close()

    def latest(self) -> InputSample | None:
        with self._lock:
            return self._latest

    def _read_and_store(self) -> None:
        try:
            sample = self.read_once()
        except Exception:
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                log.exception("%s: read failed (%d errors so far)", self.name, self.errors)
            return
        if sample is not None:
            self.samples += 1
            self._store(sample)

    def _run(self) -> None:
        if self.rate_hz is None:
            while not self._stop.is_set():
                self._read_and_store()
            return
        period_ns = round(1e9 / self.rate_hz)
        deadline = time.monotonic_ns()
        while not self._stop.is_set():
            now = time.monotonic_ns()
            if now < deadline:
                wait_s = (deadline - now) / 1e9
                if wait_s > 0.02:
                    if self._stop.wait(wait_s):
                        break
                else:
                    time.sleep(wait_s)
            self._read_and_store()
            deadline += period_ns
            behind = time.monotonic_ns() - deadline
            if behind > period_ns:  # skip the deadlines we missed, on the same grid
                missed = behind // period_ns
                self.overruns += missed
                deadline += missed * period_ns


# ---------------------------------------------------------------------------------------------
# Quaternions (x, y, z, w) and rate integration


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of quaternions stored (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def quat_from_rotvec(rv: np.ndarray) -> np.ndarray:
    """The unit quaternion (x, y, z, w) of a rotation vector (axis × angle, rad)."""
    angle = float(np.linalg.norm(rv))
    if angle < 1e-12:
        return np.array([0.5 * rv[0], 0.5 * rv[1], 0.5 * rv[2], 1.0]) / math.sqrt(
            1.0 + 0.25 * angle * angle
        )
    s = math.sin(0.5 * angle) / angle
    return np.array([rv[0] * s, rv[1] * s, rv[2] * s, math.cos(0.5 * angle)])


@dataclass(frozen=True)
class AxisMapping:
    """How raw device axes (normalised to [-1, 1]) become a twist.

    Output axis ``i`` (vx vy vz wx wy wz) takes raw axis ``axes[i]``, negated if ``invert[i]``;
    values with ``|x| <= dead_zone`` become 0 and the rest are rescaled to stay continuous;
    the result is scaled by ``max_speed_m_s`` (linear) and ``max_rate_rad_s`` (angular), and the
    linear and angular speeds are each limited to those maxima in norm.
    """

    axes: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    invert: tuple[bool, ...] = (False,) * 6
    dead_zone: float = 0.05
    max_speed_m_s: float = 0.05
    max_rate_rad_s: float = 1.0

    def __post_init__(self) -> None:
        if len(self.axes) != 6 or any(not 0 <= a < 6 for a in self.axes):
            raise ValueError(f"axes must be 6 indices in 0..5, got {self.axes}")
        if len(self.invert) != 6:
            raise ValueError(f"invert must have 6 entries, got {len(self.invert)}")
        if not 0.0 <= self.dead_zone < 1.0:
            raise ValueError(f"dead_zone must be in [0, 1), got {self.dead_zone}")
        if not (self.max_speed_m_s > 0 and self.max_rate_rad_s > 0):
            raise ValueError("max_speed_m_s and max_rate_rad_s must be positive")

    def twist(self, raw: np.ndarray) -> np.ndarray:
        """The twist (m/s, rad/s) for raw axes ``raw`` (6,), a pure function."""
        r = np.asarray(raw, dtype=float)
        if r.shape != (6,):
            raise ValueError(f"raw axes must have shape (6,), got {r.shape}")
        r = np.clip(np.nan_to_num(r, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        x = r[list(self.axes)]
        x = np.where(np.array(self.invert, dtype=bool), -x, x)
        mag = np.maximum(np.abs(x) - self.dead_zone, 0.0) / (1.0 - self.dead_zone)
        x = np.sign(x) * mag
        v = x[:3] * self.max_speed_m_s
        w = x[3:] * self.max_rate_rad_s
        nv, nw = float(np.linalg.norm(v)), float(np.linalg.norm(w))
        if nv > self.max_speed_m_s:
            v *= self.max_speed_m_s / nv
        if nw > self.max_rate_rad_s:
            w *= self.max_rate_rad_s / nw
        return np.concatenate([v, w])


class RateIntegrator:
    """Integrates raw rate input into a pose: position += v·dt, orientation by ω (world frame).

    ``step(t_ns, raw)`` first integrates the input held since the previous step over
    ``dt = t_ns − t_prev`` (from sample times, never from a tick count, so the result does not
    depend on the sample rate), then holds the new input. The orientation is advanced exactly for
    a constant ω over dt (``q ← exp(ω·dt/2) ⊗ q``) and renormalised, so it stays a unit quaternion.
    """

    def __init__(self, mapping: AxisMapping | None = None, pose: np.ndarray | None = None) -> None:
        self.mapping = mapping or AxisMapping()
        self._pose = np.array(IDENTITY_POSE if pose is None else pose, dtype=float)
        self._twist = np.zeros(6)
        self._t_ns: int | None = None

    def reset(self, pose: np.ndarray | None = None, t_ns: int | None = None) -> None:
        if pose is not None:
            self._pose = np.array(pose, dtype=float)
        self._twist = np.zeros(6)
        self._t_ns = t_ns

    @property
    def pose(self) -> np.ndarray:
        return self._pose.copy()

    @property
    def twist(self) -> np.ndarray:
        """The twist (m/s, rad/s) being held since the last step."""
        return self._twist.copy()

    def advance(self, t_ns: int) -> np.ndarray:
        """Integrate the held twist up to ``t_ns`` (a time before the last one integrates 0)."""
        if self._t_ns is not None and t_ns > self._t_ns:
            dt = (t_ns - self._t_ns) / 1e9
            self._pose[:3] += self._twist[:3] * dt
            q = quat_multiply(quat_from_rotvec(self._twist[3:] * dt), self._pose[3:])
            self._pose[3:] = q / np.linalg.norm(q)
        if self._t_ns is None or t_ns > self._t_ns:
            self._t_ns = t_ns
        return self._pose.copy()

    def step(self, t_ns: int, raw: np.ndarray) -> np.ndarray:
        """Integrate up to ``t_ns``, then hold the twist of ``raw`` (6,); returns the pose."""
        pose = self.advance(t_ns)
        self._twist = self.mapping.twist(raw)
        return pose


# ---------------------------------------------------------------------------------------------
# Replay


@dataclass(frozen=True)
class InputRecording:
    """A recorded input stream: ``t_s`` (N,), ``pose`` (N, 7), ``jaw`` (N,) rad, ``clutch`` and
    ``operator_present`` (N,) bool. Times are seconds, non-decreasing, any origin."""

    t_s: np.ndarray
    pose: np.ndarray
    jaw: np.ndarray
    clutch: np.ndarray
    operator_present: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.t_s, dtype=float)
        n = t.shape[0] if t.ndim == 1 else -1
        if n < 1:
            raise ValueError("t_s must be a non-empty 1-D array")
        arrays = {
            "t_s": t,
            "pose": np.asarray(self.pose, dtype=float),
            "jaw": np.asarray(self.jaw, dtype=float),
            "clutch": np.asarray(self.clutch, dtype=bool),
            "operator_present": np.asarray(self.operator_present, dtype=bool),
        }
        shapes = {
            "t_s": (n,),
            "pose": (n, 7),
            "jaw": (n,),
            "clutch": (n,),
            "operator_present": (n,),
        }
        for key, a in arrays.items():
            if a.shape != shapes[key]:
                raise ValueError(f"{key} must have shape {shapes[key]}, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{key} has non-finite values")
            object.__setattr__(self, key, _frozen(a))
        if np.any(np.diff(t) < 0):
            raise ValueError("t_s must be non-decreasing")

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] - self.t_s[0])

    def save(self, path: str | Path) -> None:
        np.savez(
            path,
            t_s=self.t_s,
            pose=self.pose,
            jaw=self.jaw,
            clutch=self.clutch,
            operator_present=self.operator_present,
        )

    @classmethod
    def load(cls, path: str | Path) -> InputRecording:
        """Load a ``.npz`` with arrays t_s, pose, jaw, clutch and operator_present."""
        with np.load(path, allow_pickle=False) as z:
            missing = {"t_s", "pose", "jaw", "clutch", "operator_present"} - set(z.files)
            if missing:
                raise ValueError(f"{path}: missing arrays {sorted(missing)}")
            return cls(z["t_s"], z["pose"], z["jaw"], z["clutch"], z["operator_present"])


def load_input_recording(path: str | Path) -> InputRecording:
    return InputRecording.load(path)


class ReplayDevice(InputDevice):
    """Plays a :class:`InputRecording` back at ``speed`` × real time (looping if ``loop``).

    No thread is needed: ``latest()`` returns the last recorded sample whose (scaled) time has
    passed since ``connect()``; ``seq`` is the sample's index (plus ``len`` per completed loop)
    and ``t_ns`` the moment it was due. ``clock`` is injectable for exact tests.
    """

    name = "replay"

    def __init__(
        self,
        recording: InputRecording,
        speed: float = 1.0,
        loop: bool = False,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be positive, got {speed}")
        self.recording = recording
        self.speed = speed
        self.loop = loop
        self._clock = clock
        self._t0_ns: int | None = None
        # declared from the recording: its mean rate (× speed), its position box and jaw span
        n, dur = len(recording), recording.duration_s
        self.sample_rate_hz = (n - 1) / dur * speed if n > 1 and dur > 0 else 1.0
        lo, hi = recording.pose[:, :3].min(axis=0), recording.pose[:, :3].max(axis=0)
        self.position_range_m = (
            (float(lo[0]), float(lo[1]), float(lo[2])),
            (float(hi[0]), float(hi[1]), float(hi[2])),
        )
        self.jaw_range_rad = (float(recording.jaw.min()), float(recording.jaw.max()))

    @classmethod
    def from_npz(cls, path: str | Path, **kwargs: Any) -> ReplayDevice:
        return cls(InputRecording.load(path), **kwargs)

    def connect(self) -> None:
        if self._t0_ns is None:
            self._t0_ns = self._clock()

    def disconnect(self) -> None:
        self._t0_ns = None

    @property
    def finished(self) -> bool:
        if self._t0_ns is None or self.loop:
            return False
        elapsed_s = (self._clock() - self._t0_ns) / 1e9 * self.speed
        return elapsed_s >= self.recording.duration_s

    def latest(self) -> InputSample | None:
        if self._t0_ns is None:
            return None
        rec = self.recording
        elapsed_s = max(0, self._clock() - self._t0_ns) / 1e9 * self.speed
        n, dur = len(rec), rec.duration_s
        laps = 0
        if self.loop and dur > 0:
            # one lap lasts dur plus one mean sample interval, so the last sample is also shown
            lap = dur + dur / max(n - 1, 1)
            laps, elapsed_s = divmod(elapsed_s, lap)
        i = int(np.searchsorted(rec.t_s, rec.t_s[0] + elapsed_s, side="right")) - 1
        i = max(i, 0)
        offset_s = laps * (dur + dur / max(n - 1, 1)) + (rec.t_s[i] - rec.t_s[0])
        return InputSample(
            t_ns=self._t0_ns + round(offset_s / self.speed * 1e9),
            pose=rec.pose[i],
            twist=None,
            jaw=float(rec.jaw[i]),
            buttons=Buttons(bool(rec.clutch[i]), bool(rec.operator_present[i]), False),
            seq=int(laps) * n + i,
        )


# ---------------------------------------------------------------------------------------------
# Data glove over ZeroMQ


class GloveMessageError(ValueError):
    """A glove message that breaks the format; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class GloveFrame:
    """One glove reading: ``pose`` (7,) x y z (m) qx qy qz qw, ``grip`` 0 (open) .. 1 (squeezed)."""

    pose: np.ndarray
    grip: float
    clutch: bool = True
    present: bool = True


_GLOVE_KEYS = frozenset({"v", "t_ns", "pose", "grip", "clutch", "present"})


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_frame(pose: Any, grip: Any, clutch: Any, present: Any) -> tuple[np.ndarray, float]:
    if not isinstance(pose, list | tuple | np.ndarray) or len(pose) != 7:
        raise GloveMessageError("bad_pose", "pose must be 7 numbers")
    if isinstance(pose, np.ndarray):
        p = np.asarray(pose, dtype=float)
    else:
        if not all(_is_number(x) for x in pose):
            raise GloveMessageError("bad_pose", "pose must be 7 numbers")
        p = np.array(pose, dtype=float)
    if not np.all(np.isfinite(p)):
        raise GloveMessageError("bad_pose", "non-finite pose")
    qn = float(np.linalg.norm(p[3:]))
    if abs(qn - 1.0) > 0.05:
        raise GloveMessageError("bad_pose", f"quaternion norm {qn:.3f} is not 1 ± 0.05")
    p[3:] /= qn
    if not _is_number(grip) or not math.isfinite(grip) or not 0.0 <= grip <= 1.0:
        raise GloveMessageError("bad_grip", "grip must be a finite number in [0, 1]")
    if not isinstance(clutch, bool) or not isinstance(present, bool):
        raise GloveMessageError("bad_button", "clutch and present must be bool")
    return p, float(grip)


def encode_glove_message(t_ns: int, frame: GloveFrame) -> bytes:
    """The version-1 msgpack map for one glove reading (validated like the receiver does)."""
    if not isinstance(t_ns, int) or isinstance(t_ns, bool) or not 0 <= t_ns < 2**63:
        raise GloveMessageError("bad_t_ns", "t_ns must be an int in [0, 2**63)")
    pose, grip = _check_frame(frame.pose, frame.grip, frame.clutch, frame.present)
    msg = {
        "v": GLOVE_VERSION,
        "t_ns": t_ns,
        "pose": [float(x) for x in pose],
        "grip": grip,
        "clutch": frame.clutch,
        "present": frame.present,
    }
    return msgpack.packb(msg, use_bin_type=True)


def decode_glove_message(data: bytes) -> tuple[int, GloveFrame]:
    """Validate one message; returns ``(t_ns, frame)`` or raises :class:`GloveMessageError`."""
    if len(data) > GLOVE_MAX_MESSAGE_BYTES:
        raise GloveMessageError("oversized", f"{len(data)} bytes")
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as e:
        raise GloveMessageError("undecodable", type(e).__name__) from None
    if not isinstance(msg, dict):
        raise GloveMessageError("not_a_map")
    if set(msg) != _GLOVE_KEYS:
        raise GloveMessageError("bad_keys", f"keys {sorted(map(str, msg))}")
    v = msg["v"]
    if not isinstance(v, int) or isinstance(v, bool) or v != GLOVE_VERSION:
        raise GloveMessageError("bad_version", repr(v))
    t_ns = msg["t_ns"]
    if not isinstance(t_ns, int) or isinstance(t_ns, bool) or not 0 <= t_ns < 2**63:
        raise GloveMessageError("bad_t_ns", repr(t_ns))
    pose, grip = _check_frame(msg["pose"], msg["grip"], msg["clutch"], msg["present"])
    return t_ns, GloveFrame(_frozen(pose), grip, msg["clutch"], msg["present"])


@dataclass
class GloveStats:
    received: int = 0
    accepted: int = 0
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class GloveReceiver(ThreadedDevice):
    """The console end of a data glove: SUB socket read on its own thread (format: module doc).

    Every message is validated; bad ones are counted by reason in :attr:`stats` and dropped.
    ``last_glove_t_ns`` is the glove's own timestamp of the newest accepted message. Samples are
    stamped with ``time.monotonic_ns()`` on receipt; ``sample_rate_hz`` is the rate the glove
    sends at (declared, for the conformance check: the receiver delivers what arrives).
    """

    name = "glove"
    # a tracked glove anywhere in a room-scale tracking volume (tracker frame, m)
    position_range_m = ((-2.0, -2.0, -2.0), (2.0, 2.0, 2.0))

    def __init__(
        self,
        endpoint: str = f"tcp://127.0.0.1:{GLOVE_PORT}",
        bind: bool = False,
        jaw_open_rad: float = 1.0,
        poll_timeout_ms: int = 20,
        context: zmq.Context | None = None,
        sample_rate_hz: float = 100.0,
    ) -> None:
        super().__init__(rate_hz=None)
        if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
            raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        self.sample_rate_hz = sample_rate_hz
        self.jaw_range_rad = (0.0, float(jaw_open_rad))
        self.endpoint = endpoint
        self.bind = bind
        self.jaw_open_rad = jaw_open_rad
        self.poll_timeout_ms = poll_timeout_ms
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._stats = GloveStats()
        self._seq = 0
        self.last_glove_t_ns: int | None = None

    @property
    def stats(self) -> GloveStats:
        s = self._stats
        return GloveStats(s.received, s.accepted, s.dropped, dict(s.reasons))

    def _open(self) -> None:
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 10000)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            (sock.bind if self.bind else sock.connect)(self.endpoint)
        except zmq.ZMQError:
            sock.close()
            raise
        self._sock = sock

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _drop(self, reason: str) -> None:
        self._stats.dropped += 1
        self._stats.reasons[reason] = self._stats.reasons.get(reason, 0) + 1

    def read_once(self) -> InputSample | None:
        sock = self._sock
        assert sock is not None
        if not sock.poll(self.poll_timeout_ms, zmq.POLLIN):
            return None
        newest: tuple[int, GloveFrame] | None = None
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._stats.received += 1
            if sock.getsockopt(zmq.RCVMORE):
                while sock.getsockopt(zmq.RCVMORE):
                    sock.recv()
                self._drop("multipart")
                continue
            try:
                newest = decode_glove_message(data)
            except GloveMessageError as e:
                self._drop(e.reason)
                if self._stats.dropped == 1 or self._stats.dropped % 1000 == 0:
                    log.warning("glove: dropped message (%s); %d so far", e, self._stats.dropped)
                continue
            self._stats.accepted += 1
        if newest is None:
            return None
        glove_t_ns, frame = newest
        self.last_glove_t_ns = glove_t_ns
        self._seq += 1
        return InputSample(
            t_ns=time.monotonic_ns(),
            pose=frame.pose,
            twist=None,
            jaw=(1.0 - frame.grip) * self.jaw_open_rad,
            buttons=Buttons(clutch=frame.clutch, operator_present=frame.present),
            seq=self._seq,
        )


class GloveSender:
    """The glove end: an XPUB socket (PUB semantics) that sends version-1 messages.

    Used by glove bridges, tests and demos. ``endpoint`` may use port ``*``; the bound address is
    then in :attr:`endpoint` after construction.
    """

    def __init__(
        self,
        endpoint: str = f"tcp://*:{GLOVE_PORT}",
        bind: bool = True,
        context: zmq.Context | None = None,
    ) -> None:
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, 10000)
        try:
            if bind:
                self._sock.bind(endpoint)
                endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
            else:
                self._sock.connect(endpoint)
        except zmq.ZMQError:
            self._sock.close()
            raise
        self.endpoint = endpoint
        self.sent = 0

    def wait_for_subscriber(self, timeout_s: float = 2.0) -> bool:
        """Wait until a subscriber has subscribed (so the first messages are not lost)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self._sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                msg = self._sock.recv()
                if msg[:1] == b"\x01":
                    return True
        return False

    def send(self, frame: GloveFrame, t_ns: int | None = None) -> None:
        self.send_raw(encode_glove_message(time.monotonic_ns() if t_ns is None else t_ns, frame))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (for fault-injection tests)."""
        self._sock.send(data)
        self.sent += 1

    def replay(self, samples: Iterable[GloveFrame], rate_hz: float) -> int:
        """Send ``samples`` at ``rate_hz`` on absolute deadlines; returns how many were sent."""
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        period_ns = round(1e9 / rate_hz)
        start = time.monotonic_ns()
        n = 0
        for n, frame in enumerate(samples, start=1):
            deadline = start + (n - 1) * period_ns
            now = time.monotonic_ns()
            if now < deadline:
                time.sleep((deadline - now) / 1e9)
            self.send(frame)
        return n

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> GloveSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Keyboard

# key -> (raw axis, direction)
_MOTION_KEYS: dict[str, tuple[int, float]] = {
    "right": (0, 1.0),
    "d": (0, 1.0),
    "left": (0, -1.0),
    "a": (0, -1.0),
    "up": (1, 1.0),
    "w": (1, 1.0),
    "down": (1, -1.0),
    "s": (1, -1.0),
    "e": (2, 1.0),
    "q": (2, -1.0),
}
_KEY_ALIASES = {" ": "space", "arrowup": "up", "arrowdown": "down", "arrowleft": "left"}
_KEY_ALIASES["arrowright"] = "right"


class KeyboardDevice(InputDevice):
    """A keyboard as a rate device: a pure state machine fed ``press``/``release`` events.

    Held keys give a raw axis value of ±1: right/d +x, left/a −x, up/w +y, down/s −y, e +z, q −z;
    the twist is integrated into a pose by a :class:`RateIntegrator` (speed and mapping from
    ``mapping``). ``space`` toggles the clutch, ``p`` toggles operator-present, ``c`` is the
    camera button while held, ``]`` opens and ``[`` closes the jaw at ``jaw_rate_rad_s`` within
    [0, ``jaw_max_rad``]. Key repeat (a press of a held key) is ignored. Events may carry their
    own ``t_ns``; otherwise ``clock()`` is read. Thread-safe: the display may feed keys while the
    loop reads ``latest()``. Every ``latest()`` integrates up to now and is a new sample, so the
    device delivers samples as often as it is read (``sample_rate_hz``: the console's rate).
    """

    name = "keyboard"
    sample_rate_hz = 1000.0
    button_roles = BUTTON_ROLES
    position_range_m = None  # the integrated pose is unbounded
    rate_input = True

    def __init__(
        self,
        mapping: AxisMapping | None = None,
        pose: np.ndarray | None = None,
        jaw_rate_rad_s: float = 1.0,
        jaw_max_rad: float = 1.0,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self._integrator = RateIntegrator(mapping, pose)
        self.jaw_rate_rad_s = jaw_rate_rad_s
        self.jaw_max_rad = jaw_max_rad
        self.max_speed_m_s = self._integrator.mapping.max_speed_m_s
        self.max_rate_rad_s = self._integrator.mapping.max_rate_rad_s
        self.jaw_range_rad = (0.0, float(jaw_max_rad))
        self._clock = clock
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._clutch = False
        self._present = False
        self._jaw = 0.0
        self._jaw_t_ns: int | None = None
        self._seq = 0
        self._connected = False

    @staticmethod
    def _norm(key: str) -> str:
        k = key if key == " " else key.strip().lower()
        return _KEY_ALIASES.get(k, k)

    def _raw(self) -> np.ndarray:
        raw = np.zeros(6)
        for k in self._held:
            if k in _MOTION_KEYS:
                axis, sign = _MOTION_KEYS[k]
                raw[axis] += sign
        return np.clip(raw, -1.0, 1.0)

    def _jaw_dir(self) -> float:
        return float(("]" in self._held) - ("[" in self._held))

    def _advance(self, t_ns: int) -> None:
        if not self._connected:
            return
        self._integrator.advance(t_ns)
        if self._jaw_t_ns is not None and t_ns > self._jaw_t_ns:
            dj = self._jaw_dir() * self.jaw_rate_rad_s * (t_ns - self._jaw_t_ns) / 1e9
            self._jaw = min(max(self._jaw + dj, 0.0), self.jaw_max_rad)
        if self._jaw_t_ns is None or t_ns > self._jaw_t_ns:
            self._jaw_t_ns = t_ns

    def _event(self, key: str, down: bool, t_ns: int | None) -> None:
        k = self._norm(key)
        with self._lock:
            t = self._clock() if t_ns is None else t_ns
            self._advance(t)
            if down:
                if k in self._held:
                    return  # key repeat
                self._held.add(k)
                if k == "space":
                    self._clutch = not self._clutch
                elif k == "p":
                    self._present = not self._present
            else:
                self._held.discard(k)
            if self._connected:
                self._integrator.step(t, self._raw())
            self._seq += 1

    def press(self, key: str, t_ns: int | None = None) -> None:
        self._event(key, True, t_ns)

    def release(self, key: str, t_ns: int | None = None) -> None:
        self._event(key, False, t_ns)

    def connect(self) -> None:
        with self._lock:
            if self._connected:
                return
            t = self._clock()
            self._connected = True
            self._integrator.reset(t_ns=t)
            self._integrator.step(t, self._raw())
            self._jaw_t_ns = t

    def disconnect(self) -> None:
        with self._lock:
            self._connected = False

    def latest(self, t_ns: int | None = None) -> InputSample | None:
        """The state now (or at ``t_ns``), integrating held keys up to then."""
        with self._lock:
            if not self._connected:
                return None
            t = self._clock() if t_ns is None else t_ns
            self._advance(t)
            self._seq += 1
            return InputSample(
                t_ns=t,
                pose=_frozen(self._integrator.pose),
                twist=_frozen(self._integrator.twist),
                jaw=self._jaw,
                buttons=Buttons(self._clutch, self._present, "c" in self._held),
                seq=self._seq,
            )


__all__ = [
    "BUTTON_ROLES",
    "GLOVE_PORT",
    "AxisMapping",
    "Buttons",
    "GloveFrame",
    "GloveMessageError",
    "GloveReceiver",
    "GloveSender",
    "GloveStats",
    "InputDevice",
    "InputRecording",
    "InputSample",
    "KeyboardDevice",
    "PositionRange",
    "RateIntegrator",
    "ReplayDevice",
    "ThreadedDevice",
    "check_wrench",
    "decode_glove_message",
    "encode_glove_message",
    "load_input_recording",
    "quat_from_rotvec",
    "quat_multiply",
]
