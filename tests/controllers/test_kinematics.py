"""ArmKinematics: the controllers' own model of the arm agrees with the twin's, and its IK reaches, within the
joint limits, what the arm can reach in the cell's workspace. The twin is the judge: every pose here is its
forward kinematics."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

pytest.importorskip("mink", reason="mink missing: pip install -e '.[ik]'")

from controllers.interface import CartesianTarget
from controllers.interpolation import interpolate_pose
from controllers.kinematics import ArmKinematics, ModelMismatchError, build_arm_model
from geometry.transforms import (
    axis_angle_to_matrix,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
    rotation_angle_between,
)
from hardware_configs import load_cell
from sim.scene import ARM_JOINTS, build_model

CELL = load_cell("franka_3cam")
LOWER = np.array([j.lower_rad for j in CELL.robot.joints])
UPPER = np.array([j.upper_rad for j in CELL.robot.joints])
HOME = np.array(CELL.robot.home_joint_positions_rad)
MAX_VELOCITY = np.array([j.max_velocity_rad_s for j in CELL.robot.joints])
POSITION_TOL_M, ANGLE_TOL_RAD = 1e-3, 0.01


class TwinForwardKinematics:
    """TCP pose (base frame) of the twin at joints q."""

    def __init__(self) -> None:
        self.model = build_model(CELL)
        self.data = mujoco.MjData(self.model)
        self.qpos = [self.model.jnt_qposadr[self.model.joint(name).id] for name in ARM_JOINTS]
        self.tcp = self.model.site("tcp").id
        self.base_m = np.array(CELL.robot_base_position_m)

    def __call__(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.data.qpos[self.qpos] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.tcp] - self.base_m, self.data.site_xmat[self.tcp].reshape(3, 3).copy()


@pytest.fixture(scope="module")
def twin() -> TwinForwardKinematics:
    return TwinForwardKinematics()


def reachable_targets(twin: TwinForwardKinematics, count: int, seed: int) -> list[CartesianTarget]:
    """TCP poses of random joint configurations around home whose TCP lies inside the workspace box."""
    rng, box, targets = np.random.default_rng(seed), CELL.workspace, []
    while len(targets) < count:
        position, rotation = twin(np.clip(HOME + rng.normal(0.0, 0.4, len(HOME)), LOWER, UPPER))
        if np.all(position >= box.min_m) and np.all(position <= box.max_m):
            targets.append(CartesianTarget(position, matrix_to_quat_xyzw(rotation), 0.0))
    return targets


def pose_error(twin: TwinForwardKinematics, q: np.ndarray, target: CartesianTarget) -> tuple[float, float]:
    """(position error [m], orientation error [rad]) of the twin's TCP at q from the target."""
    position, rotation = twin(q)
    return (float(np.linalg.norm(position - target.position_m)),
            rotation_angle_between(rotation, quat_xyzw_to_matrix(target.quaternion_xyzw)))


def test_the_arm_model_puts_the_tcp_where_the_twin_does(twin):
    kinematics = ArmKinematics(CELL)
    for q in np.random.default_rng(0).uniform(LOWER, UPPER, size=(200, len(HOME))):
        position, quaternion = kinematics.tcp_pose(q)
        twin_position, twin_rotation = twin(q)
        assert np.linalg.norm(position - twin_position) < 1e-6
        assert rotation_angle_between(quat_xyzw_to_matrix(quaternion), twin_rotation) < 1e-6


def test_the_arm_model_has_the_cells_joints_and_limits():
    model = build_arm_model(CELL)
    assert [model.joint(i).name for i in range(model.njnt)] == [j.name for j in CELL.robot.joints]
    np.testing.assert_allclose(model.jnt_range, np.stack([LOWER, UPPER], axis=1))
    assert model.nq == len(HOME) and model.site("tcp").id >= 0


def test_ik_reaches_random_reachable_targets_in_the_workspace_within_joint_limits(twin):
    kinematics = ArmKinematics(CELL, period_s=100.0)  # velocity limits out of the way: the solver alone
    for target in reachable_targets(twin, 100, seed=1):
        q = kinematics.solve(target, HOME, iterations=50)
        position_error_m, angle_error_rad = pose_error(twin, q, target)
        assert position_error_m < POSITION_TOL_M and angle_error_rad < ANGLE_TOL_RAD, target
        assert np.all(q >= LOWER) and np.all(q <= UPPER)


def test_streamed_targets_are_tracked_within_the_joint_velocity_limits(twin):
    """As the joint_trajectory controller uses it: one solve per control tick from the last command, the target
    moving from home at the cell's speed limits, then held."""
    kinematics = ArmKinematics(CELL, iterations=2)
    period_s, limits = 1.0 / CELL.rates.control_hz, CELL.motion_limits
    home_position, home_quaternion = kinematics.tcp_pose(HOME)
    start = CartesianTarget(home_position, home_quaternion, 0.0)
    for goal in reachable_targets(twin, 20, seed=2):
        distance_m = np.linalg.norm(goal.position_m - start.position_m)
        angle_rad = rotation_angle_between(quat_xyzw_to_matrix(goal.quaternion_xyzw),
                                           quat_xyzw_to_matrix(start.quaternion_xyzw))
        ticks = int(np.ceil(max(distance_m / limits.max_linear_speed_m_s,
                                angle_rad / limits.max_angular_speed_rad_s) / period_s)) + 1
        q = HOME.copy()
        for tick in range(1, ticks + 50):
            q_next = kinematics.solve(interpolate_pose(start, goal, min(1.0, tick / ticks)), q)
            assert np.all(np.abs(q_next - q) <= MAX_VELOCITY * period_s + 1e-9)
            assert np.all(q_next >= LOWER) and np.all(q_next <= UPPER)
            q = q_next
        position_error_m, angle_error_rad = pose_error(twin, q, goal)
        assert position_error_m < POSITION_TOL_M and angle_error_rad < ANGLE_TOL_RAD, goal


def test_one_call_moves_each_joint_at_most_one_period_at_its_velocity_limit(twin):
    kinematics = ArmKinematics(CELL, iterations=5)
    far = reachable_targets(twin, 1, seed=3)[0]
    q = kinematics.solve(far, HOME)
    assert np.all(np.abs(q - HOME) <= MAX_VELOCITY / CELL.rates.control_hz + 1e-9)
    assert np.any(np.abs(q - HOME) > 0.5 * MAX_VELOCITY / CELL.rates.control_hz)  # and it does move


def test_the_home_pose_is_a_fixed_point():
    kinematics = ArmKinematics(CELL)
    position, quaternion = kinematics.tcp_pose(HOME)
    q = kinematics.solve(CartesianTarget(position, quaternion, 0.0), HOME)
    np.testing.assert_allclose(q, HOME, atol=1e-9)


def test_a_seed_just_outside_the_joint_limits_is_brought_inside():
    kinematics = ArmKinematics(CELL)
    seed = HOME.copy()
    seed[3] = UPPER[3] + 1e-4  # a measured joint a hair past its limit (encoder noise)
    position, quaternion = kinematics.tcp_pose(HOME)
    q = kinematics.solve(CartesianTarget(position, quaternion, 0.0), seed)
    assert np.all(q >= LOWER) and np.all(q <= UPPER)


def test_the_model_is_checked_against_the_tcp_pose_the_robot_reports(twin):
    kinematics = ArmKinematics(CELL)
    position, rotation = twin(HOME)
    kinematics.check_against(HOME, position, matrix_to_quat_xyzw(rotation))  # the twin agrees
    other_flange = rotation @ axis_angle_to_matrix(np.array([0.0, 0.0, -3 * np.pi / 4]))  # Franka's flange frame
    with pytest.raises(ModelMismatchError, match=r"0\.0 mm and 2\.356 rad from the reported TCP pose"):
        kinematics.check_against(HOME, position, matrix_to_quat_xyzw(other_flange))
    with pytest.raises(ModelMismatchError, match=r"20\.0 mm and 0\.000 rad"):  # another tool's tcp_offset_m
        kinematics.check_against(HOME, position + rotation @ [0.0, 0.0, 0.02], matrix_to_quat_xyzw(rotation))


def test_a_malformed_seed_is_refused_with_what_was_given():
    kinematics = ArmKinematics(CELL)
    target = CartesianTarget(np.array([0.5, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0]), 0.0)
    with pytest.raises(ValueError, match="7 finite joint positions"):
        kinematics.solve(target, HOME[:6])
    with pytest.raises(ValueError, match="7 finite joint positions"):
        kinematics.solve(target, np.full(7, np.nan))
