"""Tremor filters: the public API, kernel contracts, and each filter's signal behaviour."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import signal

from filters import FILTERS, NUMBA_ENABLED, Filter, make_filter
from filters._jit import pick as kernel_for
from filters.adaptive import (
    BK_COLS,
    BK_PH_C,
    BK_PH_S,
    BK_ROT_C,
    BK_ROT_S,
    BMFLC,
    WFLC,
    bank_advance,
    highpass_coef,
    prefilter_response,
)
from filters.lti import CriticallyDamped, lti_step
from filters.registry import REGISTRY, filter_params

FS = 1000.0
RATES = (250.0, 1000.0, 2000.0)
ALL_KINDS = ("default", "butterworth", "critically_damped", "one_euro", "wflc", "bmflc", "kalman")
ADAPTIVE = ("default", "wflc", "bmflc", "kalman")
X0 = np.array([0.12, -0.05, 0.31])  # a master position (m)


def realistic(n: int, fs: float = FS, seed: int = 0) -> np.ndarray:
    """An (n, 3) master trajectory: offset + 0.5 Hz voluntary motion + 10 Hz tremor + noise."""
    t = np.arange(n)[:, None] / fs
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=(2, 3))
    voluntary = 0.005 * np.sin(2 * np.pi * 0.5 * t + phase[0])
    tremor = 150e-6 * np.sin(2 * np.pi * 10.0 * t + phase[1])
    return X0 + voluntary + tremor + 5e-6 * rng.standard_normal((n, 3))


def stepped(f: Filter, X: np.ndarray) -> np.ndarray:
    return np.array([f.step(x) for x in X]).reshape(-1, 3)


def tremor_removed(y: np.ndarray, v: np.ndarray, t: np.ndarray) -> float:
    """1 − RMS(y − v) / RMS(t): the fraction of the tremor's RMS the filter removed."""
    return 1.0 - float(np.sqrt(np.mean((y - v) ** 2)) / np.sqrt(np.mean(t**2)))


def lag_samples(y: np.ndarray, v: np.ndarray, fs: float, max_lag: int) -> int:
    """The lag (samples) that best aligns the slow (< 2 Hz) parts of y and v; > 0: y is late."""
    lp = signal.butter(2, 2.0, fs=fs, output="sos")
    yl = signal.sosfiltfilt(lp, y)
    vl = signal.sosfiltfilt(lp, v)
    edge = int(fs)  # leave out the filtfilt edges
    yl, vl = yl[edge:-edge], vl[edge:-edge]
    yl, vl = yl - yl.mean(), vl - vl.mean()
    lags = np.arange(-max_lag, max_lag + 1)
    m = max_lag
    scores = [np.dot(yl[m + lag : len(yl) - m + lag], vl[m : len(vl) - m]) for lag in lags]
    return int(lags[int(np.argmax(scores))])


# ---------------------------------------------------------------------------------------------
# The API


def test_kinds_are_listed() -> None:
    assert set(FILTERS) == set(ALL_KINDS)
    for kind in FILTERS:
        f = make_filter(kind, FS)
        assert isinstance(f, Filter)
        assert isinstance(f.kind, str) and f.kind
        assert isinstance(f.params, dict)
    assert isinstance(NUMBA_ENABLED, bool)


def test_default_goes_through_the_registry() -> None:
    cls, fixed = REGISTRY["default"]
    X = realistic(500)
    f = make_filter("default", FS)
    assert type(f) is cls
    np.testing.assert_array_equal(f.process(X), cls(FS, **fixed).process(X))
    assert filter_params("default").items() >= fixed.items()
    if cls is BMFLC:  # for now: the BMFLC with prefilter compensation
        assert f.params["compensate_prefilter"] is True
        assert make_filter("bmflc", FS).params["compensate_prefilter"] is False


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ValueError, match=r"kalman.*butterworth.*bmflc"):
        make_filter("lowpass", FS)


@pytest.mark.parametrize(
    ("kind", "params", "named"),
    [
        ("butterworth", {"cutof_hz": 5.0}, "cutof_hz"),
        ("butterworth", {"cutoff_hz": -1.0}, "cutoff_hz"),
        ("butterworth", {"cutoff_hz": 0.0}, "cutoff_hz"),
        ("butterworth", {"cutoff_hz": 500.0}, "cutoff_hz"),  # = Nyquist at 1 kHz
        ("butterworth", {"cutoff_hz": math.nan}, "cutoff_hz"),
        ("butterworth", {"order": 0}, "order"),
        ("butterworth", {"order": 2.5}, "order"),
        ("critically_damped", {"cutoff_hz": 600.0}, "cutoff_hz"),
        ("critically_damped", {"order": True}, "order"),
        ("one_euro", {"beta": -1.0}, "beta"),
        ("one_euro", {"min_cutoff_hz": math.inf}, "min_cutoff_hz"),
        ("one_euro", {"d_cutoff_hz": "1"}, "d_cutoff_hz"),
        ("wflc", {"mu1": 0.0}, "mu1"),
        ("wflc", {"f_high_hz": 5.0}, "f_high_hz"),
        ("wflc", {"f0_hz": 20.0}, "f0_hz"),
        ("wflc", {"harmonics": 0}, "harmonics"),
        ("wflc", {"prefilter_hz": 7.0}, "prefilter_hz"),
        ("bmflc", {"df_hz": -0.5}, "df_hz"),
        ("bmflc", {"mu": 5000.0}, "mu"),
        ("bmflc", {"compensate_prefilter": 1}, "compensate_prefilter"),
        ("default", {"bogus": 1}, "bogus"),
    ],
)
def test_bad_params_are_named(kind: str, params: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make_filter(kind, FS, **params)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf])
def test_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        make_filter("butterworth", rate)


@pytest.mark.parametrize("kind", FILTERS)
def test_params_rebuild_the_same_filter(kind: str) -> None:
    X = realistic(400)
    f = make_filter(kind, FS)
    g = make_filter(f.kind, FS, **f.params)
    np.testing.assert_array_equal(f.process(X), g.process(X))


# ---------------------------------------------------------------------------------------------
# Contracts every kind keeps


@pytest.mark.parametrize("kind", FILTERS)
def test_process_equals_step(kind: str) -> None:
    X = realistic(1500, seed=1)
    by_block = make_filter(kind, FS).process(X)
    np.testing.assert_array_equal(stepped(make_filter(kind, FS), X), by_block)
    f = make_filter(kind, FS)  # blocks of any size continue one another
    parts = [f.process(X[a:b]) for a, b in [(0, 1), (1, 700), (700, 700), (700, 1500)]]
    np.testing.assert_array_equal(np.concatenate(parts), by_block)


@pytest.mark.parametrize("kind", FILTERS)
def test_step_returns_a_new_array(kind: str) -> None:
    f = make_filter(kind, FS)
    X = realistic(3)
    y0 = f.step(X[0])
    kept = y0.copy()
    y1 = f.step(X[1])
    assert y1 is not y0 and y0.shape == (3,) and y0.dtype == np.float64
    np.testing.assert_array_equal(y0, kept)
    y1[:] = 99.0  # a caller scribbling on a result does not touch the filter
    np.testing.assert_array_equal(f.step(X[2]), make_filter(kind, FS).process(X)[2])


@pytest.mark.parametrize("kind", FILTERS)
def test_step_takes_any_3_vector(kind: str) -> None:
    X = realistic(8, seed=11)
    ref = make_filter(kind, FS).process(X)
    f = make_filter(kind, FS)
    kstep = getattr(f, "_kstep", None) or getattr(f, "_step_k", None)
    versions = len(getattr(kstep, "signatures", ()))
    readonly = X[3].copy()
    readonly.flags.writeable = False
    wide = np.zeros((3, 4))
    wide[:, 1] = X[4]
    inputs = [
        X[0],
        list(X[1]),
        tuple(X[2]),
        readonly,
        wide[:, 1],  # strided view
        np.frombuffer(X[5].tobytes()),  # read-only, as from a message
        X[6].astype(np.float32).astype(np.float64),
        X[7],
    ]
    got = np.array([f.step(x) for x in inputs])
    np.testing.assert_allclose(got[:6], ref[:6], rtol=0, atol=0)
    assert np.all(np.isfinite(got))
    if versions:  # compiled: every input kind was compiled at construction, none since
        assert len(kstep.signatures) == versions


@pytest.mark.parametrize("kind", FILTERS)
def test_numba_and_plain_agree(kind: str) -> None:
    X = realistic(300, seed=2)
    compiled = make_filter(kind, FS, use_numba=True)
    plain = make_filter(kind, FS, use_numba=False)
    np.testing.assert_allclose(plain.process(X), compiled.process(X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(stepped(plain, X[:50]), compiled.process(X[:50]), atol=1e-9)


def test_plain_path_is_plain_all_the_way_down() -> None:
    k = kernel_for(lti_step, use_numba=False)
    assert isinstance(k, types.FunctionType)
    for helper in ("finite3", "sos_settle", "sos_axis"):
        assert isinstance(k.__globals__[helper], types.FunctionType)
    if NUMBA_ENABLED:
        assert kernel_for(lti_step, use_numba=True) is lti_step


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("kind", FILTERS)
def test_constant_passes_from_the_first_sample(kind: str, rate: float) -> None:
    n = int(2 * rate)
    X = np.tile(X0, (n, 1))
    f = make_filter(kind, rate)
    np.testing.assert_allclose(f.step(X0), X0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.process(X), X, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("kind", FILTERS)
def test_unit_dc_gain_after_motion(kind: str, rate: float) -> None:
    """Motion, then the hand holds still: the output settles exactly where the hand is.

    The BMFLC settles slowest: its bins' phases all realign every 1/df = 2 s, and the weight
    patterns that cancel between realignments decay only then (~4× per 2 s).
    """
    moving = realistic(int(2 * rate), fs=rate, seed=3)
    held = np.tile(moving[-1], (int(12 * rate), 1))
    y = make_filter(kind, rate).process(np.concatenate([moving, held]))
    assert np.all(np.isfinite(y))
    tol = 1e-6 if kind in ADAPTIVE else 1e-9
    np.testing.assert_allclose(y[-int(0.5 * rate) :], held[-int(0.5 * rate) :], rtol=0, atol=tol)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("kind", FILTERS)
def test_process_equals_step_at_any_rate(kind: str, rate: float) -> None:
    X = realistic(200, fs=rate, seed=4)
    np.testing.assert_array_equal(
        stepped(make_filter(kind, rate), X), make_filter(kind, rate).process(X)
    )


def _impulse_l1(sos: np.ndarray, n: int = 20000) -> float:
    h = signal.sosfilt(np.ascontiguousarray(sos), np.r_[1.0, np.zeros(n - 1)])
    return float(np.abs(h).sum())


def gain_bound(f: Filter) -> float:
    """K with |y| <= K·max|x| for any input (starting settled at the first sample).

    LTI: y[n] = Σ h[k]·x[n−k] with x before the start equal to x[0], so K = ||h||₁ (computed:
    ~1.09 for the 2nd-order 6 Hz Butterworth, 1 for the critically damped filter, whose impulse
    response is positive). 1€: each output is a convex combination of the input and the last
    output, K = 1. Adaptive: y = x − ŝ, and ŝ tracks the prefiltered signal, whose peak is at
    most ||h_pf||₁·max|x| (~2.1); we allow 1.5× that for the LMS and the compensation, so
    K = 1 + 1.5·||h_pf||₁ ≈ 4.2 (the worst seen on steps, squares and noise is 2.2).
    """
    if f.kind in ("butterworth", "critically_damped"):
        return _impulse_l1(f.sos) * (1 + 1e-9) + 1e-12
    if f.kind == "one_euro":
        return 1.0 + 1e-12
    if f.kind in ("wflc", "bmflc"):
        p = f.params
        pf = highpass_coef(p["prefilter_order"], p["prefilter_hz"], f.rate_hz)
        return 1.0 + 1.5 * _impulse_l1(pf[:, :6])
    if f.kind == "kalman":
        # |y - x| <= g * sqrt(2 * guard power) and the guard band-pass, settled at x0, outputs
        # at most ||h||_1 * 2 max|x| (the step from x0 to the farthest sample)
        g = f.params["max_correction_gain"]
        return 1.0 + g * math.sqrt(2.0) * 2.0 * _impulse_l1(f.guard_sos)
    return 5.0  # a kind added later: a loose bound until it brings its own argument


@pytest.mark.parametrize("kind", FILTERS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    X=arrays(
        np.float64,
        st.tuples(st.integers(1, 400), st.just(3)),
        elements=st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False),
    ),
    scale=st.sampled_from([1e-4, 1.0, 1e3]),
    rate=st.sampled_from(RATES),
)
def test_bounded_input_bounded_output(kind: str, X: np.ndarray, scale: float, rate: float) -> None:
    X = X * scale
    f = make_filter(kind, rate)
    y = f.process(X)
    bound = gain_bound(f) * np.abs(X).max()
    assert np.abs(y).max() <= bound + 1e-300


BAD_SAMPLES = [
    np.array([math.nan, 0.0, 0.0]),
    np.array([0.0, math.inf, 0.0]),
    np.array([0.0, 0.0, -math.inf]),
    [0.1, math.nan, 0.2],
    np.array([0.1, 0.2], dtype=np.float64),
    np.zeros(4),
    np.zeros((1, 3)),
    np.zeros((3, 1)),
    np.array([1.0, 2.0, 3.0], dtype=np.float32) * np.float32(math.inf),
    "abc",
    None,
]


@pytest.mark.parametrize("kind", FILTERS)
def test_bad_samples_are_rejected_and_change_nothing(kind: str) -> None:
    X = realistic(120, seed=5)
    ref = make_filter(kind, FS).process(X)
    f = make_filter(kind, FS)
    for bad in BAD_SAMPLES:  # before the first sample: the first good one still starts it
        with pytest.raises(ValueError):
            f.step(bad)
    got = [f.step(X[0])]
    for i in range(1, len(X)):
        bad = BAD_SAMPLES[i % len(BAD_SAMPLES)]
        with pytest.raises(ValueError):
            f.step(bad)
        got.append(f.step(X[i]))
    np.testing.assert_array_equal(np.array(got), ref)


@pytest.mark.parametrize("kind", FILTERS)
def test_bad_blocks_are_rejected_and_change_nothing(kind: str) -> None:
    X = realistic(200, seed=6)
    ref = make_filter(kind, FS).process(X)
    f = make_filter(kind, FS)
    head = f.process(X[:100])
    poisoned = X[100:].copy()
    poisoned[50, 1] = math.nan
    for bad in (poisoned, X[100:, :2], X[100:].ravel()):
        with pytest.raises(ValueError):
            f.process(bad)
    with pytest.raises(ValueError, match="not finite"):
        f.step(np.array([0.0, math.nan, 0.0]))
    np.testing.assert_array_equal(np.concatenate([head, f.process(X[100:])]), ref)


@pytest.mark.parametrize("kind", FILTERS)
def test_reset_restores_the_initial_behaviour(kind: str) -> None:
    X = realistic(800, seed=7)
    f = make_filter(kind, FS)
    first = f.process(X)
    f.process(realistic(300, seed=8) + 0.02)
    f.reset()
    np.testing.assert_array_equal(f.process(X), first)
    f.reset()
    np.testing.assert_array_equal(stepped(f, X[:10]), first[:10])


# ---------------------------------------------------------------------------------------------
# LTI filters


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("butterworth", {}),
        ("butterworth", {"order": 1, "cutoff_hz": 3.0}),
        ("butterworth", {"order": 5, "cutoff_hz": 10.0}),
        ("critically_damped", {}),
        ("critically_damped", {"order": 3, "cutoff_hz": 6.0}),
    ],
)
def test_lti_equals_scipy_sosfilt(kind: str, params: dict, rate: float) -> None:
    X = realistic(3000, fs=rate, seed=9)
    f = make_filter(kind, rate, **params)
    expected, _ = signal.sosfilt(f.sos, X, axis=0, zi=f.zi_for(X[0]))
    np.testing.assert_allclose(f.process(X), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_critically_damped_has_no_overshoot(order: int, rate: float) -> None:
    f = make_filter("critically_damped", rate, order=order)
    X = np.r_[np.zeros((1, 3)), np.tile([1.0, -2.0, 0.5], (int(3 * rate), 1))]
    y = f.process(X)
    assert np.all(y[:, 0] <= 1.0 + 1e-12) and np.all(y[:, 1] >= -2.0 - 1e-12)
    assert np.all(np.diff(y[:, 0]) >= -1e-15)  # monotonic
    np.testing.assert_allclose(y[-1], X[-1], atol=1e-6)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_critically_damped_design(order: int) -> None:
    f = CriticallyDamped(FS, order=order, cutoff_hz=4.0)
    sos = f.sos
    np.testing.assert_allclose(sos[:, :3].sum(1) / sos[:, 3:].sum(1), 1.0, rtol=0, atol=1e-14)
    w = 2 * FS * math.tan(math.pi * 4.0 / FS)
    pole = (2 * FS - w) / (2 * FS + w)
    assert sos.shape == ((order + 1) // 2, 6)
    poles = np.concatenate([np.roots(np.trim_zeros(sec[3:], "b")) for sec in sos])
    zeros = np.concatenate([np.roots(np.trim_zeros(sec[:3], "b")) for sec in sos])
    assert len(poles) == len(zeros) == order
    np.testing.assert_allclose(poles, pole, atol=1e-5)  # a repeated pole: roots are less exact
    np.testing.assert_allclose(zeros, -1.0, atol=1e-5)
    # (w/(s+w))^n is −3.01·n dB at the prewarped cutoff
    _, h = signal.sosfreqz(sos, worN=[4.0], fs=FS)
    assert 20 * np.log10(abs(h[0])) == pytest.approx(-10 * np.log10(2) * order, abs=1e-9)


def _gain_db(f: Filter, freq: float, fs: float = FS) -> float:
    t = np.arange(int(4 * fs)) / fs
    x = np.sin(2 * np.pi * freq * t)
    y = f.process(np.stack([x, x, x], 1))[:, 0]
    tail = slice(int(2 * fs), None)  # steady state
    return 20 * np.log10(np.sqrt(np.mean(y[tail] ** 2)) / np.sqrt(np.mean(x[tail] ** 2)))


@pytest.mark.parametrize(("freq", "table_db"), [(8.0, -6.0), (10.0, -9.0), (12.0, -12.0)])
def test_butterworth_attenuation_matches_references(freq: float, table_db: float) -> None:
    """REFERENCES.md: 2nd-order Butterworth 6 Hz at 1 kHz, −6/−9/−12 dB at 8/10/12 Hz."""
    f = make_filter("butterworth", FS, order=2, cutoff_hz=6.0)
    exact = -10 * np.log10(1 + (freq / 6.0) ** 4)
    assert _gain_db(f, freq) == pytest.approx(exact, abs=0.1)
    assert _gain_db(f, freq) == pytest.approx(table_db, abs=0.5)


def test_butterworth_lag_matches_references() -> None:
    """REFERENCES.md: 38 ms lag at 0.5–1 Hz for the 2nd-order 6 Hz Butterworth."""
    t = np.arange(int(10 * FS)) / FS
    v = 0.01 * np.sin(2 * np.pi * 0.5 * t)
    y = make_filter("butterworth", FS).process(np.stack([v, v, v], 1))[:, 0]
    assert 36 <= lag_samples(y, v, FS, max_lag=80) <= 40


# ---------------------------------------------------------------------------------------------
# 1€


def test_one_euro_without_beta_is_a_first_order_low_pass() -> None:
    X = realistic(1000, seed=10)
    f = make_filter("one_euro", FS, beta=0.0, min_cutoff_hz=2.0)
    a = 1.0 / (1.0 + FS / (2 * math.pi * 2.0))
    expected, _ = signal.lfilter([a], [1.0, a - 1.0], X, axis=0, zi=((1 - a) * X[0])[None, :])
    np.testing.assert_allclose(f.process(X), expected, rtol=0, atol=1e-12)


def test_one_euro_speed_opens_the_filter() -> None:
    t = np.arange(int(1 * FS)) / FS
    ramp = np.stack([0.1 * t] * 3, 1)  # 0.1 m/s: a fast voluntary move
    slow = make_filter("one_euro", FS, beta=0.0).process(ramp)
    fast = make_filter("one_euro", FS).process(ramp)
    assert np.abs(ramp - fast)[-1, 0] < 0.6 * np.abs(ramp - slow)[-1, 0]


# ---------------------------------------------------------------------------------------------
# Adaptive filters


def _ramp_plus_tone(freqs: list[float], amp_rms: float, seconds: float, fs: float = FS):
    t = np.arange(int(seconds * fs))[:, None] / fs
    v = X0 + np.array([0.01, 0.005, -0.01]) * t  # slow voluntary ramp (m/s)
    phases = np.array([0.0, 1.0, 2.0])
    tremor = sum(np.sin(2 * np.pi * f * t + (i + 1) * phases) for i, f in enumerate(freqs))
    tremor = tremor * amp_rms * np.sqrt(2 / len(freqs))
    return v, tremor


@pytest.mark.parametrize("amp_rms", [50e-6, 250e-6])
def test_wflc_locks_onto_a_tremor_and_removes_it(amp_rms: float) -> None:
    v, tremor = _ramp_plus_tone([9.5], amp_rms, 3.0)
    f = make_filter("wflc", FS)
    assert isinstance(f, WFLC)
    y = f.process((v + tremor)[:1200])
    np.testing.assert_allclose(f.frequency_hz, 9.5, atol=0.2)  # within ~1 s
    y = np.concatenate([y, f.process((v + tremor)[1200:])])
    np.testing.assert_allclose(f.frequency_hz, 9.5, atol=0.01)
    last = slice(-1000, None)
    assert tremor_removed(y[last], v[last], tremor[last]) >= 0.9


def test_wflc_prefilter_compensation_matters() -> None:
    v, tremor = _ramp_plus_tone([9.5], 100e-6, 3.0)
    last = slice(-1000, None)
    removed = {}
    for comp in (False, True):
        f = make_filter("wflc", FS, prefilter_order=2, prefilter_hz=2.0, compensate_prefilter=comp)
        y = f.process(v + tremor)
        removed[comp] = tremor_removed(y[last], v[last], tremor[last])
    # uncompensated, the 17° lead of the prefilter at 9.5 Hz leaves |1 − e^{j17°}| ≈ 30 %
    assert 0.6 <= removed[False] <= 0.8
    assert removed[True] >= 0.95


@pytest.mark.parametrize("tone_hz", [3.0, 25.0])
def test_wflc_frequency_stays_in_its_band(tone_hz: float) -> None:
    v, tremor = _ramp_plus_tone([tone_hz], 200e-6, 2.0)
    f = make_filter("wflc", FS)
    for block in np.array_split(v + tremor, 20):
        f.process(block)
        assert np.all((f.frequency_hz >= 6.0 - 1e-9) & (f.frequency_hz <= 16.0 + 1e-9))


@pytest.mark.parametrize(("compensate", "at_least"), [(True, 0.9), (False, 0.6)])
def test_bmflc_removes_a_two_tone_tremor(compensate: bool, at_least: float) -> None:
    v, tremor = _ramp_plus_tone([8.5, 11.0], 150e-6, 4.0)
    f = make_filter("bmflc", FS, compensate_prefilter=compensate)
    assert isinstance(f, BMFLC)
    y = f.process(v + tremor)
    last = slice(-1000, None)
    assert tremor_removed(y[last], v[last], tremor[last]) >= at_least
    # the weights sit on the two tones' bins
    energy = (f.weights**2).sum(axis=2)  # (3, K)
    on = np.isin(f.freqs_hz, [8.5, 11.0])
    assert np.all(energy[:, on].sum(1) >= 0.9 * energy.sum(1))


@pytest.mark.parametrize("compensate", [True, False])
def test_bmflc_behaves_the_same_at_any_amplitude(compensate: bool) -> None:
    """The BMFLC is linear: 50 µm and 250 µm of tremor leave the same fraction behind."""
    _, tremor = _ramp_plus_tone([8.5, 11.0], 1.0, 3.0)
    removed = []
    for amp_rms in (50e-6, 250e-6):
        f = make_filter("bmflc", FS, compensate_prefilter=compensate)
        y = f.process(X0 + amp_rms * tremor)
        removed.append(tremor_removed(y[-1000:], X0, amp_rms * tremor[-1000:]))
    assert removed[0] == pytest.approx(removed[1], abs=1e-6)


def test_bmflc_phasors_stay_exact() -> None:
    omega = 2 * np.pi * np.array([6.0, 9.5, 16.0]) / FS
    bank = np.zeros((3, BK_COLS))
    bank[:, BK_ROT_C], bank[:, BK_ROT_S], bank[:, BK_PH_C] = np.cos(omega), np.sin(omega), 1.0
    advance = kernel_for(bank_advance, use_numba=None)
    n = 200_000  # 200 s at 1 kHz
    for _ in range(n):
        advance(bank)
    np.testing.assert_allclose(bank[:, BK_PH_C], np.cos(omega * n), atol=1e-9)
    np.testing.assert_allclose(bank[:, BK_PH_S], np.sin(omega * n), atol=1e-9)
    np.testing.assert_allclose(np.hypot(bank[:, BK_PH_C], bank[:, BK_PH_S]), 1.0, atol=1e-15)


def test_bmflc_compensation_is_the_inverse_prefilter_response() -> None:
    f = BMFLC(FS, compensate_prefilter=True)
    pf = highpass_coef(2, 2.0, FS)
    g = 1.0 / prefilter_response(pf, f.freqs_hz, FS)
    bank = f._design_bank(pf)
    np.testing.assert_allclose(bank[:, 2] + 1j * bank[:, 3], g, rtol=1e-12)
    np.testing.assert_allclose(f.freqs_hz, np.arange(6.0, 16.01, 0.5))


@pytest.mark.parametrize(
    ("kind", "params"),
    [("default", {}), ("wflc", {}), ("bmflc", {}), ("bmflc", {"compensate_prefilter": True})],
)
def test_adaptive_filters_leave_voluntary_motion_in_phase(kind: str, params: dict) -> None:
    t = np.arange(int(10 * FS)) / FS
    v = np.stack([0.01 * np.sin(2 * np.pi * 0.5 * t + p) for p in (0.0, 1.0, 2.0)], 1)
    _, tremor = _ramp_plus_tone([10.0], 150e-6, 10.0)
    y = make_filter(kind, FS, **params).process(v + tremor)
    for axis in range(3):
        assert abs(lag_samples(y[:, axis], v[:, axis], FS, max_lag=50)) <= 10  # ms at 1 kHz
        slow = signal.sosfiltfilt(signal.butter(2, 2.0, fs=FS, output="sos"), y[:, axis])
        amp = np.sqrt(2 * np.mean(slow[2000:-2000] ** 2))
        assert amp == pytest.approx(0.01, rel=0.02)
