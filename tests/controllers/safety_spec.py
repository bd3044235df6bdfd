"""An independent statement of the safety filter's contract, checked output by output.

Written from the module docstring of ``controllers/safety.py``, not from its code: its own quaternion maths, its
own reading of the clock rule, its own test of what a well-formed command is, its own names for the flags. A
test makes the same calls on a filter and on a :class:`FilterSpec`; the spec asserts on every output.
"""

from __future__ import annotations

import math

import numpy as np

from controllers.interface import CartesianTarget, RobotState
from hardware_configs import load_cell

CELL = load_cell("franka_3cam")
LIMITS = CELL.motion_limits
BOX_MIN_M = np.array(CELL.workspace.min_m, dtype=float)
BOX_MAX_M = np.array(CELL.workspace.max_m, dtype=float)
PERIOD_S = 1.0 / CELL.rates.control_hz
MAX_DT_S = 2.0 * PERIOD_S  # a longer gap is a stall: one capped step, from rest
MAX_CLOCK_JUMP_S = 1.0  # a stamp earlier than the filter's clock, or later by more than this, is a clock fault
CLOCK_RESYNC_CALLS = 3  # that many faulty stamps in a row, each following the one before, are a new clock

# Flags, spelled out here rather than imported: a renamed flag is a changed contract.
CLOCK_FAULT = "clock_fault"
CLOCK_RESYNC = "clock_resync"
MALFORMED = "malformed_rejected"
NONFINITE = "nonfinite_rejected"
OUTSIDE = "outside_workspace"
ESTOP_HOLD = "estop_hold"
ESTOP_LATCHED = "estop_latched"
ESTOP_RESET = "estop_reset"
# Every flag that is a safety event: counted once per call that reports it, in ``event_counts``.
EVENT_KINDS = frozenset(
    {
        CLOCK_FAULT,
        CLOCK_RESYNC,
        "control_gap",
        MALFORMED,
        NONFINITE,
        OUTSIDE,
        ESTOP_HOLD,
        ESTOP_LATCHED,
        ESTOP_RESET,
        "stale_hold",
    }
)


# ----------------------------------------------------------------------------------- independent maths


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def rotvec_between(q_from: np.ndarray, q_to: np.ndarray) -> np.ndarray:
    """Rotation vector [rad] (base frame) of the rotation taking q_from to q_to, the short way."""
    q_rel = quat_mul(q_to, q_from * np.array([-1.0, -1.0, -1.0, 1.0]))
    if q_rel[3] < 0:
        q_rel = -q_rel
    sin_half = np.linalg.norm(q_rel[:3])
    if sin_half == 0.0:
        return np.zeros(3)
    return q_rel[:3] / sin_half * 2.0 * math.atan2(sin_half, q_rel[3])


def same_rotation(q_a: np.ndarray, q_b: np.ndarray, tol_rad: float = 1e-9) -> bool:
    q_a, q_b = np.asarray(q_a, float), np.asarray(q_b, float)
    q_a, q_b = q_a / np.max(np.abs(q_a)), q_b / np.max(np.abs(q_b))
    return float(np.linalg.norm(rotvec_between(q_a / np.linalg.norm(q_a), q_b / np.linalg.norm(q_b)))) <= tol_rad


def norm(vec: np.ndarray) -> float:
    """Euclidean norm that does not overflow for coordinates near 1e308."""
    scale = float(np.max(np.abs(vec)))
    return 0.0 if scale == 0.0 else scale * float(np.linalg.norm(vec / scale))


def distance_to_box_m(position_m: np.ndarray) -> float:
    return norm(np.maximum(np.maximum(BOX_MIN_M - position_m, position_m - BOX_MAX_M), 0.0))


# ------------------------------------------------------------------------------ what a command may be


def _real(x: object) -> float | None:
    """``x`` as a float when it is a real number (an int or float, numpy's included; never a bool)."""
    if isinstance(x, np.ndarray) and x.shape == () and x.dtype.kind in "iuf":
        x = x[()]
    if isinstance(x, bool | np.bool_) or not isinstance(x, int | float | np.integer | np.floating):
        return None
    try:
        return float(x)
    except OverflowError:  # an int beyond float's range is no coordinate either
        return None


def real_vector(value: object, size: int) -> np.ndarray | None:
    """``value`` as floats when it is a list, tuple or int/float array of exactly ``size`` real numbers."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf" or value.shape != (size,):
            return None
        items = list(value)
    elif isinstance(value, list | tuple) and len(value) == size:
        items = list(value)
    else:
        return None
    floats = [_real(x) for x in items]
    return None if any(f is None for f in floats) else np.array(floats)


def real_stamp(value: object) -> float | None:
    """A usable time: a finite real number."""
    stamp = _real(value)
    return stamp if stamp is not None and math.isfinite(stamp) else None


def refusal(command: object) -> str | None:
    """Which refusal flag the command must get, or None for a usable one."""
    position = real_vector(getattr(command, "position_m", None), 3)
    quat = real_vector(getattr(command, "quaternion_xyzw", None), 4)
    gripper = _real(getattr(command, "gripper_closure", None))
    if position is None or quat is None or gripper is None:
        return MALFORMED
    if not (np.all(np.isfinite(position)) and np.all(np.isfinite(quat)) and math.isfinite(gripper)):
        return NONFINITE
    return NONFINITE if not np.any(quat) else None


def inside(position_m: np.ndarray, tol_m: float = 1e-9) -> bool:
    return bool(np.all(position_m >= BOX_MIN_M - tol_m) and np.all(position_m <= BOX_MAX_M + tol_m))


# ---------------------------------------------------------------------------------------- the spec


class FilterSpec:
    """The filter's contract as a small state machine: the last output, the filter's clock, the velocities."""

    def __init__(self, safety, measured: RobotState) -> None:
        self.safety = safety
        self.estop_pose: CartesianTarget | None = None
        self.counts = dict(getattr(safety, "event_counts", {}))
        self.restart(measured)

    # --------------------------------------------------------------------- calls that produce no output

    def restart(self, measured: RobotState) -> None:
        """After ``reset`` or ``reset_estop``: the measured pose, wherever it is, at rest, at its stamp."""
        last = self.safety.last_target
        np.testing.assert_array_equal(last.position_m, np.asarray(measured.tcp_position_m, dtype=float))
        assert same_rotation(last.quaternion_xyzw, measured.tcp_quaternion_xyzw, tol_rad=1e-12)
        assert last.gripper_closure == min(max(float(measured.gripper_closure), 0.0), 1.0)
        self.prev = last
        self.clock_s = float(measured.stamp_s)
        self.dt_prev_s = PERIOD_S
        self.v_m_s = np.zeros(3)
        self.w_rad_s = np.zeros(3)
        self.fault_s: float | None = None
        self.faults = 0
        if self.estop_pose is not None:  # a reset while latched holds where the arm was measured
            self.estop_pose = last

    def estop(self) -> None:
        if self.estop_pose is None:
            self.estop_pose = self.prev
            self._check_events((ESTOP_LATCHED,))
        else:
            self._check_events(())

    def reset_estop(self, measured: RobotState) -> None:
        was_latched = self.estop_pose is not None
        self.estop_pose = None
        self.restart(measured)
        self._check_events((ESTOP_RESET,) if was_latched else ())

    # ------------------------------------------------------------------------------- filter() and hold()

    def check(self, result, now: object, command: object = None, holding: bool = False) -> None:
        """One output of ``filter(command, now)`` (or of ``hold(now)`` when ``holding``)."""
        out, flags = result.target, result.violations
        vector = out.as_vector()
        assert vector.dtype == np.float64 and np.all(np.isfinite(vector)), f"non-finite output {vector}"
        assert abs(np.linalg.norm(out.quaternion_xyzw) - 1.0) <= 1e-9
        assert 0.0 <= out.gripper_closure <= 1.0
        self._check_events(flags)
        if self.estop_pose is not None:
            assert flags == (ESTOP_HOLD,)
            np.testing.assert_array_equal(vector, self.estop_pose.as_vector())
            return
        refused = None if holding else refusal(command)
        if refused is not None:
            assert refused in flags, f"{command!r} must be refused with {refused}, got {flags}"
        stamp = real_stamp(now)
        if stamp is None or not 0.0 <= stamp - self.clock_s <= MAX_CLOCK_JUMP_S:
            assert CLOCK_FAULT in flags, f"stamp {now!r} against clock {self.clock_s}: {flags}"
            self._same(out)
            if stamp is not None:
                self._count_fault(stamp, flags)
            return
        self.fault_s, self.faults = None, 0
        if stamp == self.clock_s:
            self._same(out)
            return
        self._step(out, flags, stamp, holding or refused is not None)

    def _count_fault(self, stamp: float, flags: tuple[str, ...]) -> None:
        follows = self.fault_s is not None and 0.0 < stamp - self.fault_s <= MAX_CLOCK_JUMP_S
        self.faults = self.faults + 1 if follows else 1
        self.fault_s = stamp
        if self.faults == CLOCK_RESYNC_CALLS:  # the caller's clock really jumped: adopt it, at rest
            assert CLOCK_RESYNC in flags
            self.clock_s, self.fault_s, self.faults = stamp, None, 0
            self.v_m_s, self.w_rad_s = np.zeros(3), np.zeros(3)
        else:
            assert CLOCK_RESYNC not in flags

    def _step(self, out: CartesianTarget, flags: tuple[str, ...], stamp: float, holding: bool) -> None:
        dt_s = stamp - self.clock_s
        dt_eff_s = min(dt_s, MAX_DT_S)
        stalled = dt_s > MAX_DT_S
        # Rounding of the coordinates, divided by the step, is the velocity's noise.
        scale = max(1.0, float(np.max(np.abs(self.prev.position_m))), float(np.max(np.abs(out.position_m))))
        noise = 4.0 * float(np.spacing(scale)) * (1 / dt_eff_s + 1 / self.dt_prev_s)
        v = (out.position_m - self.prev.position_m) / dt_eff_s
        w = rotvec_between(self.prev.quaternion_xyzw, out.quaternion_xyzw) / dt_eff_s
        v_ref = np.zeros(3) if stalled else self.v_m_s
        w_ref = np.zeros(3) if stalled else self.w_rad_s
        rel = 1 + 1e-9
        assert norm(v) <= LIMITS.max_linear_speed_m_s * rel + noise
        assert norm(w) <= LIMITS.max_angular_speed_rad_s * rel + 4e-15 / dt_eff_s
        assert norm(v - v_ref) <= LIMITS.max_linear_accel_m_s2 * dt_eff_s * rel + noise
        assert norm(w - w_ref) <= LIMITS.max_angular_accel_rad_s2 * dt_eff_s * rel + 4e-15 * (
            1 / dt_eff_s + 1 / self.dt_prev_s
        )
        if holding:  # a hold (or a refused command) only ever slows down
            assert norm(v) <= norm(v_ref) + noise
            assert norm(w) <= norm(w_ref) + 4e-15 * (1 / dt_eff_s + 1 / self.dt_prev_s)
        if inside(self.prev.position_m):
            assert inside(out.position_m), f"left the box: {self.prev.position_m} -> {out.position_m}"
        else:  # from outside: back towards the box, or hold; never farther
            assert OUTSIDE in flags
            before, after = distance_to_box_m(self.prev.position_m), distance_to_box_m(out.position_m)
            assert after <= before * (1 + 1e-12) + 1e-12, f"away from the box: {before} -> {after} m"
        self.prev, self.clock_s, self.dt_prev_s, self.v_m_s, self.w_rad_s = out, stamp, dt_eff_s, v, w

    def _same(self, out: CartesianTarget) -> None:
        np.testing.assert_array_equal(out.as_vector(), self.prev.as_vector())

    def _check_events(self, flags: tuple[str, ...]) -> None:
        """Each safety event a call reports is counted exactly once; nothing else is."""
        counts = getattr(self.safety, "event_counts", None)
        assert counts is not None, "the filter keeps no event counters"
        for kind in EVENT_KINDS:
            expected = self.counts.get(kind, 0) + (kind in flags)
            assert counts.get(kind, 0) == expected, f"{kind}: counted {counts.get(kind, 0)}, expected {expected}"
        self.counts = dict(counts)
