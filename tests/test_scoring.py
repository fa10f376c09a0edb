"""Skill scores: known answers on constructed trajectories, thresholds, the recording reader,
and the attempt history."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest

from master_console import scoring as S
from master_console.history import History, HistoryError, default_history_path
from master_console.recording import Recorder, load_recording
from master_console.scoring import TaskRun, Thresholds

# =============================================================================================
# Constructed trajectories
# =============================================================================================


def min_jerk(p0: np.ndarray, p1: np.ndarray, t: np.ndarray, t0: float, dur: float) -> np.ndarray:
    """Minimum-jerk move from p0 (before t0) to p1 (after t0 + dur)."""
    tau = np.clip((t - t0) / dur, 0.0, 1.0)[:, None]
    return p0 + (p1 - p0) * (10 * tau**3 - 15 * tau**4 + 6 * tau**5)


def via(points: list[list[float]], durations: list[float], t: np.ndarray, t0: float):
    """Min-jerk legs through ``points`` (stopping at each), the first starting at t0."""
    pts = np.asarray(points, dtype=float)
    pos = np.repeat(pts[:1], len(t), axis=0)
    start = t0
    for a, b, d in zip(pts[:-1], pts[1:], durations, strict=True):
        leg = min_jerk(a, b, t, start, d)
        pos = np.where((t >= start)[:, None], leg, pos)
        start += d
    return pos


def step_counter(t: np.ndarray, times: list[float], start_value: float = 0.0) -> np.ndarray:
    """A counter that goes up by one at each of ``times``."""
    c = np.full(len(t), start_value)
    for tt in times:
        c += t >= tt
    return c


REACH_TARGETS = [[0.03, 0.02, -0.15], [-0.02, 0.035, -0.15], [-0.035, -0.02, -0.15]]


def make_reach_run(
    *,
    completed: bool = True,
    seed: int = 0,
    collisions: int = 1,
    rtt_ms: float = 40.0,
    tremor_m: float = 1e-4,
    state_hz: float = 250.0,
) -> TaskRun:
    """A realistic reach attempt: three targets, a clutch re-engagement, a force overshoot,
    a 40 ms link, tremor at the master."""
    rng = np.random.default_rng(seed)
    home = [0.0, 0.0, -0.12]
    # legs: home -> above T1 -> T1 -> above T2 -> T2 -> above T3 -> T3 -> home-ish
    pts = [home]
    for tg in REACH_TARGETS:
        pts.append([tg[0], tg[1], -0.135])
        pts.append(tg)
    pts.append([0.0, 0.0, -0.125])
    durs = [1.6, 0.7, 1.5, 0.8, 2.0, 0.8, 1.8]
    t0 = 1.0
    # a 1.2 s clutch-out pause after the first touch (the tool holds still)
    t_end = t0 + sum(durs) + 1.2 + 0.8
    t = np.arange(0.0, t_end, 1.0 / state_hz)
    pause0 = t0 + sum(durs[:2]) + 0.2
    pos = via(pts, durs, t - np.clip(t - pause0, 0.0, 1.2), t0)
    pos = pos + rng.normal(0.0, 2e-5, pos.shape)  # sensor noise
    touch_times = [t0 + sum(durs[: 2 * i + 2]) + (1.2 if i > 0 else 0.0) for i in range(3)]
    force = 0.05 + np.abs(rng.normal(0.0, 0.02, len(t)))
    for i, tt in enumerate(touch_times):
        peak = 3.6 if i == 1 else 1.4  # the second touch pushes too hard
        force += peak * np.exp(-0.5 * ((t - tt - 0.15) / 0.15) ** 2)
    done_t = touch_times[-1] + 0.05 if completed else math.inf
    touched = step_counter(t, touch_times if completed else touch_times[:2])
    counters = {
        "task_started": (t >= t0 + rtt_ms * 1e-3).astype(float),
        "task_done": (t >= done_t).astype(float),
        "task_elapsed_ms": np.clip(t - t0, 0, None) * 1000.0,
        "task_collisions": step_counter(t, [4.0 + 2.0 * i for i in range(collisions)]),
        "task_excess_force_ms": np.zeros(len(t)),
        "task_targets_total": np.full(len(t), 3.0),
        "task_targets_touched": touched,
    }
    over = force > 2.5
    counters["task_excess_force_ms"] = np.cumsum(over) * 1000.0 / state_hz
    m_t = np.arange(0.0, t_end, 1e-3)
    m_pos = via(pts, durs, m_t - np.clip(m_t - pause0, 0.0, 1.2), t0) * 2.0  # 0.5x scaling
    m_pos[:, 0] += tremor_m * np.sin(2 * np.pi * 9.0 * m_t)
    c_t = np.arange(0.0, t_end, 1e-3)
    clutch = (c_t >= t0) & ~((c_t >= pause0) & (c_t < pause0 + 1.2))
    rtt = rtt_ms + np.abs(rng.normal(0.0, 3.0, len(t)))
    return TaskRun(
        task="reach",
        info={
            "name": "reach",
            "goal": "Touch the three targets on the tissue pad with the closed jaws, in any order.",
            "points": {"targets": REACH_TARGETS},
            "values": {"time_limit_s": 120.0, "force_limit_n": 2.5, "touch_radius_m": 0.004},
        },
        t_s=t,
        tool_pos=pos,
        force_n=force,
        counters=counters,
        master_t_s=m_t,
        master_pos=m_pos,
        clutch_t_s=c_t,
        clutch=clutch,
        rtt_t_s=t,
        rtt_ms=rtt,
        started_unix_s=1_790_000_000.0,
    )


def simple_run(t, pos, *, task="reach", info=None, done_at=None, clutch_on_at=0.0, **kw):
    """A run engaged from ``clutch_on_at`` on, done at ``done_at`` (None: never)."""
    t = np.asarray(t, dtype=float)
    counters = {"task_done": (t >= (math.inf if done_at is None else done_at)).astype(float)}
    counters.update(kw.pop("counters", {}))
    return TaskRun(
        task=task,
        info=info or {"name": task, "points": {}, "values": {}},
        t_s=t,
        tool_pos=pos,
        counters=counters,
        clutch_t_s=np.array([0.0, clutch_on_at]) if clutch_on_at > 0 else np.array([0.0]),
        clutch=np.array([False, True]) if clutch_on_at > 0 else np.array([True]),
        **kw,
    )


# =============================================================================================
# Metrics
# =============================================================================================


def test_path_length_of_a_noisy_polyline_is_robust() -> None:
    rng = np.random.default_rng(3)
    corners = np.array([[0, 0, 0], [0.1, 0, 0], [0.1, 0.05, 0], [0.02, 0.05, 0.03]], float)
    legs = np.linalg.norm(np.diff(corners, axis=0), axis=1)
    length = float(legs.sum())
    speed = 0.04
    t = np.arange(0.0, length / speed + 1.0, 1e-3)
    s = np.clip((t - 0.5) * speed, 0.0, length)
    cum = np.concatenate([[0.0], np.cumsum(legs)])
    pos = np.column_stack([np.interp(s, cum, corners[:, i]) for i in range(3)])
    noisy = pos + rng.normal(0.0, 1e-4, pos.shape)  # 0.1 mm sensor noise at 1 kHz
    raw = float(np.sum(np.linalg.norm(np.diff(noisy, axis=0), axis=1)))
    assert raw > 2 * length  # summing raw samples would more than double it
    assert S.path_length_m(simple_run(t, pos)) == pytest.approx(length, rel=0.01)
    assert S.path_length_m(simple_run(t, noisy)) == pytest.approx(length, rel=0.02)


def test_path_length_counts_only_engaged_motion() -> None:
    t = np.arange(0.0, 6.0, 2e-3)
    pos = via([[0, 0, 0], [0.05, 0, 0], [0.05, 0.05, 0]], [2.0, 2.0], t, 0.5)
    run = simple_run(t, pos, clutch_on_at=2.5)  # the first leg happens clutched out
    assert S.path_length_m(run) == pytest.approx(0.05, rel=0.02)
    full = simple_run(t, pos)
    assert S.path_length_m(full) == pytest.approx(0.1, rel=0.01)


def reach_info(target: list[float]) -> dict:
    return {"name": "reach", "points": {"targets": [target]}, "values": {}}


def test_economy_of_motion_straight_is_one_and_detour_is_half() -> None:
    t = np.arange(0.0, 6.0, 2e-3)
    a, b = [0.0, 0.0, -0.1], [0.1, 0.0, -0.1]
    straight = via([a, b], [3.0], t, 1.0)
    run = simple_run(t, straight, info=reach_info(b), done_at=4.5, clutch_on_at=1.0)
    assert S.ideal_path_m(run) == pytest.approx(0.1, abs=1e-4)
    assert S.economy_of_motion(run) == pytest.approx(1.0, abs=0.01)
    # an equilateral detour: two legs of 0.1 m -> twice the ideal
    apex = [0.05, 0.1 * math.sqrt(3) / 2, -0.1]
    detour = via([a, apex, b], [2.0, 2.0], t, 1.0)
    run2 = simple_run(t, detour, info=reach_info(b), done_at=5.5, clutch_on_at=1.0)
    assert S.path_length_m(run2) == pytest.approx(0.2, rel=0.01)
    assert S.economy_of_motion(run2) == pytest.approx(0.5, abs=0.01)


def test_ideal_path_of_peg_transfer_and_palpation() -> None:
    info = {
        "name": "peg-transfer",
        "points": {
            "rings": [[0.0, 0.0, 0.0], [0.0, 0.05, 0.0]],
            "pegs_to": [[0.1, 0.05, 0.025], [0.03, 0.0, 0.025], [0.3, 0.0, 0.025]],
        },
    }
    run = TaskRun("peg-transfer", info=info, t_s=[0.0, 1.0], tool_pos=[[0, 0.04, 0]] * 2)
    # best: start -> ring 2 (0.01) -> up 0.025 -> peg 2 -> ring 1 -> up 0.025 -> peg 1
    d = math.dist
    best = (
        0.01 + 0.025 + d([0, 0.05, 0.025], [0.03, 0, 0.025]) + d([0.03, 0, 0.025], [0, 0, 0])
    ) + (0.025 + d([0, 0, 0.025], [0.1, 0.05, 0.025]))
    assert S.ideal_path_m(run) == pytest.approx(best)
    corners = [[0, 0, 0], [0.02, 0.01, 0]]  # the simulator's two opposite corners
    palp = TaskRun(
        "palpation",
        info={"name": "palpation", "points": {"search_area": corners}},
        t_s=[0.0, 1.0],
        tool_pos=[[0, 0, 0.01]] * 2,
    )
    assert S.ideal_path_m(palp) == pytest.approx(0.01 + 0.06)  # down to a corner + around
    assert len(S.search_area_outline(palp.points)) == 4
    assert math.isnan(S.ideal_path_m(TaskRun("reach", t_s=[0.0], tool_pos=[[0, 0, 0]])))


def test_completion_time_from_counters() -> None:
    t = np.arange(0.0, 20.0, 0.01)
    pos = np.zeros((len(t), 3))
    counters = {
        "task_started": (t >= 2.1).astype(float),
        "task_elapsed_ms": np.clip(t - 2.1, 0, 11.9) * 1000.0,
    }
    # the arm starts the task at the first motion (2.1 s), after the clutch engaged (2.0 s)
    run = simple_run(t, pos, done_at=14.0, clutch_on_at=2.0, counters=counters)
    assert S.task_window(run) == pytest.approx((2.1, 14.0, True))
    assert S.completion_time_s(run) == pytest.approx(11.9, abs=1e-6)
    assert S.arm_elapsed_s(run) == pytest.approx(11.9, abs=0.011)
    # without the arm's task_started: from the first engaged command
    no_start = simple_run(t, pos, done_at=14.0, clutch_on_at=2.0)
    assert S.completion_time_s(no_start) == pytest.approx(12.0, abs=1e-6)
    assert math.isnan(S.arm_elapsed_s(no_start))
    # not done: NaN, and the window runs to the last state
    open_run = simple_run(t, pos, done_at=None, clutch_on_at=2.0, counters=counters)
    assert math.isnan(S.completion_time_s(open_run))
    assert S.task_window(open_run)[1:] == pytest.approx((t[-1], False))


def test_clutch_count_counts_engage_edges() -> None:
    seq = [False, False, True, True, False, True, False, False, True, True]
    run = TaskRun("reach", clutch_t_s=np.arange(len(seq)) * 0.1, clutch=seq)
    assert S.clutch_count(run) == 3
    starts_on = TaskRun("reach", clutch_t_s=[0.0, 0.1, 0.2, 0.3], clutch=[True, False, True, True])
    assert S.clutch_count(starts_on) == 2
    assert S.clutch_count(TaskRun("reach")) == 0


def test_idle_time_of_a_known_pause() -> None:
    t = np.arange(0.0, 9.0, 2e-3)
    v = 0.02  # 20 mm/s, then a 3 s pause, then 2 s more
    x = np.piecewise(
        t,
        [t < 1.0, (t >= 1.0) & (t < 3.0), (t >= 3.0) & (t < 6.0), t >= 6.0],
        [0.0, lambda s: v * (s - 1.0), 2 * v, lambda s: 2 * v + v * (np.minimum(s, 8.0) - 6.0)],
    )
    pos = np.column_stack([x, np.zeros_like(x), np.zeros_like(x)])
    run = simple_run(t, pos, done_at=8.0, clutch_on_at=1.0)
    assert S.idle_time_s(run) == pytest.approx(3.0, abs=0.15)
    # the same pause spent clutched out is not idle
    clutched = TaskRun(
        "reach",
        t_s=t,
        tool_pos=pos,
        counters={"task_done": (t >= 8.0).astype(float)},
        clutch_t_s=[0.0, 1.0, 3.0, 6.0],
        clutch=[False, True, False, True],
    )
    assert S.idle_time_s(clutched) < 0.2


def mj_run(amplitude: float, duration: float, wiggle: float = 0.0) -> TaskRun:
    t = np.arange(0.0, duration + 1.0, 1e-3)
    pos = via([[0, 0, 0], [amplitude, 0.4 * amplitude, 0.0]], [duration], t, 0.5)
    moving = (t > 0.5) & (t < 0.5 + duration)
    pos[:, 1] += wiggle * amplitude * np.sin(2 * np.pi * 3.0 * t) * moving
    return simple_run(t, pos)


def test_ldlj_min_jerk_is_smoother_than_with_oscillation() -> None:
    smooth = S.log_dimensionless_jerk(mj_run(0.05, 1.0))
    shaky = S.log_dimensionless_jerk(mj_run(0.05, 1.0, wiggle=0.05))
    assert -6.0 < smooth < -4.0  # -ln(720 / 1.875^2) = -5.3 untrimmed; trimmed a little higher
    assert shaky < smooth - 2.0


def test_ldlj_is_invariant_to_amplitude_and_duration() -> None:
    base = S.log_dimensionless_jerk(mj_run(0.05, 1.0))
    for amp, dur in ((0.01, 1.0), (0.15, 1.0), (0.05, 2.0), (0.12, 3.0)):
        assert S.log_dimensionless_jerk(mj_run(amp, dur)) == pytest.approx(base, abs=0.1)
    assert math.isnan(S.log_dimensionless_jerk(simple_run([0, 1, 2], np.zeros((3, 3)))))


def test_tremor_index_of_a_10_hz_sinusoid() -> None:
    t = np.arange(0.0, 6.0, 1e-3)
    reach = via([[0, 0, 0], [0.06, 0.02, -0.01]], [4.0], t, 1.0)
    amp = 2e-4
    shaky = reach.copy()
    shaky[:, 1] += amp * np.sin(2 * np.pi * 10.0 * t)
    run = TaskRun("reach", master_t_s=t, master_pos=shaky)
    ti = S.tremor_index(run)
    assert ti.rms_um == pytest.approx(amp / math.sqrt(2) * 1e6, rel=0.05)
    assert ti.ratio == pytest.approx(ti.rms_um / ti.voluntary_rms_um)
    calm = S.tremor_index(TaskRun("reach", master_t_s=t, master_pos=reach))
    assert calm.rms_um < 5.0
    slow = TaskRun("reach", master_t_s=t[::40], master_pos=shaky[::40])  # 25 Hz: can't see it
    assert math.isnan(S.tremor_index(slow).rms_um)


def test_excessive_force_time_and_peak() -> None:
    t = np.arange(0.0, 10.0, 1e-3)
    f = np.full(len(t), 0.5)
    f[(t >= 2.0) & (t < 3.2)] = 2.6  # 1.2 s above 2.0 N
    f[(t >= 5.0) & (t < 5.3)] = 4.0  # 0.3 s more, the peak
    f[(t >= 8.5) & (t < 9.5)] = 5.0  # after task_done: not counted
    info = {"name": "reach", "points": {}, "values": {"force_limit_n": 2.0}}
    run = simple_run(t, np.zeros((len(t), 3)), info=info, done_at=8.0, force_n=f)
    assert S.excessive_force_s(run) == pytest.approx(1.5, abs=0.003)
    assert S.peak_force_n(run) == pytest.approx(4.0)
    assert S.excessive_force_s(run, limit_n=3.0) == pytest.approx(0.3, abs=0.003)
    # a gap in the recording while above the limit counts for at most 0.1 s
    keep = ~((t > 2.1) & (t < 3.1))
    gappy = simple_run(t[keep], np.zeros((keep.sum(), 3)), info=info, done_at=8.0, force_n=f[keep])
    assert S.excessive_force_s(gappy) == pytest.approx(0.1 + 0.1 + 0.1 + 0.3, abs=0.01)


def test_task_counters_at_the_end() -> None:
    t = np.arange(0.0, 10.0, 0.01)
    counters = {
        "task_drops": step_counter(t, [3.0, 9.0]),  # the second after done
        "task_rings_placed": step_counter(t, [2.0, 4.0, 6.0]),
        "task_collisions": step_counter(t, [1.0]),
    }
    run = simple_run(t, np.zeros((len(t), 3)), task="peg-transfer", done_at=7.0, counters=counters)
    assert S.drops(run) == 1
    assert S.rings_placed(run) == 3
    assert S.instrument_collisions(run) == 1
    assert S.targets_touched(run) is None and S.found(run) is None
    assert math.isnan(S.mark_error_mm(run))
    palp = simple_run(
        t,
        np.zeros((len(t), 3)),
        task="palpation",
        done_at=7.0,
        counters={
            "task_found": step_counter(t, [5.0]),
            "task_mark_error_um": np.full(len(t), 2400.0),
        },
    )
    assert S.found(palp) == 1
    assert S.mark_error_mm(palp) == pytest.approx(2.4)


# =============================================================================================
# Score, thresholds
# =============================================================================================


def test_score_of_a_realistic_reach_passes_defaults() -> None:
    run = make_reach_run()
    sc = S.score(run)
    m = sc.metrics
    assert sc.completed and sc.passed, [c for c in sc.checks if not c.passed]
    assert 5.0 < sc.completion_time_s < 15.0
    assert m["targets_touched"] == 3 and m["targets_total"] == 3
    assert 0.3 < m["economy_of_motion"] <= 1.0
    assert m["instrument_collisions"] == 1
    assert m["clutch_count"] == 2
    assert m["excessive_force_s"] == pytest.approx(m["arm_excessive_force_s"], abs=0.05)
    assert m["peak_force_n"] > 3.0
    assert m["tremor_rms_um"] == pytest.approx(1e-4 / math.sqrt(2) * 1e6, rel=0.1)
    assert m["rtt_p50_ms"] == pytest.approx(42.0, abs=2.0)
    assert 60.0 < sc.overall < 100.0
    # the formula: 100 minus the listed penalties
    assert sc.overall == pytest.approx(100.0 - sum(sc.penalties.values()), abs=0.051)
    d = sc.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["passed"] is True and d["metrics"]["completion_time_s"] == sc.completion_time_s


def test_pass_fail_with_overridden_thresholds() -> None:
    run = make_reach_run(collisions=3)
    sc = S.score(run)
    assert not sc.passed
    assert [c.name for c in sc.failed_checks] == ["max_collisions"]
    relaxed = S.score(run, {"max_collisions": 5})
    assert relaxed.passed
    strict = S.score(run, S.thresholds_from_dict("reach", {"max_time_s": 5, "max_collisions": 5}))
    failed = {c.name: c for c in strict.failed_checks}
    assert set(failed) == {"max_time_s"}
    assert failed["max_time_s"].value == pytest.approx(strict.completion_time_s)
    off = S.score(run, {"max_collisions": False})
    assert off.passed and "max_collisions" not in {c.name for c in off.checks}


def test_incomplete_attempt_fails_and_loses_points() -> None:
    run = make_reach_run(completed=False)
    sc = S.score(run)
    assert not sc.completed and not sc.passed
    assert math.isnan(sc.completion_time_s)
    assert sc.penalties["completion"] == 20.0 and sc.penalties["time"] == 25.0
    assert sc.metrics["targets_touched"] == 2
    assert sc.penalties["accuracy"] == pytest.approx(15.0 / 3, abs=0.01)
    assert sc.overall < 60.0
    d = sc.to_dict()
    assert d["metrics"]["completion_time_s"] is None
    assert {c["name"] for c in d["checks"] if not c["passed"]} >= {"require_complete"}
    json.dumps(d, allow_nan=False)
    # economy of an unfinished run uses the part achieved (2 of 3 targets)
    assert 0.0 < sc.metrics["economy_of_motion"] <= 1.0


def test_overall_score_formula_on_a_perfect_run() -> None:
    t = np.arange(0.0, 6.0, 2e-3)
    a, b = [0.0, 0.0, -0.1], [0.1, 0.0, -0.1]
    counters = {
        "task_collisions": np.zeros(len(t)),
        "task_targets_touched": (t >= 4.5) * 1.0,
        "task_targets_total": np.ones(len(t)),
    }
    run = simple_run(
        t,
        via([a, b], [3.0], t, 1.0),
        info=reach_info(b),
        done_at=4.5,
        clutch_on_at=1.0,
        counters=counters,
        force_n=np.zeros(len(t)),
    )
    sc = S.score(run)
    assert sc.passed
    # only time costs: 25 * 3.5 s / (2 * 60 s); economy ~1
    assert sc.penalties["time"] == pytest.approx(25 * 3.5 / 120, abs=0.01)
    assert sc.penalties["economy"] < 0.2
    assert sc.overall == pytest.approx(100 - 25 * 3.5 / 120, abs=0.3)


def test_thresholds_from_dict_validates() -> None:
    th = S.thresholds_from_dict("reach", {"max_time_s": 45})
    assert th.max_time_s == 45.0 and th.max_collisions == 2  # the other defaults stay
    assert S.thresholds_from_dict("reach", {"reach": {"max_time_s": 30}}).max_time_s == 30.0
    assert S.thresholds_from_dict("reach", {}) == S.DEFAULT_THRESHOLDS["reach"]
    every = S.thresholds_from_dict({"palpation": {"min_found": 2}})
    assert set(every) == set(S.TASK_NAMES) and every["palpation"].min_found == 2
    with pytest.raises(ValueError, match=r"max_time_s.*max_collisions"):
        S.thresholds_from_dict("reach", {"max_tiem_s": 45})
    with pytest.raises(ValueError, match="valid tasks: reach, peg-transfer, palpation"):
        S.thresholds_from_dict("suturing", {})
    with pytest.raises(ValueError, match="valid tasks"):
        S.thresholds_from_dict({"reach": {}, "knots": {}})
    with pytest.raises(ValueError, match="number"):
        S.thresholds_from_dict("reach", {"max_time_s": "fast"})
    with pytest.raises(ValueError, match=">= 0"):
        S.thresholds_from_dict("reach", {"max_time_s": -1})
    with pytest.raises(ValueError, match="whole number"):
        S.thresholds_from_dict("peg-transfer", {"max_drops": 1.5})
    with pytest.raises(ValueError, match="true or false"):
        S.thresholds_from_dict("reach", {"require_complete": 1})
    assert S.thresholds_from_dict("reach", {"max_time_s": False}).max_time_s is None
    for task, th in S.DEFAULT_THRESHOLDS.items():
        assert isinstance(th, Thresholds) and th.require_complete, task


def test_default_thresholds_per_task() -> None:
    d = S.DEFAULT_THRESHOLDS
    assert (d["reach"].max_time_s, d["reach"].max_collisions) == (60.0, 2)
    assert d["reach"].max_excessive_force_s == 1.0
    assert (d["peg-transfer"].max_time_s, d["peg-transfer"].max_drops) == (180.0, 1)
    assert d["palpation"].min_found == 1 and d["palpation"].max_excessive_force_s == 2.0


# =============================================================================================
# Reading a recording
# =============================================================================================


def write_recording(path, *, with_task: bool = True, done: bool = True) -> None:
    t0 = 1_000_000_000_000
    ms = 1_000_000
    info = {
        "name": "reach",
        "goal": "touch the target",
        "points": {"targets": [[0.05, 0.0, -0.1]]},
        "values": {"force_limit_n": 2.0, "time_limit_s": 60.0},
    }
    with Recorder(path, metadata={"rate_hz": 500.0}) as rec:
        if with_task:
            rec.record("task", t0, info=info)
        sent: dict[int, int] = {}
        for seq, i in enumerate(range(0, 3000, 2), start=1):  # 3 s of commands at 500 Hz
            t = t0 + i * ms
            sent[seq] = t
            x = 0.05 * min(max((i - 500) / 2000, 0.0), 1.0)
            pose = [x, 0.0, -0.1, 0.0, 0.0, 0.0, 1.0]
            rec.record(
                "input", t, pose=[2 * x, 0, 0, 0, 0, 0, 1], jaw=0.0, clutch=i >= 500, present=True
            )
            rec.record("command", t, seq=seq, pose=pose, jaw=0.0, clutch=i >= 500, present=True)
            if seq > 10:  # the state acknowledging the command sent 20 ms ago
                ack = seq - 10
                xs = 0.05 * min(max((i - 20 - 500) / 2000, 0.0), 1.0)
                rec.record(
                    "state",
                    t,
                    seq=seq,
                    send_ns=5 * t,
                    ack_seq=ack,
                    ack_send_ns=sent[ack],
                    ack_rx_ns=5 * t,
                    measured_cp=[xs, 0.0, -0.1, 0, 0, 0, 1],
                    setpoint_cp=[xs, 0.0, -0.1, 0, 0, 0, 1],
                    measured_cf=[0.0, 0.0, 2.5 if 1000 <= i < 1200 else 0.5, 0, 0, 0],
                    jaw=0.0,
                    flags=[],
                    task={
                        "task_started": int(i >= 520),
                        "task_done": int(done and i >= 2600),
                        "task_elapsed_ms": max(0, i - 520),
                        "task_collisions": 0,
                        "task_excess_force_ms": 200 if i >= 1200 else 0,
                        "task_targets_total": 1,
                        "task_targets_touched": int(done and i >= 2600),
                    },
                )
            if i == 1500:
                rec.record("link", t, stats={"rtt_total_ms": 20.0})
                rec.record("event", t, text="hello")


def test_taskrun_from_recording(tmp_path) -> None:
    path = tmp_path / "reach.rec"
    write_recording(path)
    run = TaskRun.from_recording(load_recording(path))
    assert run.task == "reach" and run.info["values"]["force_limit_n"] == 2.0
    assert run.rate_hz == 500.0
    assert len(run.t_s) == len(run.tool_pos) == len(run.force_n) == 1490
    assert run.t_s[0] == pytest.approx(0.02)  # from the first record (the task record)
    assert run.counters["task_done"][-1] == 1.0
    assert np.all(np.diff(run.t_s) > 0)
    assert run.rtt_ms == pytest.approx(np.full(len(run.rtt_ms), 20.0))
    assert len(run.rtt_ms) == 1490
    assert run.clutch.sum() == 1250 and S.clutch_count(run) == 1
    assert run.master_pos[-1, 0] == pytest.approx(0.1)
    assert run.started_unix_s is not None
    sc = S.score(run)
    assert sc.completed and sc.passed
    assert sc.completion_time_s == pytest.approx(2.08, abs=1e-6)  # started 0.52 s, done 2.6 s
    assert sc.metrics["arm_elapsed_s"] == pytest.approx(2.08)
    assert sc.metrics["excessive_force_s"] == pytest.approx(0.2, abs=0.005)
    assert sc.metrics["path_length_m"] == pytest.approx(0.05, rel=0.02)
    assert sc.metrics["economy_of_motion"] == pytest.approx(1.0, abs=0.03)


def test_taskrun_from_a_torn_recording(tmp_path) -> None:
    path = tmp_path / "torn.rec"
    write_recording(path, done=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # killed mid-session
    rec = load_recording(path)
    run = TaskRun.from_recording(rec)
    assert rec.truncated and any("torn" in n for n in run.notes)
    sc = S.score(run)
    assert not sc.completed and not sc.passed
    assert any("torn" in n for n in sc.notes)
    json.dumps(sc.to_dict(), allow_nan=False)


def test_taskrun_from_recording_without_a_task(tmp_path) -> None:
    path = tmp_path / "notask.rec"
    write_recording(path, with_task=False)
    with pytest.raises(ValueError, match="no 'task' record"):
        TaskRun.from_recording(load_recording(path))
    empty = tmp_path / "empty.rec"
    with Recorder(empty) as rec:
        rec.record("task", 1, info={"name": "palpation", "points": {}, "values": {}})
    run = TaskRun.from_recording(load_recording(empty))
    assert run.task == "palpation" and len(run.t_s) == 0
    sc = S.score(run)
    assert not sc.completed and 0.0 <= sc.overall <= 100.0


# =============================================================================================
# History
# =============================================================================================


def test_history_round_trip(tmp_path) -> None:
    h = History(tmp_path / "sub" / "history.sqlite")
    sc = S.score(make_reach_run())
    bad = S.score(make_reach_run(completed=False))
    i1 = h.add("dr. ann", "reach", bad, when_unix_s=100.0, profile="lan", delay_ms=0.0)
    i2 = h.add("dr. ann", "reach", sc, when_unix_s=200.0, profile="transatlantic", delay_ms=80)
    i3 = h.add("dr. ann", "reach", sc.to_dict(), when_unix_s=300.0)
    h.add("dr. bob", "reach", sc, when_unix_s=150.0)
    h.add("dr. ann", "palpation", sc, when_unix_s=150.0)
    rows = h.attempts("dr. ann", "reach")
    assert [r["id"] for r in rows] == [i1, i2, i3]
    assert [r["number"] for r in rows] == [1, 2, 3]
    assert rows[0]["completed"] is False and rows[0]["passed"] is False
    assert rows[1]["profile"] == "transatlantic" and rows[1]["delay_ms"] == 80.0
    assert rows[1]["overall"] == sc.overall
    assert rows[1]["completion_time_s"] == pytest.approx(sc.completion_time_s)
    assert rows[0]["completion_time_s"] is None
    assert rows[1]["score"]["metrics"]["targets_touched"] == 3
    assert h.best("dr. ann", "reach")["id"] == i2  # same score as #3, earlier
    assert h.best("dr. ann", "peg-transfer") is None
    assert h.attempts("nobody", "reach") == []
    assert h.trainees() == ["dr. ann", "dr. bob"]
    again = History(h.path)  # reopening keeps everything
    assert len(again.attempts("dr. ann", "reach")) == 3
    with pytest.raises(ValueError, match="trainee"):
        h.add("  ", "reach", sc)


def test_history_corrupt_or_foreign_file(tmp_path) -> None:
    bad = tmp_path / "history.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryError, match=str(bad)):
        History(bad)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x TEXT)")
    conn.close()
    with pytest.raises(HistoryError, match="another program"):
        History(other)


def test_default_history_path(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TELESURGERY_HOME", str(tmp_path / "ts"))
    assert default_history_path() == tmp_path / "ts" / "history.sqlite"
    h = History()
    assert h.path == tmp_path / "ts" / "history.sqlite" and h.path.exists()
    monkeypatch.delenv("TELESURGERY_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_history_path() == tmp_path / "home" / ".telesurgery" / "history.sqlite"
