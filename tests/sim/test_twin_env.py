"""The gym environment of the twin: reproducible, shaped as documented, and safe under bad actions."""

import gymnasium as gym
import numpy as np
import pytest

from sim.env import TwinEnv
from sim.experts import make_expert
from sim.vector import make_vector_env


@pytest.fixture(scope="module")
def lift_env():
    env = TwinEnv(task="lift", image_size=(64, 48), depth=True)
    yield env
    env.close()


def test_observations_have_every_camera_and_the_proprioception(lift_env):
    obs, info = lift_env.reset(seed=0)
    assert info == {"success": False}
    for cam in ("cam_front", "cam_side", "cam_wrist"):
        assert obs[f"{cam}_rgb"].shape == (48, 64, 3) and obs[f"{cam}_rgb"].dtype == np.uint8
        assert obs[f"{cam}_depth"].shape == (48, 64) and obs[f"{cam}_depth"].dtype == np.float32
    assert lift_env.observation_space.contains(obs)
    rot = np.stack([obs["tcp_rot6d"][:3], obs["tcp_rot6d"][3:]], axis=1)
    np.testing.assert_allclose(rot.T @ rot, np.eye(2), atol=1e-5)


def test_same_seed_same_episode(lift_env):
    actions = np.random.default_rng(1).uniform(lift_env.action_space.low, lift_env.action_space.high, (8, 7))

    def rollout():
        obs, _ = lift_env.reset(seed=7)
        trace = [obs["privileged"].copy()]
        for action in actions:
            obs, *_ = lift_env.step(action)
            trace.append(np.concatenate([obs["tcp_position"], obs["privileged"]]))
        return trace, obs["cam_front_rgb"]

    (a, img_a), (b, img_b) = rollout(), rollout()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(img_a, img_b)
    obs_other, _ = lift_env.reset(seed=8)
    assert not np.allclose(obs_other["privileged"], a[0])


def test_a_delta_action_moves_the_tcp_by_that_delta(lift_env):
    obs, _ = lift_env.reset(seed=0)
    start = obs["tcp_position"].copy()
    for _ in range(5):
        obs, *_ = lift_env.step(np.array([0.0, 0.02, 0.0, 0, 0, 0, 0.0]))
    for _ in range(5):
        obs, *_ = lift_env.step(np.zeros(7))
    np.testing.assert_allclose(obs["tcp_position"] - start, [0.0, 0.10, 0.0], atol=0.004)


def test_nan_action_holds_the_arm_and_is_reported(lift_env):
    obs, _ = lift_env.reset(seed=0)
    start = obs["tcp_position"].copy()
    obs, reward, terminated, truncated, info = lift_env.step(np.array([np.nan, 0, 0, 0, 0, 0, 0]))
    assert "nonfinite_rejected" in info["safety_violations"]
    assert np.linalg.norm(obs["tcp_position"] - start) < 0.002
    assert np.all(np.isfinite(lift_env.commanded_target.position_m))


def test_huge_action_cannot_leave_the_workspace(lift_env, cell):
    obs, _ = lift_env.reset(seed=0)
    for _ in range(15):
        obs, _, _, _, info = lift_env.step(np.array([0, 0, -5.0, 0, 0, 0, 0]))
    assert obs["tcp_position"][2] >= cell.workspace.min_m[2] - 0.003
    assert lift_env.commanded_target.position_m[2] >= cell.workspace.min_m[2] - 1e-9


def test_wrong_action_shape_is_a_clear_error(lift_env):
    lift_env.reset(seed=0)
    with pytest.raises(ValueError, match="7 values"):
        lift_env.step(np.zeros(6))


def test_episode_truncates_at_the_task_horizon():
    env = TwinEnv(task="lift", image_size=None)
    env.reset(seed=0)
    for step in range(env.task_config.horizon_steps):
        _, _, terminated, truncated, _ = env.step(np.zeros(7))
        assert not terminated
        if truncated:
            break
    assert truncated and step == env.task_config.horizon_steps - 1


@pytest.mark.parametrize("task", ["lift", "peg_insert"])
def test_scripted_expert_solves_the_task(task):
    """A quick check; the >= 95% success measurement over 100 episodes is in benchmarks/twin.py."""
    env = TwinEnv(task=task, image_size=None)
    successes = 0
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        expert = make_expert(env.cell, env.task_config, seed=seed)
        for _ in range(env.task_config.horizon_steps):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs))
            if terminated or truncated:
                break
        successes += info["success"]
    assert successes >= 7


def test_vector_env_runs_parallel_twins_and_autoresets_in_the_same_step():
    envs = make_vector_env(n_envs=2, task="lift", image_size=None, asynchronous=False)
    try:
        obs, _ = envs.reset(seed=[0, 1])
        assert obs["privileged"].shape == (2, 7)
        assert not np.allclose(obs["privileged"][0], obs["privileged"][1])
        obs, reward, terminated, truncated, info = envs.step(np.zeros((2, 7), dtype=np.float32))
        assert reward.shape == (2,) and obs["tcp_position"].shape == (2, 3)
        assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    finally:
        envs.close()


def test_each_task_is_a_registered_gymnasium_environment():
    env = gym.make("manip_stack/PegInsert-v0", image_size=None)
    obs, _ = env.reset(seed=3)
    assert env.unwrapped.task_config.name == "peg_insert"
    assert obs["privileged"].shape == (14,)
    env.close()
