"""Training tasks on the simulated arm: what the trainee must do, and how the arm scores it.

A task is chosen by name (:data:`TASKS`, :func:`make_task`), runs inside :class:`sim.arm.SimArm`
(``SimArm(task="reach")``) and is published two ways:

* :meth:`Task.info` (a :class:`~network.protocol.TaskInfo`, in ``ArmDescription.task``, sent in the
  welcome): the task's name, a one-sentence goal, named point sets (base frame, m) and named
  values (units in the names). Nothing in it gives the answer away (the palpation inclusion's
  position is not in it).
* :meth:`Task.counters` (merged by the arm server into every state's ``counters``): live
  progress, non-negative integers named ``task_*``.

The counters every task has:

``task_started``
    0/1: set when the tool tip first moves more than :data:`START_MOVE_M` (2 mm) from where it
    was at connect (the console's first engaged motion).
``task_done``
    0/1: the task's goal is reached (see each task). Every counter is frozen from then on.
``task_elapsed_ms``
    The arm's simulated clock (physics steps x time step: the same as wall time when the arm
    runs in real time, and deterministic) from the start until done, then frozen.
``task_collisions``
    Contact onsets between the instrument and something it should not touch (the table, the
    peg board and its pegs, and whatever the task does not allow: see each task). One contact
    is one count: touching the same body again within :data:`COLLISION_DEBOUNCE_S` (100 ms)
    of last touching it is the same contact. A contact counts when its normal force exceeds
    :data:`COLLISION_MIN_FORCE_N`.
``task_excess_force_ms``
    Time with the force on the instrument (the magnitude of the measured wrench's force, held
    ring included) above the task's ``force_limit_n``.

The tasks (counters and info below are exact):

``reach``: :class:`ReachTask`. ``peg-transfer``: :class:`PegTransferTask`.
``palpation``: :class:`PalpationTask`.

The time limit (``values["time_limit_s"]``) is advisory: the arm does not stop a task when it
runs out; the console judges it against ``task_elapsed_ms``.

``update`` runs once per physics tick from ``SimArm.update()``: it reads the contacts the world
already queried for the force (no extra contact query) and the ring poses only every few ticks,
so it costs a few microseconds per tick.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pybullet as p

from sim.scene import (
    BOARD_TOP_Z,
    PAD_CENTER,
    PAD_SIZE,
    PAD_STIFFNESS_N_M,
    PAD_TOP_Z,
    PEG_HEIGHT_M,
    PEG_RADIUS_M,
    RING_HEIGHT_M,
    RING_OUTER_M,
    TARGET_RADIUS_M,
    peg_positions,
    scene_layout,
)
from slave_arm.driver import TaskInfo

if TYPE_CHECKING:
    from sim.world import SimWorld

Vec3 = tuple[float, float, float]

HOME_TIP: Vec3 = (0.0, 0.0, -0.1)
"""The tool tip at the arm's home joints (``sim.arm.HOME_Q``)."""
START_MOVE_M = 0.002
"""The tool must move this far from where it was at connect for the task to start (m)."""
COLLISION_DEBOUNCE_S = 0.1
"""A body touched again within this long of the last touch is the same contact (s)."""
COLLISION_MIN_FORCE_N = 0.01
"""A contact point's normal force must exceed this to be a contact (PyBullet reports points
within its contact margin with zero force)."""

# reach
TOUCH_RADIUS_M = TARGET_RADIUS_M + 0.001
"""The tool tip must be this close (x, y) to a target's centre to touch it (m)."""
TOUCH_FORCE_N = 0.2
"""Pad contact force that counts as touching the pad (N) ..."""
TOUCH_HEIGHT_M = 0.0015
"""... or: any pad contact with the tip at most this far above the pad's top (m)."""

# peg transfer
PLACE_TOLERANCE_M = 0.005
"""A ring is around a peg when its centre is this close (x, y) to the peg's axis (m): the hole
(12 mm) leaves the centre at most 4 mm from a 4 mm peg, plus some tilt."""
PLACE_MAX_Z = BOARD_TOP_Z + PEG_HEIGHT_M / 2
"""... and low on it: its centre below the peg's mid-height (m)."""
LIFT_CLEAR_Z = BOARD_TOP_Z + PEG_HEIGHT_M
"""A held ring is lifted once its bottom is above its peg's top (m)."""
REST_SPEED_M_S = 0.005
REST_SPIN_RAD_S = 1.0
REST_CHECKS = 3
"""A released ring is at rest after this many consecutive checks below both speeds ..."""
REST_MIN_S = 0.1
"""... and at least this long after its release (s) ..."""
REST_TIMEOUT_S = 5.0
"""... or this long after its release, whatever it does (s)."""
RING_CHECK_TICKS = 10
"""Held and falling rings are looked at every this many ticks; resting ones 10x less often."""

# palpation
SEARCH_MARGIN_M = 0.01
"""The search area is the pad's top, less this margin on each side (m)."""
INCLUSION_SIZE_M: Vec3 = (0.01, 0.01, 0.006)
"""The hard inclusion: a 10 x 10 x 6 mm box ..."""
INCLUSION_DEPTH_M = 0.001
"""... its top this far under the pad's top surface (m) ..."""
INCLUSION_STIFFNESS_N_M = 8.0 * PAD_STIFFNESS_N_M
"""... with 8x the pad's contact stiffness per contact point (N/m)."""
INCLUSION_DAMPING_N_S_M = INCLUSION_STIFFNESS_N_M / 25.0
FOUND_RADIUS_M = 0.008
"""A mark this close (x, y) to the inclusion's centre finds it (m)."""
MARK_JAW_RAD = 0.15
"""The jaw closing below this (rad) ..."""
MARK_FORCE_N = 0.3
"""... while the instrument pushes with more than this (N) is a mark."""
MARK_REARM_RAD = 0.25
"""After a closing, the jaw must open above this (rad) before it can mark again."""


def _v3(x: Any) -> Vec3:
    return (float(x[0]), float(x[1]), float(x[2]))


class Task(ABC):
    """A training task (see the module docstring): subclasses fill in the task itself.

    Life: ``make_task(name, seed)`` (the info is known from the seed alone, before the world
    exists), :meth:`attach` (once per world: builds what the task adds to it, then resets),
    :meth:`update` once per physics tick, :meth:`counters` whenever the state is published.
    """

    name: ClassVar[str]
    goal: ClassVar[str]
    time_limit_s: ClassVar[float]
    force_limit_n: ClassVar[float]

    def __init__(self, seed: int = 0, home: Sequence[float] = HOME_TIP) -> None:
        self.seed = int(seed)
        self.home: Vec3 = _v3([round(float(v), 9) + 0.0 for v in home])  # no -0.0, no 1e-17
        self.layout = scene_layout(self.seed)
        self._world: SimWorld | None = None
        self._forbidden: frozenset[int] = frozenset()
        self.reset()

    # -- what the console is told ------------------------------------------------------------------
    def info(self) -> Any:
        """The :class:`~network.protocol.TaskInfo` sent to consoles (no secret in it)."""
        points = {k: tuple(_v3(v) for v in vs) for k, vs in self._points().items()}
        points["home"] = (self.home,)
        values = {"time_limit_s": self.time_limit_s, "force_limit_n": self.force_limit_n}
        values.update(self._values())
        return TaskInfo(
            name=self.name,
            goal=self.goal,
            points=points,
            values={k: float(v) for k, v in values.items()},
        )

    @abstractmethod
    def _points(self) -> dict[str, Sequence[Sequence[float]]]: ...

    @abstractmethod
    def _values(self) -> dict[str, float]: ...

    # -- lifetime ----------------------------------------------------------------------------------
    def attach(self, world: SimWorld) -> None:
        """Use this (new) world: add what the task needs to it, then :meth:`reset`."""
        self._world = world
        self._build(world)
        sc = world.scene
        everything = {sc.table, sc.pad, sc.board, *sc.rings}
        self._forbidden = frozenset(everything - self._allowed_bodies(world))
        self.reset()

    def _build(self, world: SimWorld) -> None:  # noqa: B027 - optional hook
        """Add bodies to the world (default: nothing)."""

    @abstractmethod
    def _allowed_bodies(self, world: SimWorld) -> set[int]:
        """The scene bodies the instrument may touch without it counting as a collision."""

    def reset(self) -> None:
        """Start over: every counter to 0, not started (the scene itself is not reset)."""
        self.done = False
        self._started = False
        self._start_pos: Vec3 | None = None
        self._t_start = 0.0
        self._t_last: float | None = None
        self._elapsed_s = 0.0
        self._excess_s = 0.0
        self._collisions = 0
        self._last_touch: dict[int, float] = {}
        self._ticks = 0
        self._reset_task()

    @abstractmethod
    def _reset_task(self) -> None: ...

    # -- the tick ----------------------------------------------------------------------------------
    def update(
        self,
        world: SimWorld,
        t_s: float,
        tool_pos: Sequence[float],
        wrench: Sequence[float],
        jaw: float,
    ) -> None:
        """One physics tick: ``t_s`` the arm's clock (s), ``tool_pos`` the tool tip (m, base
        frame), ``wrench`` the measured wrench (tool frame; only its force's magnitude is used),
        ``jaw`` the measured jaw opening (rad). Call after the world's read and grasp update."""
        if self.done:
            return
        x, y, z = float(tool_pos[0]), float(tool_pos[1]), float(tool_pos[2])
        dt = 0.0 if self._t_last is None else max(0.0, t_s - self._t_last)
        self._t_last = t_s
        self._ticks += 1
        if not self._started:
            if self._start_pos is None:
                self._start_pos = (x, y, z)
            else:
                sx, sy, sz = self._start_pos
                if (x - sx) ** 2 + (y - sy) ** 2 + (z - sz) ** 2 > START_MOVE_M * START_MOVE_M:
                    self._started = True
                    self._t_start = t_s
        fx, fy, fz = float(wrench[0]), float(wrench[1]), float(wrench[2])
        force = math.sqrt(fx * fx + fy * fy + fz * fz)
        if force > self.force_limit_n:
            self._excess_s += dt
        contacts = world.contacts
        if contacts:
            forbidden = self._forbidden
            last = self._last_touch
            for ct in contacts:
                b = ct.body
                if b in forbidden and ct.normal_force_n > COLLISION_MIN_FORCE_N:
                    prev = last.get(b)
                    if prev is None or t_s - prev > COLLISION_DEBOUNCE_S:
                        self._collisions += 1
                    last[b] = t_s
        self._update_task(world, t_s, x, y, z, force, float(jaw))
        if self._started:
            self._elapsed_s = t_s - self._t_start
        if self._complete():
            self.done = True
            if not self._started:  # pragma: no cover - cannot finish without moving
                self._started = True

    @abstractmethod
    def _update_task(
        self, world: SimWorld, t_s: float, x: float, y: float, z: float, force: float, jaw: float
    ) -> None: ...

    @abstractmethod
    def _complete(self) -> bool: ...

    # -- progress ----------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Progress now: the common counters and the task's own (all ``task_*``, ints >= 0)."""
        out = {
            "task_started": int(self._started),
            "task_done": int(self.done),
            "task_elapsed_ms": round(self._elapsed_s * 1000.0),
            "task_collisions": self._collisions,
            "task_excess_force_ms": round(self._excess_s * 1000.0),
        }
        out.update(self._task_counters())
        return out

    @abstractmethod
    def _task_counters(self) -> dict[str, int]: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, done={self.done})"


# ---------------------------------------------------------------------------------------------
# reach
# ---------------------------------------------------------------------------------------------
class ReachTask(Task):
    """Touch each touch target on the tissue pad (``points["targets"]``).

    A target counts once, when the tool tip is within ``touch_radius_m`` (x, y) of its centre
    while the instrument touches the pad: the pad pushes back with more than ``touch_force_n``
    (0.2 N), or the instrument has a contact on the pad with the tip at most 1.5 mm above the
    pad's top. Hovering over a target does not count. Done when every target is touched.
    Touching the pad is allowed; the table, the board, its pegs and the rings are collisions.

    Counters: ``task_targets_total``, ``task_targets_touched``.
    """

    name = "reach"
    goal = "Touch each green target on the tissue pad with the instrument tip, gently."
    time_limit_s = 120.0
    force_limit_n = 3.0

    def _points(self) -> dict[str, Sequence[Sequence[float]]]:
        return {"targets": self.layout.target_positions.tolist()}

    def _values(self) -> dict[str, float]:
        return {
            "touch_radius_m": TOUCH_RADIUS_M,
            "touch_force_n": TOUCH_FORCE_N,
            "target_radius_m": TARGET_RADIUS_M,
        }

    def _allowed_bodies(self, world: SimWorld) -> set[int]:
        return {world.scene.pad}

    def _reset_task(self) -> None:
        self._targets = [(float(t[0]), float(t[1])) for t in self.layout.target_positions]
        self._touched = [False] * len(self._targets)
        self._n_touched = 0
        self._pad = -1 if self._world is None else self._world.scene.pad

    def _update_task(
        self, world: SimWorld, t_s: float, x: float, y: float, z: float, force: float, jaw: float
    ) -> None:
        contacts = world.contacts
        if not contacts:
            return
        pad = self._pad
        pad_force = 0.0
        on_pad = False
        for ct in contacts:
            if ct.body == pad:
                on_pad = True
                pad_force += ct.normal_force_n
        if not (on_pad and (pad_force > TOUCH_FORCE_N or z <= PAD_TOP_Z + TOUCH_HEIGHT_M)):
            return
        r2 = TOUCH_RADIUS_M * TOUCH_RADIUS_M
        for i, (tx, ty) in enumerate(self._targets):
            if not self._touched[i] and (x - tx) ** 2 + (y - ty) ** 2 <= r2:
                self._touched[i] = True
                self._n_touched += 1

    def _complete(self) -> bool:
        return self._n_touched == len(self._targets)

    def _task_counters(self) -> dict[str, int]:
        return {"task_targets_total": len(self._targets), "task_targets_touched": self._n_touched}


# ---------------------------------------------------------------------------------------------
# peg transfer
# ---------------------------------------------------------------------------------------------
_IDLE, _HELD, _FALLING, _PLACED, _DROPPED = range(5)


class PegTransferTask(Task):
    """FLS peg transfer: move every ring from its left-side peg to a right-side peg.

    Each ring is, at any time, one of:

    * in play, resting around a peg (at the start: its left-side peg, ``points["pegs_from"]``);
    * held (the jaws grasp it: ``SimWorld.grasped_ring``). It counts as lifted (once per ring,
      ``task_rings_lifted``) when its bottom rises above its peg's top;
    * falling: released (or knocked), not yet at rest;
    * placed: at rest, not held, around a right-side peg (``points["pegs_to"]``): its centre
      within ``place_tolerance_m`` (x, y) of the peg's axis and below the peg's mid-height.
      A placed ring grasped again is held again (and no longer placed);
    * dropped: at rest anywhere that is not around a peg. As in the FLS rules, a dropped ring is
      out of play: it counts in ``task_drops`` and stays dropped even if picked up again.
      A ring knocked off its peg without being grasped that comes to rest away from the pegs
      is dropped too. A ring that comes to rest around a left-side peg (put back), or high on a
      right-side peg, is in play again.

    Done when every ring is placed or dropped. The rings may be touched; the table, the board,
    the pegs and the tissue pad are collisions.

    Counters: ``task_rings_total``, ``task_rings_lifted``, ``task_rings_placed`` (rings placed
    now), ``task_drops``.
    """

    name = "peg-transfer"
    goal = (
        "Lift each ring off its left-side peg, carry it across and place it over a right-side "
        "peg without dropping it."
    )
    time_limit_s = 300.0
    force_limit_n = 4.0

    def _peg_tops(self, idx: Sequence[int]) -> list[Vec3]:
        pegs = peg_positions()
        return [(pegs[i][0], pegs[i][1], BOARD_TOP_Z + PEG_HEIGHT_M) for i in idx]

    def _points(self) -> dict[str, Sequence[Sequence[float]]]:
        return {
            "rings": self.layout.ring_start_positions.tolist(),
            "pegs_from": self._peg_tops(self.layout.ring_pegs),
            "pegs_to": self._peg_tops(range(6, 12)),
        }

    def _values(self) -> dict[str, float]:
        return {
            "peg_radius_m": PEG_RADIUS_M,
            "peg_height_m": PEG_HEIGHT_M,
            "ring_outer_m": RING_OUTER_M,
            "place_tolerance_m": PLACE_TOLERANCE_M,
        }

    def _allowed_bodies(self, world: SimWorld) -> set[int]:
        return set(world.scene.rings)

    def _reset_task(self) -> None:
        n = len(self.layout.ring_pegs)
        world = self._world
        self._rings: tuple[int, ...] = () if world is None else world.scene.rings
        self._index = {b: i for i, b in enumerate(self._rings)}
        self._state = [_IDLE] * n
        self._lifted = [False] * n
        self._released_at = [0.0] * n
        self._calm = [0] * n
        pegs = peg_positions()
        self._pegs_left = pegs[:6]
        self._pegs_right = pegs[6:]

    def _ring_pos(self, i: int) -> tuple[float, float, float]:
        w = self._world
        assert w is not None
        return p.getBasePositionAndOrientation(self._rings[i], physicsClientId=w.client)[0]

    def _at_rest(self, i: int) -> bool:
        w = self._world
        assert w is not None
        v, om = p.getBaseVelocity(self._rings[i], physicsClientId=w.client)
        return (
            v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < REST_SPEED_M_S * REST_SPEED_M_S
            and om[0] * om[0] + om[1] * om[1] + om[2] * om[2] < REST_SPIN_RAD_S * REST_SPIN_RAD_S
        )

    @staticmethod
    def _around(pos: Sequence[float], pegs: Sequence[tuple[float, float]]) -> bool:
        r2 = PLACE_TOLERANCE_M * PLACE_TOLERANCE_M
        return any((pos[0] - px) ** 2 + (pos[1] - py) ** 2 <= r2 for px, py in pegs)

    def _classify(self, pos: Sequence[float]) -> int:
        """Where a ring at rest is: placed, in play (around another peg) or dropped."""
        if self._around(pos, self._pegs_right):
            return _PLACED if pos[2] < PLACE_MAX_Z else _IDLE
        if self._around(pos, self._pegs_left):
            return _IDLE
        return _DROPPED

    def _update_task(
        self, world: SimWorld, t_s: float, x: float, y: float, z: float, force: float, jaw: float
    ) -> None:
        held = self._index.get(world.grasped_ring, -1)  # type: ignore[arg-type]
        state = self._state
        tick = self._ticks
        for i, s in enumerate(state):
            if s == _DROPPED:
                continue
            if i == held:
                if s != _HELD:
                    state[i] = _HELD
                if (
                    not self._lifted[i]
                    and tick % RING_CHECK_TICKS == 0
                    and self._ring_pos(i)[2] - RING_HEIGHT_M / 2 > LIFT_CLEAR_Z
                ):
                    self._lifted[i] = True
                continue
            if s == _HELD:  # released this tick
                state[i] = _FALLING
                self._released_at[i] = t_s
                self._calm[i] = 0
            elif s == _FALLING:
                if tick % RING_CHECK_TICKS != 0:
                    continue
                since = t_s - self._released_at[i]
                self._calm[i] = self._calm[i] + 1 if self._at_rest(i) else 0
                if (self._calm[i] >= REST_CHECKS and since >= REST_MIN_S) or (
                    since >= REST_TIMEOUT_S
                ):
                    state[i] = self._classify(self._ring_pos(i))
            elif tick % (10 * RING_CHECK_TICKS) == i:
                # resting (in play or placed): knocked away from its peg?
                pos = self._ring_pos(i)
                where = self._classify(pos)
                if where != s:
                    state[i] = _FALLING
                    self._released_at[i] = t_s
                    self._calm[i] = 0

    def _complete(self) -> bool:
        return all(s in (_PLACED, _DROPPED) for s in self._state)

    def _task_counters(self) -> dict[str, int]:
        return {
            "task_rings_total": len(self._state),
            "task_rings_lifted": sum(self._lifted),
            "task_rings_placed": self._state.count(_PLACED),
            "task_drops": self._state.count(_DROPPED),
        }


# ---------------------------------------------------------------------------------------------
# palpation
# ---------------------------------------------------------------------------------------------
class PalpationTask(Task):
    """Find a hard inclusion hidden in the tissue pad by palpation, and mark it.

    The inclusion is a static box (:data:`INCLUSION_SIZE_M`, 10 x 10 x 6 mm, no visual shape)
    inside the pad, its top :data:`INCLUSION_DEPTH_M` (1 mm) under the pad's surface, with 8x
    the pad's contact stiffness: pressing on the pad gives ~1 N per mm of indentation; over the
    inclusion, ~9 N per mm more once the tip is 1 mm in (2 mm deep: ~2 N on plain tissue, ~10 N
    over the inclusion). Its centre is drawn from the seed, uniformly inside the search area
    (``points["search_area"]``: two opposite corners at the pad's top) inset by its half-size;
    it is the secret, not in the task info.

    Marking: the trainee presses on the spot and *closes the jaw while pressing*: a mark is the
    measured jaw opening going below ``mark_jaw_rad`` (0.15 rad) while the instrument pushes
    with more than ``mark_force_n`` (0.3 N). Closing the jaw in the air does not mark, and after
    any closing the jaw must open above 0.25 rad before it can mark again (so one may palpate
    with the jaw closed). Each mark counts (``task_marks``); its error is the x, y distance of
    the tool tip from the inclusion's centre (``task_mark_error_um``, the last mark's, 0 before
    any mark). The first mark within ``found_radius_m`` (8 mm) finds it (``task_found``) and the
    task is done. The pad (and the inclusion) may be touched; the table, the board, the pegs and
    the rings are collisions.

    Counters: ``task_marks``, ``task_found``, ``task_mark_error_um``.
    """

    name = "palpation"
    goal = (
        "Feel the tissue inside the search area for the hidden hard lump, then mark it: press on "
        "it and close the jaw while pressing."
    )
    time_limit_s = 180.0
    force_limit_n = 3.0

    def __init__(self, seed: int = 0, home: Sequence[float] = HOME_TIP) -> None:
        x0 = PAD_CENTER[0] - PAD_SIZE[0] / 2 + SEARCH_MARGIN_M
        x1 = PAD_CENTER[0] + PAD_SIZE[0] / 2 - SEARCH_MARGIN_M
        y0 = PAD_CENTER[1] - PAD_SIZE[1] / 2 + SEARCH_MARGIN_M
        y1 = PAD_CENTER[1] + PAD_SIZE[1] / 2 - SEARCH_MARGIN_M
        self.search_area: tuple[Vec3, Vec3] = ((x0, y0, PAD_TOP_Z), (x1, y1, PAD_TOP_Z))
        rng = np.random.default_rng((int(seed), 0x9A1))
        hx, hy = INCLUSION_SIZE_M[0] / 2, INCLUSION_SIZE_M[1] / 2
        cx, cy = rng.uniform((x0 + hx, y0 + hy), (x1 - hx, y1 - hy))
        self._inclusion_center: Vec3 = (
            float(cx),
            float(cy),
            PAD_TOP_Z - INCLUSION_DEPTH_M - INCLUSION_SIZE_M[2] / 2,
        )
        self.inclusion_body = -1
        super().__init__(seed, home)

    @property
    def inclusion_center(self) -> Vec3:
        """The inclusion's centre (m): the secret (for tests and the arm-side log only)."""
        return self._inclusion_center

    def _points(self) -> dict[str, Sequence[Sequence[float]]]:
        return {
            "search_area": self.search_area,
            "pad_top": ((PAD_CENTER[0], PAD_CENTER[1], PAD_TOP_Z),),
        }

    def _values(self) -> dict[str, float]:
        return {
            "found_radius_m": FOUND_RADIUS_M,
            "mark_jaw_rad": MARK_JAW_RAD,
            "mark_force_n": MARK_FORCE_N,
        }

    def _build(self, world: SimWorld) -> None:
        c = world.client
        half = [s / 2 for s in INCLUSION_SIZE_M]
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=c)
        body = p.createMultiBody(0.0, col, -1, self._inclusion_center, physicsClientId=c)
        p.changeDynamics(
            body,
            -1,
            contactStiffness=INCLUSION_STIFFNESS_N_M,
            contactDamping=INCLUSION_DAMPING_N_S_M,
            lateralFriction=0.6,
            physicsClientId=c,
        )
        self.inclusion_body = body

    def _allowed_bodies(self, world: SimWorld) -> set[int]:
        return {world.scene.pad, self.inclusion_body}

    def _reset_task(self) -> None:
        self._marks = 0
        self._found = False
        self._error_um = 0
        self._armed = True

    def _update_task(
        self, world: SimWorld, t_s: float, x: float, y: float, z: float, force: float, jaw: float
    ) -> None:
        if jaw > MARK_REARM_RAD:
            self._armed = True
        elif jaw < MARK_JAW_RAD and self._armed:
            self._armed = False
            if force > MARK_FORCE_N:
                cx, cy, _ = self._inclusion_center
                err = math.hypot(x - cx, y - cy)
                self._marks += 1
                self._error_um = round(err * 1e6)
                if err <= FOUND_RADIUS_M:
                    self._found = True

    def _complete(self) -> bool:
        return self._found

    def _task_counters(self) -> dict[str, int]:
        return {
            "task_marks": self._marks,
            "task_found": int(self._found),
            "task_mark_error_um": self._error_um,
        }


TASKS: dict[str, type[Task]] = {
    ReachTask.name: ReachTask,
    PegTransferTask.name: PegTransferTask,
    PalpationTask.name: PalpationTask,
}
"""The training tasks by name."""


def make_task(name: str, seed: int = 0, home: Sequence[float] = HOME_TIP) -> Task:
    """The task called ``name`` for the scene of ``seed``; ValueError listing the names."""
    cls = TASKS.get(name)
    if cls is None:
        raise ValueError(f"no training task named {name!r}; the tasks are: {', '.join(TASKS)}")
    return cls(seed, home)


__all__ = [
    "TASKS",
    "PalpationTask",
    "PegTransferTask",
    "ReachTask",
    "Task",
    "make_task",
]
