"""Scheduling for the 1 kHz loops: real-time priority when permitted, never required.

Both control loops (the console's and the arm server's) call :func:`enter_realtime` on their
own thread just before they start ticking. It asks Linux for ``SCHED_FIFO`` at the given
priority (with ``SCHED_RESET_ON_FORK``, so threads and processes started later do not inherit
it), optionally pins the thread to CPUs, and freezes the garbage collector's view of everything
allocated so far (``gc.freeze``), so a full collection never has to walk the startup heap in the
middle of a tick. Whatever is not permitted (no ``CAP_SYS_NICE``, a container without RT
budget, another OS) is logged once and skipped: the loop runs the same, just with more jitter.

Best-effort work that shares the machine (the camera renderer, the display) calls
:func:`lower_priority` instead, so it yields to the loops under the normal scheduler too.

``TELESURGERY_RT=0`` in the environment turns the real-time request off everywhere (e.g. on a
shared build machine where a spinning FIFO thread would annoy others).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
from dataclasses import dataclass

import zmq

log = logging.getLogger(__name__)

#: Default SCHED_FIFO priorities: the console above the arm server (both far below the
#: kernel's own threads at 50+ on PREEMPT_RT systems, far above every normal process).
CONSOLE_PRIORITY = 30
SERVER_PRIORITY = 29


@dataclass(frozen=True)
class RealtimeReport:
    """What :func:`enter_realtime` obtained for the calling thread."""

    policy: str  # "fifo" or "other"
    priority: int
    cpus: tuple[int, ...]
    gc_frozen: bool
    reason: str = ""  # why real-time was not obtained, if it was not
    memory_locked: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "priority": self.priority,
            "cpus": list(self.cpus),
            "gc_frozen": self.gc_frozen,
            "reason": self.reason,
            "memory_locked": self.memory_locked,
        }


def realtime_allowed() -> bool:
    """False when ``TELESURGERY_RT=0`` (or ``false``/``no``/``off``) is set."""
    return os.environ.get("TELESURGERY_RT", "1").strip().lower() not in ("0", "false", "no", "off")


def enter_realtime(
    priority: int | None,
    cpus: tuple[int, ...] | None = None,
    freeze_gc: bool = True,
    who: str = "loop",
    helpers: bool = True,
) -> RealtimeReport:
    """Make the calling thread a real-time loop as far as permitted; never raises.

    ``priority`` is the SCHED_FIFO priority (1-99), or None to stay under the normal
    scheduler. ``cpus`` pins the thread (None: leave the affinity alone).

    With ``helpers`` (the default), the process's other existing threads (device readers, the
    recorder's writer) get ``priority - 1``. In CPython this is not a
    luxury: a helper thread preempted by an ordinary process while it holds the GIL stalls the
    loop thread until it runs again (milliseconds on a busy machine), a priority inversion that
    only lifting the helpers removes. Their work is short and periodic, so they cannot starve
    the machine (the kernel's RT throttling would stop them at 95 % of a core anyway).
    """
    reason = ""
    policy = "other"
    prio = 0
    if cpus is not None:
        try:
            os.sched_setaffinity(0, set(cpus))
        except (OSError, AttributeError, ValueError) as exc:
            log.warning("%s: could not pin to CPUs %s (%s); running unpinned", who, cpus, exc)
    if priority is None:
        reason = "not requested"
    elif not realtime_allowed():
        reason = "TELESURGERY_RT=0"
    elif not hasattr(os, "SCHED_FIFO"):
        reason = "no SCHED_FIFO on this OS"
    else:
        if not 1 <= priority <= 99:
            raise ValueError(f"SCHED_FIFO priority must be in 1..99, got {priority}")
        flags = os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
        try:
            os.sched_setscheduler(0, flags, os.sched_param(priority))
            policy, prio = "fifo", priority
            if helpers:
                _lift_other_threads(flags, max(1, priority - 1))
        except (OSError, PermissionError) as exc:
            reason = f"SCHED_FIFO not permitted ({exc.strerror or exc}); grant CAP_SYS_NICE"
    if reason and priority is not None:
        log.warning("%s: running without real-time priority: %s", who, reason)
    elif policy == "fifo":
        log.info("%s: SCHED_FIFO priority %d on thread %d", who, prio, threading.get_native_id())
    locked = policy == "fifo" and lock_memory()
    if freeze_gc:
        gc.freeze()  # O(1): no collect first, which could take tens of ms on a big heap
        if policy == "fifo":
            # no automatic collections at whatever allocation they happen to fall on, in
            # whichever thread: the loop calls collect_garbage() where it has time to spare
            gc.disable()
    try:
        got = tuple(sorted(os.sched_getaffinity(0)))
    except (OSError, AttributeError):
        got = ()
    return RealtimeReport(policy, prio, got, freeze_gc, reason, locked)


def _other_thread_ids() -> list[int]:
    """Native ids of the process's other *Python* threads (the ones that take the GIL).

    Threads of C libraries are left alone: libzmq, for one, asserts on a scheduling change it
    did not make (its own ``ZMQ_THREAD_SCHED_POLICY`` context option is the way to lift it).
    """
    me = threading.get_native_id()
    return [
        t.native_id
        for t in threading.enumerate()
        if t.native_id is not None and t.native_id != me and t.is_alive()
    ]


def _lift_other_threads(flags: int, priority: int) -> None:
    for tid in _other_thread_ids():
        try:
            if (
                os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
                == os.SCHED_OTHER
            ):
                os.sched_setscheduler(tid, flags, os.sched_param(priority))
        except OSError:  # the thread ended meanwhile, or not permitted
            pass


_memory_locked = False
MCL_CURRENT, MCL_FUTURE = 1, 2
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def lock_memory() -> bool:
    """Lock the process's memory in RAM, now and future (``mlockall``), and keep freed heap
    memory instead of returning it to the OS; once per process, never raises.

    A page touched for the first time costs a page fault; on virtual machines whose memory the
    host backs lazily, one in a thousand of those takes milliseconds (measured here: p99.9
    4.6 ms), which a 1 kHz loop feels as a stall. Locked memory is resident up front, and new
    allocations are made resident when they are mapped. Done only where locking is not capped
    (root, CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK): with a cap, future allocations could
    fail once it is reached.
    """
    global _memory_locked
    if _memory_locked:
        return True
    try:
        import ctypes
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        if os.geteuid() != 0 and soft != resource.RLIM_INFINITY:
            log.info("memory not locked: RLIMIT_MEMLOCK is capped (ulimit -l unlimited to lock)")
            return False
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mallopt(M_TRIM_THRESHOLD, -1)  # keep freed memory: no unmap/remap, no new faults
        libc.mallopt(M_MMAP_MAX, 0)  # large blocks from the (locked) heap, not fresh mmaps
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
            log.info("memory not locked: mlockall failed (errno %d)", ctypes.get_errno())
            return False
    except (OSError, AttributeError, ImportError) as exc:  # not Linux/glibc
        log.info("memory not locked: %s", exc)
        return False
    _memory_locked = True
    return True


_fifo_permitted: bool | None = None


def fifo_permitted() -> bool:
    """Whether this process may use SCHED_FIFO (probed once, on a short-lived thread)."""
    global _fifo_permitted
    if _fifo_permitted is None:
        ok = [False]

        def probe() -> None:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
                os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
                ok[0] = True
            except (OSError, AttributeError):
                pass

        t = threading.Thread(target=probe, name="rt-probe")
        t.start()
        t.join()
        _fifo_permitted = ok[0]
    return _fifo_permitted


def zmq_context(io_priority: int | None = None) -> zmq.Context:
    """A new ZeroMQ context whose I/O thread runs at SCHED_FIFO ``io_priority`` where permitted.

    The I/O thread moves every message between the socket and the kernel; on a busy machine it
    otherwise waits behind best-effort work (the camera's renderer, the display) and adds that
    wait to every round trip. libzmq aborts if it is refused the policy it was given, so it is
    only given one after :func:`fifo_permitted` said yes.
    """
    ctx = zmq.Context()
    if io_priority is not None and realtime_allowed() and fifo_permitted():
        ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_FIFO)
        ctx.set(zmq.THREAD_PRIORITY, int(io_priority))
    return ctx


def collect_garbage() -> None:
    """A young-generation collection (~0.1-1 ms), for a loop to call in its slack while
    automatic collection is off (:func:`enter_realtime`); does nothing when it is on."""
    if not gc.isenabled():
        gc.collect(1)


def leave_realtime() -> None:
    """Return the calling thread to the normal scheduler (after the loop); never raises."""
    if hasattr(os, "SCHED_OTHER"):
        for tid in [0, *_other_thread_ids()]:
            with contextlib.suppress(OSError):
                if tid == 0 or os.sched_getscheduler(tid) != os.SCHED_OTHER:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    gc.unfreeze()
    gc.enable()


def lower_priority(nice: int = 10, who: str = "process") -> int:
    """Raise this process's niceness by ``nice`` (best-effort work); returns the new value."""
    try:
        return os.nice(nice)
    except (OSError, AttributeError) as exc:  # pragma: no cover - not on Linux
        log.debug("%s: could not lower priority: %s", who, exc)
        return 0


__all__ = [
    "CONSOLE_PRIORITY",
    "SERVER_PRIORITY",
    "RealtimeReport",
    "collect_garbage",
    "enter_realtime",
    "fifo_permitted",
    "leave_realtime",
    "lock_memory",
    "lower_priority",
    "realtime_allowed",
    "zmq_context",
]
