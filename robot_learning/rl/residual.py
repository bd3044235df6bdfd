"""The residual actor and the critic, as ResiP builds them.

The actor sees the normalised observation state and the normalised base action and outputs a Gaussian over
a correction in normalised action space; its mean is scaled (0.1) and its last layer zero-initialised, so
fine-tuning starts exactly at the base policy. The critic is a separate network with its own optimiser.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from robot_learning.rl.config import ResidualConfig


def mlp(in_dim: int, hidden: list[int], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.Tanh()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class ActionNormalizer:
    """Min-max map between raw actions and [-1, 1] (the base's training normalisation)."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        self.span = np.maximum(self.high - self.low, 1e-6)

    def normalize(self, action: np.ndarray) -> np.ndarray:
        return (2.0 * (action - self.low) / self.span - 1.0).astype(np.float32)

    def normalize_clipped(self, action: np.ndarray) -> np.ndarray:
        """``normalize`` clipped to [-1, 1]: how the residual sees a base action (outside the demos' range too)."""
        return np.clip(self.normalize(action), -1.0, 1.0)

    def unnormalize(self, action_norm: np.ndarray) -> np.ndarray:
        return ((action_norm + 1.0) / 2.0 * self.span + self.low).astype(np.float32)

    def state_dict(self) -> dict[str, list[float]]:
        return {"low": self.low.tolist(), "high": self.high.tolist()}


class RunningNormalizer(nn.Module):
    """Running mean/std of observations (or returns), saved with the checkpoint; frozen at evaluation."""

    def __init__(self, dim: int, epsilon: float = 1e-4, clip: float = 10.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(epsilon))
        self.clip = clip

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        batch = batch.reshape(-1, self.mean.shape[0])
        mean, var, n = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta, total = mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + var * n + delta**2 * self.count * n / total) / total
        self.count = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp((x - self.mean) / torch.sqrt(self.var + 1e-8), -self.clip, self.clip)


def per_dimension(value: float | list[float], action_dim: int, name: str) -> torch.Tensor:
    """A config value given once or per action dimension, as (action_dim,); a list must name every dimension."""
    if isinstance(value, list):
        if len(value) != action_dim:
            raise ValueError(f"residual.{name} lists {len(value)} values; the action has {action_dim} dimensions")
        return torch.tensor(value, dtype=torch.float32)
    return torch.full((action_dim,), float(value))


class ResidualActor(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, config: ResidualConfig):
        super().__init__()
        self.net = mlp(obs_dim + action_dim, config.hidden_sizes, action_dim)
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        log_std = per_dimension(config.init_log_std, action_dim, "init_log_std")
        self.log_std = nn.Parameter(log_std, requires_grad=config.learn_log_std)

    def distribution(self, obs_norm: torch.Tensor, base_action_norm: torch.Tensor) -> Normal:
        """Gaussian over the unscaled residual r; the applied correction is ``action_scale * r``."""
        mean = self.net(torch.cat([obs_norm, base_action_norm], dim=-1))
        return Normal(mean, self.log_std.exp().expand_as(mean))


class Critic(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden: list[int]):
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden, 1)

    def forward(self, obs_norm: torch.Tensor, base_action_norm: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs_norm, base_action_norm], dim=-1)).squeeze(-1)


class ResidualPolicy(nn.Module):
    """Actor, critic and the observation normaliser: everything that is trained (the base is not)."""

    def __init__(self, obs_dim: int, action_dim: int, config: ResidualConfig):
        super().__init__()
        self.config = config
        self.obs_normalizer = RunningNormalizer(obs_dim)
        self.actor = ResidualActor(obs_dim, action_dim, config)
        self.critic = Critic(obs_dim, action_dim, config.hidden_sizes)
        # from the config, so not saved with the weights; a buffer so it moves with the module's device
        self.register_buffer("action_scale", per_dimension(config.action_scale, action_dim, "action_scale"),
                             persistent=False)

    def act(self, obs: torch.Tensor, base_action_norm: torch.Tensor, deterministic: bool = False):
        """(residual r, log-prob, value) for a batch; the env gets base + action_scale * r."""
        obs_norm = self.obs_normalizer(obs)
        dist = self.actor.distribution(obs_norm, base_action_norm)
        residual = dist.mean if deterministic else dist.sample()
        return residual, dist.log_prob(residual).sum(-1), self.critic(obs_norm, base_action_norm)

    def combined_action_norm(self, base_action_norm: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return torch.clamp(base_action_norm + self.action_scale * residual, -1.0, 1.0)

    def executed_action(self, normalizer: ActionNormalizer, base_action_norm: torch.Tensor,
                        residual: torch.Tensor) -> np.ndarray:
        """Raw action(s) the robot executes: ``unnormalize(clip(base + action_scale * residual))``."""
        return normalizer.unnormalize(self.combined_action_norm(base_action_norm, residual).numpy())
