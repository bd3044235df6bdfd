"""Frames written with a software device come back through librealsense's playback, decode and align intact:
every frame, in order, to the recording's end, which is reported as the end (not as a stalled camera); and a
recording plays whatever wrote it, with or without a serial number, but never as another camera."""

import logging
import time

import numpy as np
import pyrealsense2 as rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from twin_recordings import restamped, wait_until

from perception.cameras import CameraGroup, CameraNotFoundError, CameraStatus, Frame, recording_path
from perception.cameras.base import CameraFinishedError, StaleFrameError
from perception.cameras.realsense import (
    AlignedPipeline,
    RealSenseCamera,
    RealSensePlaybackCamera,
    RecordingMismatchError,
    open_recording,
)
from perception.recording import RecordingError, RecordingWriter, depth_to_counts, write_recording

DEPTH_SCALE_M = 0.001


@pytest.fixture(scope="module")
def unnamed_recording(tmp_path_factory, scene_recordings):
    """cam_front's three scene frames, written as a bare software device writes: no serial number."""
    path = recording_path(tmp_path_factory.mktemp("unnamed"), "cam_front")
    frames = [restamped(scene_recordings.twin_frames["cam_front"], k * 1e3 / 30, k) for k in range(3)]
    write_recording(frames, scene_recordings.intrinsics["cam_front"], path, serial=None, time_origin_ms=0.0)
    return path


def read_frames(path, name=None, serial=None, real_time=False):
    """Every frame of a recording, as delivered by the real pipeline, read until the camera reports its end."""
    camera = RealSensePlaybackCamera(path, name=name, real_time=real_time, loop=False, buffer_frames=16, serial=serial)
    camera.start()
    try:
        assert camera.wait_for_frame(0.0, 5.0)
        while camera.wait_for_frame(camera.last_frame_host_time_s(), 5.0):
            pass
        assert camera.status is CameraStatus.finished and camera.stalls == 0
        return camera.intrinsics, camera.recent_frames()
    finally:
        camera.stop()


def test_playback_returns_the_recorded_colour_depth_timestamps_and_intrinsics(scene_recordings):
    for name, twin_frame in scene_recordings.twin_frames.items():
        intrinsics, frames = read_frames(recording_path(scene_recordings.directory, name))
        assert [f.frame_number for f in frames] == [0, 1, 2]  # every frame, once, in order
        np.testing.assert_allclose([f.device_time_ms for f in frames], [k * 1e3 / 30 for k in range(3)], atol=1e-3)
        written = scene_recordings.intrinsics[name]
        for field in ("width", "height", "fx", "fy", "cx", "cy"):
            assert getattr(intrinsics, field) == pytest.approx(getattr(written, field), abs=1e-4), field
        frame = frames[0]
        assert frame.camera == recording_path(scene_recordings.directory, name).stem
        assert frame.color.dtype == np.uint8 and frame.color.shape == (480, 640, 3)
        assert frame.depth_m.dtype == np.float32 and frame.depth_m.shape == (480, 640)
        np.testing.assert_array_equal(frame.color, twin_frame.color)  # RGB8 is stored losslessly
        # Depth passes Z16 quantisation and rs.align (depth -> colour, identity extrinsics). Align splats each
        # depth pixel's footprint, so at depth edges a value lands one pixel over: every aligned depth is a
        # twin depth from its 3x3 neighbourhood (to half a count), nearly all from the very same pixel.
        tolerance_m = DEPTH_SCALE_M / 2 + 1e-5
        has_depth = frame.depth_m > 0
        assert has_depth.sum() > 0.9 * (twin_frame.depth_m > 0).sum()
        same_pixel = np.abs(frame.depth_m - twin_frame.depth_m) <= tolerance_m
        assert same_pixel[has_depth].mean() > 0.97
        nearest = np.full(frame.depth_m.shape, np.inf)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                shifted = np.roll(twin_frame.depth_m, (dy, dx), axis=(0, 1))
                nearest = np.minimum(nearest, np.abs(frame.depth_m - shifted))
        assert np.all(nearest[has_depth] <= tolerance_m)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, (4, 5), elements=st.floats(-1.0, 80.0, width=32) | st.just(np.nan)))
def test_depth_quantisation_keeps_valid_depth_within_half_a_count_and_zeroes_the_rest(depth_m):
    counts = depth_to_counts(depth_m, DEPTH_SCALE_M)
    assert counts.dtype == np.uint16
    valid = np.isfinite(depth_m) & (depth_m >= 0) & (depth_m <= 65.535)
    np.testing.assert_allclose(counts[valid] * DEPTH_SCALE_M, depth_m[valid], atol=DEPTH_SCALE_M / 2 + 1e-6)
    assert np.all(counts[~valid] == 0)


def test_writer_refuses_frames_that_do_not_match_its_intrinsics_and_never_overwrites(tmp_path, scene_recordings):
    intr = scene_recordings.intrinsics["cam_front"]
    path = tmp_path / "one.db3"
    small = Frame("cam_front", np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), np.float32), 0.0, 0.0, 0)
    with RecordingWriter(path, intr) as writer, pytest.raises(RecordingError, match="640x480"):
        writer.write(small)
    with pytest.raises(FileExistsError):
        write_recording([], intr, path)
    with pytest.raises(RecordingError, match=r"\.db3"):
        RecordingWriter(tmp_path / "one.bag", intr)


def test_every_frame_arrives_in_order_however_late_the_reader_gets_to_the_playback(scene_recordings, monkeypatch):
    """A loaded machine runs the lines after the pipeline's start late. The playback must not have played the file
    meanwhile: before the fix it started in real time, each unread frameset replaced the last in the pipeline's
    one-frameset queue, and a file that ended before the switch to non-real-time lost all but its last frame."""
    start = AlignedPipeline.start.__func__

    def late_start(cls, camera, pipeline, config):
        stream = start(cls, camera, pipeline, config)
        time.sleep(0.25)  # longer than the whole file (3 frames at 30 fps) takes in real time
        return stream

    monkeypatch.setattr(AlignedPipeline, "start", classmethod(late_start))
    path = recording_path(scene_recordings.directory, "cam_side")
    for _ in range(2):
        _, frames = read_frames(path)
        assert [f.frame_number for f in frames] == [0, 1, 2]
    stream = open_recording(path, "cam_side", real_time=False, loop=False)
    try:
        time.sleep(0.25)
        numbers = []
        while (frame := stream.grab(1.0)) is not None:
            numbers.append(frame.frame_number)
        assert numbers == [0, 1, 2]
    finally:
        stream.stop()


def test_the_end_of_a_recording_is_reported_as_finished_not_as_a_stalled_camera(scene_recordings, caplog):
    path = recording_path(scene_recordings.directory, "cam_wrist")
    camera = RealSensePlaybackCamera(path, loop=False, real_time=True, stall_timeout_s=0.3)
    with caplog.at_level(logging.INFO, logger="perception.cameras"), camera:
        assert camera.wait_for_frame(0.0, 5.0)
        assert wait_until(lambda: camera.status is CameraStatus.finished, 2.0)
        time.sleep(0.5)  # longer than the stall timeout: still finished, never stalled, no reconnect tried
        assert camera.status is CameraStatus.finished and (camera.stalls, camera.reconnects) == (0, 0)
        assert camera.read_latest(max_age_s=60.0).frame_number == 2  # what was read stays readable
        with pytest.raises(CameraFinishedError, match=r"cam_wrist.*no more frames") as finished:
            camera.read_latest(max_age_s=0.1)
        assert not isinstance(finished.value, StaleFrameError) and finished.value.cameras == ["cam_wrist"]
        waited_s = time.monotonic()
        assert not camera.wait_for_frame(camera.last_frame_host_time_s(), 5.0)  # nothing to wait for
        assert time.monotonic() - waited_s < 0.5
    # (in real time, as from a camera, a frame played before the reader's first look may be missed)
    assert f"finished after {camera.frames_received} frames" in caplog.text and "reconnecting" not in caplog.text


def test_a_group_of_recordings_ends_with_finished_framesets_not_a_stall(cell, scene_recordings):
    events = []
    cameras = [
        RealSensePlaybackCamera(
            recording_path(scene_recordings.directory, c.name),
            name=c.name,
            real_time=False,
            loop=False,
            buffer_frames=16,
        )
        for c in cell.cameras
    ]
    with CameraGroup(cameras, tolerance_ms=1.0, stall_timeout_s=0.3, on_event=events.append) as group:
        references = []
        with pytest.raises(CameraFinishedError, match="finished") as finished:
            for _ in range(10):
                references.append(group.read(max_age_s=60.0, timeout_s=5.0).reference_time_ms)
        # framesets as they were matched, new ones only, up to the last one the files hold; then the end
        assert references == sorted(set(references)) and references[-1] == pytest.approx(2e3 / 30)
        assert finished.value.cameras and group.stalled == []
        assert wait_until(lambda: len(events) == 3, 1.0)
    assert sorted((e.camera, e.kind) for e in events) == [(c.name, "finished") for c in cell.cameras]


def test_a_recording_without_a_serial_number_plays_as_the_camera_its_file_is_named_after(
    cell, unnamed_recording, scene_recordings, caplog
):
    with caplog.at_level(logging.INFO, logger="perception.cameras"):
        _, frames = read_frames(unnamed_recording, name="cam_front", serial=cell.camera("cam_front").serial)
    assert [f.frame_number for f in frames] == [0, 1, 2] and frames[0].camera == "cam_front"
    np.testing.assert_array_equal(frames[0].color, scene_recordings.twin_frames["cam_front"].color)
    assert "has no serial number" in caplog.text and "played as cam_front by its file name" in caplog.text
    camera = RealSensePlaybackCamera(unnamed_recording, name="cam_front")
    with camera:
        assert camera.serial == ""  # none is made up


def test_another_cameras_recording_is_refused_naming_both_serials(cell, scene_recordings):
    side = recording_path(scene_recordings.directory, "cam_side")  # written with cam_side's serial
    camera = RealSensePlaybackCamera(side, name="cam_front", serial=cell.camera("cam_front").serial)
    with pytest.raises(RecordingMismatchError, match=r"serial 215122253002, but cam_front has serial 215122253001"):
        camera.start()
    assert camera.status is CameraStatus.stopped


def test_a_loaded_recording_without_a_serial_is_no_live_camera_and_is_said_so(cell, unnamed_recording):
    context = rs.context()
    device = context.load_device(str(unnamed_recording))
    try:
        camera = RealSenseCamera(cell.camera("cam_front"), context=context)
        with pytest.raises(CameraNotFoundError, match=r"found none and 1 device\(s\) without a serial number"):
            camera.start()
    finally:
        context.unload_device(str(unnamed_recording))
        del device
