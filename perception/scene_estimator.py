"""The robot's estimate of a task's scene, as observation vectors: cameras + proprioception in, ``estimated`` out.

One core for the twin and the robot: the cell's calibrated cameras are fused
(:class:`perception.pointcloud.PointCloudFuser`), the objects and fixtures tracked
(:class:`perception.object_state.ObjectStateEstimator`), and the result laid out like the twin's privileged state
(:class:`perception.task_state.TaskStateLayout`): ``estimated`` (poses), ``estimated_relative`` (the task's
errors from those poses) and ``estimate_confidence``. The flange pose for the wrist camera comes from the robot's
reported TCP pose and the cell's TCP offset, as the robot reports it; nothing here reads a simulator.

Before an object has ever been found, its entry is the centre of the task file's initial-pose ranges, upright on
the table, with confidence 0: a finite vector a policy can read, flagged as a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from controllers.interface import RobotState
from geometry.transforms import matrix_to_quat_xyzw, pose_to_matrix, yaw_to_quat_xyzw
from hardware_configs.schema import CellConfig, InitialPose, TaskConfig
from perception.cameras.base import Frame, Intrinsics
from perception.object_state import EstimatorParams, ObjectEstimate, ObjectStateEstimator, TrackState
from perception.pointcloud import DEFAULT_VOXEL_M, PointCloudFuser
from perception.task_state import ObjectPose, TaskStateLayout


@dataclass(frozen=True)
class SceneEstimate:
    """One update: the observation vectors and the per-object estimates behind them."""

    estimated: np.ndarray  # (7 * n,) float32: TaskStateLayout's pose vector
    estimated_relative: np.ndarray  # (relative_dim,) float32
    estimate_confidence: np.ndarray  # (n,) float32 in [0, 1], 0 when lost or never found
    objects: dict[str, ObjectEstimate]
    stamp_s: float

    def observation(self) -> dict[str, np.ndarray]:
        return {"estimated": self.estimated, "estimated_relative": self.estimated_relative,
                "estimate_confidence": self.estimate_confidence}

    @property
    def lost(self) -> list[str]:
        return [name for name, e in self.objects.items() if e.state is TrackState.lost]


def _range_centre(pose: InitialPose) -> tuple[float, float, float]:
    return ((pose.x_m.low + pose.x_m.high) / 2, (pose.y_m.low + pose.y_m.high) / 2,
            (pose.yaw_rad.low + pose.yaw_rad.high) / 2)


class SceneEstimator:
    """Fuse, track, lay out. ``intrinsics``: each camera's at the frames' resolution (the device's or renderer's)."""

    def __init__(self, cell: CellConfig, task: TaskConfig, intrinsics: Mapping[str, Intrinsics] | None = None,
                 params: EstimatorParams | None = None, voxel_m: float = DEFAULT_VOXEL_M, stride: int = 1,
                 table_z_m: float = 0.0) -> None:
        self.cell, self.task = cell, task
        self.layout = TaskStateLayout(task)
        self.fuser = PointCloudFuser(cell, intrinsics, voxel_m=voxel_m, stride=stride)
        self.tracker = ObjectStateEstimator(task, params)
        self._T_tcp_flange = np.eye(4)
        self._T_tcp_flange[:3, 3] = -np.asarray(cell.robot.tcp_offset_m, dtype=float)
        self._prior = self._prior_poses(table_z_m)
        self.reset()

    def reset(self) -> None:
        """A new scene (an episode's start): forget tracks, and the objects' starting heights."""
        self.tracker.reset()
        self.initial_height_m: dict[str, float] = {}
        self._last: dict[str, ObjectPose] = dict(self._prior)

    def _prior_poses(self, table_z_m: float) -> dict[str, ObjectPose]:
        poses = {}
        for obj in self.task.objects:
            x, y, yaw = _range_centre(obj.initial_pose)
            poses[obj.name] = ObjectPose(np.array([x, y, table_z_m + obj.half_size_m[-1]]), yaw_to_quat_xyzw(yaw))
        for fixture in self.task.fixtures:
            x, y, yaw = _range_centre(fixture.initial_pose)
            poses[fixture.name] = ObjectPose(np.array([x, y, table_z_m]), yaw_to_quat_xyzw(yaw))
        return poses

    def update(self, frames: Mapping[str, Frame], robot: RobotState, stamp_s: float = 0.0) -> SceneEstimate:
        """Estimate the scene from one frameset and the robot's state at its time."""
        T_base_flange = self._tcp_matrix(robot) @ self._T_tcp_flange
        cloud = self.fuser.fuse(frames, T_base_flange)
        return self.update_cloud(cloud.points_m, cloud.colors, robot, stamp_s)

    def _tcp_matrix(self, robot: RobotState) -> np.ndarray:
        return pose_to_matrix(np.asarray(robot.tcp_position_m), np.asarray(robot.tcp_quaternion_xyzw))

    def update_cloud(self, points_m: np.ndarray, colors: np.ndarray, robot: RobotState,
                     stamp_s: float = 0.0) -> SceneEstimate:
        """Estimate the scene from a fused base-frame cloud (N, 3) [m], colours (N, 3) in [0, 1] (e.g. the
        perception node's), and the robot's state at its time."""
        T_base_tcp = self._tcp_matrix(robot)
        objects = self.tracker.update(points_m, colors, stamp_s, T_base_tcp=T_base_tcp,
                                      T_base_flange=T_base_tcp @ self._T_tcp_flange,
                                      gripper_width_m=float(robot.gripper_width_m))
        confidence = np.zeros(len(self.layout.names), dtype=np.float32)
        for i, name in enumerate(self.layout.names):
            estimate = objects[name]
            if estimate.T_base_object is not None:
                self._last[name] = ObjectPose(estimate.T_base_object[:3, 3].copy(),
                                              matrix_to_quat_xyzw(estimate.T_base_object[:3, :3]))
                if name in self.layout.half_height_m and estimate.state is TrackState.tracking:
                    self.initial_height_m.setdefault(name, float(estimate.T_base_object[2, 3]))
            confidence[i] = 0.0 if estimate.state is TrackState.lost else estimate.confidence
        vector = self.layout.vector(self._last)
        heights = {name: self.initial_height_m.get(name, float(self._prior[name].position_m[2]))
                   for name in self.layout.object_names}
        relative = self.layout.relative_state(robot.tcp_position_m, robot.tcp_quaternion_xyzw, vector, heights)
        return SceneEstimate(vector, relative, confidence, objects, stamp_s)
