"""The safety supervisor: keeps the patient safe on the arm side, whatever the console or link do.

It sits between the arm server and the driver. Each control tick the server hands it the newest
command taken from the link (or None), that command's age by the link's clock-offset estimate,
and the driver's measured pose, setpoint pose and wrench; it answers with a :class:`Decision`:

* ``"servo"``: send ``decision.pose`` (and ``decision.jaw``) to the driver;
* ``"hold"``: call ``driver.hold()`` (setpoint := measured); issued once when motion stops;
* ``"none"``: do nothing new: keep the last setpoint (no command this tick, or still held);
* ``"estop"``: the e-stop latched: ``driver.hold()`` (or disable); then ``"none"`` until reset.

Every limit is a named pure function (:func:`clamp_to_workspace`, :func:`limit_speed`,
:func:`limit_angular_speed`, :func:`clamp_jaw`, :func:`limit_force`, :func:`command_is_stale`);
:class:`SafetySupervisor` is the small state machine around them. No I/O, no threads, no clock:
time comes in as ``now_ns``, so every rule below is exactly testable.

Rules, in the order they are applied each tick:

1. **Sequence.** A command whose ``seq`` is not above the last accepted one is refused:
   ``"duplicate_command"`` (equal) or ``"out_of_order_command"`` (lower). Every command that
   passes this check (stale or not) becomes the last accepted seq, so an older one can never
   follow a newer one.
2. **Age.** A command older than ``max_command_age_ms`` (send time to now, by the link's
   clock-offset estimate) is refused: ``"stale_command"``. So is one whose send time lies more
   than ``max_command_age_ms`` in the *future* (the clocks disagree: its age is unknown), and one
   given without an age. A refused command does not feed the watchdog.
3. **Watchdog.** When more than ``watchdog_ms`` passed between the tick that accepted the last
   valid command and this tick (strictly more: with 1 ms ticks and 100 ms, the hold comes on the
   101st silent tick), the arm holds: ``"watchdog_hold"`` (action ``"hold"`` once, then
   ``"none"`` while it stays held). The flag stays until a valid command arrives (a command that
   ends a silence first seen on its own tick, after a stall, still carries it). A trip also forgets
   the last seq: a console that took over (its seq starts anew) is heard again, but, like every
   console after a trip, it must re-engage first. Time starts at the first ``supervise`` call.
   The arm server also calls :meth:`SafetySupervisor.new_controller` when a console takes
   control (or says hello again), so one that takes over within ``watchdog_ms`` is heard too.
4. **E-stop.** :meth:`SafetySupervisor.estop` latches: the next decision is ``"estop"``, then
   ``"none"``, all with ``"estop"``, whatever commands arrive, until
   :meth:`SafetySupervisor.reset_estop`. Commands are still checked and counted meanwhile.
5. **Engagement.** Motion needs the console engaged: mode ``"servo_cp"``, ``clutch_engaged`` and
   ``operator_present``. A command with mode ``"hold"`` (``"hold_command"``), the clutch released
   (``"not_engaged"``) or the operator absent (``"operator_absent"``) stops motion. After any stop
   (a watchdog trip, an e-stop reset, the operator absent, a hold command, the clutch released,
   invalid feedback) and at start-up, motion resumes only after the console re-engages: a valid
   command with the clutch released, then one with it engaged, both after the stop
   (``"wait_reengage"`` until then). The console re-anchors its motion scaling on engagement, so
   a restored link or a new console never makes the arm jump.
6. **Limits**, on an engaged, valid command: the commanded position is clamped to the workspace
   box (``"workspace_clamped"``); the step from the current *setpoint* (not the measured pose) is
   limited to ``max_tool_speed_m_s`` times one control period (``"speed_limited"``) and the
   rotation to ``max_angular_speed_rad_s`` times one period (``"angular_speed_limited"``); while
   the measured contact force exceeds ``max_force_n`` (``"force_over_limit"``, checked every
   tick) and ``force_retreat`` is on, the part of the step that pushes further into the contact
   (along minus the force, in the base frame) is removed (``"force_limited"``): retreating and
   sliding stay allowed (if that pushes the step out of the box, it is shortened along its own
   line). The jaw is clamped to its range (``"jaw_clamped"``). The result is ``"servo"`` with
   the applied pose; ``commanded_pose`` keeps what the console asked. A setpoint that is itself
   outside the box (say, at start-up) is brought back at no more than the speed limit, never in
   a jump, flagged ``"workspace_clamped"``.
7. **Feedback.** A measured pose, setpoint or wrench of the wrong size, with a non-finite
   number, or a pose whose quaternion is not unit, stops motion (``"invalid_feedback"``): no
   limit can be computed from it.

``counters`` counts, per flag, the decisions that carried it (for refusals that is one per
command, for states such as ``"watchdog_hold"`` one per tick); every flag is present from the
start. ``reasons`` put each flag in words, with numbers.

Configuration: :class:`SafetyConfig`, units in the field names; ``None`` limits are taken from
the driver's :class:`~network.protocol.ArmDescription` (:meth:`SafetyConfig.from_description`),
and a configured limit may tighten the arm's own limits but never loosen them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:  # for annotations only: the supervisor needs no sockets
    from network.link import ReceivedCommand
    from network.protocol import ArmDescription

__all__ = [
    "ACTIONS",
    "FLAGS",
    "Decision",
    "SafetyConfig",
    "SafetySupervisor",
    "clamp_jaw",
    "clamp_to_workspace",
    "command_is_stale",
    "limit_angular_speed",
    "limit_force",
    "limit_speed",
]

ACTIONS = ("servo", "hold", "none", "estop")
FLAGS = (
    "workspace_clamped",
    "speed_limited",
    "angular_speed_limited",
    "jaw_clamped",
    "force_limited",
    "force_over_limit",
    "watchdog_hold",
    "stale_command",
    "duplicate_command",
    "out_of_order_command",
    "not_engaged",
    "operator_absent",
    "hold_command",
    "invalid_feedback",
    "estop",
    "wait_reengage",
)
"""Every flag a decision can carry (stable names, reported in the arm's state)."""

_AXES = "xyz"

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


def _num(name: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"SafetyConfig.{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"SafetyConfig.{name} must be a finite number > 0, got {value!r}")
    return v


def _vec(name: str, value: Any, n: int) -> tuple[float, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"SafetyConfig.{name} must be {n} numbers, got {value!r}")
    if len(value) != n:
        raise ValueError(f"SafetyConfig.{name} must be {n} numbers, got {len(value)}")
    out = tuple(_num(name, v, positive=False) for v in value)
    return out


@dataclass(frozen=True)
class SafetyConfig:
    """Safety limits, units in the names. ``None``: take it from the arm's description.

    ``watchdog_ms``: no valid command for longer than this -> hold. ``max_command_age_ms``:
    commands older than this (send time by the link's clock offset) are not applied.
    ``force_retreat``: over ``max_force_n``, refuse the motion that pushes further into the
    contact (off: the excess force is only reported).
    """

    watchdog_ms: float = 100.0
    max_command_age_ms: float = 250.0
    workspace_min_m: tuple[float, float, float] | None = None
    workspace_max_m: tuple[float, float, float] | None = None
    max_tool_speed_m_s: float | None = None
    max_angular_speed_rad_s: float | None = None
    jaw_range_rad: tuple[float, float] | None = None
    max_force_n: float | None = None
    force_retreat: bool = True

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("watchdog_ms", _num("watchdog_ms", self.watchdog_ms))
        put("max_command_age_ms", _num("max_command_age_ms", self.max_command_age_ms))
        for name in ("max_tool_speed_m_s", "max_angular_speed_rad_s", "max_force_n"):
            if getattr(self, name) is not None:
                put(name, _num(name, getattr(self, name)))
        for name in ("workspace_min_m", "workspace_max_m"):
            if getattr(self, name) is not None:
                put(name, _vec(name, getattr(self, name), 3))
        lo, hi = self.workspace_min_m, self.workspace_max_m
        if lo is not None and hi is not None:
            for i in range(3):
                if not lo[i] < hi[i]:
                    raise ValueError(
                        f"SafetyConfig.workspace_min_m[{i}] ({lo[i]}) must be below "
                        f"workspace_max_m[{i}] ({hi[i]})"
                    )
        if self.jaw_range_rad is not None:
            jaw = _vec("jaw_range_rad", self.jaw_range_rad, 2)
            if jaw[0] > jaw[1]:
                raise ValueError(f"SafetyConfig.jaw_range_rad: minimum above maximum: {jaw}")
            put("jaw_range_rad", jaw)
        if not isinstance(self.force_retreat, bool):
            raise ValueError(
                f"SafetyConfig.force_retreat must be true or false, got {self.force_retreat!r}"
            )

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> SafetyConfig:
        """From a plain mapping (a TOML table); unknown keys raise ``ValueError`` naming them."""
        valid = cls.field_names()
        unknown = [k for k in mapping if k not in valid]
        if unknown:
            raise ValueError(
                f"unknown safety setting(s) {', '.join(map(repr, unknown))}; valid keys: "
                f"{', '.join(valid)}"
            )
        return cls(**dict(mapping))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (``None`` for limits taken from the description)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_description(cls, desc: ArmDescription, **overrides: Any) -> SafetyConfig:
        """A complete config: ``overrides`` (fields of this class), the rest from ``desc``."""
        return cls(**overrides).resolved(desc)

    def resolved(self, desc: ArmDescription) -> SafetyConfig:
        """This config with every ``None`` limit filled from ``desc``.

        A configured limit may be tighter than the arm's own, never looser: a wider workspace,
        jaw range or higher speed or force than ``desc`` raises ``ValueError``.
        """
        d_lo, d_hi = tuple(desc.workspace_min_m), tuple(desc.workspace_max_m)
        lo = self.workspace_min_m if self.workspace_min_m is not None else d_lo
        hi = self.workspace_max_m if self.workspace_max_m is not None else d_hi
        for i in range(3):
            if lo[i] < d_lo[i] or hi[i] > d_hi[i]:
                raise ValueError(
                    f"safety workspace [{lo[i]}, {hi[i]}] m in {_AXES[i]} goes beyond the arm's "
                    f"workspace [{d_lo[i]}, {d_hi[i]}] m"
                )
        jaw = self.jaw_range_rad if self.jaw_range_rad is not None else tuple(desc.jaw_range_rad)
        if jaw[0] < desc.jaw_range_rad[0] or jaw[1] > desc.jaw_range_rad[1]:
            raise ValueError(
                f"safety jaw range {jaw} rad goes beyond the arm's {tuple(desc.jaw_range_rad)}"
            )
        limits = {}
        for name in ("max_tool_speed_m_s", "max_angular_speed_rad_s", "max_force_n"):
            mine, arms = getattr(self, name), getattr(desc, name)
            if mine is not None and mine > arms:
                raise ValueError(f"safety {name} {mine} exceeds the arm's own limit {arms}")
            limits[name] = mine if mine is not None else arms
        return dataclasses.replace(
            self, workspace_min_m=lo, workspace_max_m=hi, jaw_range_rad=jaw, **limits
        )

    def missing(self) -> list[str]:
        """The limits still ``None`` (a supervisor needs none missing)."""
        return [
            name
            for name in (
                "workspace_min_m",
                "workspace_max_m",
                "max_tool_speed_m_s",
                "max_angular_speed_rad_s",
                "jaw_range_rad",
                "max_force_n",
            )
            if getattr(self, name) is None
        ]


# ---------------------------------------------------------------------------------------------
# Pure limit functions. Public ones take array-likes and return numpy arrays; the ``_``
# versions work on Python floats (a few times faster than numpy on 3- and 4-vectors).
# ---------------------------------------------------------------------------------------------


def _floats(a: Any, n: int, name: str) -> list[float]:
    out = a.tolist() if isinstance(a, np.ndarray) else [float(v) for v in a]
    if len(out) != n:
        raise ValueError(f"{name} must be {n} numbers, got {len(out)}")
    return [float(v) for v in out]


def _clamp3(p: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> list[float]:
    return [
        lo[0] if p[0] < lo[0] else hi[0] if p[0] > hi[0] else p[0],
        lo[1] if p[1] < lo[1] else hi[1] if p[1] > hi[1] else p[1],
        lo[2] if p[2] < lo[2] else hi[2] if p[2] > hi[2] else p[2],
    ]


def clamp_to_workspace(pos_m: Any, lo: Any, hi: Any) -> tuple[np.ndarray, bool]:
    """The nearest point of the box [lo, hi] (m) to ``pos_m``; True if it had to move."""
    p = _floats(pos_m, 3, "pos_m")
    out = _clamp3(p, _floats(lo, 3, "lo"), _floats(hi, 3, "hi"))
    return np.array(out), out != p


def _step3(
    prev: Sequence[float], target: Sequence[float], step: float
) -> tuple[list[float], float]:
    """(position at most ``step`` from prev towards target, distance prev->target)."""
    dx, dy, dz = target[0] - prev[0], target[1] - prev[1], target[2] - prev[2]
    dist = math.sqrt(dx * dx + dy * dy + dz * dz)
    if dist <= step:
        return [target[0], target[1], target[2]], dist
    k = step / dist
    return [prev[0] + dx * k, prev[1] + dy * k, prev[2] + dz * k], dist


def limit_speed(
    prev_pos_m: Any, target_pos_m: Any, max_speed_m_s: float, dt_s: float
) -> tuple[np.ndarray, bool]:
    """Step from ``prev_pos_m`` towards ``target_pos_m`` by at most ``max_speed_m_s * dt_s``.

    A target within reach is returned exactly; True when the step was shortened.
    """
    if not (max_speed_m_s >= 0 and dt_s > 0):
        raise ValueError(f"need max_speed_m_s >= 0 and dt_s > 0, got {max_speed_m_s}, {dt_s}")
    prev = _floats(prev_pos_m, 3, "prev_pos_m")
    target = _floats(target_pos_m, 3, "target_pos_m")
    out, dist = _step3(prev, target, max_speed_m_s * dt_s)
    return np.array(out), dist > max_speed_m_s * dt_s


def _unit4(q: Sequence[float], name: str = "quaternion") -> list[float]:
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if not n > 0 or not math.isfinite(n):
        raise ValueError(f"{name} has norm {n}, cannot be normalised")
    return [q[0] / n, q[1] / n, q[2] / n, q[3] / n]


def _slerp_step(
    prev_q: Sequence[float], target_q: Sequence[float], max_angle: float
) -> tuple[list[float], float]:
    """(orientation at most ``max_angle`` rad from prev towards target, angle prev->target).

    Unit quaternions (x, y, z, w) in; the shorter way round; a target within reach is returned
    as given (normalised).
    """
    p = _unit4(prev_q, "prev_q")
    q = _unit4(target_q, "target_q")
    if p[0] * q[0] + p[1] * q[1] + p[2] * q[2] + p[3] * q[3] < 0.0:
        qs = [-q[0], -q[1], -q[2], -q[3]]
    else:
        qs = q
    # half the rotation angle from the chord lengths: accurate for tiny angles (acos is not)
    a0, a1, a2, a3 = p[0] - qs[0], p[1] - qs[1], p[2] - qs[2], p[3] - qs[3]
    b0, b1, b2, b3 = p[0] + qs[0], p[1] + qs[1], p[2] + qs[2], p[3] + qs[3]
    phi = 2.0 * math.atan2(
        math.sqrt(a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3),
        math.sqrt(b0 * b0 + b1 * b1 + b2 * b2 + b3 * b3),
    )  # angle between the 4-vectors = half the rotation angle
    angle = 2.0 * phi
    if angle <= max_angle:
        return q, angle
    t = max_angle / angle
    s = math.sin(phi)
    wa, wb = math.sin((1.0 - t) * phi) / s, math.sin(t * phi) / s
    return _unit4([wa * p[i] + wb * qs[i] for i in range(4)]), angle


def limit_angular_speed(
    prev_q: Any, target_q: Any, max_rad_s: float, dt_s: float
) -> tuple[np.ndarray, bool]:
    """Rotate from ``prev_q`` towards ``target_q`` (x, y, z, w) by at most ``max_rad_s * dt_s``.

    Spherical interpolation along the shorter way; a target within reach is returned (normalised);
    True when the rotation was shortened.
    """
    if not (max_rad_s >= 0 and dt_s > 0):
        raise ValueError(f"need max_rad_s >= 0 and dt_s > 0, got {max_rad_s}, {dt_s}")
    out, angle = _slerp_step(
        _floats(prev_q, 4, "prev_q"), _floats(target_q, 4, "target_q"), max_rad_s * dt_s
    )
    return np.array(out), angle > max_rad_s * dt_s


def clamp_jaw(angle: float, lo: float, hi: float) -> tuple[float, bool]:
    """The jaw angle (rad) clamped to [lo, hi]; True if it had to move."""
    a = float(angle)
    out = lo if a < lo else hi if a > hi else a
    return float(out), out != a


def _rotate(q: Sequence[float], v: Sequence[float]) -> list[float]:
    """Vector ``v`` rotated by the unit quaternion ``q`` (x, y, z, w)."""
    x, y, z, w = q
    # t = 2 u x v; v' = v + w t + u x t
    tx = 2.0 * (y * v[2] - z * v[1])
    ty = 2.0 * (z * v[0] - x * v[2])
    tz = 2.0 * (x * v[1] - y * v[0])
    return [
        v[0] + w * tx + (y * tz - z * ty),
        v[1] + w * ty + (z * tx - x * tz),
        v[2] + w * tz + (x * ty - y * tx),
    ]


def _force_step(
    prev: Sequence[float], target: Sequence[float], f_base: Sequence[float], fmag: float
) -> tuple[list[float], float]:
    """(target without the motion along -f_base, length of the motion removed)."""
    nx, ny, nz = f_base[0] / fmag, f_base[1] / fmag, f_base[2] / fmag
    dx, dy, dz = target[0] - prev[0], target[1] - prev[1], target[2] - prev[2]
    along = dx * nx + dy * ny + dz * nz
    if along >= 0.0:  # retreating from the contact or sliding along it
        return [target[0], target[1], target[2]], 0.0
    return [target[0] - along * nx, target[1] - along * ny, target[2] - along * nz], -along


def _rotation_quaternion(tool_rotation: Any) -> list[float]:
    r = np.asarray(tool_rotation, dtype=np.float64)
    if r.shape == (4,):
        return _unit4(r.tolist(), "tool_rotation")
    if r.shape != (3, 3):
        raise ValueError(
            f"tool_rotation must be a quaternion (x, y, z, w) or a 3x3 matrix, shape {r.shape}"
        )
    # Shepperd's method, from the rotation matrix
    t = r[0, 0] + r[1, 1] + r[2, 2]
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, s / 4]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4, (r[1, 0] - r[0, 1]) / s]
    return _unit4([float(v) for v in q], "tool_rotation")


def limit_force(
    prev_pos_m: Any,
    target_pos_m: Any,
    wrench_tool: Any,
    tool_rotation: Any,
    max_force_n: float,
) -> tuple[np.ndarray, bool]:
    """Over the force limit, refuse the motion that pushes further into the contact.

    ``wrench_tool`` is the measured wrench on the instrument (fx, fy, fz N, ...) in the tool
    frame, ``tool_rotation`` the tool's orientation in the base frame (a quaternion x, y, z, w
    or a 3x3 matrix). If the force exceeds ``max_force_n``, the component of the motion
    ``target - prev`` along minus the force (in the base frame: further against the contact) is
    removed; motion away from the contact and along its surface is kept. True when the motion
    was changed.
    """
    prev = _floats(prev_pos_m, 3, "prev_pos_m")
    target = _floats(target_pos_m, 3, "target_pos_m")
    w = np.asarray(wrench_tool, dtype=np.float64).ravel().tolist()
    if len(w) < 3:
        raise ValueError(f"wrench_tool must hold at least fx, fy, fz, got {len(w)} numbers")
    fmag = math.sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2])
    if not fmag > max_force_n:
        return np.array(target), False
    f_base = _rotate(_rotation_quaternion(tool_rotation), w[:3])
    out, removed = _force_step(prev, target, f_base, fmag)
    return np.array(out), removed > 0.0


def _age_verdict(age_ns: int | None, max_age_ns: int) -> str | None:
    """None if fresh, else why the age makes a command stale."""
    if age_ns is None:
        return "command age unknown; not applied"
    if age_ns > max_age_ns:
        return (
            f"command is {age_ns / 1e6:.1f} ms old (limit {max_age_ns / 1e6:.1f} ms); not applied"
        )
    if age_ns < -max_age_ns:
        return (
            f"command send time is {-age_ns / 1e6:.1f} ms in the future by the clock-offset "
            f"estimate (limit {max_age_ns / 1e6:.1f} ms); its age is unknown; not applied"
        )
    return None


def command_is_stale(send_ns: int, now_ns: int, clock_offset_ns: float, max_age_ns: int) -> bool:
    """Whether a command sent at ``send_ns`` (console clock) is too old to apply at ``now_ns``.

    ``clock_offset_ns`` is console clock minus arm clock (as the link's latency monitor gives
    it; NaN, not known yet, counts as 0, as ``ArmLink.command_age_ns`` does). Stale when the age
    exceeds ``max_age_ns``, or when the send time lies more than ``max_age_ns`` in the future
    (the clock estimate cannot vouch for it).
    """
    offset = 0 if math.isnan(clock_offset_ns) else int(clock_offset_ns)
    return _age_verdict(now_ns - (send_ns - offset), max_age_ns) is not None


# ---------------------------------------------------------------------------------------------
# The supervisor
# ---------------------------------------------------------------------------------------------


class Decision(NamedTuple):
    """What the supervisor decided for one tick (see the module docstring)."""

    action: str
    """"servo" (apply ``pose``), "hold" (driver.hold()), "none" (nothing new), "estop"."""
    pose: np.ndarray | None
    """The pose to apply when action is "servo" (x, y, z m; qx, qy, qz, qw), else None."""
    jaw: float | None
    """The jaw angle to apply (rad) when action is "servo", else None."""
    commanded_pose: np.ndarray | None
    """The pose the console asked for this tick (even when refused); None without a command."""
    flags: tuple[str, ...]
    """Every active intervention, names from :data:`FLAGS`."""
    reasons: tuple[str, ...]
    """Each flag in words, with numbers, in the same order."""
    commanded_jaw: float | None = None
    """The jaw angle the console asked for this tick; None without a command."""


class SafetySupervisor:
    """The arm-side safety state machine: one :meth:`supervise` call per control tick."""

    def __init__(self, config: SafetyConfig, control_rate_hz: float) -> None:
        missing = config.missing()
        if missing:
            raise ValueError(
                f"the safety config lacks {', '.join(missing)}; build it with "
                "SafetyConfig.from_description(driver.description, ...)"
            )
        rate = float(control_rate_hz)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"control_rate_hz must be a finite number > 0, got {control_rate_hz}")
        self.config = config
        self.control_rate_hz = rate
        self.period_s = 1.0 / rate
        self._lo = tuple(config.workspace_min_m)  # type: ignore[arg-type]
        self._hi = tuple(config.workspace_max_m)  # type: ignore[arg-type]
        self._jaw_lo, self._jaw_hi = config.jaw_range_rad  # type: ignore[misc]
        self._max_step_m = config.max_tool_speed_m_s * self.period_s  # type: ignore[operator]
        self._max_turn_rad = config.max_angular_speed_rad_s * self.period_s  # type: ignore[operator]
        self._max_force = float(config.max_force_n)  # type: ignore[arg-type]
        self._max_force2 = self._max_force**2
        self._watchdog_ns = round(config.watchdog_ms * 1e6)
        self._max_age_ns = round(config.max_command_age_ms * 1e6)
        self.counters: dict[str, int] = dict.fromkeys(FLAGS, 0)
        self.last_decision: Decision | None = None
        self.estop_reason: str | None = None
        self._estop_pending = False  # the next decision is "estop"
        self._last_seq: int | None = None
        self._last_valid_ns: int | None = None  # the tick that accepted the last valid command
        self._armed = False  # engaged: motion allowed
        self._seen_release = False  # a released clutch was seen since motion stopped
        self._holding = False  # a hold was issued and no servo since
        self._watchdog_active = False  # tripped, and no valid command since

    # -- e-stop ----------------------------------------------------------------------------
    @property
    def estopped(self) -> bool:
        return self.estop_reason is not None

    def estop(self, reason: str) -> None:
        """Latch the e-stop: the next decision is "estop", then "none", until reset_estop()."""
        self.estop_reason = str(reason) or "e-stop"
        self._estop_pending = True
        self._disarm()

    def reset_estop(self) -> None:
        """Clear the e-stop. The arm holds until the console releases and re-engages.

        Does nothing when the e-stop is not latched.
        """
        if self.estop_reason is None:
            return
        self.estop_reason = None
        self._estop_pending = False
        self._disarm()
        self._holding = False  # hold once more (the setpoint becomes the measured pose)

    def new_controller(self) -> None:
        """A console took control (or said hello again): forget the last seq, since its
        numbering starts anew, and wait for it to release and engage before moving."""
        self._last_seq = None
        self._disarm()

    def _disarm(self) -> None:
        self._armed = False
        self._seen_release = False

    # -- the tick --------------------------------------------------------------------------
    def supervise(
        self,
        now_ns: int,
        command: ReceivedCommand | None,
        command_age_ns: int | None,
        measured_pose: Any,
        setpoint_pose: Any,
        wrench_tool: Any,
    ) -> Decision:
        """Decide this tick (see the module docstring for the rules)."""
        flags: list[str] = []
        reasons: list[str] = []
        if self._last_valid_ns is None:
            self._last_valid_ns = now_ns  # time starts at the first tick

        # 3. watchdog, judged on the silence before this tick's command
        silence_ns = now_ns - self._last_valid_ns
        tripped = silence_ns > self._watchdog_ns
        first_trip = False
        if tripped:
            first_trip = not self._watchdog_active
            self._watchdog_active = True
            self._last_seq = None  # a new console numbers afresh; it must re-engage anyway
            self._disarm()

        # 1-2. the command: sequence and age
        cmd = None
        commanded_pose = None
        commanded_jaw = None
        if command is not None:
            c = command.command
            commanded_pose = np.array(c.servo_cp, dtype=np.float64)
            commanded_jaw = float(c.servo_jaw)
            seq, last = c.seq, self._last_seq
            if last is not None and seq <= last:
                if seq == last:
                    flags.append("duplicate_command")
                    reasons.append(f"command seq {seq} repeats the last accepted; not applied")
                else:
                    flags.append("out_of_order_command")
                    reasons.append(
                        f"command seq {seq} is older than the last accepted seq {last}; not applied"
                    )
            else:
                self._last_seq = seq
                stale = _age_verdict(command_age_ns, self._max_age_ns)
                if stale is None:
                    cmd = c
                    self._last_valid_ns = now_ns
                    self._watchdog_active = False
                else:
                    flags.append("stale_command")
                    reasons.append(stale)

        # the contact force, every tick (its size does not depend on the frame)
        w = wrench_tool.tolist() if isinstance(wrench_tool, np.ndarray) else list(wrench_tool)
        f2 = w[0] * w[0] + w[1] * w[1] + w[2] * w[2] if len(w) == 6 else 0.0
        over = f2 > self._max_force2
        if over:
            fmag = math.sqrt(f2)
            flags.append("force_over_limit")
            reasons.append(
                f"contact force {fmag:.2f} N over the {self._max_force:.2f} N limit"
                + ("" if self.config.force_retreat else " (force_retreat off: motion not limited)")
            )

        # 4. e-stop
        if self.estop_reason is not None:
            flags.append("estop")
            reasons.append(f"e-stop latched ({self.estop_reason}); only reset_estop() clears it")
            action = "estop" if self._estop_pending else "none"
            self._estop_pending = False
            self._holding = True
            return self._done(action, None, None, commanded_pose, commanded_jaw, flags, reasons)

        if tripped and (cmd is None or first_trip):  # until the first valid command
            flags.append("watchdog_hold")
            reasons.append(
                f"no valid command for {silence_ns / 1e6:.1f} ms "
                f"(watchdog {self.config.watchdog_ms:.1f} ms); holding"
            )

        # 5. engagement
        if cmd is None:
            if self._armed:  # keep going with the last setpoint
                return self._done("none", None, None, commanded_pose, commanded_jaw, flags, reasons)
            # while the watchdog holds, "watchdog_hold" says it all; the wait shows on commands
            wait = not (tripped and "watchdog_hold" in flags)
            return self._stop(commanded_pose, commanded_jaw, flags, reasons, wait=wait)
        engaged = True
        if not cmd.operator_present:
            engaged = False
            self._disarm()
            flags.append("operator_absent")
            reasons.append("the operator is not present; holding")
        if cmd.mode != "servo_cp":
            engaged = False
            self._disarm()
            flags.append("hold_command")
            reasons.append(f"the console asked to {cmd.mode}; holding")
        if not cmd.clutch_engaged:
            engaged = False
            self._armed = False
            self._seen_release = True
            flags.append("not_engaged")
            reasons.append("the clutch is released; holding")
        if not engaged:
            return self._stop(commanded_pose, commanded_jaw, flags, reasons, wait=False)
        if not self._armed:
            if not self._seen_release:
                return self._stop(commanded_pose, commanded_jaw, flags, reasons, wait=True)
            self._armed = True  # the release -> engage edge: the console re-anchored

        # 7. feedback
        sp = (
            setpoint_pose.tolist() if isinstance(setpoint_pose, np.ndarray) else list(setpoint_pose)
        )
        mq = (
            measured_pose.tolist() if isinstance(measured_pose, np.ndarray) else list(measured_pose)
        )
        bad = _feedback_error(sp, mq, w)
        if bad is not None:
            self._disarm()
            flags.append("invalid_feedback")
            reasons.append(f"{bad}; holding")
            return self._stop(commanded_pose, commanded_jaw, flags, reasons, wait=False)

        # 6. limits
        target = cmd.servo_cp
        lo, hi = self._lo, self._hi
        pos = _clamp3(target, lo, hi)
        if pos[0] != target[0] or pos[1] != target[1] or pos[2] != target[2]:
            flags.append("workspace_clamped")
            reasons.append(self._workspace_reason(target))
        prev = sp[:3]
        pos, dist = _step3(prev, pos, self._max_step_m)
        if dist > self._max_step_m:
            flags.append("speed_limited")
            reasons.append(
                f"target {dist * 1e3:.3f} mm from the setpoint; step limited to "
                f"{self._max_step_m * 1e3:.4f} mm ({self.config.max_tool_speed_m_s:g} m/s at "
                f"{self.control_rate_hz:g} Hz)"
            )
        quat, angle = _slerp_step(sp[3:], target[3:], self._max_turn_rad)
        if angle > self._max_turn_rad:
            flags.append("angular_speed_limited")
            reasons.append(
                f"target orientation {angle:.4f} rad from the setpoint's; turn limited to "
                f"{self._max_turn_rad:.5f} rad ({self.config.max_angular_speed_rad_s:g} rad/s at "
                f"{self.control_rate_hz:g} Hz)"
            )
        if over and self.config.force_retreat:
            f_base = _rotate(_unit4(mq[3:], "measured orientation"), w[:3])
            pos, removed = _force_step(prev, pos, f_base, fmag)
            if removed > 0.0:
                flags.append("force_limited")
                reasons.append(
                    f"removed {removed * 1e3:.4f} mm of motion into the contact "
                    f"({fmag:.2f} N > {self._max_force:.2f} N)"
                )
                pos = _back_into_box(prev, pos, lo, hi)
        jaw = commanded_jaw
        if jaw < self._jaw_lo or jaw > self._jaw_hi:
            jaw = self._jaw_lo if jaw < self._jaw_lo else self._jaw_hi
            flags.append("jaw_clamped")
            reasons.append(
                f"jaw {commanded_jaw:.4f} rad outside [{self._jaw_lo:.4f}, {self._jaw_hi:.4f}] "
                "rad; clamped"
            )
        inside = lo[0] <= pos[0] <= hi[0] and lo[1] <= pos[1] <= hi[1] and lo[2] <= pos[2] <= hi[2]
        if not inside and "workspace_clamped" not in flags:  # the setpoint is outside the box
            flags.append("workspace_clamped")
            reasons.append(
                "the setpoint is outside the workspace; returning at no more than the speed limit"
            )
        self._holding = False
        pose = np.array(pos + quat, dtype=np.float64)
        return self._done("servo", pose, jaw, commanded_pose, commanded_jaw, flags, reasons)

    # -- helpers ---------------------------------------------------------------------------
    def _stop(
        self,
        commanded_pose: np.ndarray | None,
        commanded_jaw: float | None,
        flags: list[str],
        reasons: list[str],
        wait: bool,
    ) -> Decision:
        """No motion: "hold" the first time, then "none"."""
        if wait:
            flags.append("wait_reengage")
            reasons.append(
                "waiting for the console to release and re-engage the clutch before moving"
            )
        action = "none" if self._holding else "hold"
        self._holding = True
        return self._done(action, None, None, commanded_pose, commanded_jaw, flags, reasons)

    def _done(
        self,
        action: str,
        pose: np.ndarray | None,
        jaw: float | None,
        commanded_pose: np.ndarray | None,
        commanded_jaw: float | None,
        flags: list[str],
        reasons: list[str],
    ) -> Decision:
        counters = self.counters
        for f in flags:
            counters[f] += 1
        d = Decision(action, pose, jaw, commanded_pose, tuple(flags), tuple(reasons), commanded_jaw)
        self.last_decision = d
        return d

    def _workspace_reason(self, target: Sequence[float]) -> str:
        parts = []
        for i in range(3):
            if target[i] < self._lo[i]:
                parts.append(f"{(self._lo[i] - target[i]) * 1e3:.1f} mm in {_AXES[i]} (below)")
            elif target[i] > self._hi[i]:
                parts.append(f"{(target[i] - self._hi[i]) * 1e3:.1f} mm in {_AXES[i]} (above)")
        return f"target outside the workspace by {', '.join(parts)}; clamped"


def _feedback_error(sp: list[float], mq: list[float], w: list[float]) -> str | None:
    """Why the driver's readings cannot be used to compute a limit, or None."""
    if len(sp) != 7 or len(mq) != 7 or len(w) != 6:
        return (
            f"the setpoint, measured pose or wrench has the wrong size ({len(sp)}, {len(mq)}, "
            f"{len(w)}; expected 7, 7, 6)"
        )
    if not math.isfinite(sum(sp) + sum(mq) + sum(w)):
        return "the setpoint, measured pose or wrench holds a number that is not finite"
    for name, p in (("setpoint", sp), ("measured pose", mq)):
        n2 = p[3] * p[3] + p[4] * p[4] + p[5] * p[5] + p[6] * p[6]
        if abs(n2 - 1.0) > 2e-3:
            return f"the {name}'s quaternion has norm {math.sqrt(n2):.6g}, expected 1"
    return None


def _back_into_box(
    prev: Sequence[float], cand: list[float], lo: Sequence[float], hi: Sequence[float]
) -> list[float]:
    """``cand`` pulled back along the line from ``prev`` (inside the box) until it is inside.

    Removing the motion into a contact can push a clamped target out of the box again; shrinking
    the step along its own line keeps both the box and the force rule (and the speed limit).
    """
    if not all(lo[i] <= prev[i] <= hi[i] for i in range(3)):
        return cand  # the setpoint itself is outside: it is being brought back at limited speed
    alpha = 1.0
    for i in range(3):
        d = cand[i] - prev[i]
        if cand[i] > hi[i]:
            alpha = min(alpha, (hi[i] - prev[i]) / d)
        elif cand[i] < lo[i]:
            alpha = min(alpha, (lo[i] - prev[i]) / d)
    if alpha >= 1.0:
        return cand
    out = [prev[i] + alpha * (cand[i] - prev[i]) for i in range(3)]
    return _clamp3(out, lo, hi)
