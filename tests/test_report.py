"""The one-page training report renders for completed, failed and first attempts."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from master_console import scoring as S
from master_console.history import History
from master_console.report import DPI, PAGE_SIZE_IN, render_report
from tests.test_scoring import make_reach_run


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def expected_size(dpi: int = DPI) -> tuple[int, int]:
    return round(PAGE_SIZE_IN[0] * dpi), round(PAGE_SIZE_IN[1] * dpi)


def assert_page(path, dpi: int = DPI) -> None:
    w, h = png_size(path)
    ew, eh = expected_size(dpi)
    assert abs(w - ew) <= 1 and abs(h - eh) <= 1, (w, h)


def test_report_of_a_completed_attempt_with_history(tmp_path) -> None:
    history = History(tmp_path / "history.sqlite")
    for i, completed in enumerate((False, True)):
        earlier = S.score(make_reach_run(completed=completed, seed=10 + i))
        history.add("dr. ann", "reach", earlier, when_unix_s=1000.0 + i, delay_ms=50.0 * i)
    run = make_reach_run()
    sc = S.score(run)
    aid = history.add("dr. ann", "reach", sc, when_unix_s=2000.0, delay_ms=80.0)
    attempts = history.attempts("dr. ann", "reach")
    out = render_report(
        sc,
        run,
        attempts,
        tmp_path / "r" / "report.png",
        tmp_path / "r" / "report.pdf",
        trainee="dr. ann",
        current_id=aid,
    )
    assert out == [tmp_path / "r" / "report.png", tmp_path / "r" / "report.pdf"]
    assert_page(out[0])
    pdf = out[1].read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Count 1 " in pdf  # one page


def test_report_of_a_failed_attempt_without_history(tmp_path) -> None:
    run = make_reach_run(completed=False, collisions=4)
    sc = S.score(run)
    assert not sc.passed
    out = render_report(sc, run, [], tmp_path / "failed.png", dpi=80)
    assert out == [tmp_path / "failed.png"]
    assert_page(out[0], dpi=80)


@pytest.mark.parametrize("task", ["peg-transfer", "palpation"])
def test_report_of_other_tasks_and_sparse_data(tmp_path, task) -> None:
    t = np.arange(0.0, 5.0, 0.01)
    points = {
        "peg-transfer": {
            "pegs_from": [[-0.05, 0.0, -0.17]],
            "pegs_to": [[0.05, 0.0, -0.17]],
            "rings": [[-0.05, 0.0, -0.19]],
        },
        "palpation": {
            "search_area": [
                [-0.02, -0.02, -0.16],
                [0.02, -0.02, -0.16],
                [0.02, 0.02, -0.16],
                [-0.02, 0.02, -0.16],
            ]
        },
    }[task]
    run = S.TaskRun(
        task,
        info={"name": task, "goal": "", "points": points, "values": {}},
        t_s=t,
        tool_pos=np.column_stack([0.03 * np.sin(t), 0.01 * t, -0.16 + 0 * t]),
        counters={"task_done": (t >= 4.0) * 1.0, "task_drops": (t >= 2.0) * 2.0},
        notes=["the recording has a torn tail (ignored): the session was cut short"],
    )  # no force, no clutch, no latency, no master samples
    sc = S.score(run)
    out = render_report(sc.to_dict(), run, None, tmp_path / f"{task}.png", dpi=60)
    assert_page(out[0], dpi=60)


def test_report_of_an_empty_run(tmp_path) -> None:
    run = S.TaskRun("reach", info={"name": "reach", "points": {}, "values": {}})
    out = render_report(
        S.score(run), run, [], tmp_path / "empty.png", tmp_path / "empty.pdf", dpi=60
    )
    assert_page(out[0], dpi=60)
    assert out[1].stat().st_size > 1000
