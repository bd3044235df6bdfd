"""Safety filter: the last check every Cartesian command passes before it reaches a robot.

Policies, teleop devices and interpolators can all produce targets the arm must never see: NaN from a
diverged network, a jump across the table after a dropped message, a pose outside the cell, a clock that
jumps. The filter is pure numpy and never reads a clock: the caller passes the time, so sim time and
replayed logs behave like the real robot.

Guarantees, for every output of every sequence of calls (``filter``, ``hold``, ``reset``, ``trigger_estop``,
``reset_estop``) with any arguments; ``tests/controllers/safety_spec.py`` states them independently and
``tests/controllers/test_safety_sequences.py`` checks them on random sequences:

1. The output is float64, finite, with a unit quaternion and a gripper closure in [0, 1]. No command and no
   time makes ``filter`` or ``hold`` raise; ``reset`` and ``reset_estop`` raise ``ValueError`` on a measured
   state that is not finite real numbers, and then change nothing.
2. Inside the workspace box, the target stays inside. Outside it (after a reset from a measured pose outside
   the box) each step moves back towards the box or holds: its distance to the box never grows.
3. Each step keeps the speed and acceleration limits of the discrete model below.
4. While the e-stop is latched, every output is the frozen target.

Discrete model. A call at a time later than the filter's clock (below) is one step of length
``dt_eff = min(now_s - last_s, max_dt_s)``. Its velocity is ``(p_k - p_{k-1}) / dt_eff`` (linear, base frame)
and ``log(R_k R_{k-1}^T) / dt_eff`` (angular, rotation vector in the base frame). Each step keeps
``|v| <= max speed`` and ``|v_k - v_{k-1}| <= max accel * dt_eff``. A gap longer than ``max_dt_s`` (a stalled
loop) starts again from rest, because the target stood still meanwhile, and the cap on ``dt_eff`` keeps the
first step after the stall small; it is flagged ``control_gap``: commands must come at the control rate, so
a 10 Hz policy is interpolated first (:mod:`controllers.interpolation`).

Clock. The filter's clock is the time of its last step (at first, the stamp of the measured state given to
``reset``). A call whose time is not a finite real number (NaN, inf, None, a string, complex, bool, an int
beyond float range), is earlier than that clock, or is more than ``MAX_CLOCK_JUMP_S`` later (1e18 in a
100 Hz loop) is a clock fault, flagged ``clock_fault``. A call at exactly the clock's time is flagged
``time_not_advancing`` (routine: a hold and a command in the same tick), except the first command at the
reset's own stamp. None of these moves anything: the call returns the last target and leaves the clock
alone, so one absurd stamp is forgotten at the next good one. If the caller's clock really jumped (a
restarted simulation, a stepped system clock), every call would now be a fault: so ``CLOCK_RESYNC_CALLS``
faults in a row, each stamped later than the one before by at most ``MAX_CLOCK_JUMP_S``, make the filter
adopt the new clock, at rest, flagged ``clock_resync``. So no stamp freezes the filter for more than
``CLOCK_RESYNC_CALLS`` calls of a clock that advances, and none without a flag on every call it holds.

Commands. Position, quaternion and closure must be real numbers (Python or numpy ints and floats) in the
right shapes: ``np.asarray(x, dtype=float)`` would quietly drop imaginary parts, parse strings and turn bools
into 0 and 1, so complex, bool, string, object and datetime values, ints beyond float range, wrong shapes and
missing fields are refused (``malformed_rejected``); non-finite values and a zero quaternion are refused as
``nonfinite_rejected``. Finite but absurd values are commands like any other (a position 1e300 m away is a
goal outside the box, clamped onto it). A refused command is a hold.

Workspace box. The velocity is bounded per axis so the target can always brake before a wall at
``max_accel / sqrt(3)`` per axis, which is at most ``max_accel`` in norm. So the box never needs an abrupt
stop, and the output is inside it by construction; a final clip removes rounding. On an axis where the
last target is beyond a face, that face's bound is zero speed outwards, and the final clip is to the box
widened to the last target, so the target comes back at the speed and acceleration limits (flagged
``outside_workspace`` at each step until inside) or holds; it never jumps into the box.

Holds (rejected commands, stale upstream) brake to rest at the acceleration limit rather than freezing
the target, which would be an unbounded deceleration. The e-stop is the one deliberate exception: it
freezes the target at once (where it is, even outside the box), and the backend's ``stop()`` holds the arm.
A ``reset`` while latched moves the frozen target to the measured pose, where the arm is.

Events. Each flag in :data:`SAFETY_EVENT_KINDS` (clock faults and resyncs, control gaps, refusals, steps
from outside the box, e-stop latch, hold and reset, watchdog holds) is counted in ``event_counts`` once per
call that reports it, and logged at WARNING on the ``controllers.safety`` logger: the first one at once,
then at most one line per kind every ``LOG_EVERY_CALLS`` calls, with the number since the last line, so a
100 Hz loop cannot flood the log and a rare event is never lost in a stream of others. ``record_event``
counts events found outside the filter (a node's refused messages: ``upstream_rejected``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from controllers.interface import CartesianTarget, RobotState
from controllers.safety_events import (  # noqa: F401  (the flags are named from here by callers and tests)
    ANGULAR_ACCEL_LIMITED,
    ANGULAR_SPEED_LIMITED,
    CLOCK_FAULT,
    CLOCK_RESYNC,
    CONTROL_GAP,
    ESTOP_HOLD,
    ESTOP_LATCHED,
    ESTOP_RESET,
    GRIPPER_CLIPPED,
    LINEAR_ACCEL_LIMITED,
    LINEAR_SPEED_LIMITED,
    LOG_EVERY_CALLS,
    MALFORMED_REJECTED,
    NONFINITE_REJECTED,
    OUTSIDE_WORKSPACE,
    SAFETY_EVENT_KINDS,
    SENSOR_HOLD,
    STALE_HOLD,
    TIME_NOT_ADVANCING,
    UPSTREAM_REJECTED,
    VIOLATION_KINDS,
    WORKSPACE_CLAMPED,
    SafetyEventLog,
)
from controllers.safety_inputs import Goal, describe, finite_time, parse_state, parse_target
from geometry.transforms import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
)
from hardware_configs.schema import CellConfig

# A healthy loop calls every control period; a second is beyond any jitter or pause, and the watchdog
# (command_timeout_s) has long held the arm by then.
MAX_CLOCK_JUMP_S: Final = 1.0
CLOCK_RESYNC_CALLS: Final = 3
# A limit counts as "active" in telemetry only when it changed the command by more than rounding.
_ACTIVE_EPS: Final = 1e-12
# Farther than any arm brakes from: caps the braking arithmetic (no overflow), never the motion.
_FAR_M: Final = 1e100


@dataclass(frozen=True)
class FilterResult:
    """The target actually allowed, and the names of the limits that changed it (empty when none did)."""

    target: CartesianTarget
    violations: tuple[str, ...] = ()


def braking_speed(distance: np.ndarray | float, decel: float, dt_s: float) -> np.ndarray | float:
    """Largest speed v such that after one step of ``v * dt_s``, braking at ``decel`` stops within ``distance``.

    Solves ``v**2 + 2*decel*dt_s*v = 2*decel*distance``. A step of ``dt`` that decreases the speed by
    ``decel*dt`` and then moves at the new speed covers less than the continuous ``v**2 / (2*decel)``
    for any sequence of step lengths, so the bound holds whatever ``dt`` the next calls bring. Written
    in the form that avoids cancellation at small distances; ``v*dt_s <= distance`` follows.
    """
    distance = np.clip(distance, 0.0, _FAR_M)
    decel_dt = decel * dt_s
    return 2.0 * decel * distance / (decel_dt + np.sqrt(decel_dt * decel_dt + 2.0 * decel * distance))


def _norm(vec: np.ndarray) -> float:
    """Euclidean norm, scaled first so coordinates near 1e308 do not overflow to inf."""
    scale = float(np.max(np.abs(vec)))
    return 0.0 if scale == 0.0 else scale * float(np.linalg.norm(vec / scale))


def _clip_norm(vec: np.ndarray, max_norm: float) -> tuple[np.ndarray, bool]:
    norm = _norm(vec)
    if norm <= max_norm:
        return vec, False
    return vec * (max_norm / norm), True


class SafetyFilter:
    """Limits every Cartesian command to the cell's workspace box, speeds and accelerations.

    Time is passed in by the caller (``now_s``); the watchdog and the e-stop latch live here too so that
    one object owns every reason to refuse motion, and ``event_counts`` counts each safety event.
    """

    def __init__(self, cell: CellConfig) -> None:
        limits = cell.motion_limits
        self.box_min_m = np.array(cell.workspace.min_m, dtype=float)
        self.box_max_m = np.array(cell.workspace.max_m, dtype=float)
        self.max_linear_speed_m_s = float(limits.max_linear_speed_m_s)
        self.max_angular_speed_rad_s = float(limits.max_angular_speed_rad_s)
        self.max_linear_accel_m_s2 = float(limits.max_linear_accel_m_s2)
        self.max_angular_accel_rad_s2 = float(limits.max_angular_accel_rad_s2)
        self.command_timeout_s = float(limits.command_timeout_s)
        # Two control periods: tolerates jitter, yet a stalled loop can never turn into one long step.
        self.max_dt_s = 2.0 / float(cell.rates.control_hz)
        self._wall_decel_m_s2 = self.max_linear_accel_m_s2 / math.sqrt(3.0)

        self._initialised = False
        self._position_m = np.zeros(3)
        self._quaternion_xyzw = np.array([0.0, 0.0, 0.0, 1.0])
        self._gripper_closure = 0.0
        self._last_s = 0.0
        self._at_reset_time = False
        self._fault_s: float | None = None  # stamp of the last clock fault of the current run of them
        self._faults = 0
        self._linear_velocity_m_s = np.zeros(3)
        self._angular_velocity_rad_s = np.zeros(3)
        self._fresh_s: float | None = None
        self._estop_reason: str | None = None
        self._estop_target: CartesianTarget | None = None

        self.events = SafetyEventLog()

    # ------------------------------------------------------------------------------------------ state

    @property
    def initialised(self) -> bool:
        return self._initialised

    @property
    def last_target(self) -> CartesianTarget:
        """The last target allowed out (a copy)."""
        return CartesianTarget(self._position_m.copy(), self._quaternion_xyzw.copy(), self._gripper_closure)

    @property
    def linear_velocity_m_s(self) -> np.ndarray:
        return self._linear_velocity_m_s.copy()

    @property
    def angular_velocity_rad_s(self) -> np.ndarray:
        return self._angular_velocity_rad_s.copy()

    def reset(self, measured: RobotState) -> None:
        """Start from the measured pose (even outside the box) at rest, at the measured time.

        Does not clear an e-stop latch; while latched, the frozen target becomes the measured pose.
        """
        position_m, quaternion_xyzw, gripper, stamp_s = parse_state(measured)
        self._position_m = position_m
        self._quaternion_xyzw = quaternion_xyzw
        self._gripper_closure = float(np.clip(gripper, 0.0, 1.0))
        self._last_s = stamp_s
        self._fault_s, self._faults = None, 0
        self._linear_velocity_m_s = np.zeros(3)
        self._angular_velocity_rad_s = np.zeros(3)
        self._initialised = True
        self._at_reset_time = True  # a command stamped like the measurement is expected, not a fault
        if self._estop_reason is not None:
            self._estop_target = self.last_target

    # --------------------------------------------------------------------------------------- watchdog

    def mark_fresh(self, now_s: float) -> None:
        """Record that a new upstream command arrived at ``now_s`` (ignored unless a finite real time)."""
        stamp_s = finite_time(now_s)
        if stamp_s is not None:
            self._fresh_s = stamp_s

    def is_stale(self, now_s: float) -> bool:
        """False only when the last command arrived at most ``command_timeout_s`` before ``now_s``, not after."""
        stamp_s = finite_time(now_s)
        if self._fresh_s is None or stamp_s is None:
            return True
        return not (0.0 <= stamp_s - self._fresh_s <= self.command_timeout_s)

    # ----------------------------------------------------------------------------------------- e-stop

    @property
    def estop_latched(self) -> bool:
        return self._estop_reason is not None

    @property
    def estop_reason(self) -> str | None:
        return self._estop_reason

    def trigger_estop(self, reason: str) -> None:
        """Latch: from now on every output is the last sent target. The first reason is kept."""
        if self._estop_reason is not None:
            return
        self._estop_reason = str(reason) if reason else "unspecified"
        self._estop_target = self.last_target if self._initialised else None
        self.record_event(ESTOP_LATCHED, self._estop_reason)

    def reset_estop(self, measured: RobotState) -> None:
        """The only way out of an e-stop: start again from the measured state, at rest."""
        was = self._estop_reason
        self.reset(measured)
        self._estop_reason = None
        self._estop_target = None
        if was is not None:
            self.record_event(ESTOP_RESET, f"was: {was}")

    # ---------------------------------------------------------------------------------------- filters

    def filter(self, target: CartesianTarget, now_s: float, measured: RobotState | None = None) -> FilterResult:
        """The part of ``target`` that may be sent at ``now_s``.

        ``measured`` is needed only on the first call (or after ``reset`` was never called): the filter
        then starts from it. Without any, there is no safe pose to start from and this raises.
        """
        self._ensure_initialised(measured)
        self.events.calls += 1
        if self._estop_reason is not None:
            return self._finish(self._estop_hold())
        goal, rejected, why = parse_target(target)
        if rejected:
            self.events.explain(rejected, why)
        return self._finish(self._step(goal, now_s, [rejected] if rejected else [], report_time=True))

    def hold(self, now_s: float, measured: RobotState | None = None, reason: str = STALE_HOLD) -> FilterResult:
        """Brake to rest at the acceleration limit (or keep the e-stop pose); used when upstream is silent."""
        self._ensure_initialised(measured)
        self.events.calls += 1
        if self._estop_reason is not None:
            return self._finish(self._estop_hold())
        return self._finish(self._step(None, now_s, [reason], report_time=False), reason)

    def record_event(self, kind: str, detail: str = "") -> None:
        """Count and log a safety event, e.g. a command a node refused before it reached the filter."""
        self.events.record(kind, detail)

    # -------------------------------------------------------------------------------------- internals

    def _ensure_initialised(self, measured: RobotState | None) -> None:
        if self._initialised:
            return
        if measured is None:
            raise RuntimeError("SafetyFilter has no pose to start from: call reset(measured) or pass measured=")
        self.reset(measured)

    def _estop_hold(self) -> FilterResult:
        if self._estop_target is None:  # latched before the first pose was known
            self._estop_target = self.last_target
        held = self._estop_target
        self._position_m = held.position_m.copy()
        self._quaternion_xyzw = held.quaternion_xyzw.copy()
        self._gripper_closure = held.gripper_closure
        self._linear_velocity_m_s = np.zeros(3)
        self._angular_velocity_rad_s = np.zeros(3)
        return FilterResult(self.last_target, (ESTOP_HOLD,))

    def _step(self, goal: Goal | None, now_s: object, violations: list[str], report_time: bool) -> FilterResult:
        stamp_s = finite_time(now_s)
        if stamp_s is None:
            self.events.explain(CLOCK_FAULT, f"time {describe(now_s)} is not a finite real number")
            return self._result([*violations, CLOCK_FAULT])
        dt_s = stamp_s - self._last_s
        if not 0.0 <= dt_s <= MAX_CLOCK_JUMP_S:
            return self._result([*violations, *self._clock_fault(stamp_s)])
        self._fault_s, self._faults = None, 0
        if dt_s == 0.0:
            expected = self._at_reset_time
            if report_time:  # only the first command may share the measurement's stamp
                self._at_reset_time = False
            return self._result([*violations, TIME_NOT_ADVANCING] if report_time and not expected else violations)
        self._at_reset_time = False
        if dt_s > self.max_dt_s:  # stalled: the target stood still, so restart from rest
            if report_time:  # commands sent below the control rate crawl: make that visible
                violations.append(CONTROL_GAP)
            dt_s = self.max_dt_s
            self._linear_velocity_m_s = np.zeros(3)
            self._angular_velocity_rad_s = np.zeros(3)
        self._last_s = stamp_s

        if np.any(self._position_m < self.box_min_m) or np.any(self._position_m > self.box_max_m):
            self.events.explain(OUTSIDE_WORKSPACE, f"target at {self._position_m} m, outside the box: coming back")
            violations.append(OUTSIDE_WORKSPACE)
        violations += self._linear_step(goal, dt_s)
        violations += self._angular_step(goal, dt_s)
        if goal is not None:
            self._gripper_closure = float(np.clip(goal.gripper_closure, 0.0, 1.0))
            if self._gripper_closure != goal.gripper_closure:
                violations.append(GRIPPER_CLIPPED)
        return self._result(violations)

    def _clock_fault(self, stamp_s: float) -> list[str]:
        """Refuse a stamp before or far after the clock; adopt the caller's clock after a consistent run."""
        follows = self._fault_s is not None and 0.0 < stamp_s - self._fault_s <= MAX_CLOCK_JUMP_S
        self._faults = self._faults + 1 if follows else 1
        self._fault_s = stamp_s
        self.events.explain(CLOCK_FAULT, f"time {stamp_s!r} is {stamp_s - self._last_s:+.3g} s from the filter's clock")
        if self._faults < CLOCK_RESYNC_CALLS:
            return [CLOCK_FAULT]
        self.events.explain(CLOCK_RESYNC, f"adopted the caller's clock at {stamp_s!r} after {self._faults} faults")
        self._last_s, self._fault_s, self._faults = stamp_s, None, 0
        self._at_reset_time = False
        self._linear_velocity_m_s = np.zeros(3)
        self._angular_velocity_rad_s = np.zeros(3)
        return [CLOCK_FAULT, CLOCK_RESYNC]

    def _linear_step(self, goal: Goal | None, dt_s: float) -> list[str]:
        """Advance the position one step; see the module docstring for the constraints and why they hold."""
        flags: list[str] = []
        p = self._position_m
        v_prev = self._linear_velocity_m_s
        # Per-axis velocities from which a wall can still be avoided by braking at the per-axis rate;
        # zero outwards on an axis already beyond a face, so the target never gets farther from the box.
        upper = braking_speed(self.box_max_m - p, self._wall_decel_m_s2, dt_s)
        lower = -braking_speed(p - self.box_min_m, self._wall_decel_m_s2, dt_s)
        # Mandatory braking first (each axis needs at most decel*dt, so at most max_accel*dt in norm) ...
        v_base = np.clip(v_prev, lower, upper)
        braking = _norm(v_base - v_prev)
        budget = max(self.max_linear_accel_m_s2 * dt_s - braking, 0.0)
        # ... then the rest of the acceleration budget towards the goal, arriving at rest.
        v_des = np.zeros(3)
        if goal is not None:
            goal_m = np.clip(goal.position_m, self.box_min_m, self.box_max_m)
            if np.any(np.abs(goal_m - goal.position_m) > _ACTIVE_EPS):
                flags.append(WORKSPACE_CLAMPED)
            error_m = goal_m - p
            distance_m = _norm(error_m)
            if distance_m > 0.0:
                reachable = float(braking_speed(distance_m, self.max_linear_accel_m_s2, dt_s))
                if reachable > self.max_linear_speed_m_s:
                    flags.append(LINEAR_SPEED_LIMITED)
                v_des = error_m * (min(reachable, self.max_linear_speed_m_s) / distance_m)
        # Both ends lie in the convex set {|v| <= v_max} ∩ [lower, upper], so the result does too.
        v_des = np.clip(v_des, lower, upper)
        dv, clipped = _clip_norm(v_des - v_base, budget)
        if goal is not None and (clipped or braking > _ACTIVE_EPS):  # braking in a hold is no violation
            flags.append(LINEAR_ACCEL_LIMITED)
        v_new = v_base + dv
        self._linear_velocity_m_s = v_new
        # Rounding aside this clip does nothing: inside, the box; outside, the box widened to where we are.
        self._position_m = np.clip(p + v_new * dt_s, np.minimum(self.box_min_m, p), np.maximum(self.box_max_m, p))
        return flags

    def _angular_step(self, goal: Goal | None, dt_s: float) -> list[str]:
        """Rotate one step towards the goal along the short way, at bounded angular speed and acceleration."""
        flags: list[str] = []
        R_prev = quat_xyzw_to_matrix(self._quaternion_xyzw)
        w_prev = self._angular_velocity_rad_s
        w_des = np.zeros(3)
        if goal is not None:
            error_rad = matrix_to_axis_angle(quat_xyzw_to_matrix(goal.quaternion_xyzw) @ R_prev.T)
            angle_rad = float(np.linalg.norm(error_rad))
            if angle_rad > 0.0:
                reachable = float(braking_speed(angle_rad, self.max_angular_accel_rad_s2, dt_s))
                if reachable > self.max_angular_speed_rad_s:
                    flags.append(ANGULAR_SPEED_LIMITED)
                w_des = error_rad * (min(reachable, self.max_angular_speed_rad_s) / angle_rad)
        dw, clipped = _clip_norm(w_des - w_prev, self.max_angular_accel_rad_s2 * dt_s)
        if goal is not None and clipped:
            flags.append(ANGULAR_ACCEL_LIMITED)
        w_new = w_prev + dw
        self._angular_velocity_rad_s = w_new
        self._quaternion_xyzw = matrix_to_quat_xyzw(axis_angle_to_matrix(w_new * dt_s) @ R_prev)
        return flags

    def _result(self, violations: list[str]) -> FilterResult:
        return FilterResult(self.last_target, tuple(dict.fromkeys(violations)))

    # ----------------------------------------------------------------------------------------- events

    def _finish(self, result: FilterResult, hold_reason: str | None = None) -> FilterResult:
        self.events.finish_call(result.violations, hold_reason)
        return result

    @property
    def event_counts(self) -> dict[str, int]:
        """Safety events since start, by kind (what a node publishes)."""
        return self.events.counts
