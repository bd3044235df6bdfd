"""The reward a fine-tuning run optimises: the stage plan's per-step reward pays for lingering short of success,
its potential-shaped variant does not (success ends the episode, so lingering must not pay)."""

from __future__ import annotations

import json

import numpy as np

from hardware_configs import load_task
from robot_learning.rewards.oracles import good_plan
from robot_learning.rl.rewards import reward_wrapper
from sim.env import TwinEnv


def rewards_while_holding_still(reward: str, steps: int = 8) -> list[float]:
    wrap = reward_wrapper(reward, "lift", None, gamma=0.99)
    env = wrap(TwinEnv(task="lift", image_size=None))
    try:
        env.reset(seed=4)
        hold = np.zeros(env.action_space.shape, dtype=np.float32)  # zero deltas, gripper open: no progress
        return [env.step(hold)[1] for _ in range(steps)]
    finally:
        env.close()


def test_the_per_step_stage_reward_pays_for_holding_still_and_the_shaped_one_does_not():
    per_step = rewards_while_holding_still("robohorizon")
    shaped = rewards_while_holding_still("robohorizon_pbrs")
    assert min(per_step[2:]) > 0.0 and np.ptp(per_step[2:]) < 1e-6  # part-way progress paid every step
    assert per_step[-1] * load_task("lift").horizon_steps > 1.0  # idling out the episode beats the success reward
    assert max(shaped[2:]) <= 1e-3  # (gamma - 1) * scale * Phi: standing still costs a little
    assert shaped[0] > 0  # the first step pays the progress the scene starts with (Phi(s_0) := 0)


def test_an_accepted_plan_file_is_used_instead_of_the_oracle(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(good_plan(load_task("lift"))))
    env = reward_wrapper("robohorizon_pbrs", "lift", str(plan), gamma=0.99)(TwinEnv(task="lift", image_size=None))
    try:
        env.reset(seed=0)
        info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))[4]
        assert info["reward_name"] == "robohorizon_pbrs" and "shaping" in info["reward_breakdown"]
    finally:
        env.close()
