"""Force feedback: frames, the shaping pipeline, bad input, the passivity observer and controller,
the simulated haptic master, and a delayed virtual wall closed through it (Hannaford & Ryu 2002)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import types
from collections import deque

import numpy as np
import pytest

from filters._jit import NUMBA_ENABLED
from filters._jit import pick as kernel_for
from master_console.devices import InputDevice
from master_console.haptics import (
    ForceFeedback,
    ForceFeedbackConfig,
    SimulatedHapticDevice,
    feedback_kernel,
)

IDENTITY = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
MS = 1_000_000  # ns
S45 = math.sqrt(0.5)
ROT_X_90 = (S45, 0.0, 0.0, S45)  # 90° about x: z -> -y
ROT_Z_90 = (0.0, 0.0, S45, S45)  # 90° about z: x -> y, y -> -x
both_paths = pytest.mark.parametrize("use_numba", [True, False], ids=["numba", "plain"])


def plain_config(**kw: object) -> ForceFeedbackConfig:
    """Enabled, unit gain, no deadband, no smoothing, no practical slew or saturation limit:
    what goes in comes out, so each test switches on only the stage it checks."""
    base: dict[str, object] = {
        "enabled": True,
        "force_scale": 1.0,
        "deadband_n": 0.0,
        "deadband_n_m": 0.0,
        "lowpass_hz": 0.0,
        "max_force_rate_n_per_s": 1e6,
        "max_force_n": 100.0,
        "passivity": False,
    }
    base.update(kw)
    return ForceFeedbackConfig(**base)  # type: ignore[arg-type]


def run(
    ff: ForceFeedback,
    cf: object,
    n: int = 3,
    cp: object = IDENTITY,
    master: object = (0.0, 0.0, 0.0),
    engaged: bool = True,
    t0: int = 0,
) -> np.ndarray:
    """``n`` ticks at 1 kHz with the same inputs; returns the last output."""
    out = np.zeros(6)
    for i in range(n):
        out = ff.step(t0 + i * MS, cf, cp, master, None, engaged)
    return out


# ---------------------------------------------------------------------------------------------
# Configuration


def test_config_defaults_are_off_and_conservative() -> None:
    c = ForceFeedbackConfig()
    assert c.enabled is False
    assert c.passivity is True
    assert c.torque is False
    assert c.max_force_n == 3.0
    assert c.base_to_device_quat == (0.0, 0.0, 0.0, 1.0)
    ff = ForceFeedback(c, motion_scale=0.2)
    # at the dVRK's 5:1 the default neither amplifies nor attenuates power
    assert ff.power_gain == pytest.approx(1.0)
    assert ff.stiffness_gain == pytest.approx(0.04)


def test_config_from_dict_and_back() -> None:
    c = ForceFeedbackConfig.from_dict({"enabled": True, "max_force_n": 2, "lowpass_hz": 0})
    assert c.enabled and c.max_force_n == 2.0 and isinstance(c.max_force_n, float)
    assert ForceFeedbackConfig.from_dict(c.to_dict()) == c
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.max_force_n = 5.0  # type: ignore[misc]


def test_config_rejects_unknown_keys_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'max_force'.*valid keys:.*max_force_n"):
        ForceFeedbackConfig.from_dict({"max_force": 2.0})


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_force_n": 0.0}, r"max_force_n must be a finite number > 0"),
        ({"force_scale": -1.0}, r"force_scale must be a finite number > 0"),
        ({"max_force_rate_n_per_s": math.inf}, r"max_force_rate_n_per_s must be a finite"),
        ({"deadband_n": -0.1}, r"deadband_n must be a finite number >= 0"),
        ({"lowpass_hz": math.nan}, r"lowpass_hz must be a finite number >= 0"),
        ({"max_damping_n_s_per_m": 0.0}, r"max_damping_n_s_per_m must be"),
        ({"max_force_n": "3"}, r"max_force_n must be a number"),
        ({"max_force_n": True}, r"max_force_n must be a number"),
        ({"enabled": 1}, r"enabled must be true or false"),
        ({"passivity": "yes"}, r"passivity must be true or false"),
        ({"base_to_device_quat": (0.0, 0.0, 0.0, 0.0)}, r"zero quaternion"),
        ({"base_to_device_quat": (0.0, 0.0, 1.0)}, r"must be 4 numbers"),
        ({"base_to_device_quat": (0.0, 0.0, math.nan, 1.0)}, r"finite numbers"),
    ],
)
def test_config_validation_names_the_setting(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ForceFeedbackConfig(**kw)  # type: ignore[arg-type]


def test_constructor_and_step_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="motion_scale"):
        ForceFeedback(plain_config(), motion_scale=0.0)
    with pytest.raises(ValueError, match="ForceFeedbackConfig"):
        ForceFeedback({"enabled": True})  # type: ignore[arg-type]
    ff = ForceFeedback(plain_config())
    with pytest.raises(ValueError, match=r"measured_cf must be a wrench"):
        ff.step(0, np.zeros(3), IDENTITY, np.zeros(3), None, True)
    with pytest.raises(ValueError, match=r"master_pos must be a position \(3,\) or a pose"):
        ff.step(0, np.zeros(6), IDENTITY, np.zeros(4), None, True)
    with pytest.raises(ValueError, match=r"master_vel must be a velocity"):
        ff.step(0, np.zeros(6), IDENTITY, np.zeros(3), np.zeros(2), True)


# ---------------------------------------------------------------------------------------------
# Frames and shaping


@both_paths
def test_tool_force_is_rotated_into_the_base_and_device_frames(use_numba: bool) -> None:
    # the tool is rotated 90° about the base x axis: its +z axis points along base -y
    cp = (0.1, 0.2, 0.3, *ROT_X_90)
    ff = ForceFeedback(plain_config(), use_numba=use_numba)
    out = run(ff, (0.0, 0.0, 2.0, 0.0, 0.0, 0.0), cp=cp)
    np.testing.assert_allclose(out, [0.0, -2.0, 0.0, 0.0, 0.0, 0.0], atol=1e-12)
    # base -> device: 90° about z takes base -y to device +x
    ff = ForceFeedback(plain_config(base_to_device_quat=ROT_Z_90), use_numba=use_numba)
    out = run(ff, (0.0, 0.0, 2.0, 0.0, 0.0, 0.0), cp=cp)
    np.testing.assert_allclose(out, [2.0, 0.0, 0.0, 0.0, 0.0, 0.0], atol=1e-12)
    # a non-unit quaternion in measured_cp is normalised
    ff = ForceFeedback(plain_config(), use_numba=use_numba)
    out = run(ff, (0.0, 0.0, 2.0, 0.0, 0.0, 0.0), cp=(0, 0, 0, *(3 * np.array(ROT_X_90))))
    np.testing.assert_allclose(out[:3], [0.0, -2.0, 0.0], atol=1e-12)


def test_scaling_and_deadband_in_norm() -> None:
    ff = ForceFeedback(plain_config(force_scale=0.5, deadband_n=0.1))
    # |f| = 1 N at the tool: the deadband shrinks the norm to 0.9 N, then × 0.5
    out = run(ff, (0.6, 0.8, 0.0, 0.0, 0.0, 0.0))
    np.testing.assert_allclose(out[:3], [0.27, 0.36, 0.0], atol=1e-12)
    # below the deadband: nothing
    ff.reset()
    assert not run(ff, (0.06, 0.08, 0.0, 0.0, 0.0, 0.0)).any()


def test_saturation_in_norm_keeps_the_direction() -> None:
    ff = ForceFeedback(plain_config(force_scale=0.5, max_force_n=3.0))
    out = run(ff, (30.0, 40.0, 0.0, 0.0, 0.0, 0.0), n=5)
    np.testing.assert_allclose(out[:3], [1.8, 2.4, 0.0], atol=1e-12)  # 25 N scaled to 3 N
    assert ff.saturated == 5


def test_slew_limit_ramps_contact_and_engagement() -> None:
    ff = ForceFeedback(plain_config(force_scale=0.5, max_force_rate_n_per_s=100.0))
    cf = (4.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # 2 N at the master
    out = run(ff, cf, n=3, engaged=False)
    assert not out.any()
    # engaged in contact: +0.1 N per 1 ms tick up to 2 N
    got = [ff.step((3 + i) * MS, cf, IDENTITY, np.zeros(3), None, True)[0] for i in range(25)]
    np.testing.assert_allclose(got[:20], 0.1 * np.arange(1, 21), atol=1e-12)
    np.testing.assert_allclose(got[20:], 2.0, atol=1e-12)
    # clutch out: zero at once (the conventional instant release), then a fresh ramp
    assert not ff.step(28 * MS, cf, IDENTITY, np.zeros(3), None, False).any()
    assert ff.step(29 * MS, cf, IDENTITY, np.zeros(3), None, True)[0] == pytest.approx(0.1)
    # a contact that vanishes while engaged is ramped down too (2 N -> 1.9 N in 1 ms)
    run(ff, cf, n=30, t0=30 * MS)
    assert ff.step(60 * MS, np.zeros(6), IDENTITY, np.zeros(3), None, True)[0] == pytest.approx(1.9)


def test_lowpass_is_first_order_at_the_cutoff() -> None:
    ff = ForceFeedback(plain_config(lowpass_hz=50.0))
    run(ff, np.zeros(6), n=2)  # engaged with no contact: the filter seeds at zero
    a = 1.0 - math.exp(-2.0 * math.pi * 50.0 * 1e-3)
    got = [
        ff.step((1 + k) * MS, (1.0, 0, 0, 0, 0, 0), IDENTITY, np.zeros(3), None, True)[0]
        for k in range(1, 6)
    ]
    np.testing.assert_allclose(got, 1.0 - (1.0 - a) ** np.arange(1, 6), rtol=1e-12)


def test_off_by_default_disabled_and_disengaged_give_zero() -> None:
    contact = (0.0, 0.0, 5.0, 0.0, 0.0, 0.0)
    assert not run(ForceFeedback(), contact).any()  # the default config is off
    ff = ForceFeedback(plain_config())
    assert not run(ff, contact, engaged=False).any()
    assert not ff.step(5 * MS, contact, IDENTITY, np.zeros(3)).any()  # engaged defaults to False
    assert run(ff, contact, engaged=True, t0=10 * MS)[2] == pytest.approx(5.0)
    # no state from the arm yet: zero, and not counted as bad input
    assert not ff.step(20 * MS, None, None, np.zeros(3), None, True).any()
    assert ff.rejected == 0


@both_paths
def test_torques_only_when_asked_and_guardable(
    use_numba: bool, caplog: pytest.LogCaptureFixture
) -> None:
    cf = (0.0, 0.0, 0.0, 0.0, 0.0, 0.02)
    kw = {"max_torque_rate_n_m_per_s": 1e3}
    off = ForceFeedback(plain_config(**kw), use_numba=use_numba)
    assert not run(off, cf, cp=(0, 0, 0, *ROT_X_90)).any()  # torque=False: forces only
    on = ForceFeedback(plain_config(torque=True, **kw), use_numba=use_numba)
    out = run(on, cf, cp=(0, 0, 0, *ROT_X_90))
    np.testing.assert_allclose(out, [0, 0, 0, 0, -0.02, 0], atol=1e-12)  # rotated like forces
    sat = ForceFeedback(plain_config(torque=True, max_torque_n_m=0.01, **kw), use_numba=use_numba)
    assert run(sat, cf)[5] == pytest.approx(0.01)
    # with the passivity controller on, torques need the master's angular velocity
    guarded = ForceFeedback(plain_config(torque=True, passivity=True, **kw), use_numba=use_numba)
    with caplog.at_level(logging.WARNING, logger="master_console.haptics"):
        assert not run(guarded, cf, n=5).any()  # a (3,) position: no angular velocity
    assert sum("torques are not rendered" in r.message for r in caplog.records) == 1
    guarded.reset()
    assert run(guarded, cf, master=IDENTITY)[5] == pytest.approx(0.02)  # a (7,) pose: guarded


# ---------------------------------------------------------------------------------------------
# Bad input


@both_paths
def test_non_finite_input_gives_zero_and_is_counted_once_per_burst(
    use_numba: bool, caplog: pytest.LogCaptureFixture
) -> None:
    ff = ForceFeedback(plain_config(max_force_rate_n_per_s=100.0), use_numba=use_numba)
    good = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    bad = (math.nan, 0.0, 0.0, 0.0, 0.0, 0.0)
    t = 0
    with caplog.at_level(logging.INFO, logger="master_console.haptics"):
        for _ in range(30):
            ff.step(t, good, IDENTITY, np.zeros(3), None, True)
            t += MS
        for _ in range(5):
            assert not ff.step(t, bad, IDENTITY, np.zeros(3), None, True).any()
            t += MS
        # back: the force ramps up again from zero instead of jumping
        assert ff.step(t, good, IDENTITY, np.zeros(3), None, True)[0] == pytest.approx(0.1)
        t += MS
        assert not ff.step(t, good, (0, 0, 0, 0, 0, 0, math.inf), np.zeros(3), None, True).any()
        t += MS
        assert not ff.step(t, good, IDENTITY, (0.0, 1e9, 0.0), None, True).any()  # absurd
        t += MS
        assert not ff.step(t, good, (0, 0, 0, 0, 0, 0, 0), np.zeros(3), None, True).any()
    assert ff.rejected == 8
    warnings = [r for r in caplog.records if "sending zero force" in r.message]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)  # per burst
    assert any("again after 5 rejected" in r.message for r in caplog.records)
    # a bad master sample counts even with the clutch out; a bad wrench then does not matter
    ff.step(t + MS, bad, IDENTITY, (math.nan, 0.0, 0.0), None, False)
    assert ff.rejected == 9
    ff.step(t + 2 * MS, bad, IDENTITY, np.zeros(3), None, False)
    assert ff.rejected == 9


@both_paths
def test_output_is_always_finite_and_bounded(use_numba: bool) -> None:
    rng = np.random.default_rng(7)
    cfg = dataclasses.replace(ForceFeedbackConfig(enabled=True, torque=True), force_scale=5.0)
    ff = ForceFeedback(cfg, use_numba=use_numba)
    specials = np.array([math.nan, math.inf, -math.inf, 1e300, -1e7, 0.0])
    t = 0
    for i in range(3000):
        cf = rng.normal(0, 20, 6)
        cp = np.r_[rng.normal(0, 0.1, 3), rng.normal(0, 1, 4)]
        master = np.r_[rng.normal(0, 0.05, 3), rng.normal(0, 1, 4)]
        for a in (cf, cp, master):
            if rng.random() < 0.05:
                a[rng.integers(a.size)] = rng.choice(specials)
        t += int(rng.integers(-MS, 3 * MS))
        out = ff.step(t, cf, cp, master, None, bool(i % 200 < 150))
        assert np.isfinite(out).all()
        assert np.linalg.norm(out[:3]) <= cfg.max_force_n * (1 + 1e-12)
        assert np.linalg.norm(out[3:]) <= cfg.max_torque_n_m * (1 + 1e-12)
    assert ff.rejected > 0


# ---------------------------------------------------------------------------------------------
# The passivity observer and controller


def constant_push(ff: ForceFeedback, f_master: float, v: float, n: int, estimate: bool) -> None:
    """The device pushes ``f_master`` along +x while the hand moves at ``v`` along +x."""
    for i in range(n + 1):
        x = (v * i * 1e-3, 0.0, 0.0)
        vel = None if estimate else (v, 0.0, 0.0)
        ff.step(i * MS, (f_master, 0, 0, 0, 0, 0), IDENTITY, x, vel, True)


@pytest.mark.parametrize("estimate", [False, True], ids=["device_velocity", "finite_difference"])
@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["along_motion", "against_motion"])
def test_observer_energy_is_force_times_displacement(estimate: bool, sign: float) -> None:
    """E = −Σ f·v·dt: a force along the motion gives energy to the hand (E = −f·d < 0, active);
    one against it takes energy from the hand (E = +f·d, a spring being pressed)."""
    ff = ForceFeedback(plain_config(passivity=False, velocity_lowpass_hz=0.0))
    f, v, n = 1.0, 0.1, 100  # 1 N over 0.1 m/s × 0.1 s = 10 mm: 10 mJ
    constant_push(ff, sign * f, v, n, estimate)
    assert ff.energy_j == pytest.approx(-sign * f * v * n * 1e-3, rel=1e-9)
    assert ff.damping_n_s_per_m == 0.0 and ff.dissipated_j == 0.0
    np.testing.assert_allclose(ff.velocity[:3], [v, 0.0, 0.0], rtol=1e-9)


def test_controller_dissipates_exactly_what_the_observer_sees() -> None:
    ff = ForceFeedback(plain_config(passivity=True, max_damping_n_s_per_m=30.0))
    constant_push(ff, 1.0, 0.1, 100, estimate=False)
    # α = f·v / v² = 10 N·s/m cancels the active force entirely; E stays at 0
    assert ff.damping_n_s_per_m == pytest.approx(10.0)
    assert ff.output[0] == pytest.approx(0.0, abs=1e-12)
    assert ff.energy_j == pytest.approx(0.0, abs=1e-15)
    assert ff.dissipated_j == pytest.approx(0.01, rel=1e-9)  # = f·d
    assert ff.damped == 100
    # a force against the motion is passive: no damping, E = +f·d
    ff.reset()
    constant_push(ff, -1.0, 0.1, 100, estimate=False)
    assert ff.damping_n_s_per_m == 0.0 and ff.damped == 0
    assert ff.energy_j == pytest.approx(0.01, rel=1e-9)


def test_controller_damping_is_bounded() -> None:
    ff = ForceFeedback(plain_config(passivity=True, max_damping_n_s_per_m=30.0))
    constant_push(ff, 1.0, 0.01, 100, estimate=False)  # needs α = 100 > 30
    assert ff.damping_n_s_per_m == 30.0
    assert ff.output[0] == pytest.approx(1.0 - 30.0 * 0.01)
    assert ff.energy_j == pytest.approx(-0.7 * 0.01 * 0.1, rel=1e-9)  # what was left over


def test_energy_restarts_at_each_engagement() -> None:
    ff = ForceFeedback(plain_config(passivity=False))
    constant_push(ff, -1.0, 0.1, 50, estimate=False)
    assert ff.energy_j > 0
    ff.step(60 * MS, np.zeros(6), IDENTITY, np.zeros(3), None, False)
    assert ff.energy_j > 0  # kept while released, for inspection
    ff.step(61 * MS, np.zeros(6), IDENTITY, np.zeros(3), None, True)
    assert ff.energy_j == 0.0


def test_angular_velocity_from_master_quaternions() -> None:
    ff = ForceFeedback(plain_config(velocity_lowpass_hz=0.0))
    w = 1.0  # rad/s about z
    for i in range(20):
        a = w * i * 1e-3
        pose = (0.0, 0.0, 0.05 * i * 1e-3, 0.0, 0.0, math.sin(a / 2), math.cos(a / 2))
        ff.step(i * MS, np.zeros(6), IDENTITY, pose, None, False)
    np.testing.assert_allclose(ff.velocity, [0, 0, 0.05, 0, 0, w], atol=1e-9)


# ---------------------------------------------------------------------------------------------
# numba and plain Python


def scenario(ff: ForceFeedback) -> np.ndarray:
    """A mixed run: contact, rotation, engagement changes, bad samples; every output and
    observable per tick."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(600):
        a = 0.3 * math.sin(i * 0.01)
        pose = np.array([0.01 * math.sin(i * 0.02), 0.0, 0.002 * i * 1e-3, 0, 0, 0, 1.0])
        pose[3:] = (0.0, math.sin(a / 2), 0.0, math.cos(a / 2))
        cf = np.r_[rng.normal(0, 2, 3), rng.normal(0, 0.02, 3)]
        cp = np.r_[0.1, 0.0, 0.2, rng.normal(0, 1, 4)]
        if i % 97 == 5:
            cf[2] = math.nan
        vel = (0.02, 0.0, 0.0) if 300 <= i < 400 else None
        out = ff.step(i * MS, cf, cp, pose, vel, i % 250 < 200)
        rows.append(np.r_[out, ff.energy_j, ff.energy_rot_j, ff.damping_n_s_per_m, ff.dissipated_j])
    return np.array(rows)


def test_numba_and_plain_paths_agree() -> None:
    cfg = ForceFeedbackConfig(enabled=True, torque=True, force_scale=0.5, max_damping_n_s_per_m=5.0)
    fast = scenario(ForceFeedback(cfg, use_numba=True))
    slow = scenario(ForceFeedback(cfg, use_numba=False))
    assert np.abs(fast[:, :6]).max() > 0.5  # the scenario renders something
    assert (fast[:, 8] > 0).any()  # and the controller acted
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-15)
    if NUMBA_ENABLED:  # compiled once, at construction: never again inside the loop
        assert len(feedback_kernel.signatures) == 1


def test_plain_path_is_plain_all_the_way_down() -> None:
    k = kernel_for(feedback_kernel, use_numba=False)
    assert isinstance(k, types.FunctionType)
    for helper in ("_plausible", "_quat_ok", "_rotate", "_update_velocity", "_cut"):
        assert isinstance(k.__globals__[helper], types.FunctionType)
    if NUMBA_ENABLED:
        assert kernel_for(feedback_kernel, use_numba=True) is feedback_kernel


# ---------------------------------------------------------------------------------------------
# The simulated haptic master


def test_simulated_device_obeys_the_input_device_contract() -> None:
    dev = SimulatedHapticDevice(position_m=(0.01, 0.02, 0.03))
    assert isinstance(dev, InputDevice)
    assert dev.has_force_feedback
    assert dev.latest() is None  # before connect
    with pytest.raises(RuntimeError, match="before connect"):
        dev.send_force(np.zeros(6))
    with dev:
        s = dev.latest()
        assert s is not None and s.twist is None
        np.testing.assert_array_equal(s.pose, [0.01, 0.02, 0.03, 0, 0, 0, 1])
        assert not s.pose.flags.writeable
        assert s.buttons.clutch and s.buttons.operator_present
        assert dev.latest() is s  # nothing new yet
        dev.advance(1e-3)
        s2 = dev.latest()
        assert s2 is not None and s2.seq == s.seq + 1 and s2.t_ns == s.t_ns + MS
        dev.clutch = False
        s3 = dev.latest()
        assert s3 is not None and not s3.buttons.clutch and s3.seq == s2.seq + 1
        with pytest.raises(ValueError, match=r"shape \(6,\)"):
            dev.send_force(np.zeros(3))
        with pytest.raises(ValueError, match="finite"):
            dev.send_force([0, 0, math.nan, 0, 0, 0])
        with pytest.raises(ValueError, match="whole number of steps"):
            dev.advance(1.5e-4)
    assert dev.latest() is None
    with pytest.raises(ValueError, match="dof"):
        SimulatedHapticDevice(dof=2)
    with pytest.raises(ValueError, match="mass_kg"):
        SimulatedHapticDevice(mass_kg=0.0)


def test_simulated_device_step_response_is_exact() -> None:
    """A 1 N step on m = 0.5 kg, k = 200 N/m, b = 2 N·s/m: the damped oscillator's solution."""
    m, k, b, f = 0.5, 200.0, 2.0, 1.0
    dev = SimulatedHapticDevice(dof=1, report_twist=True)
    dev.connect()
    dev.send_force([f, 5.0, 0, 0, 0, 0.1])  # dof=1: y is not simulated; torques move nothing
    wn = math.sqrt(k / m)
    zeta = b / (2 * math.sqrt(k * m))
    wd = wn * math.sqrt(1 - zeta**2)
    for i in range(1, 301):
        dev.advance(1e-3)
        t = i * 1e-3
        x = (
            f
            / k
            * (
                1
                - math.exp(-zeta * wn * t) * (math.cos(wd * t) + zeta * wn / wd * math.sin(wd * t))
            )
        )
        assert dev.position_m[0] == pytest.approx(x, rel=1e-9, abs=1e-15)
    assert dev.position_m[1] == 0.0
    s = dev.latest()
    assert s is not None and s.twist is not None and s.twist[0] == dev.velocity_m_s[0]


def test_simulated_device_counts_the_work_done_on_the_hand() -> None:
    # no hand spring or damping: 1 N for 1 s on 0.5 kg moves 1 m; the work is ½mv² = 1 J
    dev = SimulatedHapticDevice(dof=3, hand_stiffness_n_per_m=0.0, hand_damping_n_s_per_m=0.0)
    dev.connect()
    dev.send_force([0, 0, 1.0, 0, 0, 0])
    dev.advance(1.0)
    assert dev.position_m[2] == pytest.approx(1.0, rel=1e-9)
    assert dev.work_on_hand_j == pytest.approx(1.0, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# A stiff virtual wall under delay, closed through the simulated hand

SCALE = 0.2  # arm motion per master motion (5:1)
WALL_N_PER_M = 2000.0  # at the arm
WALL_M = 0.004  # arm position of the wall: 20 mm of master travel
HAND_TARGET_M = 0.030  # where the hand wants to go (10 mm into the wall, master side)
FORCE_SCALE = 0.5  # power gain 2.5, apparent stiffness 200 N/m = the hand's


@functools.cache
def wall_loop(delay_s: float, passivity: bool, seconds: float = 8.0) -> dict[str, np.ndarray]:
    """The console loop at 1 kHz: master → (delay/2) → arm at a wall → (delay/2) → feedback.

    The hand (0.5 kg, 200 N/m, 2 N·s/m) reaches for a point 10 mm (master) beyond the wall in
    0.5 s and then holds. The wrench is fed back in the tool frame (tool not rotated) through
    the default shaping (deadband, 50 Hz low-pass, slew and saturation), the master velocity is
    the finite difference of the device's positions. The hand is integrated exactly over each
    1 ms tick (force and intended position held). Results are cached: treat them as read-only.
    """
    dev = SimulatedHapticDevice(
        dof=1, step_s=1e-3, intended=lambda t: (min(t / 0.5, 1.0) * HAND_TARGET_M, 0.0, 0.0)
    )
    dev.connect()
    cfg = ForceFeedbackConfig(enabled=True, force_scale=FORCE_SCALE, passivity=passivity)
    ff = ForceFeedback(cfg, motion_scale=SCALE)
    half = round(delay_s / 2 * 1000)
    to_arm: deque[float] = deque([0.0] * half)
    to_console: deque[float] = deque([0.0] * half)
    n = round(seconds * 1000)
    x, energy, work = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        s = dev.latest()
        assert s is not None and s.pose is not None
        to_arm.append(float(s.pose[0]))
        xa = SCALE * to_arm.popleft()
        to_console.append(-WALL_N_PER_M * (xa - WALL_M) if xa > WALL_M else 0.0)
        cf = (to_console.popleft(), 0.0, 0.0, 0.0, 0.0, 0.0)
        dev.send_force(ff.step(s.t_ns, cf, (xa, 0.0, 0.1, *IDENTITY[3:]), s.pose, None, True))
        dev.advance(1e-3)
        x[i], energy[i], work[i] = s.pose[0], ff.energy_j, dev.work_on_hand_j
    return {"x": x, "energy": energy, "work": work}


def tail_amplitude(x: np.ndarray) -> float:
    """Peak-to-peak of the last 2 s (m)."""
    return float(np.ptp(x[-2000:]))


@pytest.mark.parametrize("delay_s", [0.05, 0.2], ids=["50ms", "200ms"])
def test_delayed_wall_oscillates_without_the_passivity_controller(delay_s: float) -> None:
    r = wall_loop(delay_s, passivity=False)
    # a sustained limit cycle: tens of millimetres peak to peak after 6 s
    assert tail_amplitude(r["x"]) > 0.02
    # the device keeps pushing energy into the hand, and more of it as time goes on
    work = r["work"]
    assert work[3999] > 0.1
    assert work[-1] > work[3999] + 0.05
    # the observer sees it: the teleoperator has been active (E < 0), by the same order
    assert r["energy"][-1] < -0.1


@pytest.mark.parametrize("delay_s", [0.05, 0.2], ids=["50ms", "200ms"])
def test_delayed_wall_settles_with_the_passivity_controller(delay_s: float) -> None:
    r = wall_loop(delay_s, passivity=True)
    unguarded = wall_loop(delay_s, passivity=False)
    assert tail_amplitude(r["x"]) < 1e-4  # settled: under 0.1 mm peak to peak
    # where statics put it: k_h (x_h − x) = g (k_w (s x − x_wall) − deadband)
    g, kh, d = FORCE_SCALE, 200.0, ForceFeedbackConfig().deadband_n
    x_eq = (kh * HAND_TARGET_M + g * WALL_N_PER_M * WALL_M + g * d) / (
        kh + g * WALL_N_PER_M * SCALE
    )
    assert r["x"][-1] == pytest.approx(x_eq, abs=1e-5)
    # the observed energy stays near zero: it dips below only while the damping is at its
    # cap or the handle is nearly still (a damper cannot take energy from a still hand)
    assert r["energy"].min() > -0.02
    assert r["energy"].min() > unguarded["energy"].min() / 20  # a dip ≥ 20× smaller
    assert r["work"][-1] < 0.01 < unguarded["work"][-1]
