"""camera_node plays recordings whatever wrote them, never as another camera, and ends with them.

A recording without a serial number (a bare software device writes none) plays as the camera its file is named
after; one holding another camera's serial is refused at start with one clear line. Without ``loop``, a
recording's end is reported as its end: the node stops publishing it and says so, and the process exits.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")
pytest.importorskip("pyrealsense2", reason="pyrealsense2 missing: pip install -e '.[camera]'")

from rclpy.parameter import Parameter
from ros_harness import Graph, Probe, node_process, stop_process, wait_for
from sensor_msgs.msg import Image

from hardware_configs import load_cell
from perception.cameras import Frame, recording_path
from perception.recording import write_recording
from ros_support import conversions as conv
from ros_support.node import SENSOR_QOS

pytestmark = pytest.mark.ros
CELL = load_cell("franka_3cam")
FRONT = CELL.camera("cam_front")
N_FRAMES = 45  # 1.5 s in real time: the probe is discovered and hears the topic before the end


def record(directory, serial: str | None) -> None:
    """cam_front's recording (64x48 at 30 fps), with the given serial number or none."""
    intr = conv.scale_intrinsics(FRONT.intrinsics, 64, 48)
    rng = np.random.default_rng(0)
    frames = [
        Frame(
            "cam_front",
            rng.integers(0, 255, (48, 64, 3), dtype=np.uint8),
            np.full((48, 64), 0.75, np.float32),
            k * 1000 / 30,
            0.0,
            k,
        )
        for k in range(N_FRAMES)
    ]
    write_recording(frames, intr, recording_path(directory, "cam_front"), serial=serial, time_origin_ms=0.0)


def playback_params(directory) -> list[Parameter]:
    return [
        Parameter("source", value="playback"),
        Parameter("recording_dir", value=str(directory)),
        Parameter("cameras", value=["cam_front"]),
        Parameter("loop", value=False),
    ]


def test_a_recording_without_a_serial_plays_and_its_end_stops_the_topic_for_good(ros_context, tmp_path):
    from perception.cameras import CameraStatus
    from perception.ros.camera_node import CameraNode

    record(tmp_path, serial=None)
    node = CameraNode(context=ros_context, parameter_overrides=playback_params(tmp_path))
    node.configure()
    probe = Probe(ros_context)
    probe.watch(Image, FRONT.topic("color"), SENSOR_QOS)
    try:
        with Graph(ros_context) as graph:
            graph.add(node)
            graph.add(probe)
            assert wait_for(lambda: node.finished == {"cam_front"}, 20.0)
            assert node.cameras[0].status is CameraStatus.finished and node.cameras[0].stalls == 0
            assert node._timer.is_canceled()
            published, heard = node.published["cam_front"], probe.counts[FRONT.topic("color")]
            assert 0 < heard <= published <= N_FRAMES
            wait_for(lambda: False, 0.5)  # nothing more comes: the camera is done, not waited for
            assert (node.published["cam_front"], probe.counts[FRONT.topic("color")]) == (published, heard)
    finally:
        node.close()


def test_another_cameras_recording_is_refused_at_start_naming_both_serials(ros_context, tmp_path):
    from perception.ros.camera_node import CameraNode

    record(tmp_path, serial=CELL.camera("cam_side").serial)  # cam_side's file, named cam_front.db3
    node = CameraNode(context=ros_context, parameter_overrides=playback_params(tmp_path))
    refused = r"serial 215122253002, but cam_front has serial 215122253001 in the cell; refusing"
    with pytest.raises(ValueError, match=refused):
        node.configure()
    assert all(cam.status.value == "stopped" for cam in node.cameras)


def test_the_camera_node_process_exits_by_itself_once_its_recordings_have_finished(tmp_path):
    record(tmp_path, serial=None)
    proc = node_process(
        "perception.ros.camera_node",
        {"source": "playback", "recording_dir": str(tmp_path), "cameras": ["cam_front"], "loop": False},
    )
    try:
        returncode = proc.wait(timeout=60.0)
    except subprocess.TimeoutExpired:
        returncode = None
    output = stop_process(proc)
    assert returncode == 0, output
    assert "camera cam_front: recording finished after" in output and "no longer publishing it" in output
    assert "camera_node is done" in output and "reconnecting" not in output
