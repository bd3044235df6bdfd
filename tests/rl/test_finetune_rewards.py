"""The reward a fine-tuning run optimises: the stage plan's per-step reward pays for lingering short of success,
its potential-shaped variant does not (success ends the episode, so lingering must not pay); KAGI asks its
model once per episode over HTTP from inside the worker, and a run replays offline from its answer cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hardware_configs import load_task
from robot_learning.rewards.oracles import good_plan
from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.rewards import finetune_reward, reward_wrapper, stage_plan_json
from sim.env import TwinEnv

LIFT_PLAN = json.dumps(good_plan(load_task("lift")))


def rewards_while_holding_still(reward: str, steps: int = 8) -> list[float]:
    wrap = reward_wrapper(reward, LIFT_PLAN, gamma=0.99)
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


def test_an_accepted_plan_file_is_used_without_asking_a_model(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(LIFT_PLAN)
    config = FinetuneConfig(task="lift", reward="robohorizon_pbrs", plan_path=str(plan), model_profile="no_such_model")
    env = reward_wrapper("robohorizon_pbrs", stage_plan_json(config), gamma=0.99)(TwinEnv(task="lift", image_size=None))
    try:
        env.reset(seed=0)
        info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))[4]
        assert info["reward_name"] == "robohorizon_pbrs" and "shaping" in info["reward_breakdown"]
    finally:
        env.close()


def kagi_config(cache, mode="read_write", reward="kagi") -> FinetuneConfig:
    return FinetuneConfig(task="lift", reward=reward, answer_cache=str(cache), answer_cache_mode=mode)


def kagi_rewards(config: FinetuneConfig, seed: int, steps: int = 6) -> list[tuple[float, dict]]:
    with finetune_reward(config) as wrap:
        env = wrap(TwinEnv(task="lift", image_size=None))
        try:
            env.reset(seed=seed)
            towards_cube = np.zeros(env.action_space.shape, dtype=np.float32)
            towards_cube[2] = -0.5  # down, towards the cube: progress on the first waypoints
            return [(r, info["reward_breakdown"]) for _, r, _, _, info in
                    (env.step(towards_cube) for _ in range(steps))]
        finally:
            env.close()


def test_kagi_in_a_worker_asks_the_model_at_reset_over_http_and_replays_offline_from_the_cache(tmp_path):
    cache = tmp_path / "answers.sqlite"
    live = kagi_rewards(kagi_config(cache), seed=3)
    assert all(parts["fallback"] == 0.0 for _, parts in live)  # the oracle's keypoints were used, not sparse
    assert 0.0 < live[0][0] < live[-1][0]  # dense: paid for moving towards the grasp point
    from robot_learning.rewards.fm.cache import ResponseCache

    stored = ResponseCache(cache)
    assert len(stored) == 1  # one query per episode, at reset
    stored.close()
    replay = kagi_rewards(kagi_config(cache, mode="offline"), seed=3)  # no server: answers from the cache
    assert [r for r, _ in replay] == [r for r, _ in live]


def test_closing_a_kagi_worker_closes_the_answer_cache_it_opened(tmp_path):
    import sqlite3

    with finetune_reward(kagi_config(tmp_path / "answers.sqlite")) as wrap:
        env = wrap(TwinEnv(task="lift", image_size=None))
        (cache,) = env.owned
        env.close()
    with pytest.raises(sqlite3.ProgrammingError):
        len(cache)


def test_an_offline_replay_of_a_scene_never_asked_about_falls_back_to_sparse_and_goes_on(tmp_path, caplog):
    cache = tmp_path / "answers.sqlite"
    kagi_rewards(kagi_config(cache), seed=3, steps=1)
    replay = kagi_rewards(kagi_config(cache, mode="offline"), seed=4, steps=2)
    assert all(parts["fallback"] == 1.0 and r == 0.0 for r, parts in replay)
    assert "sparse reward" in caplog.text


def test_offline_without_a_cache_is_refused_when_the_config_loads():
    with pytest.raises(ValueError, match="answer_cache"):
        FinetuneConfig(task="lift", reward="kagi", answer_cache_mode="offline")


def test_without_a_plan_file_the_model_is_asked_over_http_and_its_plan_checked_on_demonstrations(tmp_path):
    from robot_learning.rewards.fm.cache import ResponseCache

    cache = tmp_path / "answers.sqlite"
    plan = stage_plan_json(FinetuneConfig(task="lift", reward="robohorizon", answer_cache=str(cache)))
    assert plan is not None and json.loads(plan)["stages"][0]["name"] == "approach"
    stored = ResponseCache(cache)
    assert len(stored) == 1  # the planning request, kept with its answer for inspection and offline replay
    stored.close()


def test_a_plan_that_fails_the_demonstration_check_is_not_used_and_the_run_goes_on_sparse(tmp_path, caplog):
    from robot_learning.rewards.fm.fake_server import FakeOpenAIServer

    backwards = good_plan(load_task("lift"))
    backwards["stages"] = backwards["stages"][::-1]  # lift before grasp: cannot complete in order along demos
    with FakeOpenAIServer(lambda request: backwards) as server:
        profile = tmp_path / "bad_planner.yaml"
        profile.write_text(f"provider: other\nbase_url: {server.base_url}\nmodel: bad-planner\napi_key_env: null\n"
                           "timeout_s: 5\nmax_retries: 0\n")
        config = FinetuneConfig(task="lift", reward="robohorizon_pbrs", model_profile=str(profile))
        with finetune_reward(config) as wrapper:
            assert wrapper is None  # the env's own sparse success reward
    assert "rejected" in caplog.text and "sparse reward" in caplog.text


LYING_QUAT_XYZW = np.array([np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)])  # 90 degrees about x: the peg on its side


def test_the_upright_potential_charges_a_peg_tipping_over_and_refunds_it_standing_up():
    env = reward_wrapper("upright_pbrs", None, gamma=0.99)(TwinEnv(task="peg_insert", image_size=None))
    hold = np.zeros(7, dtype=np.float32)  # zero deltas, gripper open, far above the peg
    try:
        obs, _ = env.reset(seed=3)
        _, standing, _, _, info = env.step(hold)
        assert abs(standing) < 0.02 and info["reward_name"] == "upright_pbrs"
        twin, upright = env.unwrapped, obs["privileged"].copy()
        lying = upright.copy()
        lying[2] -= 0.04 - 0.0125 - 0.001  # centre at half the peg's width above the table
        lying[3:7] = LYING_QUAT_XYZW
        twin.task.set_poses(lying)
        _, tipped, _, _, info = env.step(hold)
        assert tipped == pytest.approx(-0.99, abs=0.02)  # gamma * Phi(lying) - Phi(upright) = 0.99 * -1 - 0
        assert info["reward_breakdown"]["progress"] == -1.0
        twin.task.set_poses(upright)
        assert env.step(hold)[1] == pytest.approx(1.0, abs=0.02)  # the tilt is refunded when it stands again
    finally:
        env.close()


def test_the_upright_potential_is_refused_before_any_worker_starts_on_a_task_without_insertion():
    with pytest.raises(ValueError, match="inserted"), finetune_reward(FinetuneConfig(task="lift",
                                                                                   reward="upright_pbrs")):
        pass
