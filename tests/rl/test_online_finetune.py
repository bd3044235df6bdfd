"""Online fine-tuning in the twin: interventions are stored and masked, a crash loses nothing, a restart resumes."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _online_worker import make_session

from robot_learning.data.episode_store import EpisodeStore

WORKER = Path(__file__).with_name("_online_worker.py")


def test_episodes_are_stored_with_interventions_marked_and_learned_from(tmp_path):
    session = make_session(str(tmp_path))
    report = session.run(2)
    session.close()
    assert report.episodes_in_store == 2 and report.updates == 2
    assert report.interventions == 6  # steps 2-4 of each episode
    with EpisodeStore.open(tmp_path / "online_rollouts.zarr") as store:
        episode = store.get_episode(0)
        assert episode["intervention"][:5].tolist() == [False, True, True, True, False]
        assert np.isfinite(episode["log_prob"]).all() and episode["base_action"].shape[1] == 7
    state = torch.load(tmp_path / "online_state.pt", weights_only=True)
    assert state["episodes_consumed"] == 2


def test_a_killed_session_loses_no_committed_episode_and_resumes(tmp_path):
    proc = subprocess.Popen([sys.executable, str(WORKER), str(tmp_path), "6"], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[2])
    committed = 0
    deadline = time.monotonic() + 240
    while committed < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("committed"):
            committed = int(line.split()[1])
    time.sleep(0.3)  # now somewhere inside episode 3
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert committed >= 2

    with EpisodeStore.open(tmp_path / "online_rollouts.zarr") as store:
        survived = store.n_episodes
        assert committed <= survived <= committed + 1
        for i in range(survived):
            assert len(store.get_episode(i)["action"]) == store.episode_info(i)["n_steps"]

    session = make_session(str(tmp_path))
    resumed_from = session.episodes_consumed
    assert resumed_from >= committed - 1  # state is saved after each update; at most the last one is redone
    report = session.run(4)
    session.close()
    assert report.episodes_in_store == 4 and report.episodes_run == 4 - survived
    assert torch.load(tmp_path / "online_state.pt", weights_only=True)["episodes_consumed"] == 4


def test_a_new_session_can_start_from_a_residual_trained_elsewhere(tmp_path):
    twin = make_session(str(tmp_path / "twin"))  # stands in for the residual trained in parallel twins
    twin.run(1)
    twin.close()
    trained = torch.load(tmp_path / "twin" / "online_state.pt", weights_only=True)["residual"]

    robot = make_session(str(tmp_path / "robot"), init_residual=tmp_path / "twin" / "online_state.pt")
    started_with = robot.policy.state_dict()
    robot.close()
    assert robot.episodes_consumed == 0  # a new session, not a resumed one
    for name, tensor in trained.items():
        assert torch.equal(started_with[name], tensor), name


def test_an_online_session_logs_every_step_with_base_residual_and_interventions_to_rerun(tmp_path):
    """What `finetune --online --rrd` writes: every executed step on one timeline, the base's action and the
    residual's sample beside the executed one, and the steps a person took over."""
    from robot_learning.viz.rerun_view import RerunView
    from robot_learning.viz.rrd_read import read_rrd

    session = make_session(str(tmp_path / "run"))
    rrd = tmp_path / "online.rrd"
    session.view = RerunView(session.env.cell, session.env.task_config, rrd, spawn=False, cloud=False)
    session.run(1)
    session.close()
    session.view.close()
    with EpisodeStore.open(tmp_path / "run" / "online_rollouts.zarr") as store:
        episode = store.get_episode(0)
    contents = read_rrd(rrd)
    assert contents.steps() == list(range(len(episode["action"])))
    taken = [bool(v[0]) for _, v in contents.values("/intervention", "Scalars:scalars")]
    assert taken == episode["intervention"].tolist()
    residual = np.array([v for _, v in contents.values("/actions/residual", "Scalars:scalars")])
    np.testing.assert_allclose(residual, episode["residual"], atol=1e-6)
    assert {"/actions/base", "/actions/executed"} <= contents.entities


def test_rerun_logging_is_refused_for_the_parallel_twins_in_one_line(tmp_path, capsys):
    from robot_learning.cli.main import main

    assert main(["finetune", "--checkpoint", str(tmp_path / "never_read.pt"), "--rrd", str(tmp_path / "x.rrd"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "--online" in capsys.readouterr().err and not (tmp_path / "out").exists()
