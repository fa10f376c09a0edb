"""Real-time scheduling for the loops: obtained where permitted, skipped with a reason elsewhere,
and undone afterwards. Each case runs on its own thread so pytest's thread is never touched."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from network.realtime import RealtimeReport, enter_realtime, leave_realtime, realtime_allowed


def _on_thread(fn: Any) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _fifo_permitted() -> bool:
    def probe() -> bool:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except OSError:
            return False
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True

    return hasattr(os, "SCHED_FIFO") and _on_thread(probe)


def test_no_priority_requested_stays_normal() -> None:
    def body() -> RealtimeReport:
        r = enter_realtime(None, freeze_gc=False)
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
        return r

    r = _on_thread(body)
    assert r.policy == "other" and r.reason == "not requested"


def test_env_switch_turns_it_off(monkeypatch) -> None:
    monkeypatch.setenv("TELESURGERY_RT", "0")
    assert not realtime_allowed()
    r = _on_thread(lambda: enter_realtime(20, freeze_gc=False))
    assert r.policy == "other" and r.reason == "TELESURGERY_RT=0"


def test_bad_priority_is_refused() -> None:
    if not realtime_allowed():
        pytest.skip("TELESURGERY_RT=0 in this environment")
    with pytest.raises(ValueError, match=r"1\.\.99"):
        _on_thread(lambda: enter_realtime(120, freeze_gc=False))


@pytest.mark.skipif(not _fifo_permitted(), reason="SCHED_FIFO is not permitted here")
def test_fifo_for_the_loop_and_its_helper_threads_then_back_to_normal() -> None:
    stop = threading.Event()
    helper = threading.Thread(target=lambda: stop.wait(10))
    helper.start()
    try:

        def body() -> tuple[RealtimeReport, int, int, int, int]:
            r = enter_realtime(20, freeze_gc=False)
            mine = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK
            prio = os.sched_getparam(0).sched_priority
            assert helper.native_id is not None
            lifted = os.sched_getparam(helper.native_id).sched_priority
            leave_realtime()
            after = os.sched_getscheduler(helper.native_id)
            return r, mine, prio, lifted, after

        r, mine, prio, lifted, after = _on_thread(body)
    finally:
        stop.set()
        helper.join()
    assert r.policy == "fifo" and r.priority == 20 and r.reason == ""
    assert mine == os.SCHED_FIFO and prio == 20
    assert lifted == 19  # helpers just below the loop: no priority inversion through the GIL
    assert after == os.SCHED_OTHER  # leave_realtime undid it


@pytest.mark.skipif(not _fifo_permitted(), reason="SCHED_FIFO is not permitted here")
def test_threads_started_later_do_not_inherit_fifo() -> None:
    def body() -> int:
        enter_realtime(20, freeze_gc=False, helpers=False)
        got: list[int] = []
        t = threading.Thread(target=lambda: got.append(os.sched_getscheduler(0)))
        t.start()
        t.join()
        leave_realtime()
        return got[0]

    assert _on_thread(body) == os.SCHED_OTHER  # SCHED_RESET_ON_FORK


def test_pinning_to_a_cpu() -> None:
    cpu = min(os.sched_getaffinity(0))

    def body() -> tuple[RealtimeReport, set[int]]:
        r = enter_realtime(None, cpus=(cpu,), freeze_gc=False)
        time.sleep(0.001)
        return r, os.sched_getaffinity(0)

    r, aff = _on_thread(body)
    assert r.cpus == (cpu,) and aff == {cpu}
