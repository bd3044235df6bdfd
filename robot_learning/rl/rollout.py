"""Collect on-policy rollouts of base + residual in a vector env (same-step autoreset).

The env receives ``unnormalize(clip(base_norm + scale * r))``; the buffer keeps the residual sample r, its
log-probability, the value, and the base action the residual was conditioned on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from robot_learning.rl.base_policy import FrozenBase
from robot_learning.rl.ppo import RolloutBuffer
from robot_learning.rl.residual import ActionNormalizer, ResidualPolicy
from sim.vector import ended_episode_outcomes


def state_vector(obs: Mapping[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
    """(N, D) float32 concatenation of the low-dimensional observation keys the residual sees."""
    return np.concatenate([np.asarray(obs[k], dtype=np.float32).reshape(len(obs[k]), -1) for k in keys], axis=1)


def episode_success(info: Mapping, n_envs: int) -> np.ndarray:
    """Success flags of episodes that ended this step: with same-step autoreset the top-level info already
    belongs to the new episode, so they come from ``final_info``."""
    final = info.get("final_info", {})
    return np.asarray(final.get("success", np.zeros(n_envs, dtype=bool)), dtype=bool)


@dataclass
class EpisodeStats:
    successes: list[bool] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    env_indices: list[int] = field(default_factory=list)  # which env each episode ran in

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else float("nan")


class ResidualRolloutCollector:
    def __init__(self, envs: gym.vector.VectorEnv, base: FrozenBase, policy: ResidualPolicy, obs_keys: list[str],
                 seed: int = 0):
        self.envs, self.base, self.policy, self.obs_keys = envs, base, policy, obs_keys
        self.normalizer = ActionNormalizer(base.action_low, base.action_high)
        self.n_envs = envs.num_envs
        obs, _ = envs.reset(seed=[seed + i for i in range(self.n_envs)])
        self.base.reset(np.ones(self.n_envs, dtype=bool))
        self._obs = obs
        self._returns = np.zeros(self.n_envs)
        self._lengths = np.zeros(self.n_envs, dtype=int)
        self._next_inputs: tuple[torch.Tensor, torch.Tensor] | None = None  # drawn for V(s_T), used next step

    def _policy_inputs(self, obs: Mapping[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        base_raw = self.base.act(obs)
        base_norm = self.normalizer.normalize_clipped(base_raw)
        return torch.from_numpy(state_vector(obs, self.obs_keys)), torch.from_numpy(base_norm)

    @torch.no_grad()
    def collect(self, buffer: RolloutBuffer, deterministic: bool = False, update_obs_stats: bool = True
                ) -> tuple[EpisodeStats, torch.Tensor]:
        """Fill ``buffer``; returns finished-episode stats and V(s_T) for bootstrapping the last step."""
        stats = EpisodeStats()
        while not buffer.full:
            obs_t, base_t = self._next_inputs or self._policy_inputs(self._obs)
            self._next_inputs = None
            if update_obs_stats:
                self.policy.obs_normalizer.update(obs_t)
            residual, log_prob, value = self.policy.act(obs_t, base_t, deterministic)
            action = self.policy.executed_action(self.normalizer, base_t, residual)
            next_obs, reward, terminated, truncated, info = self.envs.step(action)
            done = np.logical_or(terminated, truncated)
            bootstrap = torch.zeros(self.n_envs)
            only_truncated = np.logical_and(truncated, ~np.asarray(terminated))
            if only_truncated.any():  # time limit, not failure: bootstrap from the final observation
                final = info["final_obs"]
                final_obs = {k: np.stack([final[i][k] if only_truncated[i] else next_obs[k][i]
                                          for i in range(self.n_envs)]) for k in self.obs_keys}
                final_t = torch.from_numpy(state_vector(final_obs, self.obs_keys))
                bootstrap = torch.where(torch.from_numpy(only_truncated),
                                        self.policy.critic(self.policy.obs_normalizer(final_t), base_t), bootstrap)
            buffer.add(obs=obs_t, base_action_norm=base_t, residual=residual, log_prob=log_prob, value=value,
                       reward=torch.as_tensor(reward, dtype=torch.float32),
                       done=torch.as_tensor(done, dtype=torch.float32), bootstrap_value=bootstrap)
            self._returns += reward
            self._lengths += 1
            final_success = episode_success(info, self.n_envs)
            outcomes = ended_episode_outcomes(info, self.n_envs) if done.any() else []
            for i in np.flatnonzero(done):
                stats.successes.append(bool(final_success[i]))
                stats.outcomes.append(outcomes[i])
                stats.env_indices.append(int(i))
                stats.returns.append(float(self._returns[i]))
                stats.lengths.append(int(self._lengths[i]))
            self._returns[done] = 0.0
            self._lengths[done] = 0
            self.base.reset(done)
            self._obs = next_obs
        self._next_inputs = self._policy_inputs(self._obs)  # the base action drawn here is the next step's
        obs_t, base_t = self._next_inputs
        return stats, self.policy.critic(self.policy.obs_normalizer(obs_t), base_t)
