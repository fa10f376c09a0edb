"""Shared fixtures: real arm-side processes and threads for the link tests."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from benchmarks.echo import echo_state
from network.link import ArmLink, LinkConfig, free_tcp_endpoint

pytest_plugins = ["pytester"]  # the conformance plug-in's tests run pytest inside pytest


class EchoProcess:
    """``python -m benchmarks.echo link`` in its own process: answers every command."""

    def __init__(self, endpoint: str, *extra: str) -> None:
        self.endpoint = endpoint
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.echo", "link", "--endpoint", endpoint, *extra],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            self.proc.kill()
            raise RuntimeError(f"echo process failed to start: {line!r}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def echo_process() -> Iterator[Callable[..., EchoProcess]]:
    """Factory: ``echo_process(*extra_args, endpoint=None)`` starts an echo arm process."""
    started: list[EchoProcess] = []

    def start(*extra: str, endpoint: str | None = None) -> EchoProcess:
        p = EchoProcess(endpoint or free_tcp_endpoint(), *extra)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


class ArmThread:
    """An ArmLink owned and serviced by a background thread, answering every command."""

    def __init__(self, config: LinkConfig, **kwargs: Any) -> None:
        self.link = ArmLink(config, on_command=lambda rc: echo_state(self.link, rc), **kwargs)
        self.link.bind()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.link.service_until(time.monotonic_ns() + 20_000_000)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            self.link.close()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive(), "arm thread did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def arm_thread() -> Iterator[Callable[..., ArmThread]]:
    """Factory: ``arm_thread(config, **ArmLink kwargs)``; stopped (and checked) at teardown."""
    started: list[ArmThread] = []

    def start(config: LinkConfig, **kwargs: Any) -> ArmThread:
        t = ArmThread(config, **kwargs)
        started.append(t)
        return t

    yield start
    for t in started:
        t.stop()


@pytest.fixture(autouse=True)
def _frozen_heap_for_timing_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Slow tests measure real time: freeze the test process's heap first (as the real-time
    loops do), so a full garbage collection of the ~200k objects that the GUI, numba and
    PyBullet imports leave in a long pytest session (~0.15 s) cannot land inside a measurement."""
    if request.node.get_closest_marker("slow") is None:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
