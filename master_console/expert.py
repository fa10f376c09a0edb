"""A scripted expert surgeon: an operator model that performs the training tasks by looking.

:class:`ScriptedExpert` is an input device (``master-console --input expert``) whose hand is a
model of a human operator. It closes the loop only on what a surgeon at the console has: the
newest (network-delayed) :class:`~network.protocol.State` the console received (the tool tip
``measured_cp[:3]``, the wrench ``measured_cf``, the jaw, the ``task_*`` counters), never the
simulator's truth. ``master-console`` calls :meth:`ScriptedExpert.attach` with the link and the
arm's :class:`~network.protocol.TaskInfo` after connecting; the expert then runs the task's
script (``reach``, ``peg-transfer``, ``palpation``).

The operator model
------------------
* **Seeing.** Every ``1/think_hz`` the expert takes ``link.latest_state`` (read on the device
  thread without a lock: it is one attribute holding an immutable ``ReceivedState``, replaced
  whole by the link, so a read is atomic under the GIL and never sees a half-written state) and
  perceives it ``reaction_s`` later (visual processing and reaction, ~200 ms). With a network
  round trip *d*, what the expert sees is *d*/2 old when it arrives, and reflects commands sent
  about *d* before.
* **Moving.** The hand makes minimum-jerk reaches (Flash & Hogan 1985) planned in tool space,
  converted to the master by the motion scale (master displacement = tool error / ``scale``),
  with a peak tool speed well under the arm's limit and no reach shorter than ``min_move_s``
  (0.55 s: the console's default tremor filter overshoots faster ones by 20-40 %). Primary
  movements undershoot (gain ~0.93) and carry signal-dependent noise (a few % of their length,
  Harris & Wolpert 1998), so fine positioning needs corrective sub-movements. A physiological
  tremor is added (the seeded model of :mod:`master_console.synthetic`, so the console's
  tremor filter has something to do).
* **Move and wait** (Ferrell 1965). After each movement that must be accurate, the expert waits
  until what it sees reflects the end of the movement (the state acknowledges a command sent at
  least ``settle_s`` after the hand stopped: "the instrument has caught up and stopped") before
  judging the error and correcting. Moves that need not be accurate (lifts, via points) are
  chained open-loop on the operator's internal estimate; before touching tissue it looks. So
  every correction costs at least one round trip plus the reaction time. Beyond a felt lag of
  ``caution_lag_s`` (round trip + reaction ~0.5 s) the operator also grows cautious (slower,
  shorter primary movements), as operators do under delay. Completion time therefore grows
  mildly up to ~200-300 ms of round trip and strongly from ~800 ms (Xu et al. 2014).
* **Clutch.** The expert starts with the clutch released (operator present) and engages after
  ``engage_after_s`` once it sees the arm. When a reach would take the hand beyond
  ``workspace_radius_m`` of its centre, it re-clutches like a surgeon: pause, release, bring
  the hand back to the wind-up side of the workspace, wait until the instrument is seen to have
  stopped (re-engaging earlier would let the console anchor on a stale pose), re-engage.
  If the instrument stops following while engaged (the console demands a release after a lost
  link; the arm holds), it notices (no acknowledged command for longer than the felt lag) and
  re-clutches. :attr:`ScriptedExpert.clutches` counts the re-clutches.

The task scripts: ``reach`` visits the targets nearest first (approach above, look, press
lightly, confirm with ``task_targets_touched``, lift); ``peg-transfer`` grasps each ring's
wall from above, lifts it over the pegs, carries it over a free right-side peg and drops it
from just above the peg's top, confirming with ``task_rings_placed``/``task_drops``;
``palpation`` presses ~1.1 mm deep on a grid over the search area, ranks the spots by felt
stiffness (force / indentation), centres on the stiffest cluster and marks it by closing the
jaw while pressing, trying the next candidate if ``task_found`` does not come.

Every step of a script has a timeout, so the expert never hangs; each goal is logged at INFO
and kept in :attr:`ScriptedExpert.events`; :attr:`ScriptedExpert.finished` says the script ended.
:meth:`ScriptedExpert.sample_at` computes a sample for a given time, so tests can drive the
model in simulated time without the device thread.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from master_console.devices import Buttons, InputSample, ThreadedDevice
from master_console.synthetic import SyntheticHand

log = logging.getLogger(__name__)

Vec = np.ndarray
_TREMOR_CHUNK = 50  # ms


# ---------------------------------------------------------------------------------------------
# Skill


@dataclass(frozen=True)
class Skill:
    """The operator model's parameters (units in the names)."""

    name: str = "expert"
    reaction_s: float = 0.2
    """Visual processing and reaction delay: states are acted on this long after arrival."""
    think_hz: float = 100.0
    """How often the operator looks and decides."""
    peak_tool_speed_m_s: float = 0.08
    """Peak tool speed of a reach (the arm allows 0.2 m/s)."""
    min_lift_s: float = 0.3
    """Shortest movement straight up (backing off tissue)."""
    peak_return_speed_m_s: float = 0.5
    """Peak hand speed when bringing the master back with the clutch out."""
    min_move_s: float = 0.55
    """Shortest reach (even a 0.1 mm correction takes this long). Faster ones overshoot
    through the console's default tremor filter (~20-40 % for 0.25-0.45 s reaches)."""
    primary_gain: float = 0.93
    """Mean gain of a movement (< 1: primary movements undershoot) ..."""
    gain_sd: float = 0.03
    """... and its standard deviation."""
    noise_fraction: float = 0.03
    """Signal-dependent endpoint noise: standard deviation per axis / movement length."""
    noise_floor_m: float = 0.0002
    """Endpoint noise floor (master, m per axis)."""
    tremor_class: str = "typical"
    """Physiological tremor amplitude class (``master_console.synthetic.AMPLITUDE_CLASSES_UM``)."""
    workspace_radius_m: float = 0.12
    """Master workspace around the hand's centre: a reach beyond it needs a re-clutch."""
    settle_s: float = 0.06
    """A view counts as caught up when it acknowledges a command sent this long after the hand
    stopped (the tremor filter settled, the arm tracked)."""
    catchup_timeout_s: float = 4.0
    """Give up waiting for a caught-up view after this (plus 3x the felt lag)."""
    clutch_pause_s: float = 0.12
    """Pause at each clutch edge, with the hand still."""
    engage_after_s: float = 0.3
    """At start: present a released clutch this long (after seeing the arm) before engaging."""
    jaw_speed_rad_s: float = 4.0
    """How fast the hand opens or closes the grip."""
    max_corrections: int = 8
    """Corrective movements allowed per goal before it counts as failed."""
    caution_lag_s: float = 0.5
    """Above this felt lag (round trip + reaction), the operator grows cautious ..."""
    caution_per_s: float = 2.0
    """... by this much per second of lag beyond it (caution c: speeds / (1 + c), primary
    movements cover less of the distance), as operators slow down under delay."""


SKILLS: dict[str, Skill] = {
    "expert": Skill(),
    "novice": Skill(
        name="novice",
        reaction_s=0.3,
        peak_tool_speed_m_s=0.04,
        primary_gain=0.88,
        gain_sd=0.06,
        noise_fraction=0.06,
        tremor_class="unbraced",
        workspace_radius_m=0.10,
        clutch_pause_s=0.2,
    ),
}
"""Named skill presets."""


def _min_jerk(tau: float) -> float:
    tau = min(1.0, max(0.0, tau))
    return tau * tau * tau * (10.0 - 15.0 * tau + 6.0 * tau * tau)


def _rotate(q: Sequence[float], v: Sequence[float]) -> Vec:
    """Rotate vector ``v`` by the unit quaternion ``q`` (x, y, z, w)."""
    x, y, z, w = q
    vx, vy, vz = v
    # t = 2 q_vec × v; v' = v + w t + q_vec × t
    tx = 2.0 * (y * vz - z * vy)
    ty = 2.0 * (z * vx - x * vz)
    tz = 2.0 * (x * vy - y * vx)
    return np.array(
        [
            vx + w * tx + (y * tz - z * ty),
            vy + w * ty + (z * tx - x * tz),
            vz + w * tz + (x * ty - y * tx),
        ]
    )


# ---------------------------------------------------------------------------------------------
# What the operator sees


@dataclass(frozen=True)
class View:
    """One state as the operator perceives it (base frame, SI units)."""

    rx_ns: int
    """When the console received it (console clock)."""
    ack_send_ns: int
    """Send time (console clock) of the newest command the arm had applied; 0: none."""
    tool: Vec
    """Tool tip position (m)."""
    force: Vec
    """Contact force on the instrument, base frame (N): pressing on the pad gives +z."""
    jaw: float
    counters: Mapping[str, int]
    flags: tuple[str, ...]

    @property
    def push_n(self) -> float:
        """The upward force on the instrument (N): what pressing down on something feels like."""
        return float(self.force[2])

    @property
    def force_n(self) -> float:
        return float(np.linalg.norm(self.force))

    @classmethod
    def of(cls, received: Any) -> View:
        st = received.state
        pose = st.measured_cp
        return cls(
            rx_ns=int(received.rx_ns),
            ack_send_ns=int(st.ack_send_ns),
            tool=np.array(pose[:3], dtype=float),
            force=_rotate(pose[3:7], st.measured_cf[:3]),
            jaw=float(st.measured_jaw),
            counters=st.counters,
            flags=tuple(st.safety_flags),
        )


# ---------------------------------------------------------------------------------------------
# Actions: what a script asks the operator to do; ``update`` is called every think until True


class _Action:
    timeout_s: float = 20.0
    label: str = ""

    def __init__(self) -> None:
        self.result: Any = None
        self._t0: int | None = None

    def update(self, op: ScriptedExpert, now: int) -> bool:
        if self._t0 is None:
            self._t0 = now
        if now - self._t0 > (self.timeout_s + 10.0 * op.lag_s) * 1e9:
            op.note(f"{self.label or type(self).__name__}: timed out", logging.WARNING)
            self.result = self.on_timeout(op)
            return True
        return self.step(op, now)

    def on_timeout(self, op: ScriptedExpert) -> Any:
        return None

    def step(self, op: ScriptedExpert, now: int) -> bool:
        raise NotImplementedError


class Move(_Action):
    """Bring the tool tip to ``goal`` (m, base frame).

    ``verify``: move and wait until a caught-up view shows the tip within ``tol_m``, correcting
    as needed (result: True, or False after too many corrections or the timeout). Otherwise the
    move is open-loop on the internal estimate (a via point): result True once the hand stops.
    """

    def __init__(
        self, goal: Sequence[float], tol_m: float, verify: bool = True, label: str = ""
    ) -> None:
        super().__init__()
        self.goal = np.asarray(goal, dtype=float).copy()
        self.tol_m = float(tol_m)
        self.verify = verify
        self.label = label
        self.corrections = 0
        self._awaiting_view = False
        self._moved = False

    def on_timeout(self, op: ScriptedExpert) -> Any:
        return False

    def step(self, op: ScriptedExpert, now: int) -> bool:
        if op.busy(now):
            return False
        if self._awaiting_view or op.est is None:
            view = op.caught_up_view(now)
            if view is None:
                return False
            op.adopt(view)
            if self._awaiting_view:
                self._awaiting_view = False
                if self.reached(view):
                    self.result = True
                    return True
                self.corrections += 1
                if self.corrections > op.skill.max_corrections:
                    op.note(f"{self.label}: {self.corrections - 1} corrections, giving up")
                    self.result = False
                    return True
        assert op.est is not None
        err = self.goal - op.est
        n = float(np.linalg.norm(err))
        if not self.verify:
            if (self._moved and op.est_is_final) or (not self._moved and n <= self.tol_m):
                self.result = True
                return True
        elif n <= self.tol_m:
            if op.est_observed:
                self.result = True
                return True
            self._awaiting_view = True  # the model says it is there: look
            return False
        kind = op.reach(err, now)
        if kind != "clutch":
            self._moved = True
        if kind == "final" and self.verify:
            self._awaiting_view = True
        return False

    def reached(self, view: View) -> bool:
        return float(np.linalg.norm(self.goal - view.tool)) <= self.tol_m


class Press(_Action):
    """Press the pad lightly at ``xy``: tip ``depth_m`` below ``surface_z``, corrected until a
    caught-up view shows the tip within ``tol_xy_m`` and the push within ``force_band_n`` (or,
    with ``depth_band_m``, the indentation within it or the push above the band: palpation).
    ``look_first``: look (wait for an up-to-date view) before pressing, so the depth does not
    carry the errors of the open-loop movements before. Result: the view of the press, or
    None."""

    timeout_s = 15.0

    def __init__(
        self,
        xy: Sequence[float],
        surface_z: float,
        depth_m: float,
        tol_xy_m: float,
        force_band_n: tuple[float, float] = (0.15, 2.0),
        depth_band_m: tuple[float, float] | None = None,
        stiffness_n_m: float = 1000.0,
        look_first: bool = False,
        label: str = "",
    ) -> None:
        super().__init__()
        self.look_first = look_first
        self._looked = False
        self.xy = np.asarray(xy[:2], dtype=float)
        self.surface_z = float(surface_z)
        self.depth_m = float(depth_m)
        self.tol_xy_m = float(tol_xy_m)
        self.force_band_n = force_band_n
        self.depth_band_m = depth_band_m
        self.k = float(stiffness_n_m)
        self.label = label
        self.corrections = 0
        self._awaiting_view = False
        self._moved = False
        self._goal = np.array([self.xy[0], self.xy[1], self.surface_z - self.depth_m])
        self._exact = False
        self._relift = False
        self._after_lift = False

    def step(self, op: ScriptedExpert, now: int) -> bool:
        if op.busy(now):
            return False
        first_look = self.look_first and not self._looked and not op.est_observed
        if self._awaiting_view or op.est is None or first_look:
            view = op.caught_up_view(now)
            if view is None:
                return False
            op.adopt(view)
            self._looked = True
            if self._awaiting_view:
                self._awaiting_view = False
                dz = self._judge(view)
                exy = self.xy - view.tool[:2]
                log.debug(
                    "expert: %s sees tip %s mm, push %.2f N: dz %.2f mm, xy error %.2f mm",
                    self.label,
                    np.round(view.tool * 1e3, 2),
                    view.push_n,
                    dz * 1e3,
                    float(np.linalg.norm(exy)) * 1e3,
                )
                if dz == 0.0 and float(np.linalg.norm(exy)) <= self.tol_xy_m:
                    self.result = view
                    return True
                self.corrections += 1
                if self.corrections > op.skill.max_corrections:
                    op.note(f"{self.label}: {self.corrections - 1} corrections, giving up")
                    return True
                if float(np.linalg.norm(exy)) <= self.tol_xy_m:
                    self._goal = view.tool + np.array([0.0, 0.0, dz])
                elif view.push_n > 0.05 or view.tool[2] < self.surface_z + 0.001:
                    # off target while touching: lift off first, never drag through tissue
                    self._goal = np.array([view.tool[0], view.tool[1], self.surface_z + 0.0015])
                    self._relift = True
                else:
                    self._goal = np.array([self.xy[0], self.xy[1], view.tool[2]])
                self._exact = True
        assert op.est is not None
        if self._moved and op.est_is_final:
            self._moved = False
            if self._relift:  # lifted: now over the spot, then down again
                self._relift = False
                self._goal = np.array([self.xy[0], self.xy[1], self._goal[2]])
                self._after_lift = True
                return False
            if self._after_lift:
                self._after_lift = False
                self._goal = np.array([self.xy[0], self.xy[1], self.surface_z - self.depth_m])
                return False
            self._awaiting_view = True
            return False
        kind = op.reach(self._goal - op.est, now, exact=self._exact)
        if kind != "clutch":
            self._moved = True
        return False

    def _judge(self, view: View) -> float:
        """The z correction (m) this view calls for; 0 when the press is right."""
        f = view.push_n
        lo, hi = self.force_band_n
        mid = 0.5 * (lo + hi)
        if self.depth_band_m is not None:
            dlo, dhi = self.depth_band_m
            indent = self.surface_z - view.tool[2]
            if f > hi:  # hard: stop here, it has been felt
                return 0.0
            if indent < dlo:
                return -max(0.0002, 0.5 * (dlo + dhi) - indent)
            if indent > dhi:
                return min(0.0015, max(0.0002, indent - 0.5 * (dlo + dhi)))
            return 0.0
        if f < lo:
            planned = self.surface_z - self.depth_m - float(view.tool[2])
            if f < 0.05:  # not touching: down to the planned depth (at least 1 mm further)
                return min(-0.001, planned)
            return -min(0.0015, max(0.0002, (mid - f) / self.k))
        if f > hi:
            return min(0.002, max(0.0002, (f - mid) / self.k))
        return 0.0


class SetJaw(_Action):
    """Open or close the grip to ``jaw_rad``; with ``settle_s``, also wait until a view shows
    the arm had that long to follow. Result: the view then (or None)."""

    timeout_s = 6.0

    def __init__(self, jaw_rad: float, settle_s: float = 0.0, label: str = "") -> None:
        super().__init__()
        self.jaw = float(jaw_rad)
        self.settle_s = float(settle_s)
        self.label = label or f"jaw {jaw_rad:.2f}"
        self._set = False
        self._done_ns: int | None = None

    def step(self, op: ScriptedExpert, now: int) -> bool:
        if not self._set:
            op.jaw_target = self.jaw
            self._set = True
            return False
        if op.jaw_at(now) != self.jaw:
            return False
        if self.settle_s <= 0.0:
            return True
        if self._done_ns is None:
            self._done_ns = now
        view = op.caught_up_view(now, since_ns=self._done_ns + round(self.settle_s * 1e9))
        if view is None:
            return False
        self.result = view
        return True


class WaitUntil(_Action):
    """Wait until ``predicate(view)`` holds for a perceived view (result True), or ``timeout_s``
    (plus 3x the felt lag) passes (result False)."""

    def __init__(
        self, predicate: Callable[[View], bool], timeout_s: float, label: str = ""
    ) -> None:
        super().__init__()
        self.predicate = predicate
        self.timeout_s = timeout_s
        self.label = label

    def update(self, op: ScriptedExpert, now: int) -> bool:
        if self._t0 is None:
            self._t0 = now
        view = op.view
        if view is not None and self.predicate(view):
            self.result = True
            return True
        if now - self._t0 > (self.timeout_s + 3.0 * op.lag_s) * 1e9:
            self.result = False
            return True
        return False


class Pause(_Action):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def update(self, op: ScriptedExpert, now: int) -> bool:
        if self._t0 is None:
            self._t0 = now
        return now - self._t0 >= self.seconds * 1e9


Script = Generator[_Action, Any, None]


# ---------------------------------------------------------------------------------------------
# The operator


@dataclass
class _Segment:
    t0: int
    dur: int
    p0: Vec
    p1: Vec


@dataclass
class _Clutch:
    phase: str = "start"  # start | engaged | pre | out | returning | rearm
    t_edge: int = 0
    last_engaged_ns: int = 0
    target: Vec = field(default_factory=lambda: np.zeros(3))


class ScriptedExpert(ThreadedDevice):
    """A scripted expert surgeon (see the module docstring).

    Args:
        seed: seeds the motor noise and the tremor.
        rate_hz: sample rate of the hand.
        skill: a :class:`Skill` or the name of a preset in :data:`SKILLS`.
        scale: the console's motion scale (tool displacement / master displacement).
        clock: the console clock (ns), ``time.monotonic_ns`` by default.
    """

    name = "expert"

    def __init__(
        self,
        seed: int = 0,
        rate_hz: float = 1000.0,
        skill: Skill | str = "expert",
        scale: float = 0.2,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        super().__init__(rate_hz)
        if isinstance(skill, str):
            if skill not in SKILLS:
                raise ValueError(f"unknown skill {skill!r}; one of {', '.join(SKILLS)}")
            skill = SKILLS[skill]
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be positive, got {scale}")
        self.skill = skill
        # declared for check-input: the hand stays within workspace_radius_m of its centre
        # (re-clutching beyond it)
        r = skill.workspace_radius_m + 0.05
        self.position_range_m = ((-r, -r, -r), (r, r, r))
        self.jaw_range_rad = (0.0, 1.0)
        self.seed = seed
        self.scale = float(scale)
        self._clock = clock
        self._rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
        self._tremor_src = SyntheticHand(seed=seed, amplitude_class=skill.tremor_class)
        self._tremor_chunk: tuple[int, np.ndarray] | None = None
        self._think_ns = round(1e9 / skill.think_hz)
        self._t0_ns: int | None = None
        self._now = 0
        self._next_think = 0
        self._seq = 0
        # the hand
        self._hand = np.zeros(3)
        self._seg: _Segment | None = None
        self.jaw_target = 0.5
        self._jaw = 0.5
        self._jaw_t: int | None = None
        self._clutch = _Clutch()
        self._engaged = False
        self.clutches = 0
        # seeing
        self._link: Any = None
        self.info: Any = None
        self._seen: deque[tuple[int, Any]] = deque()
        self._last_received: Any = None
        self._view_src: Any = None
        self.view: View | None = None
        self.lag_s = 0.0
        # the internal model: where the tool will be once every movement so far has landed
        self.est: Vec | None = None
        self.est_observed = False
        self.est_is_final = True
        self._motion_end_ns = 0
        # the script
        self._script: Script | None = None
        self._action: _Action | None = None
        self._send: Any = None
        self._finished = False
        self._warned_blind = False
        self.events: list[tuple[float, str]] = []

    # -- public ---------------------------------------------------------------------------------
    def attach(self, link: Any, info: Any) -> None:
        """Watch ``link`` (its ``latest_state``) and perform the task ``info`` describes
        (a :class:`~network.protocol.TaskInfo`; None or an unknown task: just hold still)."""
        self.info = info
        if self._script is None:
            self._script = self._task_script(info)
        self._link = link

    def visit(self, points: Sequence[Sequence[float]], tol_m: float = 0.001) -> None:
        """Instead of a task: bring the tool tip to each point in turn (verified moves)."""
        self._script = self._visit_script([np.asarray(p, dtype=float) for p in points], tol_m)

    @property
    def finished(self) -> bool:
        """The script has ended (done, or given up)."""
        return self._finished

    @property
    def engaged(self) -> bool:
        return self._engaged

    def note(self, text: str, level: int = logging.INFO) -> None:
        """Log one line and keep it in :attr:`events` (seconds since the first sample)."""
        t = 0.0 if self._t0_ns is None else (self._now - self._t0_ns) / 1e9
        self.events.append((t, text))
        log.log(level, "expert %.2f s: %s", t, text)

    # -- the device -------------------------------------------------------------------------------
    def read_once(self) -> InputSample | None:
        return self.sample_at(self._clock())

    def sample_at(self, t_ns: int) -> InputSample:
        """The hand's sample at console time ``t_ns`` (thinking first when it is time)."""
        self._now = t_ns
        if self._t0_ns is None:
            self._t0_ns = t_ns
            self._next_think = t_ns
        if t_ns >= self._next_think:
            self._next_think += self._think_ns
            if self._next_think <= t_ns:
                self._next_think = t_ns + self._think_ns
            self._think(t_ns)
        pos = self.hand_at(t_ns) + self._tremor_at(t_ns)
        pose = np.array([pos[0], pos[1], pos[2], 0.0, 0.0, 0.0, 1.0])
        pose.setflags(write=False)
        self._seq += 1
        return InputSample(
            t_ns=t_ns,
            pose=pose,
            twist=None,
            jaw=self.jaw_at(t_ns),
            buttons=Buttons(clutch=self._engaged, operator_present=True),
            seq=self._seq,
        )

    # -- the hand ---------------------------------------------------------------------------------
    def hand_at(self, t_ns: int) -> Vec:
        """The voluntary master position (no tremor) at ``t_ns``."""
        seg = self._seg
        if seg is None:
            return self._hand
        if t_ns >= seg.t0 + seg.dur:
            self._hand = seg.p1
            self._seg = None
            if self._engaged:
                self._motion_end_ns = seg.t0 + seg.dur
            return self._hand
        s = _min_jerk((t_ns - seg.t0) / seg.dur)
        return seg.p0 + s * (seg.p1 - seg.p0)

    def jaw_at(self, t_ns: int) -> float:
        if self._jaw_t is not None and self._jaw != self.jaw_target:
            step = self.skill.jaw_speed_rad_s * (t_ns - self._jaw_t) / 1e9
            d = self.jaw_target - self._jaw
            self._jaw = self.jaw_target if abs(d) <= step else self._jaw + math.copysign(step, d)
        self._jaw_t = t_ns
        return self._jaw

    def _tremor_at(self, t_ns: int) -> Vec:
        """The tremor at ``t_ns``, from the synthetic hand's model at 1 kHz, computed 50 ms at
        a time (~0.15 ms each: larger chunks would hold the GIL long enough to delay the
        console loop)."""
        assert self._t0_ns is not None
        ms = (t_ns - self._t0_ns) // 1_000_000
        k, i = divmod(ms, _TREMOR_CHUNK)
        if self._tremor_chunk is None or self._tremor_chunk[0] != k:
            t = (k * _TREMOR_CHUNK + np.arange(_TREMOR_CHUNK)) / 1000.0
            self._tremor_chunk = (k, self._tremor_src.motion(t)[1])
        return self._tremor_chunk[1][i]

    def _start_segment(self, now: int, delta: Vec, duration_s: float) -> None:
        p0 = self.hand_at(now).copy()
        self._seg = _Segment(now, max(1, round(duration_s * 1e9)), p0, p0 + delta)

    def busy(self, now: int) -> bool:
        """The hand is moving or a clutch cycle is under way."""
        self.hand_at(now)
        return self._seg is not None or self._clutch.phase != "engaged"

    # -- seeing -----------------------------------------------------------------------------------
    def _perceive(self, now: int) -> None:
        link = self._link
        # one attribute read of an immutable object: no lock needed (see the module doc)
        received = link.latest_state if link is not None else None
        if received is not None and received is not self._last_received:
            self._last_received = received
            self._seen.append((now, received))
        cutoff = now - round(self.skill.reaction_s * 1e9)
        seen = self._seen
        while len(seen) > 1 and seen[1][0] <= cutoff:
            seen.popleft()
        if seen and seen[0][0] <= cutoff and seen[0][1] is not self._view_src:
            self._view_src = seen[0][1]
            prev = self.view
            self.view = View.of(self._view_src)
            ack = self.view.ack_send_ns
            if ack > 0 and (prev is None or ack > prev.ack_send_ns):
                # the felt lag: from sending a command to seeing its effect (round trip +
                # reaction), learnt while the instrument follows
                lag = (now - ack) / 1e9
                self.lag_s += 0.05 * (lag - self.lag_s) if self.lag_s else lag

    @property
    def caution(self) -> float:
        """How cautious the felt lag makes the operator (0: not at all; see :class:`Skill`)."""
        sk = self.skill
        return min(2.0, max(0.0, (self.lag_s - sk.caution_lag_s) * sk.caution_per_s))

    def caught_up_view(self, now: int, since_ns: int | None = None) -> View | None:
        """The view, if it reflects everything commanded up to ``since_ns`` (default: the end
        of the last movement plus ``settle_s``); after ``catchup_timeout_s`` (+3x the felt lag)
        the view as it is. None: keep waiting."""
        view = self.view
        if view is None:
            return None
        if since_ns is None:
            since_ns = self._motion_end_ns + round(self.skill.settle_s * 1e9)
        if view.ack_send_ns >= since_ns:
            return view
        if now - since_ns > (self.skill.catchup_timeout_s + 3.0 * self.lag_s) * 1e9:
            self.note("no up-to-date view of the instrument; going on with what I see")
            self._motion_end_ns = now  # do not go on blind at once next time
            return view
        return None

    def adopt(self, view: View) -> None:
        """Believe what is seen: the estimate becomes the observed tip."""
        self.est = view.tool.copy()
        self.est_observed = True
        self.est_is_final = True

    # -- moving -----------------------------------------------------------------------------------
    def reach(self, tool_err: Vec, now: int, exact: bool = False) -> str:
        """Start a movement (or a clutch cycle) toward ``tool_err`` (m, tool space) from the
        estimate: ``"final"`` (this movement should bring the tool there), ``"partial"`` (as
        far as the master's workspace allows) or ``"clutch"`` (a re-clutch first).
        ``exact``: a small correction without the primary movement's undershoot."""
        sk = self.skill
        assert self.est is not None
        delta = np.asarray(tool_err, dtype=float) / self.scale
        dist = float(np.linalg.norm(delta))
        hand = self.hand_at(now)
        R = sk.workspace_radius_m
        if dist < 1e-9:
            return "final"
        u = delta / dist
        if float(np.linalg.norm(hand + delta)) <= R:
            step, final = delta, True
        else:
            # wind up: put the hand where the whole reach (or as much as fits) lies inside
            wind = -u * min(0.9 * R, 0.5 * dist)
            if float(np.linalg.norm(hand - wind)) > 0.01 and (
                float(np.linalg.norm(wind + delta)) <= R or float(np.dot(hand, u)) > -0.5 * R
            ):
                self._reclutch(now, wind)
                return "clutch"
            # as far as the workspace allows along u
            b = float(np.dot(hand, u))
            c = float(np.dot(hand, hand)) - R * R
            s = -b + math.sqrt(max(0.0, b * b - c))
            if s < 0.01:
                self._reclutch(now, -u * 0.9 * R)
                return "clutch"
            step, final = u * s, False
        length = float(np.linalg.norm(step))
        tool_len = length * self.scale
        # primary (large, fast) movements undershoot; small ones are made with care
        small = exact or tool_len < 0.005
        caution = self.caution
        gain = (
            1.0 if small else float(self._rng.normal(sk.primary_gain - 0.05 * caution, sk.gain_sd))
        )
        sd = sk.noise_fraction * length + sk.noise_floor_m
        executed = gain * step + self._rng.normal(0.0, sd, size=3)
        # backing off upward, away from tissue, is quick (an overshoot there is harmless)
        shortest = sk.min_lift_s if step[2] > 2.0 * math.hypot(step[0], step[1]) else sk.min_move_s
        speed = sk.peak_tool_speed_m_s / (1.0 + caution)
        duration = max(shortest, 1.875 * tool_len / speed)
        self._start_segment(now, executed, duration)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "expert %.2f s: %s move %s mm over %.2f s (tool) from %s",
                (now - (self._t0_ns or now)) / 1e9,
                "final" if final else "partial",
                np.round(step * self.scale * 1e3, 2),
                duration,
                np.round(self.est * 1e3, 2),
            )
        self.est = self.est + step * self.scale
        self.est_observed = False
        self.est_is_final = final
        return "final" if final else "partial"

    def _reclutch(self, now: int, hand_target: Vec) -> None:
        c = self._clutch
        c.phase = "pre"  # hold still a moment (the filter settles), then release
        c.t_edge = now
        c.target = np.asarray(hand_target, dtype=float).copy()

    def _clutch_update(self, now: int) -> bool:
        """Run the clutch; True when engaged and free to move."""
        c = self._clutch
        sk = self.skill
        pause = round(sk.clutch_pause_s * 1e9)
        if c.phase == "engaged":
            if self._not_following(now):
                self.note("the instrument does not follow: re-clutching", logging.WARNING)
                self._reclutch(now, self.hand_at(now))
                self.est = None  # look again before planning from the old estimate
                return False
            return True
        if c.phase == "start":
            if self.view is None:
                if self._link is None and not self._warned_blind and self._script is not None:
                    self._warned_blind = True
                    self.note("no link attached: I cannot see the arm", logging.WARNING)
                c.t_edge = now
                return False
            if now - c.t_edge >= sk.engage_after_s * 1e9:
                self._engage(now)
                return True
            return False
        if c.phase == "pre":
            if now - c.t_edge >= pause:
                self._engaged = False
                c.phase = "out"
                c.t_edge = now
                c.last_engaged_ns = now
            return False
        if c.phase == "out":
            if now - c.t_edge >= pause:
                hand = self.hand_at(now)
                dist = float(np.linalg.norm(c.target - hand))
                self._start_segment(
                    now, c.target - hand, max(0.3, 1.875 * dist / sk.peak_return_speed_m_s)
                )
                c.phase = "returning"
            return False
        if c.phase == "returning":
            self.hand_at(now)
            if self._seg is None:
                c.phase = "rearm"
                c.t_edge = now
            return False
        # rearm: the hand is still; wait until the arm is seen to have stopped where we left it:
        # it applied our last engaged command, or (if the console had already stopped passing
        # them on, after a lost link) it is seen holding, in a state sent after any command of
        # ours from before the release could have arrived
        view = self.view
        rtt = max(0.0, self.lag_s - sk.reaction_s)
        seen_stop = view is not None and (
            view.ack_send_ns >= c.last_engaged_ns - 5_000_000
            or (
                "not_engaged" in view.flags
                and view.rx_ns >= c.last_engaged_ns + round((rtt + 0.02) * 1e9)
            )
        )
        waited = now - c.last_engaged_ns > (sk.catchup_timeout_s + 3.0 * self.lag_s) * 1e9
        if now - c.t_edge >= pause and (seen_stop or waited):
            self._engage(now)
            self.clutches += 1
            return False
        return False

    def _engage(self, now: int) -> None:
        self._engaged = True
        self._clutch.phase = "engaged"
        self._clutch.t_edge = now
        self._motion_end_ns = now

    def _not_following(self, now: int) -> bool:
        """Engaged, hand still, yet the arm has applied nothing of ours for longer than the
        felt lag allows, and shows it is not engaged (or has not for much longer): the console
        wants a re-engage (after a lost link), or the arm holds."""
        view = self.view
        if view is None or self._seg is not None or view.ack_send_ns == 0:
            return False
        edge = self._clutch.t_edge
        quiet = now - max(view.ack_send_ns, edge)
        if now - edge < (self.lag_s + 0.5) * 1e9 or quiet < (self.lag_s + 0.5) * 1e9:
            return False
        idle = "not_engaged" in view.flags or "wait_reengage" in view.flags
        return idle or quiet > (2.0 * self.lag_s + 1.0) * 1e9

    # -- thinking ---------------------------------------------------------------------------------
    def _think(self, now: int) -> None:
        self._perceive(now)
        if self._finished:
            return
        if not self._clutch_update(now):
            return
        if self._script is None:
            return
        for _ in range(8):  # actions that finish at once let the next one start this think
            if self._action is None:
                try:
                    self._action = self._script.send(self._send)
                except StopIteration:
                    self._finished = True
                    self.note("script finished")
                    return
                self._send = None
            if not self._action.update(self, now):
                return
            self._send = self._action.result
            self._action = None
            if self.busy(now):
                return

    # -- scripts ----------------------------------------------------------------------------------
    def _task_script(self, info: Any) -> Script:
        name = getattr(info, "name", None)
        if name == "reach":
            return self._reach_script(info)
        if name == "peg-transfer":
            return self._peg_script(info)
        if name == "palpation":
            return self._palpation_script(info)
        return self._idle_script(name)

    def _idle_script(self, name: str | None) -> Script:
        self.note(f"no script for task {name!r}: holding still" if name else "no task: holding")
        return
        yield  # pragma: no cover - makes this a generator

    def _visit_script(self, points: list[Vec], tol_m: float) -> Script:
        for i, p in enumerate(points):
            ok = yield Move(p, tol_m, label=f"point {i + 1}/{len(points)}")
            self.note(f"point {i + 1}/{len(points)} {'reached' if ok else 'NOT reached'}")

    def _counter(self, name: str) -> int:
        v = self.view
        return int(v.counters.get(name, 0)) if v is not None else 0

    def _out_of_time(self, info: Any, t_start: int) -> bool:
        limit = float(info.values.get("time_limit_s", 300.0))
        if (self._now - t_start) / 1e9 > limit + 10.0:
            self.note(f"out of time ({limit:g} s): stopping", logging.WARNING)
            return True
        return False

    def _reach_script(self, info: Any) -> Script:
        targets = [np.asarray(p, dtype=float) for p in info.points.get("targets", ())]
        radius = float(info.values.get("touch_radius_m", 0.005))
        t_start = self._now
        self.note(f"reach: {len(targets)} targets, touch radius {radius * 1e3:.1f} mm")
        yield SetJaw(0.0)
        hover = 0.006
        remaining = list(range(len(targets)))
        while remaining:
            if self._counter("task_done") or self._out_of_time(info, t_start):
                break
            here = self.est if self.est is not None else np.zeros(3)
            i = min(remaining, key=lambda j: float(np.linalg.norm(targets[j] - here)))
            remaining.remove(i)
            tgt = targets[i]
            t0 = self._now
            before = self._counter("task_targets_touched")
            above = tgt + np.array([0.0, 0.0, hover])
            # look before touching tissue: a verified (if coarse) approach
            yield Move(above, 0.0025, label=f"above target {i}")
            touched = False
            for attempt in range(3):
                press = yield Press(
                    tgt,
                    float(tgt[2]),
                    0.0008 + 0.0004 * attempt,
                    tol_xy_m=0.5 * radius,
                    force_band_n=(0.15, 1.5),
                    label=f"press target {i}",
                )
                touched = yield WaitUntil(
                    lambda v, b=before: v.counters.get("task_targets_touched", 0) > b,
                    1.0,
                    label=f"target {i} touched",
                )
                if touched or press is None:
                    break
            dt = (self._now - t0) / 1e9
            self.note(
                f"reach: target {i} at ({tgt[0] * 1e3:.0f}, {tgt[1] * 1e3:.0f}) mm "
                f"{'touched' if touched else 'NOT confirmed'} in {dt:.1f} s"
            )
            yield Move(above, 0.002, verify=False, label=f"lift from target {i}")
        self.note(f"reach: done, {self._counter('task_targets_touched')} touched")

    def _peg_script(self, info: Any) -> Script:
        rings = [np.asarray(p, dtype=float) for p in info.points.get("rings", ())]
        pegs_to = [np.asarray(p, dtype=float) for p in info.points.get("pegs_to", ())]
        pegs_from = [np.asarray(p, dtype=float) for p in info.points.get("pegs_from", ())]
        peg_h = float(info.values.get("peg_height_m", 0.025))
        ring_outer = float(info.values.get("ring_outer_m", 0.018))
        t_start = self._now
        tops = [p[2] for p in pegs_to + pegs_from] or [-0.167]
        clear_z = max(tops) + 0.012
        board_z = (min(tops) - peg_h) if tops else -0.192
        # grasp the ring's +x wall from above, jaws closing across it (the wall is 3 mm thick,
        # ~7.5 mm from the centre; 8 mm works whatever the ring's turn within +-0.5 rad)
        wall = np.array([0.44 * ring_outer, 0.0, 0.0])
        grasp_dz = board_z + 0.0025
        free = list(range(len(pegs_to)))
        self.note(f"peg-transfer: {len(rings)} rings, {len(pegs_to)} free pegs")
        order = sorted(range(len(rings)), key=lambda j: -rings[j][0])  # nearest the right first
        for i in order:
            if self._counter("task_done") or self._out_of_time(info, t_start) or not free:
                break
            t0 = self._now
            ring = rings[i]
            grasp = np.array([ring[0] + wall[0], ring[1] + wall[1], grasp_dz])
            held = False
            for attempt in range(3):
                yield SetJaw(0.8)
                yield Move(
                    [grasp[0], grasp[1], clear_z], 0.002, verify=False, label=f"over ring {i}"
                )
                yield Move(
                    [grasp[0], grasp[1], grasp_dz + 0.006], 0.0008, label=f"align on ring {i}"
                )
                yield Move(grasp, 0.001, label=f"down to ring {i}")
                view = yield SetJaw(0.0, settle_s=0.35, label=f"grasp ring {i}")
                held = view is not None and view.jaw > 0.12  # the jaws stalled on the ring
                if held:
                    break
                self.note(f"peg-transfer: ring {i} not grasped (try {attempt + 1})")
                yield SetJaw(0.8)
                yield Move([grasp[0], grasp[1], clear_z], 0.002, verify=False, label="back up")
            if not held:
                self.note(f"peg-transfer: giving up on ring {i}", logging.WARNING)
                continue
            lifted_before = self._counter("task_rings_lifted")
            yield Move([grasp[0], grasp[1], clear_z], 0.002, verify=False, label=f"lift ring {i}")
            here = np.array([grasp[0], grasp[1]])
            j = min(free, key=lambda k: float(np.linalg.norm(pegs_to[k][:2] - here)))
            free.remove(j)
            peg = pegs_to[j]
            over = np.array([peg[0] + wall[0], peg[1] + wall[1], clear_z])
            yield Move(over, 0.001, label=f"ring {i} over peg {j}")
            placed0 = self._counter("task_rings_placed")
            drops0 = self._counter("task_drops")
            # drop it from just above the peg's top: the jaws never go down along the peg (the
            # inner finger would clear it by ~2 mm only), the ring slides down around it
            drop = [over[0], over[1], peg[2] + 0.005]
            yield Move(drop, 0.0015, label=f"lower ring {i} onto peg {j}")
            yield SetJaw(0.8, settle_s=0.2, label=f"release ring {i}")
            yield Move(over, 0.003, verify=False, label="up from the peg")
            ok = yield WaitUntil(
                lambda v, a=placed0, b=drops0: (
                    v.counters.get("task_rings_placed", 0) > a
                    or v.counters.get("task_drops", 0) > b
                ),
                2.0,
                label=f"ring {i} settles",
            )
            placed = self._counter("task_rings_placed") > placed0
            lifted = self._counter("task_rings_lifted") > lifted_before
            self.note(
                f"peg-transfer: ring {i} -> peg {j}: "
                f"{'placed' if placed else ('dropped' if ok else 'not confirmed')}"
                f"{'' if lifted else ' (lift not counted)'} in {(self._now - t0) / 1e9:.1f} s"
            )
        self.note(
            f"peg-transfer: done, {self._counter('task_rings_placed')} placed, "
            f"{self._counter('task_drops')} dropped"
        )

    def _palpation_script(self, info: Any) -> Script:
        area = [np.asarray(p, dtype=float) for p in info.points.get("search_area", ())]
        found_r = float(info.values.get("found_radius_m", 0.008))
        if len(area) < 2:
            self.note("palpation: no search area", logging.WARNING)
            return
        lo = np.minimum(area[0], area[1])
        hi = np.maximum(area[0], area[1])
        top = float(area[0][2])
        t_start = self._now
        # a lump at least 10 mm across lies inside the area inset by its half-size: probe that
        # on a grid fine enough that one probe lands on it
        inset = 0.005
        spacing = 0.012
        xs = _grid(lo[0] + inset, hi[0] - inset, spacing)
        ys = _grid(lo[1] + inset, hi[1] - inset, spacing)
        probes = [
            np.array([x, y]) for j, y in enumerate(ys) for x in (xs if j % 2 == 0 else xs[::-1])
        ]
        self.note(f"palpation: probing {len(probes)} spots ({len(xs)} x {len(ys)} grid)")
        yield SetJaw(0.0)
        felt: list[tuple[float, Vec]] = []
        for k, xy in enumerate(probes):
            if self._out_of_time(info, t_start):
                return
            stiff = yield from self._probe(xy, top, f"probe {k + 1}/{len(probes)}")
            if stiff is not None:
                felt.append((stiff, xy))
        if not felt:
            self.note("palpation: felt nothing", logging.WARNING)
            return
        plain = float(np.median([k for k, _ in felt]))
        felt.sort(key=lambda e: -e[0])
        self.note(
            f"palpation: plain tissue ~{plain:.0f} N/m; stiffest "
            + ", ".join(f"({p[0] * 1e3:.0f}, {p[1] * 1e3:.0f}) mm {s:.0f}" for s, p in felt[:3])
        )
        # candidates: the centroid of each cluster of stiff probes (a lump between two probes
        # makes both stiff), stiffest first
        stiff = [(k, p) for k, p in felt if k > 1.6 * plain]
        clusters: list[list[tuple[float, Vec]]] = []
        for k, p in stiff:
            for c in clusters:
                if any(float(np.linalg.norm(p - q)) <= 1.5 * spacing for _, q in c):
                    c.append((k, p))
                    break
            else:
                clusters.append([(k, p)])
        candidates = [(np.mean([p for _, p in c], axis=0), len(c)) for c in clusters]
        # if nothing stands out: the stiffest spots
        candidates += [(p, 1) for _, p in felt[:2]]
        tried: list[Vec] = []
        for centre, n_stiff in candidates[:4]:
            if self._out_of_time(info, t_start):
                return
            if any(float(np.linalg.norm(centre - t)) < 0.5 * found_r for t in tried):
                continue
            tried.append(centre)
            local: list[tuple[float, Vec]] = []
            if n_stiff < 2:
                # one stiff probe only: the lump may lie anywhere around it: feel around
                d = 0.004
                for off in ((0.0, 0.0), (d, 0.0), (-d, 0.0), (0.0, d), (0.0, -d)):
                    xy = centre + np.array(off)
                    if np.all(xy >= lo[:2]) and np.all(xy <= hi[:2]):
                        k = yield from self._probe(xy, top, "feel around")
                        if k is not None:
                            local.append((k, xy))
            hard = [p for k, p in local if k > 1.6 * plain]
            spot = np.mean(hard, axis=0) if hard else centre
            marks0 = self._counter("task_marks")
            found = yield from self._mark(spot, top)
            self.note(
                f"palpation: mark at ({spot[0] * 1e3:.1f}, {spot[1] * 1e3:.1f}) mm "
                f"({len(hard)}/{len(local)} stiff around): "
                f"{'FOUND' if found else 'not found'} (marks {marks0} -> "
                f"{self._counter('task_marks')})"
            )
            if found:
                return

    def _probe(self, xy: Vec, top: float, label: str) -> Generator[_Action, Any, float | None]:
        """Move over ``xy``, look, press ~1.1 mm deep, lift; the felt stiffness (N/m) or None."""
        yield Move([xy[0], xy[1], top + 0.0015], 0.002, verify=False, label=label)
        view = yield Press(
            xy,
            top,
            0.00112,
            tol_xy_m=0.003,
            force_band_n=(0.0, 2.0),
            depth_band_m=(0.00103, 0.00125),
            look_first=True,
            label=label,
        )
        here = view.tool[:2] if view is not None else xy
        yield Move([here[0], here[1], top + 0.0015], 0.0003, verify=False, label="lift")
        if view is None:
            return None
        indent = top - float(view.tool[2])
        if indent < 0.0003:
            return None
        return view.push_n / indent

    def _mark(self, xy: Vec, top: float) -> Generator[_Action, Any, bool]:
        """Press lightly at ``xy`` (above the lump's top: no more force than plain tissue),
        open the jaw a little and close it while pressing; True if the lump is found."""
        marks0 = self._counter("task_marks")
        found = False
        for attempt in range(3):
            yield Move([xy[0], xy[1], top + 0.0015], 0.001, label="over the lump")
            yield SetJaw(0.0)
            yield Press(
                xy,
                top,
                0.0006 + 0.0002 * attempt,
                tol_xy_m=0.0015,
                force_band_n=(0.4, 1.5),
                look_first=True,
                label="press on the lump",
            )
            # the jaw must be seen open past the re-arm angle, then close while pressing
            yield SetJaw(0.45, settle_s=0.3, label="open a little")
            yield SetJaw(0.0, settle_s=0.3, label="close to mark")
            ok = yield WaitUntil(
                lambda v, m=marks0: (
                    v.counters.get("task_marks", 0) > m or v.counters.get("task_found", 0) > 0
                ),
                1.0,
                label="mark seen",
            )
            found = self._counter("task_found") > 0
            yield Move([xy[0], xy[1], top + 0.004], 0.002, verify=False, label="lift")
            if ok:
                break
        return found


def _grid(a: float, b: float, spacing: float) -> list[float]:
    """Points covering [a, b] so that every point of it is within spacing/2 of one."""
    if b <= a:
        return [0.5 * (a + b)]
    n = max(1, math.ceil((b - a) / spacing))
    step = (b - a) / n
    return [a + step * (i + 0.5) for i in range(n)]


__all__ = ["SKILLS", "Move", "Press", "ScriptedExpert", "SetJaw", "Skill", "View", "WaitUntil"]
