"""The robot's estimate of the scene, in the twin: the ``estimated*`` observation keys of :class:`sim.env.TwinEnv`.

Two sources, named in :class:`StateEstimationConfig`:

- ``cameras`` (the default and the reference): the cell's cameras rendered at the estimator's resolution through
  the D435-like depth model (:mod:`perception.depth_model`, on by default: the twin is not kinder than the
  camera), then the robot's own :class:`perception.scene_estimator.SceneEstimator` with the robot's reported TCP
  pose and gripper opening. The same code runs on the robot.
- ``error_model``: a cheap training surrogate for RL in many twins (3 cameras rendered and fused per step cost
  ~0.1-0.3 s on 2 cores): the twin's exact poses plus errors per episode (one offset shared by every pose, as a
  calibration error shifts all of them, and one per pose) and per step (noise), in the layout of the estimate.
  Its defaults are at least the camera source's measured error (``benchmarks/object_state.py``); a policy
  trained on it is measured with ``cameras``.

Either way the estimate is computed from poses and the robot's state only, through
:class:`perception.task_state.TaskStateLayout`, exactly as on the robot.
"""

from __future__ import annotations

import mujoco
import numpy as np

from controllers.interface import RobotState
from geometry.transforms import axis_angle_to_matrix, matrix_to_quat_xyzw, quat_xyzw_to_matrix
from hardware_configs.schema import CellConfig, TaskConfig
from perception.depth_model import DepthModel
from perception.object_state import EstimatorParams
from perception.scene_estimator import SceneEstimator
from perception.task_state import TaskStateLayout
from sim.estimation_config import StateEstimationConfig
from sim.render import TwinRenderer

__all__ = ["StateEstimationConfig", "TwinStateEstimation"]


class TwinStateEstimation:
    """Produces the estimated keys of one twin each step; :meth:`reset` at every episode's start."""

    def __init__(self, config: StateEstimationConfig, model: mujoco.MjModel, cell: CellConfig, task: TaskConfig,
                 seed: int = 0) -> None:
        self.config, self.layout = config, TaskStateLayout(task)
        self.rng = np.random.default_rng(seed)
        self.renderer: TwinRenderer | None = None
        self.estimator: SceneEstimator | None = None
        if config.source == "cameras":
            width, height = config.image_size
            depth_model = DepthModel(rng=int(self.rng.integers(2**31))) if config.depth_model else None
            self.renderer = TwinRenderer(model, width, height, cell, depth_model=depth_model)
            self.cameras = [c.name for c in cell.cameras]
            self.estimator = SceneEstimator(cell, task, {n: self.renderer.intrinsics(n) for n in self.cameras},
                                            EstimatorParams(), voxel_m=config.voxel_m, stride=config.stride)
        self._offsets = np.zeros((len(self.layout.names), 6))
        self._initial_height: dict[str, float] = {}

    @property
    def dims(self) -> dict[str, int]:
        return {"estimated": self.layout.pose_dim, "estimated_relative": self.layout.relative_dim,
                "estimate_confidence": self.layout.confidence_dim}

    def reset(self, privileged: np.ndarray, rng: np.random.Generator | None = None) -> None:
        """A new episode; ``privileged`` (its start, exact) seeds only the error model's object heights; ``rng``
        (the twin's, seeded by its reset) draws the error model's errors."""
        if self.estimator is not None:
            self.estimator.reset()
            return
        if rng is not None:
            self.rng = rng
        c = self.config
        n = len(self.layout.names)
        common = self.rng.normal(0.0, c.common_offset_m, 3)
        self._offsets = np.concatenate([common + self.rng.normal(0.0, c.position_offset_m, (n, 3)),
                                        self.rng.normal(0.0, c.rotation_offset_rad, (n, 3))], 1)
        poses = self.layout.poses(self._perturb(privileged))
        self._initial_height = {n: float(poses[n].position_m[2]) for n in self.layout.object_names}

    def observe(self, data: mujoco.MjData, robot: RobotState, privileged: np.ndarray) -> dict[str, np.ndarray]:
        """The estimated keys now. ``privileged`` is read by the error model only; the cameras source renders."""
        if self.estimator is not None:
            frames = {name: self.renderer.render(data, name) for name in self.cameras}
            return self.estimator.update(frames, robot, float(data.time)).observation()
        vector = self._perturb(privileged)
        relative = self.layout.relative_state(robot.tcp_position_m, robot.tcp_quaternion_xyzw, vector,
                                              self._initial_height)
        return {"estimated": vector, "estimated_relative": relative,
                "estimate_confidence": np.ones(len(self.layout.names), dtype=np.float32)}

    def _perturb(self, privileged: np.ndarray) -> np.ndarray:
        c = self.config
        poses = np.asarray(privileged, dtype=float).reshape(-1, 7).copy()
        for i, pose in enumerate(poses):
            pose[:3] += self._offsets[i, :3] + self.rng.normal(0.0, c.position_noise_m, 3)
            rotvec = self._offsets[i, 3:] + self.rng.normal(0.0, c.rotation_noise_rad, 3)
            pose[3:] = matrix_to_quat_xyzw(quat_xyzw_to_matrix(pose[3:]) @ axis_angle_to_matrix(rotvec))
        return poses.reshape(-1).astype(np.float32)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
