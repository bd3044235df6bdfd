"""Safety filter: the last check every Cartesian command passes before it reaches a robot.

Policies, teleop devices and interpolators can all produce targets the arm must never see: NaN from a
diverged network, a jump across the table after a dropped message, a pose outside the cell. The filter
turns any input into a target that is finite, inside the workspace box and reachable from the last
sent target within the cell's speed and acceleration limits. It is pure numpy and never reads a clock:
the caller passes the time, so sim time and replayed logs behave like the real robot.

Discrete model (what the tests check). A call at a time later than every earlier one is one step of
length ``dt_eff = min(now_s - last_s, max_dt_s)``. Its velocity is ``(p_k - p_{k-1}) / dt_eff``
(linear, base frame) and ``log(R_k R_{k-1}^T) / dt_eff`` (angular, rotation vector in the base frame).
Each step keeps ``|v| <= max speed`` and ``|v_k - v_{k-1}| <= max accel * dt_eff``. A gap longer than
``max_dt_s`` (a stalled loop) starts again from rest, because the target stood still meanwhile, and the
cap on ``dt_eff`` keeps the first step after the stall small. Such a gap is flagged ``control_gap``:
commands must come at the control rate, so a 10 Hz policy is interpolated first
(:mod:`controllers.interpolation`). A call whose time is not later than the last one (equal, earlier,
NaN) moves nothing: it returns the last target.

Workspace box. The velocity is bounded per axis so the target can always brake before a wall at
``max_accel / sqrt(3)`` per axis, which is at most ``max_accel`` in norm. So the box never needs an
abrupt stop, and the output is inside it by construction; a final clip removes rounding. If the last
target is itself outside the box (a reset from a measured pose outside it, for example after the cell
file changed), the box wins over the speed limit: the output jumps to the nearest box point, at rest,
flagged ``workspace_jump``.

Holds (rejected commands, stale upstream) brake to rest at the acceleration limit rather than freezing
the target, which would be an unbounded deceleration. The e-stop is the one deliberate exception: it
freezes the target at once, and the backend's ``stop()`` holds the arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from controllers.interface import CartesianTarget, RobotState
from hardware_configs.frames import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
)
from hardware_configs.schema import CellConfig

NONFINITE_REJECTED: Final = "nonfinite_rejected"
MALFORMED_REJECTED: Final = "malformed_rejected"
TIME_NOT_ADVANCING: Final = "time_not_advancing"
CONTROL_GAP: Final = "control_gap"
WORKSPACE_CLAMPED: Final = "workspace_clamped"
WORKSPACE_JUMP: Final = "workspace_jump"
LINEAR_SPEED_LIMITED: Final = "linear_speed_limited"
ANGULAR_SPEED_LIMITED: Final = "angular_speed_limited"
LINEAR_ACCEL_LIMITED: Final = "linear_accel_limited"
ANGULAR_ACCEL_LIMITED: Final = "angular_accel_limited"
GRIPPER_CLIPPED: Final = "gripper_clipped"
ESTOP_HOLD: Final = "estop_hold"
STALE_HOLD: Final = "stale_hold"

VIOLATION_KINDS: Final[tuple[str, ...]] = (
    NONFINITE_REJECTED,
    MALFORMED_REJECTED,
    TIME_NOT_ADVANCING,
    CONTROL_GAP,
    WORKSPACE_CLAMPED,
    WORKSPACE_JUMP,
    LINEAR_SPEED_LIMITED,
    ANGULAR_SPEED_LIMITED,
    LINEAR_ACCEL_LIMITED,
    ANGULAR_ACCEL_LIMITED,
    GRIPPER_CLIPPED,
    ESTOP_HOLD,
    STALE_HOLD,
)

# A limit counts as "active" in telemetry only when it changed the command by more than rounding.
_ACTIVE_EPS: Final = 1e-12


@dataclass(frozen=True)
class FilterResult:
    """The target actually allowed, and the names of the limits that changed it (empty when none did)."""

    target: CartesianTarget
    violations: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Goal:
    position_m: np.ndarray
    quaternion_xyzw: np.ndarray
    gripper_closure: float


def braking_speed(distance: np.ndarray | float, decel: float, dt_s: float) -> np.ndarray | float:
    """Largest speed v such that after one step of ``v * dt_s``, braking at ``decel`` stops within ``distance``.

    Solves ``v**2 + 2*decel*dt_s*v = 2*decel*distance``. A step of ``dt`` that decreases the speed by
    ``decel*dt`` and then moves at the new speed covers less than the continuous ``v**2 / (2*decel)``
    for any sequence of step lengths, so the bound holds whatever ``dt`` the next calls bring. Written
    in the form that avoids cancellation at small distances; ``v*dt_s <= distance`` follows.
    """
    distance = np.maximum(distance, 0.0)
    decel_dt = decel * dt_s
    return 2.0 * decel * distance / (decel_dt + np.sqrt(decel_dt * decel_dt + 2.0 * decel * distance))


def _clip_norm(vec: np.ndarray, max_norm: float) -> tuple[np.ndarray, bool]:
    norm = float(np.linalg.norm(vec))
    if norm <= max_norm:
        return vec, False
    return vec * (max_norm / norm), True


def _unit_quaternion(q: np.ndarray) -> np.ndarray | None:
    """Normalised copy of a finite quaternion, scaled first so huge or tiny inputs survive; None if zero."""
    scale = float(np.max(np.abs(q)))
    if scale == 0.0:
        return None
    q = q / scale
    return q / np.linalg.norm(q)


def _parse_target(target: CartesianTarget) -> tuple[_Goal | None, str | None]:
    """The command as finite arrays with a unit quaternion, or the name of the reason it is rejected."""
    try:
        position_m = np.array(target.position_m, dtype=float)
        quat = np.array(target.quaternion_xyzw, dtype=float)
        gripper = float(target.gripper_closure)
    except (TypeError, ValueError, AttributeError):
        return None, MALFORMED_REJECTED
    if position_m.shape != (3,) or quat.shape != (4,):
        return None, MALFORMED_REJECTED
    if not (np.all(np.isfinite(position_m)) and np.all(np.isfinite(quat)) and math.isfinite(gripper)):
        return None, NONFINITE_REJECTED
    unit = _unit_quaternion(quat)
    if unit is None:
        return None, NONFINITE_REJECTED
    return _Goal(position_m, unit, gripper), None


class SafetyFilter:
    """Limits every Cartesian command to the cell's workspace box, speeds and accelerations.

    Time is passed in by the caller (``now_s``); the watchdog and the e-stop latch live here too so that
    one object owns every reason to refuse motion.
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
        self._linear_velocity_m_s = np.zeros(3)
        self._angular_velocity_rad_s = np.zeros(3)
        self._fresh_s: float | None = None
        self._estop_reason: str | None = None
        self._estop_target: CartesianTarget | None = None

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
        """Start from the measured pose at rest, at the measured time. Does not clear an e-stop latch."""
        position_m = np.array(measured.tcp_position_m, dtype=float)
        quat = np.array(measured.tcp_quaternion_xyzw, dtype=float)
        gripper = float(measured.gripper_closure)
        stamp_s = float(measured.stamp_s)
        finite = np.all(np.isfinite(position_m)) and np.all(np.isfinite(quat)) and math.isfinite(gripper)
        if position_m.shape != (3,) or quat.shape != (4,) or not finite or not math.isfinite(stamp_s):
            raise ValueError(
                f"cannot reset the safety filter from a non-finite or malformed state: position {position_m}, "
                f"quaternion {quat}, gripper {gripper}, stamp {stamp_s}; fix the backend's read_state()"
            )
        unit = _unit_quaternion(quat)
        if unit is None:
            raise ValueError("cannot reset the safety filter: the measured TCP quaternion is zero")
        self._position_m = position_m
        self._quaternion_xyzw = unit
        self._gripper_closure = float(np.clip(gripper, 0.0, 1.0))
        self._last_s = stamp_s
        self._linear_velocity_m_s = np.zeros(3)
        self._angular_velocity_rad_s = np.zeros(3)
        self._initialised = True
        self._at_reset_time = True  # a command stamped like the measurement is expected, not a fault

    # --------------------------------------------------------------------------------------- watchdog

    def mark_fresh(self, now_s: float) -> None:
        """Record that a new upstream command arrived at ``now_s``."""
        self._fresh_s = float(now_s)

    def is_stale(self, now_s: float) -> bool:
        """True when no command arrived for more than ``command_timeout_s`` (or never, or time is NaN)."""
        if self._fresh_s is None:
            return True
        return not (now_s - self._fresh_s <= self.command_timeout_s)

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
        self._estop_reason = reason or "unspecified"
        self._estop_target = self._box_clamped_last_target() if self._initialised else None

    def reset_estop(self, measured: RobotState) -> None:
        """The only way out of an e-stop: start again from the measured state, at rest."""
        self.reset(measured)
        self._estop_reason = None
        self._estop_target = None

    # ---------------------------------------------------------------------------------------- filters

    def filter(self, target: CartesianTarget, now_s: float, measured: RobotState | None = None) -> FilterResult:
        """The part of ``target`` that may be sent at ``now_s``.

        ``measured`` is needed only on the first call (or after ``reset`` was never called): the filter
        then starts from it. Without any, there is no safe pose to start from and this raises.
        """
        self._ensure_initialised(measured)
        if self._estop_reason is not None:
            return self._estop_hold()
        goal, rejected = _parse_target(target)
        return self._step(goal, now_s, [rejected] if rejected else [], report_time=True)

    def hold(self, now_s: float, measured: RobotState | None = None, reason: str = STALE_HOLD) -> FilterResult:
        """Brake to rest at the acceleration limit (or keep the e-stop pose); used when upstream is silent."""
        self._ensure_initialised(measured)
        if self._estop_reason is not None:
            return self._estop_hold()
        return self._step(None, now_s, [reason], report_time=False)

    # -------------------------------------------------------------------------------------- internals

    def _ensure_initialised(self, measured: RobotState | None) -> None:
        if self._initialised:
            return
        if measured is None:
            raise RuntimeError("SafetyFilter has no pose to start from: call reset(measured) or pass measured=")
        self.reset(measured)

    def _box_clamped_last_target(self) -> CartesianTarget:
        position_m = np.clip(self._position_m, self.box_min_m, self.box_max_m)
        return CartesianTarget(position_m, self._quaternion_xyzw.copy(), self._gripper_closure)

    def _estop_hold(self) -> FilterResult:
        if self._estop_target is None:  # latched before the first pose was known
            self._estop_target = self._box_clamped_last_target()
        held = self._estop_target
        self._position_m = held.position_m.copy()
        self._quaternion_xyzw = held.quaternion_xyzw.copy()
        self._gripper_closure = held.gripper_closure
        self._linear_velocity_m_s = np.zeros(3)
        self._angular_velocity_rad_s = np.zeros(3)
        return FilterResult(self.last_target, (ESTOP_HOLD,))

    def _step(self, goal: _Goal | None, now_s: float, violations: list[str], report_time: bool) -> FilterResult:
        now_s = float(now_s)
        if not math.isfinite(now_s):
            return self._result([*violations, NONFINITE_REJECTED])
        dt_s = now_s - self._last_s
        if not dt_s > 0.0:
            expected = dt_s == 0.0 and self._at_reset_time
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
        self._last_s = now_s

        if np.any(self._position_m < self.box_min_m) or np.any(self._position_m > self.box_max_m):
            self._position_m = np.clip(self._position_m, self.box_min_m, self.box_max_m)
            self._linear_velocity_m_s = np.zeros(3)
            violations.append(WORKSPACE_JUMP)
        violations += self._linear_step(goal, dt_s)
        violations += self._angular_step(goal, dt_s)
        if goal is not None:
            self._gripper_closure = float(np.clip(goal.gripper_closure, 0.0, 1.0))
            if self._gripper_closure != goal.gripper_closure:
                violations.append(GRIPPER_CLIPPED)
        return self._result(violations)

    def _linear_step(self, goal: _Goal | None, dt_s: float) -> list[str]:
        """Advance the position one step; see the module docstring for the constraints and why they hold."""
        flags: list[str] = []
        p = self._position_m
        v_prev = self._linear_velocity_m_s
        # Per-axis velocities from which a wall can still be avoided by braking at the per-axis rate.
        upper = braking_speed(self.box_max_m - p, self._wall_decel_m_s2, dt_s)
        lower = -braking_speed(p - self.box_min_m, self._wall_decel_m_s2, dt_s)
        # Mandatory braking first (each axis needs at most decel*dt, so at most max_accel*dt in norm) ...
        v_base = np.clip(v_prev, lower, upper)
        braking = float(np.linalg.norm(v_base - v_prev))
        budget = max(self.max_linear_accel_m_s2 * dt_s - braking, 0.0)
        # ... then the rest of the acceleration budget towards the goal, arriving at rest.
        v_des = np.zeros(3)
        if goal is not None:
            goal_m = np.clip(goal.position_m, self.box_min_m, self.box_max_m)
            if np.any(np.abs(goal_m - goal.position_m) > _ACTIVE_EPS):
                flags.append(WORKSPACE_CLAMPED)
            error_m = goal_m - p
            distance_m = float(np.linalg.norm(error_m))
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
        self._position_m = np.clip(p + v_new * dt_s, self.box_min_m, self.box_max_m)
        return flags

    def _angular_step(self, goal: _Goal | None, dt_s: float) -> list[str]:
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
