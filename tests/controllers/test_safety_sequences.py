"""Specification of the safety filter over call sequences: resets, e-stops, clock faults and odd inputs.

Every output of every sequence is checked against :class:`safety_spec.FilterSpec`: finite; inside the box, or
if the last target was outside it, no farther from it; within the speed and acceleration limits of the
filter's own clock; frozen while the e-stop is latched; each safety event counted once.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safety_spec import (
    BOX_MAX_M,
    BOX_MIN_M,
    CELL,
    CLOCK_FAULT,
    CLOCK_RESYNC,
    CLOCK_RESYNC_CALLS,
    ESTOP_HOLD,
    LIMITS,
    MAX_CLOCK_JUMP_S,
    OUTSIDE,
    PERIOD_S,
    FilterSpec,
    distance_to_box_m,
    inside,
    real_vector,
)

from controllers.interface import CartesianTarget, RobotState
from controllers.safety import SafetyFilter

DOWN_XYZW = np.array([1.0, 0.0, 0.0, 0.0])
CENTRE_M = (BOX_MIN_M + BOX_MAX_M) / 2
# Below the box and beyond its +x face, as after the cell file's box shrank under a parked arm.
OUTSIDE_M = np.array([BOX_MAX_M[0] + 0.3, CENTRE_M[1], BOX_MIN_M[2] - 0.2])


def state_at(position_m, quaternion_xyzw=DOWN_XYZW, stamp_s: object = 0.0, gripper: object = 0.0) -> RobotState:
    return RobotState(stamp_s, np.zeros(7), np.zeros(7), position_m, quaternion_xyzw, 0.085, gripper)


def target(position_m, quaternion_xyzw=DOWN_XYZW, gripper: object = 0.0) -> CartesianTarget:
    return CartesianTarget(position_m, quaternion_xyzw, gripper)


def started(position_m=CENTRE_M, stamp_s: float = 0.0) -> tuple[SafetyFilter, FilterSpec]:
    safety = SafetyFilter(CELL)
    measured = state_at(np.array(position_m, dtype=float), stamp_s=stamp_s)
    safety.reset(measured)
    return safety, FilterSpec(safety, measured)


def drive(safety: SafetyFilter, spec: FilterSpec, goal: CartesianTarget, stamps) -> list:
    results = []
    for now in stamps:
        results.append(safety.filter(goal, now))
        spec.check(results[-1], now, goal)
    return results


def ticks(start_s: float, count: int) -> list[float]:
    return [start_s + k * PERIOD_S for k in range(1, count + 1)]


# ------------------------------------------------------------------------------ outside the box


def test_reset_outside_the_box_comes_back_within_the_limits_instead_of_jumping():
    safety, spec = started(OUTSIDE_M)
    results = drive(safety, spec, target(OUTSIDE_M), ticks(0.0, 1))
    assert OUTSIDE in results[0].violations
    step_m = np.linalg.norm(results[0].target.position_m - OUTSIDE_M)
    assert step_m <= LIMITS.max_linear_accel_m_s2 * PERIOD_S**2 + 1e-15, "one step from rest, not a jump"
    results = drive(safety, spec, target(OUTSIDE_M), ticks(PERIOD_S, 600))
    np.testing.assert_allclose(results[-1].target.position_m, [BOX_MAX_M[0], CENTRE_M[1], BOX_MIN_M[2]], atol=1e-9)
    assert OUTSIDE not in results[-1].violations


@pytest.mark.parametrize("far_m", [1e3, 1e154, 1e300, 1.7e308])
def test_reset_absurdly_far_outside_stays_finite_and_never_moves_away(far_m):
    safety, spec = started([far_m, -far_m, 0.3])
    drive(safety, spec, target(CENTRE_M), ticks(0.0, 50))
    assert distance_to_box_m(safety.last_target.position_m) <= distance_to_box_m(np.array([far_m, -far_m, 0.3]))


def test_hold_outside_the_box_stays_put():
    safety, spec = started(OUTSIDE_M)
    for now in ticks(0.0, 20):
        spec.check(safety.hold(now), now, holding=True)
    np.testing.assert_array_equal(safety.last_target.position_m, OUTSIDE_M)


def test_estop_outside_the_box_freezes_where_the_target_is():
    safety, spec = started(OUTSIDE_M)
    drive(safety, spec, target(CENTRE_M), ticks(0.0, 10))
    frozen = safety.last_target
    assert not inside(frozen.position_m)
    safety.trigger_estop("operator")
    spec.estop()
    results = drive(safety, spec, target(CENTRE_M), ticks(10 * PERIOD_S, 10))
    np.testing.assert_array_equal(results[-1].target.as_vector(), frozen.as_vector())


def test_reset_while_latched_holds_where_the_arm_was_measured():
    safety, spec = started()
    drive(safety, spec, target(CENTRE_M + np.array([0.2, 0, 0])), ticks(0.0, 30))
    safety.trigger_estop("operator")
    spec.estop()
    measured = state_at(OUTSIDE_M, stamp_s=1.0)  # e.g. the twin's scene was teleported meanwhile
    safety.reset(measured)
    spec.restart(measured)
    results = drive(safety, spec, target(CENTRE_M), ticks(1.0, 5))
    assert all(r.violations == (ESTOP_HOLD,) for r in results)
    np.testing.assert_array_equal(results[-1].target.position_m, OUTSIDE_M)


# ---------------------------------------------------------------------------------------- clocks


def test_one_absurd_future_stamp_is_refused_and_does_not_freeze_the_filter():
    safety, spec = started()
    goal = target(CENTRE_M + np.array([0.1, 0, 0]))
    drive(safety, spec, goal, ticks(0.0, 10))
    fault = safety.filter(goal, 1e18)
    spec.check(fault, 1e18, goal)
    assert CLOCK_FAULT in fault.violations
    after = drive(safety, spec, goal, ticks(10 * PERIOD_S, 20))
    assert all(CLOCK_FAULT not in r.violations for r in after)
    assert not np.array_equal(after[-1].target.position_m, fault.target.position_m), "still moving"


@pytest.mark.parametrize("jump_s", [30.0, -0.05, -30.0, 1e9, -1e9])
def test_a_clock_that_really_jumped_is_adopted_after_a_few_refused_calls(jump_s):
    safety, spec = started(stamp_s=100.0)
    goal = target(CENTRE_M + np.array([0.1, 0, 0]))
    drive(safety, spec, goal, ticks(100.0, 10))
    new_clock = ticks(100.0 + 10 * PERIOD_S + jump_s, 30)
    results = drive(safety, spec, goal, new_clock)
    assert all(CLOCK_FAULT in r.violations for r in results[:CLOCK_RESYNC_CALLS])
    assert CLOCK_RESYNC in results[CLOCK_RESYNC_CALLS - 1].violations
    assert all(CLOCK_FAULT not in r.violations for r in results[CLOCK_RESYNC_CALLS:])
    assert np.linalg.norm(results[-1].target.position_m - results[CLOCK_RESYNC_CALLS - 1].target.position_m) > 0


@pytest.mark.parametrize(
    "stamp",
    [math.nan, math.inf, -math.inf, None, "0.5", 0.5 + 0j, True, 10**400, [0.5], np.array([0.5]), object()],
    ids=["nan", "inf", "-inf", "none", "str", "complex", "bool", "huge_int", "list", "array", "object"],
)
def test_a_stamp_that_is_not_a_finite_real_number_is_a_clock_fault(stamp):
    safety, spec = started()
    goal = target(CENTRE_M + np.array([0.1, 0, 0]))
    drive(safety, spec, goal, ticks(0.0, 10))
    refused = safety.filter(goal, stamp)
    spec.check(refused, stamp, goal)
    held = safety.hold(stamp)
    spec.check(held, stamp, holding=True)
    assert CLOCK_FAULT in refused.violations and CLOCK_FAULT in held.violations
    drive(safety, spec, goal, ticks(10 * PERIOD_S, 10))


@pytest.mark.parametrize("stamp", [np.float32(0.125), np.int64(1), np.float64(0.25), np.array(0.5)])
def test_numpy_real_stamps_are_ordinary_times(stamp):
    safety, spec = started()
    result = safety.filter(target(CENTRE_M + np.array([0.1, 0, 0])), stamp)
    spec.check(result, stamp, target(CENTRE_M + np.array([0.1, 0, 0])))
    assert CLOCK_FAULT not in result.violations


def test_a_stall_shorter_than_the_clock_bound_is_a_capped_step_from_rest():
    safety, spec = started()
    goal = target(CENTRE_M + np.array([0.2, 0, 0]))
    drive(safety, spec, goal, ticks(0.0, 30))
    late_s = 30 * PERIOD_S + 0.9 * MAX_CLOCK_JUMP_S
    result = safety.filter(goal, late_s)
    spec.check(result, late_s, goal)
    assert "control_gap" in result.violations and CLOCK_FAULT not in result.violations


def test_watchdog_is_not_fooled_by_a_future_or_malformed_stamp():
    safety, _ = started()
    safety.mark_fresh(1e18)
    assert safety.is_stale(1.0), "a command stamped in the far future is not a fresh command now"
    for stamp in (None, "1.0", 1 + 0j, math.nan):
        safety.mark_fresh(stamp)
        assert safety.is_stale(1.0)
        assert safety.is_stale(stamp)
    safety.mark_fresh(1.0)
    assert not safety.is_stale(1.0 + LIMITS.command_timeout_s)


# -------------------------------------------------------------------------------------- odd inputs

GOOD_POSITION = CENTRE_M + np.array([0.1, 0.0, 0.0])
ODD_VECTORS = {
    "complex": lambda n: np.full(n, 0.5 + 1e-3j),
    "complex_real_valued": lambda n: np.full(n, 0.5 + 0j),
    "object_floats": lambda n: np.array([0.5] * n, dtype=object),
    "object_strings": lambda n: np.array(["0.5"] * n, dtype=object),
    "strings": lambda n: np.array(["0.5"] * n),
    "text": lambda n: "0.5" * n,
    "bools": lambda n: np.ones(n, dtype=bool),
    "bool_list": lambda n: [True] * n,
    "bool_in_list": lambda n: [True] + [0.5] * (n - 1),
    "int_beyond_float": lambda n: [10**400] * n,
    "int_beyond_int64": lambda n: [2**64] * n,
    "longdouble_overflow": lambda n: np.full(n, np.longdouble(10) ** 400),
    "none": lambda n: None,
    "dict": lambda n: {"x": 0.5},
    "too_short": lambda n: np.zeros(n - 1),
    "column": lambda n: np.full((n, 1), 0.5),
    "nested": lambda n: [[0.5]] * n,
    "datetime": lambda n: np.array(["2024-01-01"] * n, dtype="datetime64[D]"),
}
ODD_SCALARS = {
    "complex": 0.5 + 0j,
    "string": "0.5",
    "bool": True,
    "none": None,
    "int_beyond_float": 10**400,
    "array": np.array([0.5]),
    "list": [0.5],
    "nan": math.nan,
}


def _odd_commands():
    quat = [0.0, 0.0, 0.0, 1.0]
    for name, make in ODD_VECTORS.items():
        yield pytest.param(target(make(3), quat), id=f"position-{name}")
        yield pytest.param(target(GOOD_POSITION, make(4)), id=f"quaternion-{name}")
    for name, value in ODD_SCALARS.items():
        yield pytest.param(target(GOOD_POSITION, quat, value), id=f"gripper-{name}")
    yield pytest.param(None, id="no-command")
    yield pytest.param(object(), id="not-a-target")


@pytest.mark.parametrize("command", list(_odd_commands()))
def test_a_command_that_is_not_real_numbers_is_refused_and_brakes(command):
    safety, spec = started()
    drive(safety, spec, target(GOOD_POSITION), ticks(0.0, 20))
    results = drive(safety, spec, command, ticks(20 * PERIOD_S, 30))
    assert all(r.violations and r.violations[0] in ("malformed_rejected", "nonfinite_rejected") for r in results)
    assert np.linalg.norm(safety.linear_velocity_m_s) == 0.0


@pytest.mark.parametrize(
    "command",
    [
        target(np.array([1, 0, 0], dtype=np.int64)),
        target(np.full(3, np.iinfo(np.int64).max)),
        target(np.array([0.5, 0.1, 0.3], dtype=np.float32), np.array([1, 0, 0, 0], dtype=np.uint8), np.float32(1)),
        target([0.5, 0.1, 0.3], (0, 0, 0, 1), np.array(0.5)),
        target(np.full(3, np.longdouble(0.4))),
    ],
    ids=["int64", "int64_max", "float32_uint8", "lists_0d_gripper", "longdouble"],
)
def test_integer_and_other_real_dtypes_are_commands_like_floats(command):
    safety, spec = started()
    results = drive(safety, spec, command, ticks(0.0, 5))
    assert not {"malformed_rejected", "nonfinite_rejected"} & set(results[-1].violations)
    assert real_vector(command.position_m, 3) is not None


@pytest.mark.parametrize(
    "measured",
    [
        state_at(np.full(3, 0.5 + 1e-3j)),
        state_at(CENTRE_M, np.array([1, 0, 0, 0], dtype=complex)),
        state_at(["0.5", "0.1", "0.3"]),
        state_at(np.ones(3, dtype=bool)),
        state_at(CENTRE_M, gripper="0.5"),
        state_at(CENTRE_M, stamp_s=None),
        state_at(CENTRE_M, stamp_s=1 + 0j),
        state_at(CENTRE_M, stamp_s=math.inf),
        state_at([10**400, 0, 0]),
        None,
    ],
    ids=[
        "complex",
        "complex_quaternion",
        "strings",
        "bools",
        "gripper_str",
        "stamp_none",
        "stamp_complex",
        "stamp_inf",
        "huge_int",
        "none",
    ],
)
def test_reset_refuses_a_state_that_is_not_real_numbers_with_a_clear_error_and_changes_nothing(measured):
    safety, spec = started()
    drive(safety, spec, target(GOOD_POSITION), ticks(0.0, 10))
    before = safety.last_target
    with pytest.raises(ValueError, match="cannot reset the safety filter"):
        safety.reset(measured)
    with pytest.raises(ValueError, match="cannot reset the safety filter"):
        safety.reset_estop(measured)
    np.testing.assert_array_equal(safety.last_target.as_vector(), before.as_vector())
    drive(safety, spec, target(GOOD_POSITION), ticks(10 * PERIOD_S, 10))


# ------------------------------------------------------------------------- sequences, property-based


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """Draw from several strategies with the given relative weights."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(lambda s: s)


box_coordinate = [st.floats(lo - 0.3, hi + 0.3) for lo, hi in zip(BOX_MIN_M, BOX_MAX_M, strict=True)]
coordinate = weighted((8, st.floats(-0.5, 1.2)), (1, st.floats(-1e6, 1e6)), (1, st.sampled_from([math.nan, math.inf])))
odd_vector = st.sampled_from(sorted(ODD_VECTORS)).map(lambda name: ODD_VECTORS[name])
quaternion = weighted(
    (8, st.tuples(*[st.floats(-1.0, 1.0)] * 4)),
    (1, st.just((0.0, 0.0, 0.0, 0.0))),
    (1, st.tuples(*[st.floats(allow_nan=True, allow_infinity=True)] * 4)),
)
command_goal = weighted(
    (8, st.builds(target, st.tuples(*box_coordinate), quaternion, st.floats(-0.5, 1.5))),
    (1, st.builds(target, st.tuples(coordinate, coordinate, coordinate), quaternion, st.floats(-0.5, 1.5))),
    (1, odd_vector.map(lambda make: target(make(3)))),
    (1, odd_vector.map(lambda make: target(GOOD_POSITION, make(4)))),
    (1, st.sampled_from(sorted(ODD_SCALARS)).map(lambda name: target(GOOD_POSITION, DOWN_XYZW, ODD_SCALARS[name]))),
)
# How the caller's clock moves before each call: ("step", dt) moves it; ("odd", stamp) is one call at a stamp
# that is not the caller's clock (an outlier, or not a number at all), the clock staying where it was.
clock_move = weighted(
    (8, st.just(("step", PERIOD_S))),
    (2, st.floats(1e-4, 0.03).map(lambda s: ("step", s))),
    (1, st.sampled_from([("step", 0.0), ("step", -0.005), ("step", -0.5)])),
    (1, st.floats(0.03, 0.9).map(lambda s: ("step", s))),
    (1, st.sampled_from([("step", 1.5), ("step", 60.0), ("step", -60.0), ("step", 1e9), ("step", -1e9)])),
    (1, st.sampled_from([1e18, -1e18, 1e300, math.nan, math.inf, None, "0.1", 0.1j, True]).map(lambda s: ("odd", s))),
)
measured_pose = st.tuples(
    weighted(
        (3, st.tuples(*[st.floats(lo, hi) for lo, hi in zip(BOX_MIN_M, BOX_MAX_M, strict=True)])),
        (3, st.tuples(*box_coordinate)),
        (1, st.sampled_from([(1e6, 0.0, 0.3), (1e300, -1e300, 0.0), (-2.0, 0.1, 5.0)])),
    ),
    st.tuples(*[st.floats(-1.0, 1.0)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1),
    st.floats(-0.5, 1.5),
)
repeats = st.integers(1, 30)
operation = weighted(
    (8, st.tuples(st.just("command"), command_goal, clock_move, repeats)),
    (2, st.tuples(st.just("hold"), clock_move, repeats)),
    (1, st.tuples(st.just("estop"))),
    (1, st.tuples(st.just("reset"), measured_pose)),
    (1, st.tuples(st.just("reset_estop"), measured_pose)),
    (1, st.tuples(st.just("bad_reset"), st.sampled_from([state_at(np.full(3, 1j)), state_at(CENTRE_M, stamp_s=None)]))),
)


def play(operations, start) -> None:
    """Run ``operations`` on a filter and on the spec side by side; the spec asserts on every output."""
    safety = SafetyFilter(CELL)
    measured = state_at(np.array(start[0]), np.array(start[1]), stamp_s=0.0, gripper=start[2])
    safety.reset(measured)
    spec = FilterSpec(safety, measured)
    now_s = 0.0
    for op in operations:
        kind = op[0]
        if kind == "estop":
            safety.trigger_estop("fuzz")
            spec.estop()
        elif kind in ("reset", "reset_estop"):
            position, quat, gripper = op[1]
            measured = state_at(np.array(position), np.array(quat), stamp_s=now_s, gripper=gripper)
            if kind == "reset":
                safety.reset(measured)
                spec.restart(measured)
            else:
                safety.reset_estop(measured)
                spec.reset_estop(measured)
        elif kind == "bad_reset":
            with pytest.raises(ValueError):
                safety.reset(op[1])
        else:
            (move, value), count = op[-2], op[-1]
            for _ in range(count if move == "step" else 1):
                if move == "step":
                    now_s += value
                call_s = now_s if move == "step" else value
                if kind == "hold":
                    spec.check(safety.hold(call_s), call_s, holding=True)
                else:
                    spec.check(safety.filter(op[1], call_s), call_s, op[1])
        assert safety.estop_latched == (spec.estop_pose is not None), "only reset_estop clears the latch"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=measured_pose, operations=st.lists(operation, min_size=1, max_size=25))
def test_every_output_of_every_call_sequence_meets_the_spec(start, operations):
    play(operations, start)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=measured_pose, operations=st.lists(operation, min_size=1, max_size=60))
def test_every_output_of_every_call_sequence_meets_the_spec_long(start, operations):
    play(operations, start)
