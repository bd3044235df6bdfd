"""A task's scene as vectors: the layout shared by the twin's exact state and the robot's estimate of it.

One layout, two sources. The twin fills it from its simulator (``privileged``, ``privileged_relative``: sim only);
:class:`perception.scene_estimator.SceneEstimator` fills it from the cameras (``estimated``,
``estimated_relative``). Both go through the same functions here, so a policy, a reward or a success check that
reads one reads the other with the same meaning, units and frames, and nothing here touches a simulator.

Layout of a pose vector: per object (task file order), then per fixture, position [m] + quaternion (x, y, z, w),
base frame. Fixture frames sit at the fixture's base centre (the hole block's bottom), objects' at their centre.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from geometry.transforms import quat_xyzw_to_matrix
from hardware_configs.schema import InsertSuccess, LiftSuccess, TaskConfig

FINE_ERROR_M = 0.005  # relative_state also gives tanh(error / this): steep over the last millimetres of alignment


@dataclass(frozen=True)
class ObjectPose:
    position_m: np.ndarray
    quaternion_xyzw: np.ndarray


def yaw_rad(rotation: np.ndarray) -> float:
    """Rotation about z of a (near-upright) rotation matrix [rad]."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def tilt_rad(obj: ObjectPose, fixture: ObjectPose) -> float:
    """Angle between the object's z axis and the fixture's [rad]."""
    object_z = quat_xyzw_to_matrix(obj.quaternion_xyzw)[:, 2]
    fixture_z = quat_xyzw_to_matrix(fixture.quaternion_xyzw)[:, 2]
    return float(np.arccos(np.clip(object_z @ fixture_z, -1.0, 1.0)))


class TaskStateLayout:
    """The scene vectors of one task: their lengths, how to read poses from them, and the task's errors.

    ``initial_height_m`` (lift) is each object's height when the episode started: the twin knows it from its
    reset, the estimator from its first confident estimate of the episode.
    """

    def __init__(self, task: TaskConfig) -> None:
        self.task = task
        self.object_names = tuple(o.name for o in task.objects)
        self.fixture_names = tuple(f.name for f in task.fixtures)
        self.names = (*self.object_names, *self.fixture_names)
        self.half_height_m = {o.name: float(o.half_size_m[-1]) for o in task.objects}
        # yaw period of each object's shape about its axis: a square box repeats every quarter turn, any other
        # box every half turn; a cylinder's yaw means nothing (0)
        self.yaw_symmetry_rad = {o.name: 0.0 if o.shape == "cylinder" else
                                 np.pi / 2 if np.isclose(o.half_size_m[0], o.half_size_m[1]) else np.pi
                                 for o in task.objects}

    # ------------------------------------------------------------------ vectors
    @property
    def pose_dim(self) -> int:
        return 7 * len(self.names)

    @property
    def relative_dim(self) -> int:
        return 4 * len(self.object_names) + (1 if isinstance(self.task.success, LiftSuccess) else 7)

    @property
    def confidence_dim(self) -> int:
        return len(self.names)

    @property
    def estimated_dims(self) -> dict[str, int]:
        """Lengths of the estimated observation keys, in the order ``object_state_node`` concatenates them."""
        return {"estimated": self.pose_dim, "estimated_relative": self.relative_dim,
                "estimate_confidence": self.confidence_dim}

    def poses(self, vector: np.ndarray) -> dict[str, ObjectPose]:
        """Name -> pose from a vector in this layout (objects, then fixtures)."""
        values = np.asarray(vector, dtype=float).reshape(-1)
        if values.size != self.pose_dim:
            raise ValueError(f"a {self.task.name} scene vector holds {self.pose_dim} values (7 per object/fixture), "
                             f"got {values.size}")
        return {n: ObjectPose(v[:3].copy(), v[3:].copy()) for n, v in zip(self.names, values.reshape(-1, 7),
                                                                              strict=True)}

    def vector(self, poses: Mapping[str, ObjectPose]) -> np.ndarray:
        """The vector of ``poses`` (every object and fixture of the task) in this layout, float32."""
        missing = [n for n in self.names if n not in poses]
        if missing:
            raise KeyError(f"no pose for {missing}")
        return np.concatenate([np.concatenate([poses[n].position_m, poses[n].quaternion_xyzw])
                               for n in self.names]).astype(np.float32)

    # ------------------------------------------------------------------ the task's errors
    def wrap_yaw(self, name: str, yaw: float) -> float:
        """``yaw`` wrapped to half the object's symmetry period either side of 0 (0 for a cylinder)."""
        period = self.yaw_symmetry_rad[name]
        return float((yaw + period / 2) % period - period / 2) if period else 0.0

    def relative_state(self, tcp_position_m: np.ndarray, tcp_quaternion_xyzw: np.ndarray, vector: np.ndarray,
                       initial_height_m: Mapping[str, float]) -> np.ndarray:
        """The scene in the frames where the task's precision lives.

        Per object its position relative to the TCP (base frame, m) and its yaw relative to the TCP's modulo the
        object's symmetry [rad] (how squarely the fingers meet it). Lift: the object's height above its start.
        Insert: the object's centre relative to the hole's axis in the fixture frame (x, y; also as
        ``tanh(e / FINE_ERROR_M)``, resolving the last millimetres that a policy normalising over the whole workspace
        cannot see), its bottom's height above the fixture's top face, its yaw error modulo the object's symmetry
        and its tilt [rad]. A residual policy reads millimetre errors directly instead of differencing poses.
        """
        poses = self.poses(vector)
        tcp = np.asarray(tcp_position_m, dtype=float)
        tcp_yaw = yaw_rad(quat_xyzw_to_matrix(np.asarray(tcp_quaternion_xyzw, dtype=float)))
        parts: list = []
        for name in self.object_names:
            pose = poses[name]
            parts += [pose.position_m - tcp, [self.wrap_yaw(name, yaw_rad(quat_xyzw_to_matrix(pose.quaternion_xyzw))
                                                            - tcp_yaw)]]
        cond = self.task.success
        if isinstance(cond, LiftSuccess):
            parts.append([poses[cond.object].position_m[2] - initial_height_m[cond.object]])
        else:
            obj, fixture = poses[cond.object], poses[cond.fixture]
            fixture_rot = quat_xyzw_to_matrix(fixture.quaternion_xyzw)
            error_xy = (fixture_rot.T @ (obj.position_m - fixture.position_m))[:2]
            yaw_error = self.wrap_yaw(cond.object, yaw_rad(fixture_rot.T @ quat_xyzw_to_matrix(obj.quaternion_xyzw)))
            parts += [error_xy, np.tanh(error_xy / FINE_ERROR_M), [-self.insertion_depth_m(obj, fixture), yaw_error,
                                                                 tilt_rad(obj, fixture)]]
        return np.concatenate([np.asarray(p, dtype=float).reshape(-1) for p in parts]).astype(np.float32)

    def insertion_depth_m(self, obj: ObjectPose, fixture_pose: ObjectPose) -> float:
        """How far the object's bottom is below the fixture's top face (negative when above)."""
        cond = self.task.success
        assert isinstance(cond, InsertSuccess)
        fixture = next(f for f in self.task.fixtures if f.name == cond.fixture)
        top_z = fixture_pose.position_m[2] + fixture.height_m
        return float(top_z - (obj.position_m[2] - self.half_height_m[cond.object]))

    def is_success(self, vector: np.ndarray, initial_height_m: Mapping[str, float]) -> bool:
        """The task file's success condition on the poses of ``vector``: the twin's judge when they are exact, the
        robot's when they are estimated."""
        cond, poses = self.task.success, self.poses(vector)
        if isinstance(cond, LiftSuccess):
            return bool(poses[cond.object].position_m[2] - initial_height_m[cond.object] >= cond.height_m)
        obj, fixture = poses[cond.object], poses[cond.fixture]
        lateral_m = float(np.hypot(*(obj.position_m[:2] - fixture.position_m[:2])))
        return (self.insertion_depth_m(obj, fixture) >= cond.depth_m and lateral_m <= cond.max_lateral_error_m
                and tilt_rad(obj, fixture) <= cond.max_tilt_rad)


class EstimateSuccessJudge:
    """The task's success condition on the robot's estimate, and None where the estimate is too unsure to say.

    Shared by the in-process online session (:class:`robot_learning.sessions.success.EstimatedSuccess`) and
    ``object_state_node``, which publishes the verdict for the session on the graph. ``start`` takes the episode's
    first estimate: lift measures its height from there, as the twin measures from the spawn height.
    """

    def __init__(self, task: TaskConfig, min_confidence: float = 0.5):
        self.layout, self.min_confidence = TaskStateLayout(task), float(min_confidence)
        cond = task.success
        self.named_indices = [self.layout.names.index(cond.object)]
        if isinstance(cond, InsertSuccess):
            self.named_indices.append(self.layout.names.index(cond.fixture))
        self.initial_height_m: dict[str, float] = {}

    @property
    def started(self) -> bool:
        return bool(self.initial_height_m)

    def start(self, estimated: np.ndarray) -> None:
        """The episode's first estimate: each object's starting height [m]."""
        poses = self.layout.poses(estimated)
        self.initial_height_m = {n: float(poses[n].position_m[2]) for n in self.layout.object_names}

    def judge(self, estimated: np.ndarray, confidence: np.ndarray) -> bool | None:
        """True/False from the estimate; None when an object the condition names is known too poorly, or before
        ``start``."""
        if not self.started or np.any(np.asarray(confidence)[self.named_indices] < self.min_confidence):
            return None
        return self.layout.is_success(estimated, self.initial_height_m)
