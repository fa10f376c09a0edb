"""The trainee's attempt history: a small SQLite file (stdlib ``sqlite3``).

One row per scored attempt (trainee, task, when, overall score, completed, passed, completion
time, network profile, added delay, and the whole :meth:`Score.to_dict` as JSON), so the
report can compare an attempt with the earlier ones and an instructor can follow a trainee's
learning curve.  The file lives at ``~/.telesurgery/history.sqlite`` unless
``TELESURGERY_HOME`` names another directory; tables are created on first use.

Each call opens and closes its own connection, so a ``History`` can be shared freely and the
file is never left locked.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

__all__ = ["History", "HistoryError", "default_history_path"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trainee TEXT NOT NULL,
    task TEXT NOT NULL,
    when_unix_s REAL NOT NULL,
    overall REAL,
    completed INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    completion_time_s REAL,
    profile TEXT NOT NULL DEFAULT '',
    delay_ms REAL,
    score_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_trainee_task ON attempts (trainee, task, when_unix_s);
"""

_COLUMNS = (
    "id",
    "trainee",
    "task",
    "when_unix_s",
    "overall",
    "completed",
    "passed",
    "completion_time_s",
    "profile",
    "delay_ms",
    "score_json",
)


class HistoryError(ValueError):
    """The history file cannot be used (corrupt, not SQLite, or a foreign schema)."""


def default_history_path() -> Path:
    """``$TELESURGERY_HOME/history.sqlite``, else ``~/.telesurgery/history.sqlite``."""
    home = os.environ.get("TELESURGERY_HOME", "").strip()
    base = Path(home).expanduser() if home else Path.home() / ".telesurgery"
    return base / "history.sqlite"


def _finite_or_none(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _score_dict(score: Any) -> dict[str, Any]:
    if hasattr(score, "to_dict"):
        d = score.to_dict()
    elif isinstance(score, dict):
        d = dict(score)
    else:
        raise TypeError(f"score must be a Score or its to_dict(), got {type(score).__name__}")
    if "overall" not in d or "completed" not in d or "passed" not in d:
        raise ValueError("the score dict needs 'overall', 'completed' and 'passed'")
    return d


class History:
    """Attempts per trainee and task, in a SQLite file at ``path`` (created on first use).

    Raises :class:`HistoryError` (a ``ValueError``) naming the file when it is not a usable
    history (corrupt, not SQLite, or another program's database).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_history_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HistoryError(
                f"cannot create the directory of the history {self.path}: {e}"
            ) from e
        with self._connect() as conn:
            self._init(conn)

    # -- plumbing ---------------------------------------------------------------------------

    def _error(self, e: BaseException) -> HistoryError:
        return HistoryError(
            f"the attempt history {self.path} cannot be used ({e}); move it away or delete it "
            "to start a new history"
        )

    def _connect(self) -> _Connection:
        return _Connection(self)

    def _init(self, conn: sqlite3.Connection) -> None:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if version not in (0, SCHEMA_VERSION):
                raise HistoryError(
                    f"the attempt history {self.path} has schema version {version}; this "
                    f"program reads version {SCHEMA_VERSION}"
                )
            if "attempts" in tables:
                cols = {r[1] for r in conn.execute("PRAGMA table_info(attempts)")}
                missing = [c for c in _COLUMNS if c not in cols]
                if missing:
                    raise HistoryError(
                        f"{self.path} has an 'attempts' table without the column(s) "
                        f"{', '.join(missing)}: not a telesurgery attempt history"
                    )
            elif tables - {"sqlite_sequence"}:
                raise HistoryError(
                    f"{self.path} is another program's SQLite database (tables: "
                    f"{', '.join(sorted(tables))}), not a telesurgery attempt history"
                )
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as e:
            raise self._error(e) from e

    # -- the API ----------------------------------------------------------------------------

    def add(
        self,
        trainee: str,
        task: str,
        score: Any,
        when_unix_s: float | None = None,
        profile: str = "",
        delay_ms: float | None = None,
    ) -> int:
        """Store one attempt (a :class:`~master_console.scoring.Score` or its ``to_dict()``);
        returns its id."""
        if not isinstance(trainee, str) or not trainee.strip():
            raise ValueError("trainee must be a non-empty string")
        if not isinstance(task, str) or not task.strip():
            raise ValueError("task must be a non-empty string")
        d = _score_dict(score)
        metrics = d.get("metrics") or {}
        when = time.time() if when_unix_s is None else float(when_unix_s)
        row = (
            trainee.strip(),
            task.strip(),
            when,
            _finite_or_none(d.get("overall")),
            int(bool(d.get("completed"))),
            int(bool(d.get("passed"))),
            _finite_or_none(metrics.get("completion_time_s")),
            str(profile or ""),
            _finite_or_none(delay_ms),
            json.dumps(_clean(d), allow_nan=False, default=_json_default),
        )
        with self._connect() as conn:
            try:
                with conn:
                    cur = conn.execute(
                        "INSERT INTO attempts (trainee, task, when_unix_s, overall, completed, "
                        "passed, completion_time_s, profile, delay_ms, score_json) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        row,
                    )
            except sqlite3.DatabaseError as e:
                raise self._error(e) from e
            return int(cur.lastrowid or 0)

    def attempts(self, trainee: str, task: str) -> list[dict[str, Any]]:
        """Every attempt of ``trainee`` at ``task``, oldest first, as dicts: id, number
        (1, 2, ...), trainee, task, when_unix_s, overall, completed, passed,
        completion_time_s, profile, delay_ms, score (the stored ``to_dict()``)."""
        rows = self._select(
            "WHERE trainee = ? AND task = ? ORDER BY when_unix_s, id", (trainee, task)
        )
        for i, r in enumerate(rows, start=1):
            r["number"] = i
        return rows

    def best(self, trainee: str, task: str) -> dict[str, Any] | None:
        """The best attempt: passed first, then the highest overall score, then the shortest
        completion time, then the earliest.  None if there is none."""
        rows = self.attempts(trainee, task)
        if not rows:
            return None

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            overall = r["overall"] if r["overall"] is not None else -math.inf
            t = r["completion_time_s"] if r["completion_time_s"] is not None else math.inf
            return (not r["passed"], -overall, t, r["when_unix_s"], r["id"])

        return min(rows, key=key)

    def trainees(self) -> list[str]:
        """Every trainee with an attempt, sorted."""
        with self._connect() as conn:
            try:
                rows = conn.execute("SELECT DISTINCT trainee FROM attempts ORDER BY trainee")
                return [r[0] for r in rows]
            except sqlite3.DatabaseError as e:
                raise self._error(e) from e

    def _select(self, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self._connect() as conn:
            try:
                rows = conn.execute(
                    f"SELECT {', '.join(_COLUMNS)} FROM attempts {where}", params
                ).fetchall()
            except sqlite3.DatabaseError as e:
                raise self._error(e) from e
        out = []
        for row in rows:
            r = dict(zip(_COLUMNS, row, strict=True))
            r["completed"] = bool(r["completed"])
            r["passed"] = bool(r["passed"])
            try:
                r["score"] = json.loads(r.pop("score_json"))
            except (TypeError, ValueError):
                r["score"] = {}
            out.append(r)
        return out

    def __repr__(self) -> str:
        return f"History({str(self.path)!r})"


def _clean(v: Any) -> Any:
    """NaN and inf -> None, recursively (JSON has neither)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def _json_default(obj: Any) -> Any:
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        v = item()
        return None if isinstance(v, float) and not math.isfinite(v) else v
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


class _Connection:
    """``with``: a connection to the history, closed afterwards; errors name the file."""

    def __init__(self, history: History) -> None:
        self._history = history
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._conn = sqlite3.connect(self._history.path, timeout=10.0)
        except sqlite3.Error as e:
            raise self._history._error(e) from e
        return self._conn

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
