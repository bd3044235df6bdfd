"""The twin as a robot cell, without ROS: what ``sim_node`` wraps.

The real cell's low level is ros2_control (a ``JointTrajectoryController``) or franka's Cartesian impedance
controller, plus camera drivers. :class:`SimCell` offers the same three inputs (a joint trajectory, an
equilibrium pose, a gripper closure) and the same outputs (joint states, TCP pose, camera frames) on the
twin's clock, so the nodes above cannot tell it from the robot. Physics advances only in :meth:`SimCell.step`,
one control period at a time; sim time never goes backwards, not even across scene resets.
"""

from __future__ import annotations

import logging
from typing import Literal

import mujoco
import numpy as np

from controllers.interface import CartesianTarget, RobotState
from hardware_configs import load_cell, load_task
from hardware_configs.schema import CellConfig, TaskConfig
from perception.cameras.base import Frame
from perception.depth_model import DepthModel
from ros_support.params import CELL_DESCRIPTION, TASK_DESCRIPTION, CellName, Field, NodeParams, TaskName
from sim.cameras import TwinCameras
from sim.robot import GRIPPER_CTRL_CLOSED, TwinRobot
from sim.scene import ImageSize, build_model
from sim.tasks import TwinTask

SETTLE_TICKS = 20

logger = logging.getLogger(__name__)


class SimNodeParams(NodeParams):
    """``sim_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    task: TaskName = Field("lift", description=TASK_DESCRIPTION)
    seed: int = Field(0, ge=0, description="seed of the first scene; each ~/reset draws the next")
    image_width: int = Field(0, ge=0, description="rendered width [px]; 0 = the cell's camera resolution")
    image_height: int = Field(0, ge=0, description="rendered height [px]; 0 = the cell's camera resolution")
    camera_fps: float = Field(0.0, ge=0.0, le=90.0,
                              description="frames per second of sim time; 0 = each camera's fps from the cell")
    cameras: list[str] = Field([], description="cameras to publish; empty = every camera of the cell")
    publish_depth: bool = Field(True, description="also publish aligned depth (as realsense-ros align_depth)")
    depth_model: bool = Field(True, description="the D435-like depth errors on the published depth "
                              "(perception.depth_model: noise growing with distance squared, edge and dark-surface "
                              "holes, 1 mm steps, per-camera pose error); off only to measure them")
    depth_encoding: Literal["16UC1", "32FC1"] = Field("16UC1",
                                                      description="16UC1 (mm, the driver's) or 32FC1 (m)")
    publish_cameras: bool = Field(True, description="set false at run time to simulate a camera dropout",
                                  json_schema_extra={"read_only": False})
    real_time_factor: float = Field(1.0, ge=0.0, le=100.0,
                                    description="sim seconds per wall second; 0 = as fast as possible")
    publish_clock: bool = Field(True, description="publish /clock (the graph then runs with use_sim_time:=true)")
    publish_task_state: bool = Field(False, description=(
        "also publish the twin's task success (~/task_success, std_msgs/Bool) and its sim-only observation keys "
        "(<obs_topic_prefix>privileged, ...privileged_relative; Float64MultiArray) every tick: what a twin-only "
        "fine-tuning session reads (finetune.launch.py use_sim:=true); the robot has neither"))
    obs_topic_prefix: str = Field("/manip/obs/", description="prefix of the sim-only observation topics")
    joint_prefix: str = Field("", description="prefix of joint names in /joint_states (fr3_ on an FR3)")
    gripper_joint: str = Field("gripper_width", description="joint_states entry for the gripper (opening [m])")
    joint_states_topic: str = Field("/joint_states", description="sensor_msgs/JointState out")
    tcp_pose_topic: str = Field("/tcp_pose",
                                description="geometry_msgs/PoseStamped of the TCP in the base frame, out")
    trajectory_topic: str = Field("/joint_trajectory_controller/joint_trajectory", description=(
        "trajectory_msgs/JointTrajectory in (as ros2_control's JointTrajectoryController)"))
    equilibrium_pose_topic: str = Field("/cartesian_impedance_controller/equilibrium_pose", description=(
        "geometry_msgs/PoseStamped in (as franka's Cartesian impedance example)"))
    gripper_command_topic: str = Field("/gripper_controller/commands", description=(
        "std_msgs/Float64MultiArray [closure 0..1] in (a forward command controller)"))



class TrajectoryFollower:
    """Joint-space trajectory sampled per tick, as a JointTrajectoryController with linear interpolation.

    A new trajectory replaces the old one from its start time, beginning at the position commanded now, so
    the command never jumps; before its first point it interpolates from there, after its last it holds.
    """

    def __init__(self, start_q: np.ndarray) -> None:
        self._times = np.array([0.0])
        self._points = np.asarray(start_q, dtype=float)[None].copy()

    def set(self, now_s: float, start_s: float, current_q: np.ndarray, points: np.ndarray,
            times_from_start_s: np.ndarray) -> None:
        start_s = max(start_s, now_s) if start_s > 0 else now_s
        times = start_s + np.asarray(times_from_start_s, dtype=float)
        keep = times > now_s
        if not np.any(keep):  # every point already due: go to the last one
            self._times, self._points = np.array([now_s]), np.asarray(points[-1:], dtype=float)
            return
        self._times = np.concatenate([[now_s], times[keep]])
        self._points = np.vstack([current_q[None], points[keep]])

    def sample(self, t_s: float) -> np.ndarray:
        return np.array([np.interp(t_s, self._times, self._points[:, j]) for j in range(self._points.shape[1])])


class SimCell:
    """The twin of one cell and task, driven like the real cell's controllers."""

    def __init__(self, cell: CellConfig | str, task: TaskConfig | str, image_size: tuple[int, int] | None = None,
                 cameras: list[str] | None = None, seed: int = 0, fast_render: bool = True,
                 depth_model: bool = True) -> None:
        self.cell = load_cell(cell) if isinstance(cell, str) else cell
        self.task_config = load_task(task) if isinstance(task, str) else task
        first = self.cell.cameras[0].intrinsics
        self.image_size = ImageSize(*image_size) if image_size and all(image_size) else ImageSize(first.width,
                                                                                                  first.height)
        self.camera_names = list(cameras) if cameras else [c.name for c in self.cell.cameras]
        for name in self.camera_names:
            self.cell.camera(name)  # raises with the valid names
        self.model = build_model(self.cell, self.task_config, self.image_size, fast_render=fast_render)
        self.data = mujoco.MjData(self.model)
        self.robot = TwinRobot(self.model, self.data, self.cell)
        self.task = TwinTask(self.model, self.data, self.task_config)
        noisy_depth = DepthModel(rng=seed) if depth_model else None  # the twin is not kinder than the camera
        self.cameras = TwinCameras(self.model, self.data, self.cell, self.image_size, self.camera_names,
                                   depth_model=noisy_depth)
        self.joint_names = [j.name for j in self.cell.robot.joints]
        self._arm_actuators = np.array([self.model.actuator(f"actuator{i}").id for i in range(1, 8)])
        self._gripper_actuator = self.model.actuator("fingers_actuator").id
        self._lower = np.array([j.lower_rad for j in self.cell.robot.joints])
        self._upper = np.array([j.upper_rad for j in self.cell.robot.joints])
        self._rng = np.random.default_rng(seed)
        self._mode = "joint"  # or "cartesian": which input drives the arm
        self._equilibrium: CartesianTarget | None = None
        self._gripper_closure = 0.0
        self._follower = TrajectoryFollower(np.array(self.cell.robot.home_joint_positions_rad))
        self.reset()

    # ------------------------------------------------------------------ scene
    @property
    def time_s(self) -> float:
        return float(self.data.time)

    def reset(self) -> None:
        """A new scene from the task's distribution, arm at home; sim time keeps running."""
        now = float(self.data.time)
        mujoco.mj_resetData(self.model, self.data)
        self.data.time = now
        self.robot.reset_to()
        self.task.reset(self._rng)
        self._gripper_closure = 0.0
        self._mode, self._equilibrium = "joint", None
        home = np.array(self.cell.robot.home_joint_positions_rad)
        self._follower = TrajectoryFollower(home)
        for _ in range(SETTLE_TICKS):
            self.step()

    # ------------------------------------------------------------------ inputs
    def command_trajectory(self, names: list[str], points: np.ndarray, times_from_start_s: np.ndarray,
                           start_s: float = 0.0) -> None:
        """A JointTrajectory for the arm's joints (any order, all of them); replaces the running one."""
        if sorted(names) != sorted(self.joint_names):
            raise ValueError(f"trajectory joints {names} must be exactly the arm's {self.joint_names}")
        if len(points) == 0:
            raise ValueError("trajectory has no points")
        order = [names.index(n) for n in self.joint_names]
        points = np.clip(np.asarray(points, dtype=float)[:, order], self._lower, self._upper)
        if not np.all(np.isfinite(points)) or not np.all(np.isfinite(times_from_start_s)):
            raise ValueError("trajectory has non-finite positions or times")
        current = self._follower.sample(self.time_s) if self._mode == "joint" else self._measured_q()
        self._mode = "joint"
        self._follower.set(self.time_s, start_s, current, points, times_from_start_s)

    def command_pose(self, position_m: np.ndarray, quaternion_xyzw: np.ndarray) -> None:
        """An equilibrium pose of the TCP (base frame), tracked through the twin's IK every tick."""
        target = CartesianTarget(np.asarray(position_m, float), np.asarray(quaternion_xyzw, float), 0.0)
        if not (np.all(np.isfinite(target.position_m)) and np.all(np.isfinite(target.quaternion_xyzw))):
            raise ValueError("equilibrium pose has non-finite values")
        if self._mode != "cartesian":
            self.robot.stop()  # linearise the IK at where the arm is, not at a stale joint target
        self._mode, self._equilibrium = "cartesian", target

    def command_gripper(self, closure: float) -> None:
        if not np.isfinite(closure):
            raise ValueError("gripper closure must be finite")
        self._gripper_closure = float(np.clip(closure, 0.0, 1.0))

    # ------------------------------------------------------------------ physics
    def step(self) -> float:
        """One control period: apply the active command, advance physics; returns the new sim time [s]."""
        if self._mode == "cartesian" and self._equilibrium is not None:
            eq = self._equilibrium
            self.robot.send_target(CartesianTarget(eq.position_m, eq.quaternion_xyzw, self._gripper_closure))
        else:
            self.data.ctrl[self._arm_actuators] = self._follower.sample(self.time_s)
            self.data.ctrl[self._gripper_actuator] = GRIPPER_CTRL_CLOSED * self._gripper_closure
        now_s = self.robot.wait_for_tick()
        if self.robot.physics_diverged:  # MuJoCo reset the state (the robot kept the clock): a new scene
            logger.error("the twin's physics diverged at t=%.3f s (MuJoCo reset its state): a new scene", now_s)
            self.reset()
            now_s = self.time_s
        return now_s

    def state(self) -> RobotState:
        state = self.robot.read_state()
        return RobotState(state.stamp_s, state.joint_positions_rad, state.joint_velocities_rad_s,
                          state.tcp_position_m, state.tcp_quaternion_xyzw, state.gripper_width_m,
                          self._gripper_closure)

    def render(self, camera: str, depth: bool = True) -> Frame:
        """The camera's view now, stamped with the sim time (``depth_m`` None without ``depth``); call from one
        thread only: the GL context belongs to it."""
        return self.cameras.render(camera, depth=depth)

    def is_success(self) -> bool:
        return self.task.is_success()

    def close(self) -> None:
        self.cameras.close()

    def _measured_q(self) -> np.ndarray:
        return self.robot.read_state().joint_positions_rad
