"""One policy contract for every runtime: the policy runner (evaluation, the ROS policy core) and the frozen base
under residual RL ask a :class:`Policy` the same question for the same episode start, tell it when an episode
starts, and a policy that keeps state between chunks (a scripted expert) refuses to serve two episodes at once."""

from __future__ import annotations

import numpy as np
import pytest

from robot_learning.policies.policy import ObservationMismatchError, Policy
from robot_learning.rl.base_policy import ExpertPolicy, FrozenBase
from robot_learning.runtime.policy_runner import DeltaHold, PolicyRunner, RunnerConfig


class RecordingPolicy(Policy):
    """Only what the contract requires; chunk k is k everywhere, and every question and reset is recorded."""

    n_obs_steps = 2
    obs_keys = ["tcp_position"]
    action_low, action_high = -np.ones(7, np.float32), np.ones(7, np.float32)

    def __init__(self) -> None:
        self.asked: list[np.ndarray] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict_chunks(self, histories):
        self.asked += list(histories["tcp_position"])
        return np.full((len(histories["tcp_position"]), 3, 7), float(len(self.asked)), np.float32)


def first_observation(x: float) -> dict[str, np.ndarray]:
    return {"tcp_position": np.array([x, 0.0, 0.0], np.float32), "gripper_width": np.array([0.08], np.float32)}


def test_the_runner_and_the_frozen_base_ask_the_same_question_at_an_episode_start_and_say_when_one_starts():
    runner_policy, base_policy = RecordingPolicy(), RecordingPolicy()
    runner = PolicyRunner(runner_policy, DeltaHold(7, range(6)), RunnerConfig(asynchronous=False))
    runner.reset()
    runner.observe(first_observation(0.3), now_s=0.0)
    base = FrozenBase(base_policy, n_envs=2)
    base.reset(np.ones(2, bool))
    base.act({k: np.stack([v, v]) for k, v in first_observation(0.3).items()})
    expected = np.array([[0.3, 0.0, 0.0]] * 2, np.float32)  # the first observation repeated, as training windows start
    np.testing.assert_array_equal(runner_policy.asked[0], expected)
    np.testing.assert_array_equal(base_policy.asked[0], expected)
    np.testing.assert_array_equal(base_policy.asked[1], expected)  # both envs in one batch
    assert runner_policy.resets == 1 and base_policy.resets == 1
    runner.close()


def test_a_plain_policy_executes_its_chunk_as_predicted_and_checks_the_keys_it_reads():
    policy = RecordingPolicy()
    action = np.arange(7, dtype=np.float32)
    assert policy.correct(first_observation(0.0), action) is action
    assert policy.predict_chunk({"tcp_position": np.zeros((2, 3))}).shape == (3, 7)
    policy.check_observation(first_observation(0.0))
    with pytest.raises(ObservationMismatchError, match=r"lacks keys \['tcp_position'\]"):
        policy.check_observation({"gripper_width": (1,)})


def test_a_scripted_expert_as_the_base_follows_one_episode_and_refuses_two_at_once():
    from sim.env import TwinEnv

    env = TwinEnv(task="lift", image_size=None)
    try:
        high = env.action_space.high
        expert = ExpertPolicy(env.cell, env.task_config, -high, high, seed=0)
        obs, _ = env.reset(seed=0)
        expert.check_observation(env.observation_space)
        one = FrozenBase(expert, n_envs=1)
        one.reset(np.ones(1, bool))
        assert one.act({k: v[None] for k, v in obs.items()}).shape == (1, 7)
        two = FrozenBase(expert, n_envs=2)
        with pytest.raises(ValueError, match="one episode at a time"):
            two.act({k: np.stack([v, v]) for k, v in obs.items()})
    finally:
        env.close()
