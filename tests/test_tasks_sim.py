"""Training tasks on the simulated arm (sim.tasks): known answers, driving SimArm directly.

Reach (touch the targets, hovering does not count, hitting a peg is a collision), peg transfer
(placed, dropped, done), palpation (the hidden inclusion is stiffer, marks, found, excess force),
the task info on the wire, the counters' names and types, the per-tick cost, and the real
``slave-arm --task`` process seen from a console.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import msgspec
import numpy as np
import pytest

from sim.arm import SimArm
from sim.scene import (
    BOARD_TOP_Z,
    PAD_CENTER,
    PAD_SIZE,
    PAD_TOP_Z,
    PEG_HEIGHT_M,
    peg_positions,
    ring_wall_grasp_pose,
)
from sim.tasks import TASKS, PalpationTask, make_task
from slave_arm.driver import ArmDescription

DOWN = (0.0, 0.0, 0.0, 1.0)
SEED = 0
ARM_CMD = (sys.executable, "-m", "slave_arm.cli")


@pytest.fixture
def make_arm() -> Iterator:
    arms: list[SimArm] = []

    def make(task: str, seed: int = SEED) -> SimArm:
        a = SimArm(seed=seed, task=task)
        a.connect()
        a.enable()
        arms.append(a)
        return a

    yield make
    for a in arms:
        a.disconnect()


def _move(a: SimArm, xyz, seconds: float, orn=DOWN) -> None:
    """A smooth straight-line move of the tip to ``xyz`` (simulated time)."""
    start = a.setpoint_cp().pose[:3]
    goal = np.asarray(xyz, dtype=np.float64)
    n = max(1, int(seconds * 1000))
    for i in range(n):
        s = (i + 1) / n
        s = s * s * (3 - 2 * s)
        a.servo_cp([*((1 - s) * start + s * goal), *orn])
        a.update()


def _hold(a: SimArm, seconds: float) -> None:
    for _ in range(int(seconds * 1000)):
        a.update()


def _force(a: SimArm) -> float:
    return float(np.linalg.norm(a.measured_cf().wrench[:3]))


def _check_counters(c: dict[str, int]) -> None:
    assert c, "no counters"
    for k, v in c.items():
        assert k.startswith("task_"), k
        assert type(v) is int and v >= 0, (k, v)


# ---------------------------------------------------------------------------------------------
# Names, info, wire
# ---------------------------------------------------------------------------------------------
def test_make_task_names_and_error() -> None:
    assert list(TASKS) == ["reach", "peg-transfer", "palpation"]
    assert SimArm.task_names == ("reach", "peg-transfer", "palpation")
    with pytest.raises(ValueError, match=r"'nope'.*reach, peg-transfer, palpation"):
        make_task("nope")
    with pytest.raises(ValueError, match="reach, peg-transfer, palpation"):
        SimArm(task="nope")


@pytest.mark.parametrize("name", list(TASKS))
def test_task_info_round_trips_and_counters_are_task_ints(name: str) -> None:
    arm = SimArm(seed=3, task=name)
    info = arm.description.task
    assert info is not None and info.name == name and info.goal
    assert np.allclose(info.points["home"], [(0.0, 0.0, -0.1)])
    assert {"time_limit_s", "force_limit_n"} <= set(info.values)
    expected = {
        "reach": ({"targets", "home"}, {"touch_radius_m"}, (120.0, 3.0)),
        "peg-transfer": (
            {"rings", "pegs_from", "pegs_to", "home"},
            {"peg_radius_m", "place_tolerance_m"},
            (300.0, 4.0),
        ),
        "palpation": ({"search_area", "pad_top", "home"}, {"found_radius_m"}, (180.0, 3.0)),
    }[name]
    assert set(info.points) == expected[0]
    assert expected[1] <= set(info.values)
    assert (info.values["time_limit_s"], info.values["force_limit_n"]) == expected[2]
    # the description, task included, through msgpack and back
    wire = msgspec.msgpack.encode(arm.description)
    back = msgspec.msgpack.decode(wire, type=ArmDescription)
    assert back == arm.description and back.task == info
    # counters: before connect, and after
    _check_counters(dict(arm.task.counters()))
    arm.connect()
    try:
        for _ in range(20):
            arm.update()
        c = dict(arm.task_counters())
        _check_counters(c)
        assert c["task_started"] == 0 and c["task_done"] == 0 and c["task_elapsed_ms"] == 0
    finally:
        arm.disconnect()


def test_no_task_changes_nothing() -> None:
    arm = SimArm()
    assert arm.description.task is None and arm.task is None
    assert b"task" not in msgspec.msgpack.encode(arm.description)  # omitted on the wire
    arm.connect()
    try:
        arm.update()
        assert arm.task_counters() == {}
    finally:
        arm.disconnect()


def test_layout_matches_the_world_and_the_secret_is_not_in_the_info() -> None:
    arm = SimArm(seed=5, task="peg-transfer")
    arm.connect()
    try:
        info = arm.description.task
        world = arm.world
        assert np.allclose(
            info.points["rings"], [pose[:3] for pose in world.scene.ring_start_poses]
        )
        pegs = peg_positions()
        assert np.allclose(
            [t[:2] for t in info.points["pegs_from"]], [pegs[i] for i in world.scene.ring_pegs]
        )
        assert np.allclose([t[:2] for t in info.points["pegs_to"]], pegs[6:])
        assert np.allclose([t[2] for t in info.points["pegs_to"]], BOARD_TOP_Z + PEG_HEIGHT_M)
    finally:
        arm.disconnect()
    reach = make_task("reach", seed=5)
    assert np.allclose(
        reach.info().points["targets"], SimArm(seed=5, task="reach").task.layout.target_positions
    )
    palp = make_task("palpation", seed=5)
    assert isinstance(palp, PalpationTask)
    cx, cy, _ = palp.inclusion_center
    (x0, y0, z0), (x1, y1, z1) = palp.info().points["search_area"]
    assert x0 < cx < x1 and y0 < cy < y1 and z0 == z1 == pytest.approx(PAD_TOP_Z)
    wire = msgspec.msgpack.encode(palp.info())
    for v in (cx, cy):
        assert msgspec.msgpack.encode(v) not in wire
    # seeded: the same seed hides it in the same place, another seed elsewhere
    assert make_task("palpation", seed=5).inclusion_center == palp.inclusion_center
    assert make_task("palpation", seed=6).inclusion_center != palp.inclusion_center


# ---------------------------------------------------------------------------------------------
# Reach
# ---------------------------------------------------------------------------------------------
def test_reach_touch_each_target_hover_does_not_count(make_arm) -> None:
    arm = make_arm("reach")
    task = arm.task
    targets = task.layout.target_positions
    arm.servo_jaw(0.0)
    _hold(arm, 0.05)
    assert arm.task_counters()["task_started"] == 0  # the jaw closing is not a motion
    for i, (x, y, _) in enumerate(targets):
        _move(arm, (x, y, PAD_TOP_Z + 0.005), 0.4)
        _move(arm, (x, y, PAD_TOP_Z + 0.003), 0.1)  # hovering, 3 mm above: no contact
        _hold(arm, 0.1)
        c = arm.task_counters()
        assert c["task_started"] == 1
        assert c["task_targets_touched"] == i, "hovering touched a target"
        _move(arm, (x, y, PAD_TOP_Z - 0.0008), 0.15)  # a light press: ~0.8 N
        _hold(arm, 0.05)
        c = arm.task_counters()
        assert c["task_targets_touched"] == i + 1
        assert c["task_done"] == int(i + 1 == len(targets))
        _move(arm, (x, y, PAD_TOP_Z + 0.005), 0.15)
    c = dict(arm.task_counters())
    print(f"reach: {c}")
    _check_counters(c)
    assert c["task_targets_total"] == len(targets) == 4
    assert c["task_done"] == 1 and task.done
    assert c["task_collisions"] == 0 and c["task_excess_force_ms"] == 0
    assert 2000 < c["task_elapsed_ms"] < 4000
    _hold(arm, 0.2)
    assert arm.task_counters() == c, "counters are frozen once done"


def test_reach_hitting_a_peg_is_one_collision(make_arm) -> None:
    arm = make_arm("reach")
    arm.servo_jaw(0.0)
    px, py = peg_positions()[6]  # a right-side peg: no ring on it
    z = BOARD_TOP_Z + 0.012  # below the peg's top, above the board
    _move(arm, (px, py - 0.012, z + 0.03), 0.5)
    _move(arm, (px, py - 0.012, z), 0.3)
    _hold(arm, 0.1)
    assert arm.task_counters()["task_collisions"] == 0
    _move(arm, (px, py - 0.001, z), 0.3)  # into the peg
    _hold(arm, 0.2)
    assert arm.task_counters()["task_collisions"] == 1
    _move(arm, (px, py - 0.012, z), 0.3)
    _move(arm, (px, py - 0.012, z + 0.03), 0.3)
    c = arm.task_counters()
    assert c["task_collisions"] == 1, "one contact is one count"
    assert c["task_targets_touched"] == 0 and c["task_done"] == 0


# ---------------------------------------------------------------------------------------------
# Peg transfer
# ---------------------------------------------------------------------------------------------
CARRY_Z = BOARD_TOP_Z + PEG_HEIGHT_M + 0.012
"""Where the jaw tips carry a ring: its bottom ~10 mm above the peg tops."""


def _grasp_and_lift(arm: SimArm, ring: int) -> np.ndarray:
    """Grasp ``ring`` by its wall, lift it clear of its peg; returns tip - ring centre."""
    pose = arm.scene_state()["ring_poses"][ring]
    grasp = ring_wall_grasp_pose(pose)
    orn = grasp[3:]
    arm.servo_jaw(0.8)
    _move(arm, (*grasp[:2], grasp[2] + 0.03), 0.5, orn)
    _move(arm, grasp[:3], 0.4, orn)
    _hold(arm, 0.1)
    arm.servo_jaw(0.0)
    _hold(arm, 0.4)
    assert arm.scene_state()["held_ring"] == ring
    _move(arm, (*grasp[:2], CARRY_Z), 0.6, orn)
    _hold(arm, 0.05)
    return arm.measured_cp().pose[:3] - arm.scene_state()["ring_poses"][ring][:3]


def _carry_and_release(arm: SimArm, ring_xy, offset: np.ndarray, lower_m: float) -> None:
    """Carry the held ring's centre over ``ring_xy``, lower it by ``lower_m``, open the jaw."""
    orn = arm.setpoint_cp().pose[3:]
    tip = np.array([ring_xy[0], ring_xy[1], 0.0]) + offset
    _move(arm, (tip[0], tip[1], CARRY_Z), 0.8, orn)
    _move(arm, (tip[0], tip[1], CARRY_Z - lower_m), 0.4, orn)
    _hold(arm, 0.1)
    arm.servo_jaw(0.8)
    _hold(arm, 0.6)
    assert arm.scene_state()["held_ring"] is None
    _move(arm, (tip[0], tip[1], CARRY_Z + 0.01), 0.3, orn)


def test_peg_transfer_place_drop_and_done(make_arm) -> None:
    arm = make_arm("peg-transfer")
    task = arm.task
    # per-tick cost of the task's update, measured in place
    times: list[int] = []
    update = task.update

    def timed(*args) -> None:
        t0 = time.perf_counter_ns()
        update(*args)
        times.append(time.perf_counter_ns() - t0)

    task.update = timed  # type: ignore[method-assign]
    _hold(arm, 0.2)
    c = arm.task_counters()
    assert (c["task_rings_total"], c["task_rings_lifted"], c["task_rings_placed"]) == (3, 0, 0)
    right = peg_positions()[6:]

    # ring 0: lifted, carried across, lowered over a right-side peg and released: placed
    off = _grasp_and_lift(arm, 0)
    c = arm.task_counters()
    assert c["task_started"] == 1 and c["task_rings_lifted"] == 1 and c["task_drops"] == 0
    _carry_and_release(arm, right[3], off, lower_m=0.012)
    _hold(arm, 0.3)
    ring = arm.scene_state()["ring_poses"][0]
    assert np.hypot(*(ring[:2] - right[3])) < 0.003 and ring[2] < BOARD_TOP_Z + 0.004
    c = arm.task_counters()
    assert (c["task_rings_placed"], c["task_drops"], c["task_done"]) == (1, 0, 0), c

    # ring 1: released over the board between the pegs: a drop (out of play)
    off = _grasp_and_lift(arm, 1)
    assert arm.task_counters()["task_rings_lifted"] == 2
    _carry_and_release(arm, (0.0, 0.05), off, lower_m=0.012)
    _hold(arm, 0.3)
    c = arm.task_counters()
    assert (c["task_rings_placed"], c["task_drops"], c["task_done"]) == (1, 1, 0), c

    # ring 2: placed on another right-side peg: every ring placed or dropped -> done
    off = _grasp_and_lift(arm, 2)
    _carry_and_release(arm, right[4], off, lower_m=0.012)
    _hold(arm, 0.3)
    c = dict(arm.task_counters())
    print(f"peg transfer: {c}")
    _check_counters(c)
    assert c["task_rings_lifted"] == 3
    assert (c["task_rings_placed"], c["task_drops"], c["task_done"]) == (2, 1, 1), c
    assert c["task_collisions"] == 0, "the jaws never hit the board or a peg"
    assert c["task_excess_force_ms"] == 0
    assert 8000 < c["task_elapsed_ms"] < 20000
    t = np.array(times) / 1000.0
    print(
        f"task.update per tick ({len(t)} ticks): mean {t.mean():.1f} µs, "
        f"p50 {np.median(t):.1f} µs, p99 {np.percentile(t, 99):.1f} µs, max {t.max():.0f} µs"
    )
    assert len(t) > 10000
    assert t.mean() < 200.0  # a sanity check, not a benchmark (the target is well under 50)


# ---------------------------------------------------------------------------------------------
# Palpation
# ---------------------------------------------------------------------------------------------
def _press(arm: SimArm, x: float, y: float, depth_m: float, seconds: float = 0.2) -> float:
    _move(arm, (x, y, PAD_TOP_Z + 0.004), 0.4)
    _move(arm, (x, y, PAD_TOP_Z - depth_m), 0.3)
    _hold(arm, seconds)
    return _force(arm)


def _lift(arm: SimArm, x: float, y: float) -> None:
    _move(arm, (x, y, PAD_TOP_Z + 0.004), 0.2)


def test_palpation_inclusion_marks_found_and_excess_force(make_arm) -> None:
    arm = make_arm("palpation", seed=2)
    task = arm.task
    assert isinstance(task, PalpationTask)
    cx, cy, _ = task.inclusion_center
    # a point on the pad far from the inclusion (the mirror across the pad's centre line)
    fx = PAD_CENTER[0] - cx if abs(cx - PAD_CENTER[0]) > 0.02 else cx + 0.03
    fx = float(np.clip(fx, -PAD_SIZE[0] / 2 + 0.015, PAD_SIZE[0] / 2 - 0.015))
    fy = cy
    assert math.hypot(fx - cx, fy - cy) > 0.015

    # palpating with the jaw closed (closed in the air): the same depth, very different force
    arm.servo_jaw(0.0)
    _hold(arm, 0.3)
    plain = _press(arm, fx, fy, 0.002)
    _lift(arm, fx, fy)
    c0 = arm.task_counters()
    hard = _press(arm, cx, cy, 0.002, seconds=0.3)
    c1 = arm.task_counters()
    _lift(arm, cx, cy)
    print(f"palpation 2 mm deep: plain tissue {plain:.2f} N, over the inclusion {hard:.2f} N")
    assert 1.0 < plain < 3.0
    assert hard > 3.0 * plain
    # no marks: the jaw closed in the air, then pressed
    assert c1["task_marks"] == 0 and c1["task_found"] == 0
    # excess force (> 3 N) over the inclusion only: at least the 0.3 s hold
    assert c0["task_excess_force_ms"] == 0
    assert 300 <= c1["task_excess_force_ms"] < 800

    # a mark away from it: press with the jaw open, close it while pressing
    arm.servo_jaw(0.5)
    _hold(arm, 0.3)
    _press(arm, fx, fy, 0.0015)
    arm.servo_jaw(0.0)
    _hold(arm, 0.4)
    c = arm.task_counters()
    assert (c["task_marks"], c["task_found"], c["task_done"]) == (1, 0, 0), c
    assert c["task_mark_error_um"] == pytest.approx(math.hypot(fx - cx, fy - cy) * 1e6, abs=500)
    _lift(arm, fx, fy)

    # a mark on it (3 mm off its centre, a gentle press): found, done
    arm.servo_jaw(0.5)
    _hold(arm, 0.3)
    _press(arm, cx + 0.003, cy, 0.0012)
    assert _force(arm) < 3.0
    arm.servo_jaw(0.0)
    _hold(arm, 0.4)
    c = dict(arm.task_counters())
    print(f"palpation: {c}")
    _check_counters(c)
    assert (c["task_marks"], c["task_found"], c["task_done"]) == (2, 1, 1), c
    assert c["task_mark_error_um"] == pytest.approx(3000, abs=500)
    assert c["task_collisions"] == 0
    assert c["task_elapsed_ms"] > 0


# ---------------------------------------------------------------------------------------------
# The slave-arm process
# ---------------------------------------------------------------------------------------------
def test_cli_task_needs_the_sim_driver_and_a_known_name() -> None:
    for extra, message in (
        (["--driver", "kinematic", "--task", "reach"], "--task needs --driver sim"),
        (["--task", "nope"], "reach, peg-transfer, palpation"),
    ):
        proc = subprocess.run(
            [*ARM_CMD, *extra, "--bind", "tcp://127.0.0.1:1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr


@pytest.mark.slow
def test_slave_arm_with_a_task_publishes_it() -> None:
    from network.link import ConsoleLink, LinkConfig, free_tcp_endpoint

    endpoint = free_tcp_endpoint()
    proc = subprocess.Popen(
        [*ARM_CMD, "--driver", "sim", "--task", "reach", "--bind", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        while line and not line.startswith("READY"):  # PyBullet prints its build time first
            line = proc.stdout.readline().strip()
        assert line.startswith("READY"), proc.stderr.read() if proc.stderr else line
        with ConsoleLink(LinkConfig(endpoint=endpoint), name="trainee") as link:
            task = link.welcome.arm.task
            assert task is not None and task.name == "reach"
            assert len(task.points["targets"]) == 4
            deadline = time.monotonic_ns() + 10_000_000_000
            link.service_until(
                deadline,
                lambda: (
                    link.latest_state is not None
                    and "task_targets_total" in link.latest_state.state.counters
                ),
            )
            counters = link.latest_state.state.counters
            assert counters["task_targets_total"] == 4
            assert counters["task_targets_touched"] == 0 and counters["task_started"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=10) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
