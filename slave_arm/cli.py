"""``slave-arm``: serve an arm driver on the link, list drivers, check a driver.

    slave-arm --driver sim --bind tcp://127.0.0.1:5570 [--gui] [--profile NAME] [--task NAME]
    slave-arm --driver acme --driver-option control_mode='"position"' --driver-config acme.toml
    slave-arm --list-drivers
    slave-arm check-driver NAME [--driver-option KEY=VALUE] [--yes] [--json OUT]

Drivers are found by name in the entry-point group ``telesurgery.arm_drivers`` (or given as
``module:Class``), so another installed package can add its own (``slave_arm/registry.py``).
Ctrl-C (or SIGTERM) stops cleanly: the arm holds, the driver is disabled and disconnected, the
sockets close.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from network.impairment import get_profile
from network.link import DEFAULT_ENDPOINT, ArmLink, LinkConfig
from network.realtime import SERVER_PRIORITY, fifo_permitted, lock_memory, realtime_allowed
from network.security import InsecureBindError, KeyFileError, ServerSecurity
from slave_arm.driver import DriverError
from slave_arm.registry import (
    DriverLookupError,
    installed_drivers,
    load_driver_class,
    load_options,
    make_driver,
)
from slave_arm.safety import SafetyConfig
from slave_arm.server import ArmServer

log = logging.getLogger(__name__)


def sim_task_names() -> tuple[str, ...]:
    """The simulator's training tasks (loads the ``sim`` driver's entry point; empty if none)."""
    try:
        cls = load_driver_class("sim")
    except (LookupError, ImportError):
        return ()
    return tuple(getattr(cls, "task_names", ()))


def _add_driver_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--driver-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a keyword argument for the driver's constructor; VALUE is read as TOML "
        '(3, true, "text", [1, 2]), else as text (repeat for more)',
    )
    p.add_argument(
        "--driver-config",
        metavar="FILE.toml",
        help="driver options from a TOML file (its [driver] table, or the top level)",
    )


def print_drivers(out: Any = None) -> None:
    """``--list-drivers``: name, what it is (its docstring's first line), where, load errors."""
    out = out or sys.stdout
    drivers = installed_drivers()
    if not drivers:
        print("no arm drivers installed", file=out)
    width = max((len(d.name) for d in drivers), default=0)
    for d in drivers:
        if d.error is not None:
            print(f"{d.name:<{width}}  CANNOT LOAD: {d.error}  [{d.target}]", file=out)
        else:
            print(f"{d.name:<{width}}  {d.summary or '(no description)'}  [{d.target}]", file=out)


def check_main(argv: list[str]) -> int:
    """``slave-arm check-driver NAME``: the conformance kit, as a readable report."""
    from slave_arm.conformance import CATEGORIES, CHECKS, check_name, format_report, run_conformance

    names = [check_name(c) for c in CHECKS]
    p = argparse.ArgumentParser(
        prog="slave-arm check-driver",
        description="Run the driver conformance kit (slave_arm/conformance.py) on a driver and "
        "print a pass/fail report. Exit status: 0 all passed, 1 a check failed, 2 usage.",
    )
    p.add_argument("driver", help="an installed driver's name (--list-drivers) or module:Class")
    _add_driver_options(p)
    p.add_argument(
        "--check",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this check (repeat); one of {', '.join(names)}",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="do not ask before moving a real arm (the kit enables it and makes 5 mm moves)",
    )
    p.add_argument("--json", dest="json_path", help="also write the results here")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s check-driver %(levelname)s %(name)s: %(message)s",
    )
    try:
        cls = load_driver_class(args.driver)
        options = load_options(args.driver_config, args.driver_option)
        probe = make_driver(cls, options)
    except (DriverLookupError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if probe.moves_hardware and not args.yes:
        warning = (
            f"driver {args.driver!r} ({cls.__module__}.{cls.__qualname__}) moves a real arm: "
            "the kit will enable it, home it, and move the tool by 5 mm steps inside its "
            "workspace box."
        )
        if not sys.stdin.isatty():
            print(f"error: {warning} Confirm with --yes (stdin is no terminal).", file=sys.stderr)
            return 2
        print(warning + " Clear the workspace and keep the e-stop at hand.")
        if input("Type yes to go on: ").strip().lower() != "yes":
            print("not confirmed: nothing moved")
            return 2
    checks = [c for c in CHECKS if args.check is None or check_name(c) in args.check]

    def progress(i: int, n: int, name: str, ok: bool, message: str) -> None:
        print(f"[{i:2d}/{n}] {name:<20s} {'PASS' if ok else 'FAIL'}", flush=True)

    rows = run_conformance(lambda: make_driver(cls, options), checks, progress)
    print()
    print(format_report(rows, title=f"driver {args.driver!r} conformance"))
    if args.json_path:
        section = {n: s for s, ns in CATEGORIES.items() for n in ns}
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(
            json.dumps(
                {
                    "driver": args.driver,
                    "class": f"{cls.__module__}:{cls.__qualname__}",
                    "options": options,
                    "moves_hardware": probe.moves_hardware,
                    "passed": sum(ok for _, ok, _ in rows),
                    "total": len(rows),
                    "checks": [
                        {"check": n, "section": section.get(n, "other"), "passed": ok, "message": m}
                        for n, ok, m in rows
                    ],
                },
                indent=2,
            )
        )
    return 0 if all(ok for _, ok, _ in rows) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check-driver"]:
        return check_main(argv[1:])
    # the task names are listed in --help only: finding them loads the simulator
    wants_help = any(a == "-h" or (len(a) > 2 and "--help".startswith(a)) for a in argv)
    p = argparse.ArgumentParser(
        prog="slave-arm",
        description=__doc__.split("\n\n")[0],
        epilog="slave-arm check-driver NAME --help: the driver conformance kit",
    )
    p.add_argument(
        "--driver", default="sim", help="driver name (see --list-drivers) or module:Class"
    )
    _add_driver_options(p)
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
        print_drivers()
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
        driver = make_driver(
            args.driver,
            load_options(args.driver_config, args.driver_option),
            if_accepted={"gui": args.gui, "seed": args.seed, "camera": True, "task": args.task},
        )
        if args.rt_priority and realtime_allowed() and fifo_permitted():
            lock_memory()  # before serving: it takes ~0.1 s of page faults
    except (ValueError, LookupError, KeyFileError) as exc:
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
    except DriverError as exc:
        log.error("the driver failed: %s", exc)
        print(f"error: the driver failed: {exc}", file=sys.stderr)
        return 1
    summary = stats.summary()
    if server.realtime is not None:
        summary["realtime"] = server.realtime.to_dict()
    log.info("stopped: %s", json.dumps(summary))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
