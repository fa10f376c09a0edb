"""Skill scores for the training tasks (``reach``, ``peg-transfer``, ``palpation``).

A recorded session (:mod:`master_console.recording`) becomes a :class:`TaskRun`, plain numpy
arrays on one time axis (seconds from the start of the recording, console clock); each metric
is a pure function of a run, and :func:`score` puts them together with pass/fail checks and a
0-100 overall score.

The metrics follow the conventions trainees and instructors know:

- the da Vinci Skills Simulator (Mimic MScore): completion time, economy of motion (tool path
  length), instrument collisions, excessive instrument force, drops, master workspace/clutch use;
- FLS (Fundamentals of Laparoscopic Surgery) peg transfer: time with a cut-off, drops are
  penalised (proficiency 48 s with no drops, 300 s cut-off);
- smoothness: the log dimensionless jerk (Hogan & Sternad 2009, *J Mot Behav* 41:529;
  Balasubramanian et al. 2015, *J NeuroEng Rehabil* 12:112), used for surgical skill in e.g.
  *Sensors* 2023, 23:3146;
- physiological tremor: the 6-16 Hz band of the surgeon's hand (the project's tremor metrics,
  DESIGN.md "Measuring honestly").

Time bases.  State records are stamped on arrival at the console; ``task_elapsed_ms`` and
``task_excess_force_ms`` are counted by the arm on its own clock and reported as cross-checks.

The task window.  Metrics of motion are computed between the *start* (the ``task_started``
rising edge: the arm starts a task at the tool's first 2 mm of motion; without the counter,
the first engaged command) and the *end* (the ``task_done`` rising edge; the last sample when
the task was not completed), and only while the clutch is engaged.  A state received at
console time t reflects commands sent about one round trip earlier, so the clutch state is
looked up at ``t - median(RTT)``.

The smoothed tool path.  The measured tool positions are interpolated onto a uniform
``SMOOTH_RATE_HZ`` (200 Hz) grid and low-passed at ``SMOOTH_CUTOFF_HZ`` (6 Hz; 2nd-order
Butterworth, zero-phase ``sosfiltfilt``), so sensor noise and sampling jitter do not inflate
path length, idle time or jerk.  Voluntary surgical motion lies below ~5 Hz.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

import numpy as np
from scipy import signal

__all__ = [
    "DEFAULT_THRESHOLDS",
    "IDLE_SPEED_M_S",
    "SMOOTH_CUTOFF_HZ",
    "SMOOTH_RATE_HZ",
    "TASK_NAMES",
    "WEIGHTS",
    "Check",
    "Score",
    "TaskRun",
    "Thresholds",
    "TremorIndex",
    "arm_elapsed_s",
    "arm_excessive_force_s",
    "clutch_count",
    "completion_time_s",
    "drops",
    "economy_of_motion",
    "excessive_force_s",
    "found",
    "ideal_path_m",
    "idle_time_s",
    "instrument_collisions",
    "log_dimensionless_jerk",
    "mark_error_mm",
    "path_length_m",
    "peak_force_n",
    "rings_placed",
    "score",
    "search_area_outline",
    "targets_touched",
    "task_window",
    "thresholds_from_dict",
    "tremor_index",
]

TASK_NAMES = ("reach", "peg-transfer", "palpation")

SMOOTH_RATE_HZ = 200.0
"""Uniform grid the tool path is resampled on before smoothing and differentiation."""
SMOOTH_CUTOFF_HZ = 6.0
"""Low-pass cut-off of the tool path (2nd-order Butterworth, zero-phase)."""
PATH_RATE_HZ = 50.0
"""Rate at which the smoothed path is summed for its length."""
IDLE_SPEED_M_S = 0.002
"""Below this tool speed (2 mm/s) engaged time counts as idle."""
MOVING_FRACTION = 0.02
"""LDLJ: an engaged stretch is trimmed to where the speed is >= 2 % of the peak speed."""
TREMOR_BAND_HZ = (6.0, 16.0)
VOLUNTARY_BAND_HZ = (0.5, 4.0)
DEFAULT_FORCE_LIMIT_N = 3.0
"""Used when neither the task nor the thresholds give a force limit."""
_MAX_SAMPLE_GAP_S = 0.1
"""A gap between state samples counts for at most this long (excessive-force time)."""

_EMPTY = np.empty(0, dtype=np.float64)


def _empty3() -> np.ndarray:
    return np.empty((0, 3), dtype=np.float64)


# =============================================================================================
# The run
# =============================================================================================


@dataclass
class TaskRun:
    """One attempt at a training task, as plain arrays (tests construct it directly).

    Times are seconds on the console clock from the start of the recording.
    """

    task: str
    """The task's name (``reach``, ``peg-transfer``, ``palpation``)."""
    info: dict[str, Any] = field(default_factory=dict)
    """The arm's ``TaskInfo`` as a dict: name, goal, points {name: [[x, y, z], ...]}, values."""
    t_s: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    """(N,) state receive times."""
    tool_pos: np.ndarray = field(default_factory=_empty3)
    """(N, 3) measured tool position in the arm base frame (m)."""
    force_n: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    """(N,) magnitude of the measured force (N)."""
    counters: dict[str, np.ndarray] = field(default_factory=dict)
    """The arm's ``task_*`` counters, name -> (N,) float (NaN where a state lacks one)."""
    master_t_s: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    """(M,) input sample times."""
    master_pos: np.ndarray = field(default_factory=_empty3)
    """(M, 3) raw master (input device) positions (m), before any tremor filter."""
    clutch_t_s: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    """(K,) command send times."""
    clutch: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    """(K,) clutch engaged in each command.  Empty: treated as engaged throughout."""
    rtt_t_s: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    """(R,) times of the round-trip samples (receive time of the acknowledging state)."""
    rtt_ms: np.ndarray = field(default_factory=lambda: _EMPTY.copy())
    """(R,) round trip: state receive time - send time of the command it acknowledges (ms)."""
    rate_hz: float = math.nan
    """The console loop rate: the recording's ``rate_hz`` metadata, else the command rate."""
    started_unix_s: float | None = None
    """Wall-clock time the recording was created (for the report's date)."""
    notes: list[str] = field(default_factory=list)
    """What was missing or repaired when the run was read."""

    def __post_init__(self) -> None:
        f = np.float64
        self.t_s = np.asarray(self.t_s, dtype=f).reshape(-1)
        self.tool_pos = np.asarray(self.tool_pos, dtype=f).reshape(-1, 3)
        self.force_n = np.asarray(self.force_n, dtype=f).reshape(-1)
        self.counters = {k: np.asarray(v, dtype=f).reshape(-1) for k, v in self.counters.items()}
        self.master_t_s = np.asarray(self.master_t_s, dtype=f).reshape(-1)
        self.master_pos = np.asarray(self.master_pos, dtype=f).reshape(-1, 3)
        self.clutch_t_s = np.asarray(self.clutch_t_s, dtype=f).reshape(-1)
        self.clutch = np.asarray(self.clutch, dtype=bool).reshape(-1)
        self.rtt_t_s = np.asarray(self.rtt_t_s, dtype=f).reshape(-1)
        self.rtt_ms = np.asarray(self.rtt_ms, dtype=f).reshape(-1)
        n = len(self.t_s)
        if len(self.tool_pos) != n:
            raise ValueError(f"tool_pos has {len(self.tool_pos)} rows, t_s has {n}")
        if len(self.force_n) == 0 and n:
            self.force_n = np.full(n, np.nan)
        if len(self.force_n) != n:
            raise ValueError(f"force_n has {len(self.force_n)} samples, t_s has {n}")
        for k, v in self.counters.items():
            if len(v) != n:
                raise ValueError(f"counter {k!r} has {len(v)} samples, t_s has {n}")
        if len(self.master_pos) != len(self.master_t_s):
            raise ValueError("master_pos and master_t_s differ in length")
        if len(self.clutch) != len(self.clutch_t_s):
            raise ValueError("clutch and clutch_t_s differ in length")
        if len(self.rtt_ms) != len(self.rtt_t_s):
            raise ValueError("rtt_ms and rtt_t_s differ in length")
        if not math.isfinite(self.rate_hz):
            self.rate_hz = _rate(self.clutch_t_s)
            if not math.isfinite(self.rate_hz):
                self.rate_hz = _rate(self.t_s)
        if isinstance(self.info, Mapping):
            self.info = dict(self.info)
        else:
            self.info = {}

    # -- what the task says -----------------------------------------------------------------

    @property
    def points(self) -> dict[str, np.ndarray]:
        """The task's named point sets as (n, 3) arrays (m); malformed sets are skipped."""
        out = {}
        for name, pts in (self.info.get("points") or {}).items():
            try:
                a = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
            except (TypeError, ValueError):
                continue
            a = a[np.all(np.isfinite(a), axis=1)]
            if len(a):
                out[str(name)] = a
        return out

    @property
    def values(self) -> dict[str, float]:
        """The task's named values (e.g. ``time_limit_s``, ``force_limit_n``)."""
        out = {}
        for k, v in (self.info.get("values") or {}).items():
            try:
                out[str(k)] = float(v)
            except (TypeError, ValueError):
                continue
        return out

    def counter(self, name: str) -> np.ndarray | None:
        """A ``task_*`` counter's samples (the ``task_`` prefix may be left out)."""
        key = name if name.startswith("task_") else f"task_{name}"
        return self.counters.get(key)

    # -- reading a recording --------------------------------------------------------------------

    @classmethod
    def from_recording(cls, rec: Any) -> TaskRun:
        """Build a run from a :class:`~master_console.recording.Recording`.

        Robust to torn or short recordings (malformed records are skipped and noted in
        ``notes``); raises ``ValueError`` naming what is missing when the recording has no
        ``task`` record (the arm ran no training task).
        """
        path = getattr(rec, "path", "<recording>")
        tasks = [r for r in rec.records("task") if isinstance(r.get("info"), Mapping)]
        if not tasks:
            raise ValueError(
                f"{path}: no 'task' record (the arm's TaskInfo): the arm ran no training task, "
                "so there is nothing to score (start the arm with a task, e.g. --task reach)"
            )
        info = dict(tasks[0]["info"])
        name = str(info.get("name") or "")
        if not name:
            raise ValueError(f"{path}: the 'task' record has no task name")
        notes: list[str] = []
        if getattr(rec, "truncated", False):
            notes.append("the recording has a torn tail (ignored): the session was cut short")
        elif not getattr(rec, "closed_cleanly", True):
            notes.append("the recording was not closed cleanly")

        firsts = [recs[0]["t"] for k in rec.kinds() if (recs := rec.records(k))]
        t0 = min(firsts) if firsts else 0

        # states
        t_s, pos, force, task_rows, rtt_t, rtt = [], [], [], [], [], []
        last_ack: int | None = None
        bad = 0
        for r in rec.records("state"):
            p = _vec(r.get("measured_cp"), 3)
            if p is None:
                bad += 1
                continue
            t = (r["t"] - t0) * 1e-9
            cf = _vec(r.get("measured_cf"), 3)
            t_s.append(t)
            pos.append(p)
            force.append(float(np.linalg.norm(cf)) if cf is not None else math.nan)
            task = r.get("task")
            task_rows.append(task if isinstance(task, Mapping) else {})
            ack, ack_send = r.get("ack_seq"), r.get("ack_send_ns")
            if _is_int(ack) and (last_ack is None or ack > last_ack):
                last_ack = ack
                if _is_int(ack_send) and ack_send > 0 and r["t"] > ack_send:
                    rtt_t.append(t)
                    rtt.append((r["t"] - ack_send) * 1e-6)
        if bad:
            notes.append(f"{bad} state record(s) without a valid measured_cp were skipped")
        if not t_s:
            notes.append("the recording has no state records")
        counters: dict[str, np.ndarray] = {}
        for key in dict.fromkeys(k for row in task_rows for k in row):
            counters[str(key)] = np.array([_num(row.get(key)) for row in task_rows])

        # commands (clutch)
        c_t, c_on = [], []
        for r in rec.records("command"):
            c = r.get("clutch")
            if isinstance(c, bool | int | float):
                c_t.append((r["t"] - t0) * 1e-9)
                c_on.append(bool(c))
        if not c_t:
            notes.append("no command records: the clutch is taken as engaged throughout")

        # master input
        m_t, m_pos = [], []
        for r in rec.records("input"):
            p = _vec(r.get("pose"), 3)
            if p is not None:
                m_t.append((r["t"] - t0) * 1e-9)
                m_pos.append(p)

        meta = getattr(rec, "metadata", {}) or {}
        rate = _num(meta.get("rate_hz"))
        header = getattr(rec, "header", {}) or {}
        created = header.get("created_unix_ns")
        return cls(
            task=name,
            info=info,
            t_s=np.array(t_s, dtype=np.float64),
            tool_pos=np.array(pos).reshape(-1, 3),
            force_n=np.array(force),
            counters=counters,
            master_t_s=np.array(m_t),
            master_pos=np.array(m_pos).reshape(-1, 3),
            clutch_t_s=np.array(c_t),
            clutch=np.array(c_on, dtype=bool),
            rtt_t_s=np.array(rtt_t),
            rtt_ms=np.array(rtt),
            rate_hz=rate,
            started_unix_s=created * 1e-9 if _is_int(created) else None,
            notes=notes,
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    return math.nan


def _vec(v: Any, n: int) -> np.ndarray | None:
    """The first ``n`` entries of a list of numbers, or None if it is not one."""
    if not isinstance(v, list | tuple) or len(v) < n:
        return None
    try:
        a = np.array(v[:n], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return a if np.all(np.isfinite(a)) else None


def _rate(t: np.ndarray) -> float:
    if len(t) < 3:
        return math.nan
    dt = np.diff(t)
    dt = dt[dt > 0]
    return float(1.0 / np.median(dt)) if len(dt) else math.nan


# =============================================================================================
# Windows, edges, counters
# =============================================================================================


def _rising_edges(on: np.ndarray) -> np.ndarray:
    """Indices where a boolean sequence turns on (index 0 if it starts on)."""
    on = np.asarray(on, dtype=bool)
    if len(on) == 0:
        return np.empty(0, dtype=np.int64)
    prev = np.concatenate([[False], on[:-1]])
    return np.nonzero(on & ~prev)[0]


def _first_rise(run: TaskRun, name: str) -> float | None:
    c = run.counter(name)
    if c is None or len(c) == 0:
        return None
    idx = _rising_edges(np.nan_to_num(c, nan=0.0) >= 0.5)
    return float(run.t_s[idx[0]]) if len(idx) else None


def task_window(run: TaskRun) -> tuple[float, float, bool]:
    """``(start_s, end_s, completed)`` of the attempt.

    start: the ``task_started`` rising edge (the arm starts the task at the tool's first
    2 mm of motion); without that counter, the first command with the clutch engaged; else the
    first sample.  end: the ``task_done`` rising edge (``completed``), else the last sample
    recorded (state, command or input).  Both edges are console receive times, so the
    downlink delay cancels and the time matches the arm's ``task_elapsed_ms``.
    """
    start_s = _first_rise(run, "task_started")
    if start_s is None and len(run.clutch):
        on = np.nonzero(run.clutch)[0]
        if len(on):
            start_s = float(run.clutch_t_s[on[0]])
    done = _first_rise(run, "task_done")
    series = [a for a in (run.t_s, run.clutch_t_s, run.master_t_s) if len(a)]
    last = float(max(np.nanmax(a) for a in series)) if series else 0.0
    first = float(min(np.nanmin(a) for a in series)) if series else 0.0
    start = start_s if start_s is not None else first
    if done is not None:
        start = min(start, done)
        return start, done, True
    return start, max(start, last), False


def _counter_at(run: TaskRun, name: str, t_end: float | None = None) -> float | None:
    """The counter's last finite value at or before ``t_end`` (None: no such counter)."""
    c = run.counter(name)
    if c is None or len(c) == 0:
        return None
    ok = np.isfinite(c)
    if t_end is not None:
        ok &= run.t_s <= t_end + 1e-9
    idx = np.nonzero(ok)[0]
    return float(c[idx[-1]]) if len(idx) else None


def _count(v: float | None) -> int | None:
    return None if v is None else round(v)


def _median_rtt_s(run: TaskRun) -> float:
    r = run.rtt_ms[np.isfinite(run.rtt_ms) & (run.rtt_ms >= 0)]
    return float(np.median(r)) * 1e-3 if len(r) else 0.0


def _engaged_at(run: TaskRun, times: np.ndarray, lag_s: float = 0.0) -> np.ndarray:
    """Clutch engaged at each time (looked up at ``time - lag_s``); all True with no commands."""
    times = np.asarray(times, dtype=np.float64)
    if len(run.clutch) == 0:
        return np.ones(len(times), dtype=bool)
    order = np.argsort(run.clutch_t_s, kind="stable")
    ct, con = run.clutch_t_s[order], run.clutch[order]
    idx = np.searchsorted(ct, times - lag_s, side="right") - 1
    return np.where(idx >= 0, con[np.clip(idx, 0, None)], False)


# =============================================================================================
# The smoothed tool path
# =============================================================================================


@dataclass(frozen=True)
class _Kinematics:
    t: np.ndarray  # uniform grid (s)
    pos: np.ndarray  # smoothed position (m)
    vel: np.ndarray  # (m/s)
    jerk: np.ndarray  # (m/s^3)
    speed: np.ndarray  # (m/s)
    use: np.ndarray  # inside the task window and engaged
    dt: float


def _clean_series(t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Finite rows, sorted by time, duplicate times dropped."""
    ok = np.isfinite(t) & np.all(np.isfinite(x), axis=1)
    t, x = t[ok], x[ok]
    order = np.argsort(t, kind="stable")
    t, x = t[order], x[order]
    if len(t):
        keep = np.concatenate([[True], np.diff(t) > 0])
        t, x = t[keep], x[keep]
    return t, x


def _resample(t: np.ndarray, x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    g = np.arange(t[0], t[-1] + 0.5 / fs, 1.0 / fs)
    g = g[g <= t[-1] + 1e-12]
    cols = [np.interp(g, t, x[:, i]) for i in range(x.shape[1])]
    return g, np.column_stack(cols)


def _lowpass(x: np.ndarray, fs: float, cutoff_hz: float, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, cutoff_hz, btype="lowpass", fs=fs, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), len(x) - 1)
    if padlen < 1:
        return x.copy()
    return signal.sosfiltfilt(sos, x, axis=0, padlen=padlen)


def _kinematics(run: TaskRun) -> _Kinematics | None:
    t, x = _clean_series(run.t_s, run.tool_pos)
    if len(t) < 2 or t[-1] - t[0] <= 0:
        return None
    fs = SMOOTH_RATE_HZ
    g, p = _resample(t, x, fs)
    if len(g) < 4:
        return None
    p = _lowpass(p, fs, SMOOTH_CUTOFF_HZ)
    dt = 1.0 / fs
    v = np.gradient(p, dt, axis=0)
    a = np.gradient(v, dt, axis=0)
    j = np.gradient(a, dt, axis=0)
    start, end, _ = task_window(run)
    use = (g >= start - 1e-9) & (g <= end + 1e-9) & _engaged_at(run, g, _median_rtt_s(run))
    return _Kinematics(g, p, v, j, np.linalg.norm(v, axis=1), use, dt)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(i0, i1), ...]`` inclusive index ranges where ``mask`` is True."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0] - 1, strict=True))


# =============================================================================================
# Metrics
# =============================================================================================


def completion_time_s(run: TaskRun) -> float:
    """Task completion time (s), as the da Vinci Skills Simulator and FLS time it.

    From the start (the arm's ``task_started`` rising edge, i.e. the first motion; without it,
    the first command with the clutch engaged) to the ``task_done`` rising edge, both as
    received by the console (:func:`task_window`).  NaN when the task was not completed.  The
    arm's own measurement, ``task_elapsed_ms`` (see :func:`arm_elapsed_s`), is the cross-check;
    the task's ``time_limit_s`` is advisory (the arm does not stop the task), the
    ``max_time_s`` threshold judges it.
    """
    start, end, completed = task_window(run)
    return end - start if completed else math.nan


def arm_elapsed_s(run: TaskRun) -> float:
    """The arm's ``task_elapsed_ms`` at ``task_done`` (s, arm clock); NaN if not completed."""
    _, end, completed = task_window(run)
    v = _counter_at(run, "task_elapsed_ms", end)
    return v * 1e-3 if completed and v is not None else math.nan


def path_length_m(run: TaskRun) -> float:
    """Tool path length (m) while the clutch is engaged, in the task window.

    The da Vinci simulator's "economy of motion" is this length.  Jitter-robust: measured on
    the tool path resampled at 200 Hz, low-passed at 6 Hz (2nd-order Butterworth, zero-phase)
    and summed at 50 Hz, so position noise does not add length.  0 when nothing moved.
    """
    k = _kinematics(run)
    if k is None:
        return 0.0
    step = max(1, round(SMOOTH_RATE_HZ / PATH_RATE_HZ))
    total = 0.0
    for i0, i1 in _runs(k.use):
        idx = np.arange(i0, i1 + 1, step)
        if idx[-1] != i1:
            idx = np.append(idx, i1)
        total += float(np.sum(np.linalg.norm(np.diff(k.pos[idx], axis=0), axis=1)))
    return total


def _tour(start: np.ndarray, pts: np.ndarray) -> float:
    """Shortest open path from ``start`` through all ``pts`` (exact for <= 7, else greedy)."""
    if len(pts) == 0:
        return 0.0
    if len(pts) <= 7:
        best = math.inf
        for perm in itertools.permutations(range(len(pts))):
            seq = np.vstack([start, pts[list(perm)]])
            best = min(best, float(np.sum(np.linalg.norm(np.diff(seq, axis=0), axis=1))))
        return best
    left, here, total = list(range(len(pts))), start, 0.0
    while left:
        d = [float(np.linalg.norm(pts[i] - here)) for i in left]
        i = left.pop(int(np.argmin(d)))
        total += min(d)
        here = pts[i]
    return total


def _pair_tour(start: np.ndarray, picks: np.ndarray, places: np.ndarray) -> float:
    """Shortest start -> pick -> (lift) -> place -> pick -> (lift) -> place ... path; a pick
    below its place is first lifted straight up to the place's height (off its peg).

    Up to 4 rings: every ring order and every assignment of rings to destination pegs; more:
    the given pairing in the best order (up to 6) or the given order.
    """
    n = min(len(picks), len(places))
    if n == 0:
        return 0.0

    def length(order: Sequence[int], dest: Sequence[int]) -> float:
        here, total = start, 0.0
        for i, j in zip(order, dest, strict=True):
            pick, place = picks[i], places[j]
            lift = max(0.0, float(place[2] - pick[2]))
            up = pick + np.array([0.0, 0.0, lift])
            total += float(np.linalg.norm(pick - here) + lift + np.linalg.norm(place - up))
            here = place
        return total

    if n <= 4 and len(places) <= 6:
        return min(
            length(o, d)
            for o in itertools.permutations(range(n))
            for d in itertools.permutations(range(len(places)), n)
        )
    if n <= 6:
        return min(length(o, o) for o in itertools.permutations(range(n)))
    return length(range(n), range(n))


def _first_key(points: Mapping[str, np.ndarray], *names: str) -> np.ndarray | None:
    for n in names:
        if n in points and len(points[n]):
            return points[n]
    return None


def ideal_path_m(run: TaskRun, start_pos: np.ndarray | None = None) -> float:
    """The straight-line path a perfect attempt would take (m), from the task's points.

    From the tool position at the start:

    - ``reach``: the shortest order through the ``targets`` (each leg ending on the target's
      touch sphere when ``touch_radius_m`` is given);
    - ``peg-transfer``: start -> ring (``rings``, else ``pegs_from``) -> straight up to the
      destination peg's top height (off its peg) -> destination peg top (``pegs_to``) -> next
      ring ..., in the best order and assignment of rings to destination pegs;
    - ``palpation``: the shortest order through the lumps if the task discloses them
      (``lumps``/``targets``; the simulator keeps its lump secret), else a survey of the
      search area: to its nearest corner and once around its outline (``search_area``: two
      opposite corners of a rectangle, or a polygon);
    - other tasks: through every point, in the order given.

    NaN when the task has no points or the tool position at the start is unknown.
    """
    points, values = run.points, run.values
    if start_pos is None:
        start_pos = _start_position(run)
    if start_pos is None or not points:
        return math.nan
    s = np.asarray(start_pos, dtype=np.float64)
    if run.task == "reach":
        tg = _first_key(points, "targets")
        if tg is None:
            return math.nan
        r = max(0.0, values.get("touch_radius_m", 0.0))
        return max(0.0, _tour(s, tg) - r * len(tg))
    if run.task == "peg-transfer":
        picks = _first_key(points, "rings", "pegs_from")
        places = _first_key(points, "pegs_to")
        if picks is None or places is None:
            return math.nan
        return _pair_tour(s, picks, places)
    if run.task == "palpation":
        lumps = _first_key(points, "lumps", "targets")
        if lumps is not None:
            return _tour(s, lumps)
        area = search_area_outline(points)
        if area is None:
            return math.nan
        i0 = int(np.argmin(np.linalg.norm(area - s, axis=1)))
        ring = np.vstack([area[i0:], area[: i0 + 1]])
        seq = np.vstack([s, ring])
        return float(np.sum(np.linalg.norm(np.diff(seq, axis=0), axis=1)))
    seq = np.vstack([s, *points.values()])
    return float(np.sum(np.linalg.norm(np.diff(seq, axis=0), axis=1)))


def search_area_outline(points: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The ``search_area`` as polygon corners (n, 3): two points are opposite corners of an
    axis-aligned rectangle (at their mean height); three or more are the polygon itself."""
    area = points.get("search_area")
    if area is None or len(area) < 2:
        return None
    if len(area) == 2:
        (x0, y0, z0), (x1, y1, z1) = area
        z = (z0 + z1) / 2.0
        return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    return np.asarray(area, dtype=np.float64)


def _start_position(run: TaskRun) -> np.ndarray | None:
    t, x = _clean_series(run.t_s, run.tool_pos)
    if len(t) == 0:
        return None
    start, _, _ = task_window(run)
    return np.array([np.interp(start, t, x[:, i]) for i in range(3)])


def _progress(run: TaskRun, t_end: float, completed: bool) -> float:
    """Fraction of the task's items achieved (1 when completed; NaN if unknown)."""
    if completed:
        return 1.0
    pairs = {
        "reach": ("task_targets_touched", "task_targets_total"),
        "peg-transfer": ("task_rings_placed", "task_rings_total"),
    }
    if run.task in pairs:
        done, total = (_counter_at(run, n, t_end) for n in pairs[run.task])
        if done is None or not total:
            return math.nan
        return float(np.clip(done / total, 0.0, 1.0))
    if run.task == "palpation":
        f = _counter_at(run, "task_found", t_end)
        lumps = _first_key(run.points, "lumps", "targets")
        if f is None or lumps is None:
            return math.nan
        return float(np.clip(f / len(lumps), 0.0, 1.0))
    return math.nan


def economy_of_motion(run: TaskRun) -> float:
    """Ideal path length / actual engaged tool path length, in (0, 1]; 1 = no wasted motion.

    The da Vinci Skills Simulator scores economy of motion by the instrument path length; this
    normalises it by the task's straight-line ideal (:func:`ideal_path_m`), so tasks and
    layouts compare.  For an unfinished attempt the ideal is scaled by the fraction of the task
    achieved (targets touched / rings placed / lumps found).  NaN when it cannot be defined
    (no task points, no motion, nothing achieved).
    """
    _, end, completed = task_window(run)
    ideal = ideal_path_m(run) * _progress(run, end, completed)
    actual = path_length_m(run)
    if not (math.isfinite(ideal) and ideal > 0 and actual > 0):
        return math.nan
    return float(min(1.0, ideal / actual))


def instrument_collisions(run: TaskRun) -> int | None:
    """Instrument collisions (da Vinci simulator): the arm's ``task_collisions`` counter at
    the end of the attempt (collisions after ``task_done`` do not count).  None if absent."""
    _, end, _ = task_window(run)
    return _count(_counter_at(run, "task_collisions", end))


def _force_limit(run: TaskRun, limit_n: float | None = None) -> float:
    if limit_n is not None:
        return float(limit_n)
    v = run.values.get("force_limit_n")
    return float(v) if v is not None and v > 0 else DEFAULT_FORCE_LIMIT_N


def _window_mask(run: TaskRun) -> np.ndarray:
    start, end, _ = task_window(run)
    return (run.t_s >= start - 1e-9) & (run.t_s <= end + 1e-9)


def excessive_force_s(run: TaskRun, limit_n: float | None = None) -> float:
    """Time (s) the measured force magnitude is above the limit, in the task window.

    The da Vinci simulator's "excessive instrument force" (time above a force limit).  The
    limit is ``limit_n``, else the task's ``force_limit_n`` (else 3 N).  Each state sample
    above the limit counts for the time to the next sample (at most 0.1 s, so a gap in the
    recording is not counted as force).  Cross-check: :func:`arm_excessive_force_s`.
    """
    lim = _force_limit(run, limit_n)
    m = _window_mask(run)
    t, f = run.t_s[m], run.force_n[m]
    if len(t) < 2:
        return 0.0
    dt = np.minimum(np.diff(t), _MAX_SAMPLE_GAP_S)
    over = np.nan_to_num(f[:-1], nan=0.0) > lim
    return float(np.sum(dt[over]))


def arm_excessive_force_s(run: TaskRun) -> float:
    """The arm's ``task_excess_force_ms`` at the end of the attempt (s); NaN if absent."""
    _, end, _ = task_window(run)
    v = _counter_at(run, "task_excess_force_ms", end)
    return math.nan if v is None else v * 1e-3


def peak_force_n(run: TaskRun) -> float:
    """The largest measured force magnitude (N) in the task window; NaN without samples."""
    f = run.force_n[_window_mask(run)]
    f = f[np.isfinite(f)]
    return float(f.max()) if len(f) else math.nan


def drops(run: TaskRun) -> int | None:
    """Objects dropped (FLS peg transfer: a ring dropped outside the field of view or off
    the board): the arm's ``task_drops`` at the end.  None for tasks without the counter."""
    _, end, _ = task_window(run)
    return _count(_counter_at(run, "task_drops", end))


def clutch_count(run: TaskRun) -> int:
    """Clutch engagements (rising edges of the command's clutch, a session starting engaged
    counts one) up to the end of the attempt: the da Vinci simulator's master workspace
    management; many re-engagements mean the master workspace was poorly used."""
    _, end, _ = task_window(run)
    keep = run.clutch_t_s <= end + 1e-9
    order = np.argsort(run.clutch_t_s[keep], kind="stable")
    return len(_rising_edges(run.clutch[keep][order]))


def idle_time_s(run: TaskRun, speed_threshold_m_s: float = IDLE_SPEED_M_S) -> float:
    """Time (s) with the clutch engaged and the tool slower than 2 mm/s, between the start
    and ``task_done`` (hesitation; time spent clutched out is not idle).  Speed from the
    smoothed path (200 Hz grid, 6 Hz low-pass)."""
    k = _kinematics(run)
    if k is None:
        return 0.0
    return float(np.count_nonzero(k.use & (k.speed < speed_threshold_m_s)) * k.dt)


def log_dimensionless_jerk(run: TaskRun) -> float:
    """Smoothness of the tool motion: the log dimensionless jerk (LDLJ).

    ``LDLJ = -ln( T^3 / v_peak^2 * integral |d^3x/dt^3|^2 dt )`` — the velocity-based form of
    Balasubramanian et al. 2015 (equivalent to Hogan & Sternad 2009's
    ``T^5 / A^2 * integral |jerk|^2 dt`` with the amplitude replaced by ``v_peak * T``; the
    mixed ``T^5 / v_peak^2`` is not dimensionless).  It does not depend on the movement's
    amplitude or duration; higher (less negative) is smoother: a single minimum-jerk reach
    scores -ln(720 / 1.875^2) = -5.3 over its whole duration, every added sub-movement,
    hesitation or oscillation lowers it.

    Computed on the smoothed path (200 Hz, 6 Hz low-pass), over the engaged stretches of the
    task window, each trimmed to where the tool moves (speed >= 2 % of the peak speed); T is
    the total trimmed time, pauses inside a stretch included.  NaN without motion.
    """
    k = _kinematics(run)
    if k is None or not np.any(k.use):
        return math.nan
    vpeak = float(np.max(k.speed[k.use]))
    if vpeak < 1e-6:
        return math.nan
    total_t, integral = 0.0, 0.0
    j2 = np.sum(k.jerk**2, axis=1)
    for i0, i1 in _runs(k.use):
        moving = np.nonzero(k.speed[i0 : i1 + 1] >= MOVING_FRACTION * vpeak)[0]
        if len(moving) < 2:
            continue
        a, b = i0 + moving[0], i0 + moving[-1]
        total_t += (b - a) * k.dt
        integral += float(np.trapezoid(j2[a : b + 1], dx=k.dt))
    if total_t <= 0 or integral <= 0:
        return math.nan
    return float(-math.log(total_t**3 / vpeak**2 * integral))


class TremorIndex(NamedTuple):
    """Physiological tremor at the master (the surgeon's hand)."""

    rms_um: float
    """RMS of the 6-16 Hz band of the raw master position (µm, 3-D magnitude)."""
    voluntary_rms_um: float
    """RMS of the 0.5-4 Hz (voluntary motion) band (µm)."""
    ratio: float
    """``rms_um / voluntary_rms_um``."""


def _band_rms(x: np.ndarray, fs: float, band: tuple[float, float]) -> float:
    sos = signal.butter(4, band, btype="bandpass", fs=fs, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), len(x) - 1)
    y = signal.sosfiltfilt(sos, x, axis=0, padlen=padlen)
    trim = int(0.5 * fs) if len(y) > 6 * fs else 0  # filter start-up at each end
    if trim:
        y = y[trim:-trim]
    return float(np.sqrt(np.mean(np.sum(y**2, axis=1))))


def tremor_index(run: TaskRun) -> TremorIndex:
    """Tremor of the surgeon's hand, from the raw master positions in the task window.

    The master position (before the tremor filter) is resampled uniformly at its median
    sample rate, band-passed (4th-order Butterworth, zero-phase ``sosfiltfilt``) to 6-16 Hz
    (physiological tremor, as in the project's tremor benchmarks) and to 0.5-4 Hz (voluntary
    motion); the index is the RMS of the 3-D tremor band in µm — a sinusoid of amplitude a
    gives a/sqrt(2) — and its ratio to the voluntary band.  NaN when the master was sampled
    below 40 Hz or for under 1 s.
    """
    nan = TremorIndex(math.nan, math.nan, math.nan)
    start, end, _ = task_window(run)
    t, x = _clean_series(run.master_t_s, run.master_pos)
    m = (t >= start - 1e-9) & (t <= end + 1e-9)
    t, x = t[m], x[m]
    if len(t) < 16 or t[-1] - t[0] < 1.0:
        return nan
    fs = min(_rate(t), 1000.0)
    if not fs > 2.5 * TREMOR_BAND_HZ[1]:
        return nan
    _, xu = _resample(t, x, fs)
    xu = xu - xu.mean(axis=0)
    tr = _band_rms(xu, fs, TREMOR_BAND_HZ) * 1e6
    vol = _band_rms(xu, fs, VOLUNTARY_BAND_HZ) * 1e6
    return TremorIndex(tr, vol, tr / vol if vol > 0 else math.nan)


def targets_touched(run: TaskRun) -> int | None:
    """Reach: targets touched (``task_targets_touched``) by the end; None if absent."""
    _, end, _ = task_window(run)
    return _count(_counter_at(run, "task_targets_touched", end))


def rings_placed(run: TaskRun) -> int | None:
    """Peg transfer: rings on a destination peg (``task_rings_placed``) at the end."""
    _, end, _ = task_window(run)
    return _count(_counter_at(run, "task_rings_placed", end))


def found(run: TaskRun) -> int | None:
    """Palpation: lumps found by a mark (``task_found``) at the end."""
    _, end, _ = task_window(run)
    return _count(_counter_at(run, "task_found", end))


def mark_error_mm(run: TaskRun) -> float:
    """Palpation: the marks' distance error (``task_mark_error_um``) at the end, in mm."""
    _, end, _ = task_window(run)
    v = _counter_at(run, "task_mark_error_um", end)
    return math.nan if v is None else v * 1e-3


# =============================================================================================
# Thresholds
# =============================================================================================


@dataclass(frozen=True)
class Thresholds:
    """Pass/fail limits of one task; ``None`` = not checked.  Keys are the TOML names
    (``[task.reach] max_time_s = 45``)."""

    require_complete: bool = True
    max_time_s: float | None = None
    max_collisions: int | None = None
    max_excessive_force_s: float | None = None
    max_drops: int | None = None
    min_found: int | None = None
    max_mark_error_mm: float | None = None
    min_economy: float | None = None
    min_score: float | None = None
    force_limit_n: float | None = None
    """Overrides the task's ``force_limit_n`` for excessive force (not a check itself)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_THRESHOLDS: dict[str, Thresholds] = {
    "reach": Thresholds(max_time_s=60.0, max_collisions=2, max_excessive_force_s=1.0),
    "peg-transfer": Thresholds(max_time_s=180.0, max_drops=1, max_excessive_force_s=2.0),
    "palpation": Thresholds(
        max_time_s=180.0, min_found=1, max_excessive_force_s=2.0, max_mark_error_mm=8.0
    ),
}
"""Default pass/fail limits per task (a simulator with a remote arm is slower than FLS's
48 s proficiency; 180 s sits well inside FLS's 300 s cut-off; palpation: the lump found
(within the task's 8 mm found radius) in the task's 180 s)."""

_THRESHOLD_KEYS = tuple(f.name for f in dataclasses.fields(Thresholds))
_INT_KEYS = frozenset({"max_collisions", "max_drops", "min_found"})

# Scale of the penalty of each metric when a task has no threshold for it.
_REFERENCE = {
    "max_time_s": 120.0,
    "max_collisions": 3,
    "max_excessive_force_s": 1.0,
    "max_drops": 1,
    "min_found": 1,
    "max_mark_error_mm": 5.0,
}


def _task_thresholds(task: str, d: Mapping[str, Any]) -> Thresholds:
    if not isinstance(d, Mapping):
        raise TypeError(f"thresholds for {task!r} must be a table, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_THRESHOLD_KEYS))
    if unknown:
        raise ValueError(
            f"unknown threshold key(s) {', '.join(map(str, unknown))} for task {task!r}; "
            f"valid keys: {', '.join(_THRESHOLD_KEYS)}"
        )
    values: dict[str, Any] = {}
    for key, v in d.items():
        if key == "require_complete":
            if not isinstance(v, bool):
                raise ValueError(f"require_complete must be true or false, got {v!r}")
            values[key] = v
        elif v is None or v is False:  # `max_drops = false` turns a check off
            values[key] = None
        elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{key} must be a number (or false to turn it off), got {v!r}")
        elif v < 0 or (key == "force_limit_n" and v == 0):
            raise ValueError(f"{key} must be {'> 0' if key == 'force_limit_n' else '>= 0'}")
        elif key in _INT_KEYS:
            if float(v) != int(v):
                raise ValueError(f"{key} must be a whole number, got {v!r}")
            values[key] = int(v)
        elif key == "min_economy" and v > 1:
            raise ValueError(f"min_economy must be in [0, 1], got {v!r}")
        else:
            values[key] = float(v)
    base = DEFAULT_THRESHOLDS.get(task, Thresholds())
    return dataclasses.replace(base, **values)


@overload
def thresholds_from_dict(task: str, d: Mapping[str, Any] | None = None) -> Thresholds: ...
@overload
def thresholds_from_dict(task: Mapping[str, Any], d: None = None) -> dict[str, Thresholds]: ...
def thresholds_from_dict(task: Any, d: Any = None) -> Any:
    """Validated thresholds from a config table.

    ``thresholds_from_dict("reach", {"max_time_s": 45})`` -> the reach defaults with those keys
    replaced (a table ``{"reach": {...}}`` nested under the task's name is accepted too);
    ``thresholds_from_dict({"reach": {...}, "palpation": {...}})`` -> thresholds for every
    task.  Unknown tasks or keys raise ``ValueError`` naming the valid ones; a value ``false``
    turns a check off.
    """
    if isinstance(task, Mapping):
        if d is not None:
            raise TypeError("thresholds_from_dict(table) takes one argument")
        unknown = sorted(set(task) - set(TASK_NAMES))
        if unknown:
            raise ValueError(
                f"unknown task(s) {', '.join(map(str, unknown))}; valid tasks: "
                f"{', '.join(TASK_NAMES)}"
            )
        return {name: _task_thresholds(name, task.get(name, {})) for name in TASK_NAMES}
    if task not in TASK_NAMES:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASK_NAMES)}")
    d = {} if d is None else d
    if isinstance(d, Mapping) and task in d and isinstance(d[task], Mapping):
        others = sorted(set(d) - set(TASK_NAMES))
        if others:
            raise ValueError(
                f"unknown task(s) {', '.join(map(str, others))}; valid tasks: "
                f"{', '.join(TASK_NAMES)}"
            )
        d = d[task]
    elif isinstance(d, Mapping) and set(d) and set(d) <= set(TASK_NAMES):
        d = {}  # a table for other tasks only
    return _task_thresholds(task, d)


# =============================================================================================
# The score
# =============================================================================================


@dataclass(frozen=True)
class Check:
    """One pass/fail check: ``value op limit``."""

    name: str  # the threshold key, e.g. "max_time_s"
    metric: str  # the metric it checks, e.g. "completion_time_s"
    value: float | int | bool | None
    limit: float | int | bool
    op: str  # "<=", ">=" or "=="
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: _json(v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Score:
    """The scored attempt.  Metrics are also attributes: ``s.completion_time_s``."""

    task: str
    completed: bool
    passed: bool
    overall: float
    """0-100: 100 minus the weighted penalties (:data:`WEIGHTS`, see :func:`score`)."""
    metrics: dict[str, Any]
    checks: list[Check]
    penalties: dict[str, float]
    thresholds: Thresholds
    notes: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        metrics = self.__dict__.get("metrics")
        if metrics is not None and name in metrics:
            return metrics[name]
        raise AttributeError(name)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and inf become None, numpy values plain Python)."""
        return {
            "task": self.task,
            "completed": bool(self.completed),
            "passed": bool(self.passed),
            "overall": _json(self.overall),
            "metrics": {k: _json(v) for k, v in self.metrics.items()},
            "checks": [c.to_dict() for c in self.checks],
            "penalties": {k: _json(v) for k, v in self.penalties.items()},
            "thresholds": {k: _json(v) for k, v in self.thresholds.to_dict().items()},
            "notes": list(self.notes),
        }


def _json(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, tuple | list):
        return [_json(x) for x in v]
    return v


WEIGHTS = {
    "completion": 20.0,
    "time": 25.0,
    "economy": 15.0,
    "collisions": 10.0,
    "force": 15.0,
    "accuracy": 15.0,
}
"""Points each part of the overall score can lose (they sum to 100)."""


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def _ref(th: Thresholds, task: str, key: str) -> float:
    """The scale of a penalty: the threshold, else the task default, else a reference."""
    for source in (th, DEFAULT_THRESHOLDS.get(task)):
        v = getattr(source, key, None) if source is not None else None
        if v is not None:
            return float(v)
    return float(_REFERENCE[key])


def _ramp(value: float, limit: float, floor: float) -> float:
    """``value / (2 * limit)`` clipped to [0, 1]: half the weight is lost at the limit."""
    return float(np.clip(value / (2.0 * max(limit, floor)), 0.0, 1.0))


def _penalties(run: TaskRun, m: Mapping[str, Any], th: Thresholds) -> dict[str, float]:
    """The points lost per part (see :func:`score`)."""
    done = bool(m["completed"])
    task = run.task
    frac: dict[str, float] = {}
    frac["completion"] = 0.0 if done else 1.0
    t = m["completion_time_s"]
    frac["time"] = _ramp(t, _ref(th, task, "max_time_s"), 1.0) if done and _finite(t) else 1.0
    eom = m["economy_of_motion"]
    frac["economy"] = 1.0 - eom if _finite(eom) else (0.0 if done else 1.0)
    col = m["instrument_collisions"]
    frac["collisions"] = _ramp(col, _ref(th, task, "max_collisions"), 1.0) if _finite(col) else 0
    frac["force"] = _ramp(m["excessive_force_s"], _ref(th, task, "max_excessive_force_s"), 0.5)
    acc = 0.0
    if task == "reach":
        n, total = m.get("targets_touched"), m.get("targets_total")
        acc = 1.0 - n / total if _finite(n) and _finite(total) and total > 0 else float(not done)
    elif task == "peg-transfer":
        n, total = m.get("rings_placed"), m.get("rings_total")
        known = _finite(n) and _finite(total) and total > 0
        placed = 1.0 - n / total if known else float(not done)
        d = m.get("drops")
        dropped = _ramp(d, _ref(th, task, "max_drops"), 1.0) if _finite(d) else 0.0
        acc = 0.5 * placed + 0.5 * dropped
    elif task == "palpation":
        f = m.get("found")
        need = max(1.0, _ref(th, task, "min_found"))
        miss = 1.0 - min(1.0, f / need) if _finite(f) else 1.0
        err = m.get("mark_error_mm")
        off = _ramp(err, _ref(th, task, "max_mark_error_mm"), 0.5) if _finite(err) else miss
        acc = 0.5 * miss + 0.5 * off
    frac["accuracy"] = float(np.clip(acc, 0.0, 1.0))
    return {k: round(WEIGHTS[k] * float(frac[k]), 2) for k in WEIGHTS}


def _metrics(run: TaskRun, th: Thresholds) -> dict[str, Any]:
    start, end, completed = task_window(run)
    limit = _force_limit(run, th.force_limit_n)
    tremor = tremor_index(run)
    rtt = run.rtt_ms[np.isfinite(run.rtt_ms)]
    m: dict[str, Any] = {
        "completed": completed,
        "completion_time_s": completion_time_s(run),
        "elapsed_s": end - start,
        "arm_elapsed_s": arm_elapsed_s(run),
        "path_length_m": path_length_m(run),
        "ideal_path_m": ideal_path_m(run),
        "economy_of_motion": economy_of_motion(run),
        "instrument_collisions": instrument_collisions(run),
        "excessive_force_s": excessive_force_s(run, limit),
        "arm_excessive_force_s": arm_excessive_force_s(run),
        "peak_force_n": peak_force_n(run),
        "force_limit_n": limit,
        "clutch_count": clutch_count(run),
        "idle_time_s": idle_time_s(run),
        "log_dimensionless_jerk": log_dimensionless_jerk(run),
        "tremor_rms_um": tremor.rms_um,
        "tremor_voluntary_rms_um": tremor.voluntary_rms_um,
        "tremor_ratio": tremor.ratio,
        "rtt_p50_ms": float(np.percentile(rtt, 50)) if len(rtt) else math.nan,
        "rtt_p99_ms": float(np.percentile(rtt, 99)) if len(rtt) else math.nan,
        "rtt_max_ms": float(rtt.max()) if len(rtt) else math.nan,
    }
    if run.task == "reach":
        m["targets_touched"] = targets_touched(run)
        tot = _counter_at(run, "task_targets_total", end)
        if tot is None and "targets" in run.points:
            tot = len(run.points["targets"])
        m["targets_total"] = _count(tot)
    elif run.task == "peg-transfer":
        m["rings_placed"] = rings_placed(run)
        m["rings_lifted"] = _count(_counter_at(run, "task_rings_lifted", end))
        m["rings_total"] = _count(_counter_at(run, "task_rings_total", end))
        m["drops"] = drops(run)
    elif run.task == "palpation":
        m["found"] = found(run)
        m["marks"] = _count(_counter_at(run, "task_marks", end))
        m["mark_error_mm"] = mark_error_mm(run)
    return m


def _checks(m: Mapping[str, Any], th: Thresholds) -> list[Check]:
    out = []
    if th.require_complete:
        out.append(
            Check(
                "require_complete",
                "completed",
                bool(m["completed"]),
                True,
                "==",
                bool(m["completed"]),
            )
        )

    def upper(key: str, metric: str) -> None:
        lim = getattr(th, key)
        if lim is None:
            return
        v = m.get(metric)
        if metric == "completion_time_s" and not _finite(v):
            v = None  # not completed: the time is unknown and fails
        ok = _finite(v) and v <= lim + 1e-9
        if v is None and metric in ("instrument_collisions", "drops"):
            ok = True  # the arm does not count it: nothing to hold against the trainee
        out.append(Check(key, metric, v, lim, "<=", bool(ok)))

    def lower(key: str, metric: str) -> None:
        lim = getattr(th, key)
        if lim is None:
            return
        v = m.get(metric)
        out.append(Check(key, metric, v, lim, ">=", bool(_finite(v) and v >= lim - 1e-9)))

    upper("max_time_s", "completion_time_s")
    upper("max_collisions", "instrument_collisions")
    upper("max_excessive_force_s", "excessive_force_s")
    upper("max_drops", "drops")
    lower("min_found", "found")
    upper("max_mark_error_mm", "mark_error_mm")
    lower("min_economy", "economy_of_motion")
    return out


def score(run: TaskRun, thresholds: Thresholds | Mapping[str, Any] | None = None) -> Score:
    """Score an attempt: every metric, pass/fail per threshold, and a 0-100 overall score.

    ``thresholds``: a :class:`Thresholds`, a dict of overrides (validated by
    :func:`thresholds_from_dict`), or None for :data:`DEFAULT_THRESHOLDS` of the task.

    Overall score (transparent, MScore-like): start at 100 and subtract, per part, its weight
    (:data:`WEIGHTS`, summing to 100) times a penalty fraction in [0, 1]:

    - completion (20): 1 if the task was not completed;
    - time (25): ``time / (2 * max_time_s)`` (half the weight is lost at the time limit, all of
      it at twice the limit); 1 if not completed;
    - economy (15): ``1 - economy_of_motion``;
    - collisions (10): ``collisions / (2 * max(max_collisions, 1))``;
    - force (15): ``excessive_force_s / (2 * max(max_excessive_force_s, 0.5))``;
    - accuracy (15), per task: reach ``1 - touched/total``; peg transfer half
      ``1 - placed/total``, half ``drops / (2 * max(max_drops, 1))``; palpation half
      ``1 - found/min_found``, half ``mark_error / (2 * max_mark_error_mm)``.

    Each fraction is clipped to [0, 1]; where a task has no threshold for a metric, the
    default task threshold (or a reference: 120 s, 3 collisions, 1 s, 1 drop, 5 mm) scales it.
    ``passed``: every check holds (``require_complete`` included); ``min_score`` checks the
    overall score.
    """
    if thresholds is None:
        th = DEFAULT_THRESHOLDS.get(run.task, Thresholds())
    elif isinstance(thresholds, Thresholds):
        th = thresholds
    elif run.task in TASK_NAMES:
        th = thresholds_from_dict(run.task, thresholds)
    else:
        th = _task_thresholds(run.task, thresholds)
    m = _metrics(run, th)
    pen = _penalties(run, m, th)
    overall = round(float(np.clip(100.0 - sum(pen.values()), 0.0, 100.0)), 1)
    checks = _checks(m, th)
    if th.min_score is not None:
        checks.append(
            Check("min_score", "overall", overall, th.min_score, ">=", overall >= th.min_score)
        )
    notes = list(run.notes)
    arm_f, f = m["arm_excessive_force_s"], m["excessive_force_s"]
    if _finite(arm_f) and abs(arm_f - f) > max(0.25, 0.25 * max(arm_f, f)):
        notes.append(
            f"excessive force: {f:.2f} s from the recorded states, {arm_f:.2f} s by the arm's "
            f"counter (the console sees the force at {_rate(run.t_s):.0f} Hz and the arm's "
            "limit may differ)"
        )
    if not _finite(m["ideal_path_m"]):
        notes.append("economy of motion: the task gives no points to define the ideal path")
    return Score(
        task=run.task,
        completed=bool(m["completed"]),
        passed=all(c.passed for c in checks),
        overall=overall,
        metrics=m,
        checks=checks,
        penalties=pen,
        thresholds=th,
        notes=notes,
    )
