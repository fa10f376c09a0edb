"""The synthetic surgeon motion and the tremor metrics: they must measure what they claim."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from benchmarks.tremor_signals import (
    AMPLITUDE_CLASSES_UM,
    make_motion,
    score,
    voluntary_lag_ms,
)


@pytest.fixture(scope="module")
def motions():
    return {c: make_motion(c, 7, seconds=20.0) for c in AMPLITUDE_CLASSES_UM}


def test_seeded_and_repeatable() -> None:
    a, b, c = (
        make_motion("typical", 3, 10.0),
        make_motion("typical", 3, 10.0),
        make_motion("typical", 4, 10.0),
    )
    assert np.array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_tremor_amplitudes_follow_the_published_classes(motions) -> None:
    for cls, m in motions.items():
        rms_um = m.t.std(axis=0) * 1e6
        assert np.allclose(rms_um, AMPLITUDE_CLASSES_UM[cls], rtol=1e-6)


def test_voluntary_motion_lies_below_2_hz(motions) -> None:
    for m in motions.values():
        f, p = signal.welch(m.v, fs=m.rate_hz, nperseg=8192, axis=0)
        p = p.sum(axis=1)
        assert p[f <= 2.0].sum() / p.sum() > 0.98
        assert 0.005 < float(np.ptp(m.v, axis=0).max()) < 0.11  # reaches of cm, within ±5 cm


def test_tremor_lies_in_its_band_with_drifting_peaks(motions) -> None:
    for m in motions.values():
        assert 1 <= m.tremor_hz.shape[1] <= 3
        assert m.tremor_hz.min() >= 6.5 and m.tremor_hz.max() <= 13.5
        assert float(np.ptp(m.tremor_hz[:, 0])) > 0.3  # the frequency drifts
        f, p = signal.welch(m.t, fs=m.rate_hz, nperseg=4096, axis=0)
        p = p.sum(axis=1)
        assert p[(f >= 6) & (f <= 16)].sum() / p.sum() > 0.85  # harmonic may reach above 16


def test_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError, match="braced"):
        make_motion("shaky", 1)


def test_metrics_on_known_answers(motions) -> None:
    m = motions["typical"]
    identity = score(m.x, m)
    assert abs(identity.tremor_reduction) < 1e-9
    assert abs(identity.voluntary_lag_ms) < 0.5
    assert abs(identity.residual_error - 1.0) < 1e-9
    perfect = score(m.v.copy(), m)
    assert perfect.tremor_reduction == pytest.approx(1.0)
    assert perfect.residual_error == pytest.approx(0.0, abs=1e-12)
    half = score(m.v + 0.5 * m.t, m)
    assert half.tremor_reduction == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("delay_ms", [5, 20, 38])
def test_lag_metric_recovers_a_pure_delay(motions, delay_ms: int) -> None:
    m = motions["typical"]
    d = int(delay_ms * m.rate_hz / 1000)
    y = np.vstack([np.repeat(m.v[:1], d, axis=0), m.v[:-d]])
    assert voluntary_lag_ms(y, m.v, m.rate_hz) == pytest.approx(delay_ms, abs=0.5)


def test_the_reference_low_pass_scores_as_published(motions) -> None:
    """REFERENCES.md: a 2nd-order 6 Hz Butterworth lags ~38 ms, removes roughly 55-80 %."""
    m = motions["typical"]
    sos = signal.butter(2, 6.0, fs=m.rate_hz, output="sos")
    zi = signal.sosfilt_zi(sos)[:, :, None] * m.x[0]
    y, _ = signal.sosfilt(sos, m.x, axis=0, zi=zi)
    s = score(y, m)
    assert 30 < s.voluntary_lag_ms < 45
    assert 0.5 < s.tremor_reduction < 0.85  # -6/-9/-12 dB at 8/10/12 Hz
