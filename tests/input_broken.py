"""Input devices for the plug-in tests: one that behaves, and broken ones the kit must catch.

Importable as ``tests.input_broken`` so that ``master-console check-input
tests.input_broken:Millimetres`` (a ``module:Class`` name) can load them in a subprocess.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np

from master_console.devices import Buttons, InputSample, ThreadedDevice


class GoodDevice(ThreadedDevice):
    """A well-behaved 200 Hz pose device: a 1 cm circle, clutch toggling every 0.25 s."""

    name: ClassVar[str] = "good"
    position_range_m = ((-0.05, -0.05, -0.05), (0.05, 0.05, 0.05))
    jaw_range_rad = (0.0, 1.0)

    def __init__(self, rate_hz: float = 200.0, radius_m: float = 0.01, label: str = "") -> None:
        super().__init__(rate_hz)
        self.radius_m = radius_m
        self.label = label
        self._n = 0

    def position(self, t_s: float) -> np.ndarray:
        r = self.radius_m
        return np.array([r * math.cos(2 * t_s), r * math.sin(2 * t_s), 0.0])

    def stamp(self) -> int:
        return time.monotonic_ns()

    def seq(self, n: int) -> int:
        return n

    def buttons(self, n: int) -> Buttons:
        return Buttons(clutch=(n // 50) % 2 == 0, operator_present=True)

    def make_sample(self, n: int) -> InputSample:
        t = self.stamp()
        pose = np.concatenate([self.position(time.monotonic()), [0.0, 0.0, 0.0, 1.0]])
        pose.setflags(write=False)
        return InputSample(
            t_ns=t, pose=pose, twist=None, jaw=0.3, buttons=self.buttons(n), seq=self.seq(n)
        )

    def read_once(self) -> InputSample | None:
        self._n += 1
        return self.make_sample(self._n)


class Millimetres(GoodDevice):
    """Broken: reports positions in millimetres."""

    def position(self, t_s: float) -> np.ndarray:
        return super().position(t_s) * 1000.0


class RateInputDevice(GoodDevice):
    """A rate device (its pose is integrated): the console runs no tremor filter for it."""

    rate_input = True


class NotADevice:
    """Registered by mistake: not an InputDevice."""

    def __init__(self, **options: Any) -> None:
        self.options = options


__all__ = ["GoodDevice", "Millimetres", "NotADevice", "RateInputDevice"]
