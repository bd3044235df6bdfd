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

With a ``depth_model`` (:class:`perception.depth_model.DepthModel`; default None, the exact depth) the renderer
shows what a RealSense would: every image is rendered from the camera's true pose, the cell file's pose moved by
the model's per-camera extrinsic error, while the frame keeps the file's ``T_parent_optical`` (what calibration
believes); depth gets the model's noise, holes, range limits and quantisation (colour is rendered for its
dark-surface dropout even when the caller asks for depth only).
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
from perception.depth_model import DepthModel

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


def _move_gl_cameras(scene: mujoco.MjvScene, T_believed_true: np.ndarray) -> None:
    """Move the scene's GL cameras (set by ``update_scene`` at the believed pose) by ``T_believed_true``, given in
    the optical frame (x right, y down, z forward; a GL camera's ``up`` is -y, its ``forward`` +z)."""
    for gl in scene.camera:
        forward, up = np.array(gl.forward, float), np.array(gl.up, float)
        R_world_optical = np.column_stack([np.cross(forward, up), -up, forward])
        R_new = R_world_optical @ T_believed_true[:3, :3]
        gl.pos[:] = np.array(gl.pos, float) + R_world_optical @ T_believed_true[:3, 3]
        gl.forward[:] = R_new[:, 2]
        gl.up[:] = -R_new[:, 1]


class TwinRenderer:
    """Renders the twin's cameras at ``width`` x ``height`` (rendered ``supersample`` times larger for colour).

    ``cell`` (the file the model was built from) gives each frame its extrinsics; without it frames carry none.
    ``max_depth_m``: depth beyond it reads 0 (no depth), as a RealSense reports past its range; None keeps all.
    ``depth_model``: the RealSense errors to apply (see the module note); None (default) renders the exact scene.
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int, cell: CellConfig | None = None,
                 supersample: int = 1, max_depth_m: float | None = None,
                 depth_model: DepthModel | None = None) -> None:
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        needed = (width * supersample, height * supersample)
        if model.vis.global_.offwidth < needed[0] or model.vis.global_.offheight < needed[1]:
            raise ValueError(f"the model's offscreen buffer {model.vis.global_.offwidth}x{model.vis.global_.offheight}"
                             f" is smaller than the {needed[0]}x{needed[1]} render; set visual.global_")
        self.model, self.cell = model, cell
        self.width, self.height, self.supersample = width, height, supersample
        self.max_depth_m = max_depth_m
        self.depth_model = depth_model
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
        model_needs_rgb = depth and self.depth_model is not None and self.depth_model.config.dark_dropout_prob > 0
        wanted = (rgb or model_needs_rgb, depth, segmentation)
        kinds = [k for k, w in zip(_KINDS, wanted, strict=True) if w]
        renderers = [self._renderer(kind) for kind in kinds]
        with lock or nullcontext():
            for renderer in renderers:
                renderer.update_scene(data, camera)
            sim_time_ms = float(data.time) * 1e3
        if self.depth_model is not None:
            T_believed_true = self.depth_model.extrinsic_error(camera)
            for renderer in renderers:
                _move_gl_cameras(renderer.scene, T_believed_true)
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
            if self.depth_model is not None:
                sensor_fx = None if self.cell is None else self.cell.camera(camera).intrinsics.fx
                depth_m = self.depth_model.apply(depth_m, self.intrinsics(camera).fx, color=color,
                                                 sensor_focal_px=sensor_fx)
        if not rgb:
            color = None
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
