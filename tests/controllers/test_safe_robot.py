"""Specification of SafeRobot: what a backend receives, whatever the code above it does.

The backend here is a kinematic robot: each tick its TCP jumps to the last target it received and its
clock advances one control period. It records every target with the pose the arm was at when it
arrived, so the tests can check what the arm was actually asked to do.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.interface import CartesianTarget, RobotInterface, RobotState
from controllers.safe_robot import SafeRobot
from controllers.safety import ESTOP_HOLD, NONFINITE_REJECTED, STALE_HOLD
from hardware_configs import load_cell

CELL = load_cell("franka_3cam")
LIMITS = CELL.motion_limits
BOX_MIN_M = np.array(CELL.workspace.min_m)
BOX_MAX_M = np.array(CELL.workspace.max_m)
PERIOD_S = 1.0 / CELL.rates.control_hz
DOWN_XYZW = np.array([1.0, 0.0, 0.0, 0.0])
CENTRE_M = (BOX_MIN_M + BOX_MAX_M) / 2


def offset_m(dx: float, dy: float, dz: float) -> np.ndarray:
    """A point at this offset [m] from the centre of the workspace box."""
    return CENTRE_M + np.array([dx, dy, dz], dtype=float)


class KinematicRobot:
    """A perfect tracker: at each tick the TCP is where the last target said. Records what it was sent."""

    def __init__(self, position_m=CENTRE_M, quaternion_xyzw=DOWN_XYZW) -> None:
        self.ticks = 0
        self.position_m = np.array(position_m, dtype=float)
        self.quaternion_xyzw = np.array(quaternion_xyzw, dtype=float)
        self.gripper_closure = 0.0
        self.pending: CartesianTarget | None = None
        self.received: list[tuple[float, CartesianTarget, CartesianTarget]] = []  # (time, pose then, target)
        self.stop_calls = 0

    @property
    def clock_s(self) -> float:
        return self.ticks * PERIOD_S

    def pose(self) -> CartesianTarget:
        return CartesianTarget(self.position_m.copy(), self.quaternion_xyzw.copy(), self.gripper_closure)

    def read_state(self) -> RobotState:
        return RobotState(
            stamp_s=self.clock_s,
            joint_positions_rad=np.zeros(7),
            joint_velocities_rad_s=np.zeros(7),
            tcp_position_m=self.position_m.copy(),
            tcp_quaternion_xyzw=self.quaternion_xyzw.copy(),
            gripper_width_m=0.085 * (1.0 - self.gripper_closure),
            gripper_closure=self.gripper_closure,
        )

    def send_target(self, target: CartesianTarget) -> None:
        self.received.append((self.clock_s, self.pose(), target))
        self.pending = target

    def wait_for_tick(self) -> float:
        self.ticks += 1
        if self.pending is not None:
            self.position_m = np.array(self.pending.position_m, dtype=float)
            self.quaternion_xyzw = np.array(self.pending.quaternion_xyzw, dtype=float)
            self.gripper_closure = float(self.pending.gripper_closure)
        return self.clock_s

    def stop(self) -> None:
        self.stop_calls += 1
        self.pending = None


def angle_between_rad(q_a: np.ndarray, q_b: np.ndarray) -> float:
    return 2.0 * math.acos(min(1.0, abs(float(np.dot(q_a, q_b)))))


def assert_backend_only_got_safe_targets(backend: KinematicRobot) -> None:
    """Every target: finite, in the box, unit quaternion, gripper in [0, 1], and one tick's move from the arm."""
    for _, pose, sent in backend.received:
        assert np.all(np.isfinite(sent.as_vector()))
        assert np.all(sent.position_m >= BOX_MIN_M - 1e-9) and np.all(sent.position_m <= BOX_MAX_M + 1e-9)
        assert abs(np.linalg.norm(sent.quaternion_xyzw) - 1.0) <= 1e-9
        assert 0.0 <= sent.gripper_closure <= 1.0
        assert np.linalg.norm(sent.position_m - pose.position_m) <= LIMITS.max_linear_speed_m_s * PERIOD_S + 1e-12
        assert angle_between_rad(sent.quaternion_xyzw, pose.quaternion_xyzw) <= (
            LIMITS.max_angular_speed_rad_s * PERIOD_S + 1e-7  # acos near 1 loses precision
        )


def target(position_m, quaternion_xyzw=DOWN_XYZW, gripper: float = 0.0) -> CartesianTarget:
    return CartesianTarget(np.array(position_m, dtype=float), np.array(quaternion_xyzw, dtype=float), gripper)


def step(robot: SafeRobot, goal: CartesianTarget | None) -> None:
    """One control-loop iteration of an upstream that sends ``goal`` (or stays silent when None)."""
    robot.read_state()
    if goal is not None:
        robot.send_target(goal)
    robot.wait_for_tick()


def test_safe_robot_is_a_robot_interface():
    assert isinstance(SafeRobot(KinematicRobot(), CELL), RobotInterface)


def test_far_goal_outside_the_box_is_reached_on_its_face_at_bounded_speed():
    backend = KinematicRobot()
    robot = SafeRobot(backend, CELL)
    goal_xyzw = np.array([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0])  # 90 degrees from pointing down
    goal = target([2.0, -1.0, 0.3], goal_xyzw, gripper=3.0)
    for _ in range(400):
        step(robot, goal)
    assert_backend_only_got_safe_targets(backend)
    np.testing.assert_allclose(backend.position_m, [BOX_MAX_M[0], BOX_MIN_M[1], 0.3], atol=1e-9)
    assert angle_between_rad(backend.quaternion_xyzw, goal_xyzw) < 1e-6
    assert backend.gripper_closure == 1.0
    assert robot.violation_counts["workspace_clamped"] > 0 and robot.violation_counts["gripper_clipped"] > 0
    assert robot.violation_counts["time_not_advancing"] == 0, "the first command, at the reset's stamp, is no fault"


def test_silent_upstream_makes_the_arm_hold_after_the_timeout():
    backend = KinematicRobot()
    robot = SafeRobot(backend, CELL)
    for _ in range(40):
        step(robot, target(offset_m(0.2, 0.0, 0.0)))
    assert robot.last_result is not None and robot.last_result.violations != (STALE_HOLD,)
    last_commanded = backend.received[-1][2]
    sent_before = len(backend.received)

    timeout_ticks = LIMITS.command_timeout_s / PERIOD_S
    silent_ticks_before_hold = 0
    while len(backend.received) == sent_before:
        step(robot, None)
        silent_ticks_before_hold += 1
    assert timeout_ticks <= silent_ticks_before_hold <= timeout_ticks + 1
    for _ in range(100):
        step(robot, None)
        assert robot.last_result is not None and robot.last_result.violations == (STALE_HOLD,)
    # One hold a tick, each the pose where the commands stopped.
    assert len(backend.received) == sent_before + 101
    for _, _, held in backend.received[sent_before:]:
        np.testing.assert_array_equal(held.position_m, last_commanded.position_m)
    assert_backend_only_got_safe_targets(backend)

    for _ in range(5):  # upstream back: motion resumes
        step(robot, target(offset_m(0.2, 0.0, 0.0)))
    assert not np.allclose(backend.position_m, last_commanded.position_m)


def test_estop_latches_until_reset_whatever_upstream_sends():
    backend = KinematicRobot()
    robot = SafeRobot(backend, CELL)
    for _ in range(30):
        step(robot, target(offset_m(0.2, 0.0, 0.0)))
    robot.estop("operator")
    assert backend.stop_calls == 1 and robot.estop_reason == "operator"
    held = backend.received[-1][2]
    before = len(backend.received)
    for k in range(50):
        step(robot, target(offset_m(-0.2, -0.2, -0.2)) if k % 2 else None)
    for _, _, sent in backend.received[before:]:
        np.testing.assert_array_equal(sent.as_vector(), held.as_vector())
    assert robot.violation_counts[ESTOP_HOLD] == len(backend.received) - before
    assert_backend_only_got_safe_targets(backend)

    robot.reset_estop()
    assert robot.estop_reason is None
    for _ in range(200):
        step(robot, target(offset_m(-0.1, -0.1, -0.1)))
    np.testing.assert_allclose(backend.position_m, offset_m(-0.1, -0.1, -0.1), atol=1e-9)
    assert_backend_only_got_safe_targets(backend)


def test_each_kind_of_violation_is_logged_once_and_counted_always(caplog):
    robot = SafeRobot(KinematicRobot(), CELL)
    with caplog.at_level(logging.WARNING, logger="controllers.safe_robot"):
        for _ in range(5):
            step(robot, target([np.nan, 0.0, 0.3]))
    assert robot.violation_counts[NONFINITE_REJECTED] == 5
    assert sum(NONFINITE_REJECTED in r.getMessage() for r in caplog.records) == 1


def test_stop_restarts_from_where_the_arm_stopped():
    backend = KinematicRobot()
    robot = SafeRobot(backend, CELL)
    for _ in range(30):
        step(robot, target(offset_m(0.2, 0.0, 0.0)))
    robot.stop()
    assert backend.stop_calls == 1
    np.testing.assert_array_equal(robot.safety_filter.last_target.position_m, backend.position_m)
    assert np.all(robot.safety_filter.linear_velocity_m_s == 0.0)


# ------------------------------------------------------------------------------ property-based fuzzing

goal_coordinate = st.one_of(st.floats(-1.0, 1.5), st.sampled_from([math.nan, math.inf, -1e9]))
upstream_action = st.one_of(
    st.tuples(
        st.just("send"),
        st.tuples(goal_coordinate, goal_coordinate, goal_coordinate),
        st.tuples(*[st.floats(-1.0, 1.0)] * 4),
        st.floats(-2.0, 2.0),
        st.integers(1, 60),
    ),
    st.tuples(st.just("silent"), st.integers(1, 80)),
    st.just(("estop",)),
    st.just(("reset_estop",)),
    st.just(("stop",)),
)


@settings(max_examples=100, deadline=None)
@given(actions=st.lists(upstream_action, min_size=1, max_size=12))
def test_backend_never_receives_an_out_of_limit_target(actions):
    backend = KinematicRobot()
    robot = SafeRobot(backend, CELL)
    for action in actions:
        if action[0] == "send":
            _, position, quat, gripper, ticks = action
            for _ in range(ticks):
                step(robot, target(position, quat, gripper))
        elif action[0] == "silent":
            for _ in range(action[1]):
                step(robot, None)
        elif action[0] == "estop":
            robot.estop("fuzz")
        elif action[0] == "reset_estop":
            robot.reset_estop()
        else:
            robot.stop()
    assert_backend_only_got_safe_targets(backend)
