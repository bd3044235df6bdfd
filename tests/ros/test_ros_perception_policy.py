"""camera_node (RealSense recording playback), perception_node (sync, fused cloud, dropout diagnostics) and
policy_node (a tiny trained checkpoint; refusal of one that does not fit the cell) on loopback."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter
from ros_harness import FakeCell, Graph, Probe, wait_for
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from trajectory_msgs.msg import JointTrajectory

from hardware_configs import load_cell
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, SENSOR_QOS

pytestmark = pytest.mark.ros
CELL = load_cell("franka_3cam")


def test_camera_node_plays_a_realsense_recording_on_realsense_topics(ros_context, tmp_path):
    pytest.importorskip("pyrealsense2", reason="pyrealsense2 missing: pip install -e '.[camera]'")
    from perception.cameras import Frame, recording_path
    from perception.recording import write_recording
    from perception.ros.camera_node import CameraNode

    cam = CELL.camera("cam_front")
    intr = conv.scale_intrinsics(cam.intrinsics, 64, 48)
    rng = np.random.default_rng(0)
    frames = [Frame("cam_front", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), np.full((48, 64), 0.75, np.float32),
                    k * 1000 / 30, 0.0, k) for k in range(30)]
    write_recording(frames, intr, recording_path(tmp_path, "cam_front"), time_origin_ms=0.0, pace=True)
    node = CameraNode(context=ros_context, parameter_overrides=[
        Parameter("source", value="playback"), Parameter("recording_dir", value=str(tmp_path)),
        Parameter("cameras", value=["cam_front"])])
    node.configure()
    probe = Probe(ros_context)
    for stream in ("color", "depth", "camera_info"):
        probe.watch(CameraInfo if stream == "camera_info" else Image, cam.topic(stream), SENSOR_QOS)
    with Graph(ros_context) as graph:
        graph.add(node)
        graph.add(probe)
        assert wait_for(lambda: probe.counts[cam.topic("depth")] >= 5, 20.0)
    color, depth = probe.last[cam.topic("color")], probe.last[cam.topic("depth")]
    info = probe.last[cam.topic("camera_info")]
    assert color.header.frame_id == cam.optical_frame and (color.width, color.height) == (64, 48)
    assert color.encoding == "rgb8" and depth.encoding == "16UC1"
    depth_m = conv.image_to_depth_m(depth)
    valid = depth_m > 0  # librealsense's align leaves holes (0 = no depth), as on a real camera
    assert valid.mean() > 0.5
    np.testing.assert_allclose(depth_m[valid], 0.75, atol=1e-3)
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), intr.matrix(), atol=0.5)
    assert abs(conv.stamp_to_seconds(color.header.stamp) - time.time()) < 5.0  # this node's clock


def test_perception_node_fuses_synced_cameras_and_reports_a_dropout(ros_context):
    pytest.importorskip("open3d", reason="open3d missing: pip install -e '.[camera]'")
    from perception.ros.perception_node import PerceptionNode

    node = PerceptionNode(context=ros_context, parameter_overrides=[
        Parameter("rate_hz", value=10.0), Parameter("stride", value=1), Parameter("voxel_m", value=0.0),
        Parameter("dropout_timeout_s", value=0.3)])
    node.configure()
    cell = FakeCell(ros_context, CELL, size=(32, 24), depth_m=0.9)
    probe = Probe(ros_context)
    probe.watch(PointCloud2, "/manip/points", SENSOR_QOS)
    probe.watch(DiagnosticArray, "/diagnostics", 10, keep=True)
    with Graph(ros_context) as graph:
        for n in (node, cell, probe):
            graph.add(n)
        assert wait_for(lambda: probe.counts["/manip/points"] >= 3, 20.0)
        cloud = probe.last["/manip/points"]
        cell.cameras_on["cam_side"] = False
        time.sleep(0.5)
        published = node.clouds_published
        assert wait_for(lambda: any(s.name.endswith("cam_side") and s.level == DiagnosticStatus.ERROR
                                    for d in probe.history.get("/diagnostics", []) for s in d.status), 10.0), (
            [(s.name, s.level, s.message) for d in probe.history.get("/diagnostics", [])[-2:] for s in d.status])
        assert node.clouds_published <= published + 1  # no cloud without every camera
        assert node.matcher.health["cam_side"].missing > 0
    assert cloud.header.frame_id == "base"
    xyz, rgb = conv.pointcloud_to_arrays(cloud)
    assert len(xyz) > 100 and rgb is not None
    box = CELL.workspace
    assert np.all(xyz >= np.array(box.min_m) - 0.021) and np.all(xyz <= np.array(box.max_m) + 0.021)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny policy trained for one epoch on a made-up robot-schema store of the cell's three cameras."""
    pytest.importorskip("torch", reason="torch missing: pip install -e '.[learning]'")
    import torch

    from robot_learning.data.episode_store import EpisodeStore
    from robot_learning.data.robot_steps import robot_dataset_specs
    from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig, TrainConfig
    from robot_learning.sessions.train import train_policy

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("policy")
    specs = robot_dataset_specs(CELL, [c.name for c in CELL.cameras], (16, 16), depth=False)
    rng = np.random.default_rng(0)
    with EpisodeStore.create(root / "data.zarr", specs, {"cell": CELL.name, "task": "lift"}, durable=False) as store:
        for _ in range(2):
            with store.begin_episode() as ep:
                for _ in range(12):
                    ep.add_step(**{k: (rng.integers(0, 255, s.shape) if s.dtype == np.uint8 else
                                       rng.uniform(-0.01, 0.01, s.shape)).astype(s.dtype) for k, s in specs.items()})
                ep.commit(success=True)
    config = PolicyTrainingConfig(
        policy=DiffusionConfig(low_dim_keys=["tcp_position", "tcp_rot6d", "gripper_width"], horizon=8,
                               n_action_steps=4, down_dims=[16, 32], n_groups=4, diffusion_step_embed_dim=16,
                               kernel_size=3, small_conv_channels=[8, 8, 8], spatial_softmax_keypoints=8,
                               image_feature_dim=16, num_inference_steps=2),
        train=TrainConfig(batch_size=8, num_epochs=1, lr_warmup_steps=1, num_threads=1))
    return train_policy(root / "data.zarr", config, root / "run", device="cpu", progress=False).policy_path


def test_policy_node_acts_with_the_observation_stamp(ros_context, tiny_checkpoint):
    from robot_learning.ros.policy_node import PolicyNode

    node = PolicyNode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(tiny_checkpoint)), Parameter("device", value="cpu")])
    node.configure()
    cell = FakeCell(ros_context, CELL, size=(16, 16))
    probe = Probe(ros_context)
    probe.watch(JointTrajectory, "/manip/action", COMMAND_QOS, keep=True)
    with Graph(ros_context) as graph:
        for n in (node, cell, probe):
            graph.add(n)
        assert wait_for(lambda: probe.counts["/manip/action"] >= 5, 60.0), node.loop.skipped
    actions = probe.history["/manip/action"]
    assert list(actions[-1].joint_names) == ["dx", "dy", "dz", "rx", "ry", "rz", "gripper"]
    stamps = [conv.stamp_to_seconds(a.header.stamp) for a in actions]
    assert all(b > a for a, b in itertools.pairwise(stamps))  # one action per new observation
    assert all(np.all(np.isfinite(a.points[0].positions)) for a in actions)
    node.close()


def test_policy_node_refuses_a_checkpoint_that_does_not_fit_the_cell(ros_context, tiny_checkpoint, tmp_path):
    from hardware_configs.loader import dump_yaml
    from robot_learning.ros.policy_core import PolicyMismatchError
    from robot_learning.ros.policy_node import PolicyNode

    other = CELL.model_copy(update={"cameras": [c.model_copy(update={"name": c.name.replace("cam_side", "cam_top")})
                                                for c in CELL.cameras]})
    path = tmp_path / "franka_3cam.yaml"  # same cell name, but a camera renamed
    path.write_text(dump_yaml(other))
    node = PolicyNode(context=ros_context, parameter_overrides=[
        Parameter("checkpoint", value=str(tiny_checkpoint)), Parameter("cell", value=str(path)),
        Parameter("device", value="cpu")])
    with pytest.raises(PolicyMismatchError, match=r"cameras \['cam_side'\] are not in the cell"):
        node.configure()
    node.destroy_node()
