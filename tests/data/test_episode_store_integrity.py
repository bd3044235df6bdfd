"""A damaged episode store: every corrupted chunk is found and named (episode, array), the rest stays usable.

Damage is done to the files on disk, as bit rot, a truncated copy or a lost file would: zarr itself decodes a
flipped or truncated blosc chunk into garbage without complaint and reads a deleted chunk as zeros.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from robot_learning.cli.main import main
from robot_learning.data.episode_store import (
    ArraySpec,
    CorruptEpisodeError,
    EpisodeStore,
    StoreCorruptError,
    StoreMetadataError,
)
from robot_learning.data.integrity import load_healthy, scan
from robot_learning.policies.dataset import load_arrays

SPECS = {
    "cam_rgb": ArraySpec((16, 16, 3), np.uint8, "1"),  # image: one frame per chunk
    "joint_pos_rad": ArraySpec((7,), np.float32, "rad"),  # low-dim: 16 steps per chunk
    "action": ArraySpec((7,), np.float32, "1"),
}
N_EPISODES, N_STEPS = 4, 20  # episode i holds steps [20 i, 20 i + 20)


def episode(i: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(i)
    return {
        "cam_rgb": rng.integers(0, 256, (N_STEPS, 16, 16, 3), dtype=np.uint8),
        "joint_pos_rad": rng.standard_normal((N_STEPS, 7)).astype(np.float32),
        "action": rng.standard_normal((N_STEPS, 7)).astype(np.float32),
    }


@pytest.fixture
def path(tmp_path: Path) -> Path:
    with EpisodeStore.create(tmp_path / "ds.zarr", SPECS, {"cell": "c", "task": "lift"}, durable=False) as s:
        for i in range(N_EPISODES):
            with s.begin_episode({"seed": i}) as ep:
                data = episode(i)
                for t in range(N_STEPS):
                    ep.add_step(**{k: v[t] for k, v in data.items()})
                ep.commit(success=True)
    return tmp_path / "ds.zarr"


def flip_bits(f: Path) -> None:
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x5A
    f.write_bytes(bytes(raw))


def truncate(f: Path) -> None:
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def delete(f: Path) -> None:
    f.unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {"flipped": flip_bits, "truncated": truncate, "deleted": delete}
IMAGE_CHUNK_OF_EPISODE_1 = "data/cam_rgb/c/25/0/0/0"  # step 25 = episode 1, step 5
LOW_DIM_CHUNK_2 = "data/joint_pos_rad/c/2/0"  # steps 32-47: the end of episode 1 and the start of episode 2


def assert_episode_intact(store: EpisodeStore, i: int) -> None:
    got = store.get_episode(i)
    for k, v in episode(i).items():
        np.testing.assert_array_equal(got[k], v)


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_image_chunk_names_its_episode_and_array_and_spares_the_others(path: Path, kind: str) -> None:
    DAMAGE[kind](path / IMAGE_CHUNK_OF_EPISODE_1)
    store = EpisodeStore.open(path)
    with pytest.raises(CorruptEpisodeError) as err:
        store.get_episode(1)
    assert (err.value.episode, err.value.key) == (1, "cam_rgb")
    assert str(path) in str(err.value) and "episode 1, array 'cam_rgb'" in str(err.value)
    if kind == "deleted":
        assert f"missing chunk {IMAGE_CHUNK_OF_EPISODE_1}" in err.value.what
    for i in (0, 2, 3):
        assert_episode_intact(store, i)
    np.testing.assert_array_equal(store.get_episode(1, ["action"])["action"], episode(1)["action"])


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_low_dim_chunk_takes_only_the_episodes_it_overlaps(path: Path, kind: str) -> None:
    DAMAGE[kind](path / LOW_DIM_CHUNK_2)
    store = EpisodeStore.open(path)
    damaged = set()
    for i in range(N_EPISODES):
        try:
            assert_episode_intact(store, i)
        except CorruptEpisodeError as exc:
            assert (exc.episode, exc.key) == (i, "joint_pos_rad")
            damaged.add(i)
    if kind == "flipped":  # one flipped bit alters one value (blosc shuffles bytes): one of the two episodes
        assert len(damaged) == 1 and damaged <= {1, 2}
    else:
        assert damaged == {1, 2}


def test_training_loads_the_healthy_episodes_and_warns_naming_the_damaged_ones(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flip_bits(path / IMAGE_CHUNK_OF_EPISODE_1)
    (path / "data/action/c/4/0").unlink()  # steps 64-79: the end of episode 3
    store = EpisodeStore.open(path)
    with caplog.at_level(logging.WARNING):
        arrays, ends = load_arrays(store, ["cam_rgb", "action"])
    np.testing.assert_array_equal(ends, [20, 40])
    for k in ("cam_rgb", "action"):
        np.testing.assert_array_equal(arrays[k], np.concatenate([episode(0)[k], episode(2)[k]]))
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "skipping 2 damaged of 4 episodes, using 2" in warning
    assert "episode 1 ('cam_rgb'" in warning and "episode 3 ('action': missing chunk data/action/c/4/0" in warning


def test_an_undecodable_chunk_is_located_and_skipped_when_loading(path: Path) -> None:
    (path / "data/action/c/0/0").write_bytes(b"")  # blosc refuses an empty chunk outright
    healthy = load_healthy(EpisodeStore.open(path), ["action", "joint_pos_rad"])
    assert [(d.episode, d.key) for d in healthy.damages] == [(0, "action")]
    assert "undecodable chunk data/action/c/0/0" in healthy.damages[0].what
    np.testing.assert_array_equal(healthy.episodes, [1, 2, 3])
    np.testing.assert_array_equal(healthy.arrays["action"], np.concatenate([episode(i)["action"] for i in (1, 2, 3)]))


def test_training_refuses_a_store_whose_every_episode_is_damaged(path: Path) -> None:
    for f in (path / "data/action/c").iterdir():
        flip_bits(f / "0")
    with pytest.raises(ValueError, match="all 4 episodes are damaged"):
        load_arrays(EpisodeStore.open(path), ["action"])


def test_verify_lists_every_damage_and_exits_non_zero(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flip_bits(path / "data/cam_rgb/c/5/0/0/0")  # episode 0
    truncate(path / IMAGE_CHUNK_OF_EPISODE_1)  # episode 1
    delete(path / "data/action/c/4/0")  # episode 3
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    rows = [line.split(maxsplit=2) for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [(int(r[0]), r[1]) for r in rows] == [(0, "cam_rgb"), (1, "cam_rgb"), (3, "action")]
    assert "checksum mismatch" in rows[0][2] and "missing chunk data/action/c/4/0" in rows[2][2]
    assert "DAMAGED: 3 of 4 episodes" in out
    report = scan(EpisodeStore.open(path))
    assert report.damaged_episodes == [0, 1, 3] and not report.ok
    with pytest.raises(CorruptEpisodeError, match="episode 0, array 'cam_rgb'"):
        EpisodeStore.open(path).verify()


def test_a_healthy_store_verifies_clean(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 episodes, checksums per-array" in out and out.rstrip().endswith("OK")
    assert main(["show", "--verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "episodes 4" in out and "checksums per-array: each episode's arrays are verified when read" in out
    assert out.rstrip().endswith("OK")


def test_show_verify_and_render_report_damage_in_one_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    delete(path / IMAGE_CHUNK_OF_EPISODE_1)
    assert main(["show", "--verify", str(path)]) == 1
    assert "DAMAGED: 1 of 4 episodes" in capsys.readouterr().out
    assert main(["render", str(path), "--episode", "1", "--out", str(path.parent / "ep1.mp4")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "episode 1, array 'cam_rgb': missing chunk" in err


def make_pre_checksum_store(path: Path) -> None:
    """What a store written before per-array checksums looks like: no meta/array_sha256, no meta hashes."""
    group = zarr.open_group(path, mode="r+")
    del group["meta/array_sha256"]
    commit = dict(group.attrs["commit"])
    del commit["meta_sha256"]
    group.update_attributes({"commit": commit})


def test_a_store_from_before_checksums_loads_unverified_and_verify_names_damaged_episodes(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_pre_checksum_store(path)
    store = EpisodeStore.open(path)
    assert store.checksums == "per-episode only"
    assert "reads are unverified" in store.summary()
    assert_episode_intact(store, 1)
    flip_bits(path / IMAGE_CHUNK_OF_EPISODE_1)
    assert main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "checksums per-episode only" in out and "content does not match the episode hash" in out
    assert scan(EpisodeStore.open(path)).damaged_episodes == [1]
    (path / "data/action/c/0/0").write_bytes(b"")
    with pytest.raises(CorruptEpisodeError, match="episode 0, array 'action': undecodable"):
        EpisodeStore.open(path).get_episode(0)


def test_appending_to_a_store_from_before_checksums_checksums_the_new_episodes(path: Path) -> None:
    make_pre_checksum_store(path)
    with EpisodeStore.open(path, mode="a") as s, s.begin_episode() as ep:
        for t in range(N_STEPS):
            ep.add_step(**{k: v[t] for k, v in episode(9).items()})
        ep.commit(success=True)
    store = EpisodeStore.open(path)
    assert store.checksums == "per-array for 1 of 5 episodes, per-episode only for the rest"
    assert [store.has_array_checksums(i) for i in range(5)] == [False] * 4 + [True]
    store.verify()


# ---------------------------------------------------------------- metadata


def test_unreadable_root_metadata_names_the_file(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (path / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gro')
    with pytest.raises(StoreMetadataError) as err:
        EpisodeStore.open(path)
    assert err.value.file == path / "zarr.json"
    assert main(["show", str(path)]) == 2
    err_line = capsys.readouterr().err
    assert err_line.count("\n") == 1 and f"{path / 'zarr.json'}: unreadable" in err_line


def test_a_root_metadata_without_specs_names_the_file(path: Path) -> None:
    doc = json.loads((path / "zarr.json").read_text())
    del doc["attributes"]["specs"]
    (path / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(StoreMetadataError, match=r"zarr.json: bad specs or commit record \(KeyError"):
        EpisodeStore.open(path)


@pytest.mark.parametrize(
    ("damage", "file", "problem"),
    [
        (lambda p: (p / "data/action/zarr.json").write_text("not json"), "data/action/zarr.json", "unreadable"),
        (lambda p: shutil.rmtree(p / "meta/episode_ends"), "meta/episode_ends/zarr.json", "missing"),
        (lambda p: flip_bits(p / "meta/episode_ends/c/0"), "meta/episode_ends/c/0", ""),
        (lambda p: truncate(p / "meta/seed/c/0"), "meta/seed/c/0", ""),
        (lambda p: (p / "meta/array_sha256/c/0/0/0").write_bytes(b"\0" * 9), "meta/array_sha256/c/0/0/0", ""),
    ],
    ids=["array-zarr-json", "missing-episode-ends", "flipped-episode-ends", "truncated-seed", "garbage-checksums"],
)
def test_damaged_array_metadata_names_the_file(
    path: Path, damage: Callable[[Path], None], file: str, problem: str
) -> None:
    damage(path)
    with pytest.raises(StoreMetadataError) as err:
        EpisodeStore.open(path)
    assert err.value.file == path / file and problem in err.value.problem


def test_metadata_that_disagrees_with_the_specs_names_the_file(path: Path) -> None:
    meta = json.loads((path / "data/joint_pos_rad/zarr.json").read_text())
    meta["shape"] = [meta["shape"][0], 6]
    (path / "data/joint_pos_rad/zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreMetadataError, match=r"data/joint_pos_rad/zarr.json: array is float32\(6,\)"):
        EpisodeStore.open(path)


def test_every_verb_reports_a_damaged_store_in_one_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert issubclass(CorruptEpisodeError, StoreCorruptError) and issubclass(StoreMetadataError, StoreCorruptError)
    (path / "meta/episode_ends/zarr.json").write_text("{")
    assert main(["train", "--dataset", str(path), "--out", str(path.parent / "policy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path / 'meta/episode_ends/zarr.json'}: unreadable" in err
