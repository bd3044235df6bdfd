"""RealSense recordings of a cell's cameras played through the live perception path, and what it saw.

The same code as live cameras, stage by stage: :class:`RealSensePlaybackCamera` (the ``rs.pipeline``, decode and
``rs.align`` of a live camera, one reader thread and ring buffer each), a :class:`CameraGroup` matching framesets
in device time, :class:`PointCloudFuser` (deprojection, workspace crop, voxel downsampling, the cell's
extrinsics) and :class:`ObjectStateEstimator` (each task object's pose). Intrinsics are read from the recordings,
as a live camera reads its factory calibration.

``real_time=False`` (the default) plays every frame as fast as it decodes into ring buffers that hold the whole
(short) file, then matches every frameset in time order by the group's rule: nothing is skipped, whatever this
machine's load. ``real_time=True`` plays the files at their frame rate through ``PlaybackSync``, as cameras
deliver: a frameset that arrives while the previous one is still being fused is skipped and counted, as it would
be live. On a loaded 2-core machine the synced start is the known weak spot (files playing ~100 ms apart, so no
frameset within 17 ms forms; see tests/perception/conftest.py): the report then says so.

A wrist camera is fused only with ``T_base_flange`` (a recording holds no arm pose); without it, it is matched
into framesets and reported but left out of the cloud.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hardware_configs.schema import CameraMount, CellConfig, Intrinsics, TaskConfig
from perception.cameras import CameraGroup, CameraStalledError, FramesetSkewError, SyncedFrameset, recording_path
from perception.cameras.base import CameraFinishedError, Frame, StaleFrameError
from perception.cameras.realsense import PlaybackSync, RealSensePlaybackCamera
from perception.object_state import EstimatorParams, ObjectEstimate, ObjectStateEstimator
from perception.pointcloud import DEFAULT_VOXEL_M, FusedCloud, PointCloudFuser

log = logging.getLogger(__name__)

EVERY_FRAME_MAX = 150  # frames per camera kept when every frame is played (real_time=False): 5 s at 30 fps
# A file cannot be unplugged: a playback that pauses is this machine being busy, so it is given longer than a
# live camera (0.5 s) before it counts as stalled; stalls are reported, and reading goes on while frames come.
PLAYBACK_STALL_TIMEOUT_S = 2.0


@dataclass
class FramesetResult:
    """One frameset through the whole path: the matched frames, the fused cloud, the object estimates."""

    index: int
    frameset: SyncedFrameset
    cloud: FusedCloud
    estimates: dict[str, ObjectEstimate]
    seconds: float


@dataclass
class ReplayReport:
    directory: Path
    cameras: list[str]
    fused_cameras: list[str]
    real_time: bool
    framesets: int = 0
    skews_ms: list[float] = field(default_factory=list)
    frames_in_file: dict[str, int | None] = field(default_factory=dict)
    frames_received: dict[str, int] = field(default_factory=dict)
    frames_used: dict[str, int] = field(default_factory=dict)
    cloud_points: list[int] = field(default_factory=list)
    estimates: dict[str, ObjectEstimate] = field(default_factory=dict)
    last_cloud: FusedCloud | None = None
    ended: str = ""
    stalls: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    process_s: list[float] = field(default_factory=list)

    def dropped(self, camera: str) -> int | None:
        """Frames in the file that never reached the camera's reader (lost in the pipeline); None if unknown."""
        in_file = self.frames_in_file.get(camera)
        return None if in_file is None else max(0, in_file - self.frames_received.get(camera, 0))

    def skipped(self, camera: str) -> int:
        """Frames the reader received that no processed frameset used (processing slower than the stream)."""
        return max(0, self.frames_received.get(camera, 0) - self.frames_used.get(camera, 0))

    def table(self) -> str:
        lines = [f"recordings {self.directory} ({'real time' if self.real_time else 'every frame'}): "
                 f"{self.framesets} framesets in {self.wall_s:.1f} s; {self.ended}"]
        if self.stalls:
            lines.append(f"stalls (no frame for {PLAYBACK_STALL_TIMEOUT_S} s): {', '.join(self.stalls)}")
        if self.skews_ms:
            lines.append(f"skew: mean {np.mean(self.skews_ms):.1f} ms, max {np.max(self.skews_ms):.1f} ms")
        lines.append(f"{'camera':<12}{'in file':>9}{'received':>10}{'dropped':>9}{'in framesets':>14}"
                     f"{'skipped':>9}  fused")
        for name in self.cameras:
            in_file, dropped = self.frames_in_file.get(name), self.dropped(name)
            lines.append(f"{name:<12}{'?' if in_file is None else in_file:>9}{self.frames_received.get(name, 0):>10}"
                         f"{'?' if dropped is None else dropped:>9}{self.frames_used.get(name, 0):>14}"
                         f"{self.skipped(name):>9}  {'yes' if name in self.fused_cameras else 'no (no flange pose)'}")
        if self.cloud_points:
            lines.append(f"fused cloud: {int(np.mean(self.cloud_points))} points on average, last "
                         f"{self.cloud_points[-1]}; fusion + object state {1e3 * np.mean(self.process_s):.0f} ms "
                         f"per frameset")
        for e in self.estimates.values():
            pos = "-" if e.position_m is None else " ".join(f"{1e3 * v:7.1f}" for v in e.position_m)
            lines.append(f"object {e.name}: {e.state.value} ({e.method}) at [{pos}] mm (base), confidence "
                         f"{e.confidence:.2f}, {e.visible_points} points")
        return "\n".join(lines)


class _PlaybackCamera(RealSensePlaybackCamera):
    """The playback camera, keeping the recording's intrinsics once the file has ended (its stream closes then:
    a short file can end before the consumer asks)."""

    recorded_intrinsics: Intrinsics | None = None

    def _open(self) -> None:
        super()._open()
        self.recorded_intrinsics = self._stream.intrinsics


def frames_in_recording(path: str | Path) -> int | None:
    """Colour frames a RealSense ``.db3`` recording holds (counted in its sqlite index); None if unreadable."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            row = db.execute("SELECT COUNT(*) FROM messages m JOIN topics t ON m.topic_id = t.id "
                             "WHERE t.name LIKE '%/Color_%/image/data%'").fetchone()
    except sqlite3.Error as exc:
        log.debug("%s: cannot count frames: %s", path, exc)
        return None
    return int(row[0]) if row else None


def ordered_framesets(buffers: dict[str, list[Frame]], tolerance_ms: float) -> tuple[list[SyncedFrameset], int]:
    """Every frameset the buffers hold, in time order, by the group's rule: per frame of the camera with the fewest
    frames (the slowest), the nearest frame of every other camera in device time; kept when the spread (skew) is
    within ``tolerance_ms``. Returns the framesets and how many reference frames matched nothing."""
    reference = min(buffers, key=lambda n: len(buffers[n]))
    framesets, unmatched = [], 0
    for frame in buffers[reference]:
        t = frame.device_time_ms
        chosen = {n: min(frames, key=lambda f: abs(f.device_time_ms - t)) for n, frames in buffers.items() if frames}
        times = [f.device_time_ms for f in chosen.values()]
        if len(chosen) == len(buffers) and max(times) - min(times) <= tolerance_ms:
            framesets.append(SyncedFrameset(chosen, t, max(times) - min(times)))
        else:
            unmatched += 1
    return framesets, unmatched


def _live_framesets(group: CameraGroup, report: ReplayReport, timeout_s: float):
    """Framesets as a live consumer reads them (the newest matched one each time), until the files end."""
    last_s = time.monotonic()
    while True:
        try:
            frameset = group.read(max_age_s=1.0, timeout_s=timeout_s)
        except CameraFinishedError:
            report.ended = "the recordings ended"
            return
        except CameraStalledError as exc:
            report.stalls += [c for c in exc.cameras if c not in report.stalls]
            if time.monotonic() - last_s > timeout_s:
                report.ended = f"stopped: {exc}"
                return
            time.sleep(0.05)
            continue
        except (FramesetSkewError, StaleFrameError) as exc:
            report.ended = f"stopped: {exc}"
            return
        last_s = time.monotonic()
        yield frameset


def _every_frameset(group: CameraGroup, cameras: list[_PlaybackCamera], report: ReplayReport,
                    timeout_s: float):
    """Every frameset of the files: the readers play each file to its end into their buffers, then framesets are
    matched in time order (as :meth:`CameraGroup.read` matches, but all of them rather than the newest)."""
    deadline = time.monotonic() + timeout_s + max(report.frames_in_file.values(), key=lambda v: v or 0, default=0) / 5
    while len(group.finished) < len(cameras) and time.monotonic() < deadline:
        time.sleep(0.05)
    framesets, unmatched = ordered_framesets({c.name: c.recent_frames() for c in cameras}, group.tolerance_ms)
    report.ended = ("the recordings ended" if len(group.finished) == len(cameras) else
                    f"stopped waiting for {sorted(set(c.name for c in cameras) - set(group.finished))} to end")
    if unmatched:
        report.ended += f"; {unmatched} reference frames matched no frameset within {group.tolerance_ms} ms"
    yield from framesets


def replay_recordings(cell: CellConfig, task: TaskConfig | None, directory: str | Path, *, real_time: bool = False,
                      tolerance_ms: float = 17.0, T_base_flange: np.ndarray | None = None,
                      max_framesets: int | None = None, voxel_m: float = DEFAULT_VOXEL_M, stride: int = 2,
                      estimator_params: EstimatorParams | None = None, timeout_s: float = 5.0,
                      on_frameset: Callable[[FramesetResult], None] | None = None) -> ReplayReport:
    """Play ``<directory>/<camera>.db3`` of every cell camera through capture, sync, fusion and object state.

    ``real_time=False`` keeps at most ``EVERY_FRAME_MAX`` frames per camera (the last ones of a longer file).
    """
    directory = Path(directory)
    missing = [c.name for c in cell.cameras if not recording_path(directory, c.name).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: no recording for camera(s) {missing} (expected <camera>.db3, as "
                                f"manip-stack record-cameras writes them)")
    names = [c.name for c in cell.cameras]
    fused = [c.name for c in cell.cameras if c.mount is CameraMount.static or T_base_flange is not None]
    report = ReplayReport(directory, names, fused, real_time,
                          frames_in_file={n: frames_in_recording(recording_path(directory, n)) for n in names})
    options: dict = {}
    if not real_time:
        longest = max((v or EVERY_FRAME_MAX for v in report.frames_in_file.values()), default=EVERY_FRAME_MAX)
        if longest > EVERY_FRAME_MAX:
            log.warning("%s: files of %d frames; every-frame replay keeps the last %d of each", directory, longest,
                        EVERY_FRAME_MAX)
        options["buffer_frames"] = min(longest, EVERY_FRAME_MAX)
    # Real time: the files start in step, as cameras of one session would. Every frame: no sync, since frames are
    # matched by their recorded times whenever they are read (and PlaybackSync's resume of a non-real-time file
    # waits for a reader that its own camera's thread has not started yet: that camera's open timed out).
    sync = PlaybackSync(len(names)) if real_time else None
    cameras = [_PlaybackCamera(recording_path(directory, c.name), name=c.name, real_time=real_time,
                                       loop=False, sync=sync, serial=c.serial, **options) for c in cell.cameras]
    estimator = ObjectStateEstimator(task, estimator_params) if task is not None else None
    used: dict[str, set[int]] = {n: set() for n in names}
    start = time.monotonic()
    with CameraGroup(cameras, tolerance_ms=tolerance_ms, stall_timeout_s=PLAYBACK_STALL_TIMEOUT_S) as group:
        fuser = PointCloudFuser(cell, intrinsics={c.name: c.recorded_intrinsics for c in cameras}, voxel_m=voxel_m,
                                stride=stride)
        source = (_live_framesets(group, report, timeout_s) if real_time else
                  _every_frameset(group, cameras, report, timeout_s))
        for frameset in source:
            if max_framesets is not None and report.framesets >= max_framesets:
                report.ended = f"stopped after {max_framesets} framesets (as asked)"
                break
            t0 = time.perf_counter()
            cloud = fuser.fuse({n: f for n, f in frameset.frames.items() if n in fused}, T_base_flange)
            estimates = estimator.update_cloud(cloud, frameset.reference_time_ms / 1e3) if estimator else {}
            seconds = time.perf_counter() - t0
            for name, frame in frameset.frames.items():
                used[name].add(frame.frame_number)
            report.framesets += 1
            report.skews_ms.append(frameset.skew_ms)
            report.cloud_points.append(len(cloud.points_m))
            report.process_s.append(seconds)
            report.estimates, report.last_cloud = estimates, cloud
            if on_frameset is not None:
                on_frameset(FramesetResult(report.framesets - 1, frameset, cloud, estimates, seconds))
        report.frames_received = {c.name: c.frames_received for c in cameras}
    report.frames_used = {n: len(s) for n, s in used.items()}
    report.wall_s = time.monotonic() - start
    return report


def cloud_picture(cloud: FusedCloud, out: str | Path, estimates: dict[str, ObjectEstimate] | None = None,
                  title: str = "") -> Path:
    """A PNG of the fused cloud: top view (x, y) and side view (x, z) in the base frame, objects marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    points, colours = np.asarray(cloud.points_m), np.clip(np.asarray(cloud.colors), 0.0, 1.0)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
    for ax, (i, j), label in zip(axes, ((0, 1), (0, 2)), ("top view (x, y)", "side view (x, z)"), strict=True):
        order = np.argsort(points[:, 3 - i - j]) if len(points) else []  # far points first: near ones on top
        ax.scatter(points[order, i], points[order, j], c=colours[order], s=2, linewidths=0)
        for e in (estimates or {}).values():
            if e.position_m is not None:
                ax.scatter([e.position_m[i]], [e.position_m[j]], marker="x", s=120, c="cyan", linewidths=2)
                ax.annotate(f"{e.name} ({e.confidence:.2f})", (e.position_m[i], e.position_m[j]),
                            textcoords="offset points", xytext=(8, 8), color="darkcyan")
        ax.set_xlabel("xyz"[i] + " [m] (base)")
        ax.set_ylabel("xyz"[j] + " [m] (base)")
        ax.set_aspect("equal")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"fused cloud: {len(points)} points")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
