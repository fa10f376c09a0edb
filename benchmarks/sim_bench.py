"""``telesurgery-bench sim``: the simulated arm served at 1 kHz with the camera streaming.

The arm server runs in this process with the PyBullet arm (camera process on); a console in
another process (``python -m benchmarks.sim_bench console``) engages and streams a surgeon-like
tool-tip path (smooth, within the workspace, up to ~8 cm/s), and counts the video frames it
receives. Reported: the physics real-time factor (simulated time / wall time), video fps at the
console, IK tracking error (setpoint vs measured tool tip), server tick lateness.

Checks (BenchmarkError otherwise): the console's commands were applied (the arm moved along the
path), video frames arrived and decode as JPEG of the configured size.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_info, machine_line


class BenchmarkError(RuntimeError):
    """A result that cannot be right."""


def tool_path(t: float) -> tuple[float, ...]:
    """A smooth tool-tip path in the arm frame (m), identity orientation: a 3-D Lissajous."""
    x = 0.03 * math.sin(2 * math.pi * 0.25 * t)
    y = 0.025 * math.sin(2 * math.pi * 0.4 * t + 0.5)
    z = -0.10 + 0.015 * math.sin(2 * math.pi * 0.3 * t)
    return (x, y, z, 0.0, 0.0, 0.0, 1.0)


def console_main(argv: list[str] | None = None) -> int:
    """The console side: engage, stream the path at 1 kHz, count video; JSON on stdout."""
    import simplejpeg

    from network.link import ConsoleLink, LinkConfig

    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--seconds", type=float, required=True)
    args = p.parse_args(argv)
    frames: list[tuple[int, int, int]] = []
    sizes: set[tuple[int, int]] = set()

    def on_video(frame: Any, rx_ns: int) -> None:
        frames.append((frame.seq, frame.capture_ns, rx_ns))
        if len(frames) % 10 == 1:
            img = simplejpeg.decode_jpeg(frame.data)
            sizes.add((img.shape[1], img.shape[0]))

    with ConsoleLink(
        LinkConfig(endpoint=args.endpoint), name="sim-bench", on_video=on_video
    ) as link:
        start = time.monotonic_ns()
        period = 1_000_000
        deadline = start
        applied_path_err = []
        n = 0
        while deadline - start < args.seconds * 1e9:
            t = (deadline - start) / 1e9
            engaged = t > 0.1  # released first, then engage: the arm moves only after an edge
            link.send_command(tool_path(t), 0.3, clutch_engaged=engaged)
            deadline += period
            link.service_until(deadline)
            n += 1
            st = link.latest_state
            if st is not None and engaged and t > 1.0 and n % 50 == 0:
                applied_path_err.append(
                    float(np.linalg.norm(np.subtract(st.state.setpoint_cp[:3], tool_path(t)[:3])))
                )
        stats = link.stats().to_dict()
        last = link.latest_state.state if link.latest_state else None
    t_frames = np.array([f[2] for f in frames], dtype=np.float64) / 1e9
    fps = (len(frames) - 1) / (t_frames[-1] - t_frames[0]) if len(frames) > 2 else 0.0
    out = {
        "commands": n,
        "video_frames": len(frames),
        "video_fps": fps,
        "video_sizes": sorted(sizes),
        "video_latency_ms_p50": float(
            np.median([(f[2] - f[1]) / 1e6 for f in frames]) if frames else float("nan")
        ),
        "setpoint_vs_path_mm_p50": float(np.median(applied_path_err) * 1e3)
        if applied_path_err
        else float("nan"),
        "rtt_ms": stats["rtt_total_ms"],
        "safety_flags_at_end": list(last.safety_flags) if last else [],
    }
    print(json.dumps(out), flush=True)
    return 0


def run(seconds: float = 10.0, json_path: str | Path | None = None) -> dict[str, Any]:
    """Serve the sim arm for ``seconds`` against a streaming console; return the figures."""
    from network.link import ArmLink, LinkConfig, free_tcp_endpoint
    from sim.arm import SimArm
    from slave_arm.server import ArmServer

    info = machine_info()
    print(f"telesurgery-bench sim: {seconds:g} s\nmachine: {machine_line(info)}", flush=True)
    endpoint = free_tcp_endpoint()
    driver = SimArm(camera=True)
    with driver:
        desc = driver.description
        with ArmLink(LinkConfig(endpoint=endpoint), desc) as link:
            server = ArmServer(driver, link, record_ik_error=True)
            console = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.sim_bench",
                    "console",
                    "--endpoint",
                    endpoint,
                    "--seconds",
                    str(seconds),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            stop = threading.Event()

            def watch() -> None:
                console.wait()
                stop.set()

            threading.Thread(target=watch, daemon=True).start()
            server.run(stop, seconds + 15.0)
            out_text = console.stdout.read() if console.stdout else ""
    if console.returncode != 0:
        raise BenchmarkError(f"the console process failed (exit {console.returncode})")
    c = json.loads(out_text.strip().splitlines()[-1])
    s = server.stats
    ik = s.ik_error_m.values()[int(2 * desc.control_rate_hz) :] * 1e3  # after engagement
    result: dict[str, Any] = {
        "benchmark": "sim",
        "seconds": seconds,
        "machine": info,
        "real_time_factor": s.real_time_factor(desc.control_rate_hz),
        "video_fps": c["video_fps"],
        "video_frames": c["video_frames"],
        "camera": {
            "width": desc.camera.width,
            "height": desc.camera.height,
            "rate_hz": desc.camera.rate_hz,
        },
        "video_latency_ms_p50": c["video_latency_ms_p50"],
        "ik_error_mm": {
            "p50": float(np.percentile(ik, 50)),
            "p99": float(np.percentile(ik, 99)),
            "max": float(ik.max()),
        },
        **s.summary(),
        "console": c,
    }
    problems = []
    if c["video_frames"] < 10:
        problems.append(f"only {c['video_frames']} video frames arrived")
    if c["video_sizes"] and c["video_sizes"][0] != [desc.camera.width, desc.camera.height]:
        problems.append(
            f"frames decode to {c['video_sizes']}, "
            f"expected {desc.camera.width}x{desc.camera.height}"
        )
    if not c["setpoint_vs_path_mm_p50"] < 5.0:
        problems.append(
            f"the arm did not follow the console's path ({c['setpoint_vs_path_mm_p50']} mm)"
        )
    if problems:
        raise BenchmarkError("sim benchmark failed its checks: " + "; ".join(problems))
    print(
        f"real-time factor {result['real_time_factor']:.3f}, video {result['video_fps']:.1f} fps, "
        f"IK error p50 {result['ik_error_mm']['p50']:.3f} mm "
        f"p99 {result['ik_error_mm']['p99']:.3f} mm, "
        f"tick lateness p50 {result['server_lateness_us']['p50']:.0f} µs "
        f"p99 {result['server_lateness_us']['p99']:.0f} µs",
        flush=True,
    )
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}", flush=True)
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "console":
        sys.exit(console_main(sys.argv[2:]))
    sys.exit(2)
