"""Tests of network.monitor.LatencyMonitor with traffic generated in virtual time (no sleeping)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from network.monitor import (
    DEDUP_WINDOW,
    DUPLICATE,
    MAX_HEALTH_EVENTS,
    NEW,
    REORDERED,
    Health,
    LatencyMonitor,
    MonitorConfig,
    Percentiles,
)

MS = 1_000_000  # ns per ms
T0 = 10**12  # virtual clocks start here (0 means "none" in acknowledgments)
OFFSET = 3_700_000_000  # peer clock - our clock, +3.7 s


class FakeClock:
    """A settable monotonic clock (ns)."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


# --------------------------------------------------------------------------- traffic simulator


@dataclass
class Traffic:
    """Events as our monitor sees them, in order of our receipt, with the ground truth."""

    seq: np.ndarray  # peer sequence number
    send: np.ndarray  # peer send time (peer clock)
    rx: np.ndarray  # our receipt (our clock) = t4
    t1: np.ndarray
    t2: np.ndarray
    t3: np.ndarray
    true_up: np.ndarray  # one-way delay of the acknowledged message, ns
    true_down: np.ndarray  # one-way delay of the peer's message, ns
    dropped_down: np.ndarray  # peer seqs lost on the way to us

    def feed(self, mon: LatencyMonitor) -> list[str]:
        kinds = []
        for s, a, r, t1, t2, t3 in zip(
            self.seq.tolist(),
            self.send.tolist(),
            self.rx.tolist(),
            self.t1.tolist(),
            self.t2.tolist(),
            self.t3.tolist(),
            strict=True,
        ):
            kinds.append(mon.on_receive(s, a, r))
            mon.on_ack(t1, t2, t3, r)
        return kinds


def simulate(
    n: int = 20_000,
    *,
    period_ns: int = MS,
    d_up_ms: float = 20.0,
    d_down_ms: float = 20.0,
    sigma_up_ms: float = 0.0,
    sigma_down_ms: float = 0.0,
    queue_up_ms: float = 0.0,
    queue_down_ms: float = 0.0,
    loss_up: float = 0.0,
    loss_down: float = 0.0,
    hold_ns: int = 300_000,
    offset_ns: int = OFFSET,
    seed: int = 0,
) -> Traffic:
    """A 1 kHz (by default) echo link in virtual time.

    We send message k at ``T0 + k * period``; it reaches the peer after ``d_up + N(0, sigma_up) +
    Exp(queue_up)`` unless lost (``loss_up``).  The peer answers every message it receives after
    exactly ``hold_ns`` with its own message (sequence numbers in send order) acknowledging it;
    that reaches us after the down delay unless lost (``loss_down``).  The peer clock reads
    ours + ``offset_ns``.
    """
    rng = np.random.default_rng(seed)

    def delays(d_ms: float, sigma_ms: float, queue_ms: float, size: int) -> np.ndarray:
        d = np.full(size, d_ms * MS)
        if sigma_ms:
            d += rng.normal(0.0, sigma_ms * MS, size)
        if queue_ms:
            d += rng.exponential(queue_ms * MS, size)
        return np.maximum(d, 0.05 * MS).round().astype(np.int64)

    t1 = T0 + np.arange(n, dtype=np.int64) * period_ns
    up = delays(d_up_ms, sigma_up_ms, queue_up_ms, n)
    keep = rng.random(n) >= loss_up
    t1, up = t1[keep], up[keep]
    arrive_peer = t1 + up
    peer_send = arrive_peer + hold_ns  # true time (our clock)
    order = np.argsort(peer_send, kind="stable")
    t1, up, arrive_peer, peer_send = t1[order], up[order], arrive_peer[order], peer_send[order]
    seq = np.arange(t1.size, dtype=np.int64)
    down = delays(d_down_ms, sigma_down_ms, queue_down_ms, t1.size)
    delivered = rng.random(t1.size) >= loss_down
    rx = peer_send + down
    sel = np.flatnonzero(delivered)
    sel = sel[np.argsort(rx[sel], kind="stable")]
    return Traffic(
        seq=seq[sel],
        send=peer_send[sel] + offset_ns,
        rx=rx[sel],
        t1=t1[sel],
        t2=arrive_peer[sel] + offset_ns,
        t3=peer_send[sel] + offset_ns,
        true_up=up[sel],
        true_down=down[sel],
        dropped_down=seq[~delivered],
    )


def ms_percentiles(values_ns: np.ndarray) -> np.ndarray:
    return np.percentile(values_ns / MS, (50.0, 95.0, 99.0))


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 8}, "window"),
        ({"window": 100.0}, "window"),
        ({"degraded_rtt_ms": 0.0}, "degraded_rtt_ms"),
        ({"degraded_jitter_ms": -1.0}, "degraded_jitter_ms"),
        ({"degraded_loss": float("nan")}, "degraded_loss"),
        ({"degraded_loss": 1.5}, "degraded_loss"),
        ({"degraded_silence_ms": 0}, "degraded_silence_ms"),
        ({"lost_silence_ms": 40.0}, "lost_silence_ms"),
        ({"restart_jump": 10}, "restart_jump"),
        ({"offset_filter": 0}, "offset_filter"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MonitorConfig(**kwargs)


def test_percentiles_empty_and_json() -> None:
    p = Percentiles.empty()
    assert p.count == 0 and math.isnan(p.p50) and math.isnan(p.max)
    assert p.to_dict() == {"p50": None, "p95": None, "p99": None, "max": None, "count": 0}
    q = Percentiles.from_ns(np.array([1, 2, 3, 4], dtype=np.int64) * MS)
    assert q.count == 4 and q.p50 == pytest.approx(2.5) and q.max == pytest.approx(4.0)


def test_fresh_monitor_stats_are_json_ready() -> None:
    clock = FakeClock()
    mon = LatencyMonitor(clock_ns=clock)
    s = mon.stats()
    assert s.rx.received == 0 and s.rx.lost == 0 and s.rx.loss == 0.0
    assert math.isnan(s.rx.since_last_ms) and math.isnan(s.clock_offset_ms)
    assert s.rtt_ms.count == 0 and s.rx.latency_ms.count == 0
    d = s.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["health"] == "LOST"
    assert d["rx"]["latency_ms"]["p50"] is None and d["clock_offset_ms"] is None


# --------------------------------------------------------------------------- sequence accounting


def test_constructed_sequence_exact_counts() -> None:
    mon = LatencyMonitor(clock_ns=FakeClock())
    seqs = [10, 11, 13, 12, 12, 14, 11, 16, 15, 17, 20, 18]
    expected_kinds = [
        NEW,
        NEW,
        NEW,
        REORDERED,
        DUPLICATE,
        NEW,
        DUPLICATE,
        NEW,
        REORDERED,
        NEW,
        NEW,
        REORDERED,
    ]
    kinds = [mon.on_receive(s, T0 + 3 * MS * k, T0 + 3 * MS * k + MS) for k, s in enumerate(seqs)]
    assert kinds == expected_kinds
    rx = mon.stats(T0 + 100 * MS).rx
    # seen 10..18 and 20: 19 is missing
    assert (rx.received, rx.lost, rx.reordered, rx.duplicates) == (10, 1, 3, 2)
    assert rx.loss == pytest.approx(1 / 11)


def test_late_message_below_first_seq_lowers_base() -> None:
    mon = LatencyMonitor(clock_ns=FakeClock())
    kinds = [mon.on_receive(s, T0, T0 + MS) for s in (5, 6, 3, 4, 3)]
    assert kinds == [NEW, NEW, REORDERED, REORDERED, DUPLICATE]
    rx = mon.stats(T0 + MS).rx
    assert (rx.received, rx.lost, rx.reordered, rx.duplicates) == (4, 0, 2, 1)


def test_injected_loss_fraction() -> None:
    traffic = simulate(20_000, loss_down=0.03, seed=1)
    mon = LatencyMonitor(clock_ns=FakeClock())
    traffic.feed(mon)
    rx = mon.stats(int(traffic.rx[-1])).rx
    first, last = int(traffic.seq.min()), int(traffic.seq.max())
    true_lost = int(
        np.count_nonzero((traffic.dropped_down > first) & (traffic.dropped_down < last))
    )
    assert rx.lost == true_lost
    assert rx.received == traffic.seq.size
    assert rx.loss == pytest.approx(0.03, abs=0.006)
    assert rx.recent_loss == pytest.approx(0.03, abs=0.02)
    assert rx.duplicates == 0


def test_recent_loss_follows_the_window() -> None:
    mon = LatencyMonitor(MonitorConfig(window=100), clock_ns=FakeClock())
    seq = 0
    for _ in range(1000):  # 20 % loss: every 5th message dropped
        if seq % 5 != 4:
            mon.on_receive(seq, T0, T0 + MS)
        seq += 1
    s = mon.stats(T0 + MS).rx
    assert s.recent_loss == pytest.approx(0.2, abs=0.01)
    for _ in range(150):  # clean for longer than the window
        mon.on_receive(seq, T0, T0 + MS)
        seq += 1
    s = mon.stats(T0 + MS).rx
    assert s.recent_loss == 0.0
    assert s.loss == pytest.approx(200 / 1150, abs=1e-12)  # seqs 0..1149, 200 dropped


def test_forward_jump_restart_rule() -> None:
    mon = LatencyMonitor(clock_ns=FakeClock())
    for s in range(100):
        mon.on_receive(s, T0, T0 + MS)
    assert mon.on_receive(200_000, T0, T0 + MS) == NEW
    rx = mon.stats(T0 + MS).rx
    assert (rx.received, rx.lost, rx.restarts) == (1, 0, 1)
    assert mon.on_receive(200_001, T0, T0 + MS) == NEW
    assert mon.stats(T0 + MS).rx.received == 2


def test_forward_jump_below_threshold_is_loss() -> None:
    mon = LatencyMonitor(clock_ns=FakeClock())
    mon.on_receive(0, T0, T0 + MS)
    assert mon.on_receive(50_000, T0, T0 + MS) == NEW
    rx = mon.stats(T0 + MS).rx
    assert (rx.received, rx.lost, rx.restarts) == (2, 49_999, 0)


def test_backward_restart_needs_two_consecutive_old_seqs() -> None:
    mon = LatencyMonitor(clock_ns=FakeClock())
    for s in range(5000):
        mon.on_receive(s, T0, T0 + MS)
    # a single very late message: not counted, no restart
    assert mon.on_receive(10, T0, T0 + MS) == REORDERED
    assert mon.on_receive(5000, T0, T0 + MS) == NEW
    rx = mon.stats(T0 + MS).rx
    assert (rx.received, rx.lost, rx.reordered, rx.restarts) == (5001, 0, 1, 0)
    # the peer restarts from 0: 0 then 1 confirms it
    assert mon.on_receive(0, T0, T0 + MS) == REORDERED
    assert mon.on_receive(1, T0, T0 + MS) == NEW
    assert mon.on_receive(2, T0, T0 + MS) == NEW
    rx = mon.stats(T0 + MS).rx
    assert (rx.received, rx.lost, rx.reordered, rx.duplicates, rx.restarts) == (3, 0, 0, 0, 1)


def test_negative_seq_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        LatencyMonitor(clock_ns=FakeClock()).on_receive(-1, T0, T0)


class ReferenceSeq:
    """Straightforward model of the documented sequence rules, with an unbounded set."""

    def __init__(self, restart_jump: int = 100_000) -> None:
        self.restart_jump = restart_jump
        self.restarts = 0
        self._start(None)

    def _start(self, seqs: list[int] | None) -> None:
        self.seen: set[int] = set(seqs or [])
        self.base = min(seqs) if seqs else None
        self.max = max(seqs) if seqs else None
        self.received = len(self.seen)
        self.reordered = 0
        self.duplicates = 0
        self.bad: int | None = None

    def arrive(self, s: int) -> str:
        if self.max is None:
            self._start([s])
            return NEW
        if s > self.max:
            if s - self.max > self.restart_jump:
                self.restarts += 1
                self._start([s])
                return NEW
            self.max = s
            self.seen.add(s)
            self.received += 1
            return NEW
        if s > self.max - DEDUP_WINDOW:
            if s in self.seen:
                self.duplicates += 1
                return DUPLICATE
            self.seen.add(s)
            self.received += 1
            self.reordered += 1
            self.base = min(self.base, s)
            return REORDERED
        if s == self.bad:
            self.restarts += 1
            self._start([s - 1, s])
            return NEW
        self.bad = s + 1
        self.reordered += 1
        return REORDERED


_step = st.one_of(
    st.just(1),
    st.integers(-5, 5),
    st.integers(-1500, 1500),
    st.integers(100_001, 150_000),
    st.integers(-200_000, -1100),
)


@settings(max_examples=200, deadline=None)
@given(start=st.integers(0, 300_000), steps=st.lists(_step, max_size=300))
def test_sequence_accounting_properties(start: int, steps: list[int]) -> None:
    mon = LatencyMonitor(MonitorConfig(window=64), clock_ns=FakeClock())
    ref = ReferenceSeq()
    seqs = [start]
    for d in steps:
        seqs.append(max(0, seqs[-1] + d))
    for s in seqs:
        highest_before = ref.max
        seen_before = s in ref.seen
        kind = mon.on_receive(s, T0, T0 + MS)
        assert kind == ref.arrive(s)
        if kind == DUPLICATE:
            assert seen_before
        elif kind == REORDERED:
            assert highest_before is not None and s < highest_before
        else:
            assert highest_before is None or s > highest_before or ref.restarts > 0
        rx = mon.stats(T0 + MS).rx
        expected = ref.max - ref.base + 1
        assert rx.received + rx.lost == expected
        assert (rx.received, rx.reordered, rx.duplicates, rx.restarts) == (
            ref.received,
            ref.reordered,
            ref.duplicates,
            ref.restarts,
        )
        assert min(rx.received, rx.lost, rx.reordered, rx.duplicates) >= 0
        assert 0.0 <= rx.loss <= 1.0 and 0.0 <= rx.recent_loss <= 1.0


# --------------------------------------------------------------------------- latency and offset


def test_round_trip_and_hold_time() -> None:
    hold = 2 * MS
    traffic = simulate(
        10_000, d_up_ms=20.0, d_down_ms=25.0, sigma_up_ms=0.5, sigma_down_ms=0.5, hold_ns=hold
    )
    mon = LatencyMonitor(clock_ns=FakeClock())
    traffic.feed(mon)
    s = mon.stats(int(traffic.rx[-1]))
    assert s.rtt_ms.p50 == pytest.approx(45.0, abs=0.1)
    assert s.rtt_total_ms.p50 == pytest.approx(47.0, abs=0.1)
    assert s.rtt_total_ms.p50 - s.rtt_ms.p50 == pytest.approx(2.0, abs=1e-6)
    # same samples as the ground truth over the window, exactly
    true_rtt = (traffic.true_up + traffic.true_down)[-2048:]
    np.testing.assert_allclose(
        [s.rtt_ms.p50, s.rtt_ms.p95, s.rtt_ms.p99], ms_percentiles(true_rtt), atol=1e-9
    )
    assert s.rtt_ms.max == pytest.approx(true_rtt.max() / MS, abs=1e-9)
    assert s.rtt_ms.count == 2048
    assert s.rtt_jitter_ms == pytest.approx(np.std(true_rtt / MS), rel=1e-9)
    assert s.rtt_jitter_ms == pytest.approx(0.5 * math.sqrt(2), rel=0.1)


def test_one_way_latency_despite_clock_offset() -> None:
    traffic = simulate(
        20_000, d_up_ms=20.0, d_down_ms=20.0, queue_up_ms=0.5, queue_down_ms=0.5, seed=2
    )
    mon = LatencyMonitor(clock_ns=FakeClock())
    traffic.feed(mon)
    now = int(traffic.rx[-1]) + 5 * MS
    s = mon.stats(now)
    assert s.clock_offset_ms == pytest.approx(OFFSET / MS, abs=0.1)
    rx, tx = s.rx.latency_ms, s.tx.latency_ms
    np.testing.assert_allclose(
        [rx.p50, rx.p95, rx.p99], ms_percentiles(traffic.true_down[-2048:]), atol=0.1
    )
    np.testing.assert_allclose(
        [tx.p50, tx.p95, tx.p99], ms_percentiles(traffic.true_up[-2048:]), atol=0.1
    )
    assert rx.p50 == pytest.approx(20.0 + 0.5 * math.log(2), abs=0.1)
    # ages: the newest (highest-seq) message's true send time is rx - down
    newest = int(np.argmax(traffic.seq))
    true_age = (now - (traffic.rx[newest] - traffic.true_down[newest])) / MS
    assert s.rx.newest_age_ms == pytest.approx(true_age, abs=0.1)
    assert s.rx.since_last_ms == pytest.approx(5.0)
    assert s.tx.newest_age_ms == pytest.approx((now - traffic.t1.max()) / MS)
    true_peer_rx = int((traffic.t2 - OFFSET).max())
    assert s.tx.since_last_ms == pytest.approx((now - true_peer_rx) / MS, abs=0.1)
    assert s.tx.received == traffic.seq.size  # one distinct ack per message, no counters yet


def test_asymmetric_paths_bias_offset_by_half_the_asymmetry() -> None:
    """NTP property: theta_est = theta + (d_up - d_down) / 2; one-way latencies look symmetric."""
    traffic = simulate(
        20_000, d_up_ms=30.0, d_down_ms=10.0, queue_up_ms=0.3, queue_down_ms=0.3, seed=3
    )
    mon = LatencyMonitor(clock_ns=FakeClock())
    traffic.feed(mon)
    s = mon.stats(int(traffic.rx[-1]))
    assert s.clock_offset_ms == pytest.approx(OFFSET / MS + (30.0 - 10.0) / 2, abs=0.1)
    true_down = ms_percentiles(traffic.true_down[-2048:])
    true_up = ms_percentiles(traffic.true_up[-2048:])
    assert s.rx.latency_ms.p50 == pytest.approx(true_down[0] + 10.0, abs=0.1)
    assert s.tx.latency_ms.p50 == pytest.approx(true_up[0] - 10.0, abs=0.1)
    assert s.rx.latency_ms.p50 == pytest.approx(20.0 + 0.3 * math.log(2), abs=0.1)
    assert s.tx.latency_ms.p50 == pytest.approx(20.0 + 0.3 * math.log(2), abs=0.1)
    # the round trip is unaffected
    assert s.rtt_ms.p50 == pytest.approx(40.0 + 2 * 0.3 * math.log(2), abs=0.2)


def test_offset_uses_min_delay_sample() -> None:
    mon = LatencyMonitor(MonitorConfig(offset_filter=4), clock_ns=FakeClock())
    assert math.isnan(mon.clock_offset_ns)

    def ack(t1: int, up: int, down: int, hold: int = MS) -> None:
        t2 = t1 + up + OFFSET
        mon.on_ack(t1, t2, t2 + hold, t1 + up + hold + down)

    ack(T0, 10 * MS, 10 * MS)  # symmetric, min delay: exact offset
    ack(T0 + MS, 30 * MS, 10 * MS)  # queued on the way up
    ack(T0 + 2 * MS, 10 * MS, 25 * MS)  # queued on the way down
    assert mon.clock_offset_ns == OFFSET
    for k in range(4):  # push the good sample out of the 4-ack filter
        ack(T0 + (3 + k) * MS, 12 * MS, 14 * MS)
    assert mon.clock_offset_ns == OFFSET - MS


def test_invalid_and_repeated_acks() -> None:
    mon = LatencyMonitor(clock_ns=FakeClock())
    mon.on_ack(0, T0, T0, T0)  # t1 none
    mon.on_ack(T0, 0, T0, T0)  # t2 none
    mon.on_ack(T0, T0, 0, T0)  # t3 none
    mon.on_ack(T0, T0 + 5 * MS, T0 + 20 * MS, T0 + 10 * MS)  # hold longer than the total
    mon.on_ack(T0, T0, T0 + MS, T0 - MS)  # t4 before t1
    s = mon.stats(T0)
    assert s.rtt_ms.count == 0 and s.tx.received == 0 and math.isnan(s.clock_offset_ms)
    t2 = T0 + 10 * MS + OFFSET
    mon.on_ack(T0, t2, t2 + MS, T0 + 21 * MS)
    mon.on_ack(T0, t2, t2 + 2 * MS, T0 + 22 * MS)  # the same message acknowledged again
    s = mon.stats(T0 + 22 * MS)
    assert s.rtt_ms.count == 2 and s.rtt_ms.p50 == pytest.approx(20.0)
    assert s.rtt_total_ms.max == pytest.approx(22.0)
    assert s.tx.received == 1 and s.tx.latency_ms.count == 1
    assert s.tx.latency_ms.p50 == pytest.approx(10.0)


# --------------------------------------------------------------------------- jitter


def test_rfc3550_jitter_update_rule() -> None:
    mon = LatencyMonitor(clock_ns=FakeClock())
    transits = [5, 7, 4, 4, 10]  # ms
    j = 0.0
    for k, tr in enumerate(transits):
        send = T0 + 10 * MS * k
        mon.on_receive(k, send, send + tr * MS)
        if k:
            j += (abs(tr - transits[k - 1]) - j) / 16
    assert mon.stats(T0 + MS * 100).rx.jitter_ms == pytest.approx(j, rel=1e-12)


def test_rfc3550_jitter_converges_to_1_128_sigma() -> None:
    """For i.i.d. normal delays with std sigma, E|D| = 2 sigma / sqrt(pi) ~= 1.128 sigma."""
    sigma_ms = 1.0
    rng = np.random.default_rng(4)
    n = 20_000
    send = T0 + np.arange(n, dtype=np.int64) * 10 * MS  # 100 Hz: no reordering at this sigma
    rx = send + np.round(rng.normal(20.0, sigma_ms, n) * MS).astype(np.int64)
    order = np.argsort(rx, kind="stable")
    mon = LatencyMonitor(clock_ns=FakeClock())
    samples = []
    for k, i in enumerate(order.tolist()):
        mon.on_receive(i, int(send[i]) + OFFSET, int(rx[i]))
        if k >= 1000 and k % 25 == 0:
            samples.append(mon.stats(int(rx[i])).rx.jitter_ms)
    expected = 2.0 * sigma_ms / math.sqrt(math.pi)
    assert np.mean(samples) == pytest.approx(expected, rel=0.05)


def test_tx_jitter_from_acks() -> None:
    mon = LatencyMonitor(clock_ns=FakeClock())
    ups = [10, 12, 9, 9]  # ms
    j = 0.0
    for k, up in enumerate(ups):
        t1 = T0 + 10 * MS * k
        t2 = t1 + up * MS + OFFSET
        mon.on_ack(t1, t2, t2 + MS, t1 + up * MS + MS + 10 * MS)
        if k:
            j += (abs(up - ups[k - 1]) - j) / 16
    assert mon.stats(T0 + 100 * MS).tx.jitter_ms == pytest.approx(j, rel=1e-12)


# --------------------------------------------------------------------------- peer counters (tx)


def test_peer_counters() -> None:
    mon = LatencyMonitor(MonitorConfig(window=16), clock_ns=FakeClock())
    mon.on_peer_counters(970, 30, reordered=4, duplicates=2)
    tx = mon.stats(T0).tx
    assert (tx.received, tx.lost, tx.reordered, tx.duplicates) == (970, 30, 4, 2)
    assert tx.loss == pytest.approx(0.03) and tx.recent_loss == pytest.approx(0.03)
    for k in range(1, 40):  # clean afterwards
        mon.on_peer_counters(970 + 10 * k, 30)
    tx = mon.stats(T0).tx
    assert tx.recent_loss == 0.0 and tx.loss == pytest.approx(30 / 1390)
    mon.on_peer_counters(5, 1)  # peer restarted its counters
    tx = mon.stats(T0).tx
    assert tx.restarts == 1 and tx.received == 5 and tx.recent_loss == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="non-negative"):
        mon.on_peer_counters(-1, 0)


# --------------------------------------------------------------------------- health


def feed(
    mon: LatencyMonitor,
    clock: FakeClock,
    n: int,
    seq: int,
    *,
    rtt_ms: float = 40.0,
    delay_ms: float | None = None,
    drop_every: int = 0,
) -> int:
    """n milliseconds of 1 kHz traffic with acknowledgments; returns the next seq."""
    for _ in range(n):
        clock.now += MS
        now = clock.now
        down = (rtt_ms / 2 if delay_ms is None else delay_ms) * MS
        if not drop_every or seq % drop_every != drop_every - 1:
            mon.on_receive(seq, int(now - down) + OFFSET, now)
            hold = 300_000
            t1 = int(now - rtt_ms * MS - hold)
            t2 = int(t1 + rtt_ms * MS / 2) + OFFSET
            mon.on_ack(t1, t2, t2 + hold, now)
        seq += 1
    return seq


def test_health_lifecycle_and_events() -> None:
    clock = FakeClock()
    mon = LatencyMonitor(clock_ns=clock)
    assert mon.health() is Health.LOST
    s = mon.stats()
    assert s.health is Health.LOST and "nothing received" in s.health_reasons[0]

    seq = feed(mon, clock, 500, 0)
    t_ok = clock.now
    s = mon.stats()
    assert s.health is Health.OK and s.health_reasons == ()
    assert mon.health() is Health.OK

    clock.now += 60 * MS
    assert mon.health() is Health.DEGRADED
    s = mon.stats()
    assert s.health_reasons == ("rx silence 60.0 ms > 50.0 ms",)
    t_degraded = clock.now

    clock.now += 190 * MS
    assert mon.health() is Health.LOST
    assert mon.stats().health_reasons == ("rx silence 250.0 ms > 200.0 ms",)
    t_lost = clock.now

    feed(mon, clock, 10, seq)
    assert mon.health() is Health.OK
    t_back = clock.now

    levels = [(t, h) for t, h, _ in mon.health_events]
    assert levels == [
        (T0, Health.LOST),
        (t_ok, Health.OK),
        (t_degraded, Health.DEGRADED),
        (t_lost, Health.LOST),
        (t_back, Health.OK),
    ]
    assert mon.health_events[2][2] == ("rx silence 60.0 ms > 50.0 ms",)


def test_health_lost_at_the_threshold_boundary() -> None:
    clock = FakeClock()
    mon = LatencyMonitor(clock_ns=clock)
    feed(mon, clock, 100, 0)
    last = clock.now
    assert mon.health(last + 50 * MS) is Health.OK
    assert mon.health(last + 200 * MS) is Health.DEGRADED
    assert mon.health(last + 200 * MS + 1) is Health.LOST


def test_health_degraded_by_rtt() -> None:
    clock = FakeClock()
    mon = LatencyMonitor(clock_ns=clock)
    feed(mon, clock, 3000, 0, rtt_ms=400.0, delay_ms=20.0)
    s = mon.stats()
    assert s.health is Health.DEGRADED
    assert s.health_reasons == ("rtt p95 400.0 ms > 300.0 ms",)
    assert mon.health() is Health.DEGRADED
    feed(mon, clock, 3000, 3000)  # back to 40 ms: the window forgets
    assert mon.stats().health is Health.OK


def test_health_degraded_by_loss() -> None:
    clock = FakeClock()
    mon = LatencyMonitor(clock_ns=clock)
    feed(mon, clock, 1001, 0, drop_every=10)  # seqs 0..1000, 9, 19, ..., 999 dropped
    assert mon.health() is Health.DEGRADED
    s = mon.stats()
    assert s.rx.recent_loss == pytest.approx(100 / 1001, abs=1e-12)
    assert s.health_reasons == ("rx loss 10.0 % > 5.0 % (recent window)",)


def test_health_degraded_by_jitter() -> None:
    clock = FakeClock()
    mon = LatencyMonitor(clock_ns=clock)
    seq = 0
    for _ in range(200):  # one-way delay alternating 20 / 40 ms: |D| = 20 ms every message
        for delay in (20, 40):
            clock.now += 10 * MS
            mon.on_receive(seq, clock.now - delay * MS + OFFSET, clock.now)
            seq += 1
    assert mon.health() is Health.DEGRADED
    s = mon.stats()
    assert s.rx.jitter_ms == pytest.approx(20.0, rel=1e-3)
    assert s.health_reasons == ("rx jitter 20.0 ms > 10.0 ms",)


def test_health_uses_cached_rtt_for_100_ms_but_stats_is_fresh() -> None:
    def setup() -> tuple[LatencyMonitor, FakeClock, int]:
        clock = FakeClock()
        mon = LatencyMonitor(MonitorConfig(window=64), clock_ns=clock)
        seq = feed(mon, clock, 100, 0)
        assert mon.health() is Health.OK  # caches a clean rtt p95
        seq = feed(mon, clock, 60, seq, rtt_ms=400.0)  # 60 ms of high rtt
        return mon, clock, seq

    mon, clock, seq = setup()
    assert mon.health() is Health.OK  # the p95 is from the cache (60 ms old)
    assert mon.stats().health is Health.DEGRADED
    assert mon.health() is Health.DEGRADED  # stats refreshed the cache

    mon, clock, seq = setup()
    feed(mon, clock, 40, seq, rtt_ms=400.0)
    assert mon.health() is Health.DEGRADED  # 100 ms later: refreshed


def test_health_events_bounded() -> None:
    clock = FakeClock()
    mon = LatencyMonitor(clock_ns=clock)
    seq = 0
    for _ in range(MAX_HEALTH_EVENTS):
        seq = feed(mon, clock, 1, seq)
        mon.health()
        clock.now += 300 * MS
        mon.health()
    assert len(mon.health_events) == MAX_HEALTH_EVENTS
    assert mon.health_events[-1][1] is Health.LOST
    assert mon.health_events[-1][0] == clock.now


def test_full_stats_json_and_reset() -> None:
    traffic = simulate(3000, loss_down=0.01, sigma_down_ms=0.3, seed=5)
    clock = FakeClock(int(traffic.rx[-1]))
    mon = LatencyMonitor(clock_ns=clock)
    traffic.feed(mon)
    mon.on_peer_counters(2990, 10)
    d = mon.stats().to_dict()
    json.dumps(d, allow_nan=False)
    assert d["health"] == "OK" and d["health_reasons"] == []
    assert d["rx"]["latency_ms"]["count"] == 2048 and d["tx"]["lost"] == 10
    mon.reset()
    s = mon.stats()
    assert s.rx.received == 0 and s.rtt_ms.count == 0 and s.health is Health.LOST
    assert math.isnan(s.clock_offset_ms)
    assert [h for _, h, _ in mon.health_events] == [Health.LOST]


def test_percentiles_match_numpy_linear_percentiles() -> None:
    from network.monitor import Percentiles

    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 10, 999, 2048):
        v = rng.integers(0, 10**9, n)
        p = Percentiles.from_ns(v)
        ref = np.percentile(v / 1e6, (50, 95, 99))
        assert np.allclose([p.p50, p.p95, p.p99], ref, rtol=0, atol=1e-9)
        assert p.max == v.max() / 1e6 and p.count == n
