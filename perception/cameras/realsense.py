"""RealSense cameras through ``rs.pipeline``: a live device by serial, or a recording played back.

Both go through the same code after the pipeline starts (:class:`AlignedPipeline`): wait for a frameset,
align depth to colour with ``rs.align``, convert to a :class:`Frame` (RGB uint8, depth float32 metres).
Live cameras take their colour and depth profiles from the cell file and read the intrinsics back from the
device (the factory calibration, not the file's copy). A live camera can be given an ``rs.context`` with
recordings loaded into it (``context.load_device``): the pipeline then resolves the serial exactly as it
does for a USB device, which is how the tests exercise the live path without a camera.

Recordings come from whatever wrote them: ``rs-record`` stores the camera's serial number, a software device
(``perception.recording``, or other tools) may store none. A recording plays as the camera its file is named
after; where the cell names that camera's serial, a recording of another serial is refused, and one without a
serial is played with a logged note.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyrealsense2 as rs

from hardware_configs.schema import CameraConfig, Intrinsics
from perception.cameras.base import (
    DEFAULT_BUFFER_FRAMES,
    DEFAULT_STALL_TIMEOUT_S,
    CameraError,
    CameraFinishedError,
    CameraNotFoundError,
    Frame,
    StreamingCamera,
)

logger = logging.getLogger(__name__)

RESUME_JOIN_TIMEOUT_S = 2.0

_DISTORTION_NAMES = {
    rs.distortion.brown_conrady: "plumb_bob",
    rs.distortion.inverse_brown_conrady: "inverse_brown_conrady",
    rs.distortion.none: "none",
}


class HardwareSync(str, enum.Enum):
    """``inter_cam_sync_mode`` of the depth sensor: one master drives the others' exposure over the sync cable."""

    off = "off"
    master = "master"
    slave = "slave"

    @property
    def option_value(self) -> float:
        return {"off": 0.0, "master": 1.0, "slave": 2.0}[self.value]


class RecordingMismatchError(CameraError):
    """A recording holds another camera's serial number than the one it would be played as."""


def device_serial(device: rs.device) -> str | None:
    """The device's serial number; ``None`` for a recording written without one (a software device's)."""
    if not device.supports(rs.camera_info.serial_number):
        return None
    return device.get_info(rs.camera_info.serial_number)


def connected_serials(context: rs.context | None = None) -> list[str]:
    """Serial numbers of the RealSense devices the context sees (USB devices and loaded recordings).

    A loaded recording without a serial number cannot be asked for by serial, so it is not listed.
    """
    context = context or rs.context()
    return sorted(s for s in map(device_serial, context.query_devices()) if s is not None)


def intrinsics_from_rs(intr: rs.intrinsics) -> Intrinsics:
    """librealsense intrinsics (pixel centres at integer coordinates, like OpenCV) as the cell schema's model."""
    return Intrinsics(
        width=intr.width,
        height=intr.height,
        fx=intr.fx,
        fy=intr.fy,
        cx=intr.ppx,
        cy=intr.ppy,
        distortion_model=_DISTORTION_NAMES.get(intr.model, "plumb_bob"),
        distortion=[float(c) for c in intr.coeffs],
    )


@dataclass
class AlignedPipeline:
    """A started pipeline plus the align block: the decode/align/convert path shared by live and playback."""

    camera: str
    pipeline: rs.pipeline
    profile: rs.pipeline_profile
    depth_scale_m: float
    intrinsics: Intrinsics
    align: rs.align
    resumer: threading.Thread | None = field(default=None, repr=False)  # a playback's start (open_recording)

    @classmethod
    def start(cls, camera: str, pipeline: rs.pipeline, config: rs.config) -> AlignedPipeline:
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise CameraError(f"camera {camera}: pipeline did not start: {exc}") from exc
        color = profile.get_stream(rs.stream.color).as_video_stream_profile()
        depth_sensor = profile.get_device().first_depth_sensor()
        return cls(
            camera,
            pipeline,
            profile,
            float(depth_sensor.get_depth_scale()),
            intrinsics_from_rs(color.get_intrinsics()),
            rs.align(rs.stream.color),
        )

    def grab(self, timeout_s: float) -> Frame | None:
        """Wait (at most ``timeout_s``), align, convert: the whole path a camera's reader thread runs."""
        frameset = self.wait(timeout_s)
        if frameset is None:
            return None
        host_time_s = time.monotonic()
        return self.convert(self.align.process(frameset), host_time_s)

    def wait(self, timeout_s: float) -> rs.composite_frame | None:
        ok, frameset = self.pipeline.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        return frameset if ok else None

    def convert(self, aligned: rs.composite_frame, host_time_s: float) -> Frame | None:
        """An aligned frameset as a :class:`Frame` (copies: librealsense recycles its buffers)."""
        color, depth = aligned.get_color_frame(), aligned.get_depth_frame()
        if not color or not depth:
            logger.debug("camera %s: frameset without colour or depth, skipped", self.camera)
            return None
        depth_m = np.asanyarray(depth.get_data()).astype(np.float32)
        depth_m *= np.float32(self.depth_scale_m)
        return Frame(
            camera=self.camera,
            color=np.array(color.get_data(), dtype=np.uint8, copy=True),
            depth_m=depth_m,
            device_time_ms=float(color.get_timestamp()),
            host_time_s=host_time_s,
            frame_number=int(color.get_frame_number()),
        )

    def stop(self) -> None:
        try:
            self.pipeline.stop()
        except RuntimeError as exc:  # already stopped, or the device is gone
            logger.debug("camera %s: pipeline stop: %s", self.camera, exc)
        if self.resumer is not None:
            self.resumer.join(timeout=RESUME_JOIN_TIMEOUT_S)


def open_recording(path: str | Path, camera: str, real_time: bool = True, loop: bool = True) -> AlignedPipeline:
    """A recording started through ``rs.pipeline`` (as a camera's would be), ready for :meth:`AlignedPipeline.grab`.

    ``real_time=False`` delivers every frame, in order, as fast as it is read: the playback waits for the reader.
    The file plays from its first frame once every stream is started, so no leading frame is lost.
    """
    config = rs.config()
    config.enable_device_from_file(str(path), repeat_playback=loop)
    pipeline = rs.pipeline()
    try:
        # start() takes the device resolve() cached, so it can be set up before it plays: the mode, and paused.
        playback = config.resolve(pipeline).get_device().as_playback()
    except RuntimeError as exc:
        raise CameraError(f"camera {camera}: recording {path} did not open: {exc}") from exc
    # Why the order matters (each of these lost a file's first frames, more often on a loaded machine):
    # - the mode is set before the start: started in real time, the file plays into the pipeline's one-frameset
    #   queue, where each unread frameset replaces the last, and a switch afterwards comes too late for a short
    #   file that has already ended;
    # - the playback reads as soon as its first sensor starts, so frames read before the other sensor has
    #   started are dropped, and no frameset forms until both streams flow (up to 5 leading frames were lost).
    #   Started paused, it reads at most one item; rewound once every sensor runs, it plays the whole file;
    # - resume() returns once the playback has handed on its first frames, and in non-real-time mode that waits
    #   for a reader to take them: called before anyone reads, it stalled for librealsense's 10 s flush timeout
    #   (the playback start that "rarely took over 10 s"). So it runs in a helper thread while the caller reads.
    playback.set_real_time(real_time)
    playback.pause()
    stream = AlignedPipeline.start(camera, pipeline, config)
    playback.seek(timedelta(0))
    stream.resumer = threading.Thread(target=playback.resume, name=f"playback-resume-{camera}", daemon=True)
    stream.resumer.start()
    return stream


class RealSenseCamera(StreamingCamera):
    """A live RealSense found by serial, streaming the cell file's profile, depth aligned to colour.

    ``depth_size`` is the depth stream's (width, height) when it differs from colour (a D435 streams
    848x480 depth); ``hardware_sync`` sets ``inter_cam_sync_mode`` where the device supports it.
    """

    def __init__(
        self,
        config: CameraConfig,
        context: rs.context | None = None,
        depth_size: tuple[int, int] | None = None,
        hardware_sync: HardwareSync = HardwareSync.off,
        buffer_frames: int = DEFAULT_BUFFER_FRAMES,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
    ) -> None:
        super().__init__(config.name, config.serial, buffer_frames, stall_timeout_s)
        self.config = config
        self._context = context
        self.depth_size = depth_size or (config.intrinsics.width, config.intrinsics.height)
        self.hardware_sync = HardwareSync(hardware_sync)
        self._stream: AlignedPipeline | None = None
        self._device_intrinsics: Intrinsics | None = None

    @property
    def intrinsics(self) -> Intrinsics:
        """The device's factory colour intrinsics once started; the cell file's before."""
        return self._device_intrinsics or self.config.intrinsics

    def _open(self) -> None:
        context = self._context or rs.context()
        found = connected_serials(context)
        if self.serial not in found:
            unnamed = sum(device_serial(dev) is None for dev in context.query_devices())
            also = f" and {unnamed} device(s) without a serial number (recordings play by file)" if unnamed else ""
            raise CameraNotFoundError(
                f"camera {self.name}: no RealSense with serial {self.serial} is connected; "
                f"found {found or 'none'}{also} (check the cable, or the serial in the cell file)"
            )
        intr = self.config.intrinsics
        config = rs.config()
        config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, intr.width, intr.height, rs.format.rgb8, self.config.fps)
        config.enable_stream(rs.stream.depth, self.depth_size[0], self.depth_size[1], rs.format.z16, self.config.fps)
        self._stream = AlignedPipeline.start(self.name, rs.pipeline(context), config)
        self._configure_device(self._stream.profile.get_device())
        self._device_intrinsics = self._stream.intrinsics

    def _configure_device(self, device: rs.device) -> None:
        """Global time (device clocks mapped to the host's, so cameras compare) and the sync role."""
        if device.is_playback():
            return  # recorded devices have read-only options
        for sensor in device.query_sensors():
            if sensor.supports(rs.option.global_time_enabled):
                sensor.set_option(rs.option.global_time_enabled, 1.0)
        depth_sensor = device.first_depth_sensor()
        if self.hardware_sync is not HardwareSync.off:
            if not depth_sensor.supports(rs.option.inter_cam_sync_mode):
                raise CameraError(f"camera {self.name} ({self.serial}) does not support hardware sync")
            depth_sensor.set_option(rs.option.inter_cam_sync_mode, self.hardware_sync.option_value)

    def _grab(self, timeout_s: float) -> Frame | None:
        if self._stream is None:
            time.sleep(timeout_s)
            return None
        try:
            return self._stream.grab(timeout_s)
        except RuntimeError as exc:  # device unplugged mid-stream
            logger.debug("camera %s: %s", self.name, exc)
            return None

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None


class PlaybackSync:
    """Starts the recordings of one session in step.

    Each file's clock starts when its pipeline does, and pipelines start one after another (hundreds of
    milliseconds apart on a busy machine), so their timestamps would drift apart by the start delays. When the
    last of ``n`` cameras has opened, every playback is paused, rewound and resumed together.
    """

    def __init__(self, n: int) -> None:
        self._n = n
        self._playbacks: list[rs.playback] = []
        self._lock = threading.Lock()

    def register(self, playback: rs.playback) -> None:
        with self._lock:
            self._playbacks.append(playback)
            if len(self._playbacks) != self._n:
                return
            # A camera stopped meanwhile has no playback to rewind (and operating on it would block).
            live = [p for p in self._playbacks if p.current_status() != rs.playback_status.stopped]
            self._playbacks.clear()  # a later restart of all of them syncs again
            for p in live:
                p.pause()
            for p in live:
                p.seek(timedelta(0))
            for p in live:
                p.resume()


class RealSensePlaybackCamera(StreamingCamera):
    """A RealSense recording (``.db3`` from :mod:`perception.recording` or ``rs-record``) played through the
    same pipeline, decode and align as a live camera.

    ``real_time=False`` delivers every frame, as fast as it is read (tests, benchmarks); ``loop`` restarts at
    the end, else the camera becomes ``finished`` there (:class:`CameraFinishedError`, not a stall).
    ``pause()``/``resume()`` stop and restart delivery, as a camera that hangs and comes back. Cameras sharing
    a :class:`PlaybackSync` start their recordings in step.

    ``serial`` is the serial number the camera has in the cell: a recording of another serial is refused
    (:class:`RecordingMismatchError`), so one camera's file never plays as another; a recording without a serial
    (written by a software device) is played as ``name`` with a logged note, and its ``serial`` stays empty.
    """

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        real_time: bool = True,
        loop: bool = True,
        buffer_frames: int = DEFAULT_BUFFER_FRAMES,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        sync: PlaybackSync | None = None,
        serial: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no RealSense recording at {self.path}")
        super().__init__(name or self.path.stem, "", buffer_frames, stall_timeout_s)
        self.real_time, self.loop, self.sync = real_time, loop, sync
        self.expected_serial = serial
        self._played = False  # the playback was seen running: only then does a stopped playback mean its end
        self._stream: AlignedPipeline | None = None
        self._playback: rs.playback | None = None
        self._paused = False
        self._paused_at_s: float | None = None

    @property
    def intrinsics(self) -> Intrinsics:
        if self._stream is None:
            raise CameraError(f"camera {self.name}: intrinsics are read from the recording; start the camera first")
        return self._stream.intrinsics

    def _open(self) -> None:
        self._stream = open_recording(self.path, self.name, self.real_time, self.loop)
        device = self._stream.profile.get_device()
        try:
            self._serial = self._check_serial(device_serial(device))
        except RecordingMismatchError:
            self._stream.stop()
            self._stream = None
            raise
        self._playback = device.as_playback()
        self._played = False
        if self.sync is not None:
            if self._stream.resumer is not None:  # the sync pauses, rewinds and resumes every file after this one
                self._stream.resumer.join(timeout=RESUME_JOIN_TIMEOUT_S)
            self.sync.register(self._playback)

    def _check_serial(self, recorded: str | None) -> str:
        if recorded is None:
            logger.info(
                "camera %s: recording %s has no serial number (a software device wrote it); played as %s "
                "by its file name",
                self.name,
                self.path,
                self.name,
            )
            return ""
        if self.expected_serial and recorded != self.expected_serial:
            raise RecordingMismatchError(
                f"camera {self.name}: recording {self.path} is of the camera with serial {recorded}, but {self.name} "
                f"has serial {self.expected_serial} in the cell; refusing to play another camera's recording as "
                f"{self.name} (check the file's name, or the serial in the cell file)"
            )
        return recorded

    def _reconnect(self) -> None:
        """A file cannot be unplugged: a paused playback is waited for, not reopened."""

    def _grab(self, timeout_s: float) -> Frame | None:
        if self._stream is None or self._paused:
            time.sleep(timeout_s)
            return None
        frame = self._stream.grab(timeout_s)
        if frame is not None:
            self._played = True
            return frame
        status = self._playback.current_status() if self._playback is not None else None
        if status is not None and status != rs.playback_status.stopped:
            self._played = True
        elif self._played and not self.loop:
            # Nothing came, the queue is drained and the playback stopped after running: the file has ended.
            raise CameraFinishedError(f"camera {self.name}: recording {self.path} played to its end", [self.name])
        return None

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
        self._stream = self._playback = None

    def pause(self) -> None:
        """Stop delivering, as a camera that hangs: the recording's clock keeps running meanwhile."""
        self._paused = True
        self._paused_at_s = time.monotonic()
        if self._playback is not None:
            self._playback.pause()

    def resume(self) -> None:
        """Deliver again from where a camera that had kept running would be (the frames in between are lost)."""
        if self._playback is not None:
            if self.real_time and self._paused_at_s is not None:
                skipped_ns = int((time.monotonic() - self._paused_at_s) * 1e9)
                position_ns = self._playback.get_position() + skipped_ns
                if position_ns < self._playback.get_duration().total_seconds() * 1e9:
                    self._playback.seek(timedelta(microseconds=position_ns / 1e3))
            self._playback.resume()
        self._paused_at_s = None
        self._paused = False
