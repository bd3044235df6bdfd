"""The twin's cameras as the environment sees them: RGB (uint8) and metric depth (float32, metres) at the
observation size, from the MjData the environment steps.

The cameras sit where the cell file's extrinsics put them, with its intrinsics scaled to the render size,
so a frame rendered here and a frame from the real camera resized to that size share one pinhole model.
Rendering is :class:`sim.render.TwinRenderer`'s, whose GL renderers are created on first use, so an
environment can be built in one process and rendered in another.
"""

from __future__ import annotations

import mujoco
import numpy as np

from hardware_configs.schema import CellConfig
from perception.cameras.base import Frame
from perception.depth_model import DepthModel
from sim.render import TwinRenderer
from sim.scene import ImageSize


class TwinCameras:
    """``depth_model``: RealSense-like depth errors and per-camera pose errors (:mod:`perception.depth_model`);
    None (default) keeps the exact render that the demo, the tests and trained policies use."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, cell: CellConfig, size: ImageSize,
                 camera_names: list[str] | None = None, depth_model: DepthModel | None = None):
        self.model, self.data, self.size = model, data, size
        self.camera_names = camera_names or [c.name for c in cell.cameras]
        for name in self.camera_names:
            cell.camera(name)  # raises with the list of valid names
        self.renderer = TwinRenderer(model, size.width, size.height, cell, depth_model=depth_model)

    def render(self, camera: str, depth: bool = True) -> Frame:
        """The camera's view now, stamped with the sim time (call from one thread only)."""
        return self.renderer.render(self.data, camera, depth=depth)

    def render_rgb(self, camera: str) -> np.ndarray:
        return self.renderer.render_rgb(self.data, camera)

    def render_depth_m(self, camera: str) -> np.ndarray:
        """Depth along the optical axis in metres (what an aligned RealSense depth image holds)."""
        return self.renderer.render_depth_m(self.data, camera)

    def render_all(self, depth: bool = True) -> dict[str, np.ndarray]:
        frames: dict[str, np.ndarray] = {}
        for name in self.camera_names:
            frames[f"{name}_rgb"] = self.render_rgb(name)
            if depth:
                frames[f"{name}_depth"] = self.render_depth_m(name)
        return frames

    def close(self) -> None:
        self.renderer.close()
