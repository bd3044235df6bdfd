"""Message streams → episode steps, shared by ``session_node`` (live) and ``manip-stack import-bag`` (bags).

Streams arrive at their own rates with their own stamps (cameras 30 Hz, joint states 100+ Hz, actions at the
policy rate). A step is built for a time ``t`` from the sample of each stream whose stamp is nearest to ``t``,
within ``tolerance_s``; a step whose streams are missing or too far off is refused, with the names of those
streams, and never recorded half-filled. With actions on the graph, a step is taken per action at the action's
stamp, which is the stamp of the observation it was computed from, so observation and action pair exactly.

Keys, shapes, units and frames match the twin's datasets (``robot_learning.sessions.collect.dataset_specs``)
for everything the robot can observe: a policy trained on twin episodes reads robot episodes unchanged.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hardware_configs.frames import axis_angle_to_matrix, matrix_to_axis_angle, quat_xyzw_to_matrix
from hardware_configs.schema import CellConfig
from robot_learning.data.episode_store import ArraySpec

# (unit, frame, description) as in robot_learning.sessions.collect.LOW_DIM_UNITS (checked by a test).
ROBOT_LOW_DIM: dict[str, tuple[tuple[int, ...], str, str | None, str]] = {
    "tcp_position": ((3,), "m", "base", "tool centre point position"),
    "tcp_rot6d": ((6,), "1", "base", "first two columns of the TCP rotation matrix"),
    "tcp_quaternion": ((4,), "1", "base", "TCP orientation quaternion (x, y, z, w)"),
    "joint_pos": ((7,), "rad", None, "arm joint positions"),
    "gripper_width": ((1,), "m", None, "opening between the fingers"),
}
ACTION_SPEC = ArraySpec(shape=(7,), dtype=np.float32, unit="m,m,m,rad,rad,rad,1", frame="base",
                        description="TCP delta translation, delta rotation vector, gripper closure target "
                                    "(0 open, 1 closed)")


class MissingStreamsError(LookupError):
    """No sample near the step's time on some streams; ``streams`` names them."""

    def __init__(self, t_s: float, streams: list[str]) -> None:
        super().__init__(f"no sample within tolerance of t={t_s:.3f} s on {streams}")
        self.streams = streams


def robot_dataset_specs(cell: CellConfig, cameras: Sequence[str], image_size: tuple[int, int],
                        depth: bool) -> dict[str, ArraySpec]:
    """Array specs of a robot episode: images (``image_size`` = width, height), proprioception, action."""
    width, height = image_size
    specs: dict[str, ArraySpec] = {}
    for name in cameras:
        frame = cell.camera(name).optical_frame
        specs[f"{name}_rgb"] = ArraySpec((height, width, 3), np.uint8, "rgb8", frame=frame)
        if depth:
            specs[f"{name}_depth"] = ArraySpec((height, width), np.float32, "m", frame=frame)
    for key, (shape, unit, frame, description) in ROBOT_LOW_DIM.items():
        specs[key] = ArraySpec(shape, np.float32, unit, frame=frame, description=description)
    specs["action"] = ACTION_SPEC
    specs["reward"] = ArraySpec((), np.float32, "1", description="task reward after the action")
    specs["timestamp"] = ArraySpec((), np.float64, "s", description="observation time (sim clock)")
    return specs


def resize_nearest(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize at pixel centres (what an unfiltered render at that size samples)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    ys = np.minimum(((np.arange(height) + 0.5) * h / height).astype(int), h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * w / width).astype(int), w - 1)
    return np.ascontiguousarray(image[ys[:, None], xs])


def proprio(q: np.ndarray, tcp_position_m: np.ndarray, tcp_quaternion_xyzw: np.ndarray,
            gripper_width_m: float) -> dict[str, np.ndarray]:
    """The proprioceptive keys, computed as ``sim.env.proprio_observation`` does."""
    rot = quat_xyzw_to_matrix(tcp_quaternion_xyzw)
    return {
        "tcp_position": np.asarray(tcp_position_m, np.float32),
        "tcp_rot6d": rot[:, :2].T.reshape(6).astype(np.float32),
        "tcp_quaternion": np.asarray(tcp_quaternion_xyzw, np.float32),
        "joint_pos": np.asarray(q, np.float32),
        "gripper_width": np.array([gripper_width_m], np.float32),
    }


def motion_action(pos_a: np.ndarray, quat_a: np.ndarray, pos_b: np.ndarray, quat_b: np.ndarray,
                  gripper_closure: float) -> np.ndarray:
    """The delta action that moves the TCP from pose a to pose b (rotation applied on the left, base frame)."""
    rotvec = matrix_to_axis_angle(quat_xyzw_to_matrix(quat_b) @ quat_xyzw_to_matrix(quat_a).T)
    return np.concatenate([np.asarray(pos_b) - np.asarray(pos_a), rotvec, [gripper_closure]]).astype(np.float32)


def apply_motion(pos: np.ndarray, quat: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`motion_action` (for tests and checks)."""
    from hardware_configs.frames import matrix_to_quat_xyzw

    rot = axis_angle_to_matrix(action[3:6]) @ quat_xyzw_to_matrix(quat)
    return np.asarray(pos) + action[:3], matrix_to_quat_xyzw(rot)


class StreamBuffer:
    """Samples of one stream sorted by stamp (the last ``maxlen``, or all with ``None``); nearest-stamp lookup."""

    def __init__(self, maxlen: int | None = 64) -> None:
        self.maxlen = maxlen
        self._stamps: list[float] = []
        self._values: list[object] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp_s: float, value: object) -> None:
        i = bisect.bisect(self._stamps, stamp_s)  # best-effort transport can reorder: insert sorted
        self._stamps.insert(i, stamp_s)
        self._values.insert(i, value)
        if self.maxlen is not None and len(self._stamps) > 2 * self.maxlen:  # trim in batches: amortised O(1)
            del self._stamps[: -self.maxlen], self._values[: -self.maxlen]

    def nearest(self, t_s: float, tolerance_s: float) -> tuple[float, object] | None:
        i = bisect.bisect(self._stamps, t_s)
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self._stamps)]
        if not candidates:
            return None
        j = min(candidates, key=lambda k: abs(self._stamps[k] - t_s))
        if abs(self._stamps[j] - t_s) > tolerance_s:
            return None
        return self._stamps[j], self._values[j]

    def latest_stamp(self) -> float | None:
        return self._stamps[-1] if self._stamps else None


@dataclass(frozen=True)
class _Proprio:
    q: np.ndarray
    width_m: float


class StepBuilder:
    """Collects decoded samples per stream and assembles synchronised steps (see the module docstring)."""

    def __init__(self, cell: CellConfig, cameras: Sequence[str], image_size: tuple[int, int], depth: bool,
                 tolerance_s: float, buffer_len: int | None = 64) -> None:
        self.cell, self.cameras, self.image_size, self.depth = cell, list(cameras), image_size, depth
        self.tolerance_s = tolerance_s
        self.specs = robot_dataset_specs(cell, self.cameras, image_size, depth)
        names = [f"{c}_rgb" for c in self.cameras] + ([f"{c}_depth" for c in self.cameras] if depth else [])
        self.buffers = {name: StreamBuffer(buffer_len) for name in [*names, "joints", "tcp"]}

    def add_rgb(self, camera: str, stamp_s: float, rgb: np.ndarray) -> None:
        self.buffers[f"{camera}_rgb"].add(stamp_s, resize_nearest(rgb, *self.image_size))

    def add_depth(self, camera: str, stamp_s: float, depth_m: np.ndarray) -> None:
        if self.depth:
            self.buffers[f"{camera}_depth"].add(stamp_s, resize_nearest(depth_m, *self.image_size))

    def add_joints(self, stamp_s: float, q: np.ndarray, gripper_width_m: float) -> None:
        self.buffers["joints"].add(stamp_s, _Proprio(np.asarray(q, float), float(gripper_width_m)))

    def add_tcp(self, stamp_s: float, position_m: np.ndarray, quaternion_xyzw: np.ndarray) -> None:
        self.buffers["tcp"].add(stamp_s, (np.asarray(position_m, float), np.asarray(quaternion_xyzw, float)))

    def tcp_at(self, t_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        found = self.buffers["tcp"].nearest(t_s, self.tolerance_s)
        return None if found is None else found[1]  # type: ignore[return-value]

    def observation(self, t_s: float) -> dict[str, np.ndarray]:
        """Every observation key at ``t_s``; raises :class:`MissingStreamsError` naming the streams without a sample."""
        found = {name: buf.nearest(t_s, self.tolerance_s) for name, buf in self.buffers.items()}
        missing = [name for name, hit in found.items() if hit is None]
        if missing:
            raise MissingStreamsError(t_s, missing)
        joints: _Proprio = found["joints"][1]  # type: ignore[index,assignment]
        tcp_pos, tcp_quat = found["tcp"][1]  # type: ignore[index,misc]
        obs = proprio(joints.q, tcp_pos, tcp_quat, joints.width_m)
        for name, hit in found.items():
            if name not in ("joints", "tcp"):
                obs[name] = hit[1]  # type: ignore[index]
        return obs

    def step(self, t_s: float, action: np.ndarray, reward: float = 0.0) -> dict[str, np.ndarray]:
        """A full step for ``EpisodeWriter.add_step``: the observation at ``t_s`` and the action taken there."""
        obs = self.observation(t_s)
        return {**obs, "action": np.asarray(action, np.float32), "reward": np.float32(reward),
                "timestamp": np.float64(t_s)}
