"""The driver's settings: :class:`AcmeArmConfig`, in our units (SI, named in every field).

Load one from a TOML file with :meth:`AcmeArmConfig.from_toml` (``acme_arm/acme_arm.toml`` is a
documented example holding the defaults), or let the driver build one from its keyword options
(``AcmeArm(control_mode="position")``, ``slave-arm --driver acme --driver-option KEY=VALUE``).
Every value is checked when the config is built; an error names the field and how to fix it.

Positions and limits are in the arm's **base frame**: x, y, z in metres with z up, the tool
tip's position; orientations as roll, pitch, yaw (rad) about the base x, y, z axes
(``R = Rz(yaw) · Ry(pitch) · Rx(roll)``). The vendor's units and frames never appear here:
they stay in :mod:`acme_arm.controller` and are converted in :mod:`acme_arm.driver`.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from slave_arm.kinematic import quaternion_to_rpy

BACKENDS = ("simulated", "vendor")
CONTROL_MODES = ("velocity", "position")


@dataclass(frozen=True)
class AcmeArmConfig:
    """Everything the ACME driver can be told; the defaults run the simulated arm."""

    # -- the link to the controller --------------------------------------------------------
    backend: str = "simulated"
    """``"simulated"`` (the model in :class:`~acme_arm.controller.SimulatedController`, no
    hardware) or ``"vendor"`` (the real arm, :class:`~acme_arm.controller.VendorController`)."""
    control_mode: str = "velocity"
    """``"velocity"``: the driver closes a joint-space position loop and streams joint
    velocities; ``"position"``: it streams joint positions and the controller interpolates."""
    controller_host: str = "192.168.10.2"
    """The controller's address (vendor backend)."""
    controller_port: int = 30200
    """The controller's port (vendor backend)."""
    controller_timeout_s: float = 2.0
    """How long to wait for the controller (connecting, one bus cycle) before giving up."""
    control_rate_hz: float = 1000.0
    """The control rate: one bus cycle per ``update()`` (the arm server ticks at this rate)."""

    # -- where the tool may go --------------------------------------------------------------
    workspace_min_m: tuple[float, float, float] = (-0.05, -0.05, -0.10)
    """The workspace box's lower corner (x, y, z m): ``servo_cp`` refuses targets outside."""
    workspace_max_m: tuple[float, float, float] = (0.05, 0.05, 0.0)
    """The workspace box's upper corner (x, y, z m)."""
    travel_min_m: tuple[float, float, float] = (-0.06, -0.06, -0.11)
    """The x, y, z axes' joint limits, lower (m); must contain the workspace box. The
    simulated controller's hard limits lie 2 mm beyond."""
    travel_max_m: tuple[float, float, float] = (0.06, 0.06, 0.01)
    """The x, y, z axes' joint limits, upper (m)."""
    wrist_min_rad: tuple[float, float, float] = (-2.6, -1.2, -2.6)
    """The wrist's joint limits, lower: roll, pitch, yaw (rad); pitch within ±1.5 rad (the
    roll/yaw singularity at ±π/2), roll and yaw within ±π."""
    wrist_max_rad: tuple[float, float, float] = (2.6, 1.2, 2.6)
    """The wrist's joint limits, upper: roll, pitch, yaw (rad)."""
    jaw_range_rad: tuple[float, float] = (0.0, 1.0)
    """The jaw's opening range (rad): ``servo_jaw`` refuses angles outside."""

    # -- limits the safety supervisor enforces (published in the arm's description) ---------
    max_tool_speed_m_s: float = 0.1
    """The fastest the tool tip may move (m/s)."""
    max_angular_speed_rad_s: float = 2.0
    """The fastest the tool may turn (rad/s)."""
    max_force_n: float = 8.0
    """The largest contact force allowed on the instrument (N)."""

    # -- the velocity-mode position loop ------------------------------------------------------
    position_gain_per_s: float = 25.0
    """Joint velocity per unit of position error (1/s): ``v = gain × (setpoint - measured)``.
    At most 0.2 × ``control_rate_hz`` (the loop rings above that)."""
    max_linear_joint_speed_m_s: float = 0.15
    """The x, y, z axes' speed limit (m/s): the loop's command and the controller's limit."""
    max_rotary_joint_speed_rad_s: float = 4.0
    """The wrist and jaw speed limit (rad/s)."""

    # -- home -----------------------------------------------------------------------------------
    home_pose: tuple[float, float, float, float, float, float, float] = (
        0.0,
        0.0,
        -0.03,
        0.0,
        0.0,
        0.0,
        1.0,
    )
    """Where ``home()`` takes the tool: x, y, z (m), qx, qy, qz, qw; inside the workspace."""
    home_jaw_rad: float = 0.5
    """The jaw opening ``home()`` sets (rad)."""
    home_position_tol_m: float = 1e-4
    """``home()`` is done (``is_busy`` False) when the tool is this close to home (m) ..."""
    home_angle_tol_rad: float = 1e-3
    """... its orientation and the jaw within this (rad)."""

    # -- the simulated backend only --------------------------------------------------------------
    sim_tissue_floor_z_m: float = -0.08
    """The simulated tissue surface: a floor at this base z (m); below it the tool feels a
    force (``measured_cf``). Below the workspace box to disable it."""
    sim_tissue_stiffness_n_m: float = 400.0
    """The simulated tissue's stiffness (N/m)."""

    # -- checking ---------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("backend", _choice("backend", self.backend, BACKENDS))
        put("control_mode", _choice("control_mode", self.control_mode, CONTROL_MODES))
        if not isinstance(self.controller_host, str) or not self.controller_host.strip():
            _bad(
                "controller_host",
                self.controller_host,
                'give a host name or address, e.g. "10.0.0.2"',
            )
        port = self.controller_port
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            _bad("controller_port", port, "give a TCP/UDP port number, 1 to 65535")
        for name in (
            "controller_timeout_s",
            "control_rate_hz",
            "max_tool_speed_m_s",
            "max_angular_speed_rad_s",
            "max_force_n",
            "position_gain_per_s",
            "max_linear_joint_speed_m_s",
            "max_rotary_joint_speed_rad_s",
            "home_position_tol_m",
            "home_angle_tol_rad",
            "sim_tissue_stiffness_n_m",
        ):
            put(name, _number(name, getattr(self, name), positive=True))
        for name in ("home_jaw_rad", "sim_tissue_floor_z_m"):
            put(name, _number(name, getattr(self, name)))
        for name, n in (
            ("workspace_min_m", 3),
            ("workspace_max_m", 3),
            ("travel_min_m", 3),
            ("travel_max_m", 3),
            ("wrist_min_rad", 3),
            ("wrist_max_rad", 3),
            ("jaw_range_rad", 2),
            ("home_pose", 7),
        ):
            put(name, _vector(name, getattr(self, name), n))
        self._check_consistency()

    def _check_consistency(self) -> None:
        if self.control_rate_hz > 10_000.0:
            _bad("control_rate_hz", self.control_rate_hz, "give a rate up to 10000 Hz")
        if self.position_gain_per_s > 0.2 * self.control_rate_hz:
            _bad(
                "position_gain_per_s",
                self.position_gain_per_s,
                f"at most 0.2 × control_rate_hz = {0.2 * self.control_rate_hz:g}/s, or the "
                "velocity loop rings",
            )
        axes = "xyz"
        for i in range(3):
            lo, hi = self.workspace_min_m[i], self.workspace_max_m[i]
            if not lo < hi:
                _bad(
                    "workspace_min_m",
                    self.workspace_min_m,
                    f"{axes[i]}: the minimum {lo} must be below workspace_max_m's {hi}",
                )
            if not self.travel_min_m[i] < self.travel_max_m[i]:
                _bad(
                    "travel_min_m",
                    self.travel_min_m,
                    f"{axes[i]}: the minimum must be below travel_max_m's {self.travel_max_m[i]}",
                )
            if lo < self.travel_min_m[i] or hi > self.travel_max_m[i]:
                _bad(
                    "workspace_min_m" if lo < self.travel_min_m[i] else "workspace_max_m",
                    (lo, hi),
                    f"{axes[i]}: the workspace box must lie within the travel "
                    f"[{self.travel_min_m[i]}, {self.travel_max_m[i]}] m; shrink the box",
                )
        names = ("roll", "pitch", "yaw")
        for i in range(3):
            lo, hi = self.wrist_min_rad[i], self.wrist_max_rad[i]
            bound = 1.5 if i == 1 else math.pi
            if not -bound <= lo < hi <= bound:
                _bad(
                    "wrist_min_rad" if not -bound <= lo < hi else "wrist_max_rad",
                    (lo, hi),
                    f"{names[i]}: need -{bound:.4g} <= min < max <= {bound:.4g} rad",
                )
        jlo, jhi = self.jaw_range_rad
        if not jlo < jhi:
            _bad("jaw_range_rad", self.jaw_range_rad, "give [min, max] with min < max (rad)")
        if not jlo <= self.home_jaw_rad <= jhi:
            _bad(
                "home_jaw_rad",
                self.home_jaw_rad,
                f"put it within jaw_range_rad {self.jaw_range_rad}",
            )
        home = self.home_pose
        qn = math.sqrt(sum(v * v for v in home[3:]))
        if abs(qn - 1.0) > 1e-6:
            _bad("home_pose", home, f"the quaternion (qx, qy, qz, qw) has norm {qn:.6g}: make it 1")
        for i in range(3):
            if not self.workspace_min_m[i] <= home[i] <= self.workspace_max_m[i]:
                _bad(
                    "home_pose",
                    home,
                    f"{axes[i]} = {home[i]} m is outside the workspace box; move home inside it",
                )
        rpy = quaternion_to_rpy(home[3:])
        for i in range(3):
            if not self.wrist_min_rad[i] <= rpy[i] <= self.wrist_max_rad[i]:
                _bad(
                    "home_pose",
                    home,
                    f"its {names[i]} {rpy[i]:.4f} rad is outside the wrist limits "
                    f"[{self.wrist_min_rad[i]}, {self.wrist_max_rad[i]}] rad",
                )

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "options") -> AcmeArmConfig:
        """From plain values (a TOML table, keyword options); unknown keys are an error."""
        return cls().with_options(values, source)

    def with_options(self, values: Mapping[str, Any], source: str = "options") -> AcmeArmConfig:
        """A copy with these fields replaced (TOML lists become tuples); unknown keys are an
        error naming them and listing the valid ones."""
        valid = self.field_names()
        unknown = [k for k in values if k not in valid]
        if unknown:
            raise ValueError(
                f"{source}: unknown setting(s) {', '.join(map(repr, unknown))}; the settings "
                f"are AcmeArmConfig's fields: {', '.join(valid)}"
            )
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return dataclasses.replace(self, **fixed)

    @classmethod
    def from_toml(cls, path: str | Path) -> AcmeArmConfig:
        """Read a TOML file: its ``[driver]`` table if it has one, else its top level (the same
        rule as ``slave-arm --driver-config``). Missing keys keep their defaults."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"ACME arm config {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"ACME arm config {p} is not valid TOML: {exc}") from None
        table = data.get("driver", data)
        if not isinstance(table, dict):
            raise ValueError(f"ACME arm config {p}: [driver] must be a table")
        return cls.from_mapping(table, source=str(p))


def load_config(config: AcmeArmConfig | str | Path | None) -> AcmeArmConfig:
    """A config from a config, a TOML file path, or None (the defaults)."""
    if config is None:
        return AcmeArmConfig()
    if isinstance(config, AcmeArmConfig):
        return config
    if isinstance(config, str | Path):
        return AcmeArmConfig.from_toml(config)
    raise ValueError(
        f"config must be an AcmeArmConfig, a TOML file path or None, got {type(config).__name__}"
    )


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _bad(name: str, value: Any, fix: str) -> NoReturn:
    raise ValueError(f"AcmeArmConfig.{name} = {value!r}: {fix}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        _bad(name, value, "use " + " or ".join(f'"{c}"' for c in choices))
    return str(value)


def _number(name: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _bad(name, value, "give a number")
    v = float(value)
    if not math.isfinite(v):
        _bad(name, value, "give a finite number")
    if positive and v <= 0.0:
        _bad(name, value, "give a number above 0")
    return v


def _vector(name: str, value: Any, n: int) -> tuple[float, ...]:
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != n:
        _bad(name, value, f"give a list of {n} numbers")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            _bad(name, value, f"give a list of {n} finite numbers")
        out.append(float(v))
    return tuple(out)
