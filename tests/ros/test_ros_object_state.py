"""object_state_node on loopback: a fused cloud and the robot's state in, the task's poses and the estimated
observation keys out, as the policy and the recorder read them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")

from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from rclpy.parameter import Parameter
from ros_harness import Graph, Probe, wait_for
from sensor_msgs.msg import JointState, PointCloud2
from std_msgs.msg import Float64MultiArray

from hardware_configs import load_task
from ros_support import conversions as conv
from ros_support.node import SENSOR_QOS, STATE_QOS
from tests.perception.test_object_state import pose, scene

pytestmark = pytest.mark.ros


def test_the_node_publishes_the_cube_pose_and_the_estimated_keys(ros_context):
    from perception.ros.object_state_node import ObjectStateNode

    cube = load_task("lift").objects[0]
    T_true = pose(0.5, 0.02, cube.half_size_m[-1], 0.4)
    points, colors = scene(cube, T_true, np.random.default_rng(0))
    node = ObjectStateNode(context=ros_context, parameter_overrides=[Parameter("task", value="lift")])
    node.configure()
    probe = Probe(ros_context)
    probe.watch(PoseWithCovarianceStamped, "/manip/objects/cube", 10)
    probe.watch(Float64MultiArray, "/manip/estimated", 10)
    probe.watch(Float64MultiArray, "/manip/obs/estimated_relative", 10)
    factory = conv.RclpyFactory()
    cloud_pub = probe.create_publisher(PointCloud2, "/manip/points", SENSOR_QOS)
    tcp_pub = probe.create_publisher(PoseStamped, "/tcp_pose", STATE_QOS)
    joints_pub = probe.create_publisher(JointState, "/joint_states", STATE_QOS)
    rgb = np.clip(np.rint(colors * 255), 0, 255).astype(np.uint8)
    with Graph(ros_context) as graph:
        graph.add(node)
        graph.add(probe)

        def publish_once() -> bool:
            stamp = 100.0 + 0.1 * node.updates
            tcp_pub.publish(conv.pose_msg(factory, np.array([0.45, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0]),
                                          stamp, "panda_link0"))
            joints_pub.publish(conv.joint_state_msg(factory, ["gripper_width"], np.array([0.08]), stamp))
            cloud_pub.publish(conv.pointcloud_msg(factory, points.astype(np.float32), stamp, "panda_link0", rgb=rgb))
            return probe.counts["/manip/objects/cube"] >= 2

        assert wait_for(publish_once, 30.0, interval=0.3)
    msg = probe.last["/manip/objects/cube"]
    position = [msg.pose.pose.position.x, msg.pose.pose.position.y, msg.pose.pose.position.z]
    np.testing.assert_allclose(position, T_true[:3, 3], atol=0.003)
    assert msg.header.frame_id == node.cell.robot.base_frame
    assert 0.0 < msg.pose.covariance[0] < 1e-4  # found: (sigma / confidence)^2, millimetres
    estimated = probe.last["/manip/estimated"]
    labels = [d.label for d in estimated.layout.dim]
    assert labels == ["estimated", "estimated_relative", "estimate_confidence"]
    sizes = [d.size for d in estimated.layout.dim]
    assert sizes == [7, 5, 1] and len(estimated.data) == sum(sizes)
    np.testing.assert_allclose(estimated.data[:3], T_true[:3, 3], atol=0.003)
    assert len(probe.last["/manip/obs/estimated_relative"].data) == 5  # each key alone, as the fine-tuning node reads


def test_the_node_judges_success_on_the_estimate_and_restarts_with_each_episode(ros_context):
    """Lift succeeds 10 cm above where the episode found the cube: the node says False at rest, True once the
    cube is carried up 12 cm, and a new episode announced on the session's status measures from the cube's new
    place (False again although it is still high)."""
    import json

    from std_msgs.msg import Bool, String

    from perception.ros.object_state_node import ObjectStateNode

    cube = load_task("lift").objects[0]
    rng = np.random.default_rng(1)
    node = ObjectStateNode(context=ros_context, parameter_overrides=[Parameter("task", value="lift")])
    node.configure()
    probe = Probe(ros_context)
    verdicts: list[bool] = []
    probe.create_subscription(Bool, "/manip/success", lambda m: verdicts.append(m.data), 10)
    factory = conv.RclpyFactory()
    cloud_pub = probe.create_publisher(PointCloud2, "/manip/points", SENSOR_QOS)
    tcp_pub = probe.create_publisher(PoseStamped, "/tcp_pose", STATE_QOS)
    joints_pub = probe.create_publisher(JointState, "/joint_states", STATE_QOS)
    status_pub = probe.create_publisher(String, "/finetune_session_node/status", 10)
    height = {"z": float(cube.half_size_m[-1])}

    def publish(n_updates: int, until) -> bool:
        start = node.updates

        def once() -> bool:
            stamp = 200.0 + 0.1 * node.updates
            points, colors = scene(cube, pose(0.5, 0.02, height["z"], 0.4), rng)
            rgb = np.clip(np.rint(colors * 255), 0, 255).astype(np.uint8)
            tcp_pub.publish(conv.pose_msg(factory, np.array([0.45, 0.0, 0.45]), np.array([1.0, 0.0, 0.0, 0.0]),
                                          stamp, "panda_link0"))
            joints_pub.publish(conv.joint_state_msg(factory, ["gripper_width"], np.array([0.08]), stamp))
            cloud_pub.publish(conv.pointcloud_msg(factory, points.astype(np.float32), stamp, "panda_link0", rgb=rgb))
            return node.updates - start >= n_updates and until()

        return wait_for(once, 60.0, interval=0.25)

    with Graph(ros_context) as graph:
        graph.add(node)
        graph.add(probe)
        assert publish(2, lambda: len(verdicts) >= 1)
        assert not any(verdicts)  # at rest: judged, and not a success
        for _ in range(12):  # carried up 1 cm per update, as the tracker follows it
            height["z"] += 0.01
            assert publish(1, lambda: True)
        assert publish(1, lambda: bool(verdicts) and verdicts[-1])
        status_pub.publish(String(data=json.dumps({"phase": "running", "episode": 7})))
        assert wait_for(lambda: node._episode == 7, 10.0)
        count = len(verdicts)
        assert publish(2, lambda: len(verdicts) > count)
        assert verdicts[-1] is False  # measured from where episode 7 found the cube
