"""The project's default tremor filter (filters/kalman.py): what it is for, beyond the contract
every filter meets (tests/test_filters.py)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.tremor_signals import make_motion, score
from filters import make_filter

RATE = 1000.0


@pytest.fixture(scope="module")
def motion():
    return make_motion("typical", 77, seconds=12.0)  # a seed the defaults were not tuned on


def test_it_is_the_default(motion) -> None:
    a = make_filter("default", RATE).process(motion.x)
    b = make_filter("kalman", RATE).process(motion.x)
    assert np.array_equal(a, b)


def test_removes_tremor_without_lagging_voluntary_motion(motion) -> None:
    s = score(make_filter("default", RATE).process(motion.x), motion)
    assert s.tremor_reduction >= 0.8
    assert abs(s.voluntary_lag_ms) <= 2.0
    assert s.residual_error < 1.0


@pytest.mark.parametrize("rate", [500.0, 2000.0])
def test_behaves_alike_at_other_rates(rate: float) -> None:
    m = make_motion("typical", 77, seconds=12.0, rate_hz=rate)
    s = score(make_filter("default", rate).process(m.x), m)
    assert s.tremor_reduction >= 0.8 and abs(s.voluntary_lag_ms) <= 2.0


def test_has_no_absolute_scale_above_its_floor(motion) -> None:
    """Scaled motion gives the scaled output, from 10 µm of tremor up: its noise levels follow
    the tremor energy (only a (10 nm)² energy floor is absolute)."""
    y = make_filter("default", RATE).process(motion.x)
    for k in (1e-1, 1e1, 1e3):
        yk = make_filter("default", RATE).process(motion.x * k)
        # the same to 1 % of the tremor (the floor shows only during the first adaptation)
        assert np.allclose(yk / k, y, rtol=0, atol=0.01 * motion.t.std())


def test_cancels_a_tone_between_its_bins() -> None:
    """9.3 Hz lies between the 8.5 and 9.75 Hz resonators: drifting weights must still track it."""
    t = np.arange(int(6 * RATE)) / RATE
    x = np.zeros((len(t), 3))
    x[:, 0] = 100e-6 * np.sin(2 * np.pi * 9.3 * t)
    x[:, 1] = 0.01 * t  # a slow voluntary drift on another axis
    y = make_filter("default", RATE).process(x)
    last = slice(int(3 * RATE), None)
    assert np.std(y[last, 0]) < 0.1 * np.std(x[last, 0])
    assert np.max(np.abs(y[last, 1] - x[last, 1])) < 5e-6  # the ramp passes through


def test_the_guard_bounds_a_step() -> None:
    """A step (a knock) is not tremor: the output never strays far from the input."""
    x = np.zeros((2000, 3))
    x[500:] = 0.002
    y = make_filter("default", RATE).process(x)
    assert np.max(np.abs(y - x)) < 0.004
    assert np.max(np.abs(y[-200:] - x[-200:])) < 1e-4  # and settles back onto it
