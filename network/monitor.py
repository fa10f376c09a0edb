"""Link and latency monitor: loss, reordering, jitter, one-way and round-trip latency, health.

Each link endpoint (the surgeon's console and the arm server) runs one :class:`LatencyMonitor`
and feeds it every message it receives (up to 1 kHz).  Per-message updates are O(1) and cheap
(a few integer operations plus one element written into a preallocated ring buffer per
statistic); percentiles are computed on demand by :meth:`LatencyMonitor.stats`.

Conventions
-----------
* All times are integer nanoseconds from ``time.monotonic_ns()`` of the process that took them.
  All summary values are milliseconds (``*_ms``) or fractions (``loss``).
* Perspective is local: ``rx`` is the flow the peer sends to us, ``tx`` the flow we send to the
  peer (known through the peer's acknowledgments and counters).
* **Clock offset** ``theta = peer_clock - our_clock``.  A peer timestamp ``t_peer`` corresponds to
  ``t_peer - theta`` on our clock.  It is estimated NTP-style from acknowledgments:
  ``theta = ((t2 - t1) + (t3 - t4)) / 2``, taken from the sample with the smallest round-trip
  delay among the last ``MonitorConfig.offset_filter`` acknowledgments (NTP clock filter; the
  minimum-delay sample is the one least disturbed by queueing).
* **rx one-way latency** = ``rx_ns - send_ns + theta`` (our receipt minus the peer's send time
  converted to our clock).
* **tx one-way latency** = ``t2 - t1 - theta`` (the peer's receipt converted to our clock minus
  our send).
* **Round trip** ``rtt = (t4 - t1) - (t3 - t2)`` (excludes the peer's hold time) and
  ``rtt_total = t4 - t1`` (includes it).
* NTP property: with asymmetric paths (up ``d_up``, down ``d_down``) the offset estimate is biased
  by half the asymmetry, ``theta_est = theta + (d_up - d_down) / 2``, so both one-way latencies
  are then reported as ``(d_up + d_down) / 2``.  Only the round trip is immune to this.
  One-way latencies are corrected with the *current* offset estimate when summarised (raw
  differences are stored), so they are unavailable (``count == 0``) until an acknowledgment
  has been received.

Sequence numbers (rx)
---------------------
Sequence numbers are non-negative and increase by 1 per message; the first message seen starts
the count (RFC 3550: ``expected = max_seq - base_seq + 1``, ``lost = expected - received``).
``received`` counts *distinct* sequence numbers, so ``lost`` is never negative.  For an arrival
``s`` with the highest sequence number so far ``m``:

* ``s > m``: ``"new"``.  If ``s - m > MonitorConfig.restart_jump`` the peer is taken to have
  restarted: the sequence counters are reset, ``s`` becomes the new base (logged at INFO) and
  ``restarts`` is incremented.
* ``m - 1024 < s <= m``: ``"duplicate"`` if ``s`` was already received (a ring of the last 1024
  sequence numbers remembers them), otherwise ``"reordered"`` and counted as received.  A
  reordered ``s`` below the base lowers the base (a message sent before the first one we saw).
* ``s <= m - 1024``: too old to tell a duplicate from a late message: ``"reordered"`` (counted in
  ``reordered``), *not* counted as received (it stays counted as lost: it is more than 1024
  messages late).  If the next such arrival is ``s + 1`` (two consecutive messages far behind,
  RFC 3550 appendix A.1 probation), the peer is taken to have restarted with a lower sequence
  number: the counters restart with base ``s`` and both messages count as received; the second
  one is classified ``"new"``.
* A peer that restarts and comes back within 1024 messages of its old sequence number looks like
  duplicates; the protocol should carry a session id and call :meth:`LatencyMonitor.reset`.

The monitor is not thread-safe: update and query it from one thread, or guard it with a lock.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DEDUP_WINDOW",
    "DUPLICATE",
    "NEW",
    "REORDERED",
    "FlowStats",
    "Health",
    "LatencyMonitor",
    "LinkStats",
    "MonitorConfig",
    "Percentiles",
    "bench_monitor",
]

NEW = "new"
REORDERED = "reordered"
DUPLICATE = "duplicate"

DEDUP_WINDOW = 1024
"""Number of most recent sequence numbers remembered for duplicate detection (a power of 2)."""
_DEDUP_MASK = DEDUP_WINDOW - 1

MAX_HEALTH_EVENTS = 1000
"""``LatencyMonitor.health_events`` keeps at most this many transitions (the newest)."""

HEALTH_REFRESH_NS = 100_000_000
"""``LatencyMonitor.health`` refreshes its cached round-trip p95 at most this often (ns)."""

_NS_PER_MS = 1e6
_JITTER_GAIN = 1.0 / 16.0  # RFC 3550 section 6.4.1
_NAN = float("nan")


class Health(enum.StrEnum):
    """Link health classification."""

    OK = "OK"
    DEGRADED = "DEGRADED"
    LOST = "LOST"


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds and sizes of a :class:`LatencyMonitor`.

    Attributes:
        window: samples kept per ring buffer for percentiles and recent loss.
        degraded_rtt_ms: round-trip p95 above this (ms) -> DEGRADED (Xu et al. 2014 found
            300 ms still 'suitable' for telesurgery).
        degraded_jitter_ms: RFC 3550 rx interarrival jitter above this (ms) -> DEGRADED.
        degraded_loss: rx loss fraction over the recent window above this -> DEGRADED.
        degraded_silence_ms: nothing received for longer than this (ms) -> DEGRADED.
        lost_silence_ms: nothing received for longer than this (ms), or never -> LOST.
        restart_jump: a forward sequence jump larger than this is taken as a peer restart.
        offset_filter: the clock offset comes from the minimum-delay sample among this many
            most recent acknowledgments (NTP clock filter).
    """

    window: int = 2048
    degraded_rtt_ms: float = 300.0
    degraded_jitter_ms: float = 10.0
    degraded_loss: float = 0.05
    degraded_silence_ms: float = 50.0
    lost_silence_ms: float = 200.0
    restart_jump: int = 100_000
    offset_filter: int = 128

    def __post_init__(self) -> None:
        for name in ("window", "restart_jump", "offset_filter"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"MonitorConfig.{name} must be an int, got {value!r}")
        if self.window < 16:
            raise ValueError(f"MonitorConfig.window must be >= 16 samples, got {self.window}")
        for name in (
            "degraded_rtt_ms",
            "degraded_jitter_ms",
            "degraded_loss",
            "degraded_silence_ms",
            "lost_silence_ms",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"MonitorConfig.{name} must be a positive number, got {value!r}")
        if self.degraded_loss >= 1.0:
            raise ValueError(
                "MonitorConfig.degraded_loss is a fraction and must be < 1, "
                f"got {self.degraded_loss}"
            )
        if self.lost_silence_ms <= self.degraded_silence_ms:
            raise ValueError(
                "MonitorConfig.lost_silence_ms must be greater than degraded_silence_ms, got "
                f"lost_silence_ms={self.lost_silence_ms} <= "
                f"degraded_silence_ms={self.degraded_silence_ms}"
            )
        if self.restart_jump < DEDUP_WINDOW:
            raise ValueError(
                f"MonitorConfig.restart_jump must be >= {DEDUP_WINDOW}, got {self.restart_jump}"
            )
        if self.offset_filter < 1:
            raise ValueError(
                f"MonitorConfig.offset_filter must be >= 1 acknowledgment, got {self.offset_filter}"
            )


def _json_num(x: float) -> float | None:
    """``x`` as a JSON-ready float (NaN and infinities become ``None``)."""
    return float(x) if math.isfinite(x) else None


def _pct(sorted_values: np.ndarray, q: float) -> float:
    """The q-th percentile of sorted values, linear interpolation (numpy's default)."""
    pos = (sorted_values.size - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, sorted_values.size - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


@dataclass(frozen=True)
class Percentiles:
    """Percentiles of a latency distribution over the recent window, in milliseconds.

    All values are NaN when ``count == 0``.  ``max`` is the maximum over the window.
    """

    p50: float
    p95: float
    p99: float
    max: float
    count: int

    @classmethod
    def empty(cls) -> Percentiles:
        """No samples: NaN values, count 0."""
        return cls(_NAN, _NAN, _NAN, _NAN, 0)

    @classmethod
    def from_ns(cls, values_ns: np.ndarray) -> Percentiles:
        """Summarise ``values_ns`` (nanoseconds, any order) into milliseconds."""
        n = int(values_ns.size)
        if n == 0:
            return cls.empty()
        ms = np.sort(np.asarray(values_ns, dtype=np.float64)) / _NS_PER_MS
        # numpy's default ("linear") percentile, by hand on one sort: np.percentile costs
        # ~60 µs of Python per call, and the console computes these between 1 kHz ticks
        return cls(_pct(ms, 50.0), _pct(ms, 95.0), _pct(ms, 99.0), float(ms[-1]), n)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN -> None)."""
        return {
            "p50": _json_num(self.p50),
            "p95": _json_num(self.p95),
            "p99": _json_num(self.p99),
            "max": _json_num(self.max),
            "count": self.count,
        }


@dataclass(frozen=True)
class FlowStats:
    """Statistics of one direction of the link.

    Attributes:
        received: rx: distinct messages received.  tx: the peer's reported received count once
            it has reported counters (:meth:`LatencyMonitor.on_peer_counters`), else the number
            of distinct acknowledged messages.
        lost: sequence gaps, ``expected - received`` (never negative); tx: the peer's counter.
        loss: ``lost / expected`` in 0..1 (0.0 when nothing is expected).
        recent_loss: the same over the last ``window`` arrivals (rx) or peer reports (tx).
        reordered: arrived with a sequence number lower than the highest seen, not a duplicate.
        duplicates: a sequence number seen again.
        jitter_ms: RFC 3550 interarrival jitter (ms).
        latency_ms: one-way latency percentiles (offset-corrected; count 0 until the clock
            offset is known).
        since_last_ms: rx: time since the latest arrival of any message; tx: time since the
            peer received our latest acknowledged message (converted to our clock).  NaN if never.
        newest_age_ms: now minus the send time (on our clock) of the newest message, i.e. the
            age of the freshest state received (rx) or known to have reached the peer (tx).
        restarts: peer restarts detected from sequence numbers (rx) or counters going down (tx).
    """

    received: int
    lost: int
    loss: float
    recent_loss: float
    reordered: int
    duplicates: int
    jitter_ms: float
    latency_ms: Percentiles
    since_last_ms: float
    newest_age_ms: float
    restarts: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (NaN -> None)."""
        d: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "latency_ms":
                d[key] = self.latency_ms.to_dict()
            elif isinstance(value, float):
                d[key] = _json_num(value)
            else:
                d[key] = value
        return d


@dataclass(frozen=True)
class LinkStats:
    """A snapshot of both directions, the round trip, the clock offset and the health."""

    rx: FlowStats
    tx: FlowStats
    rtt_ms: Percentiles
    rtt_total_ms: Percentiles
    rtt_jitter_ms: float
    clock_offset_ms: float
    health: Health
    health_reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (NaN -> None, health as its string value)."""
        return {
            "rx": self.rx.to_dict(),
            "tx": self.tx.to_dict(),
            "rtt_ms": self.rtt_ms.to_dict(),
            "rtt_total_ms": self.rtt_total_ms.to_dict(),
            "rtt_jitter_ms": _json_num(self.rtt_jitter_ms),
            "clock_offset_ms": _json_num(self.clock_offset_ms),
            "health": self.health.value,
            "health_reasons": list(self.health_reasons),
        }


class _SeqTracker:
    """RFC 3550-style sequence accounting for one flow (see the module docstring for the rules).

    O(1) per arrival.  ``recent`` is a ring of the cumulative expected count after each counted
    arrival, so the loss over the last ``window`` arrivals is a difference of two entries.
    """

    __slots__ = (
        "bad_seq",
        "base",
        "duplicates",
        "max_seq",
        "received",
        "recent",
        "recent_i",
        "recent_n",
        "reordered",
        "restart_jump",
        "restarts",
        "slots",
    )

    def __init__(self, window: int, restart_jump: int) -> None:
        self.restart_jump = restart_jump
        self.recent = [0] * window
        self.slots = [-1] * DEDUP_WINDOW
        self.restarts = 0
        self._clear(-1, -1)

    def _clear(self, base: int, max_seq: int) -> None:
        """Reset the counters; ``base``..``max_seq`` (if any) are counted as received."""
        self.base = base
        self.max_seq = max_seq
        self.reordered = 0
        self.duplicates = 0
        self.bad_seq = -1
        self.recent_i = 0
        self.recent_n = 0
        self.received = 0
        slots = self.slots
        for k in range(DEDUP_WINDOW):
            slots[k] = -1
        if max_seq >= 0:
            for s in range(base, max_seq + 1):
                slots[s & _DEDUP_MASK] = s
                self.received += 1
                self._push(s - base + 1)

    def _push(self, expected: int) -> None:
        """Record the cumulative expected count after a counted arrival."""
        i = self.recent_i
        self.recent[i] = expected
        i += 1
        self.recent_i = 0 if i == len(self.recent) else i
        self.recent_n += 1

    def classify(self, seq: int) -> str:
        """Account for an arrival of ``seq``; return ``NEW``, ``REORDERED`` or ``DUPLICATE``."""
        mx = self.max_seq
        if seq > mx:
            if mx >= 0 and seq - mx > self.restart_jump:
                logger.info(
                    "sequence jumped from %d to %d (> %d): peer restart, counters reset",
                    mx,
                    seq,
                    self.restart_jump,
                )
                self.restarts += 1
                self._clear(seq, seq)
                return NEW
            if mx < 0:  # first message ever
                self._clear(seq, seq)
                return NEW
            self.max_seq = seq
            self.slots[seq & _DEDUP_MASK] = seq
            self.received += 1
            # inlined _push(seq - base + 1): this is the per-message hot path
            i = self.recent_i
            self.recent[i] = seq - self.base + 1
            i += 1
            self.recent_i = 0 if i == len(self.recent) else i
            self.recent_n += 1
            return NEW
        if seq > mx - DEDUP_WINDOW:
            k = seq & _DEDUP_MASK
            if self.slots[k] == seq:
                self.duplicates += 1
                return DUPLICATE
            self.slots[k] = seq
            self.received += 1
            self.reordered += 1
            if seq < self.base:
                self.base = seq
            self._push(mx - self.base + 1)
            return REORDERED
        # Too old to tell a duplicate from a late message.
        if seq == self.bad_seq:
            logger.info(
                "sequence went back from %d to %d, %d: peer restart, counters reset",
                mx,
                seq - 1,
                seq,
            )
            self.restarts += 1
            self._clear(seq - 1, seq)
            return NEW
        self.bad_seq = seq + 1
        self.reordered += 1
        return REORDERED

    @property
    def expected(self) -> int:
        """``max_seq - base + 1`` (0 before the first message)."""
        return self.max_seq - self.base + 1 if self.max_seq >= 0 else 0

    def recent_loss(self) -> float:
        """Loss fraction over the last ``window`` counted arrivals (0.0 if none)."""
        n = self.recent_n
        if n == 0:
            return 0.0
        size = len(self.recent)
        exp_now = self.max_seq - self.base + 1
        if n <= size:
            d_rec, d_exp = n, exp_now
        else:
            d_rec, d_exp = size - 1, exp_now - self.recent[self.recent_i]
        lost = d_exp - d_rec
        return lost / d_exp if d_exp > 0 and lost > 0 else 0.0


class RxCounts(NamedTuple):
    """Cumulative counts of one received flow."""

    received: int
    lost: int
    reordered: int
    duplicates: int


class LatencyMonitor:
    """Per-endpoint link monitor (see the module docstring for conventions and units).

    Args:
        config: thresholds and sizes.
        clock_ns: our monotonic clock (ns), used when ``now_ns`` is not given.

    Attributes:
        health_events: ``(time_ns, new_health, reasons)`` appended whenever :meth:`health` or
            :meth:`stats` observes a change of health level (the first observation included);
            at most :data:`MAX_HEALTH_EVENTS` newest entries are kept.
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.config = config if config is not None else MonitorConfig()
        self._clock_ns = clock_ns
        self.health_events: list[tuple[int, Health, tuple[str, ...]]] = []
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget everything (counters, samples, offset, health history)."""
        cfg = self.config
        w = cfg.window
        self._window = w
        # rx
        self._rx_seq = _SeqTracker(w, cfg.restart_jump)
        self._rx_lat = np.zeros(w, dtype=np.int64)  # rx_ns - send_ns (raw, offset not applied)
        self._rx_lat_i = 0
        self._rx_lat_n = 0
        self._rx_prev_transit: int | None = None
        self._rx_jitter_ns = 0.0
        self._rx_last_ns: int | None = None  # latest arrival time (our clock)
        self._rx_newest_send_ns: int | None = None  # send time of the highest seq (peer clock)
        # acknowledgments: round trip, offset samples, tx latency
        self._rtt = np.zeros(w, dtype=np.int64)  # (t4 - t1) - (t3 - t2)
        self._rtt_total = np.zeros(w, dtype=np.int64)  # t4 - t1
        self._off2 = np.zeros(w, dtype=np.int64)  # (t2 - t1) + (t3 - t4) = 2 * offset sample
        self._ack_i = 0
        self._ack_n = 0
        self._ignored_acks = 0
        self._offset_cache: tuple[int, float] = (-1, _NAN)
        self._tx_lat = np.zeros(w, dtype=np.int64)  # t2 - t1 (raw)
        self._tx_lat_i = 0
        self._tx_lat_n = 0
        self._tx_prev_transit: int | None = None
        self._tx_jitter_ns = 0.0
        self._tx_acked = 0
        self._tx_last_t1 = 0
        self._tx_last_t2 = 0
        self._tx_newest_t1: int | None = None  # our send time of the newest acknowledged message
        self._tx_last_t2_max: int | None = None  # latest peer receipt (peer clock)
        # tx counters reported by the peer: ring of (received, lost) reports
        self._pc: tuple[int, int, int, int] | None = None
        self._pc_recv = [0] * w
        self._pc_lost = [0] * w
        self._pc_i = 0
        self._pc_n = 0
        self._pc_restarts = 0
        # health
        self._rtt_p95_cache_ms = _NAN
        self._rtt_p95_cache_at: int | None = None
        self._last_health: Health | None = None
        self.health_events.clear()

    # ---------------------------------------------------------------- updates

    def on_receive(self, seq: int, send_ns: int, rx_ns: int) -> str:
        """Account for a message from the peer.  O(1).

        Args:
            seq: the message's sequence number (non-negative, +1 per message of the flow).
            send_ns: the peer's send time (peer clock, ns).
            rx_ns: our receipt time (our clock, ns).

        Returns:
            ``"new"``, ``"reordered"`` or ``"duplicate"`` (see the module docstring).

        Every arrival (duplicates included) resets the silence timer; all but duplicates are
        latency and RFC 3550 jitter samples (jitter over consecutive arrivals, arrival order).
        """
        if seq < 0:
            raise ValueError(f"sequence numbers are non-negative, got {seq}")
        kind = self._rx_seq.classify(seq)
        last = self._rx_last_ns
        if last is None or rx_ns > last:
            self._rx_last_ns = rx_ns
        if kind is DUPLICATE:
            return kind
        transit = rx_ns - send_ns
        prev = self._rx_prev_transit
        if prev is not None:
            d = transit - prev
            if d < 0:
                d = -d
            self._rx_jitter_ns += (d - self._rx_jitter_ns) * _JITTER_GAIN
        self._rx_prev_transit = transit
        i = self._rx_lat_i
        self._rx_lat[i] = transit
        i += 1
        self._rx_lat_i = 0 if i == self._window else i
        self._rx_lat_n += 1
        if kind is NEW:
            self._rx_newest_send_ns = send_ns
        return kind

    def on_ack(self, t1_ns: int, t2_ns: int, t3_ns: int, t4_ns: int) -> None:
        """Account for an acknowledgment carrying the four NTP timestamps (ns).  O(1).

        Args:
            t1_ns: our send time of the acknowledged message (our clock).
            t2_ns: the peer's receipt of it (peer clock).
            t3_ns: the peer's send time of the acknowledging message (peer clock).
            t4_ns: our receipt of the acknowledging message (our clock).

        Acks with ``t1``, ``t2`` or ``t3`` equal to 0 ("none"), or a negative round trip, total
        or hold time are ignored.  Every valid ack is a round-trip and clock-offset sample; an
        ack repeating the previous ``(t1, t2)`` (the peer acknowledging the same message again)
        does not count as another acknowledged message nor as a tx latency/jitter sample.
        """
        if t1_ns == 0 or t2_ns == 0 or t3_ns == 0:
            self._ignored_acks += 1
            return
        total = t4_ns - t1_ns
        hold = t3_ns - t2_ns
        delay = total - hold
        if total < 0 or hold < 0 or delay < 0:
            self._ignored_acks += 1
            return
        i = self._ack_i
        self._rtt[i] = delay
        self._rtt_total[i] = total
        self._off2[i] = (t2_ns - t1_ns) + (t3_ns - t4_ns)
        i += 1
        self._ack_i = 0 if i == self._window else i
        self._ack_n += 1
        if t1_ns == self._tx_last_t1 and t2_ns == self._tx_last_t2:
            return
        self._tx_last_t1 = t1_ns
        self._tx_last_t2 = t2_ns
        self._tx_acked += 1
        transit = t2_ns - t1_ns
        prev = self._tx_prev_transit
        if prev is not None:
            d = transit - prev
            if d < 0:
                d = -d
            self._tx_jitter_ns += (d - self._tx_jitter_ns) * _JITTER_GAIN
        self._tx_prev_transit = transit
        i = self._tx_lat_i
        self._tx_lat[i] = transit
        i += 1
        self._tx_lat_i = 0 if i == self._window else i
        self._tx_lat_n += 1
        newest = self._tx_newest_t1
        if newest is None or t1_ns > newest:
            self._tx_newest_t1 = t1_ns
        last = self._tx_last_t2_max
        if last is None or t2_ns > last:
            self._tx_last_t2_max = t2_ns

    def on_peer_counters(
        self, received: int, lost: int, reordered: int = 0, duplicates: int = 0
    ) -> None:
        """Record the peer's cumulative counters of our flow (tx).  O(1).

        A decrease of ``received`` or ``lost`` means the peer restarted its counters: the recent
        window starts afresh and tx ``restarts`` is incremented.
        """
        if received < 0 or lost < 0 or reordered < 0 or duplicates < 0:
            raise ValueError(
                f"peer counters must be non-negative, got received={received} lost={lost} "
                f"reordered={reordered} duplicates={duplicates}"
            )
        prev = self._pc
        if prev is not None and (received < prev[0] or lost < prev[1]):
            logger.info(
                "peer counters went down (%s -> %s): peer restart", prev[:2], (received, lost)
            )
            self._pc_restarts += 1
            self._pc_i = 0
            self._pc_n = 0
        self._pc = (received, lost, reordered, duplicates)
        i = self._pc_i
        self._pc_recv[i] = received
        self._pc_lost[i] = lost
        i += 1
        self._pc_i = 0 if i == self._window else i
        self._pc_n += 1

    # ---------------------------------------------------------------- queries

    def rx_counts(self) -> RxCounts:
        """Cumulative counters of the rx flow, O(1) (cheap enough to report in every state)."""
        t = self._rx_seq
        return RxCounts(t.received, max(0, t.expected - t.received), t.reordered, t.duplicates)

    @property
    def clock_offset_ns(self) -> float:
        """Estimated ``peer_clock - our_clock`` (ns; NaN before the first valid ack)."""
        n = self._ack_n
        cached_n, cached = self._offset_cache
        if cached_n == n:
            return cached
        if n == 0:
            offset = _NAN
        else:
            w = self._window
            k = min(self.config.offset_filter, n, w)
            i = self._ack_i
            idx = np.arange(i - 1, i - 1 - k, -1) % w  # newest first: ties go to the newest
            j = idx[int(np.argmin(self._rtt[idx]))]
            offset = float(self._off2[j]) / 2.0
        self._offset_cache = (n, offset)
        return offset

    def _ring(self, arr: np.ndarray, n: int) -> np.ndarray:
        """The valid part of a ring buffer (unordered)."""
        return arr if n >= self._window else arr[:n]

    def _rtt_p95_ms(self) -> float:
        rtt = self._ring(self._rtt, self._ack_n)
        if rtt.size == 0:
            return _NAN
        return float(np.percentile(rtt, 95.0)) / _NS_PER_MS

    def _evaluate(
        self, now_ns: int, rtt_p95_ms: float, jitter_ms: float, recent_loss: float
    ) -> tuple[Health, tuple[str, ...]]:
        """Classify the link from the given metrics and the rx silence at ``now_ns``."""
        cfg = self.config
        last = self._rx_last_ns
        if last is None:
            return Health.LOST, ("rx: nothing received yet",)
        silence_ms = max(0, now_ns - last) / _NS_PER_MS
        if silence_ms > cfg.lost_silence_ms:
            return Health.LOST, (f"rx silence {silence_ms:.1f} ms > {cfg.lost_silence_ms:.1f} ms",)
        reasons: list[str] = []
        if silence_ms > cfg.degraded_silence_ms:
            reasons.append(f"rx silence {silence_ms:.1f} ms > {cfg.degraded_silence_ms:.1f} ms")
        if rtt_p95_ms > cfg.degraded_rtt_ms:  # False for NaN (no round-trip samples yet)
            reasons.append(f"rtt p95 {rtt_p95_ms:.1f} ms > {cfg.degraded_rtt_ms:.1f} ms")
        if jitter_ms > cfg.degraded_jitter_ms:
            reasons.append(f"rx jitter {jitter_ms:.1f} ms > {cfg.degraded_jitter_ms:.1f} ms")
        if recent_loss > cfg.degraded_loss:
            reasons.append(
                f"rx loss {100.0 * recent_loss:.1f} % > {100.0 * cfg.degraded_loss:.1f} % "
                "(recent window)"
            )
        return (Health.DEGRADED if reasons else Health.OK), tuple(reasons)

    def _observe(self, now_ns: int, health: Health, reasons: tuple[str, ...]) -> None:
        """Record a change of health level in ``health_events`` and the log."""
        previous = self._last_health
        if health is previous:
            return
        self._last_health = health
        events = self.health_events
        events.append((now_ns, health, reasons))
        if len(events) > MAX_HEALTH_EVENTS:
            del events[: len(events) - MAX_HEALTH_EVENTS]
        level = logging.INFO if health is Health.OK or previous is None else logging.WARNING
        logger.log(
            level,
            "link health %s -> %s%s",
            previous.value if previous is not None else "unknown",
            health.value,
            (": " + "; ".join(reasons)) if reasons else "",
        )

    def health(self, now_ns: int | None = None) -> Health:
        """The link health at ``now_ns`` (our clock; default: now).

        Cheap: silence, jitter and recent loss are O(1); the round-trip p95 comes from a cache
        refreshed at most every 100 ms (:data:`HEALTH_REFRESH_NS`) or by :meth:`stats`.
        """
        now = self._clock_ns() if now_ns is None else now_ns
        at = self._rtt_p95_cache_at
        if at is None or now - at >= HEALTH_REFRESH_NS or now < at:
            self._rtt_p95_cache_ms = self._rtt_p95_ms()
            self._rtt_p95_cache_at = now
        health, reasons = self._evaluate(
            now,
            self._rtt_p95_cache_ms,
            self._rx_jitter_ns / _NS_PER_MS,
            self._rx_seq.recent_loss(),
        )
        self._observe(now, health, reasons)
        return health

    def _tx_counters(self) -> tuple[int, int, float, float, int, int]:
        """(received, lost, loss, recent_loss, reordered, duplicates) of the tx flow."""
        pc = self._pc
        if pc is None:
            return self._tx_acked, 0, 0.0, 0.0, 0, 0
        received, lost, reordered, duplicates = pc
        expected = received + lost
        loss = lost / expected if expected > 0 else 0.0
        n = self._pc_n
        if n <= 1:
            d_rec, d_lost = received, lost
        else:
            j = 0 if n <= self._window else self._pc_i
            d_rec = received - self._pc_recv[j]
            d_lost = lost - self._pc_lost[j]
        d_exp = d_rec + d_lost
        recent = d_lost / d_exp if d_exp > 0 else 0.0
        return received, lost, loss, recent, reordered, duplicates

    def stats(self, now_ns: int | None = None) -> LinkStats:
        """A full snapshot at ``now_ns`` (our clock; default: now).  Costs ~0.1-0.3 ms."""
        now = self._clock_ns() if now_ns is None else now_ns
        offset = self.clock_offset_ns
        have_offset = not math.isnan(offset)

        # rx
        seq = self._rx_seq
        expected = seq.expected
        lost = expected - seq.received
        if have_offset:
            rx_lat = Percentiles.from_ns(self._ring(self._rx_lat, self._rx_lat_n) + offset)
        else:
            rx_lat = Percentiles.empty()
        newest = self._rx_newest_send_ns
        last = self._rx_last_ns
        recent_loss = seq.recent_loss()
        rx = FlowStats(
            received=seq.received,
            lost=lost,
            loss=lost / expected if expected > 0 else 0.0,
            recent_loss=recent_loss,
            reordered=seq.reordered,
            duplicates=seq.duplicates,
            jitter_ms=self._rx_jitter_ns / _NS_PER_MS,
            latency_ms=rx_lat,
            since_last_ms=(now - last) / _NS_PER_MS if last is not None else _NAN,
            newest_age_ms=(
                (now - (newest - offset)) / _NS_PER_MS
                if newest is not None and have_offset
                else _NAN
            ),
            restarts=seq.restarts,
        )

        # tx
        t_rec, t_lost, t_loss, t_recent, t_reord, t_dup = self._tx_counters()
        if have_offset:
            tx_lat = Percentiles.from_ns(self._ring(self._tx_lat, self._tx_lat_n) - offset)
        else:
            tx_lat = Percentiles.empty()
        t2_max = self._tx_last_t2_max
        newest_t1 = self._tx_newest_t1
        tx = FlowStats(
            received=t_rec,
            lost=t_lost,
            loss=t_loss,
            recent_loss=t_recent,
            reordered=t_reord,
            duplicates=t_dup,
            jitter_ms=self._tx_jitter_ns / _NS_PER_MS,
            latency_ms=tx_lat,
            since_last_ms=(
                (now - (t2_max - offset)) / _NS_PER_MS
                if t2_max is not None and have_offset
                else _NAN
            ),
            newest_age_ms=(now - newest_t1) / _NS_PER_MS if newest_t1 is not None else _NAN,
            restarts=self._pc_restarts,
        )

        # round trip
        rtt = self._ring(self._rtt, self._ack_n)
        rtt_p = Percentiles.from_ns(rtt)
        rtt_total = Percentiles.from_ns(self._ring(self._rtt_total, self._ack_n))
        rtt_jitter = float(np.std(rtt)) / _NS_PER_MS if rtt.size else _NAN

        self._rtt_p95_cache_ms = rtt_p.p95
        self._rtt_p95_cache_at = now
        health, reasons = self._evaluate(now, rtt_p.p95, rx.jitter_ms, recent_loss)
        self._observe(now, health, reasons)
        return LinkStats(
            rx=rx,
            tx=tx,
            rtt_ms=rtt_p,
            rtt_total_ms=rtt_total,
            rtt_jitter_ms=rtt_jitter,
            clock_offset_ms=offset / _NS_PER_MS,
            health=health,
            health_reasons=reasons,
        )


def bench_monitor(n: int = 200_000) -> dict[str, float]:
    """Micro-benchmark: mean cost per call in nanoseconds (CPython, this machine).

    Feeds ``n`` in-order messages and acknowledgments (1 kHz, 20 ms each way, 1 % loss) and
    times ``on_receive``, ``on_ack``, ``health`` and ``stats`` separately.  Not a test: timings
    depend on the machine.  Returns ``{"on_receive_ns": ..., "on_ack_ns": ..., "health_ns":
    ..., "stats_us": ...}``.
    """
    rng = np.random.default_rng(0)
    period = 1_000_000
    offset = 3_700_000_000
    t0 = 10**12
    seqs = [s for s in range(n) if rng.random() >= 0.01]
    send = [t0 + s * period + offset for s in seqs]
    rx = [t0 + s * period + 20_000_000 + int(rng.integers(0, 500_000)) for s in seqs]
    t1 = [t0 + s * period - 40_000_000 for s in seqs]
    t2 = [a + 20_000_000 + offset for a in t1]
    t3 = [b + 300_000 for b in t2]

    mon = LatencyMonitor(MonitorConfig())
    on_receive = mon.on_receive
    start = time.perf_counter_ns()
    for s, a, b in zip(seqs, send, rx, strict=True):
        on_receive(s, a, b)
    t_rx = (time.perf_counter_ns() - start) / len(seqs)

    on_ack = mon.on_ack
    start = time.perf_counter_ns()
    for a, b, c, d in zip(t1, t2, t3, rx, strict=True):
        on_ack(a, b, c, d)
    t_ack = (time.perf_counter_ns() - start) / len(seqs)

    now = rx[-1] + 1_000_000
    mon.stats(now)  # warm up (first numpy calls) and fill the health cache
    reps = 2000
    start = time.perf_counter_ns()
    for k in range(reps):
        mon.health(now + k * 1000)
    t_health = (time.perf_counter_ns() - start) / reps

    reps = 200
    start = time.perf_counter_ns()
    for _ in range(reps):
        mon.stats(now)
    t_stats = (time.perf_counter_ns() - start) / reps / 1000.0

    result = {
        "on_receive_ns": t_rx,
        "on_ack_ns": t_ack,
        "health_ns": t_health,
        "stats_us": t_stats,
    }
    logger.info("LatencyMonitor micro-benchmark: %s", result)
    return result


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig(level=logging.INFO)
    bench_monitor()
