"""``master-console``: the surgeon's console.

    master-console --sim                                  # local simulated arm on loopback
    master-console --connect tcp://HOST:PORT --input joystick
    master-console --sim --input synthetic --seconds 30 --json OUT --profile lan

``--sim`` starts ``slave-arm --driver sim`` on a free loopback port and connects to it. Inputs:
``synthetic`` (a seeded surgeon hand with physiological tremor; the default, for headless runs),
``keyboard`` (in the console window), ``glove`` (the data-glove stream, docs/PROTOCOL.md §12),
``replay`` (a recording), ``joystick`` and ``spacemouse``, and any device another package
registers in the entry-point group ``telesurgery.input_devices`` (``--list-inputs``; options
from ``[devices.NAME]`` in the config and ``--input-option KEY=VALUE``). Settings come from
``--config FILE`` (TOML, see ``master_console/config.py``); flags override the file. The display
opens a window where there is a screen and writes PNG snapshots otherwise (``--snapshots DIR``).

    master-console --list-inputs                          # the input devices installed
    master-console check-input NAME [--seconds S] [--input-option K=V ...] [--interactive]
                                    [--json PATH]          # the device conformance check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from master_console.config import (
    ENTRY_POINT_GROUP,
    INPUTS,
    ConfigError,
    ConsoleSettings,
    filter_kind,
    installed_input_devices,
    load_settings,
    make_device,
    parse_input_options,
    resolve_input_class,
    settings_for_input,
    with_input_options,
)
from master_console.console import ConsoleConfig, ConsoleLoop, heartbeat_monitor_config
from master_console.recording import Recorder
from master_console.training import (
    TASK_NAMES,
    TrainingOptions,
    finish_task_session,
    session_path,
)
from network.impairment import ImpairmentProfile, get_profile
from network.link import ConsoleLink, LinkConfig, LinkError, free_tcp_endpoint
from network.realtime import fifo_permitted, lock_memory, realtime_allowed
from network.security import ClientSecurity, KeyFileError

log = logging.getLogger(__name__)

DEFAULT_SNAPSHOTS = "results/console"


def start_local_arm(endpoint: str, *extra: str) -> subprocess.Popen:
    """``slave-arm --driver sim`` on ``endpoint``; returns once it serves (READY)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "slave_arm.cli", "--driver", "sim", "--bind", endpoint, *extra],
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="master-console", description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sim", action="store_true", help="start a local simulated arm (default)")
    where.add_argument("--connect", help="the arm's base endpoint, tcp://HOST:PORT")
    p.add_argument("--config", help="console settings (TOML); flags override it")
    p.add_argument(
        "--input",
        metavar="NAME",
        help=f"input device: {', '.join(INPUTS)} (default synthetic), an installed plug-in "
        "(--list-inputs), or package.module:Class",
    )
    p.add_argument(
        "--input-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an option of the input device (repeatable; VALUE is a TOML value, else a "
        "string): a key of its section for a built-in ([synthetic] seed), a constructor "
        "keyword ([devices.NAME]) for a plug-in",
    )
    p.add_argument(
        "--list-inputs", action="store_true", help="list the installed input devices and exit"
    )
    p.add_argument("--replay", help="--input replay: a console recording (.rec) or .npz")
    p.add_argument("--glove", help="--input glove: the glove's endpoint (tcp://HOST:5580)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--json", dest="json_path", help="write the run summary here")
    p.add_argument("--profile", help="network impairment profile applied at the console")
    p.add_argument(
        "--delay-ms",
        type=float,
        help="add this much round-trip delay (half each way) at the console, on top of "
        "--profile (for latency studies)",
    )
    p.add_argument(
        "--filter",
        help="tremor filter kind, or none (default: 'default' for pose devices, none for rate "
        "devices)",
    )
    p.add_argument("--scale", type=float, help="motion scale (default 0.2 = 5:1)")
    p.add_argument("--seed", type=int, help="synthetic hand seed")
    p.add_argument("--record", help="record the session to this file")
    p.add_argument("--record-video", action="store_true", help="also record the video frames")
    p.add_argument(
        "--display",
        choices=("auto", "window", "headless", "off"),
        help="console display: a window where there is a screen, PNG snapshots otherwise",
    )
    p.add_argument("--snapshots", help="headless display: write PNG snapshots to this folder")
    p.add_argument(
        "--force-feedback", action="store_true", help="render the instrument force on the device"
    )
    p.add_argument(
        "--task",
        choices=TASK_NAMES,
        help="run a training task (with --sim the local arm runs it); ends when the task is "
        "done or its time limit passes, then scores it, keeps the attempt and writes a report",
    )
    p.add_argument("--trainee", help="whose attempt this is (history and report; default $USER)")
    p.add_argument("--report-dir", help="training reports go here (default results/reports)")
    p.add_argument("--history", help="the attempt history (SQLite; default ~/.telesurgery)")
    p.add_argument("--console-key", help="CURVE: this console's NAME.key_secret")
    p.add_argument("--arm-key", help="CURVE: the arm's public NAME.key")
    p.add_argument(
        "--rt-priority",
        type=int,
        help="SCHED_FIFO priority of the 1 kHz loop where permitted (default 30; 0 = off)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def settings_from_args(args: argparse.Namespace) -> ConsoleSettings:
    """The file's settings (or the defaults) with the flags given on top."""
    s = load_settings(args.config)
    console: dict[str, Any] = {}
    if args.filter is not None:
        console["filter"] = args.filter
    if args.scale is not None:
        console["scale"] = args.scale
    if args.rt_priority is not None:
        console["rt_priority"] = args.rt_priority
    if console:
        s = s.replace("console", **console)
    link: dict[str, Any] = {}
    if args.connect:
        link["endpoint"] = args.connect
    if args.profile is not None:
        link["profile"] = args.profile
    if args.console_key:
        link["console_key"] = args.console_key
    if args.arm_key:
        link["arm_public_key"] = args.arm_key
    if link:
        s = s.replace("link", **link)
    if args.input:
        _importable_from_cwd(args.input)
        s = s.replace("input", device=args.input)
    if args.seed is not None:
        s = s.replace("synthetic", seed=args.seed)
    if args.replay:
        s = s.replace("replay", path=args.replay)
    if args.glove:
        s = s.replace("glove", endpoint=args.glove)
    if args.record:
        s = s.replace("record", path=args.record)
    if args.record_video:
        s = s.replace("record", video=True)
    if args.display or args.snapshots:
        d: dict[str, Any] = {}
        if args.display:
            d["mode"] = args.display
        if args.snapshots:
            d["snapshot_dir"] = args.snapshots
        s = s.replace("display", **d)
    if args.force_feedback:
        s = s.replace("force_feedback", enabled=True)
    task: dict[str, Any] = {}
    for key, value in (
        ("name", args.task),
        ("trainee", args.trainee),
        ("report_dir", args.report_dir),
        ("history", args.history),
    ):
        if value:
            task[key] = value
    if task:
        s = s.replace("task", **task)
    s.validate()
    return with_input_options(s, parse_input_options(args.input_option))


def _importable_from_cwd(name: str) -> None:
    """For ``module:Class`` names: let the module be found in the working directory, as
    ``python -m`` would (a console script's sys.path starts at its own folder)."""
    if ":" in name and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def list_inputs() -> str:
    """``--list-inputs``: every input device, its description and ``module:Class`` (or why it
    cannot be loaded)."""
    found = installed_input_devices()
    width = max((len(d.name) for d in found), default=0)
    lines = [f"input devices (built in, and installed in entry-point group {ENTRY_POINT_GROUP}):"]
    for d in found:
        what = d.description if d.error is None else f"CANNOT LOAD: {d.error}"
        tag = " [built in]" if d.builtin else ""
        lines.append(f"  {d.name:<{width}}  {what}  ({d.target}){tag}")
    return "\n".join(lines)


def check_input_main(argv: list[str]) -> int:
    """``master-console check-input NAME``: run the input-device conformance kit on a device;
    0 when every check passes, 1 otherwise, 2 for an unknown device or bad options."""
    from master_console.device_check import (
        format_input_report,
        input_device_factory,
        run_input_conformance,
    )

    p = argparse.ArgumentParser(
        prog="master-console check-input",
        description="Check an input device against the InputDevice contract (rate, "
        "timestamps, seq, pose units and ranges, jaw, button roles, send_force).",
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help="a built-in or installed device (master-console --list-inputs), or "
        "package.module:Class for one not registered yet",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="how long the sample rate is measured (the other stream checks watch half as "
        "long; default 1)",
    )
    p.add_argument(
        "--input-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a device option (repeatable; VALUE is a TOML value, else a string)",
    )
    p.add_argument("--config", help="console settings (TOML): [devices.NAME] or [NAME] options")
    p.add_argument(
        "--interactive",
        action="store_true",
        help="also ask for each declared button role in turn (press and release it)",
    )
    p.add_argument("--json", dest="json_path", help="write the results here")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s check-input %(levelname)s %(name)s: %(message)s",
    )
    if not (args.seconds > 0 and args.seconds <= 600):
        p.error("--seconds must be in (0, 600]")
    name = args.name
    _importable_from_cwd(name)
    try:
        options = parse_input_options(args.input_option)
        if args.config:
            settings = settings_for_input(name, options, base=load_settings(args.config))

            def factory() -> Any:
                return make_device(settings)

        else:
            factory = input_device_factory(name, **options)
        target = resolve_input_class(name)
        factory()  # a bad option fails here, once, rather than in every check
    except LookupError as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except (ConfigError, ValueError, TypeError) as exc:
        where = f"[{name}]" if name in INPUTS else f"[devices.{name}]"
        print(
            f"error: {exc}\n(check-input sets {where} keys with --input-option KEY=VALUE, or "
            "reads them from --config FILE)",
            file=sys.stderr,
        )
        return 2
    label = f"{target.__module__}:{target.__qualname__}"
    print(f"checking input device {name}{'' if label == name else f' ({label})'} ...", flush=True)
    t0 = time.monotonic()
    rows = run_input_conformance(factory, seconds=args.seconds, interactive=args.interactive)
    passed = all(ok for _, ok, _ in rows)
    print(format_input_report(rows, title=f"input device conformance of {name}"), flush=True)
    print(
        f"{'all checks passed' if passed else 'FAILED'} in {time.monotonic() - t0:.1f} s",
        flush=True,
    )
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "device": name,
            "target": label,
            "passed": passed,
            "seconds": args.seconds,
            "interactive": args.interactive,
            "checks": [{"name": n, "passed": ok, "message": m} for n, ok, m in rows],
        }
        path.write_text(json.dumps(doc, indent=2))
        print(f"wrote {path}", flush=True)
    return 0 if passed else 1


def _summary_line(s: dict[str, Any]) -> str:
    def f(x: object, spec: str) -> str:  # "n/a" for a figure with no samples
        return "n/a" if x is None or x != x else format(x, spec)

    return (
        f"ticks {s['ticks']}, loop lateness p50 {f(s['loop_lateness_us']['p50'], '.0f')} µs "
        f"p99.9 {f(s['loop_lateness_us']['p999'], '.0f')} µs; end-to-end p50 "
        f"{f(s['e2e_latency_ms']['p50'], '.2f')} ms p99 {f(s['e2e_latency_ms']['p99'], '.2f')} ms; "
        f"RTT p50 {f(s['rtt_ms']['p50'], '.2f')} ms; applied {s['commands_applied']}; "
        f"video {s['video_fps']:.1f} fps; peak force {s['peak_force_n']:.2f} N"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check-input"]:
        return check_input_main(argv[1:])
    p = _parser()
    args = p.parse_args(argv)
    if args.list_inputs:
        print(list_inputs(), flush=True)
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s master-console %(levelname)s %(name)s: %(message)s",
    )
    if args.seconds is not None and args.seconds <= 0:
        p.error("--seconds must be > 0")
    try:
        settings = settings_from_args(args)
        cs = settings.console
        profile = get_profile(settings.link.profile) if settings.link.profile else None
        if args.delay_ms is not None:
            if not 0 <= args.delay_ms <= 60_000:
                raise ConfigError(f"--delay-ms must be in [0, 60000], got {args.delay_ms:g}")
            base = profile or ImpairmentProfile(name="none")
            profile = dataclasses.replace(
                base,
                name=f"{base.name}+{args.delay_ms:g}ms",
                delay_ms=base.delay_ms + args.delay_ms / 2,
            )
        device = make_device(settings)
        config = ConsoleConfig(
            rate_hz=cs.rate_hz,
            filter_kind=filter_kind(settings, device),
            scale=cs.scale,
            link_stats_hz=cs.link_stats_hz,
            rt_priority=cs.rt_priority or None,
        )
        security = None
        if settings.link.console_key or settings.link.arm_public_key:
            if not (settings.link.console_key and settings.link.arm_public_key):
                raise ConfigError("CURVE needs both --console-key and --arm-key")
            security = ClientSecurity(
                Path(settings.link.console_key), Path(settings.link.arm_public_key)
            )
        if cs.rt_priority and realtime_allowed() and fifo_permitted():
            lock_memory()  # now, not when the loop starts: it takes ~0.1 s of page faults
    except (ConfigError, ValueError, KeyFileError, RuntimeError) as exc:
        p.error(str(exc))

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    arm_proc = None
    endpoint = settings.link.endpoint
    task_name = settings.task.get("name") or None
    if args.sim or not endpoint:  # the embedded default: a local simulated arm on loopback
        endpoint = free_tcp_endpoint()
        extra = ["--task", task_name] if task_name else []
        if profile is not None and profile.delay_ms > 0:
            # The simulated arm must accept commands as old as the emulated distance makes
            # them, or it refuses them all as stale: its limit grows by the one-way delay (a
            # real arm keeps its own configured limit).
            age_ms = 250.0 + profile.delay_ms + 4.0 * profile.jitter_ms
            extra += ["--max-command-age-ms", f"{age_ms:g}"]
            print(f"simulated distance: the local arm refuses commands older than {age_ms:g} ms")
        arm_proc = start_local_arm(endpoint, *extra)
    training = None
    if task_name:
        training = TrainingOptions(
            task=task_name,
            trainee=settings.task.get("trainee") or os.environ.get("USER") or "trainee",
            report_dir=settings.task.get("report_dir") or "results/reports",
            history_path=settings.task.get("history") or None,
            thresholds=settings.task.get(task_name),
            profile=profile.name if profile is not None else "none",
            delay_ms=2 * profile.delay_ms if profile is not None else 0.0,
        )
        if not settings.record.path:  # a task is always recorded: it is scored from the file
            settings = settings.replace("record", path=str(session_path(task_name)))
    rec = settings.record
    recorder = None
    display = None
    summary: dict[str, Any] = {}
    try:  # from here on the local arm is stopped however this ends
        if rec.path:
            Path(rec.path).parent.mkdir(parents=True, exist_ok=True)
            recorder = Recorder(rec.path, metadata={"argv": sys.argv}, record_video=rec.video)
        from master_console.display import DisplayFeed, resolve_mode
        from master_console.haptics import ForceFeedback

        display_config = settings.display_config()
        if resolve_mode(display_config.mode) == "headless" and not display_config.snapshot_dir:
            # no screen: the same view as PNG snapshots, where the user can find them
            display_config = dataclasses.replace(display_config, snapshot_dir=DEFAULT_SNAPSHOTS)
            print(f"no screen: console snapshots go to {DEFAULT_SNAPSHOTS}/latest.png", flush=True)
        display = DisplayFeed(display_config).start()
        link_config = LinkConfig(
            endpoint=endpoint,
            heartbeat_interval_ms=settings.link.heartbeat_interval_ms,
            io_rt_priority=max(1, cs.rt_priority - 1) if cs.rt_priority else None,
        )
        link = ConsoleLink(
            link_config,
            name="master-console",
            impairment=profile,
            security=security,
            monitor_config=heartbeat_monitor_config(link_config),
        )
        # build the loop before the handshake: compiling its kernels (seconds on a cold cache)
        # must not leave a connected console silent long enough to lose control of the arm
        loop = ConsoleLoop(
            device,
            link,
            config,
            recorder,
            force_feedback=ForceFeedback(settings.force_feedback_config(), cs.scale),
            display=display,
        )
        with device, link:
            seconds = args.seconds
            info = link.welcome.arm.task
            if training is not None:
                if info is None or info.name != training.task:
                    got = "no task" if info is None else f"task {info.name!r}"
                    raise LinkError(
                        f"the arm at {endpoint} runs {got}, not {training.task!r}: start it "
                        f"with `slave-arm --driver sim --task {training.task}` or use --sim"
                    )
                loop.stop_after_task_s = 1.0
                if seconds is None:
                    seconds = float(info.values.get("time_limit_s", 300.0)) + 5.0
                print(f"task {info.name}: {info.goal}", flush=True)
            if info is not None and recorder is not None:
                recorder.record("task", time.monotonic_ns(), info=msgspec.to_builtins(info))
            if hasattr(device, "attach"):  # devices that watch the arm (the scripted expert)
                device.attach(link, info)
            how_long = f"{seconds:g} s" if seconds else "until Ctrl-C"
            print(
                f"connected to {link.welcome.arm.name} at {endpoint} with input "
                f"{settings.input.device}; running {how_long}",
                flush=True,
            )
            loop.run(seconds, stop=stop)
            summary = loop.stats.summary(link)
            if loop.realtime is not None:
                summary["realtime"] = loop.realtime.to_dict()
            if link.rejected is not None:
                print(
                    f"warning: the arm refused us ({link.rejected.code}): {link.rejected.reason}",
                    file=sys.stderr,
                )
    except (LinkError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if display is not None:
            display.stop()
        if recorder is not None:
            recorder.close()
        if arm_proc is not None:
            stop_local_arm(arm_proc)
    if training is not None and summary:
        try:
            summary["task"] = finish_task_session(settings.record.path, training)
        except (ValueError, OSError) as exc:
            print(f"error: could not score the task: {exc}", file=sys.stderr)
            return 1
        t = summary["task"]
        print(
            f"task {t['name']}: {'completed' if t['completed'] else 'NOT completed'}, "
            f"score {t['score'].get('overall', float('nan')):.0f}/100, "
            f"{'passed' if t['passed'] else 'not passed'}; report {t['report'][0]}",
            flush=True,
        )
    print(_summary_line(summary), flush=True)
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
