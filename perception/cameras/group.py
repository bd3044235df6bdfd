"""Several cameras read as one: time-matched framesets, a watchdog that names the camera that stopped.

Each camera keeps its own reader thread and ring buffer (see :mod:`perception.cameras.base`), so the group
only reads snapshots: a slow or dead camera delays nobody's capture. A frameset takes the newest frame of
the camera that is furthest behind as the reference and, from every other camera's buffer, the frame
nearest to it in device time; the spread of the chosen timestamps is the reported skew. Device timestamps
must share a clock: RealSense global time (the live camera enables it), one recording session, or sim time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from perception.cameras.base import (
    DEFAULT_STALL_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    Camera,
    CameraError,
    CameraFinishedError,
    CameraStatus,
    Frame,
    StaleFrameError,
)

logger = logging.getLogger(__name__)

WATCHDOG_PERIOD_S = 0.05


class CameraStalledError(CameraError):
    """One or more cameras delivered nothing for the stall timeout; ``cameras`` names them."""

    def __init__(self, cameras: list[str], detail: str) -> None:
        super().__init__(f"camera(s) {', '.join(cameras)} stalled: {detail}")
        self.cameras = cameras


class FramesetSkewError(CameraError):
    """No set of buffered frames matched within the tolerance before the timeout."""


@dataclass(frozen=True)
class SyncedFrameset:
    """One frame per camera, matched in device time; ``skew_ms`` is max minus min of their timestamps."""

    frames: Mapping[str, Frame]
    reference_time_ms: float
    skew_ms: float

    def __getitem__(self, camera: str) -> Frame:
        return self.frames[camera]

    @property
    def oldest_host_time_s(self) -> float:
        return min(f.host_time_s for f in self.frames.values())


@dataclass(frozen=True)
class CameraEvent:
    """A change in a camera's health as the watchdog saw it (``kind``: stalled, recovered or finished)."""

    camera: str
    kind: str
    host_time_s: float
    silent_s: float


class CameraGroup:
    """Start, stop, watch and time-match a set of cameras.

    ``tolerance_ms`` is the largest skew a frameset may have (default: half the frame period at 30 fps).
    A camera is stalled after ``stall_timeout_s`` without a frame (``startup_timeout_s`` before its first);
    a camera whose source ended (a recording played to its end) is finished, never stalled.
    ``on_event`` is called from the watchdog thread for every :class:`CameraEvent`.
    """

    def __init__(
        self,
        cameras: Iterable[Camera],
        tolerance_ms: float = 17.0,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        on_event: Callable[[CameraEvent], None] | None = None,
    ) -> None:
        self.cameras: dict[str, Camera] = {}
        for cam in cameras:
            if cam.name in self.cameras:
                raise ValueError(f"camera names in a group must be unique; {cam.name!r} is repeated")
            self.cameras[cam.name] = cam
        if not self.cameras:
            raise ValueError("a camera group needs at least one camera")
        if not tolerance_ms >= 0:
            raise ValueError(f"tolerance_ms must be >= 0, got {tolerance_ms}")
        self.tolerance_ms = tolerance_ms
        self.stall_timeout_s, self.startup_timeout_s = stall_timeout_s, startup_timeout_s
        self.on_event = on_event
        self.events: deque[CameraEvent] = deque(maxlen=256)
        self._stalled: set[str] = set()
        self._finished: set[str] = set()
        self._last_reference_ms: float | None = None
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()
        self._started_s = 0.0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start every camera (all or none: a failure stops those already started) and the watchdog."""
        started: list[Camera] = []
        self._started_s = time.monotonic()
        self._finished.clear()
        try:
            for cam in self.cameras.values():
                cam.start()
                started.append(cam)
        except BaseException:
            for cam in started:
                cam.stop()
            raise
        self._stop.clear()
        self._watchdog = threading.Thread(target=self._watch, name="camera-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2.0)
            self._watchdog = None
        for cam in self.cameras.values():
            cam.stop()

    def __enter__(self) -> CameraGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stalled(self) -> list[str]:
        return sorted(self._stalled)

    @property
    def finished(self) -> list[str]:
        """Cameras whose source has ended (read from the cameras, so it holds before the watchdog's next look)."""
        return sorted(name for name, cam in self.cameras.items() if cam.status is CameraStatus.finished)

    # ------------------------------------------------------------------ reading
    def read(self, max_age_s: float = 0.2, timeout_s: float = 1.0, new_only: bool = True) -> SyncedFrameset:
        """The newest time-matched frameset (one not returned before, with ``new_only``).

        Raises :class:`CameraStalledError` at once if a camera is stalled, :class:`CameraFinishedError` once a
        frameset would need a new frame from a camera whose source has ended (the group is done, not broken),
        :class:`StaleFrameError` if a camera's frames are older than ``max_age_s``, :class:`FramesetSkewError`
        if nothing matched in time.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            stalled = self._stalled - set(self.finished)
            if stalled:
                raise CameraStalledError(sorted(stalled), f"no frame for more than {self.stall_timeout_s} s")
            result, waiting_on, problem = self._match(max_age_s, new_only)
            if result is not None:
                self._last_reference_ms = result.reference_time_ms
                return result
            finished = self.finished
            remaining = deadline - time.monotonic()
            if finished and (waiting_on in finished or remaining <= 0):
                raise CameraFinishedError(
                    f"camera(s) {', '.join(finished)} finished: their source has no more "
                    f"frames, so no new frameset can be matched",
                    finished,
                )
            if remaining <= 0:
                if problem == "stale":
                    raise StaleFrameError(f"camera {waiting_on}: no frame younger than {max_age_s * 1e3:.0f} ms")
                raise FramesetSkewError(f"no frameset within {self.tolerance_ms} ms after {timeout_s} s ({problem})")
            cam = self.cameras[waiting_on]
            cam.wait_for_frame(cam.last_frame_host_time_s() or 0.0, min(remaining, WATCHDOG_PERIOD_S))

    def _match(self, max_age_s: float, new_only: bool) -> tuple[SyncedFrameset | None, str, str]:
        """Try once; on failure return the camera to wait on and why."""
        now_s = time.monotonic()
        buffers = {name: cam.recent_frames() for name, cam in self.cameras.items()}
        for name, frames in buffers.items():
            if not frames or now_s - frames[-1].host_time_s > max_age_s:
                return None, name, "stale"
        behind = min(buffers, key=lambda n: buffers[n][-1].device_time_ms)
        reference_ms = buffers[behind][-1].device_time_ms
        last_ms = self._last_reference_ms
        # An older reference is a repeat, unless it is far older: the clocks restarted (reconnect, looping file).
        if new_only and last_ms is not None and last_ms - 1e3 * self.stall_timeout_s <= reference_ms <= last_ms:
            return None, behind, "waiting for a new frame"
        chosen = {n: min(frames, key=lambda f: abs(f.device_time_ms - reference_ms)) for n, frames in buffers.items()}
        times = [f.device_time_ms for f in chosen.values()]
        skew_ms = max(times) - min(times)
        if skew_ms > self.tolerance_ms:
            return None, behind, f"skew {skew_ms:.1f} ms"
        if any(now_s - f.host_time_s > max_age_s for f in chosen.values()):
            return None, behind, "stale"
        return SyncedFrameset(chosen, reference_ms, skew_ms), behind, ""

    # ------------------------------------------------------------------ watchdog
    def _watch(self) -> None:
        while not self._stop.wait(WATCHDOG_PERIOD_S):
            now_s = time.monotonic()
            for name, cam in self.cameras.items():
                if cam.status is CameraStatus.finished:
                    if name not in self._finished:
                        self._finished.add(name)
                        self._stalled.discard(name)
                        silent_s = now_s - (cam.last_frame_host_time_s() or now_s)
                        self._emit(CameraEvent(name, "finished", now_s, silent_s))
                    continue
                last_s = cam.last_frame_host_time_s()
                if last_s is None or last_s < self._started_s:  # no frame yet: allow for a slow first one
                    silent_s, allowed_s = now_s - self._started_s, self.startup_timeout_s
                else:
                    silent_s, allowed_s = now_s - last_s, self.stall_timeout_s
                if silent_s > allowed_s and name not in self._stalled:
                    self._stalled.add(name)
                    self._emit(CameraEvent(name, "stalled", now_s, silent_s))
                elif silent_s <= allowed_s and name in self._stalled:
                    self._stalled.discard(name)
                    self._emit(CameraEvent(name, "recovered", now_s, silent_s))

    def _emit(self, event: CameraEvent) -> None:
        self.events.append(event)
        log = logger.warning if event.kind == "stalled" else logger.info
        log("camera %s %s (silent %.2f s)", event.camera, event.kind, event.silent_s)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                logger.exception("camera event callback failed for %s", event)
