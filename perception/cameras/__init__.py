"""Cameras behind one interface (live RealSense, RealSense recordings, the twin) and the multi-camera group.

Build the cameras of a cell with :func:`realsense_cameras`, :func:`playback_cameras` or :func:`twin_cameras`,
then read time-matched framesets through a :class:`CameraGroup`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from hardware_configs.schema import CellConfig
from perception.cameras.base import (
    Camera,
    CameraError,
    CameraNotFoundError,
    CameraNotStartedError,
    CameraStatus,
    Frame,
    StaleFrameError,
    StreamingCamera,
)
from perception.cameras.group import CameraEvent, CameraGroup, CameraStalledError, FramesetSkewError, SyncedFrameset

if TYPE_CHECKING:  # mujoco is only needed for the twin; a robot's camera node runs without it
    import mujoco

RECORDING_SUFFIX = ".db3"

__all__ = [
    "Camera",
    "CameraError",
    "CameraEvent",
    "CameraGroup",
    "CameraNotFoundError",
    "CameraNotStartedError",
    "CameraStalledError",
    "CameraStatus",
    "Frame",
    "FramesetSkewError",
    "StaleFrameError",
    "StreamingCamera",
    "SyncedFrameset",
    "playback_cameras",
    "realsense_cameras",
    "recording_path",
    "twin_cameras",
]


def realsense_cameras(cell: CellConfig, context=None, hardware_sync: bool = False) -> list[Camera]:
    """Live cameras of a cell by serial; with ``hardware_sync`` the first is master and the others follow it."""
    from perception.cameras.realsense import HardwareSync, RealSenseCamera

    cameras: list[Camera] = []
    for index, config in enumerate(cell.cameras):
        role = HardwareSync.off if not hardware_sync else (HardwareSync.master if index == 0 else HardwareSync.slave)
        cameras.append(RealSenseCamera(config, context=context, hardware_sync=role))
    return cameras


def recording_path(directory: str | Path, camera: str) -> Path:
    """Where a camera's recording lives in a recording directory: ``<directory>/<camera>.db3``."""
    return Path(directory) / f"{camera}{RECORDING_SUFFIX}"


def playback_cameras(cell: CellConfig, directory: str | Path, real_time: bool = True,
                     loop: bool = True) -> list[Camera]:
    """One playback camera per cell camera, from ``<directory>/<camera>.db3``, started in step."""
    from perception.cameras.realsense import PlaybackSync, RealSensePlaybackCamera

    missing = [c.name for c in cell.cameras if not recording_path(directory, c.name).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: no recording for camera(s) {missing} (expected <camera>.db3)")
    sync = PlaybackSync(len(cell.cameras))
    return [RealSensePlaybackCamera(recording_path(directory, c.name), name=c.name, real_time=real_time, loop=loop,
                                    sync=sync, serial=c.serial) for c in cell.cameras]  # another camera's file: refused


def twin_cameras(cell: CellConfig, model: mujoco.MjModel, data: mujoco.MjData, width: int, height: int,
                 sim_lock: threading.Lock | None = None, fps: float | None = None) -> list[Camera]:
    """The twin's cameras (built from the same cell), rendering at ``width`` x ``height``."""
    from perception.cameras.twin import TwinCamera

    return [TwinCamera(model, data, c.name, width, height, fps=fps or c.fps, sim_lock=sim_lock, serial=c.serial,
                       cell=cell) for c in cell.cameras]
