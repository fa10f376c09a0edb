"""The input-device conformance kit: the :class:`~master_console.devices.InputDevice` contract,
as checks.

Every input device (the built-ins, a company's haptic stylus or data glove) should pass it. Each
check in :data:`INPUT_CHECKS` is a function ``check(make_device, options=None)`` that builds a
fresh device with ``make_device()`` (no arguments), connects it, watches or exercises one part of
the contract, disconnects it, and raises :class:`DeviceConformanceError` (an ``AssertionError``)
with a message that points at the cause. A check may return a short note (e.g. the achieved rate)
when it passes. What is checked is what the device *declares* (``sample_rate_hz``,
``button_roles``, ``position_range_m``, ``max_speed_m_s``/``max_rate_rad_s``, ``jaw_range_rad``;
see :class:`~master_console.devices.InputDevice`) and what the console relies on: ``latest()``
never blocks, samples are stamped with ``time.monotonic_ns()``, ``seq`` increases, poses are in
metres with unit quaternions, ``send_force`` refuses bad wrenches.

From the command line::

    master-console check-input acme-stylus                 # an installed device
    master-console check-input mypkg.stylus:Stylus --input-option port=5700
    master-console check-input acme-stylus --interactive   # also: press each declared button

From pytest (a device package's own test file)::

    import pytest
    from master_console.device_check import INPUT_CHECKS, check_name, input_device_factory

    @pytest.mark.parametrize("check", INPUT_CHECKS, ids=check_name)
    def test_conformance(check):
        check(input_device_factory("acme-stylus", backend="simulated"))

or ``rows = run_input_conformance(make_device)`` and ``print(format_input_report(rows))``.

Buttons on a real device need a human: with ``interactive`` the buttons check asks for each
declared role in turn ("press and release clutch") and waits up to 10 s for that button to change;
without it, it notes which roles it saw change while it watched.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from master_console.config import (
    INPUTS,
    ConfigError,
    InstalledInput,
    check_device_options,
    input_entry_points,
    installed_input_devices,
    make_device,
    resolve_input_class,
    settings_for_input,
    unknown_input_message,
)
from master_console.devices import BUTTON_ROLES, Buttons, InputDevice, InputSample

logger = logging.getLogger(__name__)

DeviceFactory = Callable[[], InputDevice]
Check = Callable[..., str | None]

FIRST_SAMPLE_TIMEOUT_S = 2.0
"""The longest a device may take from ``connect()`` to its first sample."""
MIN_RATE_FRACTION = 0.8
"""A device delivering fewer new samples per second than this fraction of its declared
``sample_rate_hz`` fails."""
LATEST_P99_LIMIT_US = 200.0
"""``latest()`` is called on every tick of the 1 kHz loop: its 99th percentile must stay below."""
LATEST_MAX_LIMIT_MS = 5.0
"""... and no call may take longer than this (seen twice: one OS hiccup is forgiven)."""
LATEST_WATCH_S = 0.3
"""How long ``latest()`` is timed."""
AGE_PERIODS = 3.0
AGE_SLACK_MS = 5.0
"""A sample, when first read, must be younger than ``AGE_PERIODS`` sample periods (declared, or
the median interval seen, whichever is longer) + ``AGE_SLACK_MS`` (95th percentile)."""
CLOCK_WINDOW_S = 60.0
"""A ``t_ns`` further than this from ``time.monotonic_ns()`` is on another clock."""
POSITION_MARGIN_M = 0.005
"""How far outside its declared ``position_range_m`` a pose may be (m)."""
QUATERNION_NORM_TOL = 1e-3
ROLE_TIMEOUT_S = 10.0
"""Interactive mode: how long the operator has to press and release each button."""
POLL_S = 0.0002
"""How often the checks poll ``latest()`` while watching a stream (s)."""


class DeviceConformanceError(AssertionError):
    """An input device broke the contract; the message says how and what to fix."""


@dataclass
class CheckOptions:
    """How the checks run: ``seconds`` of watching for the rate check (half of it, at least
    0.2 s, for the other stream checks); ``interactive``: ask for each declared button role
    through ``prompt`` (default: print to stdout)."""

    seconds: float = 1.0
    interactive: bool = False
    prompt: Callable[[str], None] = field(default=lambda text: print(text, flush=True))
    role_timeout_s: float = ROLE_TIMEOUT_S

    @property
    def watch_s(self) -> float:
        return max(0.2, 0.5 * self.seconds)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _fail(message: str) -> None:
    raise DeviceConformanceError(message)


def _new_device(make_device: DeviceFactory) -> InputDevice:
    try:
        d = make_device()
    except Exception as exc:
        raise DeviceConformanceError(
            f"make_device() raised {type(exc).__name__}: {exc} (the device must be "
            "constructible from its options alone)"
        ) from exc
    if not isinstance(d, InputDevice):
        _fail(
            f"make_device() returned {type(d).__name__}, not a "
            "master_console.devices.InputDevice subclass"
        )
    return d


@contextlib.contextmanager
def _connected(make_device: DeviceFactory) -> Iterator[InputDevice]:
    """A fresh device, connected; disconnected afterwards."""
    d = _new_device(make_device)
    try:
        d.connect()
    except Exception as exc:
        with contextlib.suppress(Exception):
            d.disconnect()  # release whatever connect() got hold of
        raise DeviceConformanceError(f"connect() raised {type(exc).__name__}: {exc}") from exc
    try:
        yield d
    finally:
        failing = sys.exc_info()[1] is not None
        try:
            d.disconnect()
        except Exception as exc:
            if not failing:
                raise DeviceConformanceError(
                    f"disconnect() raised {type(exc).__name__}: {exc}"
                ) from exc
            logger.warning(
                "disconnect() raised %s after a failed check: %s", type(exc).__name__, exc
            )


def _read(d: InputDevice) -> InputSample | None:
    """``latest()``, checked to be an InputSample (or None)."""
    try:
        s = d.latest()
    except Exception as exc:
        raise DeviceConformanceError(
            f"latest() raised {type(exc).__name__}: {exc} (it must return the newest sample, "
            "or None before the first one, and never raise)"
        ) from exc
    if s is not None and not isinstance(s, InputSample):
        _fail(
            f"latest() returned a {type(s).__name__}, expected a "
            "master_console.devices.InputSample or None"
        )
    return s


def _probe_latest(d: InputDevice) -> None:
    """Call ``latest()`` once on a helper thread: fail (instead of hanging the check) when it
    does not return at all."""
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            _read(d)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    probe = threading.Thread(target=call, name="latest-probe", daemon=True)
    probe.start()
    probe.join(FIRST_SAMPLE_TIMEOUT_S + 1.0)
    if probe.is_alive():
        _fail(
            f"latest() did not return within {FIRST_SAMPLE_TIMEOUT_S + 1.0:g} s: it blocks "
            "(waiting for the device?); it must return the newest sample, or None, at once"
        )
    if outcome and outcome[0] is not None:
        raise outcome[0]


def _first_sample(d: InputDevice) -> tuple[InputSample, float]:
    """Wait for the first sample after connect(); (sample, seconds it took)."""
    t0 = time.monotonic()
    _probe_latest(d)
    while True:
        s = _read(d)
        if s is not None:
            return s, time.monotonic() - t0
        if time.monotonic() - t0 > FIRST_SAMPLE_TIMEOUT_S:
            _fail(
                f"no sample within {FIRST_SAMPLE_TIMEOUT_S:g} s of connect(): latest() kept "
                "returning None (is the device sending? is connect() starting the reader?)"
            )
        time.sleep(0.001)


def _is_new(s: InputSample, prev: InputSample | None) -> bool:
    return prev is None or (s is not prev and (s.seq != prev.seq or s.t_ns != prev.t_ns))


def _watch(d: InputDevice, seconds: float) -> list[tuple[int, InputSample]]:
    """Poll ``latest()`` for ``seconds`` (after the first sample); every new sample with the
    ``time.monotonic_ns()`` read just after ``latest()`` returned it."""
    first, _ = _first_sample(d)
    out = [(time.monotonic_ns(), first)]
    prev = first
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s = _read(d)
        now = time.monotonic_ns()
        if s is not None and _is_new(s, prev):
            out.append((now, s))
            prev = s
        time.sleep(POLL_S)
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def _declared_range(d: InputDevice) -> tuple[np.ndarray, np.ndarray] | None:
    r = d.position_range_m
    if r is None:
        return None
    return np.asarray(r[0], dtype=float), np.asarray(r[1], dtype=float)


def _vec(a: Any) -> str:
    """An array on one line: ``[0.1, nan, 0]``."""
    return np.array2string(np.asarray(a), precision=4, separator=", ", max_line_width=10_000)


def _fmt_box(lo: np.ndarray, hi: np.ndarray) -> str:
    return "(" + ", ".join(f"{a:.3g}..{b:.3g}" for a, b in zip(lo, hi, strict=True)) + ") m"


def _raises_value_error(call: Callable[[], Any], label: str) -> str | None:
    """None when ``call()`` raises ValueError with a message, else what went wrong."""
    try:
        call()
    except ValueError as exc:
        if not str(exc).strip():
            return f"send_force raised ValueError with an empty message for {label}: say what"
        return None
    except Exception as exc:
        name = type(exc).__name__
        return f"send_force raised {name} ({exc}) for {label}: it must raise ValueError"
    return (
        f"send_force accepted {label}: it must raise ValueError (InputDevice.send_force and "
        "master_console.devices.check_wrench do)"
    )


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------
def check_declarations(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """The declared rate, button roles, position box, speed limits and jaw range make sense."""
    d = _new_device(make_device)
    problems: list[str] = []
    rate = d.sample_rate_hz
    if not (_is_real(rate) and math.isfinite(rate) and rate > 0):
        problems.append(f"sample_rate_hz is {rate!r}: declare the device's nominal rate (Hz > 0)")
    roles = d.button_roles
    if isinstance(roles, str) or not isinstance(roles, tuple | list):
        problems.append(f"button_roles is {roles!r}: a tuple of role names, e.g. ('clutch',)")
    else:
        bad = [r for r in roles if r not in BUTTON_ROLES]
        if bad:
            problems.append(
                f"button_roles has {bad}: each role must be one of {', '.join(BUTTON_ROLES)}"
            )
        if len(set(roles)) != len(roles):
            problems.append(f"button_roles lists a role twice: {tuple(roles)}")
    box = d.position_range_m
    if box is not None:
        try:
            lo, hi = (np.asarray(b, dtype=float) for b in box)
            ok = lo.shape == hi.shape == (3,) and np.isfinite(lo).all() and np.isfinite(hi).all()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problems.append(
                f"position_range_m is {box!r}: ((x_min, y_min, z_min), (x_max, y_max, z_max)) "
                "in metres, or None for a pure rate device"
            )
        elif np.any(lo > hi):
            problems.append(f"position_range_m min {lo} is above its max {hi}")
    for name in ("max_speed_m_s", "max_rate_rad_s"):
        v = getattr(d, name)
        if v is not None and not (_is_real(v) and math.isfinite(v) and v > 0):
            problems.append(f"{name} is {v!r}: a finite limit > 0, or None (no twist)")
    jaw = d.jaw_range_rad
    try:
        jl, jh = (float(x) for x in jaw)
        jaw_ok = math.isfinite(jl) and math.isfinite(jh) and jl <= jh
    except (TypeError, ValueError):
        jaw_ok = False
    if not jaw_ok:
        problems.append(f"jaw_range_rad is {jaw!r}: a finite (min, max) in radians")
    if not isinstance(d.rate_input, bool):
        problems.append(f"rate_input is {d.rate_input!r}: True or False")
    if not isinstance(d.has_force_feedback, bool):
        problems.append(f"has_force_feedback is {d.has_force_feedback!r}: True or False")
    if problems:
        _fail("; ".join(problems))
    where = "none (rate device)" if box is None else _fmt_box(*_declared_range(d))  # type: ignore[misc]
    return (
        f"{rate:g} Hz, roles {', '.join(roles) or 'none'}, positions {where}, jaw "
        f"{jl:g}..{jh:g} rad{', rate input' if d.rate_input else ''}"
    )


class _Marker(Exception):
    """Raised inside a with-block to see that __exit__ disconnects and does not swallow it."""


def _with_block(make_device: DeviceFactory, raising: bool) -> None:
    d = _new_device(make_device)
    calls: list[str] = []
    connect, disconnect = d.connect, d.disconnect

    def spy_connect() -> None:
        calls.append("connect")
        connect()

    def spy_disconnect() -> None:
        calls.append("disconnect")
        disconnect()

    d.connect = spy_connect  # type: ignore[method-assign]
    d.disconnect = spy_disconnect  # type: ignore[method-assign]
    try:
        with d as entered:
            if entered is not d:
                _fail(f"__enter__ returned {entered!r}, expected the device itself")
            if calls != ["connect"]:
                _fail(f"entering the with-block made the calls {calls}, expected connect()")
            if raising:
                raise _Marker
    except _Marker:
        pass
    else:
        if raising:
            _fail("__exit__ swallowed an exception raised in the with-block")
    finally:
        with contextlib.suppress(Exception):
            disconnect()
    if calls.count("disconnect") != 1:
        how = "on an exception" if raising else "normally"
        _fail(
            f"leaving the with-block {how} called disconnect() {calls.count('disconnect')} "
            "times, expected once"
        )


def check_lifecycle(make_device: DeviceFactory, options: CheckOptions | None = None) -> None:
    """connect()/disconnect() are idempotent, disconnect() before connect() is fine, and
    ``with device as d`` returns the device and disconnects, also on an exception."""
    d = _new_device(make_device)
    steps = (
        ("disconnect() before connect()", d.disconnect),
        ("connect()", d.connect),
        ("connect() a second time", d.connect),
        ("disconnect()", d.disconnect),
        ("disconnect() a second time", d.disconnect),
    )
    try:
        for what, call in steps:
            try:
                call()
            except Exception as exc:
                _fail(
                    f"{what} raised {type(exc).__name__}: {exc} (connect and disconnect must "
                    "be idempotent)"
                )
    finally:
        with contextlib.suppress(Exception):
            d.disconnect()
    _with_block(make_device, raising=False)
    _with_block(make_device, raising=True)


def check_latest_nonblocking(
    make_device: DeviceFactory, options: CheckOptions | None = None
) -> str:
    """latest() is cheap and never blocks: p99 < 200 µs, no call over 5 ms (the 1 kHz loop
    calls it on every tick)."""
    with _connected(make_device) as d:
        _first_sample(d)

        def measure() -> np.ndarray:
            times = []
            end = time.monotonic() + LATEST_WATCH_S
            clock = time.perf_counter_ns
            while time.monotonic() < end:
                t0 = clock()
                _read(d)
                times.append(clock() - t0)
                time.sleep(0.00005)
            return np.asarray(times, dtype=float) / 1e3  # µs

        us = measure()
        p99, worst = float(np.percentile(us, 99)), float(us.max())
        figures = f"p50 {np.median(us):.1f} µs, p99 {p99:.1f} µs, max {worst:.0f} µs"
        if p99 > LATEST_P99_LIMIT_US:
            _fail(
                f"latest() blocks: {figures} over {us.size} calls (p99 limit "
                f"{LATEST_P99_LIMIT_US:g} µs): return the newest sample kept by the reader "
                "thread, never wait for a new one or for I/O"
            )
        if worst > LATEST_MAX_LIMIT_MS * 1e3:
            again = measure()  # one OS hiccup is forgiven, a device that stalls is not
            if again.max() > LATEST_MAX_LIMIT_MS * 1e3:
                _fail(
                    f"latest() took {worst / 1e3:.1f} ms and then {again.max() / 1e3:.1f} ms "
                    f"(limit {LATEST_MAX_LIMIT_MS:g} ms; {figures}): it must never wait for "
                    "the device"
                )
        return f"{figures} over {us.size} calls"


def check_first_sample(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """The first sample comes within 2 s of connect()."""
    with _connected(make_device) as d:
        _, took = _first_sample(d)
        return f"first sample {took * 1e3:.1f} ms after connect()"


def check_sample_rate(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """New samples (distinct seq) arrive at >= 0.8 × the declared sample_rate_hz."""
    opts = options or CheckOptions()
    with _connected(make_device) as d:
        declared = float(d.sample_rate_hz)
        first, _ = _first_sample(d)
        prev_seq = first.seq
        new = 0
        t0 = time.monotonic()
        end = t0 + max(0.2, opts.seconds)
        while (now := time.monotonic()) < end:
            s = _read(d)
            if s is not None and s.seq != prev_seq:
                new += 1
                prev_seq = s.seq
            time.sleep(POLL_S)
        achieved = new / (now - t0)
        figures = (
            f"{achieved:.0f} new samples/s over {now - t0:.1f} s, declared sample_rate_hz "
            f"{declared:g} Hz"
        )
        if achieved < MIN_RATE_FRACTION * declared:
            _fail(
                f"too slow: {figures} (below {MIN_RATE_FRACTION:g} × the declared rate): "
                "declare the rate the device really delivers, or make its reader keep up "
                "(each new sample needs a new seq)"
            )
        return figures


def _clock_problem(t: int, now: int) -> str | None:
    """What is wrong with a sample time ``t`` read at ``now`` (monotonic ns), or None."""
    window = CLOCK_WINDOW_S * 1e9
    if t == 0:
        return (
            "t_ns is 0: stamp every sample with time.monotonic_ns() when it was taken "
            "(on receipt, for a device that streams)"
        )
    if abs(t - now) <= window:
        return None
    if abs(t - time.time_ns()) <= window:
        return (
            f"t_ns {t} is on time.time_ns() (wall-clock time), {(t - now) / 1e9:+.3g} s from "
            "time.monotonic_ns(): use time.monotonic_ns()"
        )
    for unit, factor in (("milliseconds", 10**6), ("microseconds", 10**3), ("seconds", 10**9)):
        if abs(t * factor - now) <= window:
            return (
                f"t_ns {t} looks like time.monotonic_ns() in {unit}: t_ns is in nanoseconds "
                "(time.monotonic_ns())"
            )
    return (
        f"t_ns {t} is {(t - now) / 1e9:+.6g} s from time.monotonic_ns(): it is on another "
        "clock (the device's own?); stamp samples with time.monotonic_ns() on receipt"
    )


def check_timestamps(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """t_ns is time.monotonic_ns() when the sample was taken: an int, never 0, never
    decreasing, never ahead of now, and fresh when read."""
    opts = options or CheckOptions()
    with _connected(make_device) as d:
        samples = _watch(d, opts.watch_s)
        period_ns = 1e9 / float(d.sample_rate_hz)
    prev: InputSample | None = None
    ages: list[int] = []
    for now, s in samples:
        t = s.t_ns
        if not _is_int(t):
            _fail(
                f"t_ns is {t!r} ({type(t).__name__}): an int of nanoseconds from "
                "time.monotonic_ns()"
            )
        t = int(t)
        problem = _clock_problem(t, now)
        if problem:
            _fail(problem)
        if t > now:
            _fail(
                f"t_ns is {(t - now) / 1e3:.0f} µs ahead of time.monotonic_ns() when read: a "
                "sample cannot come from the future (stamp it when it was taken)"
            )
        if prev is not None and t < prev.t_ns:
            _fail(
                f"t_ns went back by {(prev.t_ns - t) / 1e3:.0f} µs between seq {prev.seq} and "
                f"seq {s.seq}: sample times must never decrease"
            )
        ages.append(now - t)
        prev = s
    gaps = np.diff([s.t_ns for _, s in samples])
    median_gap = float(np.median(gaps)) if gaps.size else period_ns
    age = np.asarray(ages[1:] or ages, dtype=float)  # the first one waited for the check
    p95, worst = float(np.percentile(age, 95)), float(age.max())
    limit = AGE_PERIODS * max(period_ns, median_gap) + AGE_SLACK_MS * 1e6
    figures = (
        f"age when read p50 {np.median(age) / 1e6:.2f} ms, p95 {p95 / 1e6:.2f} ms, max "
        f"{worst / 1e6:.2f} ms; median interval {median_gap / 1e6:.2f} ms"
    )
    if p95 > limit:
        _fail(
            f"samples are stale when read: {figures} (limit {limit / 1e6:.1f} ms = "
            f"{AGE_PERIODS:g} periods + {AGE_SLACK_MS:g} ms): t_ns must be when the sample was "
            "taken on this machine's time.monotonic_ns() (stamp on receipt), not a delayed "
            "or converted device time"
        )
    return f"{len(samples)} samples on time.monotonic_ns(); {figures}"


def check_seq(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """seq is an int that increases with every new sample."""
    opts = options or CheckOptions()
    with _connected(make_device) as d:
        samples = _watch(d, opts.watch_s)
    prev: InputSample | None = None
    for _, s in samples:
        if not _is_int(s.seq):
            _fail(f"seq is {s.seq!r} ({type(s.seq).__name__}): an int, +1 per new sample")
        if prev is not None and s.seq <= prev.seq:
            _fail(
                f"seq went from {prev.seq} to {s.seq} (t_ns {prev.t_ns} -> {s.t_ns}): seq must "
                "increase with every new sample (the console tells new samples from old by it)"
            )
        prev = s
    return f"seq {samples[0][1].seq}..{samples[-1][1].seq} over {len(samples)} samples"


def _position_problem(pos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> str | None:
    m = POSITION_MARGIN_M

    def inside(p: np.ndarray) -> bool:
        return bool(np.all(p >= lo - m) and np.all(p <= hi + m))

    if inside(pos):
        return None
    msg = (
        f"pose position {_vec(pos)} m is outside the declared "
        f"position_range_m {_fmt_box(lo, hi)} (+{m * 1e3:g} mm)"
    )
    if inside(pos / 1000.0):
        msg += ": it fits if divided by 1000, are positions in millimetres instead of metres?"
    elif inside(pos / 100.0):
        msg += ": it fits if divided by 100, are positions in centimetres instead of metres?"
    elif inside(pos * 1000.0):
        msg += ": it fits if multiplied by 1000, are positions in kilometres?"
    else:
        msg += ": declare the box the device really reaches (device frame, metres)"
    return msg


def check_motion(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """Each sample has a pose (7,: x y z m, unit quaternion x y z w) inside position_range_m
    and/or a twist (6,: m/s, rad/s) within max_speed_m_s/max_rate_rad_s; all finite."""
    opts = options or CheckOptions()
    with _connected(make_device) as d:
        samples = _watch(d, opts.watch_s)
        box = _declared_range(d)
        vmax, wmax = d.max_speed_m_s, d.max_rate_rad_s
    lo_seen = np.full(3, np.inf)
    hi_seen = np.full(3, -np.inf)
    v_seen = w_seen = 0.0
    n_pose = n_twist = 0
    for _, s in samples:
        if s.pose is None and s.twist is None:
            _fail(f"sample seq {s.seq} has neither a pose nor a twist: set at least one")
        if s.pose is not None:
            try:
                p = np.asarray(s.pose, dtype=float)
            except (TypeError, ValueError):
                _fail(f"pose {s.pose!r} is not 7 numbers")
            if p.shape != (7,):
                _fail(f"pose has shape {p.shape}, expected (7,): x, y, z (m), qx, qy, qz, qw")
            if not np.isfinite(p).all():
                _fail(f"pose of sample seq {s.seq} holds a number that is not finite: {_vec(p)}")
            qn = float(np.linalg.norm(p[3:]))
            if abs(qn - 1.0) > QUATERNION_NORM_TOL:
                hint = (
                    " (scalar first? ours is x, y, z, w)"
                    if abs(qn - 1.0) <= 0.05
                    else " (normalise it; the order is x, y, z, w)"
                )
                _fail(f"pose quaternion {_vec(p[3:])} has norm {qn:.6g}, expected 1{hint}")
            if box is not None:
                problem = _position_problem(p[:3], *box)
                if problem:
                    _fail(problem)
            lo_seen, hi_seen = np.minimum(lo_seen, p[:3]), np.maximum(hi_seen, p[:3])
            n_pose += 1
        if s.twist is not None:
            try:
                tw = np.asarray(s.twist, dtype=float)
            except (TypeError, ValueError):
                _fail(f"twist {s.twist!r} is not 6 numbers")
            if tw.shape != (6,):
                _fail(
                    f"twist has shape {tw.shape}, expected (6,): vx vy vz (m/s), wx wy wz (rad/s)"
                )
            if not np.isfinite(tw).all():
                _fail(f"twist of sample seq {s.seq} holds a number that is not finite: {_vec(tw)}")
            if vmax is None or wmax is None:
                _fail(
                    "the device reports a twist but does not declare max_speed_m_s and "
                    "max_rate_rad_s: declare the fastest it commands"
                )
            v, w = float(np.linalg.norm(tw[:3])), float(np.linalg.norm(tw[3:]))
            if v > vmax * (1 + 1e-6) + 1e-12:
                hint = " (mm/s instead of m/s?)" if v / 1000 <= vmax else ""
                _fail(f"twist speed {v:.4g} m/s is above max_speed_m_s {vmax:g}{hint}")
            if w > wmax * (1 + 1e-6) + 1e-12:
                hint = " (degrees instead of radians?)" if math.radians(w) <= wmax else ""
                _fail(f"twist angular speed {w:.4g} rad/s is above max_rate_rad_s {wmax:g}{hint}")
            v_seen, w_seen = max(v_seen, v), max(w_seen, w)
            n_twist += 1
    if box is not None and n_pose == 0:
        _fail(
            "position_range_m is declared but no sample has a pose: set it to None for a pure "
            "rate device"
        )
    notes = []
    if n_pose:
        notes.append(f"{n_pose} poses within {_fmt_box(lo_seen, hi_seen)}")
    if n_twist:
        notes.append(f"{n_twist} twists up to {v_seen:.3g} m/s, {w_seen:.3g} rad/s")
    return "; ".join(notes)


def check_jaw(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """jaw is a finite number of radians inside the declared jaw_range_rad."""
    opts = options or CheckOptions()
    with _connected(make_device) as d:
        samples = _watch(d, opts.watch_s)
        lo, hi = (float(x) for x in d.jaw_range_rad)
    seen = []
    for _, s in samples:
        j = s.jaw
        if not _is_real(j) or not math.isfinite(float(j)):
            _fail(f"jaw of sample seq {s.seq} is {j!r}: a finite number of radians")
        j = float(j)
        if not lo - 1e-9 <= j <= hi + 1e-9:
            hint = " (degrees instead of radians?)" if lo <= math.radians(j) <= hi else ""
            _fail(f"jaw {j:.4g} rad is outside the declared jaw_range_rad [{lo:g}, {hi:g}]{hint}")
        seen.append(j)
    return f"jaw {min(seen):.3g}..{max(seen):.3g} rad (declared {lo:g}..{hi:g})"


def _check_buttons(s: InputSample, roles: tuple[str, ...]) -> None:
    b = s.buttons
    if not isinstance(b, Buttons):
        _fail(f"buttons is a {type(b).__name__}, expected master_console.devices.Buttons")
    for role in BUTTON_ROLES:
        v = getattr(b, role)
        if type(v) is not bool:
            _fail(f"buttons.{role} is {v!r} ({type(v).__name__}): it must be a bool (bool(...))")
        if v and role not in roles:
            _fail(
                f"buttons.{role} is pressed, but {role!r} is not in the declared button_roles "
                f"{tuple(roles)}: declare it, or never set it"
            )


def check_buttons(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """buttons is a Buttons of bools; a role not in button_roles is never pressed. With
    ``interactive``: each declared role is asked for and must change within 10 s."""
    opts = options or CheckOptions()
    with _connected(make_device) as d:
        roles = tuple(d.button_roles)
        samples = _watch(d, opts.watch_s)
        for _, s in samples:
            _check_buttons(s, roles)
        states = {r: [getattr(s.buttons, r) for _, s in samples] for r in BUTTON_ROLES}
        notes = []
        for r in roles:
            vals = states[r]
            edges = sum(a != b for a, b in itertools.pairwise(vals))
            if edges:
                notes.append(f"{r} changed {edges}x")
            else:
                notes.append(f"{r} held {vals[0]}")
        if not opts.interactive:
            untested = [r for r in roles if states[r].count(states[r][0]) == len(states[r])]
            tail = (
                f" (not seen to change: {', '.join(untested)}; check them with --interactive)"
                if untested
                else ""
            )
            return "; ".join(notes) + tail if notes else "no button roles declared"
        done = []
        for role in roles:
            start = _read(d)
            assert start is not None
            was = getattr(start.buttons, role)
            opts.prompt(
                f"press and release {role} (within {opts.role_timeout_s:g} s; it now reads {was})"
            )
            t0 = time.monotonic()
            prev = start
            changed = False
            while time.monotonic() - t0 < opts.role_timeout_s:
                s = _read(d)
                if s is not None and _is_new(s, prev):
                    _check_buttons(s, roles)
                    if getattr(s.buttons, role) != was:
                        changed = True
                        break
                    prev = s
                time.sleep(0.001)
            if not changed:
                _fail(
                    f"{role} did not change within {opts.role_timeout_s:g} s of the prompt: is "
                    "its button mapped to another role (or not at all)?"
                )
            done.append(f"{role} after {time.monotonic() - t0:.1f} s")
            time.sleep(0.3)  # let the operator let go before the next prompt
        return "operator pressed " + ", ".join(done)


def check_force_output(make_device: DeviceFactory, options: CheckOptions | None = None) -> str:
    """send_force: a wrench of the wrong shape, NaN or inf raises ValueError with a message;
    a zero wrench is accepted (a no-op on a device without force feedback)."""
    with _connected(make_device) as d:
        problems = [
            p
            for bad, label in (
                (np.zeros(5), "a wrench of shape (5,)"),
                (np.zeros((2, 6)), "a wrench of shape (2, 6)"),
                (np.full(6, math.nan), "a NaN wrench"),
                (np.array([0.0, 0.0, math.inf, 0.0, 0.0, 0.0]), "an inf wrench"),
            )
            if (p := _raises_value_error(lambda bad=bad: d.send_force(bad), label))
        ]
        try:
            d.send_force(np.zeros(6))
        except Exception as exc:
            problems.append(
                f"send_force(np.zeros(6)) raised {type(exc).__name__}: {exc} (a zero wrench "
                "must always be accepted)"
            )
        if problems:
            _fail("; ".join(problems))
        return "force feedback" if d.has_force_feedback else "no force feedback (send_force no-op)"


INPUT_CHECKS: list[Check] = [
    check_declarations,
    check_lifecycle,
    check_latest_nonblocking,
    check_first_sample,
    check_sample_rate,
    check_timestamps,
    check_seq,
    check_motion,
    check_jaw,
    check_buttons,
    check_force_output,
]
"""Every check, in the order they are run."""


def check_name(check: Check) -> str:
    """A check's short name: ``check_sample_rate`` -> ``"sample_rate"``."""
    return check.__name__.removeprefix("check_")


# ---------------------------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------------------------
Row = tuple[str, bool, str]


def run_input_conformance(
    make_device: DeviceFactory,
    seconds: float = 1.0,
    checks: list[Check] | None = None,
    interactive: bool = False,
    prompt: Callable[[str], None] | None = None,
) -> list[Row]:
    """Run every check (or ``checks``); rows of (short name, passed, message). Never raises.

    ``seconds``: how long the rate is measured (the other stream checks watch half as long);
    ``interactive``/``prompt``: see :class:`CheckOptions`. A passing row's message is the
    check's note; a failing row's is the :class:`DeviceConformanceError` message, or the
    unexpected exception and where it was raised.
    """
    opts = CheckOptions(seconds=seconds, interactive=interactive)
    if prompt is not None:
        opts.prompt = prompt
    rows: list[Row] = []
    for check in INPUT_CHECKS if checks is None else checks:
        name = check_name(check)
        try:
            note = check(make_device, opts)
        except DeviceConformanceError as exc:
            rows.append((name, False, str(exc)))
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            rows.append(
                (
                    name,
                    False,
                    f"unexpected {type(exc).__name__}: {exc} (at {frame.filename}:{frame.lineno} "
                    f"in {frame.name})",
                )
            )
        else:
            rows.append((name, True, note or ""))
        logger.debug("input conformance %s: %s", name, "pass" if rows[-1][1] else rows[-1][2])
    return rows


def format_input_report(rows: list[Row], title: str = "input device conformance") -> str:
    """The rows as a plain-text report: a summary line, then one PASS/FAIL line per check."""
    passed = sum(1 for _, ok, _ in rows if ok)
    width = max((len(name) for name, _, _ in rows), default=0)
    lines = [f"{title}: {passed}/{len(rows)} checks passed"]
    for name, ok, message in rows:
        line = f"  {'PASS' if ok else 'FAIL'}  {name:<{width}}"
        if message:
            line += f"  {message}"
        lines.append(line.rstrip())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Finding devices
# ---------------------------------------------------------------------------------------------
def input_device_factory(name_or_class: str | type[InputDevice], **options: Any) -> DeviceFactory:
    """A zero-argument constructor for an input device, with ``options`` applied.

    ``name_or_class``: a built-in name (options go to its own section: ``seed`` for
    ``synthetic``, ``path`` for ``replay``, ...), an installed plug-in's name or
    ``module:Class`` (options are constructor keywords, checked against its signature), or a
    class. Raises LookupError for an unknown name (listing the installed ones) and
    :class:`~master_console.config.ConfigError` for a bad option or a class that cannot load.
    """
    if isinstance(name_or_class, type):
        cls = name_or_class
        if not issubclass(cls, InputDevice):
            raise TypeError(f"{cls!r} is not an InputDevice subclass")
        opts = check_device_options(cls, options, f"options for {cls.__name__}")
        return lambda: cls(**opts)
    name = name_or_class
    if name not in INPUTS and ":" not in name and name not in input_entry_points():
        raise LookupError(unknown_input_message(name))
    if name not in INPUTS:
        resolve_input_class(name)  # a plug-in that cannot load: ConfigError now, not per check
    settings = settings_for_input(name, options)
    return lambda: make_device(settings)


__all__ = [
    "INPUT_CHECKS",
    "CheckOptions",
    "ConfigError",
    "DeviceConformanceError",
    "InstalledInput",
    "check_buttons",
    "check_declarations",
    "check_first_sample",
    "check_force_output",
    "check_jaw",
    "check_latest_nonblocking",
    "check_lifecycle",
    "check_motion",
    "check_name",
    "check_sample_rate",
    "check_seq",
    "check_timestamps",
    "format_input_report",
    "input_device_factory",
    "installed_input_devices",
    "run_input_conformance",
]
