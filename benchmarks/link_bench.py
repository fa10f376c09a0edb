"""``telesurgery-bench link``: round-trip latency of the link against raw pyzmq, at 1 kHz.

Two phases, each against its own arm-side process (:mod:`benchmarks.echo`), same pacing and
same message sizes, run in alternating chunks so both see the same machine conditions:

1. **raw**: plain pyzmq, DEALER -> ROUTER, answered on PUB -> SUB, bytes in, bytes out.
2. **link**: :class:`~network.link.ConsoleLink` -> :class:`~network.link.ArmLink`, real protocol
   messages (encode, validate, decode), the latency monitor, and the impairment profile applied
   at the console to both directions.

The console sends one command per tick on absolute deadlines; every command is answered by a
state that acknowledges it. RTT is measured per command as ``t4 - t1`` (console send to console
receipt of the acknowledgement), the same quantity in both phases. The benchmark checks that
every acknowledgement matches what was sent, that nothing is lost on a lossless profile, and that
the RTT is no shorter than the profile's delay, and raises :class:`BenchmarkError` otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from benchmarks.machine import machine_info, machine_line
from network.impairment import ImpairmentProfile, get_profile
from network.link import (
    ArmLink,
    ConsoleLink,
    LinkConfig,
    channel_endpoints,
    free_tcp_endpoint,
    readable,
    wait_readable,
)
from network.protocol import IDENTITY_POSE, ZERO_WRENCH, Command, JointState, State, encode

log = logging.getLogger(__name__)

WARMUP_S = 0.5
SPIN_NS = 100_000


class BenchmarkError(RuntimeError):
    """A benchmark produced a result that cannot be right; its figures must not be used."""


@dataclass
class Samples:
    """Per-command round trips of one phase."""

    sent: int = 0
    send_ns: dict[int, int] = field(default_factory=dict)
    rtt_ns: dict[int, int] = field(default_factory=dict)
    hold_ns: dict[int, int] = field(default_factory=dict)
    lateness_ns: list[int] = field(default_factory=list)

    def rtt_ms(self) -> np.ndarray:
        return np.fromiter(self.rtt_ns.values(), dtype=np.float64, count=len(self.rtt_ns)) / 1e6


def summarize(values_ms: np.ndarray) -> dict[str, float]:
    """p50/p95/p99/max/mean of a sample, in ms (NaN when empty)."""
    if values_ms.size == 0:
        return {k: float("nan") for k in ("p50", "p95", "p99", "max", "mean")}
    p50, p95, p99 = np.percentile(values_ms, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(values_ms.max()),
        "mean": float(values_ms.mean()),
    }


def _sample_sizes() -> tuple[int, int]:
    """Encoded sizes of a command and of the echo's state as the link phase sends them.

    Timestamps are real monotonic ns and counts are in the thousands, so the msgpack integers
    have the width they have in the run; the raw baseline pads its messages to these sizes.
    """
    ts = time.monotonic_ns()
    pose = (0.01, -0.02, -0.1, *IDENTITY_POSE[3:])
    cmd = Command(5000, ts, "servo_cp", pose, 0.3, True, True, 5000, ts, ts)
    arm = ArmLink(LinkConfig(endpoint="inproc://sizes"))
    counters = dict.fromkeys(arm.link_counters(), 0)
    counters["cmd_received"] = 5000
    js = JointState((0.1,) * 7, (0.0,) * 7, (0.0,) * 7)
    st = State(
        5000,
        ts,
        5000,
        ts,
        ts,
        "ENABLED",
        True,
        False,
        pose,
        pose,
        js,
        ZERO_WRENCH,
        0.3,
        (),
        counters,
    )
    arm.close()
    return len(encode(cmd)[0]), len(encode(st)[0])


def _start_echo(
    mode: str, endpoint: str, reply_bytes: int, max_s: float, *extra: str
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.echo",
        mode,
        "--endpoint",
        endpoint,
        "--reply-bytes",
        str(reply_bytes),
        "--max-seconds",
        str(max_s),
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "READY":
        proc.kill()
        raise BenchmarkError(f"echo process ({mode}) failed to start: got {line!r}")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _Phase:
    """One side of the comparison: sends one command per tick and collects its round trips."""

    name = ""

    def __init__(self) -> None:
        self.s = Samples()
        self._measuring: set[int] = set()

    def tick(self, measuring: bool) -> None:
        raise NotImplementedError

    def wait_until(self, deadline_ns: int) -> None:
        raise NotImplementedError

    def snapshot(self) -> None:
        """Called when a chunk's ticking ends, before waiting for the last answers."""

    def outstanding(self) -> int:
        """Measured commands not acknowledged yet."""
        return len(self._measuring) - len(self.s.rtt_ns)

    def _sent(self, seq: int, t1: int, measuring: bool) -> None:
        if measuring:
            self._measuring.add(seq)
            self.s.send_ns[seq] = t1
            self.s.sent += 1

    def _acked(self, seq: int, t1: int, t4: int) -> bool:
        if seq in self._measuring and seq not in self.s.rtt_ns:
            if self.s.send_ns[seq] != t1:
                raise BenchmarkError(f"{self.name}: seq {seq} acknowledged with a wrong send time")
            self.s.rtt_ns[seq] = t4 - t1
            return True
        return False

    def close(self) -> None:
        raise NotImplementedError


class RawPhase(_Phase):
    """Plain pyzmq: DEALER -> ROUTER, answered PUB -> SUB, bytes in and out."""

    name = "raw"

    def __init__(self, endpoint: str, cmd_bytes: int) -> None:
        super().__init__()
        ch = channel_endpoints(endpoint)
        self._ctx = zmq.Context()
        self._dealer = self._ctx.socket(zmq.DEALER)
        self._sub = self._ctx.socket(zmq.SUB)
        for sock in (self._dealer, self._sub):
            sock.linger = 0
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._dealer.connect(ch.control)
        self._sub.connect(ch.state)
        self._pad = bytes(max(0, cmd_bytes - 16))
        self._seq = 0

    def _drain(self) -> None:
        while readable(self._sub):
            msg = self._sub.recv(zmq.NOBLOCK)
            t4 = time.monotonic_ns()
            seq, t1 = struct.unpack_from("<qq", msg)
            self._acked(seq, t1, t4)

    def tick(self, measuring: bool) -> None:
        self._seq += 1
        t1 = time.monotonic_ns()
        self._sent(self._seq, t1, measuring)
        with contextlib.suppress(zmq.Again):  # no peer yet: counted as lost, like the link
            self._dealer.send(struct.pack("<qq", self._seq, t1) + self._pad, zmq.NOBLOCK)

    def wait_until(self, deadline_ns: int) -> None:
        sub = [self._sub]
        while True:
            self._drain()
            now = time.monotonic_ns()
            if now >= deadline_ns:
                return
            if deadline_ns - now > SPIN_NS:
                wait_readable(sub, (deadline_ns - now - SPIN_NS) * 1e-9)

    def close(self) -> None:
        self._dealer.close()
        self._sub.close()
        self._ctx.term()


class LinkPhase(_Phase):
    """The project's link: ConsoleLink with the impairment profile, real protocol messages."""

    name = "link"

    def __init__(self, endpoint: str, profile: ImpairmentProfile, seed: int) -> None:
        super().__init__()
        self.last_state: State | None = None
        self.stats: dict[str, Any] = {}
        self.snapshot_seq = 0
        self.last_command: Command | None = None
        self.link = ConsoleLink(
            LinkConfig(endpoint=endpoint),
            name="link-bench",
            impairment=profile,
            seed=seed,
            subscribe_video=False,
            on_state=self._on_state,
        )
        self.link.connect(timeout_s=10 + 2 * profile.rtt_ms / 1e3)
        self._pose = (0.01, -0.02, -0.1, *IDENTITY_POSE[3:])

    def _on_state(self, st: State, rx_ns: int) -> None:
        if self._acked(st.ack_seq, st.ack_send_ns, rx_ns):
            self.s.hold_ns[st.ack_seq] = st.send_ns - st.ack_rx_ns
            self.last_state = st

    def tick(self, measuring: bool) -> None:
        cmd = self.link.send_command(self._pose, 0.3)
        self._sent(cmd.seq, cmd.send_ns, measuring)
        self.last_command = cmd

    def wait_until(self, deadline_ns: int) -> None:
        self.link.service_until(deadline_ns)

    @property
    def command_bytes(self) -> int:
        """Encoded size of the last command (echo fields filled in, full-width numbers)."""
        return len(encode(self.last_command)[0]) if self.last_command else 0

    @property
    def state_bytes(self) -> int:
        return len(encode(self.last_state)[0]) if self.last_state else 0

    def snapshot(self) -> None:
        # the monitor's view while the link is in use (not after the idle wait that follows)
        self.stats = self.link.stats().to_dict()
        self.snapshot_seq = self.last_command.seq if self.last_command else 0

    def window_rtt_network_ms(self, count: int) -> np.ndarray:
        """This run's network RTTs (hold excluded) over the monitor's window at the snapshot."""
        if count <= 0:
            return np.empty(0)
        seqs = sorted(q for q in self.s.rtt_ns if q <= self.snapshot_seq)[-count:]
        return np.array([self.s.rtt_ns[q] - self.s.hold_ns[q] for q in seqs], dtype=float) / 1e6

    def close(self) -> None:
        self.link.close()


def _pace(phase: _Phase, seconds: float, rate_hz: float, measuring: bool, settle_s: float) -> None:
    """Tick ``phase`` on absolute deadlines for ``seconds``, then let its answers come in."""
    _tick(phase, seconds, rate_hz, measuring)
    phase.snapshot()
    settle_end = time.monotonic_ns() + int(settle_s * 1e9)
    while phase.outstanding() > 0 and time.monotonic_ns() < settle_end:
        phase.wait_until(min(settle_end, time.monotonic_ns() + 10_000_000))


def _tick(phase: _Phase, seconds: float, rate_hz: float, measuring: bool) -> None:
    period = int(1e9 / rate_hz)
    deadline = time.monotonic_ns()
    end = deadline + int(seconds * 1e9)
    while deadline < end:
        phase.tick(measuring)
        deadline += period
        phase.wait_until(deadline)
        if measuring:
            phase.s.lateness_ns.append(time.monotonic_ns() - deadline)


def measure(
    profile: ImpairmentProfile, seconds: float, rate_hz: float, seed: int, progress: bool = True
) -> tuple[LinkPhase, RawPhase]:
    """Run both phases in alternating chunks, so both see the same machine conditions.

    Each chunk ends by waiting for its outstanding answers (the impairment queues live in this
    process and are only served while the link phase runs). Chunks last at least 1 s and ten
    round trips of the profile.
    """
    cmd_bytes, state_bytes = _sample_sizes()
    ep_raw, ep_link = free_tcp_endpoint(), free_tcp_endpoint()
    while channel_endpoints(ep_link).control in channel_endpoints(ep_raw):
        ep_link = free_tcp_endpoint()
    settle_s = 2 * (profile.delay_ms + 6 * profile.jitter_ms + profile.reorder_gap_ms) / 1e3 + 0.2
    chunk_s = max(1.0, 10 * profile.rtt_ms / 1e3)
    n_chunks = max(1, round(seconds / chunk_s))
    procs = [
        _start_echo("raw", ep_raw, state_bytes, 3 * seconds + 120),
        # The link idles while raw pyzmq is measured: no arm heartbeats to disturb that, and no
        # release of control while the console is quiet.
        _start_echo(
            "link",
            ep_link,
            0,
            3 * seconds + 120,
            "--heartbeat-ms=1000",
            "--controller-timeout-ms=600000",
        ),
    ]
    phases: list[_Phase] = []
    try:
        raw = RawPhase(ep_raw, cmd_bytes)
        phases.append(raw)
        link = LinkPhase(ep_link, profile, seed)
        phases.append(link)
        for ph in (raw, link):
            _pace(ph, WARMUP_S, rate_hz, False, settle_s)
        for i in range(n_chunks):
            if progress:
                print(
                    f"  chunk {i + 1}/{n_chunks} ({seconds / n_chunks:.1f} s each phase)",
                    flush=True,
                )
            for ph in (raw, link) if i % 2 == 0 else (link, raw):
                _pace(ph, seconds / n_chunks, rate_hz, True, settle_s)
        link.stats["console_counters"] = dict(link.link.counters)
    finally:
        for ph in phases:
            ph.close()
        for proc in procs:
            _stop(proc)
    return link, raw


def run(
    profile_name: str = "lan",
    seconds: float = 10.0,
    rate_hz: float = 1000.0,
    seed: int = 0,
    json_path: str | Path | None = None,
    plot: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and return (and write) the result."""
    profile = get_profile(profile_name)
    info = machine_info()
    print(
        f"telesurgery-bench link: profile {profile.name!r}, {seconds:g} s per phase at "
        f"{rate_hz:g} Hz, raw pyzmq and link interleaved\nmachine: {machine_line(info)}",
        flush=True,
    )
    link_phase, raw_phase = measure(profile, seconds, rate_hz, seed)
    link, raw = link_phase.s, raw_phase.s
    stats = link_phase.stats
    cmd_bytes, state_bytes = _sample_sizes()
    rtt = link.rtt_ms()
    raw_rtt = raw.rtt_ms()
    hold = np.fromiter(link.hold_ns.values(), dtype=np.float64, count=len(link.hold_ns)) / 1e6
    result: dict[str, Any] = {
        "benchmark": "link",
        "profile": profile.name,
        "profile_params": profile.to_dict(),
        "seconds": seconds,
        "rate_hz": rate_hz,
        "seed": seed,
        "machine": info,
        "messages": {
            "command_bytes": link_phase.command_bytes,
            "state_bytes": link_phase.state_bytes,
            "raw_request_bytes": cmd_bytes,
            "raw_reply_bytes": state_bytes,
            "sent": link.sent,
            "acknowledged": len(link.rtt_ns),
            "raw_sent": raw.sent,
            "raw_acknowledged": len(raw.rtt_ns),
        },
        "rtt_ms": summarize(rtt),
        "rtt_network_ms": summarize(rtt - hold) if hold.size == rtt.size else None,
        "raw_rtt_ms": summarize(raw_rtt),
        "jitter_ms": stats["rx"]["jitter_ms"],
        "rtt_jitter_ms": float(np.std(rtt)) if rtt.size else float("nan"),
        "loss": 1.0 - len(link.rtt_ns) / link.sent if link.sent else float("nan"),
        "raw_loss": 1.0 - len(raw.rtt_ns) / raw.sent if raw.sent else float("nan"),
        "loop_lateness_us": {
            "link": summarize(np.asarray(link.lateness_ns, dtype=np.float64) / 1e3),
            "raw": summarize(np.asarray(raw.lateness_ns, dtype=np.float64) / 1e3),
        },
        "monitor": stats,
    }
    result["ratio_p50"] = result["rtt_ms"]["p50"] / result["raw_rtt_ms"]["p50"]
    result["ratio_p99"] = result["rtt_ms"]["p99"] / result["raw_rtt_ms"]["p99"]
    window = link_phase.window_rtt_network_ms(stats["rtt_ms"]["count"] or 0)
    result["checks"] = check(result, profile, window)

    print(format_summary(result), flush=True)
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, allow_nan=True))
        print(f"wrote {path}", flush=True)
        if plot:
            png = path.with_suffix(".png")
            plot_result(result, link, raw, png)
            print(f"wrote {png}", flush=True)
    return result


def check(
    result: dict[str, Any], profile: ImpairmentProfile, window_ms: np.ndarray
) -> dict[str, bool]:
    """Sanity checks; raises BenchmarkError when the figures cannot be right."""
    problems = []
    msgs = result["messages"]
    if msgs["sent"] < 100 or msgs["raw_sent"] < 100:
        problems.append(f"too few messages sent ({msgs['sent']}, raw {msgs['raw_sent']})")
    for real, raw in (("command_bytes", "raw_request_bytes"), ("state_bytes", "raw_reply_bytes")):
        if abs(msgs[real] - msgs[raw]) > 16:
            problems.append(
                f"raw baseline sends {msgs[raw]} bytes where the link sends {msgs[real]}"
            )
    if result["raw_loss"] > 0.001:
        problems.append(f"the raw baseline lost {result['raw_loss']:.2%} on loopback")
    expected_loss = profile.expected_loss
    if expected_loss == 0 and result["loss"] > 0.001:
        problems.append(f"lost {result['loss']:.2%} on a lossless profile")
    floor = 2 * profile.delay_ms - 6 * profile.jitter_ms
    if result["rtt_ms"]["p50"] < floor:
        problems.append(f"RTT p50 {result['rtt_ms']['p50']:.3f} ms is below the profile's {floor}")
    mon = result["monitor"]["rtt_ms"]
    if mon["count"] and window_ms.size:  # the monitor against this run's samples, same window
        own = float(np.median(window_ms))
        if abs(mon["p50"] - own) > 0.1 * own + 0.05:
            problems.append(
                f"monitor RTT p50 {mon['p50']:.3f} ms disagrees with the measured {own:.3f} ms"
            )
    if problems:
        raise BenchmarkError("link benchmark failed its checks: " + "; ".join(problems))
    return {"acks_match": True, "loss_consistent": True, "rtt_above_profile": True}


def format_summary(r: dict[str, Any]) -> str:
    """A markdown table of the result."""
    rows = [("link", r["rtt_ms"], r["loss"]), ("raw pyzmq", r["raw_rtt_ms"], r["raw_loss"])]
    lines = [
        f"| {r['profile']} | RTT p50 ms | p95 | p99 | max | loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s, loss in rows:
        lines.append(
            f"| {name} | {s['p50']:.3f} | {s['p95']:.3f} | {s['p99']:.3f} | {s['max']:.3f} "
            f"| {loss:.2%} |"
        )
    lines.append(
        f"\nratio link/raw: p50 {r['ratio_p50']:.2f}x, p99 {r['ratio_p99']:.2f}x; "
        f"downlink jitter (RFC 3550) {r['jitter_ms']:.3f} ms; "
        f"health {r['monitor']['health']}"
    )
    return "\n".join(lines)


def plot_result(r: dict[str, Any], link: Samples, raw: Samples, png: Path) -> None:
    """Latency CDF (link vs raw) and the RTT timeline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, s in (("link", link), ("raw pyzmq", raw)):
        v = np.sort(s.rtt_ms())
        if v.size:
            ax1.plot(v, np.arange(1, v.size + 1) / v.size, label=f"{name} (p50 {np.median(v):.3f})")
    ax1.set_xscale("log")
    ax1.set_xlabel("round trip (ms, log)")
    ax1.set_ylabel("fraction of commands")
    ax1.set_title(f"RTT CDF, profile {r['profile']}")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    if link.rtt_ns:
        t0 = min(link.send_ns.values())
        seqs = sorted(link.rtt_ns)
        t = np.array([(link.send_ns[q] - t0) / 1e9 for q in seqs])
        ax2.plot(t, [link.rtt_ns[q] / 1e6 for q in seqs], ".", ms=1.5, label="acknowledged")
        lost = sorted(set(link.send_ns) - set(link.rtt_ns))
        if lost:
            tl = [(link.send_ns[q] - t0) / 1e9 for q in lost]
            ax2.plot(tl, np.full(len(tl), r["rtt_ms"]["p50"]), "rx", ms=3, label="lost")
        ax2.legend(loc="upper right")
    ax2.set_xlabel("time (s)")
    ax2.set_ylabel("round trip (ms)")
    ax2.set_title("RTT timeline (link; gaps: raw pyzmq chunks)")
    ax2.grid(True, alpha=0.3)
    fig.suptitle(f"telesurgery link benchmark — {machine_line(r['machine'])}", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
