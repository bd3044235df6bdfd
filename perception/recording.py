"""Write RGB-D frames into a RealSense recording (a ROS 2 ``.db3`` bag) that librealsense plays back.

Frames go through a ``rs.software_device`` (a depth sensor streaming Z16 and a colour sensor streaming RGB8,
both with the colour intrinsics and identity extrinsics, since the depth written is already aligned) into
an ``rs.recorder``. The file then plays through the same pipeline, decode and ``rs.align`` as a camera:
tests build their recordings from twin renders this way, and ``manip-stack record-cameras`` records live
frames with it.

Timing: librealsense stores each frame at the host time it was fed, and real-time playback follows those
times. ``pace=True`` feeds frames at their own timestamps' spacing so the file plays back at its frame
rate; live frames arrive paced already. Frame timestamps are written relative to ``time_origin_ms`` (by
default the first frame's), so recordings start near 0; give several recordings of one session the same
origin so their timestamps stay comparable.

Serial number: given one, the recording carries it as a camera's would (``rs-record``) and plays only as that
camera; without one (``serial=None``) it carries none, as any bare software device writes, and plays as the
camera its file is named after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyrealsense2 as rs

from hardware_configs.schema import Intrinsics
from perception.cameras.base import Frame

logger = logging.getLogger(__name__)

_RS_DISTORTION = {
    "plumb_bob": rs.distortion.brown_conrady,
    "inverse_brown_conrady": rs.distortion.inverse_brown_conrady,
    "none": rs.distortion.none,
}
_IDENTITY_ROTATION = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
MAX_DEPTH_COUNTS = np.iinfo(np.uint16).max


class RecordingError(RuntimeError):
    pass


def intrinsics_to_rs(intr: Intrinsics) -> rs.intrinsics:
    out = rs.intrinsics()
    out.width, out.height = intr.width, intr.height
    out.fx, out.fy, out.ppx, out.ppy = intr.fx, intr.fy, intr.cx, intr.cy
    out.model = _RS_DISTORTION[intr.distortion_model]
    out.coeffs = (list(intr.distortion) + [0.0] * 5)[:5]
    return out


def depth_to_counts(depth_m: np.ndarray, depth_scale_m: float) -> np.ndarray:
    """Metres to Z16 counts (rounded); invalid, negative or out-of-range depth becomes 0 (no depth)."""
    counts = np.rint(np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0) / depth_scale_m)
    counts[(counts < 0) | (counts > MAX_DEPTH_COUNTS)] = 0
    return counts.astype(np.uint16)


class RecordingWriter:
    """A RealSense recording being written; ``write`` one aligned RGB-D frame at a time, then ``close``."""

    def __init__(
        self,
        path: str | Path,
        intrinsics: Intrinsics,
        serial: str | None = None,
        device_name: str = "Intel RealSense D435 (recorded)",
        depth_scale_m: float = 0.001,
        fps: int = 30,
        time_origin_ms: float | None = None,
        pace: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix != ".db3":
            raise RecordingError(f"{self.path}: librealsense writes ROS 2 sqlite bags; use a .db3 suffix")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; recordings are never overwritten")
        self.intrinsics, self.depth_scale_m, self.pace = intrinsics, depth_scale_m, pace
        self.time_origin_ms = time_origin_ms
        self.frames_written = 0
        self._host_start_s: float | None = None
        rs_intr = intrinsics_to_rs(intrinsics)
        self._device = rs.software_device()
        if serial is not None:  # a made-up serial would pass for a real camera's: none is written instead
            self._device.register_info(rs.camera_info.serial_number, serial)
        self._device.register_info(rs.camera_info.name, device_name)
        self._depth_sensor = self._device.add_sensor("Stereo Module")
        self._color_sensor = self._device.add_sensor("RGB Camera")
        self._depth_profile = self._depth_sensor.add_video_stream(
            self._stream(rs.stream.depth, 0, 2, rs.format.z16, fps, rs_intr)
        )
        self._color_profile = self._color_sensor.add_video_stream(
            self._stream(rs.stream.color, 1, 3, rs.format.rgb8, fps, rs_intr)
        )
        self._depth_sensor.add_read_only_option(rs.option.depth_units, depth_scale_m)
        identity = rs.extrinsics()
        identity.rotation, identity.translation = _IDENTITY_ROTATION, [0.0, 0.0, 0.0]
        self._depth_profile.register_extrinsics_to(self._color_profile, identity)
        self._device.create_matcher(rs.matchers.dlr_c)
        self._recorder = rs.recorder(str(self.path), self._device)
        self._syncer = rs.syncer()  # the sensors need a sink; the recorder records upstream of it
        self._depth_sensor.open(self._depth_profile)
        self._color_sensor.open(self._color_profile)
        self._depth_sensor.start(self._syncer)
        self._color_sensor.start(self._syncer)

    @staticmethod
    def _stream(kind: rs.stream, uid: int, bpp: int, fmt: rs.format, fps: int, intr: rs.intrinsics) -> rs.video_stream:
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid = kind, 0, uid
        stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = intr.width, intr.height, fps, bpp, fmt
        stream.intrinsics = intr
        return stream

    def write(self, frame: Frame) -> None:
        if self._recorder is None:
            raise RecordingError(f"{self.path}: writer is closed")
        h, w = self.intrinsics.height, self.intrinsics.width
        if frame.color.shape != (h, w, 3) or frame.depth_m.shape != (h, w) or frame.color.dtype != np.uint8:
            raise RecordingError(
                f"{self.path}: frame of camera {frame.camera} has colour {frame.color.shape} {frame.color.dtype} and "
                f"depth {frame.depth_m.shape}; the recording's intrinsics say {w}x{h} (colour uint8)"
            )
        if self.time_origin_ms is None:
            self.time_origin_ms = frame.device_time_ms
        stamp_ms = frame.device_time_ms - self.time_origin_ms
        if self.pace:
            self._wait_until(stamp_ms)
        depth = depth_to_counts(frame.depth_m, self.depth_scale_m)
        color = np.ascontiguousarray(frame.color)
        for sensor, profile, pixels, bpp in (
            (self._depth_sensor, self._depth_profile, depth, 2),
            (self._color_sensor, self._color_profile, color, 3),
        ):
            sw_frame = rs.software_video_frame()
            sw_frame.pixels, sw_frame.bpp, sw_frame.stride = pixels, bpp, w * bpp
            sw_frame.timestamp, sw_frame.domain = stamp_ms, rs.timestamp_domain.hardware_clock
            sw_frame.frame_number, sw_frame.profile = frame.frame_number, profile.as_video_stream_profile()
            if bpp == 2:
                sw_frame.depth_units = self.depth_scale_m
            sensor.on_video_frame(sw_frame)
        self._syncer.poll_for_frames()
        self.frames_written += 1

    def _wait_until(self, stamp_ms: float) -> None:
        now_s = time.monotonic()
        if self._host_start_s is None:
            self._host_start_s = now_s - stamp_ms / 1e3
        delay_s = self._host_start_s + stamp_ms / 1e3 - now_s
        if delay_s > 0:
            time.sleep(delay_s)

    def close(self) -> Path:
        """Stop the sensors and finish the file (the recorder writes its index when released)."""
        if self._recorder is not None:
            for sensor in (self._depth_sensor, self._color_sensor):
                sensor.stop()
                sensor.close()
            self._recorder = None
            self._syncer = None
            self._depth_sensor = self._color_sensor = None
            self._depth_profile = self._color_profile = None
            self._device = None
            if self.frames_written == 0:
                logger.warning("%s: recording closed without frames", self.path)
        return self.path

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_recording(
    frames: Iterable[Frame],
    intrinsics: Intrinsics,
    path: str | Path,
    *,
    serial: str | None = None,
    depth_scale_m: float = 0.001,
    fps: int = 30,
    time_origin_ms: float | None = None,
    pace: bool = True,
) -> Path:
    """Write aligned RGB-D frames of one camera to ``path`` (``.db3``); returns the path."""
    with RecordingWriter(
        path, intrinsics, serial=serial, depth_scale_m=depth_scale_m, fps=fps, time_origin_ms=time_origin_ms, pace=pace
    ) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def record_group(
    group,
    directory: str | Path,
    seconds: float,
    serials: dict[str, str] | None = None,
    depth_scale_m: float = 0.001,
    fps: int = 30,
) -> dict[str, Path]:
    """Record a started :class:`~perception.cameras.CameraGroup` into ``<directory>/<camera>.db3`` for ``seconds``.

    Every camera's file shares one time origin (the first frameset's), so the recordings play back in step.
    Returns the paths written. A camera that stalls ends the recording with its error (files are closed).
    """
    from perception.cameras import recording_path

    directory = Path(directory)
    writers: dict[str, RecordingWriter] = {}
    try:
        first = group.read(timeout_s=5.0)
        origin_ms = min(f.device_time_ms for f in first.frames.values())
        for name, camera in group.cameras.items():
            writers[name] = RecordingWriter(
                recording_path(directory, name),
                camera.intrinsics,
                serial=(serials or {}).get(name, camera.serial),
                depth_scale_m=depth_scale_m,
                fps=fps,
                time_origin_ms=origin_ms,
            )
        frameset, end_s = first, time.monotonic() + seconds
        while True:
            for name, frame in frameset.frames.items():
                writers[name].write(frame)
            if time.monotonic() >= end_s:
                break
            frameset = group.read(timeout_s=2.0)
    finally:
        for writer in writers.values():
            writer.close()
    logger.info("recorded %s", {name: w.frames_written for name, w in writers.items()})
    return {name: w.path for name, w in writers.items()}
