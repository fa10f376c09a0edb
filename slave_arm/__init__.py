"""The patient side: the driver interface, the safety supervisor and the arm server.

- :class:`ArmDriver` (``slave_arm/driver.py``): the one class a hardware integrator writes, with
  CRTK names; drivers register in the entry-point group ``telesurgery.arm_drivers``.
- :class:`SafetySupervisor` (``slave_arm/safety.py``): workspace, speed, jaw and force limits,
  watchdog, stale/duplicate command rejection, latched e-stop, as pure functions plus state.
- :class:`ArmServer` (``slave_arm/server.py``) and the ``slave-arm`` command (``cli.py``).
- ``slave_arm/conformance.py``: the contract every driver must pass;
  ``slave_arm/kinematic.py``: a minimal arm without physics.

This package uses :mod:`network` and nothing else of the project; the simulator (``sim``) is
just one driver.
"""

from slave_arm.driver import (
    ArmDriver,
    CartesianReading,
    DriverError,
    JawReading,
    JointReading,
    NotEnabledError,
    OperatingState,
    WrenchReading,
)
from slave_arm.safety import Decision, SafetyConfig, SafetySupervisor
from slave_arm.server import ArmServer, ServerStats

__all__ = [
    "ArmDriver",
    "ArmServer",
    "CartesianReading",
    "Decision",
    "DriverError",
    "JawReading",
    "JointReading",
    "NotEnabledError",
    "OperatingState",
    "SafetyConfig",
    "SafetySupervisor",
    "ServerStats",
    "WrenchReading",
]
