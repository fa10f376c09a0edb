"""The telesurgery driver conformance kit, run on the ACME arm.

``conformance_check`` and the ``hardware`` marker come from the pytest plug-in installed with
telesurgery: a test that asks for ``conformance_check`` runs once per check of the kit, and the
kit's report is printed in pytest's summary.

* The simulated arm, in both control modes: runs everywhere (CI included).
* The real arm: only with ``pytest --hardware`` (the operator's confirmation that the arm may
  move: workspace clear, e-stop at hand) and ``ACME_ARM_CONFIG`` naming its config file.
"""

from __future__ import annotations

import os

import pytest
from acme_arm.driver import AcmeArm


@pytest.mark.parametrize("control_mode", ["velocity", "position"])
def test_simulated_arm_conforms(conformance_check, control_mode: str) -> None:
    conformance_check(AcmeArm, control_mode=control_mode)


@pytest.mark.hardware
def test_real_arm_conforms(conformance_check) -> None:
    path = os.environ.get("ACME_ARM_CONFIG")
    if not path:
        pytest.skip(
            "set ACME_ARM_CONFIG to the real arm's config file (TOML, see acme_arm/acme_arm.toml) "
            "to run the kit on it"
        )
    conformance_check(AcmeArm, config=path, backend="vendor")
