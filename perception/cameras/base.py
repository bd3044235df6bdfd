"""The one camera interface of the stack, the frame it delivers, and the reader thread every source shares.

A camera (live RealSense, a RealSense recording, the twin) owns one reader thread that pulls frames from
its source into a bounded ring buffer, so a slow consumer never blocks the device and a slow device never
blocks another camera. Reads are non-blocking snapshots of that buffer with a maximum age.

Clocks: ``device_time_ms`` is the source's frame timestamp (RealSense global time or the recording's time,
the twin's sim time): comparable across cameras and used to match framesets. ``host_time_s`` is
``time.monotonic()`` when the frame reached this process: used for ages and stall detection.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hardware_configs.schema import Intrinsics

logger = logging.getLogger(__name__)

DEFAULT_BUFFER_FRAMES = 8
DEFAULT_STALL_TIMEOUT_S = 0.5
STARTUP_TIMEOUT_S = 5.0  # a first frame may take seconds (USB negotiation, GL context and texture upload)
GRAB_TIMEOUT_S = 0.1
RECONNECT_INTERVAL_S = 0.25


class CameraError(RuntimeError):
    """Base of every camera fault; the message names the camera."""


class CameraNotFoundError(CameraError):
    """The requested device is not connected; the message lists what is."""


class StaleFrameError(CameraError):
    """No frame young enough: the camera is slow, stalled or not started."""


class CameraNotStartedError(CameraError):
    pass


class CameraFinishedError(CameraError):
    """The source has no more frames (a recording played to its end): not a stall, so nothing to reconnect.

    Kept apart from :class:`StaleFrameError` so that a consumer ends cleanly instead of waiting for frames that
    will never come; ``cameras`` names the finished cameras.
    """

    def __init__(self, message: str, cameras: list[str] | None = None) -> None:
        super().__init__(message)
        self.cameras = cameras or []


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera frame, the stack's only one (drivers, recordings, the twin, ROS framesets, calibration, KAGI).

    ``color``: RGB uint8 (H, W, 3). ``depth_m``: float32 metres (H, W) aligned to colour, 0 = no depth; None when
    the source delivered colour only. ``intrinsics``: of the delivered images (OpenCV convention), when known.
    ``T_parent_optical``: 4x4 pose of the optical frame (x right, y down, z forward) in ``parent_frame`` (``base``
    for static cameras, ``flange`` for wrist ones), when known. ``segmentation``: (H, W, 2) int32 (object id,
    object type) per pixel, -1 for none: the twin's (MuJoCo's) only.
    """

    camera: str
    color: np.ndarray
    depth_m: np.ndarray | None
    device_time_ms: float
    host_time_s: float = 0.0
    frame_number: int = 0
    intrinsics: Intrinsics | None = None
    T_parent_optical: np.ndarray | None = None
    parent_frame: str | None = None
    segmentation: np.ndarray | None = None

    @property
    def rgb(self) -> np.ndarray:
        return self.color

    @property
    def stamp_s(self) -> float:
        """``device_time_ms`` in seconds (the stamp a ROS message of this frame carries)."""
        return self.device_time_ms * 1e-3

    def age_s(self, now_s: float | None = None) -> float:
        return (time.monotonic() if now_s is None else now_s) - self.host_time_s


class CameraStatus(str, enum.Enum):
    stopped = "stopped"
    starting = "starting"
    streaming = "streaming"
    stalled = "stalled"
    finished = "finished"  # the source ended (a recording without loop); the reader thread has stopped


@runtime_checkable
class Camera(Protocol):
    """What the rest of the stack sees of a camera, whatever its source."""

    @property
    def name(self) -> str: ...

    @property
    def serial(self) -> str: ...

    @property
    def intrinsics(self) -> Intrinsics:
        """Colour intrinsics (OpenCV convention: pixel centres at integer coordinates) of delivered frames."""
        ...

    @property
    def status(self) -> CameraStatus: ...

    def start(self) -> None:
        """Open the source and start the reader thread; raises the source's error if it cannot open."""
        ...

    def stop(self) -> None: ...

    def read_latest(self, max_age_s: float = 0.1) -> Frame:
        """Newest frame, if younger than ``max_age_s``; else :class:`StaleFrameError`. Never blocks on the device."""
        ...

    def recent_frames(self) -> list[Frame]:
        """Snapshot of the ring buffer, oldest first (for time matching across cameras)."""
        ...

    def last_frame_host_time_s(self) -> float | None: ...

    def wait_for_frame(self, after_host_time_s: float, timeout_s: float) -> bool:
        """Block until a frame newer than ``after_host_time_s`` is buffered; ``False`` on timeout."""
        ...


class StreamingCamera(ABC):
    """Reader thread + ring buffer + stall detection + reconnection; subclasses supply the source.

    Subclasses implement ``_open`` (called in the reader thread, so GL or USB contexts belong to it),
    ``_grab`` (at most ``timeout_s`` blocking, ``None`` when nothing came), ``_close`` and optionally
    ``_reconnect``. A source that delivers nothing for ``stall_timeout_s`` is marked stalled (and logged
    once by name); the thread then calls ``_reconnect`` every ``RECONNECT_INTERVAL_S`` until frames return.
    The first frame gets ``STARTUP_TIMEOUT_S``. A source that has ended raises :class:`CameraFinishedError`
    from ``_grab``: the camera is then ``finished`` (kept frames stay readable) and its thread ends.
    """

    def __init__(
        self,
        name: str,
        serial: str,
        buffer_frames: int = DEFAULT_BUFFER_FRAMES,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
    ) -> None:
        if buffer_frames < 1:
            raise ValueError(f"camera {name}: buffer_frames must be >= 1, got {buffer_frames}")
        if not stall_timeout_s > 0:
            raise ValueError(f"camera {name}: stall_timeout_s must be > 0, got {stall_timeout_s}")
        self._name, self._serial = name, serial
        self.stall_timeout_s = stall_timeout_s
        self._buffer: deque[Frame] = deque(maxlen=buffer_frames)
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self._status = CameraStatus.stopped
        self._last_host_time_s: float | None = None
        self._started_host_time_s = 0.0
        self.reconnects = 0
        self.stalls = 0
        self.frames_received = 0

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _grab(self, timeout_s: float) -> Frame | None: ...

    @abstractmethod
    def _close(self) -> None: ...

    def _reconnect(self) -> None:
        """Default: close and open again. Raise :class:`CameraError` if the device is not back yet."""
        self._close()
        self._open()

    # ------------------------------------------------------------------ Camera protocol
    @property
    def name(self) -> str:
        return self._name

    @property
    def serial(self) -> str:
        return self._serial

    @property
    @abstractmethod
    def intrinsics(self) -> Intrinsics: ...

    @property
    def status(self) -> CameraStatus:
        return self._status

    def start(self, timeout_s: float = 10.0) -> None:
        if self._thread is not None:
            raise CameraError(f"camera {self.name} is already started")
        self._stop_event.clear()
        self._opened.clear()
        self._open_error = None
        self._status = CameraStatus.starting
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        if not self._opened.wait(timeout_s):
            self.stop()
            raise CameraError(f"camera {self.name}: source did not open within {timeout_s} s")
        if self._open_error is not None:
            error = self._open_error
            self.stop()
            raise error

    def stop(self) -> None:
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                logger.warning("camera %s: reader thread did not stop within 5 s", self.name)
        self._thread = None
        self._status = CameraStatus.stopped
        with self._lock:
            self._buffer.clear()
            self._new_frame.notify_all()

    def read_latest(self, max_age_s: float = 0.1) -> Frame:
        with self._lock:
            frame = self._buffer[-1] if self._buffer else None
        if self._status is CameraStatus.finished and (frame is None or frame.age_s() > max_age_s):
            raise CameraFinishedError(
                f"camera {self.name}: the source has no more frames (finished after {self.frames_received} frames)",
                [self.name],
            )
        if frame is None:
            raise StaleFrameError(f"camera {self.name}: no frame yet (status {self._status.value})")
        age_s = frame.age_s()
        if age_s > max_age_s:
            raise StaleFrameError(
                f"camera {self.name}: newest frame is {age_s * 1e3:.0f} ms old (max {max_age_s * 1e3:.0f} ms, "
                f"status {self._status.value})"
            )
        return frame

    def recent_frames(self) -> list[Frame]:
        with self._lock:
            return list(self._buffer)

    def last_frame_host_time_s(self) -> float | None:
        return self._last_host_time_s

    def wait_for_frame(self, after_host_time_s: float, timeout_s: float) -> bool:
        """Block until a frame newer than ``after_host_time_s`` is buffered (used by groups and tests).

        Returns ``False`` at once when the source has finished: no newer frame can come.
        """
        deadline = time.monotonic() + timeout_s
        with self._new_frame:
            while not (self._buffer and self._buffer[-1].host_time_s > after_host_time_s):
                if self._status is CameraStatus.finished:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._new_frame.wait(remaining):
                    return bool(self._buffer and self._buffer[-1].host_time_s > after_host_time_s)
        return True

    def __enter__(self) -> StreamingCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ reader thread
    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # reported to start()'s caller, in its thread
            self._open_error = exc
            self._opened.set()
            return
        self._started_host_time_s = time.monotonic()
        self._status = CameraStatus.streaming
        self._opened.set()
        last_attempt_s = 0.0
        try:
            while not self._stop_event.is_set():
                try:
                    frame = self._grab(GRAB_TIMEOUT_S)
                except CameraFinishedError as exc:
                    self._finish(exc)
                    return
                now_s = time.monotonic()
                if frame is not None:
                    self._push(frame)
                    continue
                if self._last_host_time_s is None:
                    silent_since_s, allowed_s = self._started_host_time_s, STARTUP_TIMEOUT_S
                else:
                    silent_since_s, allowed_s = self._last_host_time_s, self.stall_timeout_s
                if now_s - silent_since_s < allowed_s:
                    continue
                if self._status is not CameraStatus.stalled:
                    self._status = CameraStatus.stalled
                    self.stalls += 1
                    logger.warning(
                        "camera %s (%s): no frame for %.2f s, reconnecting",
                        self.name,
                        self.serial,
                        now_s - silent_since_s,
                    )
                if now_s - last_attempt_s >= RECONNECT_INTERVAL_S:
                    last_attempt_s = now_s
                    try:
                        self._reconnect()
                    except CameraError as exc:
                        logger.debug("camera %s: reconnect failed: %s", self.name, exc)
        finally:
            try:
                self._close()
            except Exception:
                logger.exception("camera %s: error while closing", self.name)

    def _finish(self, exc: CameraFinishedError) -> None:
        """The source ended: say so once, wake every waiter (no frame will come), keep the frames read."""
        with self._new_frame:
            self._status = CameraStatus.finished
            self._new_frame.notify_all()
        logger.info("camera %s (%s): finished after %d frames: %s", self.name, self.serial, self.frames_received, exc)

    def _push(self, frame: Frame) -> None:
        with self._new_frame:
            last = self._buffer[-1] if self._buffer else None
            if last is not None and (last.frame_number, last.device_time_ms) == (
                frame.frame_number,
                frame.device_time_ms,
            ):
                return  # delivered twice (a playback restarted at its first frame): keep one
            if self._buffer and frame.device_time_ms < self._buffer[-1].device_time_ms:
                self._buffer.clear()  # the device clock restarted (reconnect, looping file): old frames don't compare
            self._buffer.append(frame)
            self._last_host_time_s = frame.host_time_s
            self.frames_received += 1
            came_back = self._status is CameraStatus.stalled
            self._status = CameraStatus.streaming  # before waiters wake: they see the state the frame implies
            if came_back:
                self.reconnects += 1
            self._new_frame.notify_all()
        if came_back:
            logger.warning("camera %s (%s): frames are back", self.name, self.serial)
