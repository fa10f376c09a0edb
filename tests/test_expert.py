"""The scripted expert surgeon (master_console.expert): the operator model on a simulated loop in
process (a perfect arm behind a delayed link, at a coarse rate), and the real console on the
simulated arm's training tasks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from master_console.config import INPUTS, ConsoleSettings, filter_kind, make_device
from master_console.expert import SKILLS, ScriptedExpert, Skill
from network.link import ReceivedState
from network.protocol import JointState, State, TaskInfo

ROOT = Path(__file__).resolve().parent.parent
MS = 1_000_000
HOME = (0.0, 0.0, -0.1)
PAD_TOP = -0.18
EXACT = replace(
    SKILLS["expert"],
    name="exact",
    primary_gain=1.0,
    gain_sd=0.0,
    noise_fraction=0.0,
    noise_floor_m=0.0,
)
"""An operator without motor noise: every movement lands where it was meant to."""


def make_state(
    seq: int,
    t_ns: int,
    tool: Sequence[float],
    ack_send_ns: int = 0,
    force: Sequence[float] = (0.0, 0.0, 0.0),
    jaw: float = 0.5,
    counters: dict[str, int] | None = None,
    flags: tuple[str, ...] = (),
) -> State:
    pose = (float(tool[0]), float(tool[1]), float(tool[2]), 0.0, 0.0, 0.0, 1.0)
    return State(
        seq=seq,
        send_ns=t_ns,
        ack_seq=seq if ack_send_ns else 0,
        ack_send_ns=ack_send_ns,
        ack_rx_ns=t_ns if ack_send_ns else 0,
        operating_state="ENABLED",
        is_homed=True,
        is_busy=False,
        measured_cp=pose,
        setpoint_cp=pose,
        measured_js=JointState(),
        measured_cf=(float(force[0]), float(force[1]), float(force[2]), 0.0, 0.0, 0.0),
        measured_jaw=jaw,
        safety_flags=flags,
        counters=counters or {},
    )


class FakeLink:
    """What the expert reads of a ConsoleLink: ``latest_state``."""

    def __init__(self) -> None:
        self.latest_state: ReceivedState | None = None


# ---------------------------------------------------------------------------------------------
# An in-process loop: console (clutch + scaling) -> delayed link -> perfect arm -> delayed state


@dataclass
class World:
    """What the fake arm simulates besides following the command: a pad, task counters."""

    pad_stiffness_n_m: float = 1000.0

    def force(self, tool: np.ndarray, jaw: float) -> np.ndarray:
        return np.zeros(3)

    def update(self, t_s: float, tool: np.ndarray, jaw: float) -> None:
        pass

    def counters(self) -> dict[str, int]:
        return {}


@dataclass
class PadWorld(World):
    """A tissue pad (top at PAD_TOP) with an optional stiff lump, and reach/palpation counters."""

    targets: list[tuple[float, float]] = field(default_factory=list)
    touch_radius_m: float = 0.005
    lump: tuple[float, float] | None = None
    touched: set[int] = field(default_factory=set)
    marks: int = 0
    found: int = 0
    _armed: bool = True

    def force(self, tool: np.ndarray, jaw: float) -> np.ndarray:
        indent = PAD_TOP - float(tool[2])
        f = self.pad_stiffness_n_m * max(0.0, indent)
        lump = self.lump
        if lump is not None and indent > 0.001 and np.abs(tool[:2] - lump).max() <= 0.006:
            f += 9.0 * self.pad_stiffness_n_m * (indent - 0.001)
        return np.array([0.0, 0.0, f])

    def update(self, t_s: float, tool: np.ndarray, jaw: float) -> None:
        f = float(self.force(tool, jaw)[2])
        if f > 0.2:
            for i, (x, y) in enumerate(self.targets):
                if math.hypot(tool[0] - x, tool[1] - y) <= self.touch_radius_m:
                    self.touched.add(i)
        if jaw > 0.25:
            self._armed = True
        elif jaw < 0.15 and self._armed:
            self._armed = False
            if f > 0.3:
                self.marks += 1
                if self.lump is not None and math.dist(tool[:2], self.lump) <= 0.008:
                    self.found = 1

    def counters(self) -> dict[str, int]:
        done = (bool(self.targets) and len(self.touched) == len(self.targets)) or self.found
        return {
            "task_done": int(done),
            "task_targets_touched": len(self.touched),
            "task_marks": self.marks,
            "task_found": self.found,
        }


@dataclass
class Trace:
    t_s: list[float] = field(default_factory=list)
    tool: list[np.ndarray] = field(default_factory=list)
    hand: list[np.ndarray] = field(default_factory=list)
    clutch: list[bool] = field(default_factory=list)
    done_s: float | None = None


def run_loop(
    expert: ScriptedExpert,
    delay_s: float,
    seconds: float,
    world: World | None = None,
    dt_s: float = 0.002,
    home: Sequence[float] = HOME,
    until: Callable[[ScriptedExpert], bool] = lambda e: e.finished,
    drop_at_s: float | None = None,
) -> Trace:
    """Step the expert, a console (clutch + scaling, as ConsoleLoop) and an arm that follows
    every engaged command exactly, with half the round trip ``delay_s`` each way.
    ``drop_at_s``: then the console stops passing motion on until the operator releases the
    clutch (as after a lost link)."""
    world = world or World()
    link = FakeLink()
    expert.attach(link, getattr(expert, "info", None))
    scale = expert.scale
    dt = round(dt_s * 1e9)
    half = round(delay_s * 1e9 / 2)
    t0 = 1_000 * MS
    arm = np.array(home, dtype=float)
    arm_jaw = 0.5
    ack = 0
    commands: deque[tuple[int, int, np.ndarray, float, bool]] = deque()
    states: deque[tuple[int, State]] = deque()
    armed = engaged = need_release = arm_engaged = False
    m0 = a0 = np.zeros(3)
    trace = Trace()
    for k in range(round(seconds / dt_s)):
        t = t0 + k * dt
        s = expert.sample_at(t)
        # the console
        latest = link.latest_state
        if drop_at_s is not None and t - t0 >= drop_at_s * 1e9:
            drop_at_s, need_release = None, True
        if latest is not None:
            setpoint = np.array(latest.state.setpoint_cp[:3])
            want = s.buttons.clutch and s.buttons.operator_present and armed
            if need_release:
                need_release = s.buttons.clutch
                want = False
            if want and not engaged:
                m0, a0 = np.array(s.pose[:3]), setpoint
            engaged = want
            if not engaged:
                armed = True
            target = a0 + scale * (np.array(s.pose[:3]) - m0) if engaged else setpoint
            commands.append((t + half, t, target, s.jaw, engaged))
        # the arm
        while commands and commands[0][0] <= t:
            _, sent, target, jaw, eng = commands.popleft()
            arm_engaged = eng
            if eng:
                arm, arm_jaw, ack = target, jaw, sent
        world.update((t - t0) / 1e9, arm, arm_jaw)
        st = make_state(
            k + 1,
            t,
            arm,
            ack,
            world.force(arm, arm_jaw),
            arm_jaw,
            counters=world.counters(),
            flags=() if arm_engaged else ("not_engaged",),
        )
        states.append((t + half, st))
        while states and states[0][0] <= t:
            link.latest_state = ReceivedState(states.popleft()[1], t)
        trace.t_s.append((t - t0) / 1e9)
        trace.tool.append(arm.copy())
        trace.hand.append(expert.hand_at(t).copy())
        trace.clutch.append(s.buttons.clutch)
        if until(expert):
            trace.done_s = (t - t0) / 1e9
            break
    return trace


# ---------------------------------------------------------------------------------------------
# Unit tests on the operator model


def test_config_knows_the_expert() -> None:
    assert "expert" in INPUTS
    s = ConsoleSettings().replace("input", device="expert").replace("console", scale=0.25)
    dev = make_device(s)
    assert isinstance(dev, ScriptedExpert)
    assert dev.name == "expert" and dev.scale == 0.25
    assert filter_kind(s) == "default"  # a pose device: the tremor filter applies


def test_does_not_engage_before_presenting_a_released_clutch() -> None:
    e = ScriptedExpert(seed=1)
    link = FakeLink()
    e.attach(link, None)
    t0 = 5_000 * MS
    samples = [e.sample_at(t0 + i * MS) for i in range(500)]
    # nothing seen yet: present, clutch out, whatever the time
    assert all(s.buttons.operator_present and not s.buttons.clutch for s in samples)
    link.latest_state = ReceivedState(make_state(1, t0, HOME), t0 + 500 * MS)
    first_seen = t0 + 500 * MS
    clutch = []
    for i in range(500, 2000):
        s = e.sample_at(t0 + i * MS)
        clutch.append((s.t_ns, s.buttons.clutch))
    engaged_at = next(t for t, c in clutch if c)
    # it saw the arm (after its reaction time), then kept the clutch out >= 0.3 s, then engaged
    assert engaged_at - first_seen >= (e.skill.reaction_s + e.skill.engage_after_s) * 1e9 - 20 * MS
    assert all(c for t, c in clutch if t >= engaged_at)  # and stays engaged while still


@pytest.mark.parametrize("scale", [0.2, 0.5])
def test_master_moves_toward_the_goal_with_the_inverse_scale(scale: float) -> None:
    e = ScriptedExpert(seed=2, skill=EXACT, scale=scale)
    link = FakeLink()
    tool = np.array([0.01, -0.02, -0.15])
    goal = tool + np.array([0.006, -0.004, 0.002])
    e.visit([goal], tol_m=0.0005)
    e.attach(link, None)
    t0 = 1_000 * MS
    hands, clutch = [], []
    for i in range(3000):
        t = t0 + i * MS
        # the arm never moves (the view always shows the tool at ``tool``), acks are current
        link.latest_state = ReceivedState(make_state(i + 1, t, tool, ack_send_ns=t), t)
        clutch.append(e.sample_at(t).buttons.clutch)
        hands.append(e.hand_at(t).copy())
    hands = np.array(hands)
    # the movements made with the clutch engaged: each one is (goal - tool) / scale, since the
    # arm did not follow and the expert saw the same error every time
    moving = np.r_[False, np.linalg.norm(np.diff(hands, axis=0), axis=1) > 0]
    edges = np.flatnonzero(np.diff(moving.astype(int)))
    starts, stops = edges[::2], edges[1::2]
    deltas = [hands[b] - hands[a] for a, b in zip(starts, stops, strict=False) if clutch[a + 1]]
    assert len(deltas) >= 2, "the expert did not look and move again"
    for d in deltas:
        np.testing.assert_allclose(d, (goal - tool) / scale, atol=1e-9)


def _reach_time(delay_s: float, seed: int = 3) -> tuple[float, Trace, ScriptedExpert]:
    e = ScriptedExpert(seed=seed)
    goal = np.array([0.025, -0.02, -0.11])
    e.visit([goal], tol_m=0.001)
    trace = run_loop(e, delay_s, seconds=40.0, dt_s=0.002)
    assert trace.done_s is not None, f"no convergence with {delay_s * 1e3:.0f} ms: {e.events}"
    tool = np.array(trace.tool)
    assert np.linalg.norm(tool[-1] - goal) <= 0.001 + 1e-9
    # no overshoot, no oscillation: progress along the reach never passes the goal by more than
    # the tolerance and never goes back by more than tremor-sized wiggles
    d = goal - np.array(HOME)
    u = d / np.linalg.norm(d)
    progress = (tool - np.array(HOME)) @ u
    assert progress.max() <= np.linalg.norm(d) + 0.001
    assert np.all(np.diff(progress) >= -2e-4)
    return trace.done_s, trace, e


def test_move_and_wait_converges_and_delay_costs_time() -> None:
    times = {}
    for d in (0.0, 0.2, 0.8):
        times[d], trace, e = _reach_time(d)
        # move and wait: every movement after the first starts only after the view could
        # show where the previous one ended (round trip + reaction time)
        hand = np.array(trace.hand)
        t = np.array(trace.t_s)
        moving = np.linalg.norm(np.diff(hand, axis=0), axis=1) > 1e-9
        clutch = np.array(trace.clutch[1:])
        starts = np.flatnonzero(moving[1:] & ~moving[:-1] & clutch[1:]) + 1
        stops = np.flatnonzero(~moving[1:] & moving[:-1] & clutch[1:]) + 1
        for s in starts[1:]:
            prev_stop = stops[stops < s].max()
            gap = t[s] - t[prev_stop]
            assert gap >= d + e.skill.reaction_s - 0.01, (d, gap)
    assert times[0.0] < times[0.2] < times[0.8], times
    assert times[0.8] - times[0.0] > 1.0, times  # each look at the result costs a round trip


def test_long_reach_reclutches_without_jumps() -> None:
    e = ScriptedExpert(seed=4)
    goal = np.array([0.03, -0.05, -0.172])  # 8 cm: 40 cm of hand at 5:1
    e.visit([goal], tol_m=0.001)
    trace = run_loop(e, 0.1, seconds=60.0)
    assert trace.done_s is not None, e.events
    assert e.clutches >= 1
    hand = np.array(trace.hand)
    assert np.linalg.norm(hand, axis=1).max() <= e.skill.workspace_radius_m + 0.005
    tool = np.array(trace.tool)
    step = np.linalg.norm(np.diff(tool, axis=0), axis=1)
    assert step.max() < 0.2 * 0.002 * 1.01  # never faster than the arm's 0.2 m/s (no jumps)
    assert np.linalg.norm(tool[-1] - goal) <= 0.001 + 1e-9


@pytest.mark.parametrize("delay_s", [0.0, 0.4])
def test_reclutches_when_the_console_stops_following(delay_s: float) -> None:
    """After a lost link the console passes no motion on until the surgeon releases the clutch:
    the expert sees the instrument stop following, re-clutches and still gets there."""
    e = ScriptedExpert(seed=8)
    goal = np.array([0.012, -0.006, -0.105])  # no re-clutch needed on the way
    e.visit([goal], tol_m=0.001)
    trace = run_loop(e, delay_s, seconds=40.0, drop_at_s=1.0 + delay_s)
    assert trace.done_s is not None, e.events
    assert any("does not follow" in text for _, text in e.events), e.events
    assert np.linalg.norm(trace.tool[-1] - goal) <= 0.001 + 1e-9
    step = np.linalg.norm(np.diff(np.array(trace.tool), axis=0), axis=1)
    assert step.max() < 0.2 * 0.002 * 1.01  # and the arm never jumped


def test_reach_script_touches_every_target_on_a_fake_pad() -> None:
    targets = [(0.03, -0.05), (-0.02, -0.06), (0.0, -0.04)]
    info = TaskInfo(
        name="reach",
        goal="touch them",
        points={"targets": tuple((x, y, PAD_TOP) for x, y in targets), "home": (HOME,)},
        values={"time_limit_s": 120.0, "touch_radius_m": 0.005},
    )
    e = ScriptedExpert(seed=5)
    e.info = info
    world = PadWorld(targets=targets)
    trace = run_loop(e, 0.2, seconds=90.0, world=world)
    assert trace.done_s is not None, e.events
    assert world.touched == {0, 1, 2}, e.events
    assert sum(" touched in " in text for _, text in e.events) == 3


def test_palpation_script_finds_the_lump_on_a_fake_pad() -> None:
    lump = (0.021, -0.062)
    info = TaskInfo(
        name="palpation",
        goal="find it",
        points={
            "search_area": ((-0.05, -0.075, PAD_TOP), (0.05, -0.035, PAD_TOP)),
            "pad_top": ((0.0, -0.055, PAD_TOP),),
            "home": (HOME,),
        },
        values={"time_limit_s": 180.0, "found_radius_m": 0.008},
    )
    e = ScriptedExpert(seed=6)
    e.info = info
    world = PadWorld(lump=lump)
    trace = run_loop(e, 0.0, seconds=170.0, world=world)
    assert trace.done_s is not None, e.events
    assert world.found == 1, e.events
    assert world.marks <= 2


def test_unknown_task_holds_still_and_finishes() -> None:
    e = ScriptedExpert(seed=7)
    e.info = TaskInfo(name="suturing", goal="?")
    trace = run_loop(e, 0.0, seconds=5.0)
    assert trace.done_s is not None and e.finished
    assert np.ptp(np.array(trace.tool), axis=0).max() < 1e-4


def test_skill_presets_and_validation() -> None:
    assert isinstance(SKILLS["novice"], Skill)
    with pytest.raises(ValueError, match="skill"):
        ScriptedExpert(skill="grandmaster")
    with pytest.raises(ValueError, match="scale"):
        ScriptedExpert(scale=0.0)


# ---------------------------------------------------------------------------------------------
# The real console on the simulated arm (slow)


def _run_console(tmp_path: Path, task: str, delay_ms: float = 0.0, seconds: float = 90.0) -> Any:
    out = tmp_path / f"{task}-{delay_ms:g}.json"
    cmd = [
        sys.executable,
        "-m",
        "master_console.cli",
        "--sim",
        "--task",
        task,
        "--input",
        "expert",
        "--seconds",
        str(seconds),
        "--display",
        "off",
        "--json",
        str(out),
        "--history",
        str(tmp_path / "h.sqlite"),
        "--report-dir",
        str(tmp_path / "reports"),
        "--record",
        str(tmp_path / f"{task}-{delay_ms:g}.rec"),
    ]
    if delay_ms:
        cmd += ["--delay-ms", str(delay_ms)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60.0)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    return summary, proc.stdout + proc.stderr, wall


def _completion_s(summary: dict[str, Any]) -> float:
    """The scored completion time, else the arm's own task clock."""
    t = summary["task"]["score"].get("metrics", {}).get("completion_time_s")
    if t is None or t != t:
        t = summary["arm_counters"]["task_elapsed_ms"] / 1e3
    return float(t)


@pytest.mark.slow
def test_expert_completes_reach_with_and_without_delay(tmp_path: Path) -> None:
    """The real console and simulated arm (~70 s): the expert completes the reach task, and a
    400 ms round trip costs it time (each look at the result waits for the round trip)."""
    fast, log0, _ = _run_console(tmp_path, "reach", seconds=45.0)
    assert fast["task"]["completed"], log0[-4000:]
    assert fast["arm_counters"]["task_collisions"] == 0
    slow, log1, _ = _run_console(tmp_path, "reach", delay_ms=400.0, seconds=60.0)
    assert slow["task"]["completed"], log1[-4000:]
    assert _completion_s(slow) > _completion_s(fast) + 2.0, (
        _completion_s(fast),
        _completion_s(slow),
    )


LONG = pytest.mark.skipif(
    not os.environ.get("TELESURGERY_LONG_TESTS"),
    reason="a minute or two each: set TELESURGERY_LONG_TESTS=1",
)


@pytest.mark.slow
@LONG
def test_expert_completes_peg_transfer(tmp_path: Path) -> None:
    summary, out, _ = _run_console(tmp_path, "peg-transfer", seconds=150.0)
    assert summary["task"]["completed"], out[-4000:]
    c = summary["arm_counters"]
    assert c["task_rings_placed"] >= 2 and c["task_drops"] <= 1, c


@pytest.mark.slow
@LONG
def test_expert_completes_palpation(tmp_path: Path) -> None:
    summary, out, _ = _run_console(tmp_path, "palpation", seconds=170.0)
    assert summary["task"]["completed"], out[-4000:]
    assert summary["arm_counters"]["task_found"] == 1
