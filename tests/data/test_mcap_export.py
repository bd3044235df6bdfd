"""``manip-stack export-mcap``: a store's episodes as a ROS 2 MCAP bag that ``import-bag`` reads back unchanged."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags missing: pip install -e '.[bags]'")

from controllers.observations import observation_schema, rot6d_from_matrix
from geometry.transforms import quat_xyzw_to_matrix
from robot_learning.cli.main import main as cli_main
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.specs import episode_specs

CAMERAS = ["cam_front", "cam_side", "cam_wrist"]
SIZE = (16, 12)  # width, height
LENGTHS = (6, 4)  # steps of the two episodes


@pytest.fixture(scope="module")
def store(tmp_path_factory, cell):
    """Two twin-like episodes: colour and depth (on the millimetre grid the driver's 16UC1 carries), proprioception,
    the twin's object pose, actions at 10 Hz; the first a success, the second a failure."""
    path = tmp_path_factory.mktemp("mcap") / "episodes.zarr"
    specs = episode_specs(observation_schema(cell, CAMERAS, SIZE, True, {"privileged": 7}))
    rng = np.random.default_rng(0)
    with EpisodeStore.create(path, specs, {"cell": cell.name, "task": "lift"}) as s:
        for episode, n in enumerate(LENGTHS):
            with s.begin_episode({"seed": episode}) as ep:
                for k in range(n):
                    quat = np.array([1.0, 0.1 * k, 0.0, 0.0])
                    quat /= np.linalg.norm(quat)
                    step = {f"{c}_rgb": rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8) for c in CAMERAS}
                    step |= {f"{c}_depth": (rng.integers(300, 1500, (SIZE[1], SIZE[0])) / 1000).astype(np.float32)
                             for c in CAMERAS}
                    ep.add_step(**step, tcp_position=np.array([0.5, 0.01 * k, 0.3], np.float32),
                                tcp_quaternion=quat.astype(np.float32),
                                tcp_rot6d=rot6d_from_matrix(quat_xyzw_to_matrix(quat)).astype(np.float32),
                                joint_pos=(np.array(cell.robot.home_joint_positions_rad) + 0.01 * k).astype(np.float32),
                                gripper_width=np.array([0.08 - 0.01 * k], np.float32),
                                privileged=np.array([0.5, 0, 0.02, 0, 0, 0, 1], np.float32),
                                action=rng.uniform(-0.01, 0.01, 7).astype(np.float32),
                                reward=np.float32(0), timestamp=np.float64(0.1 * k))
                ep.commit(success=episode == 0)
    return path


def test_export_then_import_bag_gives_back_every_episode_and_array(store, tmp_path, capsys):
    out = tmp_path / "episodes.mcap"
    assert cli_main(["export-mcap", str(store), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and out.is_file() and not list(tmp_path.glob(".export_*"))
    back = tmp_path / "back.zarr"
    assert cli_main(["import-bag", str(out), "--out", str(back), "--depth", "--image-size", "16x12"]) == 0
    with EpisodeStore.open(store) as a, EpisodeStore.open(back) as b:
        assert b.n_episodes == 2 and [b.episode_info(i)["success"] for i in range(2)] == [True, False]
        for i in range(2):
            original, imported = a.get_episode(i), b.get_episode(i)
            assert set(imported) == set(original) - {"privileged"}  # the robot schema has no sim-only keys
            for key, values in imported.items():
                expected = original[key]
                if key == "timestamp":  # laid end to end on one clock: the spacing is kept
                    values, expected = values - values[0], expected - expected[0]
                if key == "reward":
                    continue  # import-bag does not read rewards (the bag carries them on /manip/reward)
                np.testing.assert_allclose(values, expected, atol=1e-6, err_msg=f"episode {i} {key}")


def test_the_file_is_a_ros2_mcap_that_other_tools_decode(store, tmp_path, cell):
    pytest.importorskip("rerun", reason="rerun-sdk missing: pip install -e '.[view]'")
    from rerun.chunk import McapReader  # rerun's own MCAP reader, as a third-party consumer

    out = tmp_path / "bag"  # a bag directory, as ros2 bag record writes
    assert cli_main(["export-mcap", str(store), "--out", str(out), "--episodes", "1"]) == 0
    assert (out / "metadata.yaml").is_file()
    mcap = next(out.glob("*.mcap"))
    reader = McapReader(mcap)
    info = reader.info()
    assert info.profile == "ros2"
    topics = {c.topic: (c.schema.name, c.message_count) for c in info.channels}
    for camera in cell.cameras:
        assert topics[camera.topic("color")] == ("sensor_msgs/msg/Image", LENGTHS[1])
        assert topics[camera.topic("depth")] == ("sensor_msgs/msg/Image", LENGTHS[1])
        assert topics[camera.topic("camera_info")] == ("sensor_msgs/msg/CameraInfo", LENGTHS[1])
    assert topics["/manip/action"] == ("trajectory_msgs/msg/JointTrajectory", LENGTHS[1])
    assert topics["/session_node/events"] == ("std_msgs/msg/String", 2)
    assert topics["/twin/cube/pose"] == ("geometry_msgs/msg/PoseStamped", LENGTHS[1])
    assert topics["/tf_static"][0] == "tf2_msgs/msg/TFMessage"
    decoded = {chunk.entity_path: chunk.to_record_batch().schema.names for chunk in reader.stream()}
    assert "Image:buffer" in decoded[cell.cameras[0].topic("color")]
    assert "InstancePoses3D:translations" in decoded["/tcp_pose"]


def test_an_existing_output_or_a_missing_episode_is_refused(store, tmp_path, capsys):
    out = tmp_path / "x.mcap"
    out.write_text("keep me")
    assert cli_main(["export-mcap", str(store), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me"
    assert cli_main(["export-mcap", str(store), "--out", str(tmp_path / "y.mcap"), "--episodes", "5"]) == 2
    assert "episode(s) [5] are not in the store" in capsys.readouterr().err
