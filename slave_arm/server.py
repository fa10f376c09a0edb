"""The arm server: link → safety supervisor → driver, at the control rate, on absolute deadlines.

Each tick (default 1 kHz):

1. wait for the tick's deadline inside the link (``ArmLink.service_until``): commands are taken
   as they arrive, newest wins;
2. take the newest command, read the driver (measured and setpoint pose, wrench);
3. ask the :class:`~slave_arm.safety.SafetySupervisor` what to do (servo, hold, nothing, e-stop),
   and do it through the driver; a driver that refuses a target (``ValueError``) makes the arm
   hold, counted;
4. advance the driver one period (``update()``: the simulator steps its physics);
5. publish the state (measured, applied setpoint, joints, wrench, jaw, operating state, safety
   flags, counters, acknowledgment of the command applied) and any new video frame.

The server never dies of what the link delivers: the link validates and counts bad messages,
the supervisor refuses unsafe ones, and an exception from the driver during a tick puts the arm
in hold and is logged (three in a row stop the server with the driver disabled).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from network.link import ArmLink, RateLimitedLog, ReceivedCommand
from network.protocol import JointState
from network.realtime import RealtimeReport, collect_garbage, enter_realtime, leave_realtime
from network.ring import Ring
from slave_arm.driver import ArmDriver, DriverError
from slave_arm.safety import SafetyConfig, SafetySupervisor

log = logging.getLogger(__name__)

ENABLE_TIMEOUT_S = 2.0
"""How long the server waits for a driver to reach ENABLED after enable() (the kit allows it)."""


@dataclass
class ServerStats:
    """What a run did; ``lateness_us`` holds one sample per tick (how late the tick started)."""

    ticks: int = 0
    started_ns: int = 0
    ended_ns: int = 0
    overruns: int = 0
    commands_applied: int = 0
    holds: int = 0
    driver_errors: int = 0
    video_frames: int = 0
    lateness_us: Ring = field(default_factory=Ring)  # the newest 10 minutes of ticks
    ik_error_m: Ring = field(default_factory=Ring)

    def real_time_factor(self, rate_hz: float) -> float:
        """Simulated (ticked) time over wall time while serving: 1.0 means it kept up."""
        wall = (self.ended_ns - self.started_ns) / 1e9
        return self.ticks / rate_hz / wall if wall > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        lat = self.lateness_us.values()
        return {
            "ticks": self.ticks,
            "overruns": self.overruns,
            "commands_applied": self.commands_applied,
            "holds": self.holds,
            "driver_errors": self.driver_errors,
            "video_frames": self.video_frames,
            "server_lateness_us": {
                "p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
                "p99": float(np.percentile(lat, 99)) if lat.size else float("nan"),
                "max": float(lat.max()) if lat.size else float("nan"),
            },
        }


class ArmServer:
    """Serves one driver on one :class:`~network.link.ArmLink` (both already open)."""

    def __init__(
        self,
        driver: ArmDriver,
        link: ArmLink,
        safety: SafetyConfig | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        record_ik_error: bool = False,
        rt_priority: int | None = None,
        cpus: tuple[int, ...] | None = None,
    ) -> None:
        self.driver = driver
        self.rt_priority = rt_priority
        self.cpus = cpus
        self.realtime: RealtimeReport | None = None
        self.link = link
        desc = driver.description
        self.rate_hz = desc.control_rate_hz
        self.period_ns = round(1e9 / self.rate_hz)
        config = safety or SafetyConfig()
        self.safety = SafetySupervisor(
            SafetyConfig.from_description(desc, **_set(config)), self.rate_hz
        )
        self.stats = ServerStats()
        self._clock = clock_ns
        self._applied: ReceivedCommand | None = None
        self._last_frame_seq = -1
        self._consecutive_errors = 0
        self._controller_epoch = 0  # the link's count of controller hellos, last seen
        self._refused_log = RateLimitedLog(log)  # a refused target repeats every tick
        self._record_ik = record_ik_error and hasattr(driver, "ik_error_m")
        self._counter_keys: dict[str, str] = {}  # safety flag -> state counter name, built once

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, seconds: float | None = None) -> ServerStats:
        """Serve until ``stop`` is set or ``seconds`` pass. The driver is enabled on entry.

        With ``rt_priority`` set, the calling thread asks for SCHED_FIFO while it serves (see
        :mod:`network.realtime`; skipped with a warning where not permitted).
        """
        stop = stop or threading.Event()
        self.realtime = enter_realtime(self.rt_priority, self.cpus, who="arm server")
        try:
            return self._serve(stop, seconds)
        finally:
            if self.realtime.policy == "fifo" or self.realtime.gc_frozen:
                leave_realtime()

    def _serve(self, stop: threading.Event, seconds: float | None) -> ServerStats:
        self._enable()
        start = self._clock()
        end = start + int(seconds * 1e9) if seconds is not None else None
        deadline = start + self.period_ns
        self.stats.started_ns = start
        log.info("arm server running at %.0f Hz", self.rate_hz)
        gc_every = max(2, round(0.2 * self.rate_hz))
        while not stop.is_set():
            self.link.service_until(deadline)
            now = self._clock()
            late = now - deadline
            self.stats.lateness_us.append(late / 1e3)
            if late > 10 * self.period_ns:  # fell far behind (a stall): re-anchor, count it
                self.stats.overruns += 1
                deadline = now
            self.tick(now)
            deadline += self.period_ns
            if self.stats.ticks % gc_every == 0:  # young garbage, in the tick's slack
                collect_garbage()
            if end is not None and now >= end:
                break
        self.stats.ended_ns = deadline - self.period_ns  # the last tick's own deadline
        return self.stats

    def _enable(self) -> None:
        """enable() the driver and tick update() at the control rate until it is ENABLED (a
        real arm may take a few cycles to power its drives), at most ``ENABLE_TIMEOUT_S``."""
        d = self.driver
        if d.operating_state.value == "ENABLED":
            return
        d.enable()
        next_ns = time.monotonic_ns()
        for _ in range(math.ceil(ENABLE_TIMEOUT_S * self.rate_hz)):  # 2 s of ticks
            if d.operating_state.value == "ENABLED":
                return
            next_ns += self.period_ns
            time.sleep(max(0.0, (next_ns - time.monotonic_ns()) / 1e9))
            d.update()
        if d.operating_state.value != "ENABLED":
            raise DriverError(
                f"enable() did not bring the arm to ENABLED within {ENABLE_TIMEOUT_S:g} s "
                f"(operating_state is {d.operating_state.value})"
            )

    def tick(self, now_ns: int) -> None:
        """One control period (see the module docstring)."""
        d = self.driver
        self.stats.ticks += 1
        rc = self.link.take_command()
        if self.link.controller_epoch != self._controller_epoch:
            self._controller_epoch = self.link.controller_epoch
            self.safety.new_controller()
            self._applied = None  # acks name the new controller's commands only
        try:
            measured = d.measured_cp()
            setpoint = d.setpoint_cp()
            wrench = d.measured_cf()
            age = self.link.command_age_ns(rc, now_ns) if rc is not None else None
            decision = self.safety.supervise(
                now_ns, rc, age, measured.pose, setpoint.pose, wrench.wrench
            )
            action = decision.action
            if action == "servo":
                try:
                    d.servo_cp(decision.pose)
                    if decision.jaw is not None:
                        d.servo_jaw(decision.jaw)
                    self._applied = rc
                    self.stats.commands_applied += 1
                except ValueError as exc:  # the driver's own limits refused it: hold
                    self._refused_log.warning(now_ns, "driver refused the target: %s; holding", exc)
                    d.hold()
                    self.stats.holds += 1
            elif action in ("hold", "estop"):
                d.hold()
                self.stats.holds += 1
            d.update()
            if self._record_ik:
                self.stats.ik_error_m.append(d.ik_error_m())  # type: ignore[attr-defined]
            self._publish(decision.flags)
            self._consecutive_errors = 0
        except DriverError as exc:
            self._driver_failed(exc)
        except Exception as exc:  # the server must not die of one bad tick
            self._driver_failed(exc)

    def _driver_failed(self, exc: BaseException) -> None:
        self.stats.driver_errors += 1
        self._consecutive_errors += 1
        log.error("tick failed (%s: %s); holding", type(exc).__name__, exc)
        try:
            self.driver.hold()
        except Exception:
            log.exception("hold() failed too")
        if self._consecutive_errors >= 3:
            self.driver.disable()
            raise DriverError(f"the driver failed 3 ticks in a row, last: {exc}") from exc

    # -- publishing ------------------------------------------------------------------------------
    def _counter_key(self, flag: str) -> str:
        key = self._counter_keys[flag] = f"safety_{flag}"
        return key

    def _publish(self, flags: tuple[str, ...]) -> None:
        d = self.driver
        js = d.measured_js()
        jaw = d.measured_jaw()
        keys = self._counter_keys
        counters = {keys.get(k) or self._counter_key(k): v for k, v in self.safety.counters.items()}
        counters["driver_errors"] = self.stats.driver_errors
        counters.update(d.task_counters())
        self.link.publish_state(
            operating_state=d.operating_state.value,
            is_homed=d.is_homed,
            is_busy=d.is_busy,
            measured_cp=tuple(d.measured_cp().pose.tolist()),  # type: ignore[arg-type]
            setpoint_cp=tuple(d.setpoint_cp().pose.tolist()),  # type: ignore[arg-type]
            measured_js=JointState(
                tuple(js.position.tolist()), tuple(js.velocity.tolist()), tuple(js.effort.tolist())
            ),
            measured_cf=tuple(d.measured_cf().wrench.tolist()),  # type: ignore[arg-type]
            measured_jaw=float(jaw.angle_rad),
            safety_flags=flags,
            counters=counters,
            ack=self._applied,
        )
        latest = getattr(d, "latest_frame", None)
        if latest is not None:
            frame = latest()
            if frame is not None and frame.seq != self._last_frame_seq:
                self._last_frame_seq = frame.seq
                self.link.publish_video(frame.data, frame.width, frame.height, frame.capture_ns)
                self.stats.video_frames += 1


def _set(config: SafetyConfig) -> dict[str, Any]:
    """The fields of ``config`` that are set (not None), to override the description's."""
    from dataclasses import fields

    return {
        f.name: getattr(config, f.name)
        for f in fields(config)
        if getattr(config, f.name) is not None
    }
