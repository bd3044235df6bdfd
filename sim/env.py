"""Gymnasium environment of a task in the twin, acting exactly as the real robot loop acts.

Action (7,), per policy step (``cell.rates.policy_hz``), in the robot base frame:
``[dx, dy, dz]`` TCP translation [m], ``[rx, ry, rz]`` TCP rotation vector [rad] (applied on the left),
``gripper`` closure target in [0, 1]. The step is interpolated to the control rate and every control-rate
target passes through the safety filter (:class:`controllers.safe_robot.SafeRobot`), as on the robot.

Observation (dict): ``<camera>_rgb`` (H, W, 3) uint8 and ``<camera>_depth`` (H, W) float32 [m] for each
camera, ``tcp_position`` [m], ``tcp_rot6d`` (first two columns of the rotation matrix: continuous, unlike
quaternions), ``tcp_quaternion`` (x, y, z, w), ``joint_pos`` [rad], ``gripper_width`` [m] and
``privileged`` (object and fixture poses; sim only) and ``privileged_relative`` (the same scene as task errors:
object relative to TCP, to the hole; sim only; :meth:`sim.tasks.TwinTask.relative_state`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from controllers.interface import CartesianTarget, RobotState
from controllers.interpolation import interpolate_pose, upsample
from controllers.safe_robot import SafeRobot
from hardware_configs import load_cell, load_task
from hardware_configs.frames import (
    axis_angle_to_matrix,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
    rotation_angle_between,
)
from hardware_configs.schema import CellConfig, TaskConfig
from sim.cameras import TwinCameras
from sim.robot import TwinRobot
from sim.scene import ImageSize, build_model
from sim.tasks import TwinTask

SETTLE_TICKS = 20  # control ticks after reset for objects to come to rest


def proprio_observation(state: RobotState) -> dict[str, np.ndarray]:
    """The proprioceptive part of an observation, shared by the twin and the real robot."""
    rot = quat_xyzw_to_matrix(state.tcp_quaternion_xyzw)
    return {
        "tcp_position": state.tcp_position_m.astype(np.float32),
        "tcp_rot6d": rot[:, :2].T.reshape(6).astype(np.float32),
        "tcp_quaternion": state.tcp_quaternion_xyzw.astype(np.float32),
        "joint_pos": state.joint_positions_rad.astype(np.float32),
        "gripper_width": np.array([state.gripper_width_m], dtype=np.float32),
    }


def apply_delta_action(base: CartesianTarget, action: np.ndarray) -> CartesianTarget:
    """The Cartesian target a 7-D delta action asks for, relative to ``base``."""
    rot = axis_angle_to_matrix(action[3:6]) @ quat_xyzw_to_matrix(base.quaternion_xyzw)
    return CartesianTarget(base.position_m + action[:3], matrix_to_quat_xyzw(rot), float(action[6]))


class TwinEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        cell: CellConfig | str = "franka_3cam",
        task: TaskConfig | str = "lift",
        image_size: tuple[int, int] | None = (96, 96),
        cameras: list[str] | None = None,
        depth: bool = False,
        render_mode: str | None = None,
        fast_render: bool = True,
    ):
        self.cell = load_cell(cell) if isinstance(cell, str) else cell
        self.task_config = load_task(task) if isinstance(task, str) else task
        self.image_size = ImageSize(*image_size) if image_size else None
        self.render_mode = render_mode
        self.model = build_model(self.cell, self.task_config, self.image_size, fast_render=fast_render)
        self.data = mujoco.MjData(self.model)
        self.robot = TwinRobot(self.model, self.data, self.cell)
        self.safe_robot = SafeRobot(self.robot, self.cell)
        self.task = TwinTask(self.model, self.data, self.task_config)
        self.cameras = (
            TwinCameras(self.model, self.data, self.cell, self.image_size, cameras) if self.image_size else None
        )
        self.depth = depth
        self.ticks_per_step = round(self.cell.rates.control_hz / self.cell.rates.policy_hz)
        self._commanded: CartesianTarget | None = None  # last target the safety filter let through
        self._goal: CartesianTarget | None = None  # where the actions so far asked the TCP to be
        self._steps = 0

        limits = self.cell.motion_limits
        max_translation = limits.max_linear_speed_m_s / self.cell.rates.policy_hz
        max_rotation = limits.max_angular_speed_rad_s / self.cell.rates.policy_hz
        high = np.array([max_translation] * 3 + [max_rotation] * 3 + [1.0], dtype=np.float32)
        low = -high.copy()
        low[6] = 0.0
        self.action_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self.observation_space = spaces.Dict(self._observation_spaces())

    def _observation_spaces(self) -> dict[str, spaces.Space]:
        inf = np.inf
        obs: dict[str, spaces.Space] = {
            "tcp_position": spaces.Box(-inf, inf, (3,), np.float32),
            "tcp_rot6d": spaces.Box(-1.0, 1.0, (6,), np.float32),
            "tcp_quaternion": spaces.Box(-1.0, 1.0, (4,), np.float32),
            "joint_pos": spaces.Box(-inf, inf, (7,), np.float32),
            "gripper_width": spaces.Box(0.0, 1.0, (1,), np.float32),
            "privileged": spaces.Box(-inf, inf, (self.task.privileged_dim,), np.float32),
            "privileged_relative": spaces.Box(-inf, inf, (self.task.relative_dim,), np.float32),
        }
        if self.cameras is not None:
            h, w = self.image_size.height, self.image_size.width
            for name in self.cameras.camera_names:
                obs[f"{name}_rgb"] = spaces.Box(0, 255, (h, w, 3), np.uint8)
                if self.depth:
                    obs[f"{name}_depth"] = spaces.Box(0.0, inf, (h, w), np.float32)
        return obs

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """A new scene from ``seed``; ``options`` may give a recorded start: ``joint_pos`` [rad] and
        ``privileged`` (object and fixture poses as in the observation)."""
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        options = options or {}
        self.robot.reset_to(options.get("joint_pos"))
        self.task.reset(self.np_random)
        if options.get("privileged") is not None:  # a recorded scene (replay, validation)
            self.task.set_poses(options["privileged"])
        state = self.robot.read_state()
        self.safe_robot.safety_filter.reset(state)  # the scene was teleported: restart from it, at rest
        self._commanded = state.tcp_target(gripper_closure=0.0)
        self._goal = self._commanded
        for _ in range(SETTLE_TICKS):
            self.safe_robot.send_target(self._commanded)
            self.safe_robot.wait_for_tick()
        self._steps = 0
        return self._observation(), {"success": False}

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (7,):
            raise ValueError(f"action must have 7 values [dx dy dz rx ry rz gripper], got shape {action.shape}")
        goal = apply_delta_action(self._goal, action)
        if np.all(np.isfinite(action)):
            goal = self._bounded_goal(goal)
            self._goal = goal
        # else: the filter rejects the non-finite goal and holds; the remembered goal stays clean
        for target in upsample(self._commanded, goal, self.ticks_per_step):
            self.safe_robot.send_target(target)
            self.safe_robot.wait_for_tick()
        self._commanded = self.safe_robot.last_result.target
        self._steps += 1
        success = self.task.is_success()
        truncated = self._steps >= self.task_config.horizon_steps and not success
        info = {"success": success, "safety_violations": self.safe_robot.last_result.violations}
        if success or truncated:
            info["outcome"] = self.task.outcome(success)
        return self._observation(), float(success), success, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.cameras is None:
            return None
        return np.concatenate([self.cameras.render_rgb(n) for n in self.cameras.camera_names], axis=1)

    def close(self) -> None:
        if self.cameras is not None:
            self.cameras.close()

    # ------------------------------------------------------------------ helpers
    def _bounded_goal(self, goal: CartesianTarget) -> CartesianTarget:
        """Deltas accumulate on the previous goal (so distance the filter delays is not lost), but the goal
        stays inside the workspace and at most one policy step of motion ahead of the arm (no wind-up)."""
        box = self.cell.workspace
        goal = CartesianTarget(np.clip(goal.position_m, box.min_m, box.max_m), goal.quaternion_xyzw,
                               float(np.clip(goal.gripper_closure, 0.0, 1.0)))
        lead_m = float(np.linalg.norm(goal.position_m - self._commanded.position_m))
        lead_rad = rotation_angle_between(quat_xyzw_to_matrix(goal.quaternion_xyzw),
                                          quat_xyzw_to_matrix(self._commanded.quaternion_xyzw))
        fraction = min(1.0, self.action_space.high[0] * np.sqrt(3) / max(lead_m, 1e-12),
                       self.action_space.high[3] * np.sqrt(3) / max(lead_rad, 1e-12))
        if fraction >= 1.0:
            return goal
        bounded = interpolate_pose(self._commanded, goal, fraction)
        return CartesianTarget(bounded.position_m, bounded.quaternion_xyzw, goal.gripper_closure)

    @property
    def commanded_target(self) -> CartesianTarget:
        return self._commanded

    def _observation(self) -> dict[str, np.ndarray]:
        state = self.robot.read_state()
        obs = proprio_observation(state)
        obs["privileged"] = self.task.privileged_state()
        obs["privileged_relative"] = self.task.relative_state(state.tcp_position_m, state.tcp_quaternion_xyzw,
                                                              privileged=obs["privileged"])
        if self.cameras is not None:
            obs.update(self.cameras.render_all(depth=self.depth))
        return obs


def register_task_envs() -> list[str]:
    """One gymnasium id per shipped task (``manip_stack/Lift-v0``, ...), for ``gym.make``."""
    from hardware_configs.loader import available

    ids = []
    for task in available("tasks"):
        env_id = "manip_stack/" + "".join(part.capitalize() for part in task.split("_")) + "-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="sim.env:TwinEnv", kwargs={"task": task})
        ids.append(env_id)
    return ids


register_task_envs()
