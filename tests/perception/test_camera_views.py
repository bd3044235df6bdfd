"""Cameras as the calibration session's view source: a capture is always a frame taken after it was asked for."""

import time

import pytest

from calibration.session import CameraViews
from perception.cameras import StaleFrameError, playback_cameras


def test_a_capture_is_newer_than_the_request_and_a_silent_camera_times_out(cell, sync_recordings):
    cameras = {c.name: c for c in playback_cameras(cell, sync_recordings)}
    views = CameraViews(cameras, timeout_s=0.5)
    for camera in cameras.values():
        camera.start()
    try:
        assert cameras["cam_wrist"].wait_for_frame(0.0, 5.0)
        asked_s = time.monotonic()
        frame = views.capture("cam_wrist")
        assert frame.host_time_s > asked_s and frame.camera == "cam_wrist"
        assert views.intrinsics("cam_wrist").width == 160
        cameras["cam_side"].pause()
        time.sleep(0.1)
        with pytest.raises(StaleFrameError, match="cam_side"):
            views.capture("cam_side")
    finally:
        for camera in cameras.values():
            camera.stop()
