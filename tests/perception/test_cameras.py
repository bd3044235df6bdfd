"""Every source behind one camera interface: live RealSense by serial, a recording, the twin.

Without a camera attached, the live class is exercised through an ``rs.context`` with recordings loaded
into it: librealsense then lists them as devices and resolves serials exactly as for USB cameras.
"""

import time

import mujoco
import numpy as np
import pyrealsense2 as rs
import pytest
from twin_recordings import SYNC_SIZE, SimStepper, wait_until

from perception.cameras import Camera, CameraNotFoundError, CameraStatus, StaleFrameError, recording_path
from perception.cameras.realsense import RealSenseCamera, RealSensePlaybackCamera, connected_serials
from perception.cameras.twin import TwinCamera
from sim.scene import ImageSize, build_model, scaled_intrinsics


def small_config(cell, name):
    """The cell's camera with the 160x120 profile the sync recordings were written with."""
    config = cell.camera(name)
    intr = config.intrinsics.model_copy(update={"width": SYNC_SIZE[0], "height": SYNC_SIZE[1],
                                                "cx": SYNC_SIZE[0] / 2, "cy": SYNC_SIZE[1] / 2})
    return config.model_copy(update={"intrinsics": intr})




def test_a_missing_serial_is_reported_with_the_serials_that_are_connected(cell, sync_recordings):
    empty = rs.context()
    camera = RealSenseCamera(cell.camera("cam_front"), context=empty)
    with pytest.raises(CameraNotFoundError, match=r"serial 215122253001 .* found none"):
        camera.start()
    assert camera.status is CameraStatus.stopped

    loaded = rs.context()
    device = loaded.load_device(str(recording_path(sync_recordings, "cam_side")))  # listed while referenced
    try:
        with pytest.raises(CameraNotFoundError, match=r"found \['215122253002'\]"):
            RealSenseCamera(cell.camera("cam_front"), context=loaded).start()
        assert device.get_info(rs.camera_info.serial_number) == "215122253002"
    finally:
        loaded.unload_device(str(recording_path(sync_recordings, "cam_side")))


def test_the_live_camera_streams_by_serial_with_the_device_intrinsics(cell, sync_recordings):
    context = rs.context()
    path = str(recording_path(sync_recordings, "cam_front"))
    device = context.load_device(path)  # the context lists it while it is referenced
    config = small_config(cell, "cam_front")
    camera = RealSenseCamera(config, context=context)
    try:
        assert isinstance(camera, Camera)
        camera.start()
        assert camera.wait_for_frame(0.0, 3.0)
        frame = camera.read_latest(max_age_s=0.5)
        assert frame.camera == "cam_front" and frame.color.shape == (120, 160, 3)
        # The device's (here: the recording's) intrinsics replace the file's copy once started.
        assert camera.intrinsics.cx != config.intrinsics.cx
        assert camera.intrinsics.fx == pytest.approx(scaled_intrinsics(cell.camera("cam_front"),
                                                                       ImageSize(*SYNC_SIZE))[0], abs=1e-3)
    finally:
        camera.stop()
        context.unload_device(path)
        del device


def test_an_unplugged_camera_stalls_within_a_second_and_reconnects_when_it_is_back(cell, sync_recordings):
    context = rs.context()
    path = str(recording_path(sync_recordings, "cam_front"))
    devices = [context.load_device(path)]  # the context lists a recording while it is referenced
    camera = RealSenseCamera(small_config(cell, "cam_front"), context=context, stall_timeout_s=0.5)
    try:
        camera.start()
        assert camera.wait_for_frame(0.0, 3.0)
        # The cable is pulled: the device stops streaming and its serial disappears. The pipeline plays its own
        # instance of the loaded recording, so that is the one to pause.
        camera._stream.profile.get_device().as_playback().pause()
        context.unload_device(path)
        unplugged_s = time.monotonic()
        assert wait_until(lambda: camera.status is CameraStatus.stalled, 1.0)
        assert time.monotonic() - unplugged_s < 1.0
        with pytest.raises(StaleFrameError, match="cam_front"):
            camera.read_latest(max_age_s=0.2)
        time.sleep(0.6)  # reconnect attempts fail meanwhile: the serial is not listed
        assert camera.status is CameraStatus.stalled and camera.reconnects == 0

        devices.append(context.load_device(path))  # plugged back in
        replugged_s = time.monotonic()
        assert camera.wait_for_frame(replugged_s, 3.0)
        assert camera.status is CameraStatus.streaming and camera.reconnects == 1
        assert camera.read_latest(max_age_s=0.5).device_time_ms < 1000.0  # the device clock restarted
    finally:
        camera.stop()
        if connected_serials(context):
            context.unload_device(path)


def test_a_recording_plays_through_the_same_interface(sync_recordings):
    camera = RealSensePlaybackCamera(recording_path(sync_recordings, "cam_wrist"), name="cam_wrist")
    with camera:
        assert camera.serial == "215122253003"
        assert camera.wait_for_frame(0.0, 3.0)
        first = camera.read_latest(max_age_s=0.5)
        assert camera.wait_for_frame(first.host_time_s, 1.0)
        second = camera.read_latest(max_age_s=0.5)
        assert second.frame_number > first.frame_number
        assert second.device_time_ms - first.device_time_ms == pytest.approx(1e3 / 15, abs=0.01)


def test_the_twin_camera_is_triggered_by_sim_time_and_stops_when_paused(cell, lift_task):
    size = ImageSize(*SYNC_SIZE)
    model = build_model(cell, lift_task, size, fast_render=True)
    data = mujoco.MjData(model)
    with SimStepper(model, data, cell) as sim:
        camera = TwinCamera(model, data, "cam_side", *SYNC_SIZE, fps=20.0, sim_lock=sim.lock, stall_timeout_s=0.3)
        assert isinstance(camera, Camera)
        with camera:
            assert camera.wait_for_frame(0.0, 5.0)
            first = camera.read_latest(max_age_s=0.5)
            assert camera.wait_for_frame(first.host_time_s, 2.0)
            second = camera.read_latest(max_age_s=0.5)
            for frame in (first, second):  # stamped at its trigger: a multiple of 50 ms of sim time
                assert frame.device_time_ms / 50.0 == pytest.approx(round(frame.device_time_ms / 50.0), abs=1e-6)
            assert second.device_time_ms > first.device_time_ms
            assert second.color.shape == (120, 160, 3) and second.depth_m.dtype == np.float32
            fx, fy, cx, cy = scaled_intrinsics(cell.camera("cam_side"), size)
            # the twin renders with exactly the cell's (scaled) intrinsics, in the OpenCV pixel convention
            assert (camera.intrinsics.fx, camera.intrinsics.cx, camera.intrinsics.cy) == pytest.approx((fx, cx, cy),
                                                                                                       abs=1e-3)
            camera.pause()
            assert wait_until(lambda: camera.status is CameraStatus.stalled, 1.0)
            camera.resume()
            assert wait_until(lambda: camera.status is CameraStatus.streaming, 1.0)
            assert camera.stalls == 1 and camera.reconnects == 1
