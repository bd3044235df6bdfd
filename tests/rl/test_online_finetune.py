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
