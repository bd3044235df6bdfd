"""Named frames of a task scene, read from an observation: what dense rewards measure distances between.

Frames (base frame, metres): ``tcp``; each object ``<name>`` (centre), ``<name>.top``, ``<name>.bottom`` and
``<name>@start`` (its centre at the episode's start); each fixture ``<name>`` (base) and ``<name>.top``;
``table`` (a point of the table top, used for heights). Object poses come from an :class:`ObjectPoseSource`:
the robot's estimate from the cameras (:class:`EstimatedPoses`), or in a twin-only run the twin's exact state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from geometry.transforms import quat_xyzw_to_matrix
from hardware_configs.schema import TaskConfig

TABLE_TOP_Z_M = 0.0


@dataclass(frozen=True)
class Frame:
    position_m: np.ndarray
    quaternion_xyzw: np.ndarray


@dataclass
class SceneState:
    frames: dict[str, Frame]
    gripper_width_m: float
    grasped: dict[str, bool]

    def position(self, name: str) -> np.ndarray:
        return self.frames[name].position_m


class ObjectPoseSource(Protocol):
    """Poses (position [m], quaternion xyzw) of the task's objects and fixtures in the base frame."""

    def poses(self, obs: dict[str, np.ndarray]) -> dict[str, Frame]: ...


class ObservedPoses:
    """Poses from a pose vector of the observation (objects then fixtures, 7 numbers each): ``estimated`` (the
    robot's, from the cameras) or ``privileged`` (the twin's exact ones: sim only)."""

    key = "estimated"

    def __init__(self, task: TaskConfig, key: str | None = None):
        self.names = [o.name for o in task.objects] + [f.name for f in task.fixtures]
        if key is not None:
            if key not in POSE_KEYS:
                raise ValueError(f"poses come from {' or '.join(POSE_KEYS)}, not {key!r}")
            self.key = key

    def poses(self, obs: dict[str, np.ndarray]) -> dict[str, Frame]:
        vector = np.asarray(obs[self.key], dtype=float)
        return {n: Frame(vector[7 * i : 7 * i + 3], vector[7 * i + 3 : 7 * i + 7]) for i, n in enumerate(self.names)}


POSE_KEYS = ("estimated", "privileged")


class PrivilegedPoses(ObservedPoses):
    """The twin's exact poses (``obs["privileged"]``). Sim only."""

    key = "privileged"


class EstimatedPoses(ObservedPoses):
    """The robot's estimate (``obs["estimated"]``, :mod:`perception.scene_estimator`), on the robot and the twin."""

    key = "estimated"


def frame_names(task: TaskConfig) -> list[str]:
    names = ["tcp", "table"]
    for obj in task.objects:
        names += [obj.name, f"{obj.name}.top", f"{obj.name}.bottom", f"{obj.name}@start"]
    for fixture in task.fixtures:
        names += [fixture.name, f"{fixture.name}.top"]
    return names


class SceneReader:
    """Turns observations into :class:`SceneState`; call :meth:`reset` with the first observation."""

    def __init__(self, task: TaskConfig, pose_source: ObjectPoseSource | None = None,
                 max_gripper_width_m: float = 0.085):
        self.task = task
        self.pose_source = pose_source or PrivilegedPoses(task)
        self.max_gripper_width_m = max_gripper_width_m
        self._half_height = {o.name: o.half_size_m[-1] for o in task.objects}
        self._extent = {o.name: (2 * min(o.half_size_m[:2]), 2 * float(np.hypot(*o.half_size_m[:2])))
                        if o.shape == "box" else (2 * o.half_size_m[0], 2 * o.half_size_m[0]) for o in task.objects}
        self._fixture_height = {f.name: f.height_m for f in task.fixtures}
        self._start: dict[str, Frame] = {}

    def reset(self, obs: dict[str, np.ndarray]) -> SceneState:
        self._start = {}
        state = self.read(obs)
        self._start = {o.name: state.frames[o.name] for o in self.task.objects}
        for name, frame in self._start.items():
            state.frames[f"{name}@start"] = frame
        return state

    def read(self, obs: dict[str, np.ndarray]) -> SceneState:
        tcp = Frame(np.asarray(obs["tcp_position"], dtype=float), np.asarray(obs["tcp_quaternion"], dtype=float))
        frames = {"tcp": tcp}
        poses = self.pose_source.poses(obs)
        for name, pose in poses.items():
            frames[name] = pose
            up = quat_xyzw_to_matrix(pose.quaternion_xyzw)[:, 2]
            if name in self._half_height:
                h = self._half_height[name]
                frames[f"{name}.top"] = Frame(pose.position_m + h * up, pose.quaternion_xyzw)
                frames[f"{name}.bottom"] = Frame(pose.position_m - h * up, pose.quaternion_xyzw)
                frames[f"{name}@start"] = self._start.get(name, pose)
            else:
                frames[f"{name}.top"] = Frame(pose.position_m + self._fixture_height[name] * up, pose.quaternion_xyzw)
        below_tcp = np.array([tcp.position_m[0], tcp.position_m[1], TABLE_TOP_Z_M])
        frames["table"] = Frame(below_tcp, np.array([0.0, 0.0, 0.0, 1.0]))
        width = float(np.asarray(obs["gripper_width"]).reshape(-1)[0])
        grasped = {n: self._grasped(n, tcp.position_m, frames[n].position_m, width) for n in self._half_height}
        return SceneState(frames, width, grasped)

    def _grasped(self, name: str, tcp_m: np.ndarray, object_m: np.ndarray, width_m: float) -> bool:
        """Fingers closed on the object: the opening is held by it (between its narrow and diagonal extent)
        and the object sits between the fingers. A heuristic that needs no force sensing, as on the robot."""
        narrow, diagonal = self._extent[name]
        held = 0.6 * narrow <= width_m <= min(diagonal + 0.008, 0.9 * self.max_gripper_width_m)
        return bool(held and np.linalg.norm(tcp_m - object_m) <= 0.035)
