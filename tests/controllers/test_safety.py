"""Specification of the safety filter: what any command, however wrong, turns into.

The property tests drive the filter with arbitrary commands (huge, NaN, inf, zero quaternions, any
gripper value) at arbitrary times (repeated, going backwards, stalled) and check every output against
an independent statement of the limits (``safety_spec.FilterSpec``, with its own quaternion arithmetic).
Sequences with resets, e-stops, clock faults and odd input types are in ``test_safety_sequences.py``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safety_spec import FilterSpec, rotvec_between, same_rotation

from controllers.interface import CartesianTarget, RobotState
from controllers.safety import (
    CLOCK_FAULT,
    CONTROL_GAP,
    ESTOP_HOLD,
    GRIPPER_CLIPPED,
    LINEAR_SPEED_LIMITED,
    MALFORMED_REJECTED,
    NONFINITE_REJECTED,
    STALE_HOLD,
    TIME_NOT_ADVANCING,
    WORKSPACE_CLAMPED,
    FilterResult,
    SafetyFilter,
)
from hardware_configs import load_cell

CELL = load_cell("franka_3cam")
LIMITS = CELL.motion_limits
BOX_MIN_M = np.array(CELL.workspace.min_m)
BOX_MAX_M = np.array(CELL.workspace.max_m)
PERIOD_S = 1.0 / CELL.rates.control_hz
DOWN_XYZW = np.array([1.0, 0.0, 0.0, 0.0])  # gripper pointing down
CENTRE_M = (BOX_MIN_M + BOX_MAX_M) / 2


def offset_m(dx: float, dy: float, dz: float) -> np.ndarray:
    """A point at this offset [m] from the centre of the workspace box."""
    return CENTRE_M + np.array([dx, dy, dz], dtype=float)


def state_at(position_m, quaternion_xyzw=DOWN_XYZW, stamp_s: float = 0.0, gripper: float = 0.0) -> RobotState:
    return RobotState(
        stamp_s=stamp_s,
        joint_positions_rad=np.zeros(7),
        joint_velocities_rad_s=np.zeros(7),
        tcp_position_m=np.array(position_m, dtype=float),
        tcp_quaternion_xyzw=np.array(quaternion_xyzw, dtype=float),
        gripper_width_m=0.085,
        gripper_closure=gripper,
    )


def target(position_m, quaternion_xyzw=DOWN_XYZW, gripper: float = 0.0) -> CartesianTarget:
    return CartesianTarget(np.array(position_m, dtype=float), np.array(quaternion_xyzw, dtype=float), gripper)


def started_filter(position_m=CENTRE_M, quaternion_xyzw=DOWN_XYZW) -> SafetyFilter:
    safety = SafetyFilter(CELL)
    safety.reset(state_at(position_m, quaternion_xyzw))
    return safety


def run(safety: SafetyFilter, goal: CartesianTarget, ticks: int, start_s: float = 0.0) -> list[FilterResult]:
    return [safety.filter(goal, start_s + k * PERIOD_S) for k in range(1, ticks + 1)]


# -------------------------------------------------------------------------------------- unit behaviour


def test_first_filter_call_starts_from_the_measured_pose():
    safety = SafetyFilter(CELL)
    with pytest.raises(RuntimeError, match="reset"):
        safety.filter(target(CENTRE_M), 0.0)
    measured = state_at(CENTRE_M, stamp_s=3.0)
    result = safety.filter(target(offset_m(0.1, 0, 0)), 3.0, measured=measured)
    # Same instant as the measurement: no time to move (expected, so not reported) ...
    np.testing.assert_array_equal(result.target.position_m, CENTRE_M)
    assert result.violations == ()
    # ... but a second command at that instant is reported, and an earlier one is a clock fault.
    assert TIME_NOT_ADVANCING in safety.filter(target(offset_m(0.1, 0, 0)), 3.0).violations
    assert CLOCK_FAULT in safety.filter(target(offset_m(0.1, 0, 0)), 2.0).violations
    assert safety.filter(target(offset_m(0.1, 0, 0)), 3.0 + PERIOD_S).violations != ()


def test_quaternion_is_normalised_and_reached():
    safety = started_filter(quaternion_xyzw=[0, 0, 0, 1])
    results = run(safety, target(CENTRE_M, [0.0, 0.0, 0.0, 2.0]), 3)
    for r in results:
        assert np.linalg.norm(r.target.quaternion_xyzw) == pytest.approx(1.0, abs=1e-12)
        assert same_rotation(r.target.quaternion_xyzw, np.array([0, 0, 0, 1.0]))


@pytest.mark.parametrize(
    "bad",
    [
        target([np.nan, 0.0, 0.3]),
        target(CENTRE_M, [np.inf, 0, 0, 1]),
        target(CENTRE_M, gripper=np.nan),
        target(CENTRE_M, [0.0, 0.0, 0.0, 0.0]),
        CartesianTarget(np.zeros(2), DOWN_XYZW, 0.0),
    ],
    ids=["nan_position", "inf_quaternion", "nan_gripper", "zero_quaternion", "wrong_shape"],
)
def test_rejected_commands_brake_to_a_stop_from_the_last_safe_target(bad):
    safety = started_filter()
    moving = run(safety, target(offset_m(0.2, 0, 0)), 30)
    speed_before = np.linalg.norm(safety.linear_velocity_m_s)
    assert speed_before > 0.05
    rejected = run(safety, bad, 60, start_s=30 * PERIOD_S)
    assert all(r.violations[0] in (NONFINITE_REJECTED, MALFORMED_REJECTED) for r in rejected)
    speeds = [
        np.linalg.norm(b.target.position_m - a.target.position_m) / PERIOD_S
        for a, b in itertools.pairwise([moving[-1], *rejected])
    ]
    assert all(s2 <= s1 + 1e-12 for s1, s2 in itertools.pairwise(speeds)), "braking never speeds up"
    assert speeds[-1] == 0.0
    braking_distance_m = speed_before**2 / (2 * LIMITS.max_linear_accel_m_s2) + speed_before * PERIOD_S
    travel_m = np.linalg.norm(rejected[-1].target.position_m - moving[-1].target.position_m)
    assert travel_m <= braking_distance_m + 1e-9


def test_goal_outside_the_box_is_reached_on_the_box_face():
    safety = started_filter()
    results = run(safety, target([5.0, 0.0, -3.0]), 400)
    assert WORKSPACE_CLAMPED in results[0].violations
    np.testing.assert_allclose(results[-1].target.position_m, [BOX_MAX_M[0], 0.0, BOX_MIN_M[2]], atol=1e-9)


def test_far_goal_is_approached_at_the_speed_limit_and_reached_at_rest():
    safety = started_filter()
    goal_m = offset_m(0.2, 0.1, 0.0)
    results = run(safety, target(goal_m), 300)
    positions = np.array([CENTRE_M] + [r.target.position_m for r in results])
    speeds = np.linalg.norm(np.diff(positions, axis=0), axis=1) / PERIOD_S
    assert speeds.max() <= LIMITS.max_linear_speed_m_s * (1 + 1e-12)
    assert speeds.max() == pytest.approx(LIMITS.max_linear_speed_m_s)
    assert any(LINEAR_SPEED_LIMITED in r.violations for r in results)
    np.testing.assert_allclose(results[-1].target.position_m, goal_m, atol=1e-9)
    assert np.linalg.norm(safety.linear_velocity_m_s) < 1e-9
    # Arrives without overshoot: the distance to the goal never grows.
    distances = np.linalg.norm(positions - goal_m, axis=1)
    assert np.all(np.diff(distances) <= 1e-12)


def test_rotation_is_limited_to_the_angular_speed_and_reaches_the_goal():
    safety = started_filter(quaternion_xyzw=[0, 0, 0, 1])
    goal_xyzw = np.array([0.0, 0.0, math.sin(1.0), math.cos(1.0)])  # 2 rad about z
    results = run(safety, target(CENTRE_M, goal_xyzw), 600)
    quats = [np.array([0, 0, 0, 1.0])] + [r.target.quaternion_xyzw for r in results]
    angles = [np.linalg.norm(rotvec_between(a, b)) for a, b in itertools.pairwise(quats)]
    assert max(angles) <= LIMITS.max_angular_speed_rad_s * PERIOD_S * (1 + 1e-9)
    assert same_rotation(results[-1].target.quaternion_xyzw, goal_xyzw)


@pytest.mark.parametrize("later_s", [0.0, -0.05, -100.0, math.nan])
def test_time_that_does_not_advance_never_moves_the_target(later_s):
    safety = started_filter()
    last = run(safety, target(offset_m(0.2, 0, 0)), 20)[-1]
    result = safety.filter(target([0.8, 0.3, 0.5], gripper=1.0), 20 * PERIOD_S + later_s)
    np.testing.assert_array_equal(result.target.as_vector(), last.target.as_vector())


def test_a_stalled_loop_cannot_turn_into_one_big_step():
    safety = started_filter()
    last = run(safety, target(offset_m(0.2, 0, 0)), 30)[-1]
    result = safety.filter(target(offset_m(0.2, 0, 0)), 30 * PERIOD_S + 0.5)  # 0.5 s late (1 s+ is a clock fault)
    step_m = np.linalg.norm(result.target.position_m - last.target.position_m)
    assert CONTROL_GAP in result.violations
    # Restarts from rest: one step of at most max_accel * max_dt^2.
    assert step_m <= LIMITS.max_linear_accel_m_s2 * safety.max_dt_s**2 + 1e-15


@pytest.mark.parametrize(("closure", "expected"), [(-3.0, 0.0), (0.4, 0.4), (7.0, 1.0)])
def test_gripper_closure_is_clipped_to_unit_range(closure, expected):
    result = started_filter().filter(target(CENTRE_M, gripper=closure), PERIOD_S)
    assert result.target.gripper_closure == expected
    assert (GRIPPER_CLIPPED in result.violations) == (closure != expected)


def test_watchdog_is_stale_after_the_command_timeout():
    safety = started_filter()
    assert safety.is_stale(0.0), "no command yet means nothing is commanding the arm"
    safety.mark_fresh(1.0)
    assert not safety.is_stale(1.0 + LIMITS.command_timeout_s)
    assert safety.is_stale(1.0 + LIMITS.command_timeout_s + 1e-6)
    assert safety.is_stale(math.nan)


def test_stale_hold_brakes_then_holds():
    safety = started_filter()
    run(safety, target(offset_m(0.2, 0, 0)), 30)
    holds = [safety.hold((30 + k) * PERIOD_S) for k in range(1, 40)]
    assert all(h.violations == (STALE_HOLD,) for h in holds)
    np.testing.assert_array_equal(holds[-1].target.position_m, holds[-2].target.position_m)


def test_estop_latches_the_hold_pose_until_reset():
    safety = started_filter()
    last = run(safety, target(offset_m(0.2, 0, 0)), 30)[-1]
    safety.trigger_estop("operator pressed the button")
    safety.trigger_estop("a later reason")
    assert safety.estop_reason == "operator pressed the button"
    for k in range(1, 20):
        for result in (safety.filter(target([0.3, 0.3, 0.3]), (30 + k) * PERIOD_S), safety.hold((30 + k) * PERIOD_S)):
            assert result.violations == (ESTOP_HOLD,)
            np.testing.assert_array_equal(result.target.as_vector(), last.target.as_vector())
    safety.reset(state_at(CENTRE_M, stamp_s=1.0))
    assert safety.estop_latched, "reset() is not a way out of an e-stop"
    safety.reset_estop(state_at(offset_m(0, 0.1, 0), stamp_s=2.0))
    assert safety.estop_reason is None
    result = safety.filter(target(offset_m(0, 0.1, 0)), 2.0 + PERIOD_S)
    assert result.violations == ()
    np.testing.assert_allclose(result.target.position_m, offset_m(0, 0.1, 0))


def test_reset_refuses_a_non_finite_measured_state():
    with pytest.raises(ValueError, match="non-finite"):
        SafetyFilter(CELL).reset(state_at([np.nan, 0, 0]))
    with pytest.raises(ValueError, match="zero"):
        SafetyFilter(CELL).reset(state_at(CENTRE_M, [0, 0, 0, 0]))


# ------------------------------------------------------------------------------ property-based fuzzing


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """Draw from several strategies with the given relative weights."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(lambda s: s)


any_float = st.floats(allow_nan=True, allow_infinity=True)
coordinate = weighted(
    (8, st.floats(-0.5, 1.0)),  # around the box, so motion inside it and into its walls is exercised
    (1, st.floats(-1e6, 1e6)),
    (1, st.sampled_from([math.nan, math.inf, -math.inf])),
)
quaternion = weighted(
    (8, st.tuples(*[st.floats(-1.0, 1.0)] * 4)),
    (1, st.just((0.0, 0.0, 0.0, 0.0))),
    (1, st.tuples(*[any_float] * 4)),
)
gripper = weighted((8, st.floats(-0.5, 1.5)), (1, any_float))
time_step_s = weighted(
    (6, st.just(PERIOD_S)),
    (3, st.floats(1e-4, 0.03)),
    (1, st.just(0.0)),
    (1, st.floats(-0.05, 0.0)),
    (1, st.floats(0.03, 2.0)),
    (1, st.just(math.nan)),
)
repeats = st.integers(1, 40)  # a command is usually held for a while, so velocity builds up and walls are hit
command = st.tuples(
    st.just("command"), st.tuples(coordinate, coordinate, coordinate), quaternion, gripper, time_step_s, repeats
)
event = weighted(
    (6, command),
    (1, st.tuples(st.just("hold"), time_step_s, repeats)),
    (1, st.just(("estop",))),
    (1, st.just(("reset_estop",))),
)
start_pose = st.tuples(
    st.tuples(*[st.floats(lo, hi) for lo, hi in zip(CELL.workspace.min_m, CELL.workspace.max_m, strict=True)]),
    st.tuples(*[st.floats(-1.0, 1.0)] * 4).map(lambda q: q if np.linalg.norm(q) > 0.1 else (0.0, 0.0, 0.0, 1.0)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=start_pose, events=st.lists(event, min_size=1, max_size=30))
def test_any_command_sequence_stays_finite_inside_the_box_and_within_limits(start, events):
    measured = state_at(start[0], start[1], stamp_s=0.0)
    safety = SafetyFilter(CELL)
    safety.reset(measured)
    spec = FilterSpec(safety, measured)
    now_s = 0.0
    for ev in events:
        if ev[0] == "estop":
            safety.trigger_estop("fuzz")
            spec.estop()
            continue
        if ev[0] == "reset_estop":
            measured = state_at(spec.prev.position_m, spec.prev.quaternion_xyzw, stamp_s=spec.clock_s)
            safety.reset_estop(measured)
            spec.reset_estop(measured)
            continue
        step_s, repeat = ev[-2], ev[-1]
        for _ in range(repeat):
            now_s = now_s + step_s if math.isfinite(step_s) else now_s
            call_s = now_s if math.isfinite(step_s) else math.nan
            if ev[0] == "hold":
                spec.check(safety.hold(call_s), call_s, holding=True)
            else:
                _, position, quat, gripper, _, _ = ev
                goal = target(position, quat, gripper)
                spec.check(safety.filter(goal, call_s), call_s, goal)
        assert safety.estop_latched == (spec.estop_pose is not None), "only reset_estop clears the latch"


outside_goal = st.tuples(*[st.floats(lo - 0.5, hi + 0.5) for lo, hi in zip(BOX_MIN_M, BOX_MAX_M, strict=True)])


@settings(max_examples=80, deadline=None)
@given(
    start=start_pose,
    goals=st.lists(
        st.tuples(outside_goal, st.integers(1, 80), weighted((4, st.just(PERIOD_S)), (1, time_step_s))),
        min_size=1,
        max_size=8,
    ),
)
def test_chasing_goals_beyond_the_walls_stops_at_the_walls_within_the_accel_limit(start, goals):
    """The box never needs an abrupt stop: braking for a wall starts early enough."""
    measured = state_at(start[0], start[1], stamp_s=0.0)
    safety = SafetyFilter(CELL)
    safety.reset(measured)
    spec = FilterSpec(safety, measured)
    now_s = 0.0
    for goal_m, ticks, step_s in goals:
        goal = target(goal_m, start[1])
        for _ in range(ticks):
            now_s = now_s + step_s if math.isfinite(step_s) else now_s
            call_s = now_s if math.isfinite(step_s) else math.nan
            spec.check(safety.filter(goal, call_s), call_s, goal)


@pytest.mark.parametrize("direction", [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1], [1, 1, -1]])
def test_full_speed_into_a_wall_brakes_in_time(direction):
    safety = started_filter()
    spec = FilterSpec(safety, state_at(CENTRE_M))
    goal = target(CENTRE_M + 10.0 * np.array(direction, dtype=float))
    for k in range(1, 400):
        spec.check(safety.filter(goal, k * PERIOD_S), k * PERIOD_S, goal)
    assert np.linalg.norm(spec.v_m_s) < 1e-9, "at rest against the wall"
    np.testing.assert_allclose(spec.prev.position_m, np.clip(goal.position_m, BOX_MIN_M, BOX_MAX_M), atol=1e-9)


@pytest.mark.parametrize("switch_m", [0.03, 0.02, 0.012, 0.008, 0.004, 0.001])
@pytest.mark.parametrize(("axis", "sign"), [(0, 1.0), (2, -1.0)])
def test_turning_away_close_to_a_wall_still_stops_before_it(axis, sign, switch_m):
    """The hard case for the box: the goal moves sideways while the target rushes at a wall."""
    safety = started_filter()
    spec = FilterSpec(safety, state_at(CENTRE_M))
    wall_m = BOX_MAX_M[axis] if sign > 0 else BOX_MIN_M[axis]
    goal_m = CENTRE_M.copy()
    goal_m[axis] += sign * 10.0
    turned = False
    for k in range(1, 300):
        if not turned and abs(wall_m - spec.prev.position_m[axis]) <= switch_m:
            goal_m = spec.prev.position_m.copy()  # stay at this depth, go sideways
            goal_m[1 if axis != 1 else 0] -= 10.0
            turned = True
        goal = target(goal_m)
        spec.check(safety.filter(goal, k * PERIOD_S), k * PERIOD_S, goal)
    assert turned


@settings(max_examples=60, deadline=None)
@given(
    silence_s=st.floats(0.0, 2.0),
    goal=st.tuples(*[st.floats(lo, hi) for lo, hi in zip(CELL.workspace.min_m, CELL.workspace.max_m, strict=True)]),
)
def test_stale_exactly_when_the_last_command_is_older_than_the_timeout(silence_s, goal):
    safety = started_filter()
    safety.mark_fresh(0.0)
    safety.filter(target(goal), 0.0)
    assert safety.is_stale(silence_s) == (silence_s > LIMITS.command_timeout_s)
