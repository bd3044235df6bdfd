"""session_node: episodes from synchronised topics into the EpisodeStore; services; a killed node loses nothing
committed."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")

from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_harness import REPO, FakeCell, Graph, call, node_process, stop_process, wait_for
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from hardware_configs import load_cell
from robot_learning.data.episode_store import EpisodeStore

pytestmark = pytest.mark.ros
CELL = load_cell("franka_3cam")


def test_episodes_are_recorded_accepted_and_discarded(ros_context, tmp_path):
    from robot_learning.ros.session_node import SessionNode

    store_path = tmp_path / "session.zarr"
    session = SessionNode(context=ros_context, parameter_overrides=[
        Parameter("store_path", value=str(store_path)), Parameter("image_width", value=8),
        Parameter("image_height", value=6), Parameter("durable", value=False),
        Parameter("sync_tolerance_s", value=0.01)])  # < a frame period: a lost frame skips the step
    session.configure()
    cell = FakeCell(ros_context, CELL, act=True)
    operator = Node("operator", context=ros_context)
    events: list[str] = []
    operator.create_subscription(String, "/session_node/events", lambda m: events.append(m.data), 10)
    with Graph(ros_context) as graph:
        for node in (session, cell, operator):
            graph.add(node)
        refused = call(operator, SetBool, "/session_node/accept", SetBool.Request(data=True))
        assert not refused.success and "no episode" in refused.message
        assert call(operator, Trigger, "/session_node/start").success
        assert not call(operator, Trigger, "/session_node/start").success  # one episode at a time
        assert wait_for(lambda: session.recorder.steps >= 8, 20.0)
        assert call(operator, Trigger, "/session_node/stop").success
        steps = session.recorder.steps
        response = call(operator, SetBool, "/session_node/accept", SetBool.Request(data=True))
        assert response.success and "committed episode 0" in response.message
        assert call(operator, Trigger, "/session_node/start").success
        assert wait_for(lambda: session.recorder.steps >= 2, 20.0)
        assert call(operator, Trigger, "/session_node/discard").success
        assert wait_for(lambda: len(events) >= 5, 10.0)
    assert events[:5] == ["start", "stop", "accept 0 True", "start", "discard"]
    with EpisodeStore.open(store_path) as store:
        assert store.n_episodes == 1 and store.attrs["source"] == "ros2_session"
        ep = store.get_episode(0)
        assert len(ep["action"]) >= steps  # steps recorded between stop and accept are not lost or added
        store.verify()
    assert ep["cam_front_rgb"].shape[1:] == (6, 8, 3)
    np.testing.assert_allclose(ep["action"][:, 6], 0.5)
    np.testing.assert_allclose(ep["tcp_position"], np.tile([0.5, 0.0, 0.3], (len(ep["tcp_position"]), 1)), atol=1e-6)
    # each step pairs the action with the frames of the stamp it was computed from
    frame_values = ep["cam_front_rgb"][:, 0, 0, 0].astype(int)
    side_values = ep["cam_side_rgb"][:, 0, 0, 0].astype(int)
    assert np.all((side_values - frame_values) % 256 == 40)


def test_with_record_estimates_each_step_stores_the_robots_estimate_of_the_scene(ros_context, tmp_path):
    """What object_state_node publishes on /manip/estimated is stored under the estimated keys, so a residual or
    a reward on the estimate can learn from teleoperated or policy episodes; no privileged key is stored."""
    from std_msgs.msg import Float64MultiArray

    from robot_learning.ros.session_node import SessionNode

    store_path = tmp_path / "estimates.zarr"
    session = SessionNode(context=ros_context, parameter_overrides=[
        Parameter("store_path", value=str(store_path)), Parameter("image_width", value=8),
        Parameter("image_height", value=6), Parameter("durable", value=False), Parameter("task", value="lift"),
        Parameter("record_estimates", value=True)])
    session.configure()
    cell = FakeCell(ros_context, CELL, act=True)
    operator = Node("operator", context=ros_context)
    estimate = np.concatenate([[0.5, 0.02, 0.02, 0, 0, 0, 1], np.arange(5) * 0.01, [0.9]])  # lift: 7 + 5 + 1
    publisher = operator.create_publisher(Float64MultiArray, "/manip/estimated", 10)
    operator.create_timer(0.05, lambda: publisher.publish(Float64MultiArray(data=estimate.tolist())))
    with Graph(ros_context) as graph:
        for node in (session, cell, operator):
            graph.add(node)
        assert call(operator, Trigger, "/session_node/start").success
        assert wait_for(lambda: session.recorder.steps >= 4, 20.0)
        assert call(operator, Trigger, "/session_node/stop").success
        assert call(operator, SetBool, "/session_node/accept", SetBool.Request(data=True)).success
    with EpisodeStore.open(store_path) as store:
        ep = store.get_episode(0)
        assert not any(key.startswith("privileged") for key in ep)
    n = len(ep["action"])
    np.testing.assert_allclose(ep["estimated"], np.tile(estimate[:7], (n, 1)), atol=1e-6)
    np.testing.assert_allclose(ep["estimated_relative"], np.tile(estimate[7:12], (n, 1)), atol=1e-6)
    np.testing.assert_allclose(ep["estimate_confidence"], np.full((n, 1), 0.9), atol=1e-6)


def test_killed_session_keeps_committed_episodes(ros_context, tmp_path):
    store_path = tmp_path / "kill.zarr"
    proc = node_process("robot_learning.ros.session_node", {"store_path": str(store_path), "image_width": 8,
                                                             "image_height": 6})
    cell = FakeCell(ros_context, CELL, act=True)
    operator = Node("operator", context=ros_context)
    try:
        with Graph(ros_context) as graph:
            graph.add(cell)
            graph.add(operator)
            assert call(operator, Trigger, "/session_node/start", timeout=30.0).success
            n_actions = len(cell.actions_sent)
            assert wait_for(lambda: len(cell.actions_sent) >= n_actions + 6, 20.0)
            assert call(operator, SetBool, "/session_node/accept", SetBool.Request(data=False)).success
            assert call(operator, Trigger, "/session_node/start").success
            n_actions = len(cell.actions_sent)
            assert wait_for(lambda: len(cell.actions_sent) >= n_actions + 3, 20.0)
            proc.send_signal(signal.SIGKILL)  # mid-episode
            proc.wait(timeout=10)
    finally:
        stop_process(proc)
    with EpisodeStore.open(store_path, mode="a") as store:  # the writer lock died with the process
        assert store.n_episodes == 1 and not store.episode_info(0)["success"]
        store.verify()


def test_missing_store_path_is_a_clear_error():
    result = subprocess.run([sys.executable, "-m", "robot_learning.ros.session_node"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "parameter store_path is required (string)" in result.stderr and "Traceback" not in result.stderr
