"""Tests for the in-process network impairment emulator (network.impairment)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from network.impairment import (
    PROFILES_DIR_ENV,
    Impairment,
    ImpairmentProfile,
    builtin_profiles,
    get_profile,
    load_profiles,
    profile_names,
)

MS = 1_000_000  # ns per ms
REQUIRED = ("none", "lan", "5g-clinical", "lindbergh", "5g-remote", "satellite", "bursty")
DROP_KEYS = ("dropped_random", "dropped_burst", "dropped_outage", "dropped_queue")


@dataclass
class Run:
    """Result of a virtual-time simulation: per message submit/release time (ns, -1 = dropped)."""

    submit_ns: np.ndarray
    release_ns: np.ndarray
    order: list[int]  # message indices in the order pop_due returned them
    counters: dict[str, int]

    @property
    def delivered(self) -> np.ndarray:
        return self.release_ns >= 0

    @property
    def delay_ms(self) -> np.ndarray:
        ok = self.delivered
        return (self.release_ns[ok] - self.submit_ns[ok]) / MS

    @property
    def loss_fraction(self) -> float:
        return float(1.0 - self.delivered.mean())


def simulate(
    imp: Impairment,
    n: int,
    period_ns: int = MS,
    nbytes: int = 100,
    before_submit=None,
) -> Run:
    """Submit ``n`` messages every ``period_ns`` and pop each at exactly its release time."""
    submit = [i * period_ns for i in range(n)]
    release = [-1] * n
    order: list[int] = []

    def drain(until: int) -> None:
        nxt = imp.next_release_ns()
        while nxt is not None and nxt <= until:
            for k in imp.pop_due(nxt):
                release[k] = nxt
                order.append(k)
            nxt = imp.next_release_ns()

    for i, t in enumerate(submit):
        drain(t - 1)
        if before_submit is not None:
            before_submit(i, t)
        imp.submit(t, i, nbytes)
    drain(2**62)
    assert imp.pending() == 0
    return Run(np.array(submit), np.array(release), order, dict(imp.counters))


def assert_counters_add_up(c: dict[str, int], pending: int = 0) -> None:
    assert c["submitted"] == c["delivered"] + pending + sum(c[k] for k in DROP_KEYS)


def pareto_quantile(q: float) -> float:
    """Quantile of the zero-mean, unit-std shifted Pareto (shape 2.5) used for pareto jitter."""
    a = 2.5
    mean, std = a / (a - 1), math.sqrt(a / ((a - 1) ** 2 * (a - 2)))
    return ((1 - q) ** (-1 / a) - mean) / std


def assert_jitter_shape(jitter_ms: np.ndarray, p: ImpairmentProfile) -> None:
    """The jitter sample has zero mean and the profile's std dev and distribution.

    A Pareto with shape 2.5 has an infinite fourth moment, so its *sample* std dev converges very
    slowly (one extreme sample can move it by tens of percent); its scale and shape are checked
    through quantiles instead, which converge quickly.
    """
    n = jitter_ms.size
    assert abs(jitter_ms.mean()) <= 5 * p.jitter_ms / math.sqrt(n) + 1e-4
    z = jitter_ms / p.jitter_ms
    if p.jitter_distribution == "normal":
        assert z.std() == pytest.approx(1.0, rel=0.03)
        for q in (0.01, 0.1, 0.5, 0.9, 0.99):
            assert np.quantile(z, q) == pytest.approx(NormalDist().inv_cdf(q), abs=0.06)
    else:
        assert z.std() > 0.7  # no useful upper bound: one extreme sample can double it
        for q in (0.05, 0.25, 0.5, 0.75, 0.95):
            assert np.quantile(z, q) == pytest.approx(pareto_quantile(q), rel=0.05, abs=0.02)
        assert np.quantile(z, 0.99) == pytest.approx(pareto_quantile(0.99), rel=0.1)
        assert z.min() >= pareto_quantile(0.0) - 1e-6


def loss_fraction_se(p: ImpairmentProfile, n: int) -> float:
    """Standard error of the loss fraction over n messages (no outages).

    Gilbert–Elliott losses are correlated: the state autocovariance decays as lambda^k with
    lambda = 1 - p - r, which inflates the variance of the loss count.
    """
    loss = max(p.expected_loss, 1e-4)
    var = loss * (1 - loss)
    if p.ge_p_good_to_bad > 0:
        lam = 1 - p.ge_p_good_to_bad - p.ge_p_bad_to_good
        bad = p.ge_bad_fraction
        cov0 = (p.ge_loss_bad - p.ge_loss_good) ** 2 * bad * (1 - bad) * (1 - p.loss) ** 2
        var += 2 * cov0 * lam / (1 - lam)
    return math.sqrt(var / n)


def loss_runs(lost: np.ndarray) -> np.ndarray:
    """Lengths of the runs of consecutive True values."""
    padded = np.concatenate(([0], lost.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return edges[1::2] - edges[0::2]


# --------------------------------------------------------------------------- built-in profiles
def test_builtin_profiles_load_and_validate() -> None:
    profiles = builtin_profiles()
    for name in REQUIRED:
        assert name in profiles
        assert name in profile_names()
    assert len(profiles) >= len(REQUIRED)
    for name, p in profiles.items():
        assert p.name == name
        assert p.description.strip(), name
        p.validate()
        assert 0.0 <= p.expected_loss < 0.1
        assert ImpairmentProfile.from_dict(name, p.to_dict()) == p
        assert get_profile(name) == p


def test_builtin_profile_targets() -> None:
    p = builtin_profiles()
    assert p["none"].is_null and p["none"].rtt_ms == 0
    assert p["lan"].is_null and p["lan"].rtt_ms <= 1.0
    assert p["5g-clinical"].rtt_ms == pytest.approx(38.0)
    assert p["5g-clinical"].expected_loss <= 1e-3
    assert p["lindbergh"].rtt_ms == 155.0
    assert p["lindbergh"].expected_loss == 0.0
    assert 0 < p["lindbergh"].jitter_ms < 1.0
    assert p["5g-remote"].rtt_ms == 264.0
    assert p["5g-remote"].expected_loss == pytest.approx(0.012)
    assert 1.0 <= p["5g-remote"].jitter_ms <= 2.0
    assert p["satellite"].rtt_ms == 600.0
    assert p["satellite"].expected_loss == pytest.approx(0.005)
    bursty = p["bursty"]
    assert bursty.ge_p_good_to_bad > 0 and bursty.outage_every_s > 0
    assert bursty.jitter_distribution == "pareto"
    assert 0.035 <= bursty.expected_loss <= 0.045
    for name, prof in p.items():
        assert not prof.is_null or name in ("none", "lan")


def test_expected_loss_formula() -> None:
    p = ImpairmentProfile(
        loss=0.1,
        ge_p_good_to_bad=0.1,
        ge_p_bad_to_good=0.3,
        ge_loss_good=0.02,
        ge_loss_bad=0.6,
        outage_every_s=0.9,
        outage_ms=100.0,
    )
    ge = 0.75 * 0.02 + 0.25 * 0.6
    outage = 0.1
    assert p.ge_loss == pytest.approx(ge)
    assert p.outage_fraction == pytest.approx(outage)
    assert p.expected_loss == pytest.approx(1 - 0.9 * (1 - ge) * (1 - outage))
    assert ImpairmentProfile(delay_ms=12.5).rtt_ms == 25.0


# --------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("name", sorted(builtin_profiles()))
def test_builtin_profile_statistics(name: str) -> None:
    """60 s at 1 kHz: mean delay, jitter, loss and the counters match the profile."""
    p = get_profile(name)
    nbytes = 100
    run = simulate(Impairment(p, seed=7), 60_000, nbytes=nbytes)
    assert_counters_add_up(run.counters)
    ser_ms = nbytes * 8 / p.bandwidth_kbps if p.bandwidth_kbps else 0.0
    d = run.delay_ms
    assert d.min() >= 0
    if p.jitter_ms == 0:
        assert np.allclose(d, p.delay_ms + ser_ms, atol=1e-6)
    else:
        assert_jitter_shape(d - p.delay_ms - ser_ms, p)
    if name == "bursty":
        # outages are rare (~6 a minute), so only the target range is checked here
        assert 0.01 <= run.loss_fraction <= 0.07
        assert run.counters["dropped_burst"] > 0 and run.counters["dropped_outage"] > 0
    else:
        se = loss_fraction_se(p, run.submit_ns.size)
        assert run.loss_fraction == pytest.approx(p.expected_loss, abs=5 * se)
    assert run.counters["dropped_queue"] == 0


def test_bursty_long_run_loss_and_burstiness() -> None:
    p = get_profile("bursty")
    imp = Impairment(p, seed=3)
    n = 1_000_000  # 1000 s at 1 kHz: ~100 outages, ~2,600 bad-state episodes
    lost = np.zeros(n, dtype=bool)
    for i in range(n):
        t = i * MS
        lost[i] = not imp.submit(t, i, 100)
        imp.pop_due(t)
    c = imp.counters
    assert_counters_add_up(c, imp.pending())
    assert lost.mean() == pytest.approx(p.expected_loss, rel=0.15)
    assert c["dropped_outage"] / n == pytest.approx(p.outage_fraction, rel=0.35)
    assert c["dropped_burst"] / n == pytest.approx(p.ge_loss * (1 - p.outage_fraction), rel=0.1)
    runs = loss_runs(lost)
    # independent loss at the same rate would give a mean run of 1 / (1 - L) ~ 1.04
    assert runs.mean() > 2.0 / (1.0 - lost.mean())
    assert runs.max() >= 0.5 * p.outage_ms  # at 1 kHz an outage drops ~outage_ms messages


def test_gilbert_elliott_bursts() -> None:
    """Loss only in the bad state: loss runs are the bad-state sojourns, mean 1/p_bad_to_good."""
    p = ImpairmentProfile(ge_p_good_to_bad=0.01, ge_p_bad_to_good=0.1, ge_loss_bad=1.0)
    run = simulate(Impairment(p, seed=11), 60_000)
    lost = ~run.delivered
    assert lost.mean() == pytest.approx(p.expected_loss, rel=0.15)
    assert p.expected_loss == pytest.approx(0.01 / 0.11)
    runs = loss_runs(lost)
    assert runs.mean() == pytest.approx(1 / p.ge_p_bad_to_good, rel=0.15)
    assert run.counters["dropped_burst"] == lost.sum()
    # independent loss at the same rate: runs are far shorter
    ind = simulate(Impairment(ImpairmentProfile(loss=p.expected_loss), seed=11), 60_000)
    ind_runs = loss_runs(~ind.delivered)
    assert ind_runs.mean() == pytest.approx(1 / (1 - p.expected_loss), rel=0.05)
    assert runs.mean() > 5 * ind_runs.mean()


def test_outages() -> None:
    p = ImpairmentProfile(outage_every_s=0.2, outage_ms=20.0)  # ~270 outages a minute
    imp = Impairment(p, seed=5)
    assert not imp.in_outage(0)  # not anchored before the first submit
    in_outage: list[bool] = []
    run = simulate(imp, 60_000, before_submit=lambda i, t: in_outage.append(imp.in_outage(t)))
    lost = ~run.delivered
    # everything sent in an outage is lost, nothing else is
    assert np.array_equal(lost, np.array(in_outage))
    assert run.counters["dropped_outage"] == lost.sum()
    assert lost.mean() == pytest.approx(p.outage_fraction, rel=0.25)
    runs = loss_runs(lost[: np.flatnonzero(~lost)[-1]])  # a run cut off by the end is left out
    assert runs.mean() == pytest.approx(p.outage_ms, rel=0.1)  # 1 message per ms
    # lengths are uniform in [0.5, 1.5] x outage_ms (+-1 message of sampling); two outages may
    # rarely touch (exponential gap < 1 ms) and merge into one longer run
    assert runs.min() >= 0.5 * p.outage_ms - 1
    assert np.mean(runs <= 1.5 * p.outage_ms + 1) >= 0.97
    assert not lost[0]  # the schedule starts at the first submit, with a gap first


def test_5g_clinical_round_trip_jitter() -> None:
    """The documented choice: RFC 3550 jitter of the round trip ~0.4 ms, one-way ~0.28 ms."""
    p = get_profile("5g-clinical")
    fwd = simulate(Impairment(p, seed=1), 60_000).delay_ms
    back = simulate(Impairment(p, seed=2), 60_000).delay_ms
    rtt = fwd + back
    assert rtt.mean() == pytest.approx(38.0, abs=0.02)
    j_rtt = np.abs(np.diff(rtt)).mean()  # the quantity the RFC 3550 estimator tracks
    j_oneway = np.abs(np.diff(fwd)).mean()
    assert j_rtt == pytest.approx(0.40, rel=0.05)
    assert j_oneway == pytest.approx(0.28, rel=0.05)
    # the RFC 3550 running estimator itself (gain 1/16) ends near the same value
    j = 0.0
    for d in np.diff(rtt):
        j += (abs(d) - j) / 16
    assert 0.2 < j < 0.7


def test_pareto_jitter_has_heavier_tail() -> None:
    base = ImpairmentProfile(delay_ms=50.0, jitter_ms=2.0)
    normal = simulate(Impairment(base, seed=4), 60_000).delay_ms - 50.0
    pareto = simulate(Impairment(replace(base, jitter_distribution="pareto"), seed=4), 60_000)
    par = pareto.delay_ms - 50.0
    assert_jitter_shape(normal, base)
    assert_jitter_shape(par, replace(base, jitter_distribution="pareto"))

    def kurtosis(x: np.ndarray) -> float:
        z = (x - x.mean()) / x.std()
        return float((z**4).mean())

    assert kurtosis(normal) == pytest.approx(3.0, abs=0.2)
    assert kurtosis(par) > 8.0
    assert np.percentile(par, 99.9) > 1.8 * np.percentile(normal, 99.9)
    assert par.min() > -1.0  # shifted Pareto: bounded below at -0.45 sigma


# --------------------------------------------------------------------------- determinism, order
def test_determinism() -> None:
    p = replace(get_profile("bursty"), reorder=0.05, reorder_gap_ms=3.0)
    a = simulate(Impairment(p, seed=42), 20_000)
    b = simulate(Impairment(p, seed=42), 20_000)
    c = simulate(Impairment(p, seed=43), 20_000)
    assert np.array_equal(a.release_ns, b.release_ns)
    assert a.order == b.order and a.counters == b.counters
    assert not np.array_equal(a.release_ns, c.release_ns)
    assert not np.array_equal(a.delivered, c.delivered)
    # separate streams: changing the delay model does not change which messages are lost
    d = simulate(Impairment(replace(p, jitter_ms=0.5, delay_ms=3.0), seed=42), 20_000)
    assert np.array_equal(a.delivered, d.delivered)


def test_pop_due_is_in_release_order() -> None:
    p = ImpairmentProfile(delay_ms=5.0, jitter_ms=3.0, reorder=0.1, reorder_gap_ms=4.0, loss=0.05)
    exact = simulate(Impairment(p, seed=9), 5_000)  # releases known exactly
    imp = Impairment(p, seed=9)
    popped: list[int] = []
    for i in range(5_000):
        imp.submit(i * MS, i, 100)
        if i % 7 == 0:  # coarse polling: several items due at once
            batch = imp.pop_due(i * MS)
            keys = [(exact.release_ns[k], k) for k in batch]
            assert keys == sorted(keys)
            assert all(exact.release_ns[k] <= i * MS for k in batch)
            popped += batch
    popped += imp.pop_due(2**62)
    expected = sorted(np.flatnonzero(exact.delivered), key=lambda k: (exact.release_ns[k], k))
    assert popped == expected
    assert popped != sorted(popped)  # jitter and reorder did reorder messages


def test_no_jitter_is_fifo_and_ties_keep_submission_order() -> None:
    p = ImpairmentProfile(delay_ms=10.0, loss=0.1)
    run = simulate(Impairment(p, seed=1), 10_000)
    assert run.order == sorted(run.order)
    assert np.all(run.delay_ms == 10.0)
    imp = Impairment(ImpairmentProfile(delay_ms=1.0), seed=0)
    for k in range(5):
        imp.submit(100, k, 10)  # same submit time -> same release time
    assert imp.next_release_ns() == 100 + MS
    assert imp.pop_due(100 + MS - 1) == []
    assert imp.pop_due(100 + MS) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("name", ["none", "lan"])
def test_null_profile_releases_immediately(name: str) -> None:
    imp = Impairment(get_profile(name))
    assert imp.next_release_ns() is None and imp.pop_due(10**12) == []
    for t in (5, 5, 17, 1_000_000):
        assert imp.submit(t, t, 1500)
        assert imp.next_release_ns() == t
        assert imp.pop_due(t) == [t]
    assert imp.pending() == 0
    assert imp.counters["submitted"] == imp.counters["delivered"] == 4


def test_reorder_fraction() -> None:
    p = ImpairmentProfile(delay_ms=10.0, reorder=0.1, reorder_gap_ms=5.0)
    run = simulate(Impairment(p, seed=2), 60_000)
    overtaken = np.zeros(60_000, dtype=bool)
    highest = -1
    for k in run.order:
        overtaken[k] = k < highest
        highest = max(highest, k)
    held = np.zeros(60_000, dtype=bool)
    held[run.delivered] = run.delay_ms > 10.0
    assert np.all(run.delay_ms[held[run.delivered]] == 15.0)
    assert held.sum() == run.counters["reordered"]
    # only held messages are overtaken; since the gap exceeds the message spacing, every held one
    # is, unless the next five messages were held too (p = 1e-5) or no later message follows it
    assert not np.any(overtaken & ~held)
    assert (held & ~overtaken)[:-10].sum() <= 0.001 * held.sum()
    assert overtaken.mean() == pytest.approx(0.1, abs=0.008)


# --------------------------------------------------------------------------- bandwidth
def test_bandwidth_cap_and_queue_drops() -> None:
    bw_kbps, size = 1000.0, 250  # 250 B at 1 Mbit/s = 2 ms; offered 2 Mbit/s at 1 kHz
    p = ImpairmentProfile(bandwidth_kbps=bw_kbps, queue_limit_ms=50.0)
    run = simulate(Impairment(p, seed=0), 20_000, nbytes=size)
    ser_ns = size * 8 * 1e6 / bw_kbps
    rel = np.sort(run.release_ns[run.delivered])
    assert np.diff(rel).min() >= ser_ns - 1  # one message per serialisation time
    # throughput never exceeds the cap, in any window [first release, release k]
    k = np.arange(1, rel.size)
    window_s = (rel[1:] - rel[0] + ser_ns) / 1e9
    assert np.all((k + 1) * size * 8 / window_s <= bw_kbps * 1000 * (1 + 1e-6))
    # under 2x overload about half is tail-dropped, queueing delay stays within the limit
    c = run.counters
    assert c["dropped_queue"] / c["submitted"] == pytest.approx(0.5, abs=0.02)
    assert run.delay_ms.max() <= 50.0 + 1e-6
    assert run.delay_ms.max() > 40.0
    assert_counters_add_up(c)
    # under light load there is no queueing: delay = serialisation time
    light = simulate(Impairment(p, seed=0), 5_000, period_ns=4 * MS, nbytes=size)
    assert light.counters["dropped_queue"] == 0
    assert np.allclose(light.delay_ms, 2.0)


def test_oversized_message_is_tail_dropped() -> None:
    p = ImpairmentProfile(bandwidth_kbps=100.0, queue_limit_ms=10.0)  # 10 ms = 125 B
    imp = Impairment(p)
    assert not imp.submit(0, "big", 200)
    assert imp.submit(0, "small", 100)
    assert imp.counters["dropped_queue"] == 1
    with pytest.raises(ValueError, match="nbytes"):
        imp.submit(0, "bad", -1)


# --------------------------------------------------------------------------- property-based
@st.composite
def profiles(draw) -> ImpairmentProfile:
    kw: dict = {
        "delay_ms": draw(st.floats(0, 30)),
        "jitter_ms": draw(st.floats(0, 20)),
        "jitter_distribution": draw(st.sampled_from(["normal", "pareto"])),
        "loss": draw(st.floats(0, 1)),
    }
    if draw(st.booleans()):
        lb = draw(st.floats(0.01, 1))
        kw |= {
            "ge_p_good_to_bad": draw(st.floats(0.001, 1)),
            "ge_p_bad_to_good": draw(st.floats(0.001, 1)),
            "ge_loss_bad": lb,
            "ge_loss_good": draw(st.floats(0, lb)),
        }
    if draw(st.booleans()):
        kw |= {"reorder": draw(st.floats(0.001, 1)), "reorder_gap_ms": draw(st.floats(0.001, 20))}
    if draw(st.booleans()):
        kw |= {
            "bandwidth_kbps": draw(st.floats(10, 10_000)),
            "queue_limit_ms": draw(st.floats(0.1, 200)),
        }
    if draw(st.booleans()):
        kw |= {"outage_every_s": draw(st.floats(0.001, 1)), "outage_ms": draw(st.floats(0.01, 50))}
    return ImpairmentProfile(name="h", **kw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    profile=profiles(),
    seed=st.integers(0, 2**32),
    steps=st.lists(
        st.tuples(st.integers(0, 5 * MS), st.integers(0, 3000), st.booleans()), max_size=150
    ),
)
def test_every_item_dropped_or_released_once(profile, seed, steps) -> None:
    imp = Impairment(profile, seed=seed)
    submit_ns: dict[int, int] = {}
    released: dict[int, int] = {}
    accepted: set[int] = set()

    def drain(until: int) -> None:
        nxt = imp.next_release_ns()
        while nxt is not None and nxt <= until:
            for k in imp.pop_due(nxt):
                assert k not in released
                released[k] = nxt
            nxt = imp.next_release_ns()

    now = 10**9
    for i, (dt, nbytes, poll) in enumerate(steps):
        now += dt
        if poll:
            drain(now)
        submit_ns[i] = now
        if imp.submit(now, i, nbytes):
            accepted.add(i)
        assert_counters_add_up(imp.counters, imp.pending())
    drain(2**62)
    assert imp.pending() == 0 and imp.next_release_ns() is None
    assert set(released) == accepted
    c = imp.counters
    assert c["submitted"] == len(steps)
    assert c["delivered"] == len(accepted)
    assert sum(c[k] for k in DROP_KEYS) == len(steps) - len(accepted)
    assert c["reordered"] <= c["delivered"]
    for k, t in released.items():
        assert t >= submit_ns[k]
        if profile.jitter_ms == 0:
            assert t - submit_ns[k] >= round(profile.delay_ms * MS)
    if profile.is_null:
        assert all(released[k] == submit_ns[k] for k in released)


@given(profile=profiles())
def test_profile_dict_round_trip(profile) -> None:
    assert ImpairmentProfile.from_dict(profile.name, profile.to_dict()) == profile
    assert 0.0 <= profile.expected_loss <= 1.0


# --------------------------------------------------------------------------- bad profiles
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delay_ms": -1.0}, "delay_ms"),
        ({"jitter_ms": -0.1}, "jitter_ms"),
        ({"loss": 1.5}, "loss"),
        ({"loss": -0.1}, "loss"),
        ({"loss": float("nan")}, "loss"),
        ({"delay_ms": float("inf")}, "delay_ms"),
        ({"delay_ms": "10"}, "delay_ms"),
        ({"jitter_distribution": "cauchy"}, "jitter_distribution.*normal, pareto"),
        ({"ge_p_good_to_bad": 0.1, "ge_loss_bad": 0.5}, "ge_p_bad_to_good"),
        ({"ge_loss_bad": 0.5}, "ge_p_good_to_bad"),
        ({"ge_p_good_to_bad": 0.1, "ge_p_bad_to_good": 0.1}, "ge_loss_bad"),
        (
            {
                "ge_p_good_to_bad": 0.1,
                "ge_p_bad_to_good": 0.1,
                "ge_loss_bad": 0.1,
                "ge_loss_good": 0.5,
            },
            "ge_loss_good",
        ),
        ({"ge_p_bad_to_good": 2.0}, "ge_p_bad_to_good"),
        ({"reorder": 0.1}, "reorder_gap_ms"),
        ({"outage_every_s": 10.0}, "outage_ms"),
        ({"outage_ms": 100.0}, "outage_every_s"),
        ({"queue_limit_ms": 0.0}, "queue_limit_ms"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_profiles_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ImpairmentProfile(**kwargs)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"'delay'.*valid keys:.*delay_ms"):
        ImpairmentProfile.from_dict("x", {"delay": 5})
    with pytest.raises(ValueError, match="does not match"):
        ImpairmentProfile.from_dict("x", {"name": "y"})
    p = ImpairmentProfile.from_dict("x", {"delay_ms": 5, "loss": 0})  # ints are accepted
    assert p.delay_ms == 5.0 and isinstance(p.delay_ms, float)


def test_get_profile_unknown_lists_names() -> None:
    with pytest.raises(ValueError, match="nope") as info:
        get_profile("nope")
    for name in REQUIRED:
        assert name in str(info.value)


# --------------------------------------------------------------------------- user TOML files
def test_user_profile_file(tmp_path) -> None:
    one = tmp_path / "one.toml"
    one.write_text('[my-link]\ndescription = "test"\ndelay_ms = 12\nloss = 0.01\n')
    p = get_profile(str(one))
    assert p.name == "my-link" and p.delay_ms == 12.0 and p.loss == 0.01
    assert load_profiles(one) == {"my-link": p}

    two = tmp_path / "two.toml"
    two.write_text("[a]\ndelay_ms = 1.0\n[b]\ndelay_ms = 2.0\njitter_ms = 0.5\n")
    assert get_profile(f"{two}:b").delay_ms == 2.0
    with pytest.raises(ValueError, match=r"2 profiles.*a, b"):
        get_profile(str(two))
    with pytest.raises(ValueError, match=r"'c'.*a, b"):
        get_profile(f"{two}:c")

    bad = tmp_path / "bad.toml"
    bad.write_text("[x]\ndelay_ms = 1.0\njiter_ms = 2.0\n")
    with pytest.raises(ValueError, match=r"bad\.toml.*'jiter_ms'.*jitter_ms"):
        load_profiles(bad)
    bad.write_text("[x]\nloss = 1.5\n")
    with pytest.raises(ValueError, match=r"bad\.toml.*loss"):
        get_profile(str(bad))
    bad.write_text("delay_ms = 1.0\n")
    with pytest.raises(ValueError, match="not a table"):
        load_profiles(bad)
    bad.write_text("[x\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_profiles(bad)
    with pytest.raises(ValueError, match="cannot read"):
        get_profile(str(tmp_path / "missing.toml"))


def test_profiles_dir_env(tmp_path, monkeypatch) -> None:
    (tmp_path / "site.toml").write_text(
        '[site-a]\ndelay_ms = 40.0\n[site-b]\ndelay_ms = 60.0\njitter_distribution = "pareto"\n'
        "jitter_ms = 1.0\n"
    )
    (tmp_path / "notes.txt").write_text("[ignored]\n")
    monkeypatch.setenv(PROFILES_DIR_ENV, str(tmp_path))
    assert get_profile("site-a").rtt_ms == 80.0
    assert get_profile("site-b").jitter_distribution == "pareto"
    names = profile_names()
    assert {"site-a", "site-b", *REQUIRED} <= set(names) and "ignored" not in names
    assert get_profile("lindbergh").rtt_ms == 155.0  # built-ins still there
    with pytest.raises(ValueError, match=r"nope.*site-a"):
        get_profile("nope")

    (tmp_path / "more.toml").write_text("[site-a]\ndelay_ms = 1.0\n")
    with pytest.raises(ValueError, match=r"site-a.*both"):
        get_profile("site-b")
    (tmp_path / "more.toml").write_text("[lindbergh]\ndelay_ms = 1.0\n")
    with pytest.raises(ValueError, match=r"lindbergh.*built-in"):
        get_profile("site-a")

    monkeypatch.setenv(PROFILES_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="not a directory"):
        get_profile("site-a")
    monkeypatch.delenv(PROFILES_DIR_ENV)
    assert "site-a" not in profile_names()
