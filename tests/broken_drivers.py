"""Deliberately broken arm drivers: the conformance kit must fail each with a pointed message.

Importable (``tests.broken_drivers:Millimetres``) so ``slave-arm check-driver`` can be pointed at
them too.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from slave_arm.driver import CartesianReading
from slave_arm.kinematic import KinematicArm


class AcceptsNaN(KinematicArm):
    """Forgets to check finiteness: NaN/inf poses become the setpoint."""

    def servo_cp(self, pose: Any) -> np.ndarray:
        try:
            return super().servo_cp(pose)
        except ValueError as exc:
            if "not finite" not in str(exc):
                raise
            self._setpoint = np.asarray(pose, dtype=np.float64).copy()
            return self._setpoint.copy()


class HoldDoesNothing(KinematicArm):
    """hold() is a no-op: the arm keeps going to the old target."""

    def hold(self) -> None:
        pass


class ZeroTimestamps(KinematicArm):
    """Stamps every reading 0."""

    def __init__(self) -> None:
        super().__init__(clock_ns=lambda: 0)


class Millimetres(KinematicArm):
    """Reports positions in millimetres (x1000) instead of metres."""

    def measured_cp(self) -> CartesianReading:
        r = super().measured_cp()
        pose = r.pose.copy()
        pose[:3] *= 1000.0
        return CartesianReading(pose, r.timestamp_ns)

    def setpoint_cp(self) -> CartesianReading:
        r = super().setpoint_cp()
        pose = r.pose.copy()
        pose[:3] *= 1000.0
        return CartesianReading(pose, r.timestamp_ns)


class SwapsXY(KinematicArm):
    """Reports the tool position as (y, x, z): not the base frame."""

    def measured_cp(self) -> CartesianReading:
        r = super().measured_cp()
        pose = r.pose.copy()
        pose[[0, 1]] = pose[[1, 0]]
        return CartesianReading(pose, r.timestamp_ns)


class TooSlow(KinematicArm):
    """update() takes 2 ms at a 1 kHz control rate."""

    def update(self) -> None:
        time.sleep(0.002)
        super().update()


class Coasting(KinematicArm):
    """A naive velocity-mode driver: turns each target into a velocity (from the previous
    target) and keeps applying it until the next command, so with no command it drifts on."""

    def __init__(self) -> None:
        super().__init__()
        self._velocity = np.zeros(3)
        self._last_target: np.ndarray | None = None

    def servo_cp(self, pose: Any) -> np.ndarray:
        prev = self._setpoint.copy() if self._last_target is None else self._last_target
        applied = super().servo_cp(pose)
        self._velocity = (applied[:3] - prev[:3]) * self._rate_hz
        self._last_target = applied.copy()
        return applied

    def hold(self) -> None:
        super().hold()
        self._velocity[:] = 0.0
        self._last_target = None

    def update(self) -> None:
        self._setpoint[:3] += self._velocity * self._dt_s
        super().update()


class PretendsHardware(KinematicArm):
    """The kinematic arm claiming to move real hardware (for the confirmation prompt)."""

    moves_hardware = True


class SlowToEnable(KinematicArm):
    """A valid driver whose drives take 50 update() calls to power after enable()."""

    ticks_to_power = 50

    def __init__(self) -> None:
        super().__init__()
        self._powering: int | None = None

    def enable(self) -> None:
        self._require_connected()
        self._powering = self.ticks_to_power

    def update(self) -> None:
        if self._powering is not None:
            self._powering -= 1
            if self._powering <= 0:
                self._powering = None
                super().enable()
        super().update()


class NeverEnables(SlowToEnable):
    """enable() never reaches ENABLED (drives that do not power)."""

    ticks_to_power = 10**9
