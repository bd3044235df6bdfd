"""controller_node against a stand-in robot on loopback: safety filter, watchdog, e-stop latch, camera dropout.

The stand-in follows the equilibrium pose perfectly (an ideal impedance controller) and publishes joint states,
the TCP pose and one camera at wall time, so each test sees exactly what the controller commands. With
``follow_joints`` it is an ideal joint trajectory controller instead: its joints jump to each trajectory point
and it reports the TCP pose of those joints (the arm model's forward kinematics, checked against the twin in
tests/controllers/test_kinematics.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_harness import REPO, Graph, call, wait_for
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from controllers.actions import ACTION_NAMES
from controllers.ros.controller_node import ControllerNode
from geometry.transforms import quat_xyzw_to_matrix, rotation_angle_between
from hardware_configs import load_cell
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, SENSOR_QOS, STATE_QOS

pytestmark = pytest.mark.ros
CELL = load_cell("franka_3cam")
F = conv.RclpyFactory()
START = np.array([0.5, 0.0, 0.3])
DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # TCP pointing down


class StandInRobot(Node):
    """Ideal impedance robot plus one camera, publishing at 100 Hz (camera 30 Hz) on wall time."""

    def __init__(self, context, follow_joints: bool = False) -> None:
        super().__init__("standin_robot", context=context)
        self.tcp, self.quaternion = START.copy(), DOWN
        self.q = np.array(CELL.robot.home_joint_positions_rad)
        self.kinematics = None
        if follow_joints:
            from controllers.kinematics import ArmKinematics

            self.kinematics = ArmKinematics(CELL)
            self.tcp, self.quaternion = self.kinematics.tcp_pose(self.q)
        self.commands: list[tuple[float, np.ndarray]] = []
        self.gripper: list[float] = []
        self.camera_on = True
        self.trajectories: list[JointTrajectory] = []
        self._lock = threading.Lock()
        self._js = self.create_publisher(JointState, "/joint_states", STATE_QOS)
        self._tcp = self.create_publisher(PoseStamped, "/tcp_pose", STATE_QOS)
        self._img = self.create_publisher(Image, CELL.cameras[0].topic("color"), SENSOR_QOS)
        self.create_subscription(PoseStamped, "/cartesian_impedance_controller/equilibrium_pose", self._on_eq,
                                 COMMAND_QOS)
        self.create_subscription(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                                 self._on_trajectory, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, "/gripper_controller/commands",
                                 lambda m: self.gripper.append(float(m.data[0])), COMMAND_QOS)
        self.create_timer(0.01, self._publish_state)
        self.create_timer(1 / 30, self._publish_image)
        self._frame = np.zeros((8, 8, 3), np.uint8)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_eq(self, msg: PoseStamped) -> None:
        pose = conv.pose_to_arrays(msg)
        with self._lock:
            self.tcp = pose.position_m
            self.commands.append((self.now(), pose.position_m))

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self.trajectories.append(msg)
        if self.kinematics is None:
            return
        q = conv.joint_trajectory_to_arrays(msg).positions[-1]
        with self._lock:
            self.q = q
            self.tcp, self.quaternion = self.kinematics.tcp_pose(q)
            self.commands.append((self.now(), self.tcp))

    def _publish_state(self) -> None:
        now = self.now()
        names = [j.name for j in CELL.robot.joints] + ["gripper_width"]
        with self._lock:
            q, tcp, quaternion = [*self.q, 0.08], self.tcp, self.quaternion
        self._js.publish(conv.joint_state_msg(F, names, q, now))
        self._tcp.publish(conv.pose_msg(F, tcp, quaternion, now, "base"))

    def _publish_image(self) -> None:
        if self.camera_on:
            self._img.publish(conv.image_msg(F, self._frame, self.now(), CELL.cameras[0].optical_frame))

    def positions_since(self, t: float) -> np.ndarray:
        with self._lock:
            return np.array([p for s, p in self.commands if s >= t])


@pytest.fixture
def rig(ros_context):
    robot = StandInRobot(ros_context)
    controller = ControllerNode(context=ros_context, parameter_overrides=[
        Parameter("watched_topics", value=[CELL.cameras[0].topic("color")])])
    controller.configure()
    operator = Node("operator", context=ros_context)
    pubs = {"target": operator.create_publisher(PoseStamped, "/manip/target_pose", COMMAND_QOS),
            "action": operator.create_publisher(JointTrajectory, "/manip/action", COMMAND_QOS),
            "gripper": operator.create_publisher(Float64, "/manip/gripper_closure", COMMAND_QOS)}
    status: list[DiagnosticArray] = []
    operator.create_subscription(DiagnosticArray, "/controller_node/status", status.append, 10)
    with Graph(ros_context) as graph:
        for node in (robot, controller, operator):
            graph.add(node)
        assert wait_for(lambda: controller.robot.has_state() and len(robot.commands) > 5, 10.0), "no hold commands"
        yield robot, controller, operator, pubs, status


def stream(pub, make, seconds: float, rate_hz: float = 20.0, until=None) -> bool:
    """Publish ``make()`` at ``rate_hz`` for ``seconds``, or until ``until()`` holds (then True)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pub.publish(make())
        time.sleep(1.0 / rate_hz)
        if until is not None and until():
            return True
    return until is None


def near(robot, goal, tol=2e-3):
    return lambda: np.linalg.norm(robot.tcp - goal) < tol


def test_target_pose_is_followed_within_the_cell_speed_limit(rig):
    robot, controller, _, pubs, _ = rig
    goal = START + np.array([0.06, 0.0, -0.04])
    t0 = robot.now()
    assert stream(pubs["target"], lambda: conv.pose_msg(F, goal, DOWN, robot.now(), "base"), 8.0,
                  until=near(robot, goal))
    positions = robot.positions_since(t0)
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    limit = CELL.motion_limits.max_linear_speed_m_s / CELL.rates.control_hz
    assert steps.max() <= 2.0 * limit * 1.05  # one tick may be up to the filter's 2-period cap
    assert controller.holding is None


def test_delta_action_moves_the_goal_like_the_twin_and_reports_latency(rig):
    robot, controller, _, pubs, status = rig
    action = [0.02, -0.01, 0.0, 0.0, 0.0, 0.0, 1.0]
    pubs["action"].publish(conv.joint_trajectory_msg(F, ACTION_NAMES, [action], [0.0], robot.now()))
    expected = START + np.array(action[:3])

    def keep_fresh() -> bool:  # a policy would keep sending; zero deltas hold the goal
        pubs["action"].publish(conv.joint_trajectory_msg(F, ACTION_NAMES, [[0, 0, 0, 0, 0, 0, 1.0]], [0.0],
                                                         robot.now()))
        time.sleep(0.05)
        return np.linalg.norm(robot.tcp - expected) < 1e-3

    assert wait_for(keep_fresh, 15.0)
    assert wait_for(lambda: robot.gripper and robot.gripper[-1] == 1.0, 10.0)
    assert len(controller.latencies_s) > 0 and 0 <= np.median(controller.latencies_s) < 0.2
    assert wait_for(lambda: any(kv.key == "source_to_command_p50_ms" for s in status for kv in s.status[0].values),
                    10.0)


def test_silent_upstream_brakes_to_a_hold(rig):
    robot, controller, _, pubs, _ = rig
    goal = START + np.array([0.2, 0.0, 0.0])
    stream(pubs["target"], lambda: conv.pose_msg(F, goal, DOWN, robot.now(), "base"), 0.3)  # moving fast now
    t_hold = robot.now() + CELL.motion_limits.command_timeout_s + 0.2  # timeout, then braking (< 0.15 s)
    assert wait_for(lambda: len(robot.positions_since(t_hold)) >= 5, 15.0)
    held = robot.positions_since(t_hold)
    assert len(held) >= 3 and np.ptp(held, axis=0).max() < 1e-6  # at rest (ticks are slower on a loaded CI box)
    assert np.linalg.norm(held[-1] - goal) > 0.01  # it did not carry on to the goal it was last given
    assert controller.holding == "no fresh command"


def test_estop_latches_until_reset(rig):
    robot, controller, operator, pubs, status = rig
    goal = START + np.array([0.0, 0.08, 0.0])
    assert call(operator, Trigger, "/controller_node/estop").success
    t0 = robot.now()
    stream(pubs["target"], lambda: conv.pose_msg(F, goal, DOWN, robot.now(), "base"), 8.0,
           until=lambda: len(robot.positions_since(t0)) >= 5)
    frozen = robot.positions_since(t0)
    assert len(frozen) >= 3 and np.ptp(frozen, axis=0).max() < 1e-9
    assert controller.holding.startswith("e-stop")
    assert wait_for(lambda: status and status[-1].status[0].level == DiagnosticStatus.ERROR, 10.0)
    assert call(operator, Trigger, "/controller_node/reset_estop").success
    assert stream(pubs["target"], lambda: conv.pose_msg(F, goal, DOWN, robot.now(), "base"), 8.0,
                  until=near(robot, goal))


def test_camera_dropout_holds_position_while_commands_keep_coming(rig):
    robot, controller, _, pubs, _ = rig
    goal = START + np.array([0.0, -0.1, 0.05])
    robot.camera_on = False
    time.sleep(controller.params.sensor_timeout_s + 0.1)
    t0 = robot.now()
    stream(pubs["target"], lambda: conv.pose_msg(F, goal, DOWN, robot.now(), "base"), 8.0,
           until=lambda: len(robot.positions_since(t0)) >= 5)
    held = robot.positions_since(t0)
    assert np.linalg.norm(held - START, axis=1).max() < 1e-6
    assert controller.holding == f"no data on {CELL.cameras[0].topic('color')}"
    robot.camera_on = True
    assert stream(pubs["target"], lambda: conv.pose_msg(F, goal, DOWN, robot.now(), "base"), 8.0,
                  until=near(robot, goal))


def test_refused_commands_are_counted_on_safety_events(rig):
    robot, _, operator, pubs, _ = rig
    events: list[String] = []
    operator.create_subscription(String, "/controller_node/safety_events", events.append, 10)

    def counts() -> dict[str, int] | None:
        return json.loads(events[-1].data)["counts"] if events else None

    assert wait_for(lambda: counts() is not None, 10.0), "no ~/safety_events"
    before = counts()
    assert before["upstream_rejected"] == 0 and before["stale_hold"] > 0, "the watchdog holds until commands come"
    pubs["target"].publish(conv.pose_msg(F, [np.nan, 0.0, 0.3], DOWN, robot.now(), "base"))
    pubs["target"].publish(conv.pose_msg(F, START, DOWN, robot.now(), "camera_frame"))
    assert wait_for(lambda: counts()["upstream_rejected"] >= 2, 10.0), counts()


@pytest.fixture
def jtc_rig(ros_context):
    """The controller driving a ros2_control JointTrajectoryController: IK (mink) on every tick."""
    pytest.importorskip("mink", reason="mink missing: pip install -e '.[ik]'")
    robot = StandInRobot(ros_context, follow_joints=True)
    controller = ControllerNode(context=ros_context, parameter_overrides=[
        Parameter("watched_topics", value=[CELL.cameras[0].topic("color")]),
        Parameter("controller_type", value="joint_trajectory")])
    controller.configure()
    operator = Node("operator", context=ros_context)
    target = operator.create_publisher(PoseStamped, "/manip/target_pose", COMMAND_QOS)
    with Graph(ros_context) as graph:
        for node in (robot, controller, operator):
            graph.add(node)
        assert wait_for(lambda: controller.robot.has_state() and len(robot.trajectories) > 5, 10.0), "no hold"
        yield robot, target


def test_joint_trajectory_controller_reaches_a_target_pose_through_ik(jtc_rig):
    robot, target = jtc_rig
    quaternion = robot.quaternion.copy()
    goal = robot.tcp + np.array([0.06, 0.0, -0.04])
    t0 = robot.now()
    assert stream(target, lambda: conv.pose_msg(F, goal, quaternion, robot.now(), "base"), 8.0,
                  until=near(robot, goal, 1e-3))
    assert rotation_angle_between(quat_xyzw_to_matrix(robot.quaternion), quat_xyzw_to_matrix(quaternion)) < 0.01
    sent = [conv.joint_trajectory_to_arrays(msg) for msg in list(robot.trajectories)]
    joints = CELL.robot.joints
    assert all(t.names == [j.name for j in joints] and len(t.positions) == 1 for t in sent)
    q = np.array([t.positions[0] for t in sent])
    assert np.all(q >= [j.lower_rad for j in joints]) and np.all(q <= [j.upper_rad for j in joints])
    max_step_rad = np.array([j.max_velocity_rad_s for j in joints]) / CELL.rates.control_hz
    assert np.all(np.abs(np.diff(q, axis=0)) <= max_step_rad + 1e-9)  # one tick's joint motion at most
    steps = np.linalg.norm(np.diff(robot.positions_since(t0), axis=0), axis=1)
    assert steps.max() <= 2.0 * CELL.motion_limits.max_linear_speed_m_s / CELL.rates.control_hz * 1.05


def test_bad_parameters_exit_with_a_clear_message():
    env_cmd = [sys.executable, "-m", "controllers.ros.controller_node", "--ros-args", "-p",
               "controller_type:=velocity", "-p", "state_timeout_s:=-1.0"]
    result = subprocess.run(env_cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "controller_type: 'velocity' is not one of ['joint_trajectory', 'cartesian_pose']" in result.stderr
    assert "state_timeout_s: must be >= 0.001, got -1.0" in result.stderr
    assert "Traceback" not in result.stderr
    help_text = subprocess.run([sys.executable, "-m", "controllers.ros.controller_node", "--help"], cwd=REPO,
                               capture_output=True, text=True, timeout=60)
    assert help_text.returncode == 0 and "controller_type [string] default 'cartesian_pose'" in help_text.stdout
