"""The arm and the scene, built into a PyBullet client: shared by the physics and the camera.

Everything is in the arm's base frame (the world frame here): the RCM at the origin, z up. The
scene lies below the workspace box (tool tip x, y in [-0.1, 0.1] m, z in [-0.2, -0.02] m):

* a table (static box), top at z = -0.200 m;
* a tissue pad (static box, soft contact: stiffness ``PAD_STIFFNESS_N_M`` and damping
  ``PAD_DAMPING_N_S_M`` per contact point, ~1 N/mm under the closed jaws), 120 x 60 x 20 mm,
  top at z = -0.180 m, centred at y = -0.055 m;
* an FLS-style peg board (one static compound body: a board 190 x 80 x 8 mm, top at
  z = -0.192 m, centred at y = +0.05 m, and 6 pegs per side, 4 mm diameter, 25 mm tall);
* rings (one dynamic compound body each: four boxes around an open square, 18 mm across, 12 mm
  hole, 5 mm tall, 2 g) resting on the pegs of the left side;
* touch targets: small discs on the tissue pad, visual only (no collision), positions reported.

Placement (which pegs hold rings, the rings' turn about their peg, the targets' positions) is
drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybullet as p

ASSET_DIR = Path(__file__).resolve().parent / "assets"
URDF_PATH = ASSET_DIR / "rcm_arm.urdf"
"""The arm's URDF (our own, see the file's header)."""

ARM_JOINTS: tuple[str, ...] = (
    "yaw_joint",
    "pitch_joint",
    "insertion_joint",
    "roll_joint",
    "wrist_pitch_joint",
    "wrist_yaw_joint",
)
JAW_JOINTS: tuple[str, str] = ("jaw_a_joint", "jaw_b_joint")
INSTRUMENT_LINKS: tuple[str, ...] = (
    "shaft_link",
    "wrist_link",
    "jaw_base_link",
    "jaw_a_link",
    "jaw_b_link",
)
"""The links whose contacts make the measured wrench (the instrument beyond the RCM)."""
TOOL_LINK = "tool_tip_link"

TABLE_TOP_Z = -0.200
PAD_CENTER = (0.0, -0.055)
PAD_SIZE = (0.12, 0.06, 0.02)
PAD_TOP_Z = TABLE_TOP_Z + PAD_SIZE[2]
PAD_STIFFNESS_N_M = 125.0
"""The tissue pad's contact stiffness per contact point (PyBullet's soft contact). The closed
jaws touch it at 8 points (4 per finger): ~1 N per mm of indentation (soft tissue: 0.1-1 N/mm)."""
PAD_DAMPING_N_S_M = 5.0
BOARD_CENTER = (0.0, 0.05)
BOARD_SIZE = (0.19, 0.08, 0.008)
BOARD_TOP_Z = TABLE_TOP_Z + BOARD_SIZE[2]
PEG_RADIUS_M = 0.002
PEG_HEIGHT_M = 0.025
PEG_X = (-0.08, -0.05, -0.02, 0.02, 0.05, 0.08)
"""Peg columns: the first three are the left side, the last three the right side."""
PEG_Y = (0.035, 0.065)
RING_OUTER_M = 0.018
RING_WALL_M = 0.003
RING_HEIGHT_M = 0.005
RING_MASS_KG = 0.002
RING_MAX_TURN_RAD = 0.5
"""The rings' turn about their peg is drawn from [-0.5, 0.5] rad (they never touch each other)."""
TARGET_RADIUS_M = 0.004


def peg_positions() -> list[tuple[float, float]]:
    """The 12 pegs' (x, y), left side first (6 per side)."""
    left = [(x, y) for x in PEG_X[:3] for y in PEG_Y]
    right = [(x, y) for x in PEG_X[3:] for y in PEG_Y]
    return left + right


@dataclass(frozen=True)
class ArmHandles:
    """The arm body in one client: body id and joint/link indices."""

    body: int
    arm_joints: tuple[int, ...]
    jaw_joints: tuple[int, int]
    instrument_links: tuple[int, ...]
    tool_link: int
    jaw_a_link: int
    jaw_b_link: int
    jaw_base_link: int

    @property
    def all_joints(self) -> tuple[int, ...]:
        return self.arm_joints + self.jaw_joints


@dataclass(frozen=True)
class Scene:
    """The scene's bodies in one client, and what the seed decided."""

    seed: int
    table: int
    pad: int
    board: int
    rings: tuple[int, ...]
    ring_pegs: tuple[int, ...]
    """For each ring, the index (in :func:`peg_positions`) of the peg it started on."""
    ring_start_poses: tuple[tuple[float, ...], ...]
    targets: tuple[int, ...]
    target_positions: np.ndarray = field(repr=False)
    """(n, 3) positions of the touch targets (m)."""


def load_arm(client: int) -> ArmHandles:
    """Load the arm URDF with its base fixed at the origin (the RCM)."""
    body = p.loadURDF(
        str(URDF_PATH),
        basePosition=(0.0, 0.0, 0.0),
        useFixedBase=True,
        flags=p.URDF_USE_INERTIA_FROM_FILE,
        physicsClientId=client,
    )
    joints: dict[str, int] = {}
    links: dict[str, int] = {}
    for j in range(p.getNumJoints(body, physicsClientId=client)):
        info = p.getJointInfo(body, j, physicsClientId=client)
        joints[info[1].decode()] = j
        links[info[12].decode()] = j
    return ArmHandles(
        body=body,
        arm_joints=tuple(joints[n] for n in ARM_JOINTS),
        jaw_joints=(joints[JAW_JOINTS[0]], joints[JAW_JOINTS[1]]),
        instrument_links=tuple(links[n] for n in INSTRUMENT_LINKS),
        tool_link=links[TOOL_LINK],
        jaw_a_link=links["jaw_a_link"],
        jaw_b_link=links["jaw_b_link"],
        jaw_base_link=links["jaw_base_link"],
    )


def _static_box(client: int, center: tuple[float, ...], size: tuple[float, ...], rgba) -> int:
    half = [s / 2 for s in size]
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=client)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=client)
    return p.createMultiBody(0.0, col, vis, center, physicsClientId=client)


def _board(client: int) -> int:
    """The peg board: one static compound body (board + 12 pegs)."""
    bx, by, bz = BOARD_SIZE
    center = (BOARD_CENTER[0], BOARD_CENTER[1], TABLE_TOP_Z + bz / 2)
    pegs = peg_positions()
    peg_z = bz / 2 + PEG_HEIGHT_M / 2
    types = [p.GEOM_BOX] + [p.GEOM_CYLINDER] * len(pegs)
    half = [[bx / 2, by / 2, bz / 2]] + [[0.0, 0.0, 0.0]] * len(pegs)
    radii = [0.0] + [PEG_RADIUS_M] * len(pegs)
    lengths = [0.0] + [PEG_HEIGHT_M] * len(pegs)
    frames = [[0.0, 0.0, 0.0]] + [[x - center[0], y - center[1], peg_z] for x, y in pegs]
    col = p.createCollisionShapeArray(
        shapeTypes=types,
        halfExtents=half,
        radii=radii,
        lengths=lengths,
        collisionFramePositions=frames,
        physicsClientId=client,
    )
    colors = [[0.55, 0.35, 0.2, 1.0]] + [[0.9, 0.9, 0.85, 1.0]] * len(pegs)
    vis = p.createVisualShapeArray(
        shapeTypes=types,
        halfExtents=half,
        radii=radii,
        lengths=lengths,
        rgbaColors=colors,
        visualFramePositions=frames,
        physicsClientId=client,
    )
    return p.createMultiBody(0.0, col, vis, center, physicsClientId=client)


def _ring_shapes(client: int) -> tuple[int, int]:
    """A square ring: four boxes around a hole (one compound collision shape)."""
    o, w, h = RING_OUTER_M / 2, RING_WALL_M, RING_HEIGHT_M / 2
    mid = o - w / 2
    half = [[w / 2, o, h], [w / 2, o, h], [o - w, w / 2, h], [o - w, w / 2, h]]
    frames = [[mid, 0.0, 0.0], [-mid, 0.0, 0.0], [0.0, mid, 0.0], [0.0, -mid, 0.0]]
    types = [p.GEOM_BOX] * 4
    col = p.createCollisionShapeArray(
        shapeTypes=types, halfExtents=half, collisionFramePositions=frames, physicsClientId=client
    )
    vis = p.createVisualShapeArray(
        shapeTypes=types,
        halfExtents=half,
        visualFramePositions=frames,
        rgbaColors=[[0.95, 0.55, 0.1, 1.0]] * 4,
        physicsClientId=client,
    )
    return col, vis


@dataclass(frozen=True)
class SceneLayout:
    """What the seed decides, computed without PyBullet (the tasks read it before connect)."""

    seed: int
    ring_pegs: tuple[int, ...]
    """For each ring, the index (in :func:`peg_positions`) of the peg it starts on."""
    ring_turns: tuple[float, ...]
    """Each ring's turn about its peg (rad)."""
    target_positions: np.ndarray = field(repr=False)
    """(n, 3) positions of the touch targets on the tissue pad (m)."""

    @property
    def ring_start_positions(self) -> np.ndarray:
        """(n, 3) ring centres as placed: on the board, around their pegs (m)."""
        pegs = peg_positions()
        z = BOARD_TOP_Z + RING_HEIGHT_M / 2
        return np.array([(pegs[i][0], pegs[i][1], z) for i in self.ring_pegs]).reshape(-1, 3)


def scene_layout(seed: int = 0, n_rings: int = 3, n_targets: int = 4) -> SceneLayout:
    """The seeded placement :func:`build_scene` uses (same seed, same layout; no PyBullet)."""
    rng = np.random.default_rng(seed)
    n_rings = min(n_rings, 6)
    ring_pegs = tuple(int(i) for i in rng.choice(6, size=n_rings, replace=False))
    turns = tuple(float(rng.uniform(-RING_MAX_TURN_RAD, RING_MAX_TURN_RAD)) for _ in range(n_rings))
    # touch targets: discs on the tissue pad, at least 15 mm from its edges and from each other
    margin = 0.015
    positions: list[np.ndarray] = []
    while len(positions) < n_targets:
        xy = rng.uniform(
            (PAD_CENTER[0] - PAD_SIZE[0] / 2 + margin, PAD_CENTER[1] - PAD_SIZE[1] / 2 + margin),
            (PAD_CENTER[0] + PAD_SIZE[0] / 2 - margin, PAD_CENTER[1] + PAD_SIZE[1] / 2 - margin),
        )
        cand = np.array([xy[0], xy[1], PAD_TOP_Z])
        if all(np.linalg.norm(cand[:2] - q[:2]) >= margin for q in positions):
            positions.append(cand)
    return SceneLayout(
        seed=seed,
        ring_pegs=ring_pegs,
        ring_turns=turns,
        target_positions=np.array(positions).reshape(-1, 3),
    )


def build_scene(client: int, seed: int = 0, n_rings: int = 3, n_targets: int = 4) -> Scene:
    """Create the table, tissue pad, peg board, rings and targets in ``client`` (deterministic:
    the placement is :func:`scene_layout`)."""
    layout = scene_layout(seed, n_rings, n_targets)
    table = _static_box(
        client, (0.0, 0.0, TABLE_TOP_Z - 0.005), (0.4, 0.4, 0.01), [0.3, 0.32, 0.35, 1.0]
    )
    pad = _static_box(
        client,
        (PAD_CENTER[0], PAD_CENTER[1], TABLE_TOP_Z + PAD_SIZE[2] / 2),
        PAD_SIZE,
        [0.85, 0.45, 0.45, 1.0],
    )
    p.changeDynamics(
        pad,
        -1,
        contactStiffness=PAD_STIFFNESS_N_M,
        contactDamping=PAD_DAMPING_N_S_M,
        lateralFriction=0.6,
        physicsClientId=client,
    )
    board = _board(client)
    p.changeDynamics(board, -1, lateralFriction=0.5, physicsClientId=client)

    pegs = peg_positions()
    ring_pegs = layout.ring_pegs
    col, vis = _ring_shapes(client)
    rings = []
    starts = []
    for peg, turn in zip(ring_pegs, layout.ring_turns, strict=True):
        pos = (pegs[peg][0], pegs[peg][1], BOARD_TOP_Z + RING_HEIGHT_M / 2)
        orn = p.getQuaternionFromEuler((0.0, 0.0, turn))
        body = p.createMultiBody(RING_MASS_KG, col, vis, pos, orn, physicsClientId=client)
        p.changeDynamics(
            body,
            -1,
            lateralFriction=0.8,
            spinningFriction=0.001,
            rollingFriction=0.0,
            physicsClientId=client,
        )
        rings.append(body)
        starts.append((*pos, *orn))

    positions = list(layout.target_positions)
    target_vis = p.createVisualShape(
        p.GEOM_CYLINDER,
        radius=TARGET_RADIUS_M,
        length=0.0006,
        rgbaColor=[0.1, 0.8, 0.2, 1.0],
        physicsClientId=client,
    )
    targets = tuple(
        p.createMultiBody(0.0, -1, target_vis, (t[0], t[1], t[2] + 0.0003), physicsClientId=client)
        for t in positions
    )
    return Scene(
        seed=seed,
        table=table,
        pad=pad,
        board=board,
        rings=tuple(rings),
        ring_pegs=ring_pegs,
        ring_start_poses=tuple(starts),
        targets=targets,
        target_positions=np.array(positions).reshape(-1, 3),
    )


def ring_wall_grasp_pose(ring_pose: tuple[float, ...] | np.ndarray, along_m: float = 0.0035):
    """A tool pose that grasps a ring's +x wall from above (x, y, z m; qx, qy, qz, qw).

    The jaws straddle the wall (they close along the ring's x axis), ``along_m`` along the wall
    from its middle (clear of the peg in the hole), the jaw tips 1.5 mm above the board.
    """
    pos = np.asarray(ring_pose[:3], dtype=np.float64)
    qx, qy, qz, qw = (float(v) for v in ring_pose[3:7])
    turn = math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))
    c, s = math.cos(turn), math.sin(turn)
    mid = RING_OUTER_M / 2 - RING_WALL_M / 2
    x = pos[0] + c * mid - s * along_m
    y = pos[1] + s * mid + c * along_m
    z = BOARD_TOP_Z + 0.0015
    return np.array([x, y, z, 0.0, 0.0, math.sin(turn / 2), math.cos(turn / 2)])
