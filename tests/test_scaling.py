"""Clutch and motion scaling (filters.scaling): no jumps, indexing, loop-rate independence.

scipy's ``Rotation`` (scalar-last quaternions, ``a * b`` = apply b then a) is the independent
oracle for the rotation math.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from filters.scaling import MotionScaler, ScalingConfig

TOL = 1e-12
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------
# strategies and helpers

coord = st.floats(-0.5, 0.5, allow_nan=False)
unit_coord = st.floats(-1.0, 1.0, allow_nan=False)
quats = st.tuples(unit_coord, unit_coord, unit_coord, unit_coord).filter(
    lambda q: math.sqrt(sum(v * v for v in q)) > 0.1
)
positions = st.tuples(coord, coord, coord)
poses = st.builds(lambda p, q: np.array(p + q), positions, quats)
scales = st.floats(0.05, 5.0, allow_nan=False)
both_paths = pytest.mark.parametrize("use_numba", [True, False], ids=["numba", "plain"])


@st.composite
def configs(draw, box: bool | None = None, orientation: str | None = None) -> ScalingConfig:
    """A random config (box: True/False forces it, None lets hypothesis choose)."""
    with_box = draw(st.booleans()) if box is None else box
    lo = hi = None
    if with_box:
        lo = draw(st.tuples(*[st.floats(-0.4, 0.0)] * 3))
        hi = tuple(a + draw(st.floats(0.01, 0.5)) for a in lo)
    return ScalingConfig(
        scale=draw(scales),
        master_to_arm_xyzw=draw(quats),
        orientation=draw(st.sampled_from(["relative", "locked"]))
        if orientation is None
        else orientation,
        workspace_min_m=lo,
        workspace_max_m=hi,
    )


def canon(q) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    q = q / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def rot(q) -> Rotation:
    return Rotation.from_quat(np.asarray(q, dtype=float))


def assert_quat_close(a, b, tol: float = TOL) -> None:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    err = min(np.linalg.norm(a - b), np.linalg.norm(a + b))
    assert err <= tol, f"quaternions differ by {err:.3g}: {a} vs {b}"


def assert_pose_close(a, b, tol: float = TOL) -> None:
    """Positions within tol; quaternions within tol up to sign (w ~ 0 may flip it)."""
    np.testing.assert_allclose(a[:3], b[:3], rtol=0, atol=tol)
    assert_quat_close(a[3:], b[3:], tol)


def assert_unit_canonical(target: np.ndarray) -> None:
    assert target.shape == (7,)
    assert abs(np.linalg.norm(target[3:]) - 1.0) <= 1e-14
    assert target[6] >= 0.0


def expected_target(cfg: ScalingConfig, m0, a0, m) -> np.ndarray:
    """The documented formula, written independently with scipy (no box)."""
    r = rot(cfg.master_to_arm_xyzw)
    p = np.asarray(a0[:3]) + cfg.scale * r.apply(np.asarray(m[:3]) - np.asarray(m0[:3]))
    if cfg.orientation == "locked":
        q = canon(a0[3:])
    else:
        q = canon((r * rot(m[3:]) * rot(m0[3:]).inv() * r.inv() * rot(a0[3:])).as_quat())
    return np.concatenate([p, q])


def move(pose: np.ndarray, dp, rotvec) -> np.ndarray:
    """``pose`` translated by dp and rotated by rotvec (about base-frame axes)."""
    q = (Rotation.from_rotvec(rotvec) * rot(pose[3:])).as_quat()
    return np.concatenate([pose[:3] + dp, q])


# ---------------------------------------------------------------------------------------------
# engagement, scaling and orientation


@SETTINGS
@given(cfg=configs(box=False), m0=poses, a0=poses, d=positions, dq=quats)
def test_engagement_never_jumps_then_scales_and_rotates(cfg, m0, a0, d, dq):
    s = MotionScaler(cfg)
    target = s.engage(m0, a0)
    np.testing.assert_array_equal(target[:3], a0[:3])
    assert_quat_close(target[3:], canon(a0[3:]))
    assert_unit_canonical(target)
    assert not s.clamped and s.engaged
    # the same master pose right after engagement: still the arm pose
    again = s.update(m0)
    np.testing.assert_allclose(again[:3], a0[:3], rtol=0, atol=TOL)
    assert_quat_close(again[3:], canon(a0[3:]))

    # move the master by d and rotate it by dq (about the master's base axes)
    m1 = np.concatenate([m0[:3] + d, (rot(dq) * rot(m0[3:])).as_quat()])
    t1 = s.update(m1)
    assert_unit_canonical(t1)
    r = rot(cfg.master_to_arm_xyzw)
    np.testing.assert_allclose(t1[:3] - a0[:3], cfg.scale * r.apply(d), rtol=0, atol=TOL)
    if cfg.orientation == "relative":
        # the same rotation, expressed in the arm frame, applied to the arm's orientation
        assert_quat_close(t1[3:], canon((r * rot(dq) * r.inv() * rot(a0[3:])).as_quat()))
    else:
        assert_quat_close(t1[3:], canon(a0[3:]))
    assert_pose_close(t1, expected_target(cfg, m0, a0, m1))


@SETTINGS
@given(cfg=configs(box=True), m0=poses, a0=poses)
def test_engagement_with_box_gives_the_clamped_arm_pose(cfg, m0, a0):
    s = MotionScaler(cfg)
    lo, hi = np.array(cfg.workspace_min_m), np.array(cfg.workspace_max_m)
    target = s.engage(m0, a0)
    np.testing.assert_array_equal(target[:3], np.clip(a0[:3], lo, hi))
    assert_quat_close(target[3:], canon(a0[3:]))
    assert s.clamped == bool(np.any((a0[:3] < lo) | (a0[:3] > hi)))
    # update at the engagement pose: the same target
    assert_pose_close(s.update(m0), target)


def test_known_values_5_to_1_and_a_quarter_turn_frame():
    # master x is arm y (R = +90 deg about z); 5:1
    cfg = ScalingConfig(
        scale=0.2, master_to_arm_xyzw=(0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4))
    )
    s = MotionScaler(cfg)
    s.engage([0.1, 0.1, 0.1, 0, 0, 0, 1], [0.0, 0.0, -0.1, 0, 0, 0, 1])
    t = s.update([0.15, 0.1, 0.1, 0, 0, 0, 1])  # master +5 cm along x
    np.testing.assert_allclose(t[:3], [0.0, 0.01, -0.1], atol=TOL)
    # master rolls 90 deg about its x axis -> arm rotates 90 deg about its y axis
    qx = (math.sin(math.pi / 4), 0, 0, math.cos(math.pi / 4))
    t = s.update([0.1, 0.1, 0.1, *qx])
    assert_quat_close(t[3:], [0, math.sin(math.pi / 4), 0, math.cos(math.pi / 4)])


@SETTINGS
@given(cfg=configs(box=False, orientation="locked"), m0=poses, a0=poses, data=st.data())
def test_locked_orientation_keeps_the_engagement_orientation(cfg, m0, a0, data):
    s = MotionScaler(cfg)
    s.engage(m0, a0)
    for _ in range(5):
        m = data.draw(poses)
        t = s.update(m)
        assert_quat_close(t[3:], canon(a0[3:]))
        np.testing.assert_allclose(t[:3], expected_target(cfg, m0, a0, m)[:3], rtol=0, atol=TOL)


# ---------------------------------------------------------------------------------------------
# clutch sequences: continuity and indexing


def run_clutch_sequence(cfg, clutch, m_start, a0, seed):
    """Step the scaler through a random master walk with the given clutch pattern.

    The arm pose passed at each rising edge is the last target (an arm that tracked it).
    Returns (masters, targets)."""
    rng = np.random.default_rng(seed)
    s = MotionScaler(cfg)
    masters, targets = [], []
    m = m_start
    for i, c in enumerate(clutch):
        if i > 0:
            m = move(m, rng.uniform(-0.05, 0.05, 3), rng.uniform(-0.2, 0.2, 3))
        arm = targets[-1] if targets and targets[-1] is not None else a0
        masters.append(m)
        targets.append(s.step(m, c, arm))
        assert s.engaged == c
    return masters, targets


@settings(max_examples=40, deadline=None)
@given(
    cfg=configs(box=False),
    clutch=st.lists(st.booleans(), min_size=2, max_size=40),
    m0=poses,
    a0=poses,
    seed=st.integers(0, 2**32 - 1),
)
def test_clutch_sequences_are_continuous_and_index(cfg, clutch, m0, a0, seed):
    masters, targets = run_clutch_sequence(cfg, clutch, m0, a0, seed)
    r = rot(cfg.master_to_arm_xyzw)
    prev_c = False
    expected_dp = np.zeros(3)
    expected_rot = rot(a0[3:])
    m_on = None
    for i, (c, m, t) in enumerate(zip(clutch, masters, targets, strict=True)):
        if t is None:  # only before the first engagement
            assert not any(clutch[: i + 1])
            continue
        assert_unit_canonical(t)
        prev_t = targets[i - 1] if i > 0 else None
        if c and not prev_c:  # rising edge: the target is the arm pose = the last target
            if prev_t is not None:  # bit for bit
                np.testing.assert_array_equal(t, prev_t)
            else:
                assert_pose_close(t, np.concatenate([a0[:3], canon(a0[3:])]))
            m_on = m
        elif not c and not prev_c:  # released: exact hold
            np.testing.assert_array_equal(t, prev_t)
        else:
            # engaged, or the falling edge (the motion up to this sample counts): the target
            # moves by no more than scale x the master's motion, and turns no more than it
            dm = np.linalg.norm(m[:3] - masters[i - 1][:3])
            assert np.linalg.norm(t[:3] - prev_t[:3]) <= cfg.scale * dm + TOL
            turn_m = (rot(m[3:]) * rot(masters[i - 1][3:]).inv()).magnitude()
            turn_t = (rot(t[3:]) * rot(prev_t[3:]).inv()).magnitude()
            assert turn_t <= (turn_m if cfg.orientation == "relative" else 0.0) + 1e-7
        # accumulate the indexing expectation at the end of each engaged stretch
        ends_here = (prev_c and not c) or (c and i == len(clutch) - 1)
        if ends_here:
            expected_dp += cfg.scale * r.apply(m[:3] - m_on[:3])
            if cfg.orientation == "relative":
                expected_rot = r * rot(m[3:]) * rot(m_on[3:]).inv() * r.inv() * expected_rot
        prev_c = c
    if not any(clutch):
        return
    final = targets[-1]
    np.testing.assert_allclose(final[:3] - a0[:3], expected_dp, rtol=0, atol=1e-11)
    assert_quat_close(final[3:], canon(expected_rot.as_quat()), tol=1e-10)


def test_release_holds_and_reengaging_indexes():
    s = MotionScaler(ScalingConfig(scale=0.5))
    ident = [0.0, 0.0, 0.0, 1.0]
    assert s.update([0, 0, 0, *ident]) is None  # no target before the first engagement
    s.release()  # no effect
    s.engage([0, 0, 0, *ident], [1, 1, 1, *ident])
    np.testing.assert_allclose(s.update([0.2, 0, 0, *ident])[:3], [1.1, 1, 1])
    s.release([0.4, 0, 0, *ident])  # the motion up to the release counts
    held = s.update([5.0, 5.0, 5.0, *ident])  # the surgeon repositions: the target holds
    np.testing.assert_allclose(held[:3], [1.2, 1, 1])
    held[:] = 0.0  # returned arrays are copies
    np.testing.assert_allclose(s.update([-5.0, 0, 0, *ident])[:3], [1.2, 1, 1])
    t = s.engage([-5.0, 0, 0, *ident], s.target)  # re-engage far away: no jump
    np.testing.assert_allclose(t[:3], [1.2, 1, 1])
    np.testing.assert_allclose(s.update([-4.8, 0, 0, *ident])[:3], [1.3, 1, 1])
    s.reset()
    assert not s.engaged and s.target is None and s.update([0, 0, 0, *ident]) is None


# ---------------------------------------------------------------------------------------------
# loop-rate independence


def master_trajectory(t: np.ndarray, seed: int) -> np.ndarray:
    """A smooth master pose trajectory sampled at times t (s): (N, 7)."""
    rng = np.random.default_rng(seed)
    amp, freq, phase = rng.uniform(0.01, 0.1, 3), rng.uniform(0.2, 2.0, 3), rng.uniform(0, 6, 3)
    pos = rng.uniform(-0.2, 0.2, 3) + amp * np.sin(2 * np.pi * freq * t[:, None] + phase)
    ramp, rfreq = rng.uniform(0.1, 1.0, 3), rng.uniform(0.2, 2.0, 3)
    rv = ramp * np.sin(2 * np.pi * rfreq * t[:, None] + phase)
    q = (Rotation.from_rotvec(rv) * Rotation.from_quat(rng.normal(size=4))).as_quat()
    return np.hstack([pos, q])


FINE_HZ = 2000


def run_at(cfg, masters, clutch, a0, use_numba=None, keep=None):
    """Step through (masters, clutch); keep: indices of the samples that arrive (default all)."""
    s = MotionScaler(cfg, use_numba=use_numba)
    out: dict[int, np.ndarray | None] = {}
    last = None
    for k in range(len(masters)) if keep is None else keep:
        last = s.step(masters[k], bool(clutch[k]), last if last is not None else a0)
        out[k] = last
    return out


@settings(max_examples=8, deadline=None)
@given(
    cfg=configs(),
    toggles_10ms=st.lists(st.integers(0, 49), min_size=1, max_size=6, unique=True),
    a0=poses,
    seed=st.integers(0, 2**32 - 1),
    drop_seed=st.integers(0, 2**32 - 1),
)
def test_targets_do_not_depend_on_loop_rate_or_dropped_samples(
    cfg, toggles_10ms, a0, seed, drop_seed
):
    n_fine = FINE_HZ // 2 + 1  # 0.5 s
    masters_fine = master_trajectory(np.arange(n_fine) / FINE_HZ, seed)
    toggle_ticks = np.array(sorted(toggles_10ms)) * (FINE_HZ // 100)  # at common sample times
    clutch_fine = (np.searchsorted(toggle_ticks, np.arange(n_fine), side="right") % 2) == 1
    runs = {}
    for hz in (100, 1000, 2000):
        step = FINE_HZ // hz
        runs[hz] = run_at(cfg, masters_fine[::step], clutch_fine[::step], a0)
    for k100, target in runs[100].items():
        for hz in (1000, 2000):
            other = runs[hz][k100 * hz // 100]
            if target is None:
                assert other is None
            else:
                assert_pose_close(other, target)
    # dropped samples (never a clutch edge) change nothing at the samples that remain
    masters, clutch = masters_fine[::2], clutch_fine[::2]
    edge = np.flatnonzero(np.diff(clutch.astype(int), prepend=0) != 0)
    rng = np.random.default_rng(drop_seed)
    keep = np.flatnonzero(rng.random(len(clutch)) < 0.3)
    keep = np.union1d(keep, edge)
    sparse = run_at(cfg, masters, clutch, a0, keep=keep)
    for k in keep:
        if runs[1000][k] is None:
            assert sparse[k] is None
        else:
            assert_pose_close(sparse[k], runs[1000][k])


# ---------------------------------------------------------------------------------------------
# workspace box


@SETTINGS
@given(cfg=configs(box=True), m0=poses, a0=poses, seed=st.integers(0, 2**32 - 1))
def test_workspace_box_clamps_and_reports(cfg, m0, a0, seed):
    rng = np.random.default_rng(seed)
    lo, hi = np.array(cfg.workspace_min_m), np.array(cfg.workspace_max_m)
    free_cfg = ScalingConfig(cfg.scale, cfg.master_to_arm_xyzw, cfg.orientation)
    boxed, free = MotionScaler(cfg), MotionScaler(free_cfg)
    boxed.engage(m0, a0)
    free.engage(m0, a0)
    m = m0
    saw_clamp = False
    for _ in range(20):
        m = move(m, rng.uniform(-0.5, 0.5, 3), rng.uniform(-0.3, 0.3, 3))
        t, u = boxed.update(m), free.update(m)
        assert np.all(t[:3] >= lo) and np.all(t[:3] <= hi)
        outside = bool(np.any((u[:3] < lo) | (u[:3] > hi)))
        assert boxed.clamped == outside
        saw_clamp |= outside
        np.testing.assert_array_equal(t[:3], np.clip(u[:3], lo, hi))
        np.testing.assert_array_equal(t[3:], u[3:])
    # release and re-engage on the (clamped) target: no jump
    held = boxed.target
    boxed.release()
    np.testing.assert_array_equal(boxed.engage(move(m, [1.0, 1.0, 1.0], [0, 0, 0]), held), held)


def test_box_engagement_outside_goes_to_the_nearest_point_and_stays_absolute():
    cfg = ScalingConfig(
        scale=1.0, workspace_min_m=(-0.1, -0.1, -0.1), workspace_max_m=(0.1, 0.1, 0.1)
    )
    s = MotionScaler(cfg)
    ident = [0.0, 0.0, 0.0, 1.0]
    t = s.engage([0, 0, 0, *ident], [0.3, 0.0, 0.0, *ident])
    np.testing.assert_array_equal(t[:3], [0.1, 0.0, 0.0])
    assert s.clamped
    # the anchor is the arm pose as given: the target leaves the wall only once 0.3 + dx < 0.1
    t = s.update([-0.1, 0.05, 0, *ident])
    np.testing.assert_allclose(t[:3], [0.1, 0.05, 0.0])
    assert s.clamped
    t = s.update([-0.25, 0.0, 0, *ident])
    np.testing.assert_allclose(t[:3], [0.05, 0.0, 0.0])
    assert not s.clamped


# ---------------------------------------------------------------------------------------------
# numba and plain paths


@settings(max_examples=25, deadline=None)
@given(cfg=configs(), m0=poses, a0=poses, seed=st.integers(0, 2**32 - 1))
def test_numba_and_plain_paths_agree(cfg, m0, a0, seed):
    rng = np.random.default_rng(seed)
    fast, slow = MotionScaler(cfg, use_numba=True), MotionScaler(cfg, use_numba=False)
    clutch = rng.random(30) < 0.7
    m = m0
    arm = a0
    for c in clutch:
        m = move(m, rng.uniform(-0.2, 0.2, 3), rng.uniform(-0.5, 0.5, 3))
        tf, ts = fast.step(m, bool(c), arm), slow.step(m, bool(c), arm)
        if tf is None:
            assert ts is None
            continue
        assert_pose_close(tf, ts, 1e-14)
        assert fast.clamped == slow.clamped
        arm = move(tf, rng.uniform(-0.01, 0.01, 3), rng.uniform(-0.05, 0.05, 3))  # a lagging arm


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 0.0}, "scale"),
        ({"scale": -0.2}, "scale"),
        ({"scale": float("nan")}, "scale"),
        ({"scale": float("inf")}, "scale"),
        ({"scale": "big"}, "scale"),
        ({"master_to_arm_xyzw": (0, 0, 0, 0)}, "master_to_arm_xyzw.*zero"),
        ({"master_to_arm_xyzw": (0, 0, 1)}, "master_to_arm_xyzw"),
        ({"master_to_arm_xyzw": (0, 0, float("nan"), 1)}, "master_to_arm_xyzw"),
        ({"orientation": "absolute"}, "orientation"),
        ({"workspace_min_m": (0, 0, 0)}, "both"),
        ({"workspace_max_m": (1, 1, 1)}, "both"),
        ({"workspace_min_m": (0, 0, 0), "workspace_max_m": (1, 0, 1)}, "on y"),
        ({"workspace_min_m": (0, 2, 0), "workspace_max_m": (1, 1, 1)}, "on y"),
        ({"workspace_min_m": (0, 0), "workspace_max_m": (1, 1, 1)}, "workspace_min_m"),
        (
            {"workspace_min_m": (0, 0, 0), "workspace_max_m": (1, 1, float("inf"))},
            "workspace_max_m",
        ),
    ],
)
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScalingConfig(**kwargs)


def test_config_is_normalised_to_float_tuples():
    cfg = ScalingConfig(
        scale=1,
        master_to_arm_xyzw=np.array([0, 0, 0, 2]),
        workspace_min_m=[0, 0, 0],
        workspace_max_m=[1, 1, 1],
    )
    assert cfg.scale == 1.0 and isinstance(cfg.scale, float)
    assert cfg.master_to_arm_xyzw == (0.0, 0.0, 0.0, 2.0)
    assert cfg.workspace_min_m == (0.0, 0.0, 0.0) and cfg.workspace_max_m == (1.0, 1.0, 1.0)
    assert cfg == ScalingConfig(1.0, (0, 0, 0, 2), "relative", (0, 0, 0), (1, 1, 1))
    s = MotionScaler(cfg)  # R is normalised when used
    s.engage([0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(s.update([0.1, 0, 0, 0, 0, 0, 1]), [0.1, 0, 0, 0, 0, 0, 1])


GOOD = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
BAD_POSES = [
    ([0.0, float("nan"), 0.0, 0.0, 0.0, 0.0, 1.0], "not finite"),
    ([0.0, 0.0, 0.0, 0.0, 0.0, float("inf"), 1.0], "not finite"),
    ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "zero quaternion"),
    ([0.0] * 6, "7 numbers"),
    ([0.0] * 8, "7 numbers"),
    (np.zeros((1, 7)), "7 numbers"),
    ("pose", "7 numbers"),
]


@both_paths
@pytest.mark.parametrize(("pose", "match"), BAD_POSES)
def test_bad_poses_are_rejected_naming_the_argument(use_numba, pose, match):
    s = MotionScaler(use_numba=use_numba)
    with pytest.raises(ValueError, match=f"master_pose.*{match}"):
        s.update(pose)  # before engagement
    with pytest.raises(ValueError, match=f"master_pose.*{match}"):
        s.engage(pose, GOOD)
    with pytest.raises(ValueError, match=f"arm_pose.*{match}"):
        s.engage(GOOD, pose)
    assert not s.engaged and s.target is None  # nothing changed
    s.engage(GOOD, [0.5, 0.5, 0.5, 0, 0, 0, 1])
    before = s.update([0.1, 0, 0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match=f"master_pose.*{match}"):
        s.update(pose)  # engaged
    with pytest.raises(ValueError, match=f"arm_pose.*{match}"):
        s.engage(GOOD, pose)  # a failed re-engagement keeps the old anchors
    np.testing.assert_array_equal(s.target, before)
    np.testing.assert_array_equal(s.update([0.1, 0, 0, 0, 0, 0, 1]), before)
    with pytest.raises(ValueError, match=f"master_pose.*{match}"):
        s.step(pose, False, None)  # a falling edge with a bad pose: still engaged
    assert s.engaged
    s.release()
    with pytest.raises(ValueError, match=f"master_pose.*{match}"):
        s.update(pose)  # released


def test_step_needs_an_arm_pose_at_the_first_engagement():
    s = MotionScaler()
    assert s.step(GOOD, False, None) is None
    with pytest.raises(ValueError, match="arm_pose"):
        s.step(GOOD, True, None)
    s.step(GOOD, True, [0.1, 0, 0, 0, 0, 0, 1])
    s.step(GOOD, False, None)
    # later engagements may anchor on the last target
    np.testing.assert_array_equal(
        s.step([1, 1, 1, 0, 0, 0, 1], True, None), [0.1, 0, 0, 0, 0, 0, 1]
    )
