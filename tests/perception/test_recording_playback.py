"""Frames written with a software device come back through librealsense's playback, decode and align intact."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from perception.cameras import Frame, recording_path
from perception.cameras.realsense import RealSensePlaybackCamera
from perception.recording import RecordingError, RecordingWriter, depth_to_counts, write_recording

DEPTH_SCALE_M = 0.001


def read_frames(path, n, real_time=False):
    """Up to ``n`` frames of a recording, as delivered by the real pipeline."""
    camera = RealSensePlaybackCamera(path, real_time=real_time, loop=False, buffer_frames=16)
    camera.start()
    try:
        assert camera.wait_for_frame(0.0, 5.0)
        frames = camera.recent_frames()
        while len(frames) < n and camera.wait_for_frame(frames[-1].host_time_s, 1.0):
            frames = camera.recent_frames()
        return camera.intrinsics, frames
    finally:
        camera.stop()


def test_playback_returns_the_recorded_colour_depth_timestamps_and_intrinsics(scene_recordings):
    for name, twin_frame in scene_recordings.twin_frames.items():
        intrinsics, frames = read_frames(recording_path(scene_recordings.directory, name), 3)
        # The pipeline's syncer may drop the very first frameset (its depth/colour pair not yet matched), as
        # with a camera; what arrives keeps its frame number and its timestamp.
        numbers = [f.frame_number for f in frames]
        assert len(frames) >= 2 and numbers == sorted(set(numbers)) and numbers[-1] == 2
        np.testing.assert_allclose([f.device_time_ms for f in frames], [n * 1e3 / 30 for n in numbers], atol=1e-3)
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
