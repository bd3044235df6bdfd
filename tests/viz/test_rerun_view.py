"""``manip-stack view``: what the ``.rrd`` written for a tiny store holds, read back with rerun's own reader."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rerun", reason="rerun-sdk missing: pip install -e '.[view]'")

from controllers.observations import observation_schema
from geometry.transforms import invert, pose_to_matrix
from robot_learning.cli.main import main as cli_main
from robot_learning.data.episode_store import ArraySpec, EpisodeStore
from robot_learning.data.specs import ACTION_SPEC, episode_specs
from robot_learning.viz.rerun_view import RerunView, scaled_intrinsics
from robot_learning.viz.rrd_read import image_at, read_rrd, transform_at

CAMERAS = ["cam_front", "cam_side", "cam_wrist"]
SIZE = (32, 24)  # width, height
STEPS = 5
QUAT = np.array([1.0, 0.0, 0.0, 0.0])  # TCP pointing down


def table_depth(cell, camera: str) -> np.ndarray:
    """Depth [m] at which each pixel's ray meets the plane z = workspace floor (0 where it never does)."""
    cam = cell.camera(camera)
    K = scaled_intrinsics(cam.intrinsics, *SIZE).matrix()
    T = cam.extrinsics.matrix()
    u, v = np.meshgrid(np.arange(SIZE[0]), np.arange(SIZE[1]))
    rays = np.linalg.inv(K) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    dz = (T[:3, :3] @ rays)[2]
    with np.errstate(divide="ignore"):
        t = (cell.workspace.min_m[2] + 0.005 - T[2, 3]) / dz
    return np.where(t > 0, t, 0.0).reshape(SIZE[1], SIZE[0]).astype(np.float32)


def tcp_at(episode: int, k: int) -> np.ndarray:
    return np.array([0.5 + 0.01 * k, 0.02 * episode, 0.3 - 0.01 * k])


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, cell):
    """Two episodes of five steps: three cameras with colour and depth, TCP, the twin's object pose, and what an
    online fine-tuning store adds (base action, residual, intervention, value)."""
    path = tmp_path_factory.mktemp("view") / "tiny.zarr"
    specs = episode_specs(observation_schema(cell, CAMERAS, SIZE, True, {"privileged": 7}))
    specs |= {"base_action": ACTION_SPEC, "residual": ACTION_SPEC,
              "intervention": ArraySpec((), np.bool_, "1", None, "person"),
              "value": ArraySpec((), np.float32, "1", None, "critic value")}
    depth = {name: table_depth(cell, name) for name in CAMERAS}
    with EpisodeStore.create(path, specs, {"cell": cell.name, "task": "lift"}) as store:
        for episode in range(2):
            with store.begin_episode({"seed": episode}) as ep:
                for k in range(STEPS):
                    images = {f"{n}_rgb": np.full((SIZE[1], SIZE[0], 3), 40 * i + 10 * k + episode, np.uint8)
                              for i, n in enumerate(CAMERAS)}
                    depths = {f"{n}_depth": depth[n] for n in CAMERAS}
                    ep.add_step(**images, **depths, tcp_position=tcp_at(episode, k).astype(np.float32),
                                tcp_quaternion=QUAT.astype(np.float32), tcp_rot6d=np.zeros(6, np.float32),
                                joint_pos=np.zeros(7, np.float32), gripper_width=np.full(1, 0.08, np.float32),
                                privileged=np.array([0.55, -0.05 + 0.01 * k, 0.025, 0, 0, 0, 1], np.float32),
                                action=np.array([0.01, 0, -0.01, 0, 0, 0, k / 4], np.float32),
                                base_action=np.array([0.008, 0, -0.01, 0, 0, 0, k / 4], np.float32),
                                residual=np.full(7, 0.1 * k, np.float32), intervention=np.bool_(k == 3),
                                value=np.float32(k), reward=np.float32(k == STEPS - 1),
                                timestamp=np.float64(0.1 * k))
                ep.commit(success=True)
    return path


@pytest.fixture(scope="module")
def view(tiny_store, tmp_path_factory):
    rrd = tmp_path_factory.mktemp("rrd") / "tiny.rrd"
    png = rrd.with_suffix(".png")
    assert cli_main(["view", str(tiny_store), "--rrd", str(rrd), "--episodes", "all", "--png", str(png)]) == 0
    assert png.stat().st_size > 10_000
    return read_rrd(rrd)


def test_every_step_of_every_episode_is_on_one_timeline(view):
    assert view.steps() == list(range(2 * STEPS))
    times = _times(view)  # per step, in ns
    assert np.all(np.diff(times) > 0)  # the second episode follows the first on the same timeline
    assert times[STEPS] - times[STEPS - 1] == pytest.approx(0.1e9, rel=1e-6)  # one policy period apart


def _times(contents):
    from rerun.chunk import RrdReader

    by_step = {}
    for chunk in RrdReader(contents.path).stream():
        batch = chunk.to_record_batch()
        if chunk.entity_path == "/reward":
            steps = batch.column("step").to_pylist()
            times = batch.column("time").cast("int64").to_pylist()
            by_step.update(zip(steps, times, strict=True))
    return [by_step[s] for s in sorted(by_step)]


def test_cameras_sit_in_3d_with_their_intrinsics_and_extrinsics(view, cell):
    for name in CAMERAS:
        camera = cell.camera(name)
        K = np.asarray(view.static[f"/world/cameras/{name}/image"]["Pinhole:image_from_camera"], float)
        np.testing.assert_allclose(K.reshape(3, 3).T, scaled_intrinsics(camera.intrinsics, *SIZE).matrix(), rtol=1e-6)
        T_tcp_flange = invert(pose_to_matrix(np.array(cell.robot.tcp_offset_m), np.array([0, 0, 0, 1.0])))
        for step in (0, 7):
            episode, k = divmod(step, STEPS)
            if camera.mount.value == "static":
                expected = camera.extrinsics.matrix()
            else:  # the wrist camera moves with the TCP
                expected = pose_to_matrix(tcp_at(episode, k), QUAT) @ T_tcp_flange @ camera.extrinsics.matrix()
            np.testing.assert_allclose(transform_at(view, f"/world/cameras/{name}", step), expected, atol=1e-5)


def test_colour_and_depth_images_are_the_stored_ones(view, tiny_store, cell):
    with EpisodeStore.open(tiny_store) as store:
        episode = store.get_episode(1)
    for name in CAMERAS:
        rgb = image_at(view, f"/world/cameras/{name}/image/rgb", STEPS + 2)
        np.testing.assert_array_equal(rgb, episode[f"{name}_rgb"][2])
        depth = image_at(view, f"/world/cameras/{name}/image/depth", STEPS + 2, "DepthImage")
        np.testing.assert_array_equal(depth, episode[f"{name}_depth"][2])


def test_the_cloud_is_perceptions_fusion_of_the_stored_depth(view, tiny_store, cell):
    from perception.cameras.base import Frame
    from perception.pointcloud import PointCloudFuser

    with EpisodeStore.open(tiny_store) as store:
        episode = store.get_episode(0)
    fuser = PointCloudFuser(cell, intrinsics={n: scaled_intrinsics(cell.camera(n).intrinsics, *SIZE) for n in CAMERAS},
                            stride=1)
    T_base_flange = pose_to_matrix(tcp_at(0, 0), QUAT) @ invert(
        pose_to_matrix(np.array(cell.robot.tcp_offset_m), np.array([0, 0, 0, 1.0])))
    expected = fuser.fuse({n: Frame(n, episode[f"{n}_rgb"][0], episode[f"{n}_depth"][0], 0.0) for n in CAMERAS},
                          T_base_flange)
    points = np.asarray(view.at_step("/world/cloud", "Points3D:positions", 0))
    assert len(points) == len(expected.points_m) > 50
    np.testing.assert_allclose(points, expected.points_m, atol=1e-5)
    assert np.all(np.abs(points[:, 2] - (cell.workspace.min_m[2] + 0.005)) < 0.003)  # on the plane drawn


def test_object_poses_tcp_path_actions_rewards_and_interventions(view):
    truth = transform_at(view, "/world/objects/cube/ground_truth", 3)
    np.testing.assert_allclose(truth[:3, 3], [0.55, -0.02, 0.025], atol=1e-6)  # privileged: the twin's truth
    assert "Boxes3D:half_sizes" in view.components("/world/objects/cube/ground_truth/shape")
    path = np.asarray(view.at_step("/world/tcp_path", "LineStrips3D:strips", 4)[0])
    np.testing.assert_allclose(path, [tcp_at(0, k) for k in range(5)], atol=1e-6)
    path = np.asarray(view.at_step("/world/tcp_path", "LineStrips3D:strips", STEPS)[0])
    assert len(path) == 1  # a new episode starts a new path
    for kind in ("executed", "base", "residual"):
        rows = view.values(f"/actions/{kind}", "Scalars:scalars")
        assert len(rows) == 2 * STEPS and len(rows[0][1]) == 7
        assert "Arrows3D:vectors" in view.components(f"/world/actions/{kind}")
    assert [v[0] for _, v in view.values("/reward", "Scalars:scalars")] == [0, 0, 0, 0, 1] * 2
    assert [v[0] for _, v in view.values("/scalars/value", "Scalars:scalars")] == [0, 1, 2, 3, 4] * 2
    assert [v[0] for _, v in view.values("/intervention", "Scalars:scalars")] == [0, 0, 0, 1, 0] * 2
    texts = [t for _, v in view.values("/events", "TextLog:text") for t in v]
    assert sum("intervention" in t for t in texts) == 2
    assert sum("episode" in t and "starts" in t for t in texts) == 2


def test_a_live_session_logs_safety_events_and_the_robots_own_estimates(tmp_path, cell, lift_task):
    rrd = tmp_path / "live.rrd"
    with RerunView(cell, lift_task, rrd) as live:
        live.start_episode(0)
        for k, counts in enumerate(({"stale_hold": 0}, {"stale_hold": 1}, {"stale_hold": 1, "speed_clipped": 2})):
            obs = {"tcp_position": tcp_at(0, k), "tcp_quaternion": QUAT,
                   "estimated": np.array([0.5, 0, 0.02, 0, 0, 0, 1]), "estimate_confidence": np.array([0.3 * k])}
            live.log_step(obs, t_s=0.1 * k, safety_counts=counts)
    contents = read_rrd(rrd)
    texts = [t for _, v in contents.values("/events", "TextLog:text") for t in v]
    assert [t for t in texts if t.startswith("safety")] == ["safety: stale_hold x1 (total 1)",
                                                            "safety: speed_clipped x2 (total 2)"]
    np.testing.assert_allclose(transform_at(contents, "/world/objects/cube/estimated", 2)[:3, 3], [0.5, 0, 0.02])
    confidence = [v[0] for _, v in contents.values("/scalars/estimate_confidence/cube", "Scalars:scalars")]
    np.testing.assert_allclose(confidence, [0.0, 0.3, 0.6])


def test_bad_arguments_are_refused_in_one_line(tiny_store, tmp_path, capsys):
    assert cli_main(["view", str(tiny_store), "--rrd", str(tmp_path / "x.rrd"), "--episodes", "7"]) == 2
    assert "episode(s) [7] are not in the store" in capsys.readouterr().err
    assert cli_main(["view", str(tmp_path / "nothing.zarr")]) == 2
    assert "no episode store or recording directory" in capsys.readouterr().err
    assert cli_main(["view", str(tiny_store), "--rrd", str(tmp_path / "x.txt")]) == 2
    assert "end in .rrd" in capsys.readouterr().err


def test_collect_with_rrd_logs_every_step_it_stores(tmp_path, capsys):
    store, rrd = tmp_path / "lift.zarr", tmp_path / "collect.rrd"
    assert cli_main(["collect", "--task", "lift", "--episodes", "1", "--expert", "--image-size", "none",
                     "--out", str(store), "--rrd", str(rrd)]) == 0
    assert f"rerun view: {rrd}" in capsys.readouterr().out
    with EpisodeStore.open(store) as s:
        episode = s.get_episode(0)
    contents = read_rrd(rrd)
    assert contents.steps() == list(range(len(episode["action"])))
    np.testing.assert_allclose(transform_at(contents, "/world/tcp", 3)[:3, 3], episode["tcp_position"][3], atol=1e-6)
    executed = np.asarray([v for _, v in contents.values("/actions/executed", "Scalars:scalars")])
    np.testing.assert_allclose(executed, episode["action"], atol=1e-6)
    assert "Transform3D:translation" in contents.components("/world/objects/cube/ground_truth")
    assert cli_main(["view", str(store), "--rrd", str(tmp_path / "e.rrd"), "--estimate"]) == 2
    assert "--estimate needs depth in the store" in capsys.readouterr().err


def test_a_teleop_session_with_rrd_logs_every_recorded_step(tmp_path):
    store, rrd = tmp_path / "teleop.zarr", tmp_path / "teleop.rrd"
    assert cli_main(["teleop", "--device", "scripted", "--episodes", "1", "--headless", "--image-size", "32x32",
                     "--countdown", "0.2", "--out", str(store), "--rrd", str(rrd)]) == 0
    with EpisodeStore.open(store) as s:
        episode = s.get_episode(0)
    contents = read_rrd(rrd)
    assert contents.steps() == list(range(len(episode["action"])))
    rgb = image_at(contents, "/world/cameras/cam_front/image/rgb", 5)
    np.testing.assert_array_equal(rgb, episode["cam_front_rgb"][5])
    assert any("device spacemouse" in t for _, v in contents.values("/events", "TextLog:text") for t in v)
