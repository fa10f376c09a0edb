"""A template driver package for the telesurgery arm server: the ACME gantry arm.

Copy this package, rename it, and replace the vendor calls in :mod:`acme_arm.controller`
(``VendorController``) and the joint table in :mod:`acme_arm.driver`. See the README.
"""

from acme_arm.config import AcmeArmConfig
from acme_arm.driver import AcmeArm

__all__ = ["AcmeArm", "AcmeArmConfig"]
__version__ = "0.1.0"
