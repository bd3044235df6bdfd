"""LeRobotDataset v3.0 both ways: a twin store exported and imported again is the same store, the export follows
the format LeRobot 0.4.4 writes (checked against a small dataset LeRobot itself wrote, tests/data/
lerobot_v3_reference, made by ``benchmarks/lerobot_check.py --reference``), and a LeRobot-written dataset imports.

LeRobot cannot be a dependency of the stack (0.4.4 pins torch<2.11 and more; see ``lerobot_format``):
``scripts/install_lerobot_check.sh`` (run by ``make setup``) installs it with ``--no-deps`` into its own folder,
and the LeRobot test runs LeRobot in a subprocess with that folder on ``PYTHONPATH``, so its pins (pandas,
datasets...) never shadow ours in this process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robot_learning.cli.main import main as cli
from robot_learning.data.episode_store import ArraySpec, EpisodeStore
from robot_learning.data.integrity import CorruptEpisodeError
from robot_learning.data.lerobot_format import export_lerobot, import_lerobot
from robot_learning.data.lerobot_validate import check_dataset
from robot_learning.sessions.collect import collect_expert_episodes

REFERENCE = Path(__file__).parent / "lerobot_v3_reference"
ROOT = Path(__file__).resolve().parents[2]
# Where scripts/install_lerobot_check.sh put LeRobot: $LEROBOT_SITE, else beside this interpreter's venv, as
# `make setup` installs it ($(VENV)/lerobot-site).
LEROBOT_SITE = Path(os.environ.get("LEROBOT_SITE") or Path(sys.prefix) / "lerobot-site")


@pytest.fixture(scope="module")
def twin_store(tmp_path_factory) -> Path:
    """Two expert lift episodes from the twin: three cameras with depth, proprioception, privileged state."""
    path = tmp_path_factory.mktemp("twin") / "lift.zarr"
    collect_expert_episodes(path, n_episodes=2, image_size=(40, 32), depth=True, progress=False)
    return path


@pytest.fixture(scope="module")
def exported(twin_store: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "lift_lerobot"
    assert cli(["export-lerobot", str(twin_store), "--out", str(out)]) == 0
    return out


def assert_same_store(a_path: Path, b_path: Path) -> None:
    with EpisodeStore.open(a_path) as a, EpisodeStore.open(b_path) as b:
        assert b.specs == a.specs and b.keys == a.keys
        assert {k: v for k, v in b.attrs.items() if k != "created"} == {k: v for k, v in a.attrs.items()
                                                                        if k != "created"}
        assert b.n_episodes == a.n_episodes and np.array_equal(b.episode_ends, a.episode_ends)
        for i in range(a.n_episodes):
            assert b.episode_info(i) == a.episode_info(i)
            got, want = b.get_episode(i), a.get_episode(i)
            for key in a.keys:
                np.testing.assert_array_equal(got[key], want[key], err_msg=f"episode {i}, {key}")
        assert b.fingerprint == a.fingerprint


def test_lossless_round_trip_keeps_every_array_and_the_fingerprint(twin_store, exported, tmp_path):
    assert cli(["import-lerobot", str(exported), "--out", str(tmp_path / "back.zarr")]) == 0
    assert_same_store(twin_store, tmp_path / "back.zarr")


def test_export_is_a_valid_v3_dataset_with_names_units_frames_and_calibration(twin_store, exported, cell):
    assert check_dataset(exported) == []
    info = json.loads((exported / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["total_episodes"] == 2
    features = info["features"]
    assert {f"observation.images.cam_{c}" for c in ("front", "side", "wrist")} <= set(features)
    assert features["observation.images.cam_front"]["dtype"] == "video"
    state = features["observation.state"]
    x = state["names"].index("tcp_position.x")
    assert state["names"][x:x + 3] == ["tcp_position.x", "tcp_position.y", "tcp_position.z"]
    assert state["manip_stack"]["units"][x:x + 3] == ["m", "m", "m"] and state["manip_stack"]["frames"][x] == "base"
    assert state["manip_stack"]["units"][state["names"].index("joint_pos.1")] == "rad"
    assert "tcp_quaternion" not in str(state["names"])  # not a policy input: LeRobot policies must not read it
    action = features["action"]
    assert action["names"] == ["dx", "dy", "dz", "rx", "ry", "rz", "gripper"]
    assert action["manip_stack"]["units"] == ["m", "m", "m", "rad", "rad", "rad", "1"]
    assert features["observation.depth.cam_front"]["manip_stack"]["arrays"][0]["unit"] == "m"
    assert not any(n.startswith("observation.") for n in features if "privileged" in n)  # sim-only keys aside
    video_info = features["observation.images.cam_front"]["info"]
    intr, extr = video_info["camera.intrinsics"], video_info["camera.extrinsics"]
    native = cell.camera("cam_front").intrinsics  # scaled from the cell file's size to the stored 40x32
    assert (intr["width"], intr["height"]) == (40, 32)
    assert (intr["fx"], intr["cy"]) == pytest.approx((native.fx * 40 / native.width, native.cy * 32 / native.height))
    assert extr["parent"] == "base" and np.allclose(np.array(extr["T_parent_optical"])[3], [0, 0, 0, 1])
    assert features["observation.images.cam_wrist"]["info"]["camera.extrinsics"]["parent"] == "flange"
    episodes = pq.read_table(exported / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    with EpisodeStore.open(twin_store) as store:
        assert [e["length"] for e in episodes] == [store.episode_info(i)["n_steps"] for i in range(2)]
        assert [e["manip_stack/success"] for e in episodes] == [True, True]
        assert episodes[0]["tasks"] == [store.attrs["instruction"]]


def _layout(root: Path) -> dict[str, object]:
    """What LeRobot's reader depends on, by feature kind (not name): comparable across datasets."""
    info = json.loads((root / "meta" / "info.json").read_text())
    kind = {n: "video" if f["dtype"] == "video" else f"{len(f['shape'])}d-{f['dtype']}"
            for n, f in info["features"].items()}
    data = pq.read_schema(next((root / "data").glob("*/*.parquet")))
    episodes = pq.read_schema(next((root / "meta" / "episodes").glob("*/*.parquet")))
    tasks = pq.read_schema(root / "meta" / "tasks.parquet")
    return {
        "info": sorted(k for k in info if k != "manip_stack"),
        "feature entries": sorted({k for f in info["features"].values() for k in f if k != "manip_stack"}),
        "video info": sorted({k for f in info["features"].values() if f["dtype"] == "video" for k in f["info"]
                              if not k.startswith(("camera.", "video.lossless"))}),
        "columns": {(kind[f.name], re.sub(r"\[\d+\]", "[n]", str(f.type)),
                     (f.metadata or {}).get(b"ARROW:extension:name")) for f in data},
        "data metadata": sorted(data.metadata),
        "episode columns": {re.sub(r"^(stats|videos)/[^/]+/", r"\1/<key>/", c) for c in episodes.names},
        "tasks": [(f.name, str(f.type)) for f in tasks], "tasks pandas index": json.loads(
            tasks.metadata[b"pandas"])["index_columns"],
    }


def test_export_matches_what_lerobot_itself_writes(exported):
    """Same info.json fields, feature entries, column types per kind, episode columns and task table as the
    dataset LeRobot 0.4.4 wrote; ours only adds columns (scalar features, manip_stack/* episode metadata)."""
    assert check_dataset(REFERENCE) == []  # the rules accept LeRobot's own output
    ref, ours = _layout(REFERENCE), _layout(exported)
    for key in ("info", "feature entries", "video info", "data metadata", "tasks", "tasks pandas index"):
        assert ours[key] == ref[key], key
    assert ref["columns"] <= ours["columns"]
    assert ref["episode columns"] <= ours["episode columns"]
    assert {c for c in ours["episode columns"] - ref["episode columns"]} <= {
        *(f"manip_stack/{c}" for c in ("success", "seed", "task", "operator", "duration_s", "start_time_unix_s",
                                       "info_json"))}


def test_a_dataset_lerobot_wrote_imports(tmp_path):
    """LeRobot's AV1 video, fixed-size lists and Array2D depth, read back; images within AV1's loss."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from lerobot_check import reference_episodes

    report = import_lerobot(REFERENCE, tmp_path / "ref.zarr")
    assert (report.episodes, report.frames) == (2, 12)
    with EpisodeStore.open(tmp_path / "ref.zarr") as store:
        assert set(store.keys) == {"cam_rgb", "state", "cam_depth", "action", "timestamp"}
        assert store.attrs["cell"] == "panda" and store.episode_info(1)["task"] == "reference task 1"
        for i, want in enumerate(reference_episodes()):
            got = store.get_episode(i)
            np.testing.assert_array_equal(got["state"], want["observation.state"])
            np.testing.assert_array_equal(got["cam_depth"], want["observation.depth.cam"])
            np.testing.assert_array_equal(got["action"], want["action"])
            np.testing.assert_allclose(got["timestamp"], np.arange(len(got["action"])) / 10, atol=1e-6)
            err = np.abs(got["cam_rgb"].astype(int) - want["observation.images.cam"])
            assert err.mean() < 3.0, f"episode {i}: mean error {err.mean():.2f} grey levels"


def test_lossy_h264_keeps_images_within_a_few_grey_levels_and_the_rest_exactly(twin_store, tmp_path):
    export_lerobot(twin_store, tmp_path / "h264", codec="h264")
    assert check_dataset(tmp_path / "h264") == []
    import_lerobot(tmp_path / "h264", tmp_path / "back.zarr")
    with EpisodeStore.open(twin_store) as a, EpisodeStore.open(tmp_path / "back.zarr") as b:
        for i in range(a.n_episodes):
            got, want = b.get_episode(i), a.get_episode(i)
            for key, spec in a.specs.items():
                if spec.is_image:  # chroma at half resolution: single edge pixels differ a lot, the mean little
                    assert np.abs(got[key].astype(int) - want[key]).mean() < 5.0, key
                else:
                    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_bad_inputs_are_refused_with_the_reason(twin_store, exported, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(FileExistsError, match="not empty"):
        export_lerobot(twin_store, tmp_path / "full")
    with pytest.raises(ValueError, match="video codec"):
        export_lerobot(twin_store, tmp_path / "a", codec="mjpeg")
    with pytest.raises(FileExistsError, match="already exists"):
        import_lerobot(exported, twin_store)
    old = tmp_path / "old"
    shutil.copytree(exported, old)
    info = json.loads((old / "meta" / "info.json").read_text())
    (old / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(ValueError, match=r"v2\.1.*convert"):
        import_lerobot(old, tmp_path / "b.zarr")
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    shutil.rmtree(broken / "videos" / "observation.images.cam_side")
    assert any("cam_side" in p and "missing" in p for p in check_dataset(broken))
    with pytest.raises(ValueError, match=r"not a valid LeRobotDataset v3\.0.*cam_side"):
        import_lerobot(broken, tmp_path / "c.zarr")
    assert not (tmp_path / "b.zarr").exists() and not (tmp_path / "c.zarr").exists()


def test_a_damaged_store_names_the_episode_and_array_and_leaves_no_output(twin_store, tmp_path):
    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(twin_store, damaged)
    chunk = sorted((damaged / "data" / "joint_pos" / "c").rglob("*"))[-1]
    chunk.write_bytes(chunk.read_bytes()[:-7])
    with pytest.raises(CorruptEpisodeError, match="joint_pos"):
        export_lerobot(damaged, tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.glob(".out*")) == []


def test_statistics_are_those_of_the_data(twin_store, exported):
    """stats.json: dataset min/max/mean/std of every element from the per-episode ones (LeRobot's aggregation),
    and image statistics per channel in [0, 1] from every frame's histogram (quantiles as numpy's)."""
    from robot_learning.data.lerobot_schema import feature_stats

    stats = json.loads((exported / "meta" / "stats.json").read_text())
    with EpisodeStore.open(twin_store) as store:
        action = np.concatenate([store.get_episode(i, ["action"])["action"] for i in range(store.n_episodes)])
        frames = store.get_episode(0, ["cam_front_rgb"])["cam_front_rgb"]
    np.testing.assert_allclose(stats["action"]["mean"], action.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["action"]["std"], action.std(axis=0), rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(stats["action"]["min"], action.min(axis=0))
    assert stats["action"]["count"] == [len(action)]
    pixels = frames.reshape(-1, 3) / 255.0
    got = feature_stats(frames, video=True)
    for name, want in [("mean", pixels.mean(0)), ("std", pixels.std(0)), ("q01", np.quantile(pixels, 0.01, axis=0)),
                       ("q50", np.quantile(pixels, 0.5, axis=0)), ("q99", np.quantile(pixels, 0.99, axis=0))]:
        np.testing.assert_allclose(got[name].reshape(3), want, atol=1e-9, err_msg=name)


@pytest.mark.skipif(not (LEROBOT_SITE / "lerobot").is_dir(),
                    reason=f"LeRobot is not installed in {LEROBOT_SITE} (it cannot share the stack's pins); "
                           "`make setup` or `bash scripts/install_lerobot_check.sh` installs it there")
def test_lerobot_loads_the_export_and_its_diffusion_policy_trains(twin_store, exported):
    """LeRobot 0.4.4's own LeRobotDataset reads every frame of the export as stored, sees the cameras, state and
    action with the export's names, batches them for its diffusion policy, and the policy learns from them: on one
    batch with fixed noise the loss falls at every step."""
    env = {**os.environ, "PYTHONPATH": str(LEROBOT_SITE), "HF_HUB_OFFLINE": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")  # a tiny model: a second thread only spins on 2 cores
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "lerobot_check.py"), "--store", str(twin_store),
                          "--dataset", str(exported), "--check-episodes", "2", "--steps", "6", "--batch-size", "4",
                          "--same-batch", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    info = json.loads((exported / "meta" / "info.json").read_text())
    cameras = [n for n, f in info["features"].items() if f["dtype"] == "video"]
    state_names, action_names = (info["features"][k]["names"] for k in ("observation.state", "action"))
    with EpisodeStore.open(twin_store) as store:
        n_frames = int(store.episode_ends[-1])
        assert got["metadata"] == {"episodes": store.n_episodes, "frames": n_frames, "fps": 10, "video_keys": cameras,
                                   "names": {"observation.state": state_names, "action": action_names}}
    assert len(cameras) == 3 and got["frames_checked"] == n_frames
    assert got["largest_pixel_difference"] == 0 and got["largest_vector_difference"] == 0  # lossless codec
    shapes = got["batch_shapes"]  # (batch, n_obs_steps 2 | horizon 8, ...), images channel-first
    assert all(shapes[c] == [4, 2, 3, 32, 40] for c in cameras)
    assert shapes["observation.state"] == [4, 2, len(state_names)] and shapes["action"] == [4, 8, 7]
    assert {c: got["policy_inputs"][c] for c in cameras} == dict.fromkeys(cameras, "VISUAL")
    assert got["policy_inputs"]["observation.state"] == "STATE" and got["policy_outputs"] == {"action": "ACTION"}
    losses = np.array(got["losses"])
    assert len(losses) == 6 and np.isfinite(losses).all()
    assert (np.diff(losses) < 0).all() and losses[-1] < 0.75 * losses[0], losses


ODD_SPECS = {
    "cam0_rgb": ArraySpec((33, 41, 3), np.uint8, "1", description="odd-sized noise: the hardest case for a codec"),
    "cam0_depth_m": ArraySpec((33, 41), np.float32, "m", frame="cam0"),
    "T_base_ee": ArraySpec((4, 4), np.float64, "m", frame="base"),
    "gripper_width_m": ArraySpec((), np.float32, "m"),
    "count": ArraySpec((2,), np.int64, "1"),
    "flag": ArraySpec((), np.bool_, "1"),
    "timestamp": ArraySpec((), np.float64, "s"),
}


@pytest.mark.parametrize("with_camera", [True, False])
def test_any_store_schema_round_trips_exactly(tmp_path, with_camera):
    """Keys LeRobot has no slot for (4x4 float64 poses, ints, bools, scalars, unknown cameras without a cell
    file), odd image sizes, and stores without cameras all come back bit for bit."""
    specs = {k: s for k, s in ODD_SPECS.items() if with_camera or k != "cam0_rgb"}
    with EpisodeStore.create(tmp_path / "s.zarr", specs, {"cell": "nowhere", "task": "t", "policy_hz": 15.0},
                             durable=False) as store:
        for e, n in enumerate([4, 9]):
            rng = np.random.default_rng(e)
            with store.begin_episode({"seed": None, "operator": "x", "note": [1, 2]}) as ep:
                for t in range(n):
                    step = {"cam0_rgb": rng.integers(0, 256, (33, 41, 3), dtype=np.uint8),
                            "cam0_depth_m": rng.random((33, 41), dtype=np.float32), "T_base_ee": rng.random((4, 4)),
                            "gripper_width_m": np.float32(t), "count": np.array([t, -t]), "flag": bool(t % 2),
                            "timestamp": t / 15}
                    ep.add_step(**{k: v for k, v in step.items() if k in specs})
                ep.commit(e == 1)
    report = export_lerobot(tmp_path / "s.zarr", tmp_path / "lr")
    assert check_dataset(tmp_path / "lr") == []
    assert with_camera == any("no camera calibration" in n for n in report.notes)
    import_lerobot(tmp_path / "lr", tmp_path / "back.zarr")
    assert_same_store(tmp_path / "s.zarr", tmp_path / "back.zarr")
