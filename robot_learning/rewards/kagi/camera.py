"""Pinhole camera model and keyframes (RGB, depth, object masks) the KAGI query is built from.

``CameraModel`` projects base-frame points to pixels and lifts pixels with depth back to the base frame,
through :mod:`perception.geometry` (so lens distortion is handled as everywhere else in the stack).
A keyframe source gives what the query needs at an episode's start: :class:`TwinKeyframes` renders it in the
twin with :class:`sim.render.TwinRenderer` (RGB, depth and a segmentation mask per object, at a legible size);
on the robot a source reads the RealSense frames and a segmenter's masks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import mujoco
import numpy as np

from hardware_configs.schema import CameraMount, CellConfig, Intrinsics, TaskConfig
from perception.geometry import base_to_pixel, pixel_to_base
from sim.render import TwinRenderer
from sim.scene import ImageSize, scaled_intrinsics


@dataclass(frozen=True)
class CameraModel:
    """A camera at the keyframe image's size: intrinsics (with the cell's distortion model) and the optical
    frame's pose in the base frame (``T_base_cam``). The geometry is :mod:`perception.geometry`'s."""

    name: str
    intrinsics: Intrinsics
    T_base_cam: np.ndarray

    @property
    def width(self) -> int:
        return self.intrinsics.width

    @property
    def height(self) -> int:
        return self.intrinsics.height

    @classmethod
    def from_cell(cls, cell: CellConfig, camera: str, size: ImageSize) -> CameraModel:
        config = cell.camera(camera)
        if config.mount is not CameraMount.static:
            raise ValueError(f"camera {camera} is wrist-mounted: KAGI keyframes use static cameras "
                             f"({[c.name for c in cell.cameras if c.mount is CameraMount.static]})")
        fx, fy, cx, cy = scaled_intrinsics(config, size)  # distortion acts on normalised coordinates: unchanged
        intrinsics = config.intrinsics.model_copy(update={"width": size.width, "height": size.height, "fx": fx,
                                                          "fy": fy, "cx": cx, "cy": cy})
        return cls(camera, intrinsics, config.extrinsics.matrix())

    def project(self, points_base_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) as (u, v) and depths along the optical axis (N,) [m] of base-frame points (N, 3);
        points behind the camera get NaN pixels (never ``inside``)."""
        return base_to_pixel(np.atleast_2d(points_base_m), self.intrinsics, self.T_base_cam)

    def back_project(self, uv: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        """Base-frame points (N, 3) [m] of pixels (N, 2) at optical-axis depths (N,) [m]."""
        uv = np.atleast_2d(np.asarray(uv, dtype=float))
        return pixel_to_base(uv, np.asarray(depth_m, dtype=float).reshape(-1), self.intrinsics, self.T_base_cam)

    def inside(self, uv: np.ndarray, margin_px: int = 0) -> np.ndarray:
        uv = np.atleast_2d(uv)
        return ((uv[:, 0] >= margin_px) & (uv[:, 0] < self.width - margin_px)
                & (uv[:, 1] >= margin_px) & (uv[:, 1] < self.height - margin_px))


def depth_at(depth_m: np.ndarray, uv: np.ndarray, window_px: int = 2) -> np.ndarray:
    """Median depth in a small window around each pixel (robust to edge pixels and holes; 0 = no depth)."""
    h, w = depth_m.shape
    out = np.zeros(len(uv))
    for i, (u, v) in enumerate(np.round(np.atleast_2d(uv)).astype(int)):
        rows = slice(max(0, v - window_px), min(h, v + window_px + 1))
        patch = depth_m[rows, max(0, u - window_px) : min(w, u + window_px + 1)]
        valid = patch[np.isfinite(patch) & (patch > 0)]
        out[i] = float(np.median(valid)) if valid.size else 0.0
    return out


@dataclass
class Keyframe:
    """One camera's view at a keyframe: RGB (H, W, 3) uint8, depth (H, W) float32 [m], masks by object name."""

    camera: CameraModel
    rgb: np.ndarray
    depth_m: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)


class KeyframeSource(Protocol):
    def __call__(self, obs: dict[str, np.ndarray]) -> list[Keyframe]: ...


class TwinKeyframes:
    """Renders keyframes from a twin env's current state, independent of the env's observation size."""

    def __init__(self, env: object, cameras: tuple[str, ...] = ("cam_front",), size: tuple[int, int] = (640, 480)):
        self.model: mujoco.MjModel = env.model  # type: ignore[attr-defined]
        self.data: mujoco.MjData = env.data  # type: ignore[attr-defined]
        cell: CellConfig = env.cell  # type: ignore[attr-defined]
        task: TaskConfig = env.task_config  # type: ignore[attr-defined]
        self.size = ImageSize(*size)
        self.cameras = [CameraModel.from_cell(cell, name, self.size) for name in cameras]
        self._geoms = {o.name: [self.model.geom(f"{o.name}_geom").id] for o in task.objects}
        for fixture in task.fixtures:
            walls = (f"{fixture.name}_wall_{side}" for side in ("px", "nx", "py", "ny"))
            self._geoms[fixture.name] = [self.model.geom(wall).id for wall in walls]
        self._renderer = TwinRenderer(self.model, self.size.width, self.size.height, cell)

    def __call__(self, obs: dict[str, np.ndarray]) -> list[Keyframe]:
        frames = []
        for camera in self.cameras:
            frame = self._renderer.render(self.data, camera.name, segmentation=True)
            seg = frame.segmentation
            is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
            masks = {name: is_geom & np.isin(seg[..., 0], ids) for name, ids in self._geoms.items()}
            frames.append(Keyframe(camera, frame.color, frame.depth_m, masks))
        return frames

    def close(self) -> None:
        self._renderer.close()
