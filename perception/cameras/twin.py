"""The twin's cameras behind the same :class:`~perception.cameras.base.Camera` interface as a RealSense.

Each camera renders RGB and metric depth from the shared ``MjData`` in its own reader thread (its GL
context belongs to that thread). The scene is copied under ``sim_lock`` (the lock the physics loop holds
while stepping) and rendered outside it, so rendering never stalls physics.

The cameras are triggered by the sim clock, as hardware-synced cameras are by their sync line: a camera
takes frame ``k`` once sim time passes ``k / fps`` and stamps it ``k / fps`` (``device_time_ms``), so cameras
at one rate produce matching framesets however their threads are scheduled. The state rendered is the one
at the moment of rendering (at most a render's latency later, like an exposure's delay). No sim time, no
frames: a paused simulation looks like stalled cameras.

Rendering is :class:`sim.render.TwinRenderer`'s (the one renderer of the twin); intrinsics are read back from
the compiled model (:func:`sim.render.twin_intrinsics`, OpenCV convention), extrinsics come from the cell when
one is given.
"""

from __future__ import annotations

import threading
import time

import mujoco
import numpy as np

from hardware_configs.schema import CellConfig, Intrinsics
from perception.cameras.base import (
    DEFAULT_BUFFER_FRAMES,
    DEFAULT_STALL_TIMEOUT_S,
    CameraError,
    Frame,
    StreamingCamera,
)
from perception.depth_model import DepthModel
from sim.render import MUJOCO_PIXEL_CENTRE_PX, TwinRenderer, twin_intrinsics

__all__ = ["MUJOCO_PIXEL_CENTRE_PX", "TwinCamera", "twin_intrinsics"]

DEFAULT_MAX_DEPTH_M = 6.0  # beyond this a D435 reports no depth; the twin's background is at ~100 m
POLL_S = 0.002  # how often a camera looks at the sim clock


class TwinCamera(StreamingCamera):
    """One camera of the twin, triggered every ``1 / fps`` of sim time; ``pause()`` makes it stop delivering.

    ``depth_model``: RealSense-like depth and pose errors (:mod:`perception.depth_model`), one model per camera
    (its Generator is drawn from in this camera's thread); None (default) renders the exact scene.
    """

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, camera: str, width: int, height: int,
                 fps: float = 30.0, sim_lock: threading.Lock | None = None, serial: str | None = None,
                 max_depth_m: float = DEFAULT_MAX_DEPTH_M, buffer_frames: int = DEFAULT_BUFFER_FRAMES,
                 stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S, cell: CellConfig | None = None,
                 depth_model: DepthModel | None = None) -> None:
        super().__init__(camera, serial or f"twin-{camera}", buffer_frames, stall_timeout_s)
        if not fps > 0:
            raise ValueError(f"twin camera {camera}: fps must be > 0, got {fps}")
        self.model, self.data = model, data
        self.width, self.height, self.period_s = width, height, 1.0 / fps
        self.max_depth_m = max_depth_m
        self._sim_lock = sim_lock
        self._intrinsics = twin_intrinsics(model, camera, width, height)
        self._cell = cell
        self.depth_model = depth_model
        self._renderer: TwinRenderer | None = None
        self._last_trigger = -1
        self._frame_number = 0
        self._paused = False

    @property
    def intrinsics(self) -> Intrinsics:
        return self._intrinsics

    def _open(self) -> None:
        self._renderer = TwinRenderer(self.model, self.width, self.height, self._cell, max_depth_m=self.max_depth_m,
                                     depth_model=self.depth_model)

    def _reconnect(self) -> None:
        """The twin never disconnects: a paused camera comes back when resumed."""

    def _grab(self, timeout_s: float) -> Frame | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            trigger = int(np.floor(self.data.time / self.period_s + 1e-9))
            if trigger < self._last_trigger:  # the simulation was reset: its clock starts again
                self._last_trigger = trigger - 1
            if trigger > self._last_trigger and not self._paused:
                self._last_trigger = trigger
                frame = self.render(stamp_ms=trigger * self.period_s * 1e3)
                return None if self._paused else frame
            time.sleep(POLL_S)
        return None

    def render(self, stamp_ms: float | None = None) -> Frame:
        """Render one frame now, stamped ``stamp_ms`` (default: the current sim time). The reader thread calls
        this; so can a single-threaded caller after ``_open``."""
        if self._renderer is None:
            raise CameraError(f"twin camera {self.name} is not open")
        self._frame_number += 1
        return self._renderer.render(self.data, self.name, lock=self._sim_lock, stamp_ms=stamp_ms,
                                     frame_number=self._frame_number)

    def open(self) -> None:
        """Create the renderers in the caller's thread, to call :meth:`render` without the reader thread."""
        self._open()

    def close(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = None

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
