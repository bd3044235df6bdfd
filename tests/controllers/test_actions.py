"""What an action means: seven named numbers per policy step, bounded by the cell, moving a goal that stays close."""

import numpy as np
import pytest

from controllers.actions import (
    ACTION_DIM,
    ACTION_NAMES,
    ACTION_UNITS,
    ActionLimits,
    apply_delta_action,
    as_action,
    bounded_goal,
    delta_action_between,
    hold_action,
    next_goal,
)
from controllers.interface import CartesianTarget
from geometry.transforms import axis_angle_to_matrix, matrix_to_quat_xyzw, quat_xyzw_to_matrix

DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # TCP pointing down (x, y, z, w)


def at(position_m, quaternion_xyzw=DOWN, gripper=0.0) -> CartesianTarget:
    return CartesianTarget(np.asarray(position_m, float), np.asarray(quaternion_xyzw, float), gripper)


def test_an_action_is_seven_named_values_with_units():
    assert ACTION_DIM == len(ACTION_NAMES) == len(ACTION_UNITS) == 7
    assert ACTION_NAMES[:3] == ("dx", "dy", "dz") and ACTION_NAMES[6] == "gripper"
    assert ACTION_UNITS == ("m", "m", "m", "rad", "rad", "rad", "1")


def test_the_bounds_are_the_cells_speed_limits_over_one_policy_period(cell):
    limits = ActionLimits.from_cell(cell)
    assert limits.max_translation_m == pytest.approx(cell.motion_limits.max_linear_speed_m_s / cell.rates.policy_hz)
    assert limits.max_rotation_rad == pytest.approx(cell.motion_limits.max_angular_speed_rad_s / cell.rates.policy_hz)
    assert limits.ticks_per_action == round(cell.rates.control_hz / cell.rates.policy_hz)
    assert limits.high.dtype == np.float32 and limits.low[6] == 0.0 and limits.high[6] == 1.0
    np.testing.assert_array_equal(limits.low[:6], -limits.high[:6])


def test_a_delta_translates_and_rotates_on_the_left_in_the_base_frame():
    base = at([0.5, 0.0, 0.3])
    goal = apply_delta_action(base, np.array([0.01, -0.02, 0.0, 0.0, 0.0, 0.1, 0.7]))
    np.testing.assert_allclose(goal.position_m, [0.51, -0.02, 0.3])
    expected = axis_angle_to_matrix([0, 0, 0.1]) @ quat_xyzw_to_matrix(DOWN)
    np.testing.assert_allclose(quat_xyzw_to_matrix(goal.quaternion_xyzw), expected, atol=1e-12)
    assert goal.gripper_closure == pytest.approx(0.7)


def test_the_delta_between_two_poses_is_the_inverse_of_applying_it():
    q_b = matrix_to_quat_xyzw(axis_angle_to_matrix([0.05, -0.1, 0.2]) @ quat_xyzw_to_matrix(DOWN))
    action = delta_action_between(np.array([0.5, 0.0, 0.3]), DOWN, np.array([0.52, 0.01, 0.28]), q_b, 1.0)
    assert action.dtype == np.float32 and action.shape == (7,)
    moved = apply_delta_action(at([0.5, 0.0, 0.3]), action)
    np.testing.assert_allclose(moved.position_m, [0.52, 0.01, 0.28], atol=1e-6)
    np.testing.assert_allclose(quat_xyzw_to_matrix(moved.quaternion_xyzw), quat_xyzw_to_matrix(q_b), atol=1e-6)


def test_the_goal_stays_in_the_workspace_and_one_step_ahead_of_the_arm(cell):
    limits = ActionLimits.from_cell(cell)
    commanded = at(np.add(cell.workspace.min_m, cell.workspace.max_m) / 2)
    goal = commanded
    for _ in range(50):  # push far down: the goal winds up neither past the floor nor beyond one step of lead
        goal = next_goal(goal, commanded, np.array([0.0, 0.0, -0.2, 0, 0, 0, 2.0]), limits)
    lead_m = np.linalg.norm(goal.position_m - commanded.position_m)
    assert lead_m <= limits.max_translation_m * np.sqrt(3) + 1e-9
    assert goal.position_m[2] >= cell.workspace.min_m[2] and goal.gripper_closure == 1.0
    corner = at(cell.workspace.max_m)  # a goal far outside is clipped to the box first
    assert np.all(bounded_goal(at([10.0, 10.0, 10.0]), corner, limits).position_m == corner.position_m)


def test_an_action_inside_the_action_space_passes_the_bound_unchanged(cell):
    limits = ActionLimits.from_cell(cell)
    commanded = at(np.add(cell.workspace.min_m, cell.workspace.max_m) / 2)
    action = limits.high.astype(float)
    np.testing.assert_allclose(next_goal(commanded, commanded, action, limits).position_m,
                               apply_delta_action(commanded, action).position_m, rtol=0, atol=1e-15)


def test_a_hold_keeps_the_arm_and_the_gripper():
    np.testing.assert_array_equal(hold_action(1.0), [0, 0, 0, 0, 0, 0, 1.0])
    assert hold_action(0.0).dtype == np.float32


def test_a_malformed_action_is_refused_naming_the_dimensions():
    with pytest.raises(ValueError, match=r"7 values \[dx dy dz rx ry rz gripper\]"):
        as_action(np.zeros(6))
    assert np.isnan(as_action([np.nan] * 7)[0])  # the twin lets its safety filter hold on NaN
    with pytest.raises(ValueError, match="finite"):
        as_action([np.nan] * 7, finite=True)
