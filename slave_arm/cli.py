"""``slave-arm``: serve an arm driver on the link.

    slave-arm --driver sim --bind tcp://127.0.0.1:5570 [--gui] [--profile NAME] [--task NAME]
    slave-arm --list-drivers

Drivers are found by name in the entry-point group ``telesurgery.arm_drivers``, so another
installed package can add its own. Ctrl-C (or SIGTERM) stops cleanly: the arm holds, the driver
is disabled and disconnected, the sockets close.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import signal
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from network.impairment import get_profile
from network.link import DEFAULT_ENDPOINT, ArmLink, LinkConfig
from network.realtime import SERVER_PRIORITY, fifo_permitted, lock_memory, realtime_allowed
from network.security import InsecureBindError, KeyFileError, ServerSecurity
from slave_arm.driver import ArmDriver
from slave_arm.safety import SafetyConfig
from slave_arm.server import ArmServer

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "telesurgery.arm_drivers"


def available_drivers() -> dict[str, Any]:
    """Installed driver entry points by name (not imported yet)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_driver_class(name: str) -> type[ArmDriver]:
    """The driver class registered as ``name``; ValueError listing the names otherwise."""
    eps = available_drivers()
    if name not in eps:
        raise ValueError(
            f"no arm driver named {name!r}; installed: {', '.join(sorted(eps)) or 'none'} "
            f"(drivers register in the entry-point group {ENTRY_POINT_GROUP!r})"
        )
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, ArmDriver)):
        raise ValueError(f"entry point {name!r} does not name an ArmDriver subclass: {cls!r}")
    return cls


def make_driver(name: str, **options: Any) -> ArmDriver:
    """Instantiate driver ``name``, passing only the options its constructor accepts."""
    cls = load_driver_class(name)
    accepted = inspect.signature(cls).parameters
    return cls(**{k: v for k, v in options.items() if k in accepted and v is not None})


def sim_task_names() -> tuple[str, ...]:
    """The simulator's training tasks (loads the ``sim`` driver's entry point; empty if none)."""
    try:
        cls = load_driver_class("sim")
    except (ValueError, ImportError):
        return ()
    return tuple(getattr(cls, "task_names", ()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the task names are listed in --help only: finding them loads the simulator
    wants_help = any(a == "-h" or (len(a) > 2 and "--help".startswith(a)) for a in argv)
    p = argparse.ArgumentParser(prog="slave-arm", description=__doc__.split("\n\n")[0])
    p.add_argument("--driver", default="sim", help="driver name (see --list-drivers)")
    p.add_argument("--bind", default=DEFAULT_ENDPOINT, help="base endpoint (PORT..PORT+2)")
    p.add_argument("--gui", action="store_true", help="show the simulator's window")
    p.add_argument("--seed", type=int, default=None, help="scene seed (simulator)")
    p.add_argument("--profile", help="network impairment profile applied at the arm")
    p.add_argument(
        "--task",
        metavar="NAME",
        help="run a training task on the simulated arm (--driver sim only): "
        + ((", ".join(sim_task_names()) or "none installed") if wants_help else "see --help"),
    )
    p.add_argument("--seconds", type=float, help="stop after this long")
    p.add_argument("--watchdog-ms", type=float, default=SafetyConfig.watchdog_ms)
    p.add_argument(
        "--max-command-age-ms",
        type=float,
        default=SafetyConfig.max_command_age_ms,
        help="refuse commands older than this (stale-command rejection; raise it only to "
        "drive the simulator over an emulated long-distance link)",
    )
    p.add_argument(
        "--controller-timeout-ms",
        type=float,
        default=LinkConfig.controller_timeout_ms,
        help="a silent console loses control after this long (another may then connect)",
    )
    p.add_argument("--server-key", help="the arm's CURVE secret key file (NAME.key_secret)")
    p.add_argument("--allowed-clients", help="directory of allowed console public keys")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without keys")
    p.add_argument("--json", dest="json_path", help="write a run summary here at exit")
    p.add_argument(
        "--rt-priority",
        type=int,
        default=SERVER_PRIORITY,
        help="SCHED_FIFO priority of the 1 kHz loop where permitted (0 = normal scheduling; "
        "TELESURGERY_RT=0 also turns it off)",
    )
    p.add_argument("--cpu", type=int, action="append", help="pin the loop to this CPU (repeat)")
    p.add_argument("--list-drivers", action="store_true", help="list installed drivers and exit")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s slave-arm %(levelname)s %(name)s: %(message)s",
    )
    if args.list_drivers:
        for name, ep in sorted(available_drivers().items()):
            print(f"{name:12s} {ep.value}")
        return 0
    try:
        security = None
        if args.server_key or args.allowed_clients:
            if not (args.server_key and args.allowed_clients):
                p.error("--server-key and --allowed-clients go together")
            security = ServerSecurity(Path(args.server_key), Path(args.allowed_clients))
        profile = get_profile(args.profile) if args.profile else None
        if args.task is not None and args.driver != "sim":
            p.error("--task needs --driver sim")
        driver = make_driver(args.driver, gui=args.gui, seed=args.seed, camera=True, task=args.task)
        if args.rt_priority and realtime_allowed() and fifo_permitted():
            lock_memory()  # before serving: it takes ~0.1 s of page faults
    except (ValueError, KeyFileError) as exc:
        p.error(str(exc))

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        with driver:
            link = ArmLink(
                LinkConfig(
                    endpoint=args.bind,
                    controller_timeout_ms=args.controller_timeout_ms,
                    io_rt_priority=max(1, args.rt_priority - 1) if args.rt_priority else None,
                ),
                driver.description,
                security=security,
                insecure=args.insecure,
                impairment=profile,
            )
            with link:
                print(f"READY {args.bind}", flush=True)  # for scripts and tests
                server = ArmServer(
                    driver,
                    link,
                    SafetyConfig(
                        watchdog_ms=args.watchdog_ms, max_command_age_ms=args.max_command_age_ms
                    ),
                    rt_priority=args.rt_priority or None,
                    cpus=tuple(args.cpu) if args.cpu else None,
                )
                stats = server.run(stop, args.seconds)
                driver.hold()
                driver.disable()
    except InsecureBindError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = stats.summary()
    if server.realtime is not None:
        summary["realtime"] = server.realtime.to_dict()
    log.info("stopped: %s", json.dumps(summary))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
