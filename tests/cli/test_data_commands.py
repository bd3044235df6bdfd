"""`manip-stack collect/show/render`: the commands a person runs on the twin, end to end."""

import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from robot_learning.cli.main import main
from robot_learning.data.episode_store import EpisodeStore


def test_collect_show_render_on_the_twin(tmp_path: Path, capsys):
    store_path = tmp_path / "lift.zarr"
    assert main(["collect", "--task", "lift", "--episodes", "2", "--expert", "--out", str(store_path),
                 "--image-size", "48x48"]) == 0
    assert "2 episodes committed" in capsys.readouterr().out

    with EpisodeStore.open(store_path) as store:
        assert store.n_episodes == 2
        assert store.attrs["cell"] == "franka_3cam" and store.attrs["task"] == "lift"
        episode = store.get_episode(1)
        assert episode["cam_wrist_rgb"].shape[1:] == (48, 48, 3)
        assert store.episode_info(1)["success"]
        # actions stay within what the safety limits allow per 10 Hz step
        assert np.abs(episode["action"][:, :3]).max() <= 0.05

    assert main(["show", str(store_path)]) == 0
    assert "episodes 2" in capsys.readouterr().out

    video = tmp_path / "ep1.mp4"
    assert main(["render", str(store_path), "--episode", "1", "--out", str(video)]) == 0
    frames = iio.imread(video)
    assert frames.shape[0] == len(episode["action"]) and frames.shape[-1] == 3
    assert video.with_suffix(".png").is_file()


def test_collect_appends_new_scenes_to_an_existing_store(tmp_path: Path):
    store_path = tmp_path / "lift.zarr"
    for _ in range(2):
        assert main(["collect", "--task", "lift", "--episodes", "1", "--expert", "--out", str(store_path),
                     "--image-size", "32x32"]) == 0
    with EpisodeStore.open(store_path) as store:
        seeds = [store.episode_info(i)["seed"] for i in range(store.n_episodes)]
    assert len(seeds) == 2 and seeds[0] != seeds[1]


def test_bad_input_is_one_clear_line_and_exit_code_2(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "robot_learning.cli.main", "collect", "--task", "stack_blocks", "--expert",
         "--out", str(tmp_path / "x.zarr")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "no task named 'stack_blocks'; available: ['lift', 'peg_insert']" in result.stderr
    assert "Traceback" not in result.stderr


def test_show_of_a_missing_store_says_so(tmp_path: Path, capsys):
    assert main(["show", str(tmp_path / "nothing.zarr")]) == 2
    assert "nothing.zarr" in capsys.readouterr().err


def test_a_zarr_group_that_is_not_an_episode_store_is_one_line_and_exit_2(tmp_path, capsys):
    import zarr

    zarr.open_group(tmp_path / "other.zarr", mode="w")
    assert main(["show", str(tmp_path / "other.zarr")]) == 2
    err = capsys.readouterr().err
    assert "not an episode store" in err and "Traceback" not in err
