"""The vendor boundary: the arm's controller, in the *vendor's* units and conventions.

Everything in this module speaks the controller's language, on purpose not ours, so that the
one place where units and frames are converted is easy to find (:mod:`acme_arm.driver`):

* positions in **millimetres** (linear axes) and **degrees** (rotary axes), velocities in mm/s
  and deg/s, motor currents in amperes;
* the controller's own **axis order** :data:`AXES`: ``X, Y, Z`` (the gantry), ``C, B, A`` (the
  wrist, proximal to distal: rotations about the machine Z, Y, X axes, as on a 5-axis machine
  tool) and ``G`` (the gripper jaw);
* the **machine frame**: X as our base x, but Y and Z reversed (Z counts insertion depth,
  positive *down*); positions are machine coordinates from each axis's reference mark;
* the wrist force/torque sensor reports N and **N·mm** in the **sensor frame** (which turns
  with the wrist), about the sensor's own origin, not the tool tip;
* **controller time** in microseconds since the controller started.

:class:`Controller` is the interface the driver uses: one :meth:`Controller.exchange` per bus
cycle (send one :class:`Command`, receive one :class:`Feedback`). Two implementations:

* :class:`SimulatedController`: a cycle-synchronous model of the arm, for development, tests and
  demonstrations without hardware (each ``exchange()`` advances exactly one control period,
  whatever the wall-clock time, so runs are deterministic and fast);
* :class:`VendorController`: the skeleton for the real SDK. Every method raises
  ``NotImplementedError`` naming the vendor call that belongs there. **This class is the one
  place an integrator fills in.**
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

AXES: tuple[str, ...] = ("X", "Y", "Z", "C", "B", "A", "G")
"""The controller's axes, in the order of every vector it sends and receives."""
LINEAR_AXES: tuple[bool, ...] = (True, True, True, False, False, False, False)
"""Which axes are linear (mm, mm/s) rather than rotary (deg, deg/s)."""
N_AXES = len(AXES)


class FaultBit(enum.IntFlag):
    """The controller's fault word (:attr:`Feedback.fault_bits`); any bit set stops motion."""

    ESTOP = 0x01
    """The emergency-stop circuit is open."""
    JOINT_LIMIT = 0x02
    """An axis reached its hard travel limit."""
    NOT_POWERED = 0x04
    """A motion command arrived while the drives were powered off."""
    FOLLOWING_ERROR = 0x08
    """An axis lagged too far behind its command."""
    OVERCURRENT = 0x10
    """A motor drew more than its rated current."""
    COMM_TIMEOUT = 0x20
    """The controller missed commands from the host."""


def fault_names(bits: int) -> str:
    """The fault word as names, e.g. ``"ESTOP|JOINT_LIMIT"`` (``"none"`` when 0)."""
    if not bits:
        return "none"
    names = [f.name for f in FaultBit if f & bits and f.name]
    unknown = bits & ~sum(FaultBit)
    if unknown:
        names.append(f"0x{unknown:x}")
    return "|".join(names)


class ControllerError(RuntimeError):
    """The controller refused a request or the link to it failed (the SDK's own errors)."""


@dataclass(frozen=True, slots=True)
class Command:
    """One cycle's command, in the controller's axis order (:data:`AXES`).

    ``mode="velocity"``: ``values`` are joint velocities (mm/s, deg/s).
    ``mode="position"``: ``values`` are joint positions (mm, deg); the controller interpolates
    toward them with its own velocity and acceleration limits.
    """

    mode: Literal["velocity", "position"]
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Feedback:
    """One cycle's feedback, in the controller's axis order, units and frames."""

    controller_time_us: int
    """The controller's clock (µs since it started); advances one period per cycle."""
    powered: bool
    """The drives are powered and the brakes released."""
    fault_bits: int
    """:class:`FaultBit` flags; 0 when healthy."""
    joint_position: tuple[float, ...]
    """mm (X, Y, Z: machine coordinates) and deg (C, B, A, G)."""
    joint_velocity: tuple[float, ...]
    """mm/s and deg/s."""
    motor_current_a: tuple[float, ...]
    """Motor currents (A), signed along each axis's positive direction."""
    ft_sensor: tuple[float, ...]
    """The wrist sensor: fx, fy, fz (N), tx, ty, tz (N·mm) on the instrument, in the sensor
    frame, about the sensor's origin (up the instrument shaft from the tool tip)."""


class Controller(ABC):
    """The arm's controller, as the driver uses it. Vendor units, order and frames throughout.

    Lifecycle: :meth:`open` once, then one :meth:`exchange` per control period (the arm server
    paces the calls), :meth:`power` and :meth:`clear_faults` between cycles, :meth:`close` at
    the end. All from one thread.
    """

    period_us: int
    """The bus cycle (µs)."""

    @abstractmethod
    def open(self) -> None:
        """Connect to the controller and start cyclic exchange. Drives stay powered off."""

    @abstractmethod
    def close(self) -> None:
        """Power off (brakes on) and disconnect. Idempotent."""

    @abstractmethod
    def power(self, on: bool) -> None:
        """Request drive power on (brakes released after a short delay, seen in
        :attr:`Feedback.powered`) or off (brakes on at once). Raises :class:`ControllerError`
        when power-on is refused (a fault is active)."""

    @abstractmethod
    def clear_faults(self) -> None:
        """Acknowledge the faults; bits whose cause persists (a pressed e-stop) stay set."""

    @abstractmethod
    def exchange(self, command: Command | None) -> Feedback:
        """One bus cycle: send ``command`` (None: no motion command, feedback only) and return
        the feedback sampled in this cycle."""


# ---------------------------------------------------------------------------------------------
# The simulated controller
# ---------------------------------------------------------------------------------------------
SIM_MAX_ACCELERATION: tuple[float, ...] = (5000.0, 5000.0, 5000.0, 3500.0, 3500.0, 3500.0, 3500.0)
"""The simulated drives' acceleration limits (mm/s², deg/s²), in :data:`AXES` order."""
SIM_MOVING_MASS: tuple[float, ...] = (2.0, 1.5, 0.6, 2e-4, 2e-4, 1e-4, 5e-5)
"""What each simulated motor moves: kg (linear axes) and kg·m² (rotary; Z is counterbalanced)."""
SIM_MOTOR_CONSTANT: tuple[float, ...] = (25.0, 25.0, 20.0, 0.04, 0.04, 0.04, 0.02)
"""Simulated motor constants: N/A (linear axes) and N·m/A (rotary)."""
SIM_BRAKE_RELEASE_US = 20_000
"""How long the simulated drives take to power up and release the brakes (µs)."""


def rotation_zyx(c_deg: float, b_deg: float, a_deg: float) -> tuple[tuple[float, ...], ...]:
    """``Rz(C) · Ry(B) · Rx(A)`` as three rows (the wrist's orientation in the machine frame)."""
    cz, sz = math.cos(math.radians(c_deg)), math.sin(math.radians(c_deg))
    cy, sy = math.cos(math.radians(b_deg)), math.sin(math.radians(b_deg))
    cx, sx = math.cos(math.radians(a_deg)), math.sin(math.radians(a_deg))
    return (
        (cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx),
        (sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx),
        (-sy, cy * sx, cy * cx),
    )


class SimulatedController(Controller):
    """A cycle-synchronous model of the ACME gantry arm, behind the vendor's interface.

    The plant: three linear axes X, Y, Z (mm) carrying a wrist C, B, A (deg) whose axes meet
    at the tool tip, and a gripper jaw G (deg). Each axis has a velocity and an acceleration
    limit; the controller never exceeds them.

    * ``velocity`` commands: each axis accelerates toward the commanded velocity (clipped to
      its limit). A cycle without a command decelerates every axis to rest.
    * ``position`` commands: the controller's own interpolator moves each axis toward the
      setpoint on a velocity- and acceleration-limited profile that stops on it.
    * Faults, like the hardware: an axis about to leave ``[lower, upper]`` stops at the limit
      and raises JOINT_LIMIT; a command while the drives are off raises NOT_POWERED; any fault
      stops all motion at once and drops drive power. :meth:`press_estop` opens the e-stop
      circuit; :meth:`inject_fault` sets any bit (for tests).
    * A virtual tissue surface: a horizontal floor at machine depth ``floor_depth_mm``
      (Z positive down); below it the instrument feels ``stiffness_n_per_mm`` × depth, pushing
      it back up, reported by the wrist sensor in its own frame (:attr:`Feedback.ft_sensor`)
      and felt by the Z motor (:attr:`Feedback.motor_current_a`).

    Args:
        period_us: the control period (µs); every ``exchange()`` advances exactly this much.
        lower, upper: the hard travel limits (mm, deg) in :data:`AXES` order.
        max_velocity: the drives' velocity limits (mm/s, deg/s), in :data:`AXES` order.
        start: the joint positions at power-up (mm, deg).
        floor_depth_mm: the tissue surface's machine depth Z (mm); ``math.inf`` for none.
        stiffness_n_per_mm: the tissue's stiffness (N/mm).
        sensor_to_tip_mm: the instrument: the tool tip lies this far along the force sensor's
            +z axis (the sensor's torques are about its own origin).
    """

    def __init__(
        self,
        period_us: int,
        lower: Sequence[float],
        upper: Sequence[float],
        max_velocity: Sequence[float],
        start: Sequence[float],
        floor_depth_mm: float = math.inf,
        stiffness_n_per_mm: float = 0.4,
        sensor_to_tip_mm: float = 0.0,
    ) -> None:
        for name, v in (
            ("lower", lower),
            ("upper", upper),
            ("max_velocity", max_velocity),
            ("start", start),
        ):
            if len(v) != N_AXES:
                raise ValueError(f"{name} must have {N_AXES} values ({', '.join(AXES)})")
        self.period_us = int(period_us)
        self._dt = self.period_us * 1e-6
        self._lo = [float(v) for v in lower]
        self._hi = [float(v) for v in upper]
        self._vmax = [float(v) for v in max_velocity]
        self._dv = [a * self._dt for a in SIM_MAX_ACCELERATION]  # per-cycle velocity change
        self._amax = list(SIM_MAX_ACCELERATION)
        self._start = [float(v) for v in start]
        for i, axis in enumerate(AXES):
            if not self._lo[i] <= self._start[i] <= self._hi[i]:
                raise ValueError(f"start {axis} = {self._start[i]} is outside its travel limits")
        self._floor = float(floor_depth_mm)
        self._k = float(stiffness_n_per_mm)
        self._lever_mm = float(sensor_to_tip_mm)
        self._open = False
        self._reset_state()

    def _reset_state(self) -> None:
        self._time_us = 0
        self._pos = list(self._start)
        self._vel = [0.0] * N_AXES
        self._acc = [0.0] * N_AXES
        self._powered = False
        self._power_at_us: int | None = None  # when a requested power-up completes
        self._faults = 0
        self._estop = False

    # -- Controller ----------------------------------------------------------------------------
    def open(self) -> None:
        """Start the model at its start pose, powered off, no faults."""
        self._reset_state()
        self._open = True

    def close(self) -> None:
        self._powered = False
        self._power_at_us = None
        self._open = False

    def power(self, on: bool) -> None:
        self._require_open()
        if not on:
            self._powered = False
            self._power_at_us = None
            self._vel = [0.0] * N_AXES
            return
        if self._faults:
            raise ControllerError(f"power-on refused: active faults {fault_names(self._faults)}")
        if not self._powered and self._power_at_us is None:
            self._power_at_us = self._time_us + SIM_BRAKE_RELEASE_US

    def clear_faults(self) -> None:
        self._require_open()
        self._faults = FaultBit.ESTOP if self._estop else 0

    def exchange(self, command: Command | None) -> Feedback:
        self._require_open()
        self._time_us += self.period_us
        if self._power_at_us is not None and self._time_us >= self._power_at_us:
            self._powered = True
            self._power_at_us = None
        if command is not None and not self._powered:
            self._fault(FaultBit.NOT_POWERED)
        if self._powered and not self._faults:
            self._move(command)
        else:
            self._vel = [0.0] * N_AXES
            self._acc = [0.0] * N_AXES
        return self._feedback()

    # -- test hooks ----------------------------------------------------------------------------
    def press_estop(self) -> None:
        """Open the e-stop circuit: ESTOP fault (until :meth:`release_estop` and a clear)."""
        self._estop = True
        self._fault(FaultBit.ESTOP)

    def release_estop(self) -> None:
        """Close the e-stop circuit; the ESTOP bit stays until :meth:`clear_faults`."""
        self._estop = False

    def inject_fault(self, bits: int) -> None:
        """Raise these fault bits now, as if the hardware had (e.g. OVERCURRENT)."""
        self._fault(bits)

    # -- the model -----------------------------------------------------------------------------
    def _require_open(self) -> None:
        if not self._open:
            raise ControllerError("the controller is not open")

    def _fault(self, bits: int) -> None:
        self._faults |= int(bits)
        self._powered = False
        self._power_at_us = None
        self._vel = [0.0] * N_AXES
        self._acc = [0.0] * N_AXES

    def _move(self, command: Command | None) -> None:
        dt, pos, vel = self._dt, self._pos, self._vel
        if command is None:
            target = [0.0] * N_AXES
        elif command.mode == "velocity":
            target = [max(-m, min(m, v)) for v, m in zip(command.values, self._vmax, strict=True)]
        else:  # position: a profile that stops on the setpoint
            target = []
            for i in range(N_AXES):
                e = command.values[i] - pos[i]
                reach = min(self._vmax[i], math.sqrt(2.0 * self._amax[i] * abs(e)), abs(e) / dt)
                target.append(math.copysign(reach, e))
        new_pos = [0.0] * N_AXES
        for i in range(N_AXES):
            dv = max(-self._dv[i], min(self._dv[i], target[i] - vel[i]))
            v = vel[i] + dv
            self._acc[i] = dv / dt
            vel[i] = v
            new_pos[i] = pos[i] + v * dt
        for i in range(N_AXES):
            if not self._lo[i] <= new_pos[i] <= self._hi[i]:
                lo, hi = self._lo, self._hi
                self._pos = [min(max(p, lo[j]), hi[j]) for j, p in enumerate(new_pos)]
                self._fault(FaultBit.JOINT_LIMIT)
                return
        self._pos = new_pos

    def _contact_force_machine_n(self) -> float:
        """The tissue's push on the tip along machine Z (N; negative = up), 0 above it."""
        depth = self._pos[2] - self._floor
        return -self._k * depth if depth > 0.0 else 0.0

    def _feedback(self) -> Feedback:
        fz_machine = self._contact_force_machine_n()
        # the motors: current = (mass x acceleration - external force) / motor constant
        current = [
            SIM_MOVING_MASS[i]
            * self._acc[i]
            * (1e-3 if LINEAR_AXES[i] else math.pi / 180.0)
            / SIM_MOTOR_CONSTANT[i]
            for i in range(N_AXES)
        ]
        if fz_machine:
            current[2] -= fz_machine / SIM_MOTOR_CONSTANT[2]
            # the sensor turns with the wrist: f_sensor = R^T f_machine, f_machine = (0, 0, fz)
            r = rotation_zyx(self._pos[3], self._pos[4], self._pos[5])
            f = (r[2][0] * fz_machine, r[2][1] * fz_machine, r[2][2] * fz_machine)
            # the contact is at the tip, r = (0, 0, lever) in the sensor frame: torque = r x f
            lever = self._lever_mm
            ft = (*f, -lever * f[1], lever * f[0], 0.0)
        else:
            ft = (0.0,) * 6
        return Feedback(
            controller_time_us=self._time_us,
            powered=self._powered,
            fault_bits=int(self._faults),
            joint_position=tuple(self._pos),
            joint_velocity=tuple(self._vel),
            motor_current_a=tuple(current),
            ft_sensor=ft,
        )


# ---------------------------------------------------------------------------------------------
# The real controller: fill this in
# ---------------------------------------------------------------------------------------------
class VendorController(Controller):
    """The real ACME controller through the vendor's SDK. **Fill in every method.**

    Each method says what it must do and raises ``NotImplementedError`` naming the SDK call that
    belongs there (the names are ACME's example SDK; use your vendor's). Keep the vendor's units,
    axis order and frames here exactly as the SDK gives them: the driver converts them, in one
    place (``acme_arm/driver.py``, the joint table and the sensor constants). If your SDK's
    units or axis order differ from :data:`AXES`, :data:`LINEAR_AXES` and :class:`Feedback`'s,
    change those and the driver's joint table together.

    Args:
        host, port: the controller's address (``controller_host``/``controller_port`` in the
            config).
        period_us: the bus cycle the controller must run (µs).
        timeout_s: how long :meth:`open` and :meth:`exchange` may wait before giving up.
    """

    def __init__(self, host: str, port: int, period_us: int, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.period_us = int(period_us)
        self.timeout_s = float(timeout_s)
        self._session = None  # INTEGRATOR: the SDK's session/handle object

    def open(self) -> None:
        """Connect, check the firmware version, select the cyclic mode at ``period_us``.

        Must leave the drives powered off. Raise :class:`ControllerError` (or let the SDK's
        exception out) if the controller cannot be reached within ``timeout_s``.
        """
        # INTEGRATOR: e.g.
        #   self._session = acme_sdk.Session.connect(self.host, self.port, timeout=self.timeout_s)
        #   self._session.start_cyclic(period_us=self.period_us)
        raise NotImplementedError(
            "VendorController.open(): call the SDK's connect here, e.g. "
            "acme_sdk.Session.connect(host, port, timeout) then session.start_cyclic(period_us) "
            "(acme_arm/controller.py)"
        )

    def close(self) -> None:
        """Power off (brakes on), stop cyclic exchange, disconnect. Must be idempotent and must
        not raise if :meth:`open` never succeeded."""
        if self._session is None:
            return
        # INTEGRATOR: e.g. self._session.power_off(); self._session.disconnect()
        raise NotImplementedError(
            "VendorController.close(): call the SDK's power-off and disconnect here, e.g. "
            "session.power_off() then session.disconnect() (acme_arm/controller.py)"
        )

    def power(self, on: bool) -> None:
        """Drive power on (brake release; :attr:`Feedback.powered` becomes True when done) or off
        (brakes on at once). Power-on with an active fault must raise :class:`ControllerError`."""
        # INTEGRATOR: e.g. self._session.power_on() / self._session.power_off()
        raise NotImplementedError(
            "VendorController.power(on): call the SDK's drive power request here, e.g. "
            "session.power_on() / session.power_off() (acme_arm/controller.py)"
        )

    def clear_faults(self) -> None:
        """Acknowledge (reset) the controller's faults."""
        # INTEGRATOR: e.g. self._session.reset_faults()
        raise NotImplementedError(
            "VendorController.clear_faults(): call the SDK's fault reset here, e.g. "
            "session.reset_faults() (acme_arm/controller.py)"
        )

    def exchange(self, command: Command | None) -> Feedback:
        """One bus cycle: write ``command`` (None: none this cycle) and return the newest
        feedback as a :class:`Feedback`, in the vendor's units and order.

        Timing: the arm server paces the loop (one ``update()`` per tick of its own clock, at
        ``control_rate_hz``), so this should not wait for a whole bus period: write the command
        for the next cycle and read the newest feedback. If your SDK only offers a call that
        blocks until the next bus cycle, run that in a thread of its own and hand over the
        newest feedback here; otherwise the two clocks drift against each other (the driver
        counts the skipped cycles in ``AcmeArm.missed_cycles``). Never wait longer than
        ``timeout_s``: raise :class:`ControllerError` (the driver then reports FAULT).
        """
        # INTEGRATOR: e.g.
        #   if command is None: self._session.write_nop()
        #   elif command.mode == "velocity": self._session.write_joint_velocity(command.values)
        #   else: self._session.write_joint_position(command.values)
        #   s = self._session.read_feedback(timeout=self.timeout_s)
        #   return Feedback(s.time_us, s.powered, s.fault_word, tuple(s.q), tuple(s.qd),
        #                   tuple(s.current), tuple(s.ft))
        raise NotImplementedError(
            "VendorController.exchange(command): write the command with the SDK's cyclic "
            "write (e.g. session.write_joint_velocity / write_joint_position), read the newest "
            "feedback (session.read_feedback) and return it as a Feedback "
            "(acme_arm/controller.py)"
        )
