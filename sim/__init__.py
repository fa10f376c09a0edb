"""sim: the PyBullet simulator: the RCM instrument arm, the scene, the endoscope camera.

* :class:`SimArm` (``sim.arm``): the ``"sim"`` :class:`~slave_arm.driver.ArmDriver`.
* :class:`SimWorld` (``sim.world``): the PyBullet world (arm, scene, joint control, contact
  force, grasping).
* :func:`ik`, :func:`fk`, :func:`fk_pose` (``sim.kinematics``): the analytic RCM kinematics.
* :class:`CameraProcess`, :class:`VideoFrameData` (``sim.camera``): the endoscope camera in its
  own process.
* :func:`build_scene`, :func:`scene_layout`, :func:`load_arm`, :data:`URDF_PATH` (``sim.scene``).
* :func:`make_task`, :data:`TASKS`, :class:`Task` (``sim.tasks``): the training tasks
  (``reach``, ``peg-transfer``, ``palpation``) a :class:`SimArm` runs with ``task=NAME``.

Names are imported on first use, so ``import sim`` stays cheap (PyBullet loads with the first).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SimArm": "sim.arm",
    "HOME_Q": "sim.arm",
    "SimWorld": "sim.world",
    "ArmSample": "sim.world",
    "IkResult": "sim.kinematics",
    "ik": "sim.kinematics",
    "fk": "sim.kinematics",
    "fk_pose": "sim.kinematics",
    "CameraProcess": "sim.camera",
    "CameraView": "sim.camera",
    "VideoFrameData": "sim.camera",
    "Scene": "sim.scene",
    "SceneLayout": "sim.scene",
    "build_scene": "sim.scene",
    "scene_layout": "sim.scene",
    "load_arm": "sim.scene",
    "URDF_PATH": "sim.scene",
    "TASKS": "sim.tasks",
    "Task": "sim.tasks",
    "make_task": "sim.tasks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
