"""Training sessions: what ``master-console --task NAME`` does around the console loop.

The arm's simulator runs the task and decides progress (``TaskInfo`` in the welcome, ``task_*``
counters in every state); the console records the session, and when it ends this module scores
it from the recording (:mod:`master_console.scoring`), adds the attempt to the trainee's history
(SQLite, :mod:`master_console.history`) and writes the one-page report
(:mod:`master_console.report`) with the comparison against earlier attempts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TASK_NAMES = ("reach", "peg-transfer", "palpation")


@dataclass(frozen=True)
class TrainingOptions:
    """Where a training session's outputs go; units and paths in the names."""

    task: str
    trainee: str = "trainee"
    report_dir: str = "results/reports"
    history_path: str | None = None  # None: the default (~/.telesurgery/history.sqlite)
    keep_history: bool = True
    thresholds: dict[str, Any] | None = None  # per task, overriding the defaults
    profile: str = ""
    delay_ms: float | None = None

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ValueError(f"unknown task {self.task!r}; one of {', '.join(TASK_NAMES)}")
        if not self.trainee.strip():
            raise ValueError("the trainee name must not be empty")


def session_path(task: str, directory: str = "results/sessions") -> Path:
    """A new recording path for a task session, e.g. results/sessions/reach-20261126-071500.rec."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(directory) / f"{task}-{stamp}.rec"


def finish_task_session(recording_path: str | Path, options: TrainingOptions) -> dict[str, Any]:
    """Score the recorded session, store the attempt, write the report; returns the summary's
    ``task`` entry: ``{name, completed, passed, score: {...}, report: [paths], attempt}``."""
    from master_console.history import History, default_history_path
    from master_console.recording import load_recording
    from master_console.report import render_report
    from master_console.scoring import TaskRun, score, thresholds_from_dict

    rec = load_recording(recording_path)
    run = TaskRun.from_recording(rec)
    if run.task != options.task:
        raise ValueError(
            f"the arm ran task {run.task!r}, not {options.task!r}: start it with --task "
            f"{options.task} (or connect to an arm that runs it)"
        )
    thresholds = thresholds_from_dict(options.task, options.thresholds or {})
    result = score(run, thresholds)
    out: dict[str, Any] = {
        "name": run.task,
        "completed": bool(result.completed),
        "passed": bool(result.passed),
        "score": result.to_dict(),
        "recording": str(recording_path),
    }
    attempts: list[dict[str, Any]] = []
    if options.keep_history:
        history = History(options.history_path or default_history_path())
        out["attempt"] = history.add(
            options.trainee,
            run.task,
            result,
            profile=options.profile,
            delay_ms=options.delay_ms,
        )
        attempts = history.attempts(options.trainee, run.task)
        out["history"] = str(history.path)
    report_dir = Path(options.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    stem = report_dir / Path(recording_path).with_suffix("").name
    paths = render_report(
        result,
        run,
        attempts,
        stem.with_suffix(".png"),
        stem.with_suffix(".pdf"),
        trainee=options.trainee,
    )
    out["report"] = [str(p) for p in paths]
    return out


__all__ = ["TASK_NAMES", "TrainingOptions", "finish_task_session", "session_path"]
