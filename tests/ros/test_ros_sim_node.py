"""sim_node against real subscribers and publishers on loopback: topics, QoS, frames, stamps, commands, reset."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")
pytest.importorskip("gym_hil", reason="the twin needs gym-hil's Panda model: pip install --no-deps gym-hil==0.1.14")

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_harness import REPO, Graph, Probe, call, wait_for
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from hardware_configs import load_cell
from ros_support import conversions as conv
from ros_support.node import CLOCK_QOS, COMMAND_QOS, SENSOR_QOS, STATE_QOS
from sim.ros.sim_node import SimNode

pytestmark = pytest.mark.ros
CELL = load_cell("franka_3cam")
F = conv.RclpyFactory()


@pytest.fixture(scope="module")
def sim_graph():
    context = rclpy.Context()
    rclpy.init(context=context)
    sim = SimNode(
        context=context,
        parameter_overrides=[
            Parameter("image_width", value=64),
            Parameter("image_height", value=48),
            Parameter("camera_fps", value=10.0),
            Parameter("real_time_factor", value=2.0),
        ],
    )
    sim.configure()
    probe = Probe(context)
    for cam in CELL.cameras:
        probe.watch(Image, cam.topic("color"), SENSOR_QOS)
        probe.watch(Image, cam.topic("depth"), SENSOR_QOS)
        probe.watch(CameraInfo, cam.topic("camera_info"), SENSOR_QOS)
    probe.watch(JointState, "/joint_states", STATE_QOS)
    probe.watch(PoseStamped, "/tcp_pose", STATE_QOS)
    probe.watch(Clock, "/clock", CLOCK_QOS)
    driver = Node("driver", context=context)
    pubs = {
        "traj": driver.create_publisher(JointTrajectory, "/joint_trajectory_controller/joint_trajectory", COMMAND_QOS),
        "pose": driver.create_publisher(PoseStamped, "/cartesian_impedance_controller/equilibrium_pose", COMMAND_QOS),
        "gripper": driver.create_publisher(Float64MultiArray, "/gripper_controller/commands", COMMAND_QOS),
    }
    with Graph(context) as graph:
        for node in (sim, probe, driver):
            graph.add(node)
        streams = [c.topic(s) for c in CELL.cameras for s in ("color", "depth", "camera_info")]
        assert wait_for(lambda: all(probe.counts[topic] for topic in streams), 30.0)
        yield sim, probe, driver, pubs
    rclpy.try_shutdown(context=context)


def test_cameras_publish_on_realsense_topics_with_optical_frames_and_sim_stamps(sim_graph):
    sim, probe, _, _ = sim_graph
    for cam in CELL.cameras:
        color, depth, info = (probe.last[cam.topic(s)] for s in ("color", "depth", "camera_info"))
        assert cam.topic("color") == f"/{cam.name}/color/image_raw"
        assert cam.topic("depth") == f"/{cam.name}/aligned_depth_to_color/image_raw"
        assert (color.encoding, color.width, color.height) == ("rgb8", 64, 48)
        assert depth.encoding == "16UC1"
        assert color.header.frame_id == depth.header.frame_id == info.header.frame_id == cam.optical_frame
        assert color.header.stamp == info.header.stamp
        expected = conv.scale_intrinsics(cam.intrinsics, 64, 48)
        np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), expected.matrix())
        assert conv.stamp_to_seconds(color.header.stamp) <= sim.sim.time_s  # sim time, not wall time
        depth_m = conv.image_to_depth_m(depth)
        assert 0.05 < float(np.median(depth_m[depth_m > 0])) < 3.0  # the table and the arm, metres
        assert conv.image_to_rgb(color).std() > 5  # a rendered scene, not a blank frame


def test_state_and_clock_share_sim_time(sim_graph):
    sim, probe, _, _ = sim_graph
    assert wait_for(lambda: "/clock" in probe.last and "/tcp_pose" in probe.last, 10.0)
    js = probe.last["/joint_states"]
    assert list(js.name) == [j.name for j in CELL.robot.joints] + ["gripper_width"]
    assert js.header.frame_id == ""
    tcp = probe.last["/tcp_pose"]
    assert tcp.header.frame_id == "base"
    assert 0.0 < conv.stamp_to_seconds(tcp.header.stamp) <= conv.stamp_to_seconds(probe.last["/clock"].clock) + 0.05


def test_joint_trajectory_moves_the_joints_like_a_jtc(sim_graph):
    sim, probe, _, pubs = sim_graph
    names = [j.name for j in CELL.robot.joints]
    q0 = np.array(CELL.robot.home_joint_positions_rad)
    goal = q0 + np.array([0.2, 0.0, 0.0, 0.1, 0.0, 0.0, -0.2])
    order = [6, 5, 4, 3, 2, 1, 0]  # joints in any order, as a JTC accepts
    pubs["traj"].publish(conv.joint_trajectory_msg(F, [names[i] for i in order], goal[order][None], [0.5], 0.0))

    def arrived() -> bool:
        js = conv.joint_state_to_arrays(probe.last["/joint_states"], names)
        return np.max(np.abs(js.positions - goal)) < 0.01

    assert wait_for(arrived, 15.0)


def test_equilibrium_pose_and_gripper_commands(sim_graph):
    sim, probe, _, pubs = sim_graph
    start = conv.pose_to_arrays(probe.last["/tcp_pose"])
    goal = start.position_m + np.array([0.0, 0.05, -0.03])
    pubs["pose"].publish(conv.pose_msg(F, goal, start.quaternion_xyzw, 0.0, "base"))
    pubs["gripper"].publish(conv.float_array_msg(F, [1.0]))

    def arrived() -> bool:
        tcp = conv.pose_to_arrays(probe.last["/tcp_pose"])
        width = float(probe.last["/joint_states"].position[-1])
        return np.linalg.norm(tcp.position_m - goal) < 0.005 and width < 0.03

    assert wait_for(arrived, 15.0)
    pubs["gripper"].publish(conv.float_array_msg(F, [0.0]))


def test_camera_dropout_parameter_and_reset_service(sim_graph):
    sim, probe, driver, _ = sim_graph
    topic = CELL.cameras[0].topic("color")
    assert sim.set_parameters([Parameter("publish_cameras", value="no")])[0].successful is False  # typed
    assert sim.set_parameters([Parameter("publish_cameras", value=False)])[0].successful
    assert wait_for(lambda: not sim.publish_cameras, 1.0)
    import time

    time.sleep(0.3)
    before = probe.counts[topic]
    time.sleep(1.0)
    assert probe.counts[topic] == before  # silent
    sim.set_parameters([Parameter("publish_cameras", value=True)])
    assert wait_for(lambda: probe.counts[topic] > before, 10.0)
    t_before = sim.sim.time_s
    response = call(driver, Trigger, "/sim_node/reset")
    assert response.success and sim.sim.time_s >= t_before  # sim time never goes back
    home = np.array(CELL.robot.home_joint_positions_rad)
    np.testing.assert_allclose(sim.sim.state().joint_positions_rad, home, atol=0.02)


def test_read_only_parameters_refuse_changes(sim_graph):
    sim, *_ = sim_graph
    assert not sim.set_parameters([Parameter("cell", value="other")])[0].successful


HEADLESS_TOPIC = "/headless_test/color/image_raw"  # away from the module's in-process twin


def sim_node_process(env_changes: dict[str, str | None]) -> subprocess.Popen:
    """sim_node as ``ros2 run`` starts it (small frames, one camera, its colour image on ``HEADLESS_TOPIC``), with
    ``env_changes`` applied (None unsets)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    args = [
        sys.executable,
        "-m",
        "sim.ros.sim_node",
        "--ros-args",
        "-p",
        "image_width:=32",
        "-p",
        "image_height:=24",
        "-p",
        "camera_fps:=5.0",
        "-p",
        f"cameras:=['{CELL.cameras[0].name}']",
        "-p",
        "publish_depth:=false",
        "-r",
        f"{CELL.cameras[0].topic('color')}:={HEADLESS_TOPIC}",
    ]
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def end_process(proc: subprocess.Popen) -> None:
    """Kill a process we started that is still running (a failed test), by its pid."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=10)


NO_DISPLAY = {"DISPLAY": None, "WAYLAND_DISPLAY": None}


def test_without_a_display_or_mujoco_gl_sim_node_renders_headless(ros_context):
    proc = sim_node_process({**NO_DISPLAY, "MUJOCO_GL": None, "PYOPENGL_PLATFORM": None})
    probe = Probe(ros_context, name="headless_probe")
    topic = HEADLESS_TOPIC
    probe.watch(Image, topic, SENSOR_QOS)
    try:
        with Graph(ros_context) as graph:
            graph.add(probe)
            rendered = wait_for(lambda: probe.counts[topic] > 0 or proc.poll() is not None, 90.0)
            assert rendered and proc.poll() is None, "sim_node published no frame"
            assert conv.image_to_rgb(probe.last[topic]).std() > 5  # a rendered scene, not a black frame
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=20)
    finally:
        end_process(proc)
    assert proc.returncode == 0, stderr[-3000:]  # Ctrl-C is a clean exit, not a failure
    assert re.search(r"MUJOCO_GL=(egl|osmesa)", stderr), stderr[-3000:]


def test_a_render_loop_that_dies_ends_sim_node_with_the_error(ros_context):
    # MUJOCO_GL=glfw is the user's explicit choice and is kept; without a display the loop's first frame fails
    proc = sim_node_process({**NO_DISPLAY, "MUJOCO_GL": "glfw", "PYOPENGL_PLATFORM": None})
    try:
        _, stderr = proc.communicate(timeout=90)
    finally:
        end_process(proc)
    status = proc.returncode
    assert status == 1, stderr[-3000:]
    assert "[sim_node] error: worker thread 'sim_loop' died" in stderr
    assert "OpenGL" in stderr and "Traceback" in stderr


def test_with_no_renderer_sim_node_refuses_to_start_instead_of_dying_at_its_first_frame(ros_context, monkeypatch):
    import sim.ros.sim_node as sim_node_module
    from sim.gl_backend import GLBackendError, select_gl_backend

    with pytest.raises(GLBackendError) as failed:  # what import-time selection meets on a machine without GL
        select_gl_backend({}, probe=lambda backend: f"{backend}: cannot open the display library")
    monkeypatch.setattr(sim_node_module, "GL_ERROR", failed.value)
    node = SimNode(context=ros_context)
    try:
        with pytest.raises(OSError, match=r"no headless OpenGL backend renders.*libosmesa6"):  # run_node: exit 2
            node.configure()
        assert node.sim is None  # nothing was built, no thread started
    finally:
        node.destroy_node()
