"""``master-console``: the surgeon's console.

    master-console --sim [--seconds S --json OUT]       # local simulated arm on loopback
    master-console --connect tcp://HOST:PORT --input synthetic

``--sim`` starts ``slave-arm --driver sim`` on a free loopback port and connects to it. For now
the input is the synthetic surgeon hand (``--input synthetic``): a seeded hand with reaches and
physiological tremor; joystick, SpaceMouse, glove, keyboard and replay inputs come next.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

from master_console.console import ConsoleConfig, ConsoleLoop, heartbeat_monitor_config
from master_console.recording import Recorder
from master_console.synthetic import SyntheticHand
from network.impairment import get_profile
from network.link import ConsoleLink, LinkConfig, LinkError, free_tcp_endpoint
from network.realtime import CONSOLE_PRIORITY

log = logging.getLogger(__name__)


def start_local_arm(endpoint: str) -> subprocess.Popen:
    """``slave-arm --driver sim`` on ``endpoint``; returns once it serves (READY)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "slave_arm.cli", "--driver", "sim", "--bind", endpoint],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY"):
        proc.kill()
        raise LinkError(f"the local arm (slave-arm --driver sim) did not start: {line!r}")
    return proc


def stop_local_arm(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="master-console", description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sim", action="store_true", help="start a local simulated arm")
    where.add_argument("--connect", help="the arm's base endpoint, tcp://HOST:PORT")
    p.add_argument("--input", default="synthetic", choices=["synthetic"], help="input device")
    p.add_argument("--seconds", type=float, default=10.0, help="run this long")
    p.add_argument("--json", dest="json_path", help="write the run summary here")
    p.add_argument("--profile", help="network impairment profile applied at the console")
    p.add_argument("--filter", default="default", help="tremor filter kind")
    p.add_argument("--scale", type=float, default=0.2, help="motion scale (0.2 = 5:1)")
    p.add_argument("--seed", type=int, default=0, help="synthetic hand seed")
    p.add_argument("--record", help="record the session to this file")
    p.add_argument(
        "--rt-priority",
        type=int,
        default=CONSOLE_PRIORITY,
        help="SCHED_FIFO priority of the 1 kHz loop where permitted (0 = normal scheduling)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s master-console %(levelname)s %(name)s: %(message)s",
    )
    if args.seconds <= 0:
        p.error("--seconds must be > 0")
    try:
        profile = get_profile(args.profile) if args.profile else None
        config = ConsoleConfig(
            filter_kind=args.filter, scale=args.scale, rt_priority=args.rt_priority or None
        )
    except ValueError as exc:
        p.error(str(exc))
    arm_proc = None
    endpoint = args.connect
    if not endpoint:  # the embedded default: a local simulated arm
        endpoint = free_tcp_endpoint()
        arm_proc = start_local_arm(endpoint)
    recorder = Recorder(args.record, metadata={"argv": sys.argv}) if args.record else None
    try:
        hand = SyntheticHand(seed=args.seed)
        link_config = LinkConfig(endpoint=endpoint)
        link = ConsoleLink(
            link_config,
            name="master-console",
            impairment=profile,
            monitor_config=heartbeat_monitor_config(link_config),
        )
        # build the loop before the handshake: compiling its kernels (seconds on a cold cache)
        # must not leave a connected console silent long enough to lose control of the arm
        loop = ConsoleLoop(hand, link, config, recorder)
        with hand, link:
            print(
                f"connected to {link.welcome.arm.name} at {endpoint}; running {args.seconds:g} s",
                flush=True,
            )
            loop.run(args.seconds)
            summary = loop.stats.summary(link)
            if loop.realtime is not None:
                summary["realtime"] = loop.realtime.to_dict()
            if link.rejected is not None:
                print(
                    f"warning: the arm refused us ({link.rejected.code}): {link.rejected.reason}",
                    file=sys.stderr,
                )
    except LinkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if recorder is not None:
            recorder.close()
        if arm_proc is not None:
            stop_local_arm(arm_proc)
    s = summary

    def f(x: object, spec: str) -> str:  # "n/a" for a figure with no samples
        return "n/a" if x is None or x != x else format(x, spec)

    print(
        f"ticks {s['ticks']}, loop lateness p50 {f(s['loop_lateness_us']['p50'], '.0f')} µs "
        f"p99.9 {f(s['loop_lateness_us']['p999'], '.0f')} µs; end-to-end p50 "
        f"{f(s['e2e_latency_ms']['p50'], '.2f')} ms p99 {f(s['e2e_latency_ms']['p99'], '.2f')} ms; "
        f"RTT p50 {f(s['rtt_ms']['p50'], '.2f')} ms; applied {s['commands_applied']}; "
        f"video {s['video_fps']:.1f} fps; peak force {s['peak_force_n']:.2f} N",
        flush=True,
    )
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
