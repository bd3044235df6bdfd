"""The reward a fine-tuning run optimises, chosen by name from a registry with its shaping as its own field: the
stage plan's per-step reward pays for lingering short of success, its potential-shaped form does not (success
ends the episode, so lingering must not pay); KAGI asks its model once per episode over HTTP from inside the
worker, and a run replays offline from its answer cache; old and unknown names are refused, saying what to write."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hardware_configs import load_task
from robot_learning.rewards.oracles import good_plan
from robot_learning.rl.config import FinetuneConfig, PPOConfig
from robot_learning.rl.rewards import REWARDS, Need, finetune_reward, stage_plan_json
from sim.env import TwinEnv
from sim.estimation_config import StateEstimationConfig

LIFT_PLAN = json.dumps(good_plan(load_task("lift")))


@pytest.fixture
def lift_plan(tmp_path) -> str:
    path = tmp_path / "plan.json"
    path.write_text(LIFT_PLAN)
    return str(path)


# The rewards read the scene as the robot estimates it: here the estimator's error model with a fixed offset per
# episode and no per-step noise, so holding still gives the same reward every step.
ESTIMATE = StateEstimationConfig(source="error_model", position_noise_m=0.0, rotation_noise_rad=0.0)


def stage_config(plan_path: str, shaping: str = "none", **fields) -> FinetuneConfig:
    return FinetuneConfig(task="lift", reward="robohorizon", reward_shaping=shaping, plan_path=plan_path,
                          ppo=PPOConfig(gamma=0.99), state_estimation=ESTIMATE, **fields)


def rewards_while_holding_still(config: FinetuneConfig, steps: int = 8) -> list[float]:
    with finetune_reward(config) as wrap:
        env = wrap(TwinEnv(task="lift", image_size=None, state_estimation=config.state_estimation))
    try:
        env.reset(seed=4)
        hold = np.zeros(env.action_space.shape, dtype=np.float32)  # zero deltas, gripper open: no progress
        return [env.step(hold)[1] for _ in range(steps)]
    finally:
        env.close()


def test_the_per_step_stage_reward_pays_for_holding_still_and_the_shaped_one_does_not(lift_plan):
    per_step = rewards_while_holding_still(stage_config(lift_plan, "none"))
    shaped = rewards_while_holding_still(stage_config(lift_plan, "potential"))
    assert min(per_step[2:]) > 0.0 and np.ptp(per_step[2:]) < 1e-6  # part-way progress paid every step
    assert per_step[-1] * load_task("lift").horizon_steps > 1.0  # idling out the episode beats the success reward
    assert max(shaped[2:]) <= 1e-3  # (gamma - 1) * scale * Phi: standing still costs a little
    assert shaped[0] > 0  # the first step pays the progress the scene starts with (Phi(s_0) := 0)


def test_an_accepted_plan_file_is_used_without_asking_a_model(lift_plan):
    with finetune_reward(stage_config(lift_plan, "potential", model_profile="no_such_model")) as wrap:
        env = wrap(TwinEnv(task="lift", image_size=None, state_estimation=ESTIMATE))
    try:
        env.reset(seed=0)
        info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))[4]
        assert info["reward_name"] == "robohorizon_pbrs" and "shaping" in info["reward_breakdown"]
    finally:
        env.close()


@pytest.mark.parametrize(("old", "new"), [("kagi_pbrs", "kagi"), ("robohorizon_pbrs", "robohorizon"),
                                          ("upright_pbrs", "upright")])
def test_an_old_reward_name_is_refused_with_its_new_spelling(old, new):
    with pytest.raises(ValueError, match=f"reward: {new} and reward_shaping: potential"):
        FinetuneConfig(task="peg_insert", reward=old)


def test_an_unknown_reward_is_refused_listing_the_registered_ones():
    with pytest.raises(ValueError, match="no reward named 'dense'; registered: sparse, upright, robohorizon, kagi"):
        FinetuneConfig(reward="dense")


@pytest.mark.parametrize(("reward", "shaping", "allowed"), [("sparse", "potential", "none"),
                                                            ("upright", "none", "potential")])
def test_a_shaping_the_reward_does_not_take_is_refused_naming_those_it_does(reward, shaping, allowed):
    with pytest.raises(ValueError, match=f"reward {reward} takes reward_shaping {allowed}, not {shaping}"):
        FinetuneConfig(task="peg_insert", reward=reward, reward_shaping=shaping)


def test_every_registered_reward_takes_a_shaping_and_declares_its_needs():
    assert set(REWARDS) == {"sparse", "upright", "robohorizon", "kagi"}
    assert all(kind.shapings and kind.pays for kind in REWARDS.values())
    assert REWARDS["kagi"].needs == {Need.model_endpoint} and REWARDS["robohorizon"].needs == {Need.stage_plan}
    assert REWARDS["upright"].needs == {Need.insertion_task} and not REWARDS["sparse"].needs
    with finetune_reward(FinetuneConfig(task="lift")) as wrap:
        assert wrap is None  # sparse: the env's own success reward


def kagi_config(cache, mode="read_write") -> FinetuneConfig:
    return FinetuneConfig(task="lift", reward="kagi", answer_cache=str(cache), answer_cache_mode=mode,
                          state_estimation=ESTIMATE)


def kagi_rewards(config: FinetuneConfig, seed: int, steps: int = 6) -> list[tuple[float, dict]]:
    with finetune_reward(config) as wrap:
        env = wrap(TwinEnv(task="lift", image_size=None, state_estimation=config.state_estimation))
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
        FinetuneConfig(task="lift", reward="kagi", answer_cache_mode="offline", state_estimation=ESTIMATE)


def test_without_a_plan_file_the_model_is_asked_over_http_and_its_plan_checked_on_demonstrations(tmp_path):
    from robot_learning.rewards.fm.cache import ResponseCache

    cache = tmp_path / "answers.sqlite"
    plan = stage_plan_json(FinetuneConfig(task="lift", reward="robohorizon", answer_cache=str(cache),
                                          state_estimation=ESTIMATE))
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
        config = FinetuneConfig(task="lift", reward="robohorizon", reward_shaping="potential",
                                state_estimation=ESTIMATE, model_profile=str(profile))
        with finetune_reward(config) as wrapper:
            assert wrapper is None  # the env's own sparse success reward
    assert "rejected" in caplog.text and "sparse reward" in caplog.text


LYING_QUAT_XYZW = np.array([np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)])  # 90 degrees about x: the peg on its side


def test_the_upright_potential_charges_a_peg_tipping_over_and_refunds_it_standing_up():
    config = FinetuneConfig(task="peg_insert", reward="upright", reward_shaping="potential", ppo=PPOConfig(gamma=0.99))
    with finetune_reward(config) as wrap:
        env = wrap(TwinEnv(task="peg_insert", image_size=None))
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
    config = FinetuneConfig(task="lift", reward="upright", reward_shaping="potential")
    with pytest.raises(ValueError, match="inserted"), finetune_reward(config):
        pass


def test_an_online_session_refuses_a_reward_other_than_the_success_label_before_loading_anything(tmp_path, capsys):
    from robot_learning.cli.main import main

    config = tmp_path / "online_kagi.yaml"
    config.write_text("task: lift\nreward: kagi\nstate_estimation: {source: error_model}\n")
    code = main(["finetune", "--online", "--checkpoint", str(tmp_path / "absent.pt"), "--config", str(config),
                 "--out", str(tmp_path / "out")])
    assert code == 2 and "online session learns from the task's success label" in capsys.readouterr().err
