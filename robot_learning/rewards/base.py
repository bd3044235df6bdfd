"""The one interface every reward speaks, the sparse baseline, and the wrapper that puts a reward into an env.

Residual PPO (:mod:`robot_learning.rl`) consumes any of them the same way. ``reset`` runs once per episode and
may be slow (it may query a foundation model); ``__call__`` runs every step and must be cheap (no model calls).
Every reward returns a breakdown of named terms so a person can see *why* a step got its reward.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

Obs = dict[str, np.ndarray]
Breakdown = dict[str, float]


@runtime_checkable
class RewardFunction(Protocol):
    name: str

    def reset(self, obs: Obs, info: dict[str, Any]) -> None:
        """Start of an episode: may query models (keyframe), must not raise for model failures."""

    def __call__(self, obs: Obs, action: np.ndarray, next_obs: Obs, info: dict[str, Any]) -> tuple[float, Breakdown]:
        """Reward of one transition and its named terms; cheap (no model calls)."""


class SparseSuccessReward:
    """``success_reward`` on steps where the task reports success (``info["success"]``), else 0."""

    name = "sparse"

    def __init__(self, success_reward: float = 1.0):
        self.success_reward = success_reward

    def reset(self, obs: Obs, info: dict[str, Any]) -> None:
        pass

    def __call__(self, obs: Obs, action: np.ndarray, next_obs: Obs, info: dict[str, Any]) -> tuple[float, Breakdown]:
        success = bool(info.get("success", False))
        return (self.success_reward if success else 0.0), {"success": float(success)}


class RewardWrapper(gym.Wrapper):
    """Replaces the env's reward by ``reward_fn``'s; the env's own reward and the breakdown go into ``info``.

    ``info["env_reward"]`` keeps the original, ``info["reward_breakdown"]`` the named terms, and
    ``info["reward_name"]`` which reward produced them (useful when several runs share a log).
    ``owned``: resources made for this reward alone (a worker's answer cache), closed with the wrapper.
    """

    def __init__(self, env: gym.Env, reward_fn: RewardFunction, owned: tuple[Any, ...] = ()):
        super().__init__(env)
        self.reward_fn = reward_fn
        self.owned = owned
        self._obs: Obs | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.reward_fn.reset(obs, info)
        self._obs = obs
        return obs, info

    def step(self, action: np.ndarray):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        next_obs, env_reward, terminated, truncated, info = self.env.step(action)
        reward, breakdown = self.reward_fn(self._obs, np.asarray(action), next_obs, info)
        info = {**info, "env_reward": env_reward, "reward_breakdown": breakdown, "reward_name": self.reward_fn.name}
        self._obs = next_obs
        return next_obs, float(reward), terminated, truncated, info

    def close(self) -> None:
        close_reward = getattr(self.reward_fn, "close", None)
        if close_reward is not None:  # renderers, model clients
            close_reward()
        for resource in self.owned:
            resource.close()
        self.owned = ()
        super().close()


class PotentialShapedReward:
    """Sparse success reward plus ``scale * (gamma * Phi(s') - Phi(s))`` with Phi the inner reward's ``progress``.

    Why: a dense reward paid per step (KAGI's ``lambda (k + phi) / M``, the stage sum) also pays for *staying*
    part-way, and a learner can settle there (hover over the pre-grasp point, hold without lifting). Shaping
    with the same progress as a potential (Ng et al. 1999) pays only for moving forward and leaves the optimal
    policy of the sparse task unchanged. Phi(s_0) is taken as 0 (the same for every policy).
    """

    def __init__(self, inner: RewardFunction, scale: float = 5.0, gamma: float = 1.0, success_reward: float = 1.0):
        self.inner, self.scale, self.gamma, self.success_reward = inner, scale, gamma, success_reward
        self.name = f"{inner.name}_pbrs"
        self._phi = 0.0

    def reset(self, obs: Obs, info: dict[str, Any]) -> None:
        self.inner.reset(obs, info)
        self._phi = 0.0

    def close(self) -> None:
        close_inner = getattr(self.inner, "close", None)
        if close_inner is not None:
            close_inner()

    def __call__(self, obs: Obs, action: np.ndarray, next_obs: Obs, info: dict[str, Any]) -> tuple[float, Breakdown]:
        _, parts = self.inner(obs, action, next_obs, info)
        phi = float(parts.get("progress", 0.0))
        shaping = self.scale * (self.gamma * phi - self._phi)
        self._phi = phi
        success = bool(info.get("success", False))
        return (self.success_reward if success else 0.0) + shaping, {**parts, "shaping": shaping}
