"""The sim graph end to end, for a few seconds of sim time: twin images in, a policy, the controller, the twin
moving, an episode recorded. Once in one process (MultiThreadedExecutor) and once as separate processes.

The policy here is scripted: every policy tick it sends the delta action towards a goal, stamped with the newest
image it has, exactly as ``policy_node`` stamps its actions. Because it keeps sending from its last image even
when images stop, it also shows the controller holding on a camera dropout although commands keep coming.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")
pytest.importorskip("gym_hil", reason="the twin needs gym-hil's Panda model: pip install --no-deps gym-hil==0.1.14")

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_harness import Graph, Probe, call, node_process, stop_process, wait_for
from sensor_msgs.msg import Image, PointCloud2
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from controllers.actions import ACTION_NAMES
from hardware_configs import load_cell
from robot_learning.data.episode_store import EpisodeStore
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, SENSOR_QOS, STATE_QOS

pytestmark = pytest.mark.ros
CELL = load_cell("franka_3cam")
OFFSET = np.array([0.0, 0.08, -0.05])  # goal relative to the TCP's start [m]
SIM_PARAMS = {"image_width": 48, "image_height": 36, "camera_fps": 10.0, "real_time_factor": 1.0,
              "publish_depth": False}


class ScriptedPolicy(Node):
    """Sends ``[delta to goal (<= 2 cm), 0 rotation, gripper 0]`` every policy tick, stamped with its last image."""

    def __init__(self, context) -> None:
        super().__init__("scripted_policy", context=context,
                         parameter_overrides=[Parameter("use_sim_time", value=True)])
        self.f = conv.RclpyFactory()
        self.image_stamp: float | None = None
        self.tcp: np.ndarray | None = None
        self.start: np.ndarray | None = None
        self.sent = 0
        self.create_subscription(Image, CELL.cameras[0].topic("color"), self._on_image, SENSOR_QOS)
        self.create_subscription(PoseStamped, "/tcp_pose", self._on_tcp, STATE_QOS)
        self._pub = self.create_publisher(JointTrajectory, "/manip/action", COMMAND_QOS)
        self.create_timer(1.0 / CELL.rates.policy_hz, self._act)

    def _on_image(self, msg: Image) -> None:
        self.image_stamp = conv.stamp_to_seconds(msg.header.stamp)

    def _on_tcp(self, msg: PoseStamped) -> None:
        self.tcp = conv.pose_to_arrays(msg).position_m
        if self.start is None:
            self.start = self.tcp.copy()

    @property
    def goal(self) -> np.ndarray:
        return self.start + OFFSET

    def _act(self) -> None:
        if self.image_stamp is None or self.tcp is None:
            return
        delta = self.goal - self.tcp
        delta *= min(1.0, 0.02 / max(np.linalg.norm(delta), 1e-9))
        action = [*delta, 0.0, 0.0, 0.0, 0.0]
        self._pub.publish(conv.joint_trajectory_msg(self.f, ACTION_NAMES, [action], [0.0], self.image_stamp))
        self.sent += 1


def check_episode(store_path, min_steps: int) -> dict:
    with EpisodeStore.open(store_path) as store:
        assert store.n_episodes == 1
        store.verify()
        ep = store.get_episode(0)
    assert len(ep["action"]) >= min_steps
    assert np.all(np.diff(ep["timestamp"]) > 0) and ep["timestamp"][0] > 0  # sim time, increasing
    assert ep["cam_front_rgb"].shape[1:] == (96, 96, 3) and ep["cam_front_rgb"].std() > 5
    return ep


def test_sim_graph_in_one_process(ros_context, tmp_path):
    from controllers.ros.controller_node import ControllerNode
    from perception.ros.perception_node import PerceptionNode
    from robot_learning.ros.session_node import SessionNode
    from sim.ros.sim_node import SimNode

    sim_time = [Parameter("use_sim_time", value=True)]
    sim = SimNode(context=ros_context, parameter_overrides=[
        Parameter(k, value=v) for k, v in {**SIM_PARAMS, "publish_depth": True}.items()])  # depth for perception
    controller = ControllerNode(context=ros_context, parameter_overrides=[
        *sim_time, Parameter("controller_type", value="joint_trajectory")])
    session = SessionNode(context=ros_context, parameter_overrides=[
        *sim_time, Parameter("store_path", value=str(tmp_path / "graph.zarr")), Parameter("durable", value=False)])
    perception = PerceptionNode(context=ros_context, parameter_overrides=[
        *sim_time, Parameter("sync_tolerance_s", value=0.01), Parameter("rate_hz", value=2.0)])
    for node in (sim, controller, session, perception):
        node.configure()
    policy = ScriptedPolicy(ros_context)
    cloud = Probe(ros_context)
    cloud.watch(PointCloud2, "/manip/points", SENSOR_QOS)
    with Graph(ros_context) as graph:
        for node in (sim, controller, session, perception, policy, cloud):
            graph.add(node)
        assert wait_for(lambda: policy.sent > 2, 30.0), "the policy never got an image and a pose"
        assert call(policy, Trigger, "/session_node/start").success
        t0 = sim.sim.time_s
        assert wait_for(lambda: np.linalg.norm(policy.tcp - policy.goal) < 0.01 and sim.sim.time_s > t0 + 2.0,
                        90.0), f"TCP {policy.tcp} never reached {policy.goal}"
        assert call(policy, SetBool, "/session_node/accept", SetBool.Request(data=True)).success
        goal = policy.goal.copy()
        assert wait_for(lambda: "/manip/points" in cloud.last, 20.0), perception.matcher.health
        xyz, _ = conv.pointcloud_to_arrays(cloud.last["/manip/points"])
        assert len(xyz) > 50 and np.median(xyz[:, 2]) < 0.05  # mostly the table top, in the base frame
        # camera dropout: the policy keeps sending from its last image, towards a new goal; the controller holds
        assert sim.set_parameters([Parameter("publish_cameras", value=False)])[0].successful
        assert wait_for(lambda: controller.holding is not None and controller.holding.startswith("no data"), 10.0)
        policy.start = policy.tcp + np.array([0.0, -0.08, 0.05]) - OFFSET  # a new goal 10 cm away
        t1 = sim.sim.time_s
        assert wait_for(lambda: sim.sim.time_s > t1 + 0.5, 30.0)  # braking from the last motion is over
        held, sent = sim.sim.state().tcp_position_m, policy.sent
        assert wait_for(lambda: sim.sim.time_s > t1 + 1.5, 30.0)
        assert policy.sent > sent and np.linalg.norm(sim.sim.state().tcp_position_m - held) < 0.001
        assert controller.holding.startswith("no data")
    ep = check_episode(tmp_path / "graph.zarr", min_steps=15)
    # the last step is stamped with the last action before accept: up to one policy period (0.1 s at <= 0.25 m/s)
    # older than the moment the TCP was within 1 cm of the goal
    assert np.linalg.norm(ep["tcp_position"][-1] - goal) < 0.01 + 0.025
    assert np.linalg.norm(ep["tcp_position"][-1] - ep["tcp_position"][0]) > 0.03  # recorded while moving


def test_sim_graph_as_separate_processes(ros_context, tmp_path):
    store_path = tmp_path / "procs.zarr"
    procs = [
        node_process("sim.ros.sim_node", SIM_PARAMS),
        node_process("controllers.ros.controller_node", {"use_sim_time": True, "controller_type": "cartesian_pose"}),
        node_process("robot_learning.ros.session_node", {"use_sim_time": True, "store_path": str(store_path)}),
    ]
    policy = ScriptedPolicy(ros_context)
    output = ""
    try:
        with Graph(ros_context) as graph:
            graph.add(policy)
            assert wait_for(lambda: policy.sent > 2, 60.0), "no images or poses from the sim process"
            assert call(policy, Trigger, "/session_node/start", timeout=30.0).success
            start, sent0 = policy.tcp.copy(), policy.sent
            assert wait_for(lambda: np.linalg.norm(policy.tcp - policy.goal) < 0.01 and policy.sent > sent0 + 15,
                            90.0)
            assert np.linalg.norm(policy.tcp - start) > 0.05  # the twin moved
            assert call(policy, SetBool, "/session_node/accept", SetBool.Request(data=True)).success
    finally:
        output = "".join(stop_process(p) for p in procs)
    assert "error" not in output.lower() or "e-stop" in output.lower(), output[-3000:]
    check_episode(store_path, min_steps=10)
