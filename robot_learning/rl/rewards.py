"""The reward a fine-tuning run optimises, built inside each twin worker (the rewards of issue 8 plug in here)."""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import gymnasium as gym

log = logging.getLogger(__name__)


def wrap_with_stage_reward(env: gym.Env, plan_json: str, potential_gamma: float | None = None) -> gym.Env:
    """The plan's per-step reward, or with ``potential_gamma`` sparse success plus its progress as a potential
    (``gamma`` of the learner, so the shaping leaves the optimal policy of the sparse task unchanged)."""
    from robot_learning.rewards.base import PotentialShapedReward, RewardWrapper
    from robot_learning.rewards.stages.language import StagePlan
    from robot_learning.rewards.stages.reward import StagePlanReward

    task = env.unwrapped.task_config
    reward = StagePlanReward(StagePlan.model_validate_json(plan_json), task)
    if potential_gamma is not None:
        reward = PotentialShapedReward(reward, gamma=potential_gamma)
    return RewardWrapper(env, reward)


def reward_wrapper(reward: str, task_name: str, plan_path: str | None, gamma: float = 1.0):
    """None for the env's sparse success reward; otherwise a picklable wrapper for ``make_vector_env``.
    ``gamma`` is the learner's discount, used by the potential-shaped variant."""
    if reward == "sparse":
        return None
    if plan_path:
        plan_json = Path(plan_path).read_text()
    else:
        from hardware_configs import load_task
        from robot_learning.rewards.oracles import good_plan

        log.warning("no plan_path: using the oracle's stage plan for %s (what a good model answers)", task_name)
        plan_json = json.dumps(good_plan(load_task(task_name)))
    return partial(wrap_with_stage_reward, plan_json=plan_json,
                   potential_gamma=gamma if reward.endswith("_pbrs") else None)
