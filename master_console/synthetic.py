"""A seeded synthetic surgeon hand: voluntary motion plus physiological tremor, as a device.

The motion is a closed-form function of the sample time ``t`` (seconds since ``connect()``), so
a hand is deterministic for a seed given the same sample times, whatever the thread's timing:

* **voluntary** ``v(t)``: minimum-jerk reaches between targets (given by the caller, or random
  10–40 mm reaches within ``box_m``), separated by holds, plus a slow sub-0.3 Hz drift of
  ``drift_m``; its power lies below 2 Hz.
* **tremor** ``τ(t)``: 1–3 components in 7–13 Hz whose frequencies drift (sum of slow sinusoids,
  at most ±0.75 Hz; components at least 1.5 Hz apart) and whose amplitudes are modulated, a
  second harmonic of the strongest, and band-limited noise (a sum of sinusoids over 6–16 Hz);
  the same frequencies on every axis (one hand), scaled per axis to the RMS of the amplitude
  class (Becker et al., EMBC 2008): braced 45/63/5 µm, typical 100/100/10 µm,
  unbraced 254/166/15 µm (x/y/z).

``pose = origin + v + τ`` (orientation fixed at the origin's), ``jaw`` constant, clutch and
operator-present True unless a clutch script ``[(t_s, engaged), ...]`` says otherwise.
:meth:`SyntheticHand.truth` gives the voluntary and tremor parts of the newest sample so tests and
benchmarks can score filters; :meth:`SyntheticHand.motion` evaluates both for any times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from master_console.devices import (
    IDENTITY_POSE,
    Buttons,
    InputSample,
    ThreadedDevice,
)

AMPLITUDE_CLASSES_UM: dict[str, tuple[float, float, float]] = {
    "braced": (45.0, 63.0, 5.0),
    "typical": (100.0, 100.0, 10.0),
    "unbraced": (254.0, 166.0, 15.0),
}


@dataclass(frozen=True)
class HandTruth:
    """The parts of one sample: ``voluntary`` and ``tremor`` (3,) in metres, relative to origin."""

    seq: int
    t_ns: int
    voluntary: np.ndarray
    tremor: np.ndarray


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10.0 - 15.0 * tau + 6.0 * tau * tau)


class SyntheticHand(ThreadedDevice):
    """A synthetic surgeon hand sampled at ``rate_hz`` on its own thread (see module doc)."""

    name = "synthetic-hand"

    def __init__(
        self,
        seed: int = 0,
        amplitude_class: str = "typical",
        rate_hz: float = 1000.0,
        origin: np.ndarray | None = None,
        targets: Sequence[Sequence[float]] | None = None,
        box_m: tuple[float, float, float] = (0.05, 0.05, 0.05),
        reach_s: tuple[float, float] = (0.8, 2.0),
        hold_s: tuple[float, float] = (0.2, 1.2),
        drift_m: float = 0.0005,
        jaw: float = 0.5,
        clutch_script: Sequence[tuple[float, bool]] = (),
        reclutch_every_s: float | None = 2.5,
        reclutch_release_s: float = 0.2,
        noise_fraction: float = 0.25,
    ) -> None:
        super().__init__(rate_hz)
        if amplitude_class not in AMPLITUDE_CLASSES_UM:
            raise ValueError(
                f"unknown amplitude class {amplitude_class!r}; "
                f"one of {', '.join(AMPLITUDE_CLASSES_UM)}"
            )
        self.seed = seed
        self.amplitude_class = amplitude_class
        self.rms_m = np.array(AMPLITUDE_CLASSES_UM[amplitude_class]) * 1e-6
        self.origin = np.array(IDENTITY_POSE if origin is None else origin, dtype=float)
        self.box_m = np.asarray(box_m, dtype=float)
        self.reach_s, self.hold_s = reach_s, hold_s
        self.jaw = float(jaw)
        # declared for check-input: reaches stay inside ±box_m of the origin (drift and tremor
        # add at most a few mm); the jaw is constant
        reach = self.box_m + 0.005
        self.position_range_m = (
            tuple(float(v) for v in self.origin[:3] - reach),
            tuple(float(v) for v in self.origin[:3] + reach),
        )
        self.jaw_range_rad = (self.jaw, self.jaw)
        self._clutch_t = np.array([t for t, _ in clutch_script], dtype=float)
        self._clutch_v = np.array([bool(e) for _, e in clutch_script], dtype=bool)
        if np.any(np.diff(self._clutch_t) < 0):
            raise ValueError("clutch_script times must be non-decreasing")
        if reclutch_every_s is not None and not reclutch_every_s > reclutch_release_s > 0:
            raise ValueError("reclutch_every_s must exceed reclutch_release_s > 0 (or be None)")
        # Like a surgeon, the hand lets go of the clutch briefly now and then (without a
        # clutch_script): this is also how it answers the console's demand for a release after
        # a link loss. None: the clutch stays pressed.
        self.reclutch_every_s = None if clutch_script else reclutch_every_s
        self.reclutch_release_s = reclutch_release_s
        vol_ss, trem_ss, drift_ss = np.random.SeedSequence(seed).spawn(3)
        self._vol_rng = np.random.default_rng(vol_ss)
        self._targets = [np.asarray(p, dtype=float) for p in (targets or [])]
        # voluntary segments: start time, duration, from, to (holds have from == to)
        self._seg_lock = threading.Lock()
        self._seg_t0 = [0.0]
        self._seg_dur = [float(self._vol_rng.uniform(*hold_s))]
        self._seg_from = [np.zeros(3)]
        self._seg_to = [np.zeros(3)]
        self._next_target = 0
        # slow drift: 3 sinusoids per axis below 0.3 Hz
        d = np.random.default_rng(drift_ss)
        self._drift_f = d.uniform(0.03, 0.3, size=(3, 3))
        self._drift_p = d.uniform(0, 2 * np.pi, size=(3, 3))
        self._drift_a = drift_m * np.sqrt(2.0 / 3.0)
        self._init_tremor(np.random.default_rng(trem_ss), noise_fraction)
        self._t0_ns: int | None = None
        self._seq = 0
        self._pending: HandTruth | None = None
        self._truth: HandTruth | None = None

    # -- tremor ----------------------------------------------------------------------------
    def _init_tremor(self, rng: np.random.Generator, noise_fraction: float) -> None:
        k = int(rng.integers(1, 4))
        self.n_components = k
        # at least 1.5 Hz apart, so slow beating does not swing the RMS over a few seconds
        self._base_hz = np.sort(rng.uniform(7.75, 12.25 - 1.5 * (k - 1), size=k)) + 1.5 * np.arange(
            k
        )
        w = np.sort(rng.uniform(0.4, 1.0, size=k))[::-1]
        w[0] = 1.0
        self._weight = w
        # frequency drift: 3 slow sinusoids per component, total excursion at most 0.75 Hz
        self._fd_f = rng.uniform(0.05, 0.2, size=(k, 3))
        self._fd_a = rng.uniform(0.1, 0.25, size=(k, 3))
        self._fd_p = rng.uniform(0, 2 * np.pi, size=(k, 3))
        self._phase0 = rng.uniform(0, 2 * np.pi, size=k)
        # amplitude modulation: exp(depth * unit-RMS slow signal)
        self._am_f = rng.uniform(0.1, 0.4, size=(k, 3))
        self._am_p = rng.uniform(0, 2 * np.pi, size=(k, 3))
        self._am_depth = 0.1
        # per axis: component weights, phase offsets, harmonic phase
        self._mix = rng.uniform(0.5, 1.0, size=(3, k))
        self._offs = rng.uniform(0, 2 * np.pi, size=(3, k))
        self._harm_p = rng.uniform(0, 2 * np.pi, size=3)
        # band-limited noise: 32 sinusoids per axis over 6-16 Hz, unit RMS
        self._nz_f = rng.uniform(6.0, 16.0, size=(3, 32))
        self._nz_p = rng.uniform(0, 2 * np.pi, size=(3, 32))
        self._noise_fraction = noise_fraction
        self._scale = np.ones(3)
        # calibrate each axis to its class RMS over a long stretch (deterministic for the seed)
        t = np.arange(0.0, 200.0, 1.0 / 200.0)
        self._scale = self.rms_m / np.sqrt(np.mean(self._tremor(t) ** 2, axis=0))

    def tremor_hz(self, t_s: np.ndarray) -> np.ndarray:
        """The instantaneous frequency (Hz) of each component at ``t_s``: shape (N, K)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))[:, None, None]
        drift = (self._fd_a * np.sin(2 * np.pi * self._fd_f * t + self._fd_p)).sum(axis=2)
        return self._base_hz + drift

    def _tremor(self, t_s: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        tt = t[:, None, None]
        # phase = 2π ∫ f dt, in closed form
        integ = (
            self._fd_a
            / (2 * np.pi * self._fd_f)
            * (np.cos(self._fd_p) - np.cos(2 * np.pi * self._fd_f * tt + self._fd_p))
        ).sum(axis=2)
        phase = 2 * np.pi * (self._base_hz * t[:, None] + integ) + self._phase0  # (N, K)
        am = np.sin(2 * np.pi * self._am_f * tt + self._am_p).sum(axis=2) * np.sqrt(2.0 / 3.0)
        env = self._weight * np.exp(self._am_depth * am)  # (N, K)
        peaks = (
            self._mix[None] * env[:, None, :] * np.sin(phase[:, None, :] + self._offs[None])
        ).sum(axis=2)  # (N, 3)
        harm = 0.15 * env[:, :1] * np.sin(2 * phase[:, :1] + self._harm_p)  # (N, 3)
        noise = np.sin(2 * np.pi * self._nz_f * t[:, None, None] + self._nz_p).sum(axis=2)
        noise *= np.sqrt(2.0 / self._nz_f.shape[1])  # unit RMS
        a = self._noise_fraction
        pk = peaks + harm
        pk_rms = np.sqrt(0.5 * (self._mix**2).sum(axis=1) + 0.5 * 0.15**2)  # rough, per axis
        out = np.sqrt(1 - a * a) * pk / pk_rms + a * noise
        return out * self._scale

    # -- voluntary -------------------------------------------------------------------------
    def _extend_segments(self, until_s: float) -> None:
        rng = self._vol_rng
        while self._seg_t0[-1] + self._seg_dur[-1] <= until_s:
            end = self._seg_t0[-1] + self._seg_dur[-1]
            pos = self._seg_to[-1]
            if self._targets and self._next_target >= len(self._targets):
                # all caller targets reached: hold forever
                self._seg_t0.append(end)
                self._seg_dur.append(float("inf"))
                self._seg_from.append(pos)
                self._seg_to.append(pos)
                return
            if self._targets:
                target = self._targets[self._next_target]
                self._next_target += 1
            else:
                direction = rng.standard_normal(3) * np.array([1.0, 1.0, 0.5])
                direction /= np.linalg.norm(direction)
                target = np.clip(
                    pos + direction * rng.uniform(0.010, 0.040), -self.box_m, self.box_m
                )
            reach = float(rng.uniform(*self.reach_s))
            hold = float(rng.uniform(*self.hold_s))
            self._seg_t0 += [end, end + reach]
            self._seg_dur += [reach, hold]
            self._seg_from += [pos, target]
            self._seg_to += [target, target]

    def _voluntary(self, t_s: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        with self._seg_lock:
            self._extend_segments(float(t.max(initial=0.0)))
            t0 = np.array(self._seg_t0)
            dur = np.array(self._seg_dur)
            p_from = np.array(self._seg_from)
            p_to = np.array(self._seg_to)
        i = np.clip(np.searchsorted(t0, t, side="right") - 1, 0, len(t0) - 1)
        d = dur[i]
        tau = np.where(np.isfinite(d), (t - t0[i]) / np.where(np.isfinite(d), d, 1.0), 1.0)
        v = p_from[i] + _min_jerk(tau)[:, None] * (p_to[i] - p_from[i])
        drift = self._drift_a * np.sin(
            2 * np.pi * self._drift_f[None] * t[:, None, None] + self._drift_p[None]
        ).sum(axis=2)
        return v + drift

    def motion(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(voluntary, tremor)`` at times ``t_s`` (s since connect), each (N, 3) metres."""
        return self._voluntary(t_s), self._tremor(t_s)

    def clutch_at(self, t_s: float) -> bool:
        if self.reclutch_every_s is not None:
            k = t_s // self.reclutch_every_s
            return not (k >= 1 and t_s - k * self.reclutch_every_s < self.reclutch_release_s)
        i = int(np.searchsorted(self._clutch_t, t_s, side="right")) - 1
        return True if i < 0 else bool(self._clutch_v[i])

    # -- the device ------------------------------------------------------------------------
    def _open(self) -> None:
        if self._t0_ns is None:
            self._t0_ns = time.monotonic_ns()

    def sample_at(self, t_ns: int) -> tuple[InputSample, HandTruth]:
        """The sample (and its truth) at console time ``t_ns`` (needs a start time)."""
        if self._t0_ns is None:
            self._t0_ns = t_ns
        t_s = (t_ns - self._t0_ns) / 1e9
        v, tr = self.motion(np.array([t_s]))
        pose = self.origin.copy()
        pose[:3] += v[0] + tr[0]
        pose.setflags(write=False)
        self._seq += 1
        sample = InputSample(
            t_ns=t_ns,
            pose=pose,
            twist=None,
            jaw=self.jaw,
            buttons=Buttons(clutch=self.clutch_at(t_s), operator_present=True),
            seq=self._seq,
        )
        return sample, HandTruth(self._seq, t_ns, v[0], tr[0])

    def read_once(self) -> InputSample | None:
        sample, self._pending = self.sample_at(time.monotonic_ns())
        return sample

    def _store(self, sample: InputSample) -> None:
        with self._lock:
            self._latest = sample
            self._truth = self._pending

    @property
    def start_ns(self) -> int | None:
        """The console time of ``t = 0`` (set by the first ``connect``)."""
        return self._t0_ns

    def truth(self) -> HandTruth | None:
        """The voluntary and tremor parts of the newest sample (same ``seq``)."""
        with self._lock:
            return self._truth


__all__ = ["AMPLITUDE_CLASSES_UM", "HandTruth", "SyntheticHand"]
