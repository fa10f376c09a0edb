"""The console loop: device → tremor filter → clutch and scaling → command → link, at 1 kHz.

Each tick, on absolute deadlines (the waiting happens inside ``ConsoleLink.service_until``,
which handles arrivals as they come and spins only for the last ~100 µs):

1. take the device's newest sample (read on its own thread);
2. filter the master position (``filters.make_filter``, default ``"default"``);
3. clutch and scaling (:class:`filters.MotionScaler`): motion only while the operator is present,
   the clutch is engaged and the link is not LOST; engaging anchors on the arm's current
   setpoint, so the arm never jumps;
4. send the absolute target (or, when not engaged, the arm's own setpoint with the clutch out);
5. take the newest state; a state acknowledging a command closes the end-to-end measurement
   (input sample time → applied in the arm → state back at the console).

On link LOST the console stops sending motion, logs it loudly, and needs a re-engage (a clutch
release and press) after recovery; the arm side independently holds after its watchdog.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from filters import Filter, MotionScaler, ScalingConfig, make_filter
from master_console.devices import InputDevice, KeyboardDevice
from master_console.display import DisplayFeed
from master_console.haptics import ForceFeedback
from master_console.recording import Recorder
from network.link import ConsoleLink, LinkConfig
from network.monitor import Health, LinkStats, MonitorConfig
from network.protocol import State, VideoFrame
from network.realtime import RealtimeReport, collect_garbage, enter_realtime, leave_realtime
from network.ring import Ring

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsoleConfig:
    """The console loop's settings; units in the names."""

    rate_hz: float = 1000.0
    filter_kind: str = "default"  # a filters.FILTERS kind, or "none"
    scale: float = 0.2
    link_stats_hz: float = 2.0  # how often the link's statistics are computed (~0.5 ms each)
    rt_priority: int | None = None  # SCHED_FIFO priority of the loop where permitted; None: off
    cpus: tuple[int, ...] | None = None  # pin the loop thread to these CPUs; None: unpinned
    # Phase lock to the arm's servo loop: shift our ticks so a command reaches the arm this long
    # before the arm's tick publishes it (measured on the arm's clock: network delay and clock
    # offset do not enter). 0 disables it.
    arm_wait_target_us: float = 400.0

    def __post_init__(self) -> None:
        if not self.rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")
        if not self.link_stats_hz > 0:
            raise ValueError(f"link_stats_hz must be > 0, got {self.link_stats_hz}")
        if not 0 <= self.arm_wait_target_us < 1e6 / self.rate_hz:
            raise ValueError(
                f"arm_wait_target_us must be in [0, one period), got {self.arm_wait_target_us}"
            )


#: The sections of a tick timed separately (µs, ``ConsoleStats.section_us``).
SECTIONS = ("device", "filter", "command", "record")


@dataclass
class ConsoleStats:
    """What a run measured."""

    ticks: int = 0
    commands: int = 0
    lateness_ns: Ring = field(default_factory=Ring)  # the newest 10 minutes of each
    e2e_ns: Ring = field(default_factory=Ring)
    video_frames: int = 0
    video_rx_ns: Ring = field(default_factory=lambda: Ring(36_000))
    peak_force_n: float = 0.0
    lost_ticks: int = 0
    commands_applied: int = 0
    # per-section work per tick (µs): where a tick's time goes, for finding what makes it late
    section_us: dict[str, Ring] = field(
        default_factory=lambda: {k: Ring() for k in ("tick", *SECTIONS)}
    )

    def summary(self, link: ConsoleLink) -> dict[str, Any]:
        lat = self.lateness_ns.values() / 1e3
        e2e = self.e2e_ns.values() / 1e6
        st = link.stats().to_dict()
        vt = self.video_rx_ns.values() / 1e9
        fps = (len(vt) - 1) / (vt[-1] - vt[0]) if len(vt) > 2 else 0.0
        last = link.latest_state.state if link.latest_state else None
        return {
            "ticks": self.ticks,
            "commands": self.commands,
            "loop_lateness_us": _pct(lat, (50, 99, 99.9), ("p50", "p99", "p999")),
            "e2e_latency_ms": _pct(e2e, (50, 99), ("p50", "p99")),
            "rtt_ms": {"p50": st["rtt_total_ms"]["p50"], "p99": st["rtt_total_ms"]["p99"]},
            "commands_applied": self.commands_applied,
            "video_fps": fps,
            "video_frames": self.video_frames,
            "peak_force_n": self.peak_force_n,
            "health_events": [
                {"t_ns": t, "health": str(h), "reasons": list(r)}
                for t, h, r in link.monitor.health_events
            ],
            "lost_ticks": self.lost_ticks,
            "section_us": {
                k: _pct(r.values(), (50, 99, 100), ("p50", "p99", "max"))
                for k, r in self.section_us.items()
            },
            "arm_counters": dict(last.counters) if last else {},
        }


def heartbeat_monitor_config(link: LinkConfig, **overrides: Any) -> MonitorConfig:
    """The console's link-health thresholds, tied to the heartbeat period.

    The arm promises to send something (a state, else a heartbeat) at least once per heartbeat
    interval; the console calls the link DEGRADED after one silent interval and LOST after two
    (40 ms with the reference 20 ms; states normally arrive every millisecond). LOST stops the
    surgeon's motion and needs a re-engage; the arm holds on its own after its watchdog.
    """
    hb = link.heartbeat_interval_ms
    return MonitorConfig(**{"degraded_silence_ms": hb, "lost_silence_ms": 2 * hb, **overrides})


def _pct(a: np.ndarray, qs: tuple[float, ...], names: tuple[str, ...]) -> dict[str, float]:
    if a.size == 0:
        return dict.fromkeys(names, float("nan"))
    return {n: float(v) for n, v in zip(names, np.percentile(a, qs), strict=True)}


class ConsoleLoop:
    """Runs the control path for one device and one connected :class:`ConsoleLink`."""

    def __init__(
        self,
        device: InputDevice,
        link: ConsoleLink,
        config: ConsoleConfig | None = None,
        recorder: Recorder | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        force_feedback: ForceFeedback | None = None,
        display: DisplayFeed | None = None,
    ) -> None:
        self.config = config or ConsoleConfig()
        # force feedback only for devices that can render it, and only when enabled
        self.force_feedback = (
            force_feedback
            if force_feedback is not None
            and force_feedback.config.enabled
            and device.has_force_feedback
            else None
        )
        self.display = display
        self.device = device
        self.link = link
        self.recorder = recorder
        self._clock = clock_ns
        # "none": rate devices (joystick, SpaceMouse, keyboard) integrate a twist into a smooth
        # pose with no physiological tremor in it; a tremor filter would only add ringing
        self.filter: Filter | None = (
            None
            if self.config.filter_kind == "none"
            else make_filter(self.config.filter_kind, self.config.rate_hz)
        )
        self.scaler = MotionScaler(ScalingConfig(scale=self.config.scale))
        # compile/load every kernel now, not on the first tick of the 1 kHz loop
        if self.filter is not None:
            self.filter.step(np.zeros(3))
            self.filter.reset()
        self.scaler.warm_up()
        self.stats = ConsoleStats()
        self.realtime: RealtimeReport | None = None
        #: the newest ``link.stats().to_dict()``, refreshed at ``link_stats_hz`` between ticks
        self.link_stats: dict[str, Any] | None = None
        self._link_stats_obj: LinkStats | None = None
        self._arm_wait_ns: list[int] = []
        #: console time when the arm first reported ``task_done`` (None: not done / no task)
        self.task_done_ns: int | None = None
        #: end the run this long after the task is done (None: run on)
        self.stop_after_task_s: float | None = None
        self.phase_shifts_us: list[float] = []
        self._present = False
        self._link_stats_due_ns = 0
        self._link_stats_period_ns = round(1e9 / self.config.link_stats_hz)
        self._input_t_by_seq: dict[int, int] = {}
        self._last_acked = 0
        self._lost = False
        self._need_release = False
        self._armed = False
        self._reanchor_after_seq = -1
        link.on_state = self._on_state
        link.on_video = self._on_video

    # -- callbacks from the link (inside service_until) ----------------------------------------
    def _on_state(self, st: State, rx_ns: int) -> None:
        if st.ack_seq > self._last_acked:
            self._last_acked = st.ack_seq
            t_in = self._input_t_by_seq.pop(st.ack_seq, None)
            if t_in is not None:
                self.stats.e2e_ns.append(rx_ns - t_in)
                self.stats.commands_applied += 1
            if st.ack_rx_ns and len(self._arm_wait_ns) < 4096:
                # how long our newest command waited in the arm before its tick applied it
                self._arm_wait_ns.append(st.send_ns - st.ack_rx_ns)
        if self.task_done_ns is None and st.counters.get("task_done"):
            self.task_done_ns = rx_ns
            self._event("the arm reports the task done", logging.INFO)
        f = float(np.linalg.norm(st.measured_cf[:3]))
        if f > self.stats.peak_force_n:
            self.stats.peak_force_n = f
        if self.recorder is not None:
            self.recorder.record(
                "state",
                rx_ns,
                seq=st.seq,
                send_ns=st.send_ns,
                ack_seq=st.ack_seq,
                ack_send_ns=st.ack_send_ns,
                ack_rx_ns=st.ack_rx_ns,
                measured_cp=list(st.measured_cp),
                setpoint_cp=list(st.setpoint_cp),
                measured_cf=list(st.measured_cf),
                jaw=st.measured_jaw,
                flags=list(st.safety_flags),
                # only the arm's task counters, and only when it runs a task (every state, 1 kHz)
                task=(
                    {k: v for k, v in st.counters.items() if k.startswith("task_")}
                    if "task_started" in st.counters
                    else {}
                ),
            )

    def _on_video(self, frame: VideoFrame, rx_ns: int) -> None:
        self.stats.video_frames += 1
        self.stats.video_rx_ns.append(rx_ns)
        if self.display is not None:
            self.display.publish_frame(frame, rx_ns)
        rec = self.recorder
        if rec is not None and rec.record_video:
            rec.record(
                "video",
                rx_ns,
                seq=frame.seq,
                capture_ns=frame.capture_ns,
                width=frame.width,
                height=frame.height,
                jpeg=frame.data,
            )

    def _event(self, text: str, level: int = logging.WARNING) -> None:
        log.log(level, "%s", text)
        if self.recorder is not None:
            self.recorder.record("event", self._clock(), text=text)

    def _phase_shift_ns(self, period: int) -> int:
        """How much later to tick so our commands reach the arm ``arm_wait_target_us`` before
        its tick (0 if close enough or too few samples). Always later, never earlier, so no
        deadline is ever in the past: a shift of -50 µs is taken as +950 µs, once."""
        waits = self._arm_wait_ns
        self._arm_wait_ns = []
        if len(waits) < 100:
            return 0
        err = int(np.median(waits)) - round(self.config.arm_wait_target_us * 1e3)
        err %= period  # a command that missed a tick waited a whole period longer
        if min(err, period - err) < period // 10:
            return 0
        self.phase_shifts_us.append(err / 1e3)
        log.info("phase lock to the arm: ticking %.0f µs later", err / 1e3)
        return err

    def _telemetry(self) -> dict[str, Any]:
        """What the display shows (built only when the display is due, ~20 times a second)."""
        from master_console.display import telemetry_from

        lat = self.stats.lateness_ns
        health = self.link.health()
        flags = {
            "health": str(health),
            "lost": self._lost or self._need_release,
            "clutch": self.scaler.engaged,
            "operator_present": self._present,
            "armed": self._armed,
            "commands_applied": self.stats.commands_applied,
            "loop_lateness_p99_us": float(np.percentile(lat.newest(2000), 99)) / 1e3
            if len(lat)
            else None,
        }
        if self._link_stats_obj is None:
            return flags
        return telemetry_from(self.link, None, flags, stats=self._link_stats_obj)

    def _on_key(self, name: str, down: bool) -> None:
        """A key from the display window: the keyboard device's keys, and Esc to stop."""
        if isinstance(self.device, KeyboardDevice):
            if down:
                self.device.press(name)
            else:
                self.device.release(name)

    def _refresh_link_stats(self, now_ns: int) -> None:
        """Compute the link's statistics when due (they cost ~0.5 ms: a few times a second,
        after the tick's work, never inside it) and record them."""
        if now_ns < self._link_stats_due_ns:
            return
        self._link_stats_due_ns = now_ns + self._link_stats_period_ns
        self._link_stats_obj = self.link.stats()
        self.link_stats = self._link_stats_obj.to_dict()
        if self.recorder is not None:
            self.recorder.record("link", now_ns, stats=self.link_stats)

    # -- the loop ------------------------------------------------------------------------------
    def run(
        self, seconds: float | None = None, stop: threading.Event | None = None
    ) -> ConsoleStats:
        """Tick on absolute deadlines for ``seconds`` (None: until ``stop`` is set or the
        display asks to quit), at real-time priority if configured."""
        cfg = self.config
        self.realtime = enter_realtime(cfg.rt_priority, cfg.cpus, who="console loop")
        try:
            return self._run(seconds, stop)
        finally:
            leave_realtime()

    def _run(self, seconds: float | None, stop: threading.Event | None) -> ConsoleStats:
        period = round(1e9 / self.config.rate_hz)
        start = self._clock()
        deadline = start + period
        end = start + int(seconds * 1e9) if seconds is not None else None
        tick_us = self.stats.section_us["tick"]
        display = self.display
        align_every = round(0.5e9 / period) if self.config.arm_wait_target_us > 0 else 0
        gc_every = max(2, round(0.2e9 / period))
        n = 0
        while end is None or deadline <= end:
            n += 1
            if align_every and n % align_every == 0:
                deadline += self._phase_shift_ns(period)
            if n % gc_every == gc_every // 2:  # off the phase of the link statistics
                collect_garbage()
            t0 = time.perf_counter_ns()
            self.tick()
            tick_us.append((time.perf_counter_ns() - t0) / 1e3)
            now = self._clock()
            self._refresh_link_stats(now)
            if display is not None:
                display.publish_telemetry(self._telemetry)
                for key in display.keys():  # noqa: SIM118 (a method, not a dict)
                    self._on_key(key.name, key.down)
                if display.quit_requested:
                    self._event("the display asked to quit", logging.INFO)
                    break
            if stop is not None and stop.is_set():
                break
            if (
                self.task_done_ns is not None
                and self.stop_after_task_s is not None
                and now - self.task_done_ns > self.stop_after_task_s * 1e9
            ):
                break
            self.link.service_until(deadline)
            self.stats.lateness_ns.append(self._clock() - deadline)
            deadline += period
        return self.stats

    def tick(self) -> None:
        link = self.link
        self.stats.ticks += 1
        t0 = time.perf_counter_ns()
        sample = self.device.latest()
        latest = link.latest_state
        arm_setpoint = latest.state.setpoint_cp if latest is not None else None
        # before the first state the link is LOST by definition ("nothing received yet"), but
        # there is nothing to stop: only a loss after contact demands a clutch release
        lost = latest is not None and link.health() == Health.LOST
        if lost != self._lost:
            self._lost = lost
            if lost:
                self._event(
                    "LINK LOST: motion stopped; release and re-engage the clutch after it recovers",
                    logging.ERROR,
                )
                self._need_release = True
            else:
                self._event("link recovered: release and re-engage the clutch to move")
        if lost:
            self.stats.lost_ticks += 1
        if sample is None or sample.pose is None or arm_setpoint is None:
            return
        t1 = time.perf_counter_ns()
        pos = (
            self.filter.step(np.ascontiguousarray(sample.pose[:3]))
            if self.filter is not None
            else np.array(sample.pose[:3], dtype=np.float64)
        )
        t2 = time.perf_counter_ns()
        master = np.concatenate([pos, sample.pose[3:]])
        b = sample.buttons
        self._present = b.operator_present
        user_engaged = b.clutch and b.operator_present
        want = user_engaged and not lost
        if self._need_release:  # after a LOST: the surgeon's own release, not the outage's
            if not user_engaged and not lost:
                self._need_release = False
                self._event("clutch released after the link loss: engage to move again")
            want = False
        # The arm held (its watchdog saw a gap) while we were engaged: re-anchor and give it the
        # release/engage edge it needs; anchoring on its setpoint means no jump.
        st = latest.state
        if (
            want
            and self.scaler.engaged
            and "wait_reengage" in st.safety_flags
            and st.seq > self._reanchor_after_seq
        ):
            self._event("the arm held after a gap in our commands: re-anchoring and re-engaging")
            self._reanchor_after_seq = st.seq + 50  # once per hold, not once per tick
            self._armed = False
        if want and not self._armed:  # the arm moves only after it has seen the clutch out
            want = False
        target = self.scaler.step(master, want, arm_setpoint)
        engaged = want and target is not None
        pose = target if engaged else np.asarray(arm_setpoint, dtype=np.float64)
        cmd = link.send_command(
            pose,
            float(np.clip(sample.jaw, -np.pi, np.pi)),
            clutch_engaged=engaged,
            operator_present=b.operator_present,
        )
        self.stats.commands += 1
        if not engaged:
            self._armed = True
        ff = self.force_feedback
        if ff is not None:
            self.device.send_force(
                ff.step(
                    sample.t_ns,
                    st.measured_cf,
                    st.measured_cp,
                    sample.pose,  # the raw handle, not the filtered one: the guard needs it
                    sample.twist,
                    engaged,
                )
            )
        if engaged:
            self._input_t_by_seq[cmd.seq] = sample.t_ns
            if len(self._input_t_by_seq) > 10_000:  # acks lost: forget the oldest
                for k in list(self._input_t_by_seq)[:5000]:
                    del self._input_t_by_seq[k]
        t3 = time.perf_counter_ns()
        sec = self.stats.section_us
        sec["device"].append((t1 - t0) / 1e3)
        sec["filter"].append((t2 - t1) / 1e3)
        sec["command"].append((t3 - t2) / 1e3)
        if self.recorder is not None:
            self.recorder.record(
                "input",
                sample.t_ns,
                pose=sample.pose.tolist(),
                jaw=sample.jaw,
                clutch=b.clutch,
                present=b.operator_present,
            )
            sec["record"].append((time.perf_counter_ns() - t3) / 1e3)
            self.recorder.record("filtered", cmd.send_ns, pos=pos.tolist())
            self.recorder.record(
                "command",
                cmd.send_ns,
                seq=cmd.seq,
                pose=list(cmd.servo_cp),
                jaw=cmd.servo_jaw,
                clutch=engaged,
                present=b.operator_present,
            )
            sec["record"].append((time.perf_counter_ns() - t3) / 1e3)
