"""The driver conformance kit as a pytest plug-in (loaded automatically once telesurgery is
installed: entry point ``pytest11``).

It gives a driver package's tests three things:

* the fixture ``conformance_check``: a test that asks for it runs once per check of the kit
  (ids are the checks' short names), and calls it with the driver to check, a driver class, a
  zero-argument callable that returns a driver, or an entry-point name (with options)::

      def test_conformance(conformance_check):
          conformance_check(AcmeArm)                      # or "acme", or lambda: AcmeArm(...)

  A failing check fails the test with the kit's message (no traceback into the kit);

* the marker ``hardware`` for tests that move a real arm: they are skipped unless pytest runs
  with ``--hardware``, the operator's confirmation that the arm may move now; a
  ``conformance_check`` on a driver whose ``moves_hardware`` is true is skipped the same way,
  marker or not;

* the report: after the run, pytest's terminal summary prints the kit's report per driver (as
  ``slave-arm check-driver`` does), sections and notes included (hold latency, watchdog, rate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

HARDWARE_SKIP_REASON = (
    "moves a real arm: run pytest with --hardware to confirm (workspace clear, e-stop at hand)"
)
_ROWS = pytest.StashKey[dict[str, list[tuple[str, bool, str]]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("telesurgery", "telesurgery driver conformance")
    group.addoption(
        "--hardware",
        action="store_true",
        default=False,
        help="run the tests marked 'hardware': they may enable and move a real arm",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hardware: the test moves a real arm; skipped unless pytest runs with --hardware",
    )
    config.stash[_ROWS] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--hardware"):
        return
    skip = pytest.mark.skip(reason=HARDWARE_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("hardware") is not None:
            item.add_marker(skip)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_check" in metafunc.fixturenames:
        from slave_arm.conformance import CHECKS, check_name

        metafunc.parametrize("conformance_check", CHECKS, ids=check_name, indirect=True)


class ConformanceCheck:
    """One check of the kit, bound to a test; call it with the driver to check."""

    def __init__(
        self,
        check: Any,
        label: Callable[[str, dict[str, Any]], str],
        record: Any,
        hardware_ok: bool,
    ) -> None:
        self.check = check
        self._label = label
        self._record = record
        self._hardware_ok = hardware_ok

    @property
    def name(self) -> str:
        from slave_arm.conformance import check_name

        return check_name(self.check)

    def __call__(self, driver: Any, **options: Any) -> str | None:
        """Run the check on ``driver`` (class, factory, or name; ``options`` go to the driver's
        constructor). Returns the check's note; fails the test with its message."""
        from slave_arm.conformance import ConformanceError
        from slave_arm.registry import load_driver_class, make_driver

        cls = load_driver_class(driver) if isinstance(driver, str) else driver
        if isinstance(cls, type):
            who = f"{cls.__module__}:{cls.__qualname__}"
            factory = (lambda: make_driver(cls, options)) if options else cls
        else:
            who = getattr(cls, "__qualname__", repr(cls))
            factory = cls
        if options:
            who += " " + " ".join(f"{k}={v!r}" for k, v in options.items())
        label = self._label(who, options)
        # whatever the test's markers say, a driver that moves a real arm needs --hardware
        # (constructing one must not touch the hardware: see slave_arm.driver)
        if not self._hardware_ok and getattr(factory(), "moves_hardware", True):
            pytest.skip(f"{who} {HARDWARE_SKIP_REASON}")
        try:
            note = self.check(factory)
        except ConformanceError as exc:
            self._record(label, (self.name, False, str(exc)))
            pytest.fail(f"conformance check {self.name!r} failed: {exc}", pytrace=False)
        except Exception as exc:
            self._record(label, (self.name, False, f"unexpected {type(exc).__name__}: {exc}"))
            raise
        self._record(label, (self.name, True, note or ""))
        return note


@pytest.fixture
def conformance_check(request: pytest.FixtureRequest) -> ConformanceCheck:
    """One check of the driver conformance kit (the test runs once per check)."""
    rows = request.config.stash[_ROWS]
    callspec = getattr(request.node, "callspec", None)
    params = dict(callspec.params) if callspec is not None else {}
    params.pop("conformance_check", None)

    def label(who: str, options: dict[str, Any]) -> str:
        """The report's title: the driver, its options, and the test's other parameters."""
        others = ", ".join(f"{k}={v}" for k, v in params.items() if k not in options)
        return f"{who} ({others})" if others else who

    def record(key: str, row: tuple[str, bool, str]) -> None:
        rows.setdefault(key, []).append(row)

    return ConformanceCheck(request.param, label, record, request.config.getoption("--hardware"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(_ROWS, {})
    if not rows:
        return
    from slave_arm.conformance import format_report

    terminalreporter.section("telesurgery driver conformance")
    for key, results in rows.items():
        terminalreporter.write_line(format_report(results, title=key))
