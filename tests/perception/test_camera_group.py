"""A camera group delivers time-matched framesets, names a camera that stops, and takes it back when it returns.

The sync recordings have deliberately different clocks: cam_front at 30 fps, cam_side at 30 fps 5 ms late,
cam_wrist at 15 fps. So a matched frameset always has a skew of exactly 5 ms.
"""

import itertools
import time

import mujoco
import numpy as np
import pyrealsense2 as rs
import pytest
from twin_recordings import SimStepper, restamped, wait_until, write_in_parallel

from hardware_configs.schema import Intrinsics
from perception.cameras import (
    CameraGroup,
    CameraNotFoundError,
    CameraStalledError,
    CameraStatus,
    Frame,
    FramesetSkewError,
    playback_cameras,
    recording_path,
    twin_cameras,
)
from perception.cameras.realsense import RealSenseCamera
from sim.scene import ImageSize, build_model

SMALL = Intrinsics(width=48, height=36, fx=40.0, fy=40.0, cx=23.5, cy=17.5)


def test_framesets_are_matched_in_device_time_and_report_their_skew(cell, sync_recordings):
    with CameraGroup(playback_cameras(cell, sync_recordings), tolerance_ms=10.0) as group:
        framesets = [group.read(timeout_s=2.0) for _ in range(12)]
    for frameset in framesets:
        assert set(frameset.frames) == {"cam_front", "cam_side", "cam_wrist"}
        times = [f.device_time_ms for f in frameset.frames.values()]
        assert frameset.skew_ms == pytest.approx(max(times) - min(times))
        assert frameset.skew_ms == pytest.approx(5.0, abs=0.01)
        front_ms, period_ms = frameset.frames["cam_front"].device_time_ms, 1e3 / 15
        assert front_ms == pytest.approx(round(front_ms / period_ms) * period_ms, abs=0.01)  # on the 15 fps grid
    references = [f.reference_time_ms for f in framesets]
    assert all(b > a for a, b in itertools.pairwise(references)) or min(references) < 100  # new (or a loop restart)


@pytest.mark.xfail(strict=False, reason="known flaw (#22): librealsense's real-time player anchors each file's clock "
                   "at its own first frame, so a recording that started later plays that much ahead; the fix "
                   "(pacing by recorded time on PlaybackSync's shared clock) is on branch h22-playback-sync, "
                   "not yet validated")
def test_recordings_that_started_apart_play_in_step_by_their_recorded_times(cell, tmp_path):
    """Recordings of one session share a time origin, but each file's clock starts at its own first frame: here
    cam_side's recorder started 300 ms after the others' (rs-record started by hand, a slow writer). Played from
    every file's start at once, as librealsense's real-time playback does, cam_side ran 300 ms ahead in recorded
    time and no frameset ever formed; the recordings play by their recorded times, so all three are in step, at
    the recorded rate, from cam_side's first frame on."""
    late_ms, jobs = 300.0, {}
    for name, (fps, start_ms, n) in {"cam_front": (30.0, 0.0, 48), "cam_side": (30.0, 305.0, 39),
                                     "cam_wrist": (15.0, 0.0, 24)}.items():
        shade = Frame(name, np.full((36, 48, 3), 90, np.uint8), np.full((36, 48), 0.8, np.float32), 0.0)
        jobs[recording_path(tmp_path, name)] = ([restamped(shade, start_ms + k * 1e3 / fps, k) for k in range(n)],
                                                SMALL, cell.camera(name).serial)
    write_in_parallel(jobs)
    with CameraGroup(playback_cameras(cell, tmp_path, loop=False), tolerance_ms=10.0) as group:
        framesets = [group.read(timeout_s=1.0) for _ in range(8)]
        host_s = [min(f.host_time_s for f in s.frames.values()) for s in framesets]
    references = [s.reference_time_ms for s in framesets]
    assert all(s.skew_ms == pytest.approx(5.0, abs=0.01) for s in framesets), [s.skew_ms for s in framesets]
    assert references[0] >= late_ms and all(b > a for a, b in itertools.pairwise(references))
    played_s, recorded_s = host_s[-1] - host_s[0], (references[-1] - references[0]) / 1e3
    assert 0.5 * recorded_s < played_s < recorded_s + 0.25  # real time: about the rate they were recorded at


def test_a_tolerance_tighter_than_the_cameras_offset_matches_nothing(cell, sync_recordings):
    group = CameraGroup(playback_cameras(cell, sync_recordings), tolerance_ms=2.0)
    with group, pytest.raises(FramesetSkewError, match=r"no frameset within 2\.0 ms"):
        group.read(timeout_s=2.0)


def test_a_paused_camera_is_named_within_a_second_while_the_others_keep_streaming(cell, sync_recordings):
    events = []
    cameras = playback_cameras(cell, sync_recordings)
    with CameraGroup(cameras, tolerance_ms=10.0, stall_timeout_s=0.5, on_event=events.append) as group:
        group.read(timeout_s=2.0)
        side = group.cameras["cam_side"]
        side.pause()
        paused_s = time.monotonic()
        while not group.stalled and time.monotonic() - paused_s < 2.0:
            time.sleep(0.01)
        assert group.stalled == ["cam_side"]
        assert time.monotonic() - paused_s < 1.0
        assert [(e.camera, e.kind) for e in events] == [("cam_side", "stalled")]
        with pytest.raises(CameraStalledError, match="cam_side") as stalled:
            group.read(timeout_s=0.5)
        assert stalled.value.cameras == ["cam_side"]
        for name in ("cam_front", "cam_wrist"):  # the others never waited on it
            assert group.cameras[name].read_latest(max_age_s=0.15).camera == name

        side.resume()
        frameset = group.read(timeout_s=2.0) if wait_until(lambda: not group.stalled, 1.0) else None
        assert frameset is not None and frameset.skew_ms == pytest.approx(5.0, abs=0.01)
        assert [(e.camera, e.kind) for e in events] == [("cam_side", "stalled"), ("cam_side", "recovered")]
        assert side.status is CameraStatus.streaming


def test_each_camera_keeps_a_bounded_ring_buffer_when_nobody_reads(cell, sync_recordings):
    from perception.cameras import recording_path
    from perception.cameras.realsense import RealSensePlaybackCamera

    camera = RealSensePlaybackCamera(recording_path(sync_recordings, "cam_front"), buffer_frames=4)
    with camera:
        time.sleep(0.5)  # ~15 frames arrive
        frames = camera.recent_frames()
    assert len(frames) == 4
    assert [f.frame_number for f in frames] == sorted(f.frame_number for f in frames)


def test_starting_a_group_is_all_or_nothing(cell, sync_recordings):
    first = playback_cameras(cell, sync_recordings)[0]
    missing = RealSenseCamera(cell.camera("cam_side"), context=rs.context())
    group = CameraGroup([first, missing])
    with pytest.raises(CameraNotFoundError, match="cam_side"):
        group.start()
    assert first.status is CameraStatus.stopped


def test_twin_cameras_are_synced_by_sim_time_and_recover_from_a_pause(cell, lift_task):
    model = build_model(cell, lift_task, ImageSize(160, 120), fast_render=True)
    data = mujoco.MjData(model)
    with SimStepper(model, data, cell) as sim:
        cameras = twin_cameras(cell, model, data, 160, 120, sim_lock=sim.lock, fps=10.0)
        with CameraGroup(cameras, tolerance_ms=1.0, stall_timeout_s=0.5) as group:
            frameset = group.read(timeout_s=5.0)
            assert frameset.skew_ms == 0.0  # all three triggered at the same sim instant
            assert frameset.reference_time_ms % 100.0 == pytest.approx(0.0, abs=1e-6)
            group.cameras["cam_wrist"].pause()
            assert wait_until(lambda: group.stalled == ["cam_wrist"], 1.0)
            group.cameras["cam_wrist"].resume()
            assert wait_until(lambda: not group.stalled, 1.0)
            later = group.read(timeout_s=3.0)
            assert later.skew_ms == 0.0 and later.reference_time_ms > frameset.reference_time_ms


