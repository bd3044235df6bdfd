"""``manip-stack import-bag``: bags written here with rosbags' Writer (as ``ros2 bag record`` writes them), no ROS."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags missing: pip install -e '.[ros]'")

from rosbags.rosbag2 import StoragePlugin, Writer

from controllers.actions import ACTION_NAMES, apply_delta_action
from controllers.interface import CartesianTarget
from hardware_configs import load_cell
from robot_learning.cli.main import main as cli_main
from robot_learning.data.bag_import import ImportOptions, import_bags
from robot_learning.data.episode_store import EpisodeStore
from ros_support import conversions as conv

RB = conv.RosbagsFactory()
CELL = load_cell("franka_3cam")
QUAT = np.array([0.0, 1.0, 0.0, 0.0])


def tcp_at(t: float) -> np.ndarray:
    return np.array([0.5 + 0.05 * t, 0.0, 0.3 - 0.02 * t])


def write_bag(path, plugin, duration_s=2.0, actions=True, events=None, drop_camera_after=None):
    """A bag like a recording of the twin: 3 cameras at 10 Hz (32x24), joint states and TCP at 50 Hz, actions at
    10 Hz stamped with the image stamp, optional session events (log-time ns, text). Log time = stamp + 5 ms."""
    ts = RB.typestore
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}

        def put(topic, msg, log_s):
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msg.__msgtype__, typestore=ts)
            writer.write(conns[topic], round(log_s * 1e9), ts.serialize_cdr(msg, msg.__msgtype__))

        names = [j.name for j in CELL.robot.joints] + ["gripper_width"]
        for k in range(int(duration_s * 50) + 1):
            t = k / 50
            q = np.array(CELL.robot.home_joint_positions_rad) + 0.01 * t
            put("/joint_states", conv.joint_state_msg(RB, names, [*q, 0.085 - 0.02 * t], t), t + 0.005)
            put("/tcp_pose", conv.pose_msg(RB, tcp_at(t), QUAT, t, "base"), t + 0.005)
        for k in range(int(duration_s * 10) + 1):
            t = k / 10
            for i, cam in enumerate(CELL.cameras):
                if drop_camera_after is not None and i == 0 and t > drop_camera_after:
                    continue
                rgb = np.full((24, 32, 3), (10 * k + i) % 256, np.uint8)
                put(cam.topic("color"), conv.image_msg(RB, rgb, t, cam.optical_frame), t + 0.005)
                put(cam.topic("depth"), conv.depth_image_msg(RB, np.full((24, 32), 1.0 + t, np.float32), t,
                                                             cam.optical_frame), t + 0.005)
            if actions:
                action = [0.005, 0.0, -0.002, 0.0, 0.0, 0.0, t / duration_s]
                put("/manip/action", conv.joint_trajectory_msg(RB, ACTION_NAMES, [action], [0.0], t), t + 0.02)
        for log_s, text in events or []:
            msg = RB.cls("std_msgs/msg/String")(data=text)
            put("/session_node/events", msg, log_s)


@pytest.mark.parametrize("plugin", [StoragePlugin.MCAP, StoragePlugin.SQLITE3], ids=["mcap", "db3"])
def test_bag_with_actions_becomes_one_episode(tmp_path, plugin):
    bag = tmp_path / "demo"
    write_bag(bag, plugin)
    storage_file = next(bag.glob("*.mcap" if plugin is StoragePlugin.MCAP else "*.db3"))
    report = import_bags([storage_file], tmp_path / "store.zarr", ImportOptions(depth=True, image_size=(16, 12),
                                                                                  success=True))
    assert (report.episodes, report.steps, report.skipped) == (1, 21, {})
    with EpisodeStore.open(tmp_path / "store.zarr") as store:
        assert store.attrs["source"] == "ros2_bag" and store.n_episodes == 1
        ep = store.get_episode(0)
        info = store.episode_info(0)
    assert info["success"] and info["bag"] == storage_file.name
    np.testing.assert_allclose(ep["timestamp"], np.arange(21) / 10)
    np.testing.assert_allclose(ep["action"][:, 6], np.arange(21) / 20, atol=1e-6)
    assert ep["cam_front_rgb"].shape == (21, 12, 16, 3)
    assert int(ep["cam_side_rgb"][7, 0, 0, 0]) == 71  # the frame stamped 0.7 s of camera 1, not a neighbour
    np.testing.assert_allclose(ep["cam_wrist_depth"][5], 1.5, atol=1e-3)
    np.testing.assert_allclose(ep["tcp_position"][10], tcp_at(1.0), atol=1e-6)
    np.testing.assert_allclose(ep["gripper_width"][:, 0], 0.085 - 0.02 * ep["timestamp"], atol=1e-6)
    np.testing.assert_allclose(ep["tcp_rot6d"][0], [-1, 0, 0, 0, 1, 0], atol=1e-9)  # R = diag(-1, 1, -1)


def test_bag_without_actions_takes_the_observed_motion(tmp_path):
    write_bag(tmp_path / "motion", StoragePlugin.MCAP, actions=False)
    report = import_bags([tmp_path / "motion"], tmp_path / "store.zarr")  # the bag directory works too
    assert report.episodes == 1 and report.steps == 20  # t = 0.0 .. 1.9, each with a next pose
    with EpisodeStore.open(tmp_path / "store.zarr") as store:
        ep = store.get_episode(0)
    for k in range(len(ep["action"]) - 1):  # each action moves the TCP onto the next step's pose
        start = CartesianTarget(ep["tcp_position"][k], ep["tcp_quaternion"][k], 0.0)
        moved = apply_delta_action(start, ep["action"][k])
        np.testing.assert_allclose(moved.position_m, ep["tcp_position"][k + 1], atol=1e-6)
    closure = ep["action"][:, 6]
    assert np.all(np.diff(closure) > 0) and 0 < closure[0] < closure[-1] < 1


def test_session_events_split_episodes_and_drop_discarded_ones(tmp_path):
    events = [(0.0, "start"), (0.83, "accept 0 True"), (0.9, "start"), (1.3, "discard"), (1.35, "start"),
              (2.1, "accept 1 False")]
    write_bag(tmp_path / "session", StoragePlugin.MCAP, events=events)
    report = import_bags([tmp_path / "session"], tmp_path / "store.zarr")
    assert report.episodes == 2
    with EpisodeStore.open(tmp_path / "store.zarr") as store:
        first, second = store.get_episode(0), store.get_episode(1)
        assert store.episode_info(0)["success"] and not store.episode_info(1)["success"]
    np.testing.assert_allclose(first["timestamp"], np.arange(9) / 10)  # actions logged at t + 0.02 <= 0.83
    np.testing.assert_allclose(second["timestamp"], np.arange(14, 21) / 10)


def test_missing_camera_frames_skip_steps_not_episodes(tmp_path):
    write_bag(tmp_path / "drop", StoragePlugin.MCAP, drop_camera_after=1.0)
    report = import_bags([tmp_path / "drop"], tmp_path / "store.zarr")
    assert report.steps == 11 and report.skipped == {"cam_front_rgb": 10}


def test_cli_import_bag_appends_and_reports(tmp_path, capsys):
    write_bag(tmp_path / "a", StoragePlugin.MCAP, duration_s=1.0)
    write_bag(tmp_path / "b", StoragePlugin.SQLITE3, duration_s=1.0)
    out = tmp_path / "store.zarr"
    assert cli_main(["import-bag", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out),
                     "--image-size", "8x8", "--success"]) == 0
    assert "imported 2 episodes (22 steps) from 2 bags" in capsys.readouterr().out
    assert cli_main(["import-bag", str(tmp_path / "nope.mcap"), "--out", str(out)]) == 2
    assert "no bag at" in capsys.readouterr().err
    with EpisodeStore.open(out) as store:
        assert store.n_episodes == 2
        store.verify()



def write_topics_bag(path, topics, n=5):
    """A bag holding ``n`` messages (at 10 Hz) on each topic; ``topics`` maps a topic to ``make(t) -> message``, or to
    a message type name for a topic that was announced but never received a message."""
    ts = RB.typestore
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, make in topics.items():
            if isinstance(make, str):
                writer.add_connection(topic, make, typestore=ts)
                continue
            connection = None
            for k in range(n):
                msg = make(k / 10)
                connection = connection or writer.add_connection(topic, msg.__msgtype__, typestore=ts)
                writer.write(connection, round(k / 10 * 1e9), ts.serialize_cdr(msg, msg.__msgtype__))


def image_at(t):
    return conv.image_msg(RB, np.zeros((24, 32, 3), np.uint8), t, "camera_color_optical_frame")


def joints_at(t):
    names = [j.name for j in CELL.robot.joints] + ["gripper_width"]
    return conv.joint_state_msg(RB, names, [*CELL.robot.home_joint_positions_rad, 0.08], t)


def pose_at(t):
    return conv.pose_msg(RB, tcp_at(t), QUAT, t, "base")


def test_a_bag_without_the_cells_topics_is_refused_saying_what_it_has_and_what_import_needs(tmp_path):
    """A bag from realsense-ros' default namespace, without the TCP pose: nothing is imported, and the error lists
    the bag's topics with their types, the topics this cell and these options need, and which of them are missing
    (a topic announced without a single message counts as missing)."""
    write_topics_bag(
        tmp_path / "other",
        {
            "/camera/camera/color/image_raw": image_at,
            "/joint_states": joints_at,
            "/cam_front/color/image_raw": "sensor_msgs/msg/Image",
        },
    )
    with pytest.raises(ValueError) as refused:
        import_bags([tmp_path / "other"], tmp_path / "store.zarr", ImportOptions(depth=True))
    message = str(refused.value)
    has, needs, missing = (
        message.split(label, 1)[1].split("]", 1)[0] for label in ("has topics [", "import needs [", "missing: [")
    )
    assert "/camera/camera/color/image_raw (sensor_msgs/msg/Image, 5 messages)" in has
    assert "/joint_states (sensor_msgs/msg/JointState, 5 messages)" in has
    assert "/cam_front/color/image_raw (sensor_msgs/msg/Image, 0 messages)" in has
    cameras = [cam.topic(stream) for cam in CELL.cameras for stream in ("color", "depth")]
    for topic in cameras:
        assert f"{topic} (sensor_msgs/msg/Image)" in needs
        assert topic in missing
    assert "/joint_states (sensor_msgs/msg/JointState)" in needs and "/joint_states" not in missing
    assert "/tcp_pose (geometry_msgs/msg/PoseStamped)" in needs and "/tcp_pose" in missing
    assert "/manip/action" not in missing  # optional: without actions, the observed motion is the action
    assert str(tmp_path / "other") in message and "franka_3cam" in message
    assert not (tmp_path / "store.zarr").exists()


def test_a_topic_of_another_message_type_is_named_with_both_types(tmp_path):
    topics = {cam.topic("color"): image_at for cam in CELL.cameras}
    topics |= {"/joint_states": joints_at, "/tcp_pose": lambda t: pose_at(t).pose}  # a bare Pose: no stamp
    write_topics_bag(tmp_path / "pose", topics)
    with pytest.raises(
        ValueError,
        match=r"wrong type: \[/tcp_pose is geometry_msgs/msg/Pose, import needs "
        r"geometry_msgs/msg/PoseStamped\]",
    ):
        import_bags([tmp_path / "pose"], tmp_path / "store.zarr")
    assert not (tmp_path / "store.zarr").exists()


def test_cli_import_bag_checks_every_bag_before_writing_and_names_the_bad_one(tmp_path, capsys):
    write_bag(tmp_path / "good", StoragePlugin.MCAP, duration_s=1.0)
    write_topics_bag(tmp_path / "bad", {"/joint_states": joints_at, "/tcp_pose": pose_at})
    out = tmp_path / "store.zarr"
    assert cli_main(["import-bag", str(tmp_path / "good"), str(tmp_path / "bad"), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("manip-stack import-bag: error: bag ") and len(error.splitlines()) == 1
    assert str(tmp_path / "bad") in error and "missing: [/cam_front/color/image_raw" in error
    assert not out.exists()  # the good bag was not imported either: nothing half-done to clean up
