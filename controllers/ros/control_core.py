"""What ``controller_node`` does between the policy/teleop topics and the robot, without ROS.

:class:`CommandInput` turns upstream commands into one Cartesian target per control tick, exactly as the twin's
environment does (``sim.env.TwinEnv.step``), so a policy trained in the twin meets the same semantics on the
robot: a 7-D delta action moves the *goal* (accumulated, bounded to one policy step of lead) and the target
is interpolated from the pose being commanded now to that goal over one policy period. An absolute target
pose (teleop) replaces the goal at once; the safety filter downstream limits speed and acceleration.

The ``joint_trajectory`` controller type solves IK with :class:`controllers.kinematics.ArmKinematics` (mink on a
kinematic model of the arm built from the cell file; no twin involved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from controllers.actions import ACTION_NAMES, ActionLimits, as_action, next_goal
from controllers.interface import CartesianTarget, RobotState
from controllers.interpolation import interpolate_pose
from hardware_configs.schema import CellConfig
from ros_support.params import CELL_DESCRIPTION, CellName, Field, NodeParams

CONTROLLER_TYPES = ("joint_trajectory", "cartesian_pose")


class ControllerParams(NodeParams):
    """``controller_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    controller_type: Literal["joint_trajectory", "cartesian_pose"] = Field(
        "cartesian_pose",
        description="joint_trajectory (ros2_control JTC, IK here) or cartesian_pose (impedance equilibrium pose)")
    joint_states_topic: str = Field("/joint_states", description="sensor_msgs/JointState in")
    tcp_pose_topic: str = Field("/tcp_pose", description="geometry_msgs/PoseStamped of the TCP (base frame) in")
    joint_prefix: str = Field("", description="prefix of the arm's joint names on the robot (fr3_ on an FR3)")
    gripper_joint: str = Field("gripper_width", description="joint_states entry of the gripper")
    gripper_joint_scale: float = Field(1.0, ge=1e-6, description="opening [m] = scale * that joint's position (2 "
                                       "for a Franka hand finger joint)")
    trajectory_topic: str = Field("/joint_trajectory_controller/joint_trajectory",
                                  description="trajectory_msgs/JointTrajectory out (controller_type joint_trajectory)")
    trajectory_lead_s: float = Field(0.02, ge=0.001, le=1.0,
                                     description="time_from_start of each streamed trajectory point [s]")
    equilibrium_pose_topic: str = Field("/cartesian_impedance_controller/equilibrium_pose",
                                        description="geometry_msgs/PoseStamped out (controller_type cartesian_pose)")
    gripper_command_topic: str = Field("/gripper_controller/commands",
                                       description="std_msgs/Float64MultiArray out: [closure * gripper_command_scale]")
    gripper_command_scale: float = Field(1.0, ge=1e-6, description="closure 0..1 times this is sent to the gripper")
    action_topic: str = Field("/manip/action", description=(
        f"delta actions in: trajectory_msgs/JointTrajectory over {list(ACTION_NAMES)}, stamped with the "
        "observation they were computed from"))
    target_pose_topic: str = Field("/manip/target_pose", description="absolute TCP targets in (base frame), teleop")
    gripper_topic: str = Field("/manip/gripper_closure",
                               description="std_msgs/Float64 closure 0..1 for target poses")
    state_timeout_s: float = Field(0.1, ge=0.001, description="robot state older than this stops commanding [s]")
    watch_cameras: bool = Field(True, description="hold while any watched camera topic is silent")
    watched_topics: list[str] = Field([], description="sensor_msgs/CameraInfo or Image topics that must stay "
                                      "alive; empty = every camera's color/camera_info (published with each frame) "
                                      "of the cell")
    sensor_timeout_s: float = Field(0.5, ge=0.001,
                                    description="a watched topic silent this long makes the arm hold [s]")
    ik_iterations: int = Field(2, ge=1, le=50, description="differential IK (mink) steps per tick (joint_trajectory)")


@dataclass
class _Segment:
    start: CartesianTarget
    goal: CartesianTarget
    ticks: int
    done: int = 0


class CommandInput:
    """Latest upstream command → the Cartesian target of each control tick (see the module docstring)."""

    def __init__(self, cell: CellConfig) -> None:
        self.cell = cell
        self.limits = ActionLimits.from_cell(cell)
        self._goal: CartesianTarget | None = None
        self._segment: _Segment | None = None
        self.last_input_s: float | None = None  # when the last command arrived (node clock)
        self.source_stamp_s: float | None = None  # stamp of the observation the running command came from
        self._gripper_closure = 0.0

    def reset(self) -> None:
        """Forget the goal (after an e-stop reset or a scene change): the next command starts from the arm."""
        self._goal, self._segment, self.last_input_s, self.source_stamp_s = None, None, None, None

    def on_action(self, action: np.ndarray, commanded: CartesianTarget, now_s: float, source_stamp_s: float) -> None:
        """A 7-D delta action (:mod:`controllers.actions`), applied as ``TwinEnv.step`` applies it."""
        goal = next_goal(self._goal or commanded, commanded, as_action(action, finite=True), self.limits)
        self._start(goal, commanded, self.limits.ticks_per_action, now_s, source_stamp_s)

    def on_target(self, position_m: np.ndarray, quaternion_xyzw: np.ndarray, commanded: CartesianTarget,
                  now_s: float, source_stamp_s: float) -> None:
        """An absolute TCP target (base frame); the gripper keeps the last ``on_gripper`` closure."""
        goal = CartesianTarget(np.asarray(position_m, float), np.asarray(quaternion_xyzw, float),
                               self._gripper_closure)
        if not (np.all(np.isfinite(goal.position_m)) and np.all(np.isfinite(goal.quaternion_xyzw))):
            raise ValueError("target pose has non-finite values")
        self._start(goal, commanded, 1, now_s, source_stamp_s)

    def on_gripper(self, closure: float, commanded: CartesianTarget, now_s: float) -> None:
        if not math.isfinite(closure):
            raise ValueError("gripper closure must be finite")
        self._gripper_closure = float(np.clip(closure, 0.0, 1.0))
        goal = self._goal or commanded
        self._start(CartesianTarget(goal.position_m, goal.quaternion_xyzw, self._gripper_closure), commanded, 1,
                    now_s, self.source_stamp_s if self.source_stamp_s is not None else now_s)

    def fresh(self, now_s: float, timeout_s: float) -> bool:
        return self.last_input_s is not None and now_s - self.last_input_s <= timeout_s

    def next_target(self) -> CartesianTarget | None:
        """The target for this tick (advances the interpolation), or None before any command."""
        seg = self._segment
        if seg is None:
            return None
        seg.done = min(seg.done + 1, seg.ticks)
        return interpolate_pose(seg.start, seg.goal, seg.done / seg.ticks)

    def _start(self, goal: CartesianTarget, commanded: CartesianTarget, ticks: int, now_s: float,
               source_stamp_s: float) -> None:
        self._goal = goal
        self._segment = _Segment(commanded, goal, ticks)
        self.last_input_s, self.source_stamp_s = now_s, source_stamp_s


def state_from_readings(stamp_s: float, q: np.ndarray, dq: np.ndarray, tcp_position_m: np.ndarray,
                        tcp_quaternion_xyzw: np.ndarray, gripper_width_m: float, gripper_closure: float) -> RobotState:
    return RobotState(stamp_s, np.asarray(q, float), np.asarray(dq, float), np.asarray(tcp_position_m, float),
                      np.asarray(tcp_quaternion_xyzw, float), float(gripper_width_m), float(gripper_closure))
