"""The reward interface issue 7's PPO consumes: sparse baseline and the env wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from robot_learning.rewards.base import PotentialShapedReward, RewardFunction, RewardWrapper, SparseSuccessReward
from robot_learning.rewards.kagi import KagiReward
from robot_learning.rewards.stages import StagePlanReward
from sim.env import TwinEnv


class CountingReward:
    name = "counting"

    def __init__(self) -> None:
        self.resets, self.calls = 0, 0

    def reset(self, obs, info) -> None:
        self.resets += 1

    def __call__(self, obs, action, next_obs, info):
        self.calls += 1
        return 0.25, {"calls": float(self.calls)}


def test_every_reward_satisfies_the_protocol():
    for cls in (SparseSuccessReward, KagiReward, StagePlanReward, CountingReward):
        assert all(hasattr(cls, attr) for attr in ("name", "reset", "__call__"))
    assert isinstance(SparseSuccessReward(), RewardFunction)


def test_sparse_reward_pays_only_on_success():
    sparse = SparseSuccessReward(success_reward=2.0)
    assert sparse({}, np.zeros(7), {}, {"success": False}) == (0.0, {"success": 0.0})
    assert sparse({}, np.zeros(7), {}, {"success": True}) == (2.0, {"success": 1.0})


def test_wrapper_replaces_the_env_reward_and_logs_the_breakdown():
    reward = CountingReward()
    env = RewardWrapper(TwinEnv(task="lift", image_size=None), reward)
    env.reset(seed=0)
    _, r, _, _, info = env.step(np.zeros(7, np.float32))
    _, r2, _, _, info2 = env.step(np.zeros(7, np.float32))
    env.close()
    assert reward.resets == 1 and (r, r2) == (0.25, 0.25)
    assert info["env_reward"] == 0.0 and info["reward_name"] == "counting"
    assert info["reward_breakdown"] == {"calls": 1.0} and info2["reward_breakdown"] == {"calls": 2.0}


class ProgressReward:
    name = "progress"

    def __init__(self, values: list[float]) -> None:
        self.values = iter(values)

    def reset(self, obs, info) -> None:
        pass

    def __call__(self, obs, action, next_obs, info):
        return 0.0, {"progress": next(self.values)}


def test_potential_shaping_pays_for_progress_not_for_staying():
    shaped = PotentialShapedReward(ProgressReward([0.5, 0.5, 0.5, 0.8, 0.8]), scale=2.0)
    shaped.reset({}, {})
    rewards = [shaped({}, np.zeros(7), {}, {"success": False})[0] for _ in range(4)]
    assert rewards == pytest.approx([1.0, 0.0, 0.0, 0.6])  # the sum telescopes to scale * final progress
    r, parts = shaped({}, np.zeros(7), {}, {"success": True})
    assert r == pytest.approx(1.0) and parts["shaping"] == 0.0
    assert shaped.name == "progress_pbrs"
