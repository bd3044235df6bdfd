"""EpisodeStore: layout, validation, fingerprint, recovery from a crashed commit, and the video helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import zarr

from robot_learning.data.episode_store import (
    ArraySpec,
    EpisodeStore,
    EpisodeStoreError,
    StoreCorruptError,
    StoreLockedError,
)
from robot_learning.data.episode_writer import StepValidationError
from robot_learning.data.video import contact_sheet, render_episode_video, write_contact_sheet

SPECS = {
    "cam0_rgb": ArraySpec((48, 64, 3), np.uint8, "1", description="scene camera"),
    "wrist_rgb": ArraySpec((32, 40, 3), np.uint8, "1", description="wrist camera"),
    "cam0_depth_m": ArraySpec((48, 64), np.float32, "m", frame="cam0"),
    "joint_pos_rad": ArraySpec((7,), np.float32, "rad"),
    "T_base_ee": ArraySpec((4, 4), np.float64, "m", frame="base"),
    "gripper_width_m": ArraySpec((), np.float32, "m"),
}
ATTRS = {"cell": "franka_3cam", "task": "lift", "site": "lab1"}


def make_episode(seed: int, n_steps: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "cam0_rgb": rng.integers(0, 256, (n_steps, 48, 64, 3), dtype=np.uint8),
        "wrist_rgb": rng.integers(0, 256, (n_steps, 32, 40, 3), dtype=np.uint8),
        "cam0_depth_m": rng.uniform(0.3, 1.5, (n_steps, 48, 64)).astype(np.float32),
        "joint_pos_rad": rng.standard_normal((n_steps, 7)).astype(np.float32),
        "T_base_ee": np.tile(np.eye(4), (n_steps, 1, 1)) + seed,
        "gripper_width_m": np.linspace(0.08, 0.0, n_steps, dtype=np.float32),
    }


def add_episode(store: EpisodeStore, data: dict[str, np.ndarray], success: bool = True, **info: object) -> int:
    with store.begin_episode(info) as ep:
        for t in range(len(data["joint_pos_rad"])):
            ep.add_step(**{k: v[t] for k, v in data.items()})
        return ep.commit(success=success)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EpisodeStore]:
    with EpisodeStore.create(tmp_path / "ds.zarr", SPECS, ATTRS, durable=False) as s:
        yield s


def test_roundtrip_keys_shapes_dtypes_units_info(tmp_path: Path, store: EpisodeStore) -> None:
    episodes = [make_episode(i, n) for i, n in enumerate([5, 12, 3])]
    for i, data in enumerate(episodes):
        assert add_episode(store, data, success=i != 1, seed=i, operator="ana", task="lift_red", note={"k": i}) == i
    store.close()

    s = EpisodeStore.open(tmp_path / "ds.zarr")
    assert (len(s), s.n_episodes, s.n_steps) == (3, 3, 20)
    assert s.keys == list(SPECS) and s.specs == SPECS
    np.testing.assert_array_equal(s.episode_ends, [5, 17, 20])
    assert s.episode_slice(1) == slice(5, 17)
    for i, data in enumerate(episodes):
        got = s.get_episode(i)
        for k, v in data.items():
            assert got[k].dtype == SPECS[k].dtype and got[k].shape == (len(v), *SPECS[k].shape)
            np.testing.assert_array_equal(got[k], v)
    assert list(s.get_episode(-1, keys=["gripper_width_m"])) == ["gripper_width_m"]
    info = s.episode_info(1)
    assert info["success"] is False and info["seed"] == 1 and info["n_steps"] == 12
    assert (info["operator"], info["task"], info["note"]) == ("ana", "lift_red", {"k": 1})
    assert info["duration_s"] >= 0 and info["start_time_unix_s"] > 1.6e9
    assert s.attrs["cell"] == "franka_3cam" and s.attrs["site"] == "lab1" and "created" in s.attrs

    raw = zarr.open_group(tmp_path / "ds.zarr", mode="r")
    assert raw["data/cam0_depth_m"].attrs["unit"] == "m" and raw["data/cam0_depth_m"].attrs["frame"] == "cam0"
    assert raw["data/joint_pos_rad"].attrs["unit"] == "rad"
    np.testing.assert_array_equal(raw["meta/episode_ends"][:], [5, 17, 20])
    assert raw["meta/episode_ends"].dtype == np.int64
    with pytest.raises(IndexError, match="episode 3 out of range"):
        s.get_episode(3)


def test_task_defaults_to_dataset_task_and_seed_to_none(store: EpisodeStore) -> None:
    add_episode(store, make_episode(0))
    info = store.episode_info(0)
    assert info["task"] == "lift" and info["seed"] is None and info["operator"] == ""


def test_exception_or_missing_commit_discards(store: EpisodeStore) -> None:
    data = make_episode(0)
    with pytest.raises(RuntimeError, match="operator stop"), store.begin_episode() as ep:
        ep.add_step(**{k: v[0] for k, v in data.items()})
        raise RuntimeError("operator stop")
    with store.begin_episode() as ep:
        ep.add_step(**{k: v[0] for k, v in data.items()})
    ep = store.begin_episode()
    ep.add_step(**{k: v[0] for k, v in data.items()})
    ep.discard()
    with pytest.raises(RuntimeError, match="already committed or discarded"):
        ep.add_step(**{k: v[0] for k, v in data.items()})
    assert (len(store), store.n_steps) == (0, 0)
    add_episode(store, data)
    assert (len(store), store.n_steps) == (1, 12)


def test_one_episode_at_a_time_and_no_empty_episodes(store: EpisodeStore) -> None:
    ep = store.begin_episode()
    with pytest.raises(EpisodeStoreError, match="already being recorded"):
        store.begin_episode()
    with pytest.raises(StepValidationError, match="no steps"):
        ep.commit(success=True)
    ep.discard()
    with pytest.raises(StepValidationError, match="success goes to commit"):
        store.begin_episode({"success": True})


def test_nan_rejected_naming_the_key(store: EpisodeStore) -> None:
    step = {k: v[0] for k, v in make_episode(0).items()}
    step["cam0_depth_m"] = step["cam0_depth_m"].copy()
    step["cam0_depth_m"][3, 4] = np.nan
    with store.begin_episode() as ep:
        with pytest.raises(ValueError, match=r"key 'cam0_depth_m': 1 NaN and 0 inf"):
            ep.add_step(**step)
        assert len(ep) == 0  # the bad step left no partial row behind
        with pytest.raises(ValueError, match="'gripper_width_m'"):
            ep.add_step(**{**step, "cam0_depth_m": np.ones((48, 64)), "gripper_width_m": np.inf})
    assert len(store) == 0


def test_shape_dtype_and_key_errors(store: EpisodeStore) -> None:
    step = {k: v[0] for k, v in make_episode(0).items()}
    with store.begin_episode() as ep:
        with pytest.raises(ValueError, match=r"key 'joint_pos_rad': expected per-step shape \(7,\), got \(6,\)"):
            ep.add_step(**{**step, "joint_pos_rad": np.zeros(6)})
        with pytest.raises(ValueError, match=r"missing keys \['wrist_rgb'\], unknown keys \['wrist'\]"):
            ep.add_step(**{k: v for k, v in step.items() if k != "wrist_rgb"}, wrist=step["wrist_rgb"])
        with pytest.raises(ValueError, match=r"key 'cam0_rgb': cannot safely cast float64 to uint8"):
            ep.add_step(**{**step, "cam0_rgb": step["cam0_rgb"] / 255.0})
        # float64 sensor values and Python scalars are accepted into float32 arrays.
        ep.add_step(**{**step, "joint_pos_rad": np.zeros(7, np.float64), "gripper_width_m": 0.04})
        buf = step["cam0_rgb"]
        ep.add_step(**step)
        buf[:] = 0  # the caller reusing its buffer must not change what was recorded
        ep.commit(success=True)
    got = store.get_episode(0)
    assert got["joint_pos_rad"].dtype == np.float32 and got["gripper_width_m"][0] == np.float32(0.04)
    assert got["cam0_rgb"][1].any()


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="needs a unit"):
        ArraySpec((3,), np.float32, "")
    with pytest.raises(ValueError, match="bool/int/uint/float"):
        ArraySpec((3,), object, "1")


def test_create_refuses_existing_path_and_missing_attrs(tmp_path: Path, store: EpisodeStore) -> None:
    with pytest.raises(FileExistsError):
        EpisodeStore.create(store.path, SPECS, ATTRS)
    with pytest.raises(ValueError, match=r"attrs must name \['cell'\]"):
        EpisodeStore.create(tmp_path / "other.zarr", SPECS, {"task": "lift"})
    assert not (tmp_path / "other.zarr").exists()


def test_locking_modes_and_schema_check(tmp_path: Path, store: EpisodeStore) -> None:
    with pytest.raises(StoreLockedError):
        EpisodeStore.open(store.path, mode="a")
    reader = EpisodeStore.open(store.path, mode="r")  # readers never block
    with pytest.raises(EpisodeStoreError, match="not open for appending"):
        reader.begin_episode()
    store.close()
    with pytest.raises(ValueError, match="has schema"):
        EpisodeStore.open_or_create(store.path, {"x": ArraySpec((1,), np.float32, "m")}, ATTRS)
    with EpisodeStore.open_or_create(store.path, SPECS, ATTRS) as again:
        assert again.mode == "a"


def test_fingerprint_stable_on_reopen_and_content_sensitive(tmp_path: Path) -> None:
    def build(name: str, tweak: bool) -> str:
        with EpisodeStore.create(tmp_path / name, SPECS, ATTRS, durable=False) as s:
            empty = s.fingerprint
            add_episode(s, make_episode(0))
            data = make_episode(1)
            if tweak:
                data["cam0_rgb"][5, 10, 10, 0] ^= 1
            add_episode(s, data)
            assert s.fingerprint != empty
            fp = s.fingerprint
        reopened = EpisodeStore.open(tmp_path / name)
        assert reopened.fingerprint == fp
        reopened.verify()
        return fp

    fp_a, fp_b, fp_c = build("a.zarr", False), build("b.zarr", False), build("c.zarr", True)
    assert fp_a == fp_b != fp_c
    assert len(fp_a) == 64
    assert (
        EpisodeStore.open(tmp_path / "a.zarr").schema_fingerprint
        == EpisodeStore.open(tmp_path / "c.zarr").schema_fingerprint
    )

    zarr.open_group(tmp_path / "a.zarr", mode="r+")["data/joint_pos_rad"][3] = 0.0  # bit rot / tampering
    with pytest.raises(StoreCorruptError, match="episode 0"):
        EpisodeStore.open(tmp_path / "a.zarr").verify()


def test_image_arrays_one_frame_per_chunk_and_compressed(tmp_path: Path, store: EpisodeStore) -> None:
    add_episode(store, make_episode(0))
    raw = zarr.open_group(store.path, mode="r")
    assert raw["data/cam0_rgb"].chunks == (1, 48, 64, 3)
    assert raw["data/wrist_rgb"].chunks == (1, 32, 40, 3)
    assert raw["data/cam0_depth_m"].chunks == (1, 48, 64)
    assert raw["data/joint_pos_rad"].chunks[0] == 16  # small: a damaged chunk takes at most two episodes with it
    assert raw["data/cam0_rgb"].compressors and raw["data/joint_pos_rad"].compressors


def test_recovers_from_a_commit_killed_before_its_commit_point(tmp_path: Path, store: EpisodeStore) -> None:
    """What a kill between steps 1 and 3 of the protocol leaves: rows and meta beyond the record, temp files."""
    add_episode(store, make_episode(0))
    fp = store.fingerprint
    store.close()
    raw = zarr.open_group(store.path, mode="r+")
    for name in raw["data"].array_keys():
        arr = raw[f"data/{name}"]
        arr.resize((arr.shape[0] + 30, *arr.shape[1:]))
        arr[12:] = 7
    for name in raw["meta"].array_keys():
        arr = raw[f"meta/{name}"]
        arr.resize((arr.shape[0] + 1, *arr.shape[1:]))
    (store.path / "zarr.0123abcd.partial").write_bytes(b'{"torn')  # a commit record write cut short
    (store.path / "data/cam0_rgb/c/13/0/0/0.4567.partial").write_bytes(b"\x00" * 7)

    reader = EpisodeStore.open(store.path)
    assert (len(reader), reader.n_steps, reader.fingerprint) == (1, 12, fp)
    with EpisodeStore.open(store.path, mode="a") as s:
        assert not list(store.path.rglob("*.partial"))
        assert zarr.open_group(store.path, mode="r")["data/cam0_rgb"].shape[0] == 12
        second = make_episode(1, n_steps=5)
        add_episode(s, second)
    s = EpisodeStore.open(store.path)
    assert (len(s), s.n_steps) == (2, 17)
    for k, v in second.items():
        np.testing.assert_array_equal(s.get_episode(1)[k], v)
    s.verify()


def test_summary_is_a_readable_table(store: EpisodeStore) -> None:
    add_episode(store, make_episode(0), success=True)
    add_episode(store, make_episode(1), success=False)
    text = store.summary()
    assert "episodes 2" in text and "steps 24" in text and "1/2 (50.0%)" in text
    assert "cam0_depth_m" in text and "float32" in text and " m " in text and "rad" in text
    assert store.fingerprint[:16] in text and "MiB" in text


def test_video_and_contact_sheet(tmp_path: Path, store: EpisodeStore) -> None:
    add_episode(store, make_episode(0, n_steps=9))
    mp4 = render_episode_video(store, 0, tmp_path / "ep0.mp4", fps=5)
    assert mp4.stat().st_size > 0
    with imageio.get_reader(mp4) as reader:
        assert reader.count_frames() == 9
        frame = reader.get_data(0)
    assert frame.shape == (80, 128, 3)  # 76x124 padded to multiples of 16 for H.264

    png = write_contact_sheet(store, 0, tmp_path / "sheet.png", n_frames=6)
    sheet = imageio.imread(png)
    # frames of 14 + 48 + 14 by 64 + 60 px (wrist 32x40 scaled to height 48 -> width 60), 4 px apart
    assert sheet.shape == (2 * (76 + 4) + 4, 3 * (124 + 4) + 4, 3)
    np.testing.assert_array_equal(sheet, contact_sheet(store, 0, n_frames=6))  # PNG is lossless
    with pytest.raises(ValueError, match="image keys"):
        render_episode_video(store, 0, tmp_path / "bad.mp4", keys=["cam0_depth_m"])
