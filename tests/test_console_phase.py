"""The console's phase lock to the arm's servo loop (the shift rule, on constructed waits)."""

from __future__ import annotations

import numpy as np
import pytest

from master_console.console import ConsoleConfig, ConsoleLoop
from master_console.devices import InputRecording, ReplayDevice
from network.link import ConsoleLink, LinkConfig, free_tcp_endpoint

PERIOD = 1_000_000


@pytest.fixture
def loop():
    rec = InputRecording(
        t_s=np.array([0.0, 1.0]),
        pose=np.tile([0.0, 0, 0, 0, 0, 0, 1], (2, 1)),
        jaw=np.zeros(2),
        clutch=np.zeros(2, bool),
        operator_present=np.ones(2, bool),
    )
    link = ConsoleLink(LinkConfig(endpoint=free_tcp_endpoint()))
    lp = ConsoleLoop(ReplayDevice(rec), link, ConsoleConfig(filter_kind="none"))
    yield lp
    link.close()


@pytest.mark.parametrize(
    ("wait_us", "shift_us"),
    [
        (900, 500),  # commands wait 0.9 ms in the arm: tick 0.5 ms later
        (450, 0),  # within a tenth of a period of the 0.4 ms target: leave it
        (120, 720),  # just made the arm's tick: never earlier; a period minus 0.28 ms later
        (1050, 650),  # just missed it (waited a whole period and the tick's work)
    ],
)
def test_shift_brings_the_arm_wait_to_the_target(loop, wait_us, shift_us) -> None:
    rng = np.random.default_rng(0)
    loop._arm_wait_ns = list(wait_us * 1000 + rng.integers(-20_000, 20_000, 300))
    got = loop._phase_shift_ns(PERIOD)
    assert abs(got - shift_us * 1000) < 25_000
    assert 0 <= got < PERIOD
    assert loop._arm_wait_ns == []  # a fresh window after each decision


def test_too_few_samples_no_shift(loop) -> None:
    loop._arm_wait_ns = [900_000] * 50
    assert loop._phase_shift_ns(PERIOD) == 0


def test_the_target_is_validated() -> None:
    with pytest.raises(ValueError, match="arm_wait_target_us"):
        ConsoleConfig(arm_wait_target_us=1500.0)
