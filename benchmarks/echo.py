"""The arm-side echo endpoints the link benchmark runs in a separate process.

``python -m benchmarks.echo link --endpoint E`` serves an :class:`network.link.ArmLink` that
answers every command at once with a full state message acknowledging it.

``python -m benchmarks.echo raw --endpoint E --reply-bytes N`` is the baseline: the same socket
pattern (ROUTER in, PUB out) in plain pyzmq, no msgpack, no validation, no monitor, answering each
request with N bytes that start with the request's first 16 bytes.

Both print ``READY`` on stdout once bound and stop on SIGTERM/SIGINT or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

import zmq

from network.link import (
    ArmLink,
    LinkConfig,
    ReceivedCommand,
    channel_endpoints,
    readable,
    wait_readable,
)
from network.protocol import IDENTITY_POSE, ZERO_WRENCH, ArmDescription, JointState

_stop = False


def _on_signal(signum: int, frame: object) -> None:
    global _stop
    _stop = True


_ECHO_JS = JointState((0.1,) * 7, (0.0,) * 7, (0.0,) * 7)
_ECHO_POSE = (0.01, -0.02, -0.1, *IDENTITY_POSE[3:])


def echo_state(link: ArmLink, rc: ReceivedCommand) -> None:
    """Answer one command with a full state acknowledging it (the target as the setpoint)."""
    link.publish_state(
        operating_state="ENABLED",
        measured_cp=_ECHO_POSE,
        setpoint_cp=rc.command.servo_cp,
        measured_js=_ECHO_JS,
        measured_cf=ZERO_WRENCH,
        measured_jaw=rc.command.servo_jaw,
        ack=rc,
    )


def serve_link(endpoint: str, max_seconds: float, config: LinkConfig | None = None) -> None:
    arm = ArmDescription.example()
    end = time.monotonic_ns() + int(max_seconds * 1e9)

    def echo(rc: ReceivedCommand) -> None:  # every command, as it arrives
        echo_state(link, rc)

    with ArmLink(config or LinkConfig(endpoint=endpoint), arm, on_command=echo) as link:
        print("READY", flush=True)
        while not _stop and time.monotonic_ns() < end:
            link.service_until(time.monotonic_ns() + 50_000_000)


def serve_raw(endpoint: str, reply_bytes: int, max_seconds: float) -> None:
    ch = channel_endpoints(endpoint)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    pub = ctx.socket(zmq.PUB)
    for s in (router, pub):
        s.linger = 0
    router.bind(ch.control)
    pub.bind(ch.state)
    pad = bytes(max(0, reply_bytes - 16))
    print("READY", flush=True)
    end = time.monotonic_ns() + int(max_seconds * 1e9)
    try:
        while not _stop and time.monotonic_ns() < end:
            if not readable(router):
                wait_readable([router], 0.05)
                continue
            _identity, payload = router.recv_multipart(zmq.NOBLOCK)
            pub.send(payload[:16] + pad, zmq.NOBLOCK)
    finally:
        router.close()
        pub.close()
        ctx.term()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.echo", description=__doc__)
    p.add_argument("mode", choices=["link", "raw"])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--reply-bytes", type=int, default=512)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--heartbeat-ms", type=float, default=LinkConfig.heartbeat_interval_ms)
    p.add_argument("--controller-timeout-ms", type=float, default=LinkConfig.controller_timeout_ms)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="echo: %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if args.mode == "link":
        config = LinkConfig(
            endpoint=args.endpoint,
            heartbeat_interval_ms=args.heartbeat_ms,
            controller_timeout_ms=args.controller_timeout_ms,
        )
        serve_link(args.endpoint, args.max_seconds, config)
    else:
        serve_raw(args.endpoint, args.reply_bytes, args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
