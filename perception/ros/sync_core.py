"""What ``perception_node`` and ``camera_node`` do without ROS: parameter tables, approximate-time matching of
camera streams, and per-camera dropout bookkeeping for the diagnostics.

Matching. Each camera delivers colour and aligned depth with the same stamp (the driver's frameset), and the
cameras run on their own clocks' phases. A frameset for time ``t`` (the newest colour stamp of the reference
camera) takes, per camera, the colour and depth whose stamps are nearest ``t`` within ``tolerance_s``; if any
camera has none, the frameset is refused and that camera is named: the fused cloud never mixes a fresh view
with a stale one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.streams import StreamBuffer
from ros_support.params import CELL, ParamSpec

PERCEPTION_PARAMETERS: tuple[ParamSpec, ...] = (
    CELL,
    ParamSpec("cameras", "string_array", [], "cameras to fuse; empty = every camera of the cell"),
    ParamSpec("sync_tolerance_s", "double", 0.02, "largest stamp difference within a frameset [s] "
              "(half a frame period at 30 fps is 0.017)", minimum=0.0, maximum=1.0),
    ParamSpec("rate_hz", "double", 10.0, "fused clouds per second (at most)", minimum=0.1, maximum=90.0),
    ParamSpec("voxel_m", "double", 0.005, "voxel size of the downsampled cloud [m]; 0 = none", minimum=0.0),
    ParamSpec("stride", "int", 2, "keep every n-th pixel in each direction before deprojection", minimum=1),
    ParamSpec("depth_scale_m", "double", 0.001, "metres per count of 16UC1 depth", minimum=1e-6),
    ParamSpec("dropout_timeout_s", "double", 0.5, "a camera silent this long is reported as dropped [s]",
              minimum=0.01),
    ParamSpec("tcp_pose_topic", "string", "/tcp_pose", "TCP pose in (for the wrist camera's pose at frame time)"),
    ParamSpec("cloud_topic", "string", "/manip/points", "sensor_msgs/PointCloud2 out, in the base frame"),
)

CAMERA_PARAMETERS: tuple[ParamSpec, ...] = (
    CELL,
    ParamSpec("cameras", "string_array", [], "cameras to publish; empty = every camera of the cell"),
    ParamSpec("source", "string", "playback", "realsense (live, by serial) or playback (recordings)",
              choices=("realsense", "playback")),
    ParamSpec("recording_dir", "string", "", "directory with <camera>.db3 RealSense recordings (playback)"),
    ParamSpec("loop", "bool", True, "restart a recording at its end (playback)"),
    ParamSpec("publish_depth", "bool", True, "publish aligned depth"),
    ParamSpec("depth_encoding", "string", "16UC1", "16UC1 (mm) or 32FC1 (m)", choices=("16UC1", "32FC1")),
    ParamSpec("poll_hz", "double", 60.0, "how often the newest frame of each camera is checked", minimum=1.0,
              maximum=500.0),
    ParamSpec("max_age_s", "double", 0.2, "frames older than this are not published [s]", minimum=0.001),
)


@dataclass
class CameraHealth:
    """Per camera: frames seen, framesets it was missing from, and when it was last heard of."""

    frames: int = 0
    missing: int = 0
    last_rx_s: float | None = None

    def age_s(self, now_s: float) -> float:
        return float("inf") if self.last_rx_s is None else now_s - self.last_rx_s


@dataclass(frozen=True)
class MatchedFrame:
    camera: str
    stamp_s: float
    rgb: np.ndarray
    depth_m: np.ndarray


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

    def match(self) -> tuple[float, dict[str, MatchedFrame]] | None:
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
            frames[camera] = MatchedFrame(camera, rgb[0], rgb[1], depth[1])  # type: ignore[arg-type]
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
