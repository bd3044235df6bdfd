"""Offscreen rendering of the cell's cameras in the twin: RGB (uint8) and metric depth (float32, metres).

The cameras sit where the cell file's extrinsics put them, with its intrinsics scaled to the render size,
so a frame rendered here and a frame from the real camera resized to that size share one pinhole model.
Renderers are created lazily so an environment can be built in one process and rendered in another.
"""

from __future__ import annotations

import mujoco
import numpy as np

from hardware_configs.schema import CellConfig
from sim.scene import ImageSize


class TwinCameras:
    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, cell: CellConfig, size: ImageSize,
                 camera_names: list[str] | None = None):
        self.model, self.data, self.size = model, data, size
        self.camera_names = camera_names or [c.name for c in cell.cameras]
        for name in self.camera_names:
            cell.camera(name)  # raises with the list of valid names
        self._rgb: mujoco.Renderer | None = None
        self._depth: mujoco.Renderer | None = None

    def _renderers(self) -> tuple[mujoco.Renderer, mujoco.Renderer]:
        if self._rgb is None or self._depth is None:
            self._rgb = mujoco.Renderer(self.model, self.size.height, self.size.width)
            self._depth = mujoco.Renderer(self.model, self.size.height, self.size.width)
            self._depth.enable_depth_rendering()
        return self._rgb, self._depth

    def render_rgb(self, camera: str) -> np.ndarray:
        rgb, _ = self._renderers()
        rgb.update_scene(self.data, camera)
        return rgb.render().copy()

    def render_depth_m(self, camera: str) -> np.ndarray:
        """Depth along the optical axis in metres (what an aligned RealSense depth image holds)."""
        _, depth = self._renderers()
        depth.update_scene(self.data, camera)
        return depth.render().astype(np.float32)

    def render_all(self, depth: bool = True) -> dict[str, np.ndarray]:
        frames: dict[str, np.ndarray] = {}
        for name in self.camera_names:
            frames[f"{name}_rgb"] = self.render_rgb(name)
            if depth:
                frames[f"{name}_depth"] = self.render_depth_m(name)
        return frames

    def close(self) -> None:
        for renderer in (self._rgb, self._depth):
            if renderer is not None:
                renderer.close()
        self._rgb = self._depth = None
