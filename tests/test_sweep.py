"""`telesurgery-bench sweep`: grid expansion and ids, tables and plots from cell files (fast);
real 2-cell sweeps of master-console (slow): resume, retry, --force, and Dask vs the local pool."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import sweep
from benchmarks.sweep import BASE_COLUMNS, Cell, Grid, SweepError, run_sweep


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="bench", required=True)
    sweep.add_sweep_arguments(sub)
    return p.parse_args(["sweep", *argv])


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        rows = list(r)
        return list(r.fieldnames or []), rows


# ------------------------------------------------------------------------------------------
# fast: the grid


def test_grid_expands_in_a_fixed_order_with_stable_ids() -> None:
    g = Grid(profiles=("lan", "5g-clinical"), delays_ms=(0, 200), seeds=(0, 1, 2)).validate()
    cells = g.cells()
    assert len(cells) == 12
    assert [(c.profile, c.delay_ms, c.seed) for c in cells[:4]] == [
        ("lan", 0.0, 0),
        ("lan", 0.0, 1),
        ("lan", 0.0, 2),
        ("lan", 200.0, 0),
    ]  # seeds vary fastest
    ids = [c.id for c in cells]
    assert len(set(ids)) == 12 and all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    # the same grid, built again or from other number types, gives the same ids
    again = Grid(profiles=["lan", "5g-clinical"], delays_ms=[0.0, 200.0], seeds=[0, 1, 2])
    assert [c.id for c in again.cells()] == ids
    assert (
        Cell(profile="lan", delay_ms=200, seconds=10).id
        == Cell(profile="lan", delay_ms=200.0, seconds=10.0).id
    )
    # pinned: ids name files on disk, so changing how they are computed breaks resuming
    assert Cell(profile="lan", seconds=2.0).id == "09266ea7b75b"
    # duplicates on an axis are one cell
    assert len(Grid(profiles=("lan", "lan"), seeds=(1, 1)).cells()) == 1
    assert g.varying() == ["profile", "delay_ms", "seed"]


def test_omitted_axes_take_the_console_defaults_and_tasks_use_the_expert(tmp_path) -> None:
    (cell,) = Grid().cells()
    assert cell.params() == {
        "task": None,
        "profile": None,
        "delay_ms": None,
        "filter": None,
        "scale": None,
        "seed": None,
        "seconds": sweep.DEFAULT_SECONDS,
    }
    argv = cell.argv(tmp_path / "s.json", tmp_path)
    assert argv == [
        "--sim",
        "--display",
        "off",
        "--json",
        str(tmp_path / "s.json"),
        "--seconds",
        "10.0",
    ]
    plain, task = Grid(tasks=("none", "reach"), filters=("kalman",), scales=(0.25,)).cells()
    assert plain.task is None and plain.seconds == sweep.DEFAULT_SECONDS and plain.input is None
    assert task.task == "reach" and task.seconds is None and task.input == "expert"
    a = task.argv("out.json", tmp_path / "sweep")
    assert "--seconds" not in a  # the task's own time limit
    for flag, value in (
        ("--task", "reach"),
        ("--input", "expert"),
        ("--filter", "kalman"),
        ("--scale", "0.25"),
        ("--history", str(tmp_path / "sweep" / "history.sqlite")),
        ("--report-dir", str(tmp_path / "sweep" / "reports")),
        ("--record", str(tmp_path / "sweep" / "sessions" / f"{task.id}.rec")),
    ):
        assert a[a.index(flag) + 1] == value
    # a cap applies to task cells too
    assert all(c.seconds == 30.0 for c in Grid(tasks=("reach", None), seconds=30).cells())


def test_grid_file_and_command_line(tmp_path) -> None:
    f = tmp_path / "grid.toml"
    f.write_text(
        '[grid]\nseconds = 3\nprofiles = ["lan", "wifi"]\ndelays_ms = [0, 400]\nseeds = 3\n'
        'filters = ["none", "default"]\n'
    )
    g = sweep.grid_from_args(_args("--grid", str(f)))
    assert g.profiles == ("lan", "wifi") and g.seeds == (0, 1, 2) and g.seconds == 3.0
    assert g.filters == ("none", "default") and len(g.cells()) == 24
    # flags replace the file's axis; both --profile A --profile B and --profile A B work
    g = sweep.grid_from_args(
        _args(
            "--grid",
            str(f),
            "--profile",
            "satellite",
            "--profile",
            "bursty",
            "congested",
            "--seed",
            "7",
            "--delay-ms",
            "100",
        )
    )
    assert g.profiles == ("satellite", "bursty", "congested") and g.seeds == (7,)
    assert g.delays_ms == (100.0,) and g.filters == ("none", "default")
    assert sweep.grid_from_args(_args("--seeds", "2")).seeds == (0, 1)
    with pytest.raises(SystemExit):  # --seed and --seeds together
        _args("--seed", "1", "--seeds", "2")
    bad = tmp_path / "bad.toml"
    bad.write_text("profile = ['lan']\n")
    with pytest.raises(SweepError, match="unknown key"):
        sweep.grid_from_args(_args("--grid", str(bad)))
    for argv, match in (
        (("--profile", "moon"), "moon"),
        (("--task", "suturing"), "unknown task"),
        (("--filter", "magic"), "unknown filter"),
        (("--delay-ms", "70000"), r"\[0, 60000\]"),
        (("--scale", "0"), "scale"),
        (("--seconds", "-1"), "seconds"),
    ):
        with pytest.raises(SweepError, match=match):
            sweep.grid_from_args(_args(*argv))


def test_cli_dry_run_lists_cells(capsys) -> None:
    from benchmarks.cli import main

    assert main(["sweep", "--dry-run", "--profile", "lan", "5g-clinical", "--seeds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].split()[1:3] == ["profile=lan", "seed=0"]
    assert main(["sweep", "--dry-run", "--task", "nope"]) == 2
    assert "unknown task" in capsys.readouterr().err


def test_missing_dask_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(SweepError, match=r"pip install 'telesurgery\[dask\]'"):
        sweep._dask_client("tcp://127.0.0.1:1")


def test_error_line_prefers_the_error_over_later_log_lines() -> None:
    out = (
        "connected\nerror: the arm at tcp://x runs no task, not 'reach'\n"
        "2026 slave-arm INFO __main__: stopped: {}\n"
    )
    assert sweep._error_line(out) == "error: the arm at tcp://x runs no task, not 'reach'"
    assert sweep._error_line("a\nb\n") == "b"
    assert sweep._error_line("") == "no output"


# ------------------------------------------------------------------------------------------
# fast: the table, markdown and plots from cell files (no console runs)


def _fake_result(cell: Cell, i: int) -> dict[str, Any]:
    d = 0.0 if cell.delay_ms is None else cell.delay_ms
    summary: dict[str, Any] = {
        "ticks": 5000,
        "commands": 5000,
        "loop_lateness_us": {"p50": 3.0, "p99": 50.0, "p999": 200.0 + i},
        "e2e_latency_ms": {"p50": 1.0 + d, "p99": 2.0 + d},
        "rtt_ms": {"p50": 0.5 + d, "p99": 1.0 + d},
        "commands_applied": 4900,
        "video_fps": 30.0,
        "peak_force_n": 0.5,
        "health_events": [
            {"t_ns": 1, "health": "LOST", "reasons": ["x"]},
            {"t_ns": 2, "health": "OK", "reasons": []},
        ],
        "lost_ticks": 1,
    }
    if cell.task:
        summary["task"] = {
            "name": cell.task,
            "completed": d < 500,
            "passed": d < 200,
            "score": {  # the shape of master_console.scoring.Score.to_dict()
                "task": cell.task,
                "completed": d < 500,
                "passed": d < 200,
                "overall": 90.0 - d / 10 + cell.seed,
                "metrics": {
                    "completed": d < 500,
                    "completion_time_s": 10.0 + d / 100,
                    "path_length_m": 0.3,
                    "instrument_collisions": 0,
                    "rtt_p50_ms": None,
                },
                "checks": [
                    {
                        "name": "max_time_s",
                        "metric": "completion_time_s",
                        "value": 10.0,
                        "limit": 60.0,
                        "op": "<=",
                        "passed": True,
                    },
                ],
                "penalties": {"time": 2.5},
                "thresholds": {"max_time_s": 60.0},
                "notes": ["slow start", "one collision"],
                "extra": {"a": [1, 2]},
            },
        }
    meta = {
        "id": cell.id,
        "params": cell.params(),
        "status": "ok",
        "error": "",
        "wall_s": 12.5,
        "host": "fake",
    }
    return {**summary, "sweep": meta}


def test_table_markdown_and_plots_from_cell_files(tmp_path) -> None:
    g = Grid(tasks=("reach", "none"), delays_ms=(0, 250, 600), seeds=(0, 1), seconds=20)
    cells = g.cells()
    for i, c in enumerate(cells):
        sweep.write_cell(tmp_path, _fake_result(c, i))
    # one failed cell: kept in the table, retried by the next run
    failed = cells[3]
    sweep.write_cell(
        tmp_path,
        {"sweep": {"id": failed.id, "status": "failed", "error": "error: boom", "wall_s": 1.0}},
    )
    assert not sweep.is_done(tmp_path, failed) and sweep.is_done(tmp_path, cells[0])
    rows = sweep.build_rows(tmp_path, cells)
    cols = sweep.write_csv(tmp_path / "sweep.csv", rows)
    assert cols[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert cols[len(BASE_COLUMNS) :] == [
        "score_overall",
        "score_completion_time_s",
        "score_path_length_m",
        "score_instrument_collisions",
        "score_rtt_p50_ms",
        "score_check_max_time_s",
        "score_penalty_time",
        "score_threshold_max_time_s",
        "score_notes",
        "score_extra_a",
        "host",
        "error",
    ]
    header, table = _read_csv(tmp_path / "sweep.csv")
    assert header == cols and len(table) == len(cells) == 12
    by_id = {r["cell_id"]: r for r in table}
    bad = by_id[failed.id]
    assert bad["status"] == "failed" and bad["error"] == "error: boom"
    assert bad["ticks"] == "" and bad["health_events"] == ""
    ok = by_id[cells[0].id]
    assert ok["task"] == "reach" and ok["input"] == "expert" and ok["delay_ms"] == "0.0"
    assert ok["health_events"] == "2" and ok["health_lost"] == "1"
    assert ok["task_completed"] == "True" and float(ok["score_overall"]) == 90.0
    assert ok["score_check_max_time_s"] == "True" and ok["score_rtt_p50_ms"] == ""
    assert ok["score_notes"] == "slow start; one collision"
    assert json.loads(ok["score_extra_a"]) == [1, 2]
    plain = by_id[cells[-1].id]
    assert plain["task"] == "" and plain["score_overall"] == "" and plain["input"] == ""
    png = sweep.plot_delay(rows, g, tmp_path)
    assert png is not None and png.stat().st_size > 10_000
    assert sweep.plot_profiles(rows, g, tmp_path) is None  # one profile: no bar chart
    info = {"machine": "test", "cells": 12, "ok": 11, "failed": 1, "note": "fake"}
    sweep.write_markdown(tmp_path / "sweep.md", rows, g, info, [png])
    md = (tmp_path / "sweep.md").read_text()
    assert "| id | task | delay_ms | seed | status |" in md
    assert "## Failed cells" in md and "error: boom" in md
    assert "## Mean ± sd over seeds (2)" in md and "![sweep_delay](sweep_delay.png)" in md


def test_a_sweep_with_every_cell_done_runs_nothing(tmp_path) -> None:
    g = Grid(profiles=("lan", "satellite"), seeds=(0, 1), seconds=5)
    for i, c in enumerate(g.cells()):
        sweep.write_cell(tmp_path, _fake_result(c, i))
    err = io.StringIO()
    res = run_sweep(g, tmp_path, stream=err)
    assert res.ran == 0 and res.skipped == 4 and res.ok == 4 and res.failed == 0
    assert "4 done already, 0 to run" in err.getvalue()
    assert (tmp_path / "sweep_profiles.png").exists() and (tmp_path / "sweep.md").exists()
    meta = json.loads((tmp_path / "sweep.json").read_text())
    assert meta["cell_ids"] == [c.id for c in g.cells()] and meta["machine"]


# ------------------------------------------------------------------------------------------
# slow: real console runs


TINY = ("--profile", "lan", "5g-clinical", "--seconds", "2")


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory) -> dict[str, Any]:
    """One real 2-cell sweep through the CLI (lan and 5g-clinical, 2 s each, synthetic hand)."""
    from benchmarks.cli import main

    out = tmp_path_factory.mktemp("sweep")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["sweep", *TINY, "--out", str(out)])
    return {"out": out, "rc": rc, "stderr": err.getvalue()}


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}


@pytest.mark.slow
def test_tiny_sweep_writes_cells_and_a_plausible_table(tiny_sweep) -> None:
    out, log = tiny_sweep["out"], tiny_sweep["stderr"]
    assert tiny_sweep["rc"] == 0, log
    assert "[1/2] ok" in log and "[2/2] ok" in log and "ETA" in log and "machine:" in log
    cells = Grid(profiles=("lan", "5g-clinical"), seconds=2).cells()
    assert sorted(_mtimes(out)) == sorted(f"{c.id}.json" for c in cells)
    header, rows = _read_csv(out / "sweep.csv")
    assert header == [*BASE_COLUMNS, "host", "error"]  # no task cells: no score columns
    assert [r["cell_id"] for r in rows] == [c.id for c in cells]
    by = {r["profile"]: r for r in rows}
    for r in rows:
        assert r["status"] == "ok" and r["error"] == "" and r["seconds"] == "2.0"
        assert r["task"] == "" and r["delay_ms"] == "" and r["seed"] == ""
        assert 1500 <= int(r["ticks"]) <= 2100
        assert int(r["commands_applied"]) > 500
        assert int(r["health_events"]) >= 0 and int(r["lost_ticks"]) >= 0
        assert float(r["lateness_p999_us"]) > 0 and float(r["wall_s"]) > 2.0
    rtt = float(by["5g-clinical"]["rtt_p50_ms"])
    assert 35.0 < rtt < 45.0, rtt  # the profile's 38 ms round trip
    assert rtt - 1.0 < float(by["5g-clinical"]["e2e_p50_ms"]) < rtt + 10.0
    assert float(by["lan"]["rtt_p50_ms"]) < 10.0 < rtt
    d = json.loads((out / "cells" / f"{cells[1].id}.json").read_text())
    assert d["sweep"]["params"]["profile"] == "5g-clinical" and d["sweep"]["status"] == "ok"
    assert d["rtt_ms"]["p50"] == pytest.approx(rtt)
    assert (out / "sweep_profiles.png").exists() and "| 5g-clinical | ok |" in (
        out / "sweep.md"
    ).read_text()


@pytest.mark.slow
def test_rerun_skips_done_cells_and_retries_failed_ones(tiny_sweep) -> None:
    out = tiny_sweep["out"]
    assert tiny_sweep["rc"] == 0, tiny_sweep["stderr"]
    g = Grid(profiles=("lan", "5g-clinical"), seconds=2)
    before = _mtimes(out)
    res = run_sweep(g, out, stream=io.StringIO())
    assert res.ran == 0 and res.skipped == 2 and res.ok == 2
    assert _mtimes(out) == before
    # a failed cell is run again on the next invocation, and only that one
    lan = g.cells()[0]
    path = sweep.cell_path(out, lan.id)
    d = json.loads(path.read_text())
    path.write_text(json.dumps({"sweep": {**d["sweep"], "status": "failed", "error": "x"}}))
    failed_mtime = path.stat().st_mtime_ns
    res = run_sweep(g, out, stream=io.StringIO(), plots=False)
    assert res.ran == 1 and res.skipped == 1 and res.ok == 2
    after = _mtimes(out)
    assert after[path.name] != failed_mtime
    other = f"{g.cells()[1].id}.json"
    assert after[other] == before[other]


@pytest.mark.slow
def test_force_reruns_every_cell(tiny_sweep) -> None:
    out = tiny_sweep["out"]
    assert tiny_sweep["rc"] == 0, tiny_sweep["stderr"]
    before = _mtimes(out)
    err = io.StringIO()
    res = run_sweep(
        Grid(profiles=("lan", "5g-clinical"), seconds=2), out, force=True, stream=err, plots=False
    )
    assert res.ran == 2 and res.ok == 2, err.getvalue()
    after = _mtimes(out)
    assert after.keys() == before.keys()
    assert all(after[k] != before[k] for k in before)


@pytest.mark.slow
def test_a_failing_cell_reports_the_console_error(tmp_path) -> None:
    # bypasses the grid's validation: the console itself refuses the profile
    r = sweep.run_cell(Cell(profile="no-such-profile", seconds=1).params(), str(tmp_path))
    assert r["sweep"]["status"] == "failed" and r["sweep"]["returncode"] != 0
    assert "no-such-profile" in r["sweep"]["error"] and "ticks" not in r
    assert r["sweep"]["log_tail"]


PARAM_AND_STATUS = (
    "cell_id",
    "task",
    "profile",
    "delay_ms",
    "filter",
    "scale",
    "seed",
    "seconds",
    "input",
    "status",
)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_table(tiny_sweep, tmp_path) -> None:
    pytest.importorskip(
        "dask.distributed",
        reason="dask[distributed] is not installed (pip install 'telesurgery[dask]')",
    )
    from dask.distributed import LocalCluster

    assert tiny_sweep["rc"] == 0, tiny_sweep["stderr"]
    g = sweep.grid_from_args(_args(*TINY))
    err = io.StringIO()
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        res = run_sweep(g, tmp_path, scheduler=cluster.scheduler_address, stream=err)
    assert res.ran == 2 and res.ok == 2, err.getvalue()
    assert "on Dask at tcp://" in err.getvalue()
    local_header, local_rows = _read_csv(tiny_sweep["out"] / "sweep.csv")
    dask_header, dask_rows = _read_csv(tmp_path / "sweep.csv")
    assert dask_header == local_header
    assert [{k: r[k] for k in PARAM_AND_STATUS} for r in dask_rows] == [
        {k: r[k] for k in PARAM_AND_STATUS} for r in local_rows
    ]
    for r in dask_rows:  # real runs on the worker, not copies
        assert 1500 <= int(r["ticks"]) <= 2100 and not math.isnan(float(r["rtt_p50_ms"]))
    # the worker wrote nothing here but what the client wrote from the results
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cells",
        "sweep.csv",
        "sweep.json",
        "sweep.md",
        "sweep_profiles.png",
    ]


@pytest.mark.slow
def test_a_task_cell_is_scored_and_keeps_its_artifacts_in_the_sweep(tmp_path) -> None:
    from master_console.config import INPUTS

    if "expert" not in INPUTS:
        pytest.skip("master-console has no --input expert yet (master_console/expert.py)")
    # a 3 s cap: the scripted expert does not finish, but the cell is run, scored and kept
    res = run_sweep(Grid(tasks=("reach",), seconds=3), tmp_path, stream=io.StringIO())
    assert res.ok == 1, res.rows
    (row,) = res.rows
    assert row["input"] == "expert" and row["task_completed"] is not None
    assert 0.0 <= row["score_overall"] <= 100.0 and "score_path_length_m" in row
    header, _ = _read_csv(tmp_path / "sweep.csv")
    assert "score_overall" in header and "task_passed" in header
    cid = row["cell_id"]
    assert (tmp_path / "history.sqlite").exists()  # never the user's own history
    assert (tmp_path / "reports" / f"{cid}.png").exists()
    assert (tmp_path / "sessions" / f"{cid}.rec").exists()
