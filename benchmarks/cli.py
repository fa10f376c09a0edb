"""``telesurgery-bench``: the project's benchmarks from the command line."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="telesurgery-bench",
        description="Benchmarks that assert their results are right, print the machine they ran "
        "on and write JSON + PNG.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="bench", required=True)

    p = sub.add_parser(
        "link",
        help="link round trip at 1 kHz vs raw pyzmq, under an impairment profile",
        description="Runs a console endpoint against an arm-side echo endpoint in another "
        "process, after a raw pyzmq ping-pong baseline with the same pacing and message sizes.",
    )
    p.add_argument("--profile", default="lan", help="impairment profile name or TOML file")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    p.add_argument("--rate-hz", type=float, default=1000.0, help="command rate")
    p.add_argument("--seed", type=int, default=0, help="impairment seed")
    p.add_argument("--json", dest="json_path", help="write the result here (and a .png beside)")
    p.add_argument("--list-profiles", action="store_true", help="list profiles and exit")

    t = sub.add_parser(
        "tremor",
        help="every tremor filter on seeded synthetic surgeon motion (reduction, lag, cost)",
        description="Scores every tremor filter on braced/typical/unbraced synthetic motion, "
        "checks the linear ones against scipy, times step and process, writes JSON + markdown "
        "+ PNGs.",
    )
    t.add_argument("--seconds", type=float, default=30.0, help="length of each recording")
    t.add_argument("--seeds", type=int, default=3, help="recordings per amplitude class")
    t.add_argument("--rate-hz", type=float, default=1000.0)
    t.add_argument("--json", dest="json_path", help="write the result here (+ .md and PNGs)")

    sm = sub.add_parser(
        "sim",
        help="the PyBullet arm served at 1 kHz with the camera on, driven by a console process",
        description="Real-time factor, video fps, IK tracking error and server tick lateness "
        "of the simulated arm, with a console streaming a surgeon-like path.",
    )
    sm.add_argument("--seconds", type=float, default=10.0)
    sm.add_argument("--json", dest="json_path", help="write the result here")

    from benchmarks.sweep import add_sweep_arguments

    add_sweep_arguments(sub)

    e = sub.add_parser(
        "e2e",
        help="the end-to-end latency budget per stage of the real console, link and sim arm",
        description="Runs master-console --sim (console, arm server and camera in their own "
        "processes) per profile with recording on, then splits every acknowledged command's "
        "latency into input -> send, network up, arm, network down (and video capture -> "
        "console), with link, safety and tool-tracking figures. Writes JSON + markdown + PNGs.",
    )
    e.add_argument(
        "--profile",
        action="append",
        dest="profiles",
        help="impairment profile (repeat for several; default: lan, 5g-clinical, lindbergh)",
    )
    e.add_argument("--seconds", type=float, default=20.0, help="console run length per profile")
    e.add_argument(
        "--json", dest="json_path", help="write the result here (default OUT_DIR/e2e.json)"
    )
    e.add_argument(
        "--out-dir", default="results", help="recordings, logs, PNGs and markdown go here"
    )
    e.add_argument(
        "--no-video", action="store_true", help="do not record video (no video latency figures)"
    )

    lp = sub.add_parser(
        "loop",
        help="1 kHz loop lateness: hybrid wait vs sleep, with/without SCHED_FIFO and load",
        description="A minimal 1 kHz loop in its own process per configuration (hybrid "
        "select+spin wait, relative sleep, absolute sleep; normal scheduler or SCHED_FIFO; the "
        "machine as is or with a busy process), then the real console and arm loops from a "
        "short master-console --sim run. Writes JSON + markdown + PNG.",
    )
    lp.add_argument("--seconds", type=float, default=5.0, help="seconds per configuration")
    lp.add_argument(
        "--real-seconds",
        type=float,
        default=10.0,
        help="length of the master-console --sim run for the real loops (0: skip it)",
    )
    lp.add_argument(
        "--json", dest="json_path", help="write the result here (default OUT_DIR/loop.json)"
    )
    lp.add_argument("--out-dir", default="results", help="markdown and PNG go here by default")

    from benchmarks.all_bench import add_arguments as add_all_arguments

    add_all_arguments(sub)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.bench == "sweep":
        from benchmarks import sweep

        return sweep.main(args, parser)
    if args.bench == "all":
        from benchmarks import all_bench

        try:
            return all_bench.run(args, main)
        except all_bench.BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.bench == "tremor":
        from benchmarks import tremor_bench

        if args.seconds < 5 or args.seeds < 1:
            parser.error("--seconds must be >= 5 (2 s settle) and --seeds >= 1")
        try:
            tremor_bench.run(args.seconds, args.seeds, args.rate_hz, args.json_path)
        except tremor_bench.BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.bench == "sim":
        from benchmarks import sim_bench

        try:
            sim_bench.run(args.seconds, args.json_path)
        except sim_bench.BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.bench == "e2e":
        from benchmarks import e2e_bench
        from network.impairment import get_profile

        profiles = args.profiles or ["lan", "5g-clinical", "lindbergh"]
        for name in profiles:
            try:
                get_profile(name)
            except ValueError as exc:
                parser.error(str(exc))
        if args.seconds < 2:
            parser.error("--seconds must be >= 2 (the link needs ~1 s to start measuring)")
        try:
            e2e_bench.run(
                profiles,
                args.seconds,
                args.json_path,
                args.out_dir,
                record_video=not args.no_video,
            )
        except e2e_bench.BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.bench == "loop":
        from benchmarks import loop_bench

        if args.seconds <= 0 or args.real_seconds < 0:
            parser.error("--seconds must be > 0 and --real-seconds >= 0")
        try:
            loop_bench.run(
                args.seconds,
                args.json_path,
                args.out_dir,
                real_seconds=args.real_seconds or None,
            )
        except loop_bench.BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.bench == "link":
        from benchmarks import link_bench
        from network.impairment import builtin_profiles, get_profile

        if args.list_profiles:
            for name, prof in builtin_profiles().items():
                print(f"{name:14s} RTT {prof.rtt_ms:6.1f} ms  {prof.description}")
            return 0
        try:
            get_profile(args.profile)
        except ValueError as exc:
            parser.error(str(exc))
        if args.seconds <= 0 or args.rate_hz <= 0:
            parser.error("--seconds and --rate-hz must be > 0")
        try:
            link_bench.run(args.profile, args.seconds, args.rate_hz, args.seed, args.json_path)
        except link_bench.BenchmarkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
