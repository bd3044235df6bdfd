"""The one renderer of the twin's cameras: RGB (uint8), depth along the optical axis in metres (float32) and
MuJoCo's segmentation, as a :class:`~perception.cameras.base.Frame`.

Everything that shows the twin through a camera renders here: the environment's observations
(:mod:`sim.cameras`), the twin behind the camera interface (:mod:`perception.cameras.twin`), calibration's board
views (:mod:`calibration.twin`) and KAGI's keyframes. The cameras sit where the cell file's extrinsics put them
(:func:`sim.scene.build_spec`), so a frame carries the cell's ``T_parent_optical`` and the intrinsics read back
from the compiled model at the delivered size.

A :class:`TwinRenderer` owns one ``mujoco.Renderer`` per kind of image (colour, depth, segmentation), created on
first use in the thread that renders (a GL context belongs to the thread that made it; the GL backend is the one
:mod:`sim.gl_backend` chose), and closes them in :meth:`TwinRenderer.close`. With ``supersample`` > 1 colour is
rendered that many times larger and area-averaged, as a sensor integrates over its pixels (calibration's board
views); depth and segmentation are always rendered at the delivered size, one sample at each pixel's centre
(averaging depth across an edge would invent surfaces).
"""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext

import cv2
import mujoco
import numpy as np

from hardware_configs.schema import CellConfig, Intrinsics
from perception.cameras.base import CameraError, Frame

MUJOCO_PIXEL_CENTRE_PX = 0.5  # MuJoCo samples pixel (u, v) at (u + 0.5, v + 0.5) of its pinhole model
_KINDS = ("rgb", "depth", "segmentation")


def twin_intrinsics(model: mujoco.MjModel, camera: str, width: int, height: int) -> Intrinsics:
    """Effective pinhole intrinsics of a twin camera rendered at ``width`` x ``height`` (OpenCV convention).

    MuJoCo puts pixel centres at half-integers of the pinhole it is given, so the principal point reported here
    is half a pixel less than the one in the model.
    """
    cam_id = model.camera(camera).id
    sensor_w_m, sensor_h_m = model.cam_sensorsize[cam_id]
    if sensor_w_m <= 0 or sensor_h_m <= 0:
        raise CameraError(f"twin camera {camera} has no sensor size: its intrinsics come from fovy, not pixels")
    fx_len, fy_len, px_len, py_len = (float(v) for v in model.cam_intrinsic[cam_id])
    px_per_m_x, px_per_m_y = width / sensor_w_m, height / sensor_h_m
    return Intrinsics(
        width=width, height=height, fx=fx_len * px_per_m_x, fy=fy_len * px_per_m_y,
        cx=width / 2.0 - px_len * px_per_m_x - MUJOCO_PIXEL_CENTRE_PX,
        cy=height / 2.0 - py_len * px_per_m_y - MUJOCO_PIXEL_CENTRE_PX,
        distortion_model="none", distortion=[0.0] * 5,
    )


class TwinRenderer:
    """Renders the twin's cameras at ``width`` x ``height`` (rendered ``supersample`` times larger for colour).

    ``cell`` (the file the model was built from) gives each frame its extrinsics; without it frames carry none.
    ``max_depth_m``: depth beyond it reads 0 (no depth), as a RealSense reports past its range; None keeps all.
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int, cell: CellConfig | None = None,
                 supersample: int = 1, max_depth_m: float | None = None) -> None:
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        needed = (width * supersample, height * supersample)
        if model.vis.global_.offwidth < needed[0] or model.vis.global_.offheight < needed[1]:
            raise ValueError(f"the model's offscreen buffer {model.vis.global_.offwidth}x{model.vis.global_.offheight}"
                             f" is smaller than the {needed[0]}x{needed[1]} render; set visual.global_")
        self.model, self.cell = model, cell
        self.width, self.height, self.supersample = width, height, supersample
        self.max_depth_m = max_depth_m
        self._renderers: dict[str, mujoco.Renderer] = {}
        self._intrinsics: dict[str, Intrinsics] = {}

    def intrinsics(self, camera: str) -> Intrinsics:
        if camera not in self._intrinsics:
            self._intrinsics[camera] = twin_intrinsics(self.model, camera, self.width, self.height)
        return self._intrinsics[camera]

    def extrinsics(self, camera: str) -> tuple[str | None, np.ndarray | None]:
        """(parent frame, ``T_parent_optical``) from the cell; (None, None) without one."""
        if self.cell is None:
            return None, None
        extrinsics = self.cell.camera(camera).extrinsics
        return extrinsics.parent, extrinsics.matrix()

    def _renderer(self, kind: str) -> mujoco.Renderer:
        if kind not in self._renderers:
            scale = self.supersample if kind == "rgb" else 1
            renderer = mujoco.Renderer(self.model, self.height * scale, self.width * scale)
            if kind == "depth":
                renderer.enable_depth_rendering()
            elif kind == "segmentation":
                renderer.enable_segmentation_rendering()
            self._renderers[kind] = renderer
        return self._renderers[kind]

    def render(self, data: mujoco.MjData, camera: str, *, rgb: bool = True, depth: bool = True,
               segmentation: bool = False, lock: threading.Lock | None = None, stamp_ms: float | None = None,
               frame_number: int = 0) -> Frame:
        """``camera``'s view of ``data`` now. The scene is copied under ``lock`` (the physics loop's) and rendered
        outside it. The frame is stamped ``stamp_ms`` (default: the sim time of the copied scene)."""
        kinds = [k for k, wanted in zip(_KINDS, (rgb, depth, segmentation), strict=True) if wanted]
        renderers = [self._renderer(kind) for kind in kinds]
        with lock or nullcontext():
            for renderer in renderers:
                renderer.update_scene(data, camera)
            sim_time_ms = float(data.time) * 1e3
        images = dict(zip(kinds, (renderer.render() for renderer in renderers), strict=True))
        color = images.get("rgb")
        if color is not None:
            color = color.copy() if self.supersample == 1 else cv2.resize(
                color, (self.width, self.height), interpolation=cv2.INTER_AREA)
        depth_m = images.get("depth")
        if depth_m is not None:
            depth_m = depth_m.astype(np.float32)
            if self.max_depth_m is not None:
                depth_m[depth_m > self.max_depth_m] = 0.0
        seg = images.get("segmentation")
        parent, T_parent_optical = self.extrinsics(camera)
        return Frame(camera, color, depth_m, sim_time_ms if stamp_ms is None else stamp_ms, time.monotonic(),
                     frame_number, intrinsics=self.intrinsics(camera), T_parent_optical=T_parent_optical,
                     parent_frame=parent, segmentation=None if seg is None else seg.copy())

    def render_rgb(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        return self.render(data, camera, depth=False).color

    def render_depth_m(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        """Depth along the optical axis in metres (what an aligned RealSense depth image holds)."""
        return self.render(data, camera, rgb=False).depth_m

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers = {}
