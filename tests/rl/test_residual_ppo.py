"""Residual PPO: starts exactly at the base, and learns the known correction on a small task."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from point_reach import BiasedBase, PointReachEnv

from robot_learning.rl.config import PPOConfig, ResidualConfig
from robot_learning.rl.ppo import PPOUpdater, RolloutBuffer, compute_gae
from robot_learning.rl.residual import ResidualPolicy
from robot_learning.rl.rollout import ResidualRolloutCollector

KEYS = ["position", "goal"]


def make_envs(n: int) -> gym.vector.VectorEnv:
    return gym.vector.SyncVectorEnv([PointReachEnv for _ in range(n)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def test_a_fresh_residual_changes_nothing_the_base_does():
    policy = ResidualPolicy(obs_dim=4, action_dim=2, config=ResidualConfig(obs_keys=KEYS))
    obs, base = torch.randn(64, 4), torch.rand(64, 2) * 2 - 1
    residual, _, _ = policy.act(obs, base, deterministic=True)
    torch.testing.assert_close(policy.combined_action_norm(base, residual), base)


def test_a_per_dimension_scale_gives_each_action_dimension_its_own_authority():
    policy = ResidualPolicy(obs_dim=4, action_dim=3, config=ResidualConfig(obs_keys=KEYS, action_scale=[0.1, 0.1, 1.0]))
    base, residual = torch.zeros(1, 3), torch.full((1, 3), -0.5)
    torch.testing.assert_close(policy.combined_action_norm(base, residual), torch.tensor([[-0.05, -0.05, -0.5]]))


def test_a_scale_list_that_does_not_name_every_action_dimension_is_refused():
    with pytest.raises(ValueError, match="lists 2 values; the action has 3"):
        ResidualPolicy(obs_dim=4, action_dim=3, config=ResidualConfig(obs_keys=KEYS, action_scale=[0.1, 1.0]))


def test_exploration_noise_may_be_set_per_action_dimension():
    config = ResidualConfig(obs_keys=KEYS, init_log_std=[-1.0, -1.0, -2.0])
    policy = ResidualPolicy(obs_dim=4, action_dim=3, config=config)
    dist = policy.actor.distribution(torch.zeros(1, 4), torch.zeros(1, 3))
    torch.testing.assert_close(dist.stddev, torch.exp(torch.tensor([[-1.0, -1.0, -2.0]])))
    with pytest.raises(ValueError, match="init_log_std lists 1 values"):
        ResidualPolicy(obs_dim=4, action_dim=3, config=ResidualConfig(obs_keys=KEYS, init_log_std=[-1.0]))


def test_gae_matches_a_hand_computed_example():
    reward = torch.tensor([[0.0], [0.0], [1.0]])
    value = torch.tensor([[0.5], [0.6], [0.7]])
    done = torch.tensor([[0.0], [0.0], [1.0]])
    advantages, returns = compute_gae(reward, value, done, torch.zeros(3, 1), torch.tensor([9.9]), 0.9, 1.0)
    # Monte-Carlo returns with gamma 0.9 (lambda 1): 0.81, 0.9, 1.0; the value after the terminal step is ignored.
    torch.testing.assert_close(returns[:, 0], torch.tensor([0.81, 0.9, 1.0]))
    torch.testing.assert_close(advantages[:, 0], torch.tensor([0.31, 0.3, 0.3]))


def test_truncated_steps_bootstrap_from_the_final_value():
    advantages, returns = compute_gae(torch.tensor([[0.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]]),
                                      torch.tensor([[2.0]]), torch.tensor([0.0]), 0.5, 0.95)
    assert returns.item() == 1.0


def run_residual_ppo(iterations: int, seed: int = 0) -> list[float]:
    torch.manual_seed(seed)
    envs = make_envs(16)
    policy = ResidualPolicy(obs_dim=4, action_dim=2,
                            config=ResidualConfig(obs_keys=KEYS, hidden_sizes=[64, 64], action_scale=0.1))
    ppo_config = PPOConfig(n_envs=16, steps_per_iteration=50, update_epochs=8, n_minibatches=2, gamma=0.97,
                           target_kl=0.1, critic_lr=1e-3)
    updater = PPOUpdater(policy, ppo_config)
    collector = ResidualRolloutCollector(envs, BiasedBase(), policy, KEYS, seed=seed)
    rates = []
    for _ in range(iterations):
        buffer = RolloutBuffer.allocate(50, 16, 4, 2)
        stats, next_value = collector.collect(buffer)
        updater.update(buffer, next_value)
        rates.append(stats.success_rate)
    envs.close()
    return rates


def test_ppo_learns_to_cancel_the_base_bias():
    rates = run_residual_ppo(iterations=20)
    assert np.mean(rates[:2]) < 0.5, f"the biased base should mostly fail at first, got {rates[:2]}"
    assert np.mean(rates[-3:]) > 0.9, f"residual PPO did not learn the correction: {np.round(rates, 2)}"
