"""``telesurgery-bench sweep``: grids of real console runs, resumable, on a process pool or Dask.

A *cell* is one real run of ``master-console --sim --display off --seconds S --json OUT`` (its own
simulated arm in its own process, the 1 kHz console loop, the real link with the cell's network
impairment) with the cell's parameters. The grid is the product of its axes::

    tasks × profiles × delays_ms × filters × scales × seeds

An omitted axis is one cell wide and takes the console's own default (no flag is passed). With a
task (``reach``, ``peg-transfer``, ``palpation``) the cell runs the scripted expert (``--input
expert``) until the task is done or its time limit passes, and is scored; without one it runs the
synthetic surgeon hand for ``--seconds`` (default 10 s).

    telesurgery-bench sweep --profile lan --profile 5g-clinical --seconds 5 --out results/sweep
    telesurgery-bench sweep --task reach --delay-ms 0 200 400 800 --seeds 3
    telesurgery-bench sweep --grid grid.toml --workers 1
    telesurgery-bench sweep --grid grid.toml --scheduler tcp://10.0.0.5:8786

Grid file (TOML; the keys may also sit under a ``[grid]`` table; flags given on the command line
replace the file's axis)::

    seconds = 10                   # per cell; for task cells a cap (default: the task's own limit)
    tasks = ["reach", "none"]      # "none": a cell without a task (synthetic hand)
    profiles = ["lan", "5g-clinical", "lindbergh"]  # network/profiles.toml (or FILE.toml:NAME)
    delays_ms = [0, 200, 400]      # added round trip, half each way, on top of the profile
    filters = ["default", "none"]  # filters.FILTERS or "none"
    scales = [0.2]                 # motion scale (0.2 = 5:1)
    seeds = [0, 1, 2]              # or: seeds = 3  (meaning 0, 1, 2)

Outputs in ``OUT`` (default ``results/sweep``):

- ``cells/ID.json``: one per cell, the console's JSON summary plus a ``sweep`` block (id,
  parameters, status ok/failed, the error's last line, wall time, host). ``ID`` is a short hash of
  the cell's parameters: the same grid always gives the same ids.
- ``sweep.csv``: one row per cell of the grid, parameters + flattened metrics (see
  :data:`BASE_COLUMNS`; task cells add ``task_completed``, ``task_passed`` and every entry of
  ``task.score`` as ``score_*``). Rebuilt from the cell JSONs at the end of every invocation, so
  it always agrees with them. Empty parameter cells mean "the console's default".
- task cells (locally): the attempts in ``history.sqlite``, the reports in ``reports/ID.png|pdf``
  and the recordings in ``sessions/ID.rec``, never the user's own history.
- ``sweep.md`` (tables), ``sweep.json`` (grid, machine, counts) and PNG plots: metric vs delay
  (mean ± sd over seeds, one line per task/profile/...) when there is a delay axis, e2e latency per
  profile when there is a profile axis.

**Resuming.** A cell whose JSON is present, valid and ``ok`` is not run again; failed cells are
retried on the next invocation; ``--force`` reruns every cell. Ctrl-C stops the running cells
(their partial runs are discarded) and still writes the CSV of what is done: run the same command
again to go on.

**Workers and timing.** Each cell is itself 3-4 processes (console, arm, camera) with 1 kHz
real-time loops. ``--workers`` defaults to 1: on a machine with few cores, running cells side by
side makes them compete for the CPU and distorts every timing figure (loop lateness, latency,
even task scores). Use more workers only where there are spare cores (about 2 per worker) or for
figures that do not depend on timing.

**Dask.** ``--scheduler tcp://HOST:PORT`` submits the cells to a Dask distributed cluster
(``pip install 'telesurgery[dask]'`` on the client and on every worker). Each worker runs its
cells on its own machine with its own Python (``sys.executable -m master_console.cli``), so the
worker environment must have telesurgery installed, at the same version as the client; a profile
given as a TOML path must exist on the workers. Workers write nothing to the client's disk: the
cell function returns the JSON dict and the client writes ``cells/ID.json`` as results arrive;
a task cell's recording, report and history stay in a temporary folder on the worker and are
removed. Start workers with ``--nthreads 1`` (one cell per worker at a time) for honest timings.
Cells already running on workers when the client is interrupted run to their end there.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import hashlib
import itertools
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

DEFAULT_OUT = "results/sweep"
DEFAULT_SECONDS = 10.0  # a task-less cell's length when --seconds is not given
TASK_INPUT = "expert"  # the scripted expert performs the tasks
TASK_NONE = "none"  # in the tasks axis: a cell without a task
CELL_STARTUP_S = 120.0  # margin for process start-up, kernel compilation and scoring
UNCAPPED_TASK_TIMEOUT_S = 1800.0
GRID_KEYS = ("seconds", "tasks", "profiles", "delays_ms", "filters", "scales", "seeds")
PARAM_COLUMNS = ("task", "profile", "delay_ms", "filter", "scale", "seed", "seconds", "input")
METRIC_COLUMNS = (
    "ticks",
    "commands",
    "commands_applied",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "rtt_p50_ms",
    "rtt_p99_ms",
    "lateness_p50_us",
    "lateness_p99_us",
    "lateness_p999_us",
    "lost_ticks",
    "health_events",
    "health_degraded",
    "health_lost",
    "video_fps",
    "peak_force_n",
)
TASK_COLUMNS = ("task_completed", "task_passed")
BASE_COLUMNS = ("cell_id", *PARAM_COLUMNS, "status", "wall_s", *METRIC_COLUMNS, *TASK_COLUMNS)
TAIL_COLUMNS = ("host", "error")


class SweepError(RuntimeError):
    """A grid, an option or an environment that cannot work."""


# --------------------------------------------------------------------------------------------
# the grid


def _fmt_num(x: float) -> str:
    return f"{x:g}" if float(x).is_integer() or abs(x) >= 1e-4 else repr(x)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One console run. ``None`` means the console's default (the flag is not passed)."""

    task: str | None = None
    profile: str | None = None
    delay_ms: float | None = None
    filter: str | None = None
    scale: float | None = None
    seed: int | None = None
    seconds: float | None = None  # task cells: a cap; None = the task's own time limit

    def __post_init__(self) -> None:  # canonical types, so 200 and 200.0 are the same cell
        for name in ("delay_ms", "scale", "seconds"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, float(v))
        if self.seed is not None:
            object.__setattr__(self, "seed", int(self.seed))
        if self.task == TASK_NONE:
            object.__setattr__(self, "task", None)

    @property
    def input(self) -> str | None:
        return TASK_INPUT if self.task else None

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def id(self) -> str:
        """12 hex digits of SHA-256 over the canonical parameters: stable across runs/machines."""
        blob = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def label(self) -> str:
        parts = [
            f"{k}={_fmt_num(v) if isinstance(v, float) else v}"
            for k, v in self.params().items()
            if v is not None and k != "seconds"
        ]
        return " ".join(parts) or "defaults"

    def argv(self, json_path: str | Path, artifacts: str | Path) -> list[str]:
        """``master-console`` arguments for this cell."""
        a = ["--sim", "--display", "off", "--json", str(json_path)]
        if self.seconds is not None:
            a += ["--seconds", repr(self.seconds)]
        if self.profile is not None:
            a += ["--profile", self.profile]
        if self.delay_ms is not None:
            a += ["--delay-ms", repr(self.delay_ms)]
        if self.filter is not None:
            a += ["--filter", self.filter]
        if self.scale is not None:
            a += ["--scale", repr(self.scale)]
        if self.seed is not None:
            a += ["--seed", str(self.seed)]
        if self.task:
            art = Path(artifacts)
            a += [
                "--task",
                self.task,
                "--input",
                TASK_INPUT,
                "--trainee",
                "sweep",
                "--history",
                str(art / "history.sqlite"),
                "--report-dir",
                str(art / "reports"),
                "--record",
                str(art / "sessions" / f"{self.id}.rec"),
            ]
        return a


def _axis(values: Iterable[Any] | None) -> tuple[Any, ...]:
    """An axis without duplicates, in the order given; empty or None: one default cell."""
    out: list[Any] = []
    for v in values or ():
        if v not in out:
            out.append(v)
    return tuple(out) or (None,)


@dataclasses.dataclass(frozen=True)
class Grid:
    """profiles × delays_ms × filters × scales × seeds × tasks; ``(None,)`` = the default."""

    tasks: tuple[str | None, ...] = (None,)
    profiles: tuple[str | None, ...] = (None,)
    delays_ms: tuple[float | None, ...] = (None,)
    filters: tuple[str | None, ...] = (None,)
    scales: tuple[float | None, ...] = (None,)
    seeds: tuple[int | None, ...] = (None,)
    seconds: float | None = None

    def __post_init__(self) -> None:
        tasks = [None if t in (None, TASK_NONE) else t for t in self.tasks or ()]
        object.__setattr__(self, "tasks", _axis(tasks) if tasks else (None,))
        conv: dict[str, Callable[[Any], Any]] = {"delays_ms": float, "scales": float, "seeds": int}
        for name in ("profiles", "delays_ms", "filters", "scales", "seeds"):
            f = conv.get(name, str)
            object.__setattr__(
                self, name, _axis(None if v is None else f(v) for v in getattr(self, name) or ())
            )
        if self.seconds is not None:
            object.__setattr__(self, "seconds", float(self.seconds))

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "grid") -> Grid:
        if isinstance(d.get("grid"), dict):
            d = d["grid"]
        unknown = sorted(set(d) - set(GRID_KEYS))
        if unknown:
            raise SweepError(
                f"{source}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(GRID_KEYS)}"
            )
        kw: dict[str, Any] = {}
        for key in GRID_KEYS[1:]:
            if key not in d:
                continue
            v = d[key]
            if key == "seeds" and isinstance(v, int) and not isinstance(v, bool):
                v = list(range(v))
            if not isinstance(v, list):
                v = [v]
            kw[key] = tuple(v)
        if "seconds" in d:
            kw["seconds"] = d["seconds"]
        try:
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise SweepError(f"{source}: {exc}") from exc

    @classmethod
    def from_toml(cls, path: str | Path) -> Grid:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SweepError(f"cannot read the grid file {path}: {exc}") from exc
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def validate(self) -> Grid:
        """Raise :class:`SweepError` naming the first bad value; returns self."""
        from filters import FILTERS
        from master_console.training import TASK_NAMES
        from network.impairment import get_profile

        for t in self.tasks:
            if t is not None and t not in TASK_NAMES:
                raise SweepError(f"unknown task {t!r}; one of {', '.join(TASK_NAMES)} or none")
        for p in self.profiles:
            if p is not None:
                try:
                    get_profile(p)
                except (ValueError, OSError) as exc:
                    raise SweepError(str(exc)) from exc
        for d in self.delays_ms:
            if d is not None and not 0 <= d <= 60_000:
                raise SweepError(f"delay {d:g} ms is not in [0, 60000]")
        for k in self.filters:
            if k is not None and k not in (*FILTERS, "none"):
                raise SweepError(f"unknown filter {k!r}; one of {', '.join(FILTERS)} or none")
        for s in self.scales:
            if s is not None and not (math.isfinite(s) and s > 0):
                raise SweepError(f"scale {s:g} must be a finite number > 0")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise SweepError(f"seconds {self.seconds:g} must be > 0")
        return self

    def cell_seconds(self, task: str | None) -> float | None:
        if self.seconds is not None:
            return self.seconds
        return None if task else DEFAULT_SECONDS

    def cells(self) -> list[Cell]:
        """Every cell, seeds varying fastest; the same grid gives the same cells and ids."""
        out: dict[str, Cell] = {}
        axes = (self.tasks, self.profiles, self.delays_ms, self.filters, self.scales, self.seeds)
        for task, profile, delay, kind, scale, seed in itertools.product(*axes):
            c = Cell(task, profile, delay, kind, scale, seed, self.cell_seconds(task))
            out.setdefault(c.id, c)
        return list(out.values())

    def describe(self) -> str:
        """e.g. ``profiles lan, 5g-clinical × seeds 0, 1; 2 s per cell``."""

        def text(k: str, v: Any) -> str:
            return _param_text(v, k)

        parts = [
            f"{k} {', '.join(text(k, v) for v in vals)}"
            for k, vals in self.to_dict().items()
            if k != "seconds" and vals != [None]
        ]
        if self.seconds is not None:
            secs = f"{_fmt_num(self.seconds)} s"
        elif self.tasks != (None,):
            secs = f"task cells: the task's limit; others {_fmt_num(DEFAULT_SECONDS)} s"
        else:
            secs = f"{_fmt_num(DEFAULT_SECONDS)} s"
        return f"{' × '.join(parts) or 'one cell, console defaults'}; {secs} per cell"

    def varying(self) -> list[str]:
        """The cell parameters that take more than one value in this grid."""
        axes = {
            "task": self.tasks,
            "profile": self.profiles,
            "delay_ms": self.delays_ms,
            "filter": self.filters,
            "scale": self.scales,
            "seed": self.seeds,
        }
        return [k for k, v in axes.items() if len(v) > 1]


# --------------------------------------------------------------------------------------------
# one cell: a plain top-level function, picklable, for a local pool or a Dask worker

_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
_CANCELLED = threading.Event()


def _error_line(output: str) -> str:
    """The line that says what went wrong: the last one naming an error, else the last one."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        low = ln.lower()
        if "error" in low or "exception" in low or "traceback" in low:
            return ln
    return lines[-1] if lines else "no output"


def _stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGINT to the cell's process group (the console stops its arm), then SIGKILL."""
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def default_cell_timeout(params: dict[str, Any]) -> float:
    seconds = params.get("seconds")
    if seconds is None:
        return UNCAPPED_TASK_TIMEOUT_S
    return float(seconds) + CELL_STARTUP_S


def run_cell(
    params: dict[str, Any],
    artifacts_dir: str | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run one cell (``master-console`` in a subprocess) and return its JSON dict.

    Never raises for a failed run: the dict's ``sweep.status`` is ``failed`` and ``sweep.error``
    holds the error's last line. ``artifacts_dir``: where a task cell's history, report and
    recording go (the sweep's folder, locally); None: a temporary folder that is removed (on a
    Dask worker nothing is written outside it).
    """
    cell = Cell(**params)
    timeout = timeout_s if timeout_s is not None else default_cell_timeout(params)
    started = time.time()
    t0 = time.monotonic()
    meta: dict[str, Any] = {
        "id": cell.id,
        "params": cell.params(),
        "input": cell.input,
        "status": "failed",
        "error": "",
        "returncode": None,
        "started_unix": started,
        "wall_s": 0.0,
        "host": socket.gethostname(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    summary: dict[str, Any] = {}
    output = ""
    with tempfile.TemporaryDirectory(prefix=f"telesurgery-sweep-{cell.id}-") as tmp:
        art = Path(artifacts_dir) if artifacts_dir else Path(tmp) / "artifacts"
        json_path = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "master_console.cli", *cell.argv(json_path, art)]
        meta["command"] = ["master-console", *cmd[3:]]
        env = dict(os.environ)
        try:  # the console must import the same code as this function, from any folder
            import master_console

            root = str(Path(master_console.__file__).resolve().parent.parent)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        except ImportError:
            pass
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=tmp,  # stray outputs (snapshots, sessions) land in the temporary folder
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,  # Ctrl-C reaches the sweep, which stops the cell itself
            )
        except OSError as exc:
            meta["error"] = f"could not start master-console: {exc}"
            meta["wall_s"] = time.monotonic() - t0
            return {"sweep": meta}
        with _RUNNING_LOCK:
            _RUNNING.add(proc)
        try:
            try:
                output, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop_group(proc)
                output, _ = proc.communicate()
                meta["error"] = f"timed out after {timeout:g} s"
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(proc)
        meta["returncode"] = proc.returncode
        if _CANCELLED.is_set():
            meta["error"] = "interrupted"
        elif not meta["error"]:
            if proc.returncode != 0:
                meta["error"] = _error_line(output)
            elif not json_path.exists():
                meta["error"] = f"no JSON summary written; {_error_line(output)}"
            else:
                try:
                    summary = json.loads(json_path.read_text())
                except (OSError, ValueError) as exc:
                    meta["error"] = f"unreadable JSON summary: {exc}"
                else:
                    if not isinstance(summary, dict) or not summary.get("ticks"):
                        meta["error"] = "the console ran no ticks"
                    elif cell.task and "task" not in summary:
                        meta["error"] = "a task cell without a task result"
                    else:
                        meta["status"] = "ok"
    meta["wall_s"] = time.monotonic() - t0
    if meta["status"] != "ok":
        meta["log_tail"] = output.splitlines()[-30:]
        summary = {}
    if not artifacts_dir and isinstance(summary.get("task"), dict):
        for key in ("report", "recording", "history"):  # removed with the temporary folder
            summary["task"].pop(key, None)
    return {**summary, "sweep": meta}


def _cancel_running() -> None:
    _CANCELLED.set()
    with _RUNNING_LOCK:
        procs = list(_RUNNING)
    threads = [threading.Thread(target=_stop_group, args=(p,)) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --------------------------------------------------------------------------------------------
# cell files


def cell_path(out_dir: Path, cell_id: str) -> Path:
    return out_dir / "cells" / f"{cell_id}.json"


def load_cell(out_dir: Path, cell_id: str) -> dict[str, Any] | None:
    """The cell's JSON dict, or None where it is missing or unreadable."""
    try:
        d = json.loads(cell_path(out_dir, cell_id).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or not isinstance(d.get("sweep"), dict):
        return None
    if d["sweep"].get("id") != cell_id:
        return None
    return d


def is_done(out_dir: Path, cell: Cell) -> bool:
    d = load_cell(out_dir, cell.id)
    return d is not None and d["sweep"].get("status") == "ok" and bool(d.get("ticks"))


def write_cell(out_dir: Path, result: dict[str, Any]) -> Path:
    path = cell_path(out_dir, result["sweep"]["id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------
# the table


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _flatten(prefix: str, d: Any, out: dict[str, Any]) -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            _flatten(f"{prefix}_{k}", v, out)
    elif isinstance(d, list | tuple):
        out[prefix] = json.dumps(d)
    else:
        out[prefix] = d


def cell_row(cell: Cell, d: dict[str, Any] | None) -> dict[str, Any]:
    """One CSV row: parameters, status, flattened metrics (None where there is no value)."""
    row: dict[str, Any] = {"cell_id": cell.id, **cell.params(), "input": cell.input}
    meta = (d or {}).get("sweep") or {}
    row["status"] = meta.get("status", "missing")
    row["wall_s"] = meta.get("wall_s")
    row["host"] = meta.get("host")
    row["error"] = meta.get("error") or None
    d = d or {}
    ran = "ticks" in d  # failed cells keep only their sweep block
    events = d.get("health_events") or []
    row.update(
        ticks=d.get("ticks"),
        commands=d.get("commands"),
        commands_applied=d.get("commands_applied"),
        e2e_p50_ms=_get(d, "e2e_latency_ms", "p50"),
        e2e_p99_ms=_get(d, "e2e_latency_ms", "p99"),
        rtt_p50_ms=_get(d, "rtt_ms", "p50"),
        rtt_p99_ms=_get(d, "rtt_ms", "p99"),
        lateness_p50_us=_get(d, "loop_lateness_us", "p50"),
        lateness_p99_us=_get(d, "loop_lateness_us", "p99"),
        lateness_p999_us=_get(d, "loop_lateness_us", "p999"),
        lost_ticks=d.get("lost_ticks"),
        health_events=len(events) if ran else None,
        health_degraded=sum(1 for e in events if e.get("health") == "DEGRADED") if ran else None,
        health_lost=sum(1 for e in events if e.get("health") == "LOST") if ran else None,
        video_fps=d.get("video_fps"),
        peak_force_n=d.get("peak_force_n"),
    )
    task = d.get("task")
    if isinstance(task, dict):
        row["task_completed"] = task.get("completed")
        row["task_passed"] = task.get("passed")
        row.update(flatten_score(task.get("score")))
    return row


def flatten_score(score: Any) -> dict[str, Any]:
    """``task.score`` (master_console.scoring.Score.to_dict()) as ``score_*`` columns.

    ``overall`` -> ``score_overall``; each metric -> ``score_<metric>``
    (``score_completion_time_s``, ``score_path_length_m``, ``score_economy_of_motion``,
    ``score_drops``, ...); penalties -> ``score_penalty_<part>``; checks ->
    ``score_check_<name>`` (passed or not); thresholds -> ``score_threshold_<name>``; notes
    joined by "; ". ``task``/``completed``/``passed`` repeat the task columns and are left
    out; anything else is flattened as ``score_<key>[_<sub>]``.
    """
    out: dict[str, Any] = {}
    if not isinstance(score, dict):
        return out
    for key, value in score.items():
        if key in ("task", "completed", "passed"):
            continue
        if key == "metrics" and isinstance(value, dict):
            for k, v in value.items():
                if k != "completed":
                    _flatten(f"score_{k}", v, out)
        elif key == "penalties" and isinstance(value, dict):
            _flatten("score_penalty", value, out)
        elif key == "thresholds" and isinstance(value, dict):
            _flatten("score_threshold", value, out)
        elif key == "checks" and isinstance(value, list):
            for c in value:
                if isinstance(c, dict) and "name" in c:
                    out[f"score_check_{c['name']}"] = c.get("passed")
        elif key == "notes" and isinstance(value, list):
            out["score_notes"] = "; ".join(str(n) for n in value)
        else:
            _flatten(f"score_{key}", value, out)
    return out


def build_rows(out_dir: Path, cells: list[Cell]) -> list[dict[str, Any]]:
    """Rows for the grid's cells that have a JSON (done or failed), in grid order."""
    rows = []
    for c in cells:
        d = load_cell(out_dir, c.id)
        if d is not None:
            rows.append(cell_row(c, d))
    return rows


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """:data:`BASE_COLUMNS`, then ``score_overall`` and the other ``score_*`` in the order
    they first appear, then ``host`` and ``error``."""
    extra: list[str] = []
    for r in rows:
        for k in r:
            if k.startswith("score_") and k not in extra:
                extra.append(k)
    if "score_overall" in extra:
        extra.remove("score_overall")
        extra.insert(0, "score_overall")
    return [*BASE_COLUMNS, *extra, *TAIL_COLUMNS]


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def write_csv(path: Path, rows: list[dict[str, Any]]) -> list[str]:
    cols = columns(rows)
    tmp = path.with_suffix(f".csv.tmp{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: _csv_value(r.get(c)) for c in cols})
    os.replace(tmp, path)
    return cols


# --------------------------------------------------------------------------------------------
# summaries: markdown and plots


def _num(v: Any) -> float:
    if v is None or isinstance(v, str):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _mean_sd(values: Iterable[Any]) -> tuple[float, float, int]:
    xs = [x for x in (_num(v) for v in values) if math.isfinite(x)]
    if not xs:
        return math.nan, math.nan, 0
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd, len(xs)


def _f(v: Any, spec: str = ".1f") -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return "n/a" if v != v else format(v, spec)
    return str(v)


def _param_text(v: Any, key: str = "") -> str:
    """A parameter for people: None is the console's default, or no task."""
    if v is None:
        return "none" if key in ("task", "tasks") else "(default)"
    return _fmt_num(v) if isinstance(v, float) else str(v)


def _series_key(row: dict[str, Any], keys: list[str]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in keys)


def _series_label(keys: list[str], key: tuple[Any, ...]) -> str:
    if not keys:
        return "all cells"
    return ", ".join(f"{k}={_param_text(v, k)}" for k, v in zip(keys, key, strict=True))


DELAY_METRICS = (
    ("e2e_p50_ms", "end-to-end latency p50 (ms)"),
    ("e2e_p99_ms", "end-to-end latency p99 (ms)"),
    ("rtt_p50_ms", "RTT p50 (ms)"),
    ("score_overall", "task score (0-100)"),
    ("score_completion_time_s", "completion time (s)"),
    ("task_completed", "completion rate"),
)


def plot_delay(rows: list[dict[str, Any]], grid: Grid, out_dir: Path) -> Path | None:
    """Metrics vs added delay, mean ± sd over seeds, one line per combination of the other axes."""
    ok = [r for r in rows if r["status"] == "ok"]
    if len(grid.delays_ms) < 2 or not ok:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in grid.varying() if k not in ("delay_ms", "seed")]
    panels = [
        (m, label) for m, label in DELAY_METRICS if any(math.isfinite(_num(r.get(m))) for r in ok)
    ]
    n = len(panels)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    series: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in ok:
        series.setdefault(_series_key(r, keys), []).append(r)
    for ax, (metric, label) in zip(axes.flat, panels, strict=False):
        for key, srows in series.items():
            xs, ms, sds = [], [], []
            for d in grid.delays_ms:
                m, sd, cnt = _mean_sd(r.get(metric) for r in srows if r["delay_ms"] == d)
                if cnt:
                    xs.append(0.0 if d is None else d)
                    ms.append(m)
                    sds.append(sd)
            if xs:
                ax.errorbar(xs, ms, yerr=sds, marker="o", capsize=3, label=_series_label(keys, key))
        ax.set_xlabel("added round-trip delay (ms)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(labels) > 1:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    seeds = len(grid.seeds)
    fig.suptitle(f"sweep: metrics vs added delay (mean ± sd over {seeds} seed(s))")
    fig.tight_layout(rect=(0, 0.06 if len(labels) > 1 else 0, 1, 0.95))
    path = out_dir / "sweep_delay.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_profiles(rows: list[dict[str, Any]], grid: Grid, out_dir: Path) -> Path | None:
    """Bars of e2e p50/p99 per profile (cells at the grid's first delay; mean ± sd)."""
    if len(grid.profiles) < 2:
        return None
    d0 = grid.delays_ms[0]
    ok = [r for r in rows if r["status"] == "ok" and r["delay_ms"] == d0]
    if not ok:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p for p in grid.profiles if any(r["profile"] == p for r in ok)]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(names) + 2), 4.0))
    width = 0.38
    for i, (metric, label) in enumerate((("e2e_p50_ms", "p50"), ("e2e_p99_ms", "p99"))):
        stats = [_mean_sd(r.get(metric) for r in ok if r["profile"] == p) for p in names]
        xs = [j + (i - 0.5) * width for j in range(len(names))]
        ax.bar(
            xs,
            [s[0] for s in stats],
            width,
            yerr=[s[1] for s in stats],
            capsize=3,
            label=f"end-to-end {label}",
        )
    ax.set_xticks(range(len(names)), [_param_text(p) for p in names], rotation=20)
    ax.set_ylabel("end-to-end latency (ms)")
    delay = "" if d0 is None else f", added delay {_fmt_num(d0)} ms"
    ax.set_title(f"end-to-end latency per profile (mean ± sd over cells{delay})")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = out_dir / "sweep_profiles.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_markdown(
    path: Path,
    rows: list[dict[str, Any]],
    grid: Grid,
    info: dict[str, Any],
    plots: list[Path],
) -> None:
    varying = grid.varying()
    has_task = any(r.get("task") for r in rows)
    lines = [
        "# Sweep",
        "",
        f"- machine (client): {info.get('machine', '?')}",
        f"- hosts that ran cells: {', '.join(sorted({str(r['host']) for r in rows})) or '–'}",
        f"- grid: {grid.describe()}",
        f"- cells: {info['cells']} ({info['ok']} ok, {info['failed']} failed, "
        f"{info['cells'] - info['ok'] - info['failed']} not run)",
        f"- {info['note']}",
        "",
    ]
    head = [
        "id",
        *varying,
        "status",
        "e2e p50 ms",
        "e2e p99 ms",
        "RTT p50 ms",
        "lateness p99.9 µs",
        "applied",
        "lost ticks",
        "health events",
    ]
    if has_task:
        head += ["completed", "passed", "score", "time s"]
    head.append("wall s")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["cell_id"], *(_param_text(r[k], k) for k in varying), r["status"]]
        cells += [
            _f(r["e2e_p50_ms"], ".2f"),
            _f(r["e2e_p99_ms"], ".2f"),
            _f(r["rtt_p50_ms"], ".2f"),
            _f(r["lateness_p999_us"], ".0f"),
            _f(r["commands_applied"], "d"),
            _f(r["lost_ticks"], "d"),
            _f(r["health_events"], "d"),
        ]
        if has_task:
            cells += [
                _f(r.get("task_completed")),
                _f(r.get("task_passed")),
                _f(r.get("score_overall"), ".0f"),
                _f(r.get("score_completion_time_s"), ".1f"),
            ]
        cells.append(_f(r["wall_s"], ".1f"))
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "## Failed cells", ""]
        lines += [f"- `{r['cell_id']}` ({r['host']}): {r['error']}" for r in failed]
    if len(grid.seeds) > 1:
        keys = [k for k in varying if k != "seed"]
        lines += ["", f"## Mean ± sd over seeds ({len(grid.seeds)})", ""]
        head2 = [*keys, "n ok", "e2e p50 ms", "RTT p50 ms", "lateness p99.9 µs"]
        if has_task:
            head2 += ["completion rate", "score", "time s"]
        lines += ["| " + " | ".join(head2) + " |", "|" + "---|" * len(head2)]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(_series_key(r, keys), []).append(r)
        for key, grows in groups.items():
            ok = [r for r in grows if r["status"] == "ok"]

            def ms(metric: str, spec: str, rows_: list[dict[str, Any]] = ok) -> str:
                m, sd, n = _mean_sd(r.get(metric) for r in rows_)
                return f"{m:{spec}} ± {sd:{spec}}" if n else "–"

            cells = [*(_param_text(v, k) for k, v in zip(keys, key, strict=True)), str(len(ok))]
            cells += [
                ms("e2e_p50_ms", ".2f"),
                ms("rtt_p50_ms", ".2f"),
                ms("lateness_p999_us", ".0f"),
            ]
            if has_task:
                cells += [
                    ms("task_completed", ".2f"),
                    ms("score_overall", ".0f"),
                    ms("score_completion_time_s", ".1f"),
                ]
            lines.append("| " + " | ".join(cells) + " |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------
# progress


def _hms(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """Cells done/total, failures, elapsed, ETA on stderr: one rewritten line on a terminal,
    one line per finished cell otherwise (CI logs)."""

    def __init__(self, total: int, already: int, to_run: int, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total
        self.done = already
        self.to_run = to_run
        self.ran = 0
        self.failed = 0
        self.t0 = time.monotonic()

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        left = self.to_run - self.ran
        eta = elapsed / self.ran * left if self.ran else math.nan
        return (
            f"{self.done}/{self.total} cells done, {self.failed} failed, "
            f"elapsed {_hms(elapsed)}, ETA {_hms(eta) if left else '0:00'}"
        )

    def start(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line())
            self.stream.flush()

    def cell_done(self, cell: Cell, result: dict[str, Any]) -> None:
        meta = result["sweep"]
        self.ran += 1
        self.done += 1
        ok = meta["status"] == "ok"
        if not ok:
            self.failed += 1
        what = f"{meta['status']:6s} {cell.id} {cell.label()} ({meta['wall_s']:.1f} s)"
        if not ok:
            what += f": {meta['error']}"
        if self.tty:
            if not ok:  # failures stay on screen above the progress line
                self.stream.write("\r\x1b[K" + what + "\n")
            self.stream.write("\r\x1b[K" + self.line())
        else:
            self.stream.write(f"[{self.done}/{self.total}] {what} | {self.line()}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------------
# executors


def _run_local(
    todo: list[Cell],
    out_dir: Path,
    workers: int,
    timeout_s: float | None,
    on_result: Callable[[Cell, dict[str, Any]], None],
) -> None:
    """Cells as subprocesses, ``workers`` at a time (threads that each wait on one cell)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_cell, c.params(), str(out_dir), timeout_s): c for c in todo}
        try:
            for fut in concurrent.futures.as_completed(futures):
                on_result(futures[fut], fut.result())
        except BaseException:
            for f in futures:
                f.cancel()
            _cancel_running()
            raise


def _dask_client(address: str) -> Any:
    try:
        from dask.distributed import Client
    except ImportError as exc:
        raise SweepError(
            "--scheduler needs Dask distributed on this machine and on the workers: "
            "pip install 'telesurgery[dask]'"
        ) from exc
    try:
        return Client(address, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise SweepError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc


def _run_dask(
    todo: list[Cell],
    address: str,
    timeout_s: float | None,
    on_result: Callable[[Cell, dict[str, Any]], None],
) -> None:
    """Cells on a Dask cluster; results come back to this process, which writes them."""
    from dask.distributed import as_completed

    client = _dask_client(address)
    token = uuid.uuid4().hex[:8]
    try:
        futures = {
            client.submit(
                run_cell,
                c.params(),
                None,
                timeout_s,
                key=f"telesurgery-sweep-{c.id}-{token}",
                pure=False,
                retries=0,
            ): c
            for c in todo
        }
        try:
            for fut in as_completed(list(futures)):
                cell = futures[fut]
                try:
                    result = fut.result()
                except Exception as exc:  # the worker could not run the function at all
                    result = {
                        "sweep": {
                            "id": cell.id,
                            "params": cell.params(),
                            "input": cell.input,
                            "status": "failed",
                            "error": f"dask: {type(exc).__name__}: {exc}",
                            "wall_s": 0.0,
                            "host": None,
                        }
                    }
                on_result(cell, result)
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# the sweep


@dataclasses.dataclass
class SweepResult:
    out_dir: Path
    cells: list[Cell]
    ran: int  # cells run by this invocation
    skipped: int  # cells already done
    ok: int  # cells ok in the table
    failed: int  # cells failed in the table
    csv_path: Path
    columns: list[str]
    rows: list[dict[str, Any]]
    plots: list[Path]


def run_sweep(
    grid: Grid,
    out_dir: str | Path = DEFAULT_OUT,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    cell_timeout_s: float | None = None,
    plots: bool = True,
    stream: TextIO | None = None,
) -> SweepResult:
    """Run the grid's cells that are not done yet, then rebuild the CSV, markdown and plots.

    Raises :class:`SweepError` for a bad grid or an unreachable scheduler; KeyboardInterrupt
    propagates after the running cells are stopped and the table is written."""
    from benchmarks.machine import machine_info, machine_line

    grid.validate()
    if workers < 1:
        raise SweepError("--workers must be >= 1")
    if scheduler is not None and not scheduler.strip():
        raise SweepError("--scheduler needs an address, tcp://HOST:PORT")
    out = Path(out_dir)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    stream = stream or sys.stderr
    cells = grid.cells()
    todo = list(cells) if force else [c for c in cells if not is_done(out, c)]
    info = machine_info()
    where = f"Dask at {scheduler}" if scheduler else f"{workers} local worker(s)"
    stream.write(
        f"sweep: {len(cells)} cells ({len(cells) - len(todo)} done already, {len(todo)} to run) "
        f"on {where} -> {out}\nmachine: {machine_line(info)}\n"
    )
    if not scheduler and workers > 1:
        stream.write(
            f"note: {workers} cells at a time on {os.cpu_count()} cores; each cell is 3-4 "
            "processes with 1 kHz loops, so side-by-side cells distort the timing figures\n"
        )
    stream.flush()
    _CANCELLED.clear()
    progress = Progress(len(cells), len(cells) - len(todo), len(todo), stream)
    ran = 0

    def on_result(cell: Cell, result: dict[str, Any]) -> None:
        nonlocal ran
        if _CANCELLED.is_set():
            return
        write_cell(out, result)
        ran += 1
        progress.cell_done(cell, result)

    started = time.time()
    interrupted = False
    try:
        progress.start()
        if todo:
            if scheduler:
                _run_dask(todo, scheduler, cell_timeout_s, on_result)
            else:
                _run_local(todo, out, workers, cell_timeout_s, on_result)
    except KeyboardInterrupt:
        interrupted = True
        _CANCELLED.set()
        raise
    finally:
        progress.finish()
        result = _finish(
            out,
            grid,
            cells,
            info,
            ran,
            len(cells) - len(todo),
            started,
            scheduler,
            workers,
            plots,
            interrupted,
        )
        stream.write(
            f"sweep: {result.ok} ok, {result.failed} failed of {len(cells)} "
            f"(ran {ran} now); table {result.csv_path}"
            + (" — interrupted: run the same command again to resume" if interrupted else "")
            + "\n"
        )
        stream.flush()
    return result


def _finish(
    out: Path,
    grid: Grid,
    cells: list[Cell],
    info: dict[str, Any],
    ran: int,
    skipped: int,
    started: float,
    scheduler: str | None,
    workers: int,
    plots: bool,
    interrupted: bool,
) -> SweepResult:
    from benchmarks.machine import machine_line

    rows = build_rows(out, cells)
    csv_path = out / "sweep.csv"
    cols = write_csv(csv_path, rows)
    ok = sum(1 for r in rows if r["status"] == "ok")
    failed = sum(1 for r in rows if r["status"] != "ok")
    pngs: list[Path] = []
    if plots and not interrupted:
        for fn in (plot_delay, plot_profiles):
            p = fn(rows, grid, out)
            if p is not None:
                pngs.append(p)
    note = (
        f"executor: Dask at {scheduler}"
        if scheduler
        else f"executor: {workers} local worker(s) (more than 1 distorts timing on few cores)"
    )
    summary = {
        "grid": grid.to_dict(),
        "cell_ids": [c.id for c in cells],
        "cells": len(cells),
        "ok": ok,
        "failed": failed,
        "ran_now": ran,
        "skipped_done": skipped,
        "interrupted": interrupted,
        "started_unix": started,
        "finished_unix": time.time(),
        "machine": machine_line(info),
        "machine_info": info,
        "note": note,
        "csv": csv_path.name,
        "plots": [p.name for p in pngs],
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=2))
    write_markdown(out / "sweep.md", rows, grid, summary, pngs)
    return SweepResult(out, cells, ran, skipped, ok, failed, csv_path, cols, rows, pngs)


# --------------------------------------------------------------------------------------------
# command line


def add_sweep_arguments(sub: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to ``telesurgery-bench``'s subparsers."""
    p = sub.add_parser(
        "sweep",
        help="grids of real master-console runs (profiles × delays × filters × scales × seeds "
        "× tasks), resumable, on local workers or Dask",
        description=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Axes take one or more values (--delay-ms 0 200 400, or --profile A --profile "
        "B); an omitted axis uses the console's default. Full documentation: "
        "python -c 'import benchmarks.sweep as s; help(s)'.",
    )
    add = p.add_argument
    add("--grid", help="a TOML grid file (keys: " + ", ".join(GRID_KEYS) + "); flags override")
    add(
        "--profile",
        dest="profiles",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="network impairment profile(s) (network/profiles.toml names)",
    )
    add(
        "--delay-ms",
        dest="delays_ms",
        action="extend",
        nargs="+",
        type=float,
        metavar="MS",
        help="added round-trip delay(s), half each way, on top of the profile (0..60000)",
    )
    add(
        "--filter",
        dest="filters",
        action="extend",
        nargs="+",
        metavar="KIND",
        help="tremor filter kind(s) (filters.FILTERS) or none",
    )
    add(
        "--scale",
        dest="scales",
        action="extend",
        nargs="+",
        type=float,
        metavar="S",
        help="motion scale(s) (0.2 = 5:1)",
    )
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seed",
        dest="seeds",
        action="extend",
        nargs="+",
        type=int,
        metavar="N",
        help="seeds of the synthetic hand / scripted expert",
    )
    seeds.add_argument("--seeds", dest="n_seeds", type=int, metavar="N", help="seeds 0 .. N-1")
    add(
        "--task",
        dest="tasks",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="training task(s): reach, peg-transfer, palpation, or none (a cell without a task); "
        "task cells use --input expert",
    )
    add(
        "--seconds",
        type=float,
        help=f"per cell (default {DEFAULT_SECONDS:g}); for task cells a cap (default: the "
        "task's own time limit)",
    )
    add("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    add(
        "--workers",
        type=int,
        default=1,
        help="local cells at a time (default 1: each cell is 3-4 processes with 1 kHz real-time "
        "loops; more workers on few cores distort the timing)",
    )
    add(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="run the cells on this Dask distributed scheduler (pip install "
        "'telesurgery[dask]'; the workers need telesurgery installed)",
    )
    add("--force", action="store_true", help="rerun every cell, done or not")
    add(
        "--cell-timeout",
        type=float,
        metavar="S",
        help=f"kill a cell after this long (default: its seconds + {CELL_STARTUP_S:g} s; "
        f"{UNCAPPED_TASK_TIMEOUT_S:g} s for an uncapped task cell)",
    )
    add("--no-plots", action="store_true", help="skip the PNG plots")
    add("--dry-run", action="store_true", help="list the cells and their ids, run nothing")
    return p


def grid_from_args(args: argparse.Namespace) -> Grid:
    base = Grid.from_toml(args.grid).to_dict() if args.grid else {}
    over: dict[str, Any] = {}
    for key in ("tasks", "profiles", "delays_ms", "filters", "scales", "seeds"):
        v = getattr(args, key, None)
        if v:
            over[key] = v
    if getattr(args, "n_seeds", None) is not None:
        if args.n_seeds < 1:
            raise SweepError("--seeds must be >= 1")
        over["seeds"] = list(range(args.n_seeds))
    if args.seconds is not None:
        over["seconds"] = args.seconds
    base.update(over)
    base = {k: v for k, v in base.items() if v is not None and v != [None]}
    return Grid.from_dict(base, args.grid or "command line").validate()


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """``telesurgery-bench sweep``: parsed arguments in, exit status out."""
    try:
        grid = grid_from_args(args)
        if args.dry_run:
            for c in grid.cells():
                secs = "task limit" if c.seconds is None else f"{_fmt_num(c.seconds)} s"
                print(f"{c.id}  {c.label()}  ({secs})")
            return 0
        if args.cell_timeout is not None and args.cell_timeout <= 0:
            raise SweepError("--cell-timeout must be > 0")
        # SIGTERM (a CI job cancelled, kill) stops the sweep the way Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
        try:
            res = run_sweep(
                grid,
                args.out,
                workers=args.workers,
                scheduler=args.scheduler,
                force=args.force,
                cell_timeout_s=args.cell_timeout,
                plots=not args.no_plots,
            )
        finally:
            signal.signal(signal.SIGTERM, previous)
    except SweepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if res.failed == 0 else 1


def _standalone(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep")
    sub = p.add_subparsers(dest="bench", required=True)
    add_sweep_arguments(sub)
    return main(p.parse_args(["sweep", *(argv if argv is not None else sys.argv[1:])]), p)


if __name__ == "__main__":
    sys.exit(_standalone())
