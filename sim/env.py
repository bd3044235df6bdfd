"""Gymnasium environment of a task in the twin, acting exactly as the real robot loop acts.

Action: the 7-D delta action of :mod:`controllers.actions` (per policy step, base frame), applied to a bounded
goal as the robot's control core applies it; the step is interpolated to the control rate and every
control-rate target passes through the safety filter (:class:`controllers.safe_robot.SafeRobot`), as on the robot.

Observation: the keys of :func:`controllers.observations.observation_schema`: each camera's ``<camera>_rgb``
(and ``<camera>_depth`` with ``depth``), the proprioception, and the sim-only ``privileged`` (object and
fixture poses) and ``privileged_relative`` (the same scene as task errors: :meth:`sim.tasks.TwinTask.relative_state`);
with ``state_estimation``, the robot's view of the same scene: ``estimated``, ``estimated_relative`` and
``estimate_confidence`` (:mod:`sim.estimation`: the cameras through the robot's estimator, or its error model).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from controllers.actions import ActionLimits, apply_delta_action, as_action, next_goal
from controllers.interface import CartesianTarget
from controllers.interpolation import upsample
from controllers.observations import ObservationKey, observation_schema, proprio_observation
from controllers.safe_robot import SafeRobot
from hardware_configs import load_cell, load_task
from hardware_configs.schema import CellConfig, TaskConfig
from perception.depth_model import DepthModel
from sim.cameras import TwinCameras
from sim.estimation import StateEstimationConfig, TwinStateEstimation
from sim.robot import TwinRobot
from sim.scene import ImageSize, build_model
from sim.tasks import TwinTask

SETTLE_TICKS = 20  # control ticks after reset for objects to come to rest

logger = logging.getLogger(__name__)


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
        depth_model: DepthModel | None = None,
        state_estimation: StateEstimationConfig | None = None,
        estimation_seed: int = 0,
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
            TwinCameras(self.model, self.data, self.cell, self.image_size, cameras, depth_model=depth_model)
            if self.image_size else None
        )
        self.depth = depth
        self.estimation: TwinStateEstimation | None = None
        self.action_limits = ActionLimits.from_cell(self.cell)
        self.ticks_per_step = self.action_limits.ticks_per_action
        self._commanded: CartesianTarget | None = None  # last target the safety filter let through
        self._goal: CartesianTarget | None = None  # where the actions so far asked the TCP to be
        self._steps = 0
        self._last_observation: dict[str, np.ndarray] = {}

        self.action_space = spaces.Box(low=self.action_limits.low, high=self.action_limits.high, dtype=np.float32)
        self.observation_schema: dict[str, ObservationKey] = observation_schema(
            self.cell, self.cameras.camera_names if self.cameras is not None else [],
            (self.image_size.width, self.image_size.height) if self.image_size else None, depth,
            sim_dims={"privileged": self.task.privileged_dim, "privileged_relative": self.task.relative_dim})
        self.observation_space = self._space()
        if state_estimation is not None:
            self.enable_state_estimation(state_estimation, estimation_seed)

    def enable_state_estimation(self, config: StateEstimationConfig, seed: int = 0) -> None:
        """Add the robot's estimate of the scene to every observation from the next reset on (see module note)."""
        if self.estimation is not None:
            self.estimation.close()
        self.estimation = TwinStateEstimation(config, self.model, self.cell, self.task_config, seed)
        self.observation_schema = {k: v for k, v in self.observation_schema.items() if k not in self.estimation.dims}
        estimated = observation_schema(self.cell, [], None, False, estimated_dims=self.estimation.dims)
        self.observation_schema.update((k, estimated[k]) for k in self.estimation.dims)
        self.observation_space = self._space()

    def _space(self) -> spaces.Dict:
        return spaces.Dict(
            {k: spaces.Box(key.low, key.high, key.shape, key.dtype) for k, key in self.observation_schema.items()})

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
        if self.estimation is not None:
            self.estimation.reset(self.task.privileged_state(), self.np_random)
        self._last_observation = self._observation()
        return self._last_observation, {"success": False}

    def step(self, action: np.ndarray):
        action = as_action(action)
        if np.all(np.isfinite(action)):
            goal = self._goal = next_goal(self._goal, self._commanded, action, self.action_limits)
        else:  # the filter rejects the non-finite goal and holds; the remembered goal stays clean
            goal = apply_delta_action(self._goal, action)
        for target in upsample(self._commanded, goal, self.ticks_per_step):
            self.safe_robot.send_target(target)
            self.safe_robot.wait_for_tick()
            if self.robot.physics_diverged:
                return self._diverged()
        self._commanded = self.safe_robot.last_result.target
        self._steps += 1
        success = self.task.is_success()
        truncated = self._steps >= self.task_config.horizon_steps and not success
        info = {"success": success, "safety_violations": self.safe_robot.last_result.violations}
        if success or truncated:
            info["outcome"] = self.task.outcome(success)
        self._last_observation = self._observation()
        return self._last_observation, float(success), success, truncated, info

    def _diverged(self):
        """End the episode where MuJoCo's physics blew up (it has reset the state: the scene is gone): truncated,
        a failure with outcome ``sim_unstable``, the last valid observation as the final one. Stepping on would
        teleport the scene mid-episode and hand the safety filter a clock that jumped back."""
        self._steps += 1
        logger.warning("the twin's physics diverged at step %d of the episode (MuJoCo reset its state at t=%.3f "
                       "s): the episode ends as %s", self._steps, self.data.time, "sim_unstable")
        info = {"success": False, "safety_violations": (), "outcome": "sim_unstable", "physics_diverged": True}
        return self._last_observation, 0.0, False, True, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.cameras is None:
            return None
        return np.concatenate([self.cameras.render_rgb(n) for n in self.cameras.camera_names], axis=1)

    def close(self) -> None:
        if self.cameras is not None:
            self.cameras.close()
        if self.estimation is not None:
            self.estimation.close()

    # ------------------------------------------------------------------ helpers
    @property
    def commanded_target(self) -> CartesianTarget:
        return self._commanded

    def _observation(self) -> dict[str, np.ndarray]:
        state = self.robot.read_state()
        obs = proprio_observation(state)
        obs["privileged"] = self.task.privileged_state()
        obs["privileged_relative"] = self.task.relative_state(state.tcp_position_m, state.tcp_quaternion_xyzw,
                                                              privileged=obs["privileged"])
        if self.estimation is not None:
            obs.update(self.estimation.observe(self.data, state, obs["privileged"]))
        if self.cameras is not None:
            obs.update(self.cameras.render_all(depth=self.depth))
        return obs


def with_state_estimation(config: StateEstimationConfig, env: gym.Env, seed: int = 0) -> gym.Env:
    """``env`` (a twin, perhaps wrapped) with the estimated keys: a picklable wrapper for vector envs (use
    ``functools.partial(with_state_estimation, config)``)."""
    env.unwrapped.enable_state_estimation(config, seed)
    return env


def estimated_then(config: StateEstimationConfig, wrapper: Callable[[gym.Env], gym.Env] | None,
                   env: gym.Env) -> gym.Env:
    """The estimated keys on the twin, then ``wrapper`` (a reward that may read them): picklable with a partial."""
    env = with_state_estimation(config, env)
    return wrapper(env) if wrapper is not None else env


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
