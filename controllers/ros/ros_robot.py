"""The robot interface over ROS 2 topics: state from ``/joint_states`` + the TCP pose topic, commands to the
configured low-level controller (ros2_control's JointTrajectoryController through IK, or a Cartesian impedance
controller's equilibrium pose) and the gripper's forward command controller.

Time. ``wait_for_tick`` does not sleep: the owning node's timer paces the control loop (on the node's clock,
so sim time from ``/clock`` works) and ``wait_for_tick`` returns that tick's time. ``read_state().stamp_s`` is
the tick time too, so the safety filter sees one evenly spaced clock; the age of the measurements is checked
separately (:meth:`RosRobot.state_age_s`), because a stamp from the robot's clock would mix two clocks.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from controllers.interface import CartesianTarget, RobotState
from controllers.ros.control_core import ControllerParams, state_from_readings
from hardware_configs.schema import CellConfig
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, STATE_QOS

if TYPE_CHECKING:
    from controllers.kinematics import ArmKinematics


class RosRobot:
    """:class:`controllers.interface.RobotInterface` backed by topics of ``node``; ``params`` from
    :class:`controllers.ros.control_core.ControllerParams`."""

    def __init__(self, node: Node, cell: CellConfig, params: ControllerParams) -> None:
        self.node, self.cell, self.params = node, cell, params
        self.msgs = conv.RclpyFactory()
        self.arm_joints = [params.joint_prefix + j.name for j in cell.robot.joints]
        self.controller_type = params.controller_type
        self.kinematics: ArmKinematics | None = None
        if self.controller_type == "joint_trajectory":
            from controllers.kinematics import ArmKinematics  # mink + mujoco: only this controller type needs them

            self.kinematics = ArmKinematics(cell, params.ik_iterations)
        self._lock = threading.Lock()
        self._joints: conv.JointReading | None = None
        self._gripper_width_m = 0.0
        self._tcp: conv.PoseReading | None = None
        self._joints_rx_s: float | None = None
        self._tcp_rx_s: float | None = None
        self._tick_s = 0.0
        self._q_command: np.ndarray | None = None
        self._kinematics_checked = False
        self._gripper_closure = 0.0
        self._gripper_sent: float | None = None
        self._gripper_sent_s = -np.inf
        self.commands_sent = 0
        node.create_subscription(JointState, params.joint_states_topic, self._on_joints, STATE_QOS)
        node.create_subscription(PoseStamped, params.tcp_pose_topic, self._on_tcp, STATE_QOS)
        if self.controller_type == "joint_trajectory":
            self._pub = node.create_publisher(JointTrajectory, params.trajectory_topic, COMMAND_QOS)
        else:
            self._pub = node.create_publisher(PoseStamped, params.equilibrium_pose_topic, COMMAND_QOS)
        self._pub_gripper = node.create_publisher(Float64MultiArray, params.gripper_command_topic, COMMAND_QOS)

    # ------------------------------------------------------------------ subscriptions
    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_joints(self, msg: JointState) -> None:
        try:
            reading = conv.joint_state_to_arrays(msg, self.arm_joints)
        except conv.ConversionError:
            return  # a joint_states message of another driver (e.g. only the gripper's): not ours
        gripper = self.params.gripper_joint
        with self._lock:
            self._joints, self._joints_rx_s = reading, self._now()
            if gripper in msg.name:
                scale = self.params.gripper_joint_scale
                self._gripper_width_m = float(msg.position[list(msg.name).index(gripper)]) * scale

    def _on_tcp(self, msg: PoseStamped) -> None:
        reading = conv.pose_to_arrays(msg)
        if reading.frame_id not in ("", self.cell.robot.base_frame):
            self.node.get_logger().warning(f"TCP pose in frame {reading.frame_id!r}, expected "
                                           f"{self.cell.robot.base_frame!r}: ignored", throttle_duration_sec=5.0)
            return
        with self._lock:
            self._tcp, self._tcp_rx_s = reading, self._now()

    # ------------------------------------------------------------------ RobotInterface
    def has_state(self) -> bool:
        return self._joints is not None and self._tcp is not None

    def state_age_s(self, now_s: float) -> float:
        """Age of the older of the two state streams on arrival (inf before both arrived)."""
        with self._lock:
            if self._joints_rx_s is None or self._tcp_rx_s is None:
                return float("inf")
            return now_s - min(self._joints_rx_s, self._tcp_rx_s)

    def read_state(self) -> RobotState:
        with self._lock:
            if self._joints is None or self._tcp is None:
                raise RuntimeError(f"no robot state yet on {self.params.joint_states_topic} and "
                                   f"{self.params.tcp_pose_topic}")
            j, t = self._joints, self._tcp
            return state_from_readings(self._tick_s or self._now(), j.positions, j.velocities, t.position_m,
                                       t.quaternion_xyzw, self._gripper_width_m, self._gripper_closure)

    def wait_for_tick(self) -> float:
        """The node's timer paced this call; returns the tick time on the node clock [s]."""
        self._tick_s = self._now()
        return self._tick_s

    def send_target(self, target: CartesianTarget) -> None:
        stamp = self._tick_s or self._now()
        if self.kinematics is not None:
            if not self._kinematics_checked:  # before the first IK command: the model must agree with the robot
                state = self.read_state()
                self.kinematics.check_against(state.joint_positions_rad, state.tcp_position_m,
                                              state.tcp_quaternion_xyzw)
                self._kinematics_checked = True
            seed = self._q_command if self._q_command is not None else self.read_state().joint_positions_rad
            self._q_command = self.kinematics.solve(target, seed)
            self._publish_joints(self._q_command)
        else:
            self._pub.publish(conv.pose_msg(self.msgs, target.position_m, target.quaternion_xyzw, stamp,
                                            self.cell.robot.base_frame))
        self._send_gripper(float(target.gripper_closure))
        self.commands_sent += 1

    def stop(self) -> None:
        """Hold where the arm is: the measured joints (JTC) or the measured TCP pose (impedance)."""
        if not self.has_state():
            return
        state = self.read_state()
        if self.kinematics is not None:
            self._q_command = state.joint_positions_rad.copy()
            self._publish_joints(self._q_command)
        else:
            self._pub.publish(conv.pose_msg(self.msgs, state.tcp_position_m, state.tcp_quaternion_xyzw,
                                            self._tick_s or self._now(), self.cell.robot.base_frame))

    # ------------------------------------------------------------------ internals
    def _publish_joints(self, q: np.ndarray) -> None:
        # Stamp 0: "start on receipt" (a JTC compares a non-zero stamp with its own clock).
        self._pub.publish(conv.joint_trajectory_msg(self.msgs, self.arm_joints, q[None],
                                                    [self.params.trajectory_lead_s], 0.0))

    def _send_gripper(self, closure: float) -> None:
        self._gripper_closure = closure
        now = self._tick_s or self._now()
        unchanged = self._gripper_sent is not None and abs(closure - self._gripper_sent) < 1e-3
        if unchanged and now - self._gripper_sent_s < 0.5:
            return  # a forward command controller keeps the last command: send changes (and a 2 Hz refresh)
        self._gripper_sent, self._gripper_sent_s = closure, now
        self._pub_gripper.publish(conv.float_array_msg(self.msgs, [closure * self.params.gripper_command_scale]))
