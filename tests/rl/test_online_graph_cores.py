"""The ROS-free cores of online fine-tuning on the robot graph: the episode loop's control flow and success
sources, the recorder's sparse reward and discards, and the learner's resume from its state file."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from robot_learning.data.episode_store import EpisodeStore
from robot_learning.rl.config import FinetuneConfig, ResidualConfig
from robot_learning.sessions.online_actor import STATE_NAME, STORE_NAME, EpisodeRecorder
from robot_learning.sessions.online_episodes import EpisodeLoop, FinetuneSessionParams, Progress
from robot_learning.sessions.online_learner import OnlineLearner
from ros_support.params import ParameterError, validate

KEYS = ["tcp_position", "gripper_width"]


class FakeGraph:
    """The session's IO as plain Python: a policy that reaches the horizon after ``horizon_after`` polls."""

    def __init__(self, horizon_after: int = 5) -> None:
        self.calls: list[str] = []
        self.committed: list[bool] = []
        self.horizon_after, self.polls = horizon_after, 0

    def discard(self):
        self.calls.append("discard")

    def home(self):
        self.calls.append("home")
        return True

    def reset_scene(self):
        self.calls.append("reset_scene")

    def begin(self):
        self.calls.append("begin")
        self.polls = 0
        return len(self.committed), len(self.committed) - 1

    def end(self, success):
        self.committed.append(success)
        return len(self.committed) - 1

    def hold(self, on):
        self.calls.append(f"hold {on}")

    def progress(self):
        self.polls += 1
        return Progress(True, self.polls, self.polls >= self.horizon_after, 0, 0)

    def publish(self, status):
        self.calls.append(f"status {status['phase']} paused={status['paused']}")


def run_in_thread(loop: EpisodeLoop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return thread


def params(**kw) -> FinetuneSessionParams:
    return validate(FinetuneSessionParams, {"cell": "franka_3cam", "task": "lift", **kw})


def test_the_twin_success_source_and_skipping_the_operator_are_refused_off_the_twin():
    with pytest.raises(ParameterError, match="success_source twin reads the simulator"):
        params(success_source="twin")
    with pytest.raises(ParameterError, match=r"auto_confirm_reset .* sim only"):
        params(auto_confirm_reset=True)
    assert params(success_source="twin", sim=True, auto_confirm_reset=True).success_source == "twin"


def test_episodes_end_at_the_horizon_as_failures_and_a_restart_discards_first():
    graph = FakeGraph(horizon_after=3)
    loop = EpisodeLoop(params(episodes=2, success_source="topic", sim=True, auto_confirm_reset=True), graph,
                       poll_s=0.001)
    run_in_thread(loop).join(timeout=10)
    assert graph.committed == [False, False] and loop.status.phase == "done"
    assert [c for c in graph.calls if not c.startswith("status")][:4] == ["discard", "home", "reset_scene", "begin"]


def test_only_the_configured_source_or_the_operator_labels_an_episode():
    graph = FakeGraph(horizon_after=10_000)
    loop = EpisodeLoop(params(episodes=3, success_source="topic", sim=True, auto_confirm_reset=True), graph,
                       poll_s=0.001)
    thread = run_in_thread(loop)
    for n, expected in enumerate((True, False, True)):
        while loop.status.phase != "running" or time.monotonic() - loop._running_since < 0.35:
            time.sleep(0.01)
        assert not loop.offer_success("twin", True)  # not the configured source: ignored
        assert not loop.offer_success("topic", False)  # a model's silence is no failure
        assert loop.offer_success("topic", True) if expected else loop.offer_success("operator", False)
        while len(graph.committed) <= n:
            time.sleep(0.01)
    thread.join(timeout=10)
    assert graph.committed == [True, False, True]


def test_the_robot_waits_for_the_operators_reset_and_abort_discards_the_episode():
    graph = FakeGraph(horizon_after=10_000)
    loop = EpisodeLoop(params(episodes=1, label_timeout_s=0.0), graph, poll_s=0.001)
    thread = run_in_thread(loop)
    time.sleep(0.3)
    assert loop.status.phase == "awaiting_reset_confirmation" and "begin" not in graph.calls
    assert loop.confirm_reset()
    while loop.status.phase != "running":
        time.sleep(0.01)
    loop.pause(True)
    while "hold True" not in graph.calls:
        time.sleep(0.01)
    assert loop.abort()
    time.sleep(0.2)
    assert loop.status.phase == "aborted"  # paused: the next homing waits for resume
    loop.pause(False)
    while loop.status.phase != "awaiting_reset_confirmation":
        time.sleep(0.01)
    assert graph.committed == [] and graph.calls.count("discard") == 2
    loop.stop.set()
    thread.join(timeout=5)


def test_a_pause_shows_at_once_and_no_episode_begins_until_resume():
    graph = FakeGraph(horizon_after=10_000)
    loop = EpisodeLoop(params(episodes=2, success_source="topic", sim=True, auto_confirm_reset=True), graph,
                       poll_s=0.001)
    loop.pause(True)  # before the first episode: nothing moves
    assert graph.calls[-1].endswith("paused=True")  # published with the call, not with the next phase change
    thread = run_in_thread(loop)
    time.sleep(0.3)
    assert "home" not in graph.calls and "begin" not in graph.calls
    loop.pause(False)
    while loop.status.phase != "running":
        time.sleep(0.001)
    loop.pause(True)  # during the first episode: the arm holds, then the operator ends it
    while "hold True" not in graph.calls:
        time.sleep(0.001)
    assert loop.offer_success("operator", False)
    time.sleep(0.3)
    assert graph.committed == [False] and graph.calls.count("begin") == 1  # the second waits for resume
    loop.pause(False)
    while loop.status.phase != "running" or graph.calls.count("begin") < 2:
        time.sleep(0.001)
    assert loop.offer_success("operator", True)
    thread.join(timeout=10)
    assert graph.committed == [False, True] and loop.status.phase == "done"


def _record(recorder: EpisodeRecorder, steps: int, success: bool | None) -> int | None:
    recorder.begin({"operator": "online"})
    for t in range(steps):
        obs = {"tcp_position": np.full(3, t, np.float32), "gripper_width": np.zeros(1, np.float32)}
        record = {"base_action": np.zeros(7, np.float32), "residual": np.zeros(7, np.float32),
                  "log_prob": np.float32(-1.0), "value": np.float32(0.5)}
        recorder.add(obs, np.zeros(7, np.float32), record, intervention=t == 1, stamp_s=float(t))
    return recorder.discard() and None if success is None else recorder.end(success)


def test_the_recorder_pays_the_success_on_the_last_step_and_a_discard_leaves_nothing(tmp_path):
    recorder = EpisodeRecorder(tmp_path, "franka_3cam", "lift", KEYS)
    assert _record(recorder, 4, True) == 0
    assert _record(recorder, 3, None) is None  # discarded
    assert _record(recorder, 2, False) == 1
    recorder.close()
    with EpisodeStore.open(tmp_path / STORE_NAME) as store:
        assert store.n_episodes == 2
        first, second = store.get_episode(0), store.get_episode(1)
    assert first["reward"].tolist() == [0, 0, 0, 1] and second["reward"].tolist() == [0, 0]
    assert first["intervention"].tolist() == [False, True, False, False]


def test_the_learner_learns_committed_episodes_once_and_resumes_from_its_state(tmp_path):
    recorder = EpisodeRecorder(tmp_path, "franka_3cam", "lift", KEYS)
    config = FinetuneConfig(task="lift", residual=ResidualConfig(hidden_sizes=[8], obs_keys=KEYS))
    learner = OnlineLearner(tmp_path, config, -np.ones(7), np.ones(7), episodes_per_update=2)
    assert learner.poll() is None  # no store yet
    _record(recorder, 5, True)
    assert learner.poll() is None  # one new episode, two needed
    _record(recorder, 5, False)
    report = learner.poll()
    assert report is not None and report.version == 1 and report.episodes_consumed == 2
    assert learner.poll() is None  # nothing new
    _record(recorder, 5, True)
    _record(recorder, 5, True)
    recorder.close()
    weights = torch.load(tmp_path / STATE_NAME, weights_only=True)["residual"]
    restarted = OnlineLearner(tmp_path, config, -np.ones(7), np.ones(7), episodes_per_update=2)
    assert restarted.episodes_consumed == 2 and restarted.version == 1
    report = restarted.poll()
    assert report is not None and report.episodes_consumed == 4 and report.episodes_in_batch == 2
    assert report.version == 2
    restarted_start = restarted.policy.state_dict()
    assert any(not torch.equal(weights[k], restarted_start[k]) for k in weights)  # it went on learning


def test_the_live_view_writes_a_png_and_a_line_without_a_display(tmp_path):
    from robot_learning.sessions.finetune_dashboard import render_dashboard, summary_line

    status = {"phase": "running", "episode": 3, "step": 7, "weights_version": 1,
              "outcomes": [{"index": 0, "success": True}, {"index": 1, "success": False},
                           {"index": 2, "committed": None, "aborted": True}]}
    line = summary_line(status, {"speed_clamp": 2, "stale_hold": 0}, "grasp the peg")
    assert "success 1/2" in line and "speed_clamp 2" in line and "stale_hold" not in line and "grasp the peg" in line
    image = np.zeros((12, 16, 3), np.uint8)
    path = render_dashboard(tmp_path / "view.png", image, status, {}, None)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".*tmp*"))
