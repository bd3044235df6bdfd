"""Message streams → episode steps, shared by ``session_node`` (live) and ``manip-stack import-bag`` (bags).

Streams arrive at their own rates with their own stamps (cameras 30 Hz, joint states 100+ Hz, actions at the
policy rate). A step is built for a time ``t`` from the sample of each stream whose stamp is nearest to ``t``,
within ``tolerance_s``; a step whose streams are missing or too far off is refused, with the names of those
streams, and never recorded half-filled. With actions on the graph, a step is taken per action at the action's
stamp, which is the stamp of the observation it was computed from, so observation and action pair exactly.

Keys, shapes, units and frames come from :mod:`controllers.observations`, as the twin's do, less the sim-only
keys: a policy trained on twin episodes reads robot episodes unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from controllers.interface import RobotState
from controllers.observations import depth_key, observation_schema, proprio_observation, rgb_key
from hardware_configs.schema import CellConfig
from perception.streams import StreamBuffer
from robot_learning.data.specs import ArraySpec, episode_specs


class MissingStreamsError(LookupError):
    """No sample near the step's time on some streams; ``streams`` names them."""

    def __init__(self, t_s: float, streams: list[str]) -> None:
        super().__init__(f"no sample within tolerance of t={t_s:.3f} s on {streams}")
        self.streams = streams


def robot_dataset_specs(cell: CellConfig, cameras: Sequence[str], image_size: tuple[int, int],
                        depth: bool, estimated_dims: Mapping[str, int] | None = None) -> dict[str, ArraySpec]:
    """Array specs of a robot episode: images (``image_size`` = width, height), proprioception, the estimated
    scene when ``estimated_dims`` is given, action (no sim-only keys: the robot cannot observe them)."""
    return episode_specs(observation_schema(cell, cameras, image_size, depth, estimated_dims=estimated_dims))


def resize_nearest(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize at pixel centres (what an unfiltered render at that size samples)."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    ys = np.minimum(((np.arange(height) + 0.5) * h / height).astype(int), h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * w / width).astype(int), w - 1)
    return np.ascontiguousarray(image[ys[:, None], xs])


@dataclass(frozen=True)
class _Proprio:
    q: np.ndarray
    width_m: float


class StepBuilder:
    """Collects decoded samples per stream and assembles synchronised steps (see the module docstring)."""

    def __init__(self, cell: CellConfig, cameras: Sequence[str], image_size: tuple[int, int], depth: bool,
                 tolerance_s: float, buffer_len: int | None = 64, estimated_dims: Mapping[str, int] | None = None,
                 estimate_max_age_s: float = 0.3) -> None:
        """``estimated_dims``: the estimated keys' lengths (``object_state_node``'s ``/manip/estimated``), whose
        newest sample up to ``estimate_max_age_s`` old joins a step: the estimator runs slower than the cameras."""
        self.cell, self.cameras, self.image_size, self.depth = cell, list(cameras), image_size, depth
        self.tolerance_s, self.estimate_max_age_s = tolerance_s, estimate_max_age_s
        self.estimated_dims = dict(estimated_dims or {})
        self.specs = robot_dataset_specs(cell, self.cameras, image_size, depth, self.estimated_dims or None)
        names = [rgb_key(c) for c in self.cameras] + ([depth_key(c) for c in self.cameras] if depth else [])
        names += ["estimated"] if self.estimated_dims else []
        self.buffers = {name: StreamBuffer(buffer_len) for name in [*names, "joints", "tcp"]}

    def add_rgb(self, camera: str, stamp_s: float, rgb: np.ndarray) -> None:
        self.buffers[rgb_key(camera)].add(stamp_s, resize_nearest(rgb, *self.image_size))

    def add_depth(self, camera: str, stamp_s: float, depth_m: np.ndarray) -> None:
        if self.depth:
            self.buffers[depth_key(camera)].add(stamp_s, resize_nearest(depth_m, *self.image_size))

    def add_joints(self, stamp_s: float, q: np.ndarray, gripper_width_m: float) -> None:
        self.buffers["joints"].add(stamp_s, _Proprio(np.asarray(q, float), float(gripper_width_m)))

    def add_tcp(self, stamp_s: float, position_m: np.ndarray, quaternion_xyzw: np.ndarray) -> None:
        self.buffers["tcp"].add(stamp_s, (np.asarray(position_m, float), np.asarray(quaternion_xyzw, float)))

    def add_estimated(self, stamp_s: float, vector: np.ndarray) -> None:
        """One ``/manip/estimated`` sample: the estimated keys concatenated in ``estimated_dims``' order."""
        values = np.asarray(vector, dtype=np.float32).reshape(-1)
        if values.size != sum(self.estimated_dims.values()):
            raise ValueError(f"/manip/estimated holds {values.size} values; the task needs "
                             f"{sum(self.estimated_dims.values())} ({self.estimated_dims})")
        bounds = np.cumsum([0, *self.estimated_dims.values()])
        self.buffers["estimated"].add(stamp_s, {k: values[a:b] for k, a, b in
                                                zip(self.estimated_dims, bounds[:-1], bounds[1:], strict=True)})

    def tcp_at(self, t_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        found = self.buffers["tcp"].nearest(t_s, self.tolerance_s)
        return None if found is None else found[1]  # type: ignore[return-value]

    def observation(self, t_s: float) -> dict[str, np.ndarray]:
        """Every observation key at ``t_s``; raises :class:`MissingStreamsError` naming the streams without a sample."""
        found = {name: buf.nearest(t_s, self.estimate_max_age_s if name == "estimated" else self.tolerance_s)
                 for name, buf in self.buffers.items()}
        missing = [name for name, hit in found.items() if hit is None]
        if missing:
            raise MissingStreamsError(t_s, missing)
        joints: _Proprio = found["joints"][1]  # type: ignore[index,assignment]
        tcp_pos, tcp_quat = found["tcp"][1]  # type: ignore[index,misc]
        no_velocities = np.full_like(joints.q, np.nan)  # not recorded, and not part of the observation
        obs = proprio_observation(RobotState(t_s, joints.q, no_velocities, tcp_pos, tcp_quat, joints.width_m))
        for name, hit in found.items():
            if name == "estimated":
                obs.update(hit[1])  # type: ignore[index,arg-type]
            elif name not in ("joints", "tcp"):
                obs[name] = hit[1]  # type: ignore[index]
        return obs

    def step(self, t_s: float, action: np.ndarray, reward: float = 0.0) -> dict[str, np.ndarray]:
        """A full step for ``EpisodeWriter.add_step``: the observation at ``t_s`` and the action taken there."""
        obs = self.observation(t_s)
        return {**obs, "action": np.asarray(action, np.float32), "reward": np.float32(reward),
                "timestamp": np.float64(t_s)}
