"""What ``perception_node`` and ``camera_node`` do without ROS: parameter models, approximate-time matching of
camera streams, and per-camera dropout bookkeeping for the diagnostics.

Matching. Each camera delivers colour and aligned depth with the same stamp (the driver's frameset), and the
cameras run on their own clocks' phases. A frameset for time ``t`` (the newest colour stamp of the reference
camera) takes, per camera, the colour and depth whose stamps are nearest ``t`` within ``tolerance_s``; if any
camera has none, the frameset is refused and that camera is named: the fused cloud never mixes a fresh view
with a stale one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from perception.cameras.base import Frame
from perception.streams import StreamBuffer
from ros_support.params import CELL_DESCRIPTION, CellName, Field, NodeParams


class PerceptionParams(NodeParams):
    """``perception_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    cameras: list[str] = Field([], description="cameras to fuse; empty = every camera of the cell")
    sync_tolerance_s: float = Field(0.02, ge=0.0, le=1.0, description="largest stamp difference within a frameset "
                                    "[s] (half a frame period at 30 fps is 0.017)")
    rate_hz: float = Field(10.0, ge=0.1, le=90.0, description="fused clouds per second (at most)")
    voxel_m: float = Field(0.005, ge=0.0, description="voxel size of the downsampled cloud [m]; 0 = none")
    stride: int = Field(2, ge=1, description="keep every n-th pixel in each direction before deprojection")
    depth_scale_m: float = Field(0.001, ge=1e-6, description="metres per count of 16UC1 depth")
    dropout_timeout_s: float = Field(0.5, ge=0.01,
                                     description="a camera silent this long is reported as dropped [s]")
    tcp_pose_topic: str = Field("/tcp_pose", description="TCP pose in (for the wrist camera's pose at frame time)")
    cloud_topic: str = Field("/manip/points", description="sensor_msgs/PointCloud2 out, in the base frame")


class CameraParams(NodeParams):
    """``camera_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    cameras: list[str] = Field([], description="cameras to publish; empty = every camera of the cell")
    source: Literal["realsense", "playback"] = Field(
        "playback", description="realsense (live, by serial) or playback (recordings)")
    recording_dir: str = Field("", description="directory with <camera>.db3 RealSense recordings (playback)")
    loop: bool = Field(True, description="restart a recording at its end (playback)")
    publish_depth: bool = Field(True, description="publish aligned depth")
    depth_encoding: Literal["16UC1", "32FC1"] = Field("16UC1", description="16UC1 (mm) or 32FC1 (m)")
    poll_hz: float = Field(60.0, ge=1.0, le=500.0, description="how often the newest frame of each camera is checked")
    max_age_s: float = Field(0.2, ge=0.001, description="frames older than this are not published [s]")


@dataclass
class CameraHealth:
    """Per camera: frames seen, framesets it was missing from, and when it was last heard of."""

    frames: int = 0
    missing: int = 0
    last_rx_s: float | None = None

    def age_s(self, now_s: float) -> float:
        return float("inf") if self.last_rx_s is None else now_s - self.last_rx_s


class FramesetMatcher:
    """Approximate-time sync of N cameras' colour + depth streams (see the module docstring)."""

    def __init__(self, cameras: list[str], tolerance_s: float, buffer_len: int = 16) -> None:
        self.cameras, self.tolerance_s = list(cameras), tolerance_s
        self.rgb = {c: StreamBuffer(buffer_len) for c in self.cameras}
        self.depth = {c: StreamBuffer(buffer_len) for c in self.cameras}
        self.health = {c: CameraHealth() for c in self.cameras}
        self.framesets = 0
        self.refused = 0
        self._last_t: float | None = None

    def add_rgb(self, camera: str, stamp_s: float, rgb: np.ndarray, now_s: float) -> None:
        self.rgb[camera].add(stamp_s, rgb)
        health = self.health[camera]
        health.frames += 1
        health.last_rx_s = now_s

    def add_depth(self, camera: str, stamp_s: float, depth_m: np.ndarray) -> None:
        self.depth[camera].add(stamp_s, depth_m)

    def match(self) -> tuple[float, dict[str, Frame]] | None:
        """The newest complete frameset not returned before, or None (a refused one counts its missing cameras)."""
        t = self.rgb[self.cameras[0]].latest_stamp()
        if t is None or (self._last_t is not None and t <= self._last_t):
            return None
        frames, missing = {}, []
        for camera in self.cameras:
            rgb = self.rgb[camera].nearest(t, self.tolerance_s)
            depth = self.depth[camera].nearest(rgb[0], 1e-6) if rgb is not None else None
            if rgb is None or depth is None:
                missing.append(camera)
                continue
            frames[camera] = Frame(camera, rgb[1], depth[1], rgb[0] * 1e3)  # host time: the node stamps it
        if missing:
            self.refused += 1
            for camera in missing:
                self.health[camera].missing += 1
            return None
        self._last_t = t
        self.framesets += 1
        return t, frames

    def dropped(self, now_s: float, timeout_s: float) -> list[str]:
        return [c for c, h in self.health.items() if h.age_s(now_s) > timeout_s]
