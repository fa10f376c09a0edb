"""Synthetic surgeon hand motion with physiological tremor, and the tremor-filter metrics.

The motion is ``x = v + t`` with both parts known, so a filter's output ``y`` can be scored
against the truth (DESIGN.md, "Measuring honestly"):

* **voluntary** ``v``: minimum-jerk reaches (10–40 mm, 0.8–2 s), holds, and a slow drift, all
  below 2 Hz (98.9 % of surgeons' voluntary power lies below 2 Hz: Riviere et al. 1997);
* **tremor** ``t``: 1–3 components in 7–13 Hz whose frequency drifts (±~1 Hz over seconds) and
  whose amplitude is modulated, a second harmonic of the strongest, and band-limited noise over
  6–16 Hz; the same frequencies on all axes (one hand), with the per-axis RMS amplitudes of the
  published classes (Becker et al., EMBC 2008): braced 45/63/5 µm, typical 100/100/10 µm,
  unbraced 254/166/15 µm (x/y/z; z is the tool axis, ~10x smaller).

Metrics (on samples after ``settle_s``, all axes together):

* tremor reduction = 1 − RMS(band(y − v)) / RMS(band(t)), band = zero-phase 6–16 Hz band-pass;
* voluntary lag = the lag (ms) that maximises the cross-correlation of y and v;
* residual error = RMS(y − v) / RMS(t).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

AMPLITUDE_CLASSES_UM: dict[str, tuple[float, float, float]] = {
    "braced": (45.0, 63.0, 5.0),
    "typical": (100.0, 100.0, 10.0),
    "unbraced": (254.0, 166.0, 15.0),
}
BAND_HZ = (6.0, 16.0)


@dataclass(frozen=True)
class SurgeonMotion:
    """One synthetic recording: ``x = v + t``, each (N, 3) in metres, at ``rate_hz``."""

    name: str
    rate_hz: float
    v: np.ndarray
    t: np.ndarray
    tremor_hz: np.ndarray  # (N, K) instantaneous frequency of each tremor component
    seed: int

    @property
    def x(self) -> np.ndarray:
        return self.v + self.t


def _smooth_noise(rng: np.random.Generator, n: int, rate_hz: float, cutoff_hz: float) -> np.ndarray:
    """Zero-mean, unit-RMS Gaussian noise low-passed at ``cutoff_hz`` (zero-phase)."""
    sos = signal.butter(2, cutoff_hz, fs=rate_hz, output="sos")
    w = signal.sosfiltfilt(sos, rng.standard_normal(n + 2000))[1000:-1000]
    return (w - w.mean()) / (w.std() + 1e-300)


def voluntary_motion(rng: np.random.Generator, n: int, rate_hz: float) -> np.ndarray:
    """Minimum-jerk reaches, holds and drift (metres), all below 2 Hz, shape (n, 3)."""
    v = np.zeros((n, 3))
    pos = np.zeros(3)
    i = 0
    while i < n:
        hold = int(rng.uniform(0.2, 1.2) * rate_hz)
        v[i : i + hold] = pos
        i += hold
        if i >= n:
            break
        dur = rng.uniform(0.8, 2.0)
        m = int(dur * rate_hz)
        direction = rng.standard_normal(3) * np.array([1.0, 1.0, 0.5])
        direction /= np.linalg.norm(direction)
        target = np.clip(pos + direction * rng.uniform(0.010, 0.040), -0.05, 0.05)
        tau = np.arange(1, m + 1) / m
        shape = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
        seg = pos + np.outer(shape, target - pos)
        v[i : i + m] = seg[: n - i]
        pos = target
        i += m
    drift = np.stack([_smooth_noise(rng, n, rate_hz, 0.3) for _ in range(3)], axis=1)
    return v + 0.001 * drift


def tremor(
    rng: np.random.Generator,
    n: int,
    rate_hz: float,
    rms_um: tuple[float, float, float],
    noise_fraction: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Physiological tremor (metres), shape (n, 3), and the component frequencies (n, K).

    ``noise_fraction`` is the RMS share of the band-limited noise in the tremor (the rest is in
    the drifting peaks and the harmonic).
    """
    k = int(rng.integers(1, 4))  # 1-3 components
    base = np.sort(rng.uniform(7.0, 13.0, size=k))
    freqs = np.empty((n, k))
    comps = np.empty((n, k))
    weights = np.sort(rng.uniform(0.4, 1.0, size=k))[::-1]
    weights[0] = 1.0
    for j in range(k):
        drift = 0.6 * _smooth_noise(rng, n, rate_hz, 0.2)  # ~±1 Hz excursions over seconds
        f = np.clip(base[j] + drift, 6.5, 13.5)
        freqs[:, j] = f
        phase = 2 * np.pi * np.cumsum(f) / rate_hz + rng.uniform(0, 2 * np.pi)
        envelope = np.exp(0.35 * _smooth_noise(rng, n, rate_hz, 0.3))  # amplitude modulation
        comps[:, j] = weights[j] * envelope * np.sin(phase)
    # second harmonic of the strongest component, ~15 % of its amplitude
    phase0 = 2 * np.pi * np.cumsum(freqs[:, 0]) / rate_hz
    harmonic = 0.15 * np.sin(2 * phase0 + rng.uniform(0, 2 * np.pi))
    out = np.zeros((n, 3))
    band = signal.butter(4, BAND_HZ, btype="bandpass", fs=rate_hz, output="sos")
    for axis in range(3):
        # one hand: the same frequencies on every axis, with their own phase offsets and weights
        mix = rng.uniform(0.5, 1.0, size=k)
        shift = rng.integers(0, int(rate_hz / 6.0), size=k)
        peaks = sum(mix[j] * np.roll(comps[:, j], shift[j]) for j in range(k)) + harmonic
        peaks = peaks / peaks.std()
        noise = signal.sosfiltfilt(band, rng.standard_normal(n))
        noise = noise / noise.std()
        a = noise_fraction
        t = np.sqrt(1 - a * a) * peaks + a * noise
        out[:, axis] = t / t.std() * rms_um[axis] * 1e-6
    return out, freqs


def make_motion(
    amplitude_class: str, seed: int, seconds: float = 30.0, rate_hz: float = 1000.0
) -> SurgeonMotion:
    """A seeded recording of one amplitude class (``braced``, ``typical``, ``unbraced``)."""
    if amplitude_class not in AMPLITUDE_CLASSES_UM:
        raise ValueError(
            f"unknown amplitude class {amplitude_class!r}; one of {', '.join(AMPLITUDE_CLASSES_UM)}"
        )
    rng = np.random.default_rng(seed)
    n = int(seconds * rate_hz)
    v = voluntary_motion(rng, n, rate_hz)
    t, f = tremor(rng, n, rate_hz, AMPLITUDE_CLASSES_UM[amplitude_class])
    return SurgeonMotion(f"{amplitude_class}-{seed}", rate_hz, v, t, f, seed)


def band(x: np.ndarray, rate_hz: float, band_hz: tuple[float, float] = BAND_HZ) -> np.ndarray:
    """Zero-phase 4th-order Butterworth band-pass along axis 0 (the scoring band)."""
    sos = signal.butter(4, band_hz, btype="bandpass", fs=rate_hz, output="sos")
    return signal.sosfiltfilt(sos, x, axis=0)


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a))))


def voluntary_lag_ms(y: np.ndarray, v: np.ndarray, rate_hz: float, max_ms: float = 250.0) -> float:
    """The lag of y behind v (ms) maximising their cross-correlation (sub-sample by parabola).

    The velocities are correlated (positions are too smooth to locate the peak sharply), all
    axes together, as a correlation coefficient over the overlap; tremor in y is removed by a
    zero-phase 4 Hz low-pass first so that only the voluntary part is compared. Positive: y
    lags v; negative: y leads v.
    """
    sos = signal.butter(4, 4.0, fs=rate_hz, output="sos")
    dy = np.diff(signal.sosfiltfilt(sos, y, axis=0), axis=0)
    dv = np.diff(signal.sosfiltfilt(sos, v, axis=0), axis=0)
    edge = int(0.5 * rate_hz)  # the zero-phase filter's own start and end effects
    dy, dv = dy[edge:-edge], dv[edge:-edge]
    max_lag = int(max_ms * rate_hz / 1000.0)
    lags = np.arange(-max_lag // 4, max_lag + 1)
    n = len(dv)
    c = np.empty(len(lags))
    for i, lag in enumerate(lags):
        a, b = (dy[lag:], dv[: n - lag]) if lag >= 0 else (dy[: n + lag], dv[-lag:])
        # normalised over the overlap: the peak of smooth signals is flat, so the changing
        # overlap of a plain sum would otherwise bias it
        c[i] = np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))
    j = int(np.argmax(c))
    shift = 0.0
    if 0 < j < len(c) - 1:
        a, b, d = c[j - 1], c[j], c[j + 1]
        den = a - 2 * b + d
        shift = 0.5 * (a - d) / den if den != 0 else 0.0
    return float((lags[j] + shift) * 1000.0 / rate_hz)


@dataclass(frozen=True)
class Scores:
    tremor_reduction: float
    voluntary_lag_ms: float
    residual_error: float

    def to_dict(self) -> dict[str, float]:
        return {
            "tremor_reduction": self.tremor_reduction,
            "voluntary_lag_ms": self.voluntary_lag_ms,
            "residual_error": self.residual_error,
        }


def score(y: np.ndarray, m: SurgeonMotion, settle_s: float = 2.0) -> Scores:
    """Score a filter output ``y`` (N, 3) against the truth of ``m``, after ``settle_s``."""
    if y.shape != m.v.shape:
        raise ValueError(f"output has shape {y.shape}, the recording {m.v.shape}")
    k = int(settle_s * m.rate_hz)
    err_band = band(y - m.v, m.rate_hz)[k:]
    t_band = band(m.t, m.rate_hz)[k:]
    return Scores(
        tremor_reduction=1.0 - _rms(err_band) / _rms(t_band),
        voluntary_lag_ms=voluntary_lag_ms(y[k:], m.v[k:], m.rate_hz),
        residual_error=_rms((y - m.v)[k:]) / _rms(m.t[k:]),
    )
