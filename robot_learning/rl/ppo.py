"""PPO for the residual policy: rollout storage, GAE, and the clipped update with a target-KL stop.

Written here rather than taken from a library because the policy input includes the frozen base's action,
which changes per step and per env: storing it beside the observation keeps the update exact without
wrapping the base inside an env (how stable-baselines3 would need it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from robot_learning.rl.config import PPOConfig
from robot_learning.rl.residual import ResidualPolicy, RunningNormalizer


@dataclass
class RolloutBuffer:
    """Time-major (T, N, ...) tensors of one iteration's rollouts."""

    obs: torch.Tensor
    base_action_norm: torch.Tensor
    residual: torch.Tensor
    log_prob: torch.Tensor
    value: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor  # episode ended after this step (terminated or truncated)
    bootstrap_value: torch.Tensor  # V(final obs) for truncated steps, 0 elsewhere
    policy_weight: torch.Tensor | None = None  # 0 where the executed action was not the policy's (interventions)
    step: int = 0

    @classmethod
    def allocate(cls, steps: int, n_envs: int, obs_dim: int, action_dim: int) -> RolloutBuffer:
        z = torch.zeros
        return cls(z(steps, n_envs, obs_dim), z(steps, n_envs, action_dim), z(steps, n_envs, action_dim),
                   z(steps, n_envs), z(steps, n_envs), z(steps, n_envs), z(steps, n_envs), z(steps, n_envs))

    def add(self, **tensors: torch.Tensor) -> None:
        for name, value in tensors.items():
            getattr(self, name)[self.step] = value
        self.step += 1

    @property
    def full(self) -> bool:
        return self.step >= self.obs.shape[0]


def compute_gae(reward: torch.Tensor, value: torch.Tensor, done: torch.Tensor, bootstrap_value: torch.Tensor,
                next_value: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns. A done step bootstraps from ``bootstrap_value`` (non-zero for truncations)."""
    steps = reward.shape[0]
    advantages = torch.zeros_like(reward)
    last = torch.zeros_like(next_value)
    for t in reversed(range(steps)):
        following = next_value if t == steps - 1 else value[t + 1]
        target_next = torch.where(done[t] > 0, bootstrap_value[t], following)
        delta = reward[t] + gamma * target_next - value[t]
        last = delta + gamma * lam * (1.0 - done[t]) * last
        advantages[t] = last
    return advantages, advantages + value


@dataclass
class UpdateStats:
    policy_loss: float = 0.0
    value_loss: float = 0.0
    approx_kl: float = 0.0
    clip_fraction: float = 0.0
    epochs_run: int = 0
    explained_variance: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class PPOUpdater:
    """Separate actor and critic optimisers (ResiP); returns are normalised by a running std if asked."""

    def __init__(self, policy: ResidualPolicy, config: PPOConfig):
        self.policy, self.config = policy, config
        actor_params = [p for p in policy.actor.parameters() if p.requires_grad]
        self.actor_optimizer = torch.optim.Adam(actor_params, lr=config.actor_lr, eps=1e-5)
        self.critic_optimizer = torch.optim.Adam(policy.critic.parameters(), lr=config.critic_lr, eps=1e-5)
        self.return_normalizer = RunningNormalizer(1)
        self.iterations = 0

    def value_scale(self) -> torch.Tensor:
        return torch.sqrt(self.return_normalizer.var + 1e-8) if self.config.normalize_values else torch.tensor(1.0)

    def update(self, buffer: RolloutBuffer, next_value: torch.Tensor) -> UpdateStats:
        cfg = self.config
        scale = self.value_scale()
        values = buffer.value * scale  # the critic predicts normalised returns
        advantages, returns = compute_gae(buffer.reward, values, buffer.done, buffer.bootstrap_value * scale,
                                          next_value * scale, cfg.gamma, cfg.gae_lambda)
        if cfg.normalize_values:
            self.return_normalizer.update(returns.reshape(-1, 1))
            scale = self.value_scale()
        weight = buffer.policy_weight if buffer.policy_weight is not None else torch.ones_like(buffer.reward)
        flat = {
            "weight": weight.reshape(-1),
            "obs": buffer.obs.reshape(-1, buffer.obs.shape[-1]),
            "base": buffer.base_action_norm.reshape(-1, buffer.base_action_norm.shape[-1]),
            "residual": buffer.residual.reshape(-1, buffer.residual.shape[-1]),
            "log_prob": buffer.log_prob.reshape(-1),
            "advantage": advantages.reshape(-1),
            "return": (returns / scale).reshape(-1),
        }
        n = flat["obs"].shape[0]
        minibatch = n // cfg.n_minibatches
        train_actor = self.iterations >= cfg.critic_warmup_iterations
        stats = UpdateStats()
        for epoch in range(cfg.update_epochs):
            order = torch.randperm(n)
            kls = []
            for start in range(0, n, minibatch):
                idx = order[start : start + minibatch]
                kl, clipped, policy_loss, value_loss = self._minibatch_step({k: v[idx] for k, v in flat.items()},
                                                                            train_actor)
                kls.append(kl)
                stats.clip_fraction, stats.policy_loss, stats.value_loss = clipped, policy_loss, value_loss
            stats.approx_kl = float(sum(kls) / len(kls))
            stats.epochs_run = epoch + 1
            if cfg.target_kl is not None and train_actor and stats.approx_kl > cfg.target_kl:
                break
        residual_var = torch.var(flat["return"] - self._values(flat["obs"], flat["base"]))
        stats.explained_variance = float(1.0 - residual_var / (torch.var(flat["return"]) + 1e-8))
        self.iterations += 1
        return stats

    def _values(self, obs: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.policy.critic(self.policy.obs_normalizer(obs), base)

    def _minibatch_step(self, batch: dict[str, torch.Tensor], train_actor: bool) -> tuple[float, float, float, float]:
        cfg, policy = self.config, self.policy
        obs_norm = policy.obs_normalizer(batch["obs"])
        dist = policy.actor.distribution(obs_norm, batch["base"])
        log_prob = dist.log_prob(batch["residual"]).sum(-1)
        log_ratio = log_prob - batch["log_prob"]
        ratio = log_ratio.exp()
        advantage, weight = batch["advantage"], batch["weight"]
        if cfg.normalize_advantages and advantage.numel() > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        policy_loss = torch.max(-advantage * ratio, -advantage * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef))
        policy_loss = (policy_loss * weight).sum() / weight.sum().clamp(min=1.0)
        policy_loss = policy_loss - cfg.entropy_coef * dist.entropy().sum(-1).mean()
        value_loss = 0.5 * (policy.critic(obs_norm, batch["base"]) - batch["return"]).pow(2).mean()

        if train_actor:
            self.actor_optimizer.zero_grad()
            policy_loss.backward()
            nn.utils.clip_grad_norm_(policy.actor.parameters(), cfg.max_grad_norm)
            self.actor_optimizer.step()
        self.critic_optimizer.zero_grad()
        (cfg.value_coef * value_loss).backward()
        nn.utils.clip_grad_norm_(policy.critic.parameters(), cfg.max_grad_norm)
        self.critic_optimizer.step()
        with torch.no_grad():
            on_policy = weight > 0
            approx_kl = float(((ratio - 1) - log_ratio)[on_policy].mean()) if on_policy.any() else 0.0
            clipped = float(((ratio - 1).abs() > cfg.clip_coef).float()[on_policy].mean()) if on_policy.any() else 0.0
        return approx_kl, clipped, float(policy_loss.detach()), float(value_loss.detach())

    def state_dict(self) -> dict:
        return {"actor_optimizer": self.actor_optimizer.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(),
                "return_normalizer": self.return_normalizer.state_dict(), "iterations": self.iterations}

    def load_state_dict(self, state: dict) -> None:
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.return_normalizer.load_state_dict(state["return_normalizer"])
        self.iterations = int(state["iterations"])
