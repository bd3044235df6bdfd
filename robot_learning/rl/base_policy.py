"""The frozen base under the residual: one action chunk every ``n_action_steps`` steps, per env.

ResiP runs the diffusion base with few DDIM steps (4) and executes its chunks open loop; the residual
corrects every step. Envs reset independently, so each keeps its own observation history and queue, and
chunks are predicted in one batch for exactly the envs whose queue ran dry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from hardware_configs.schema import CellConfig, TaskConfig
from sim.experts import ExpertNoise, ScriptedExpert, make_expert

if TYPE_CHECKING:
    from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy
    from robot_learning.rl.config import FinetuneConfig


class ChunkedBase(Protocol):
    action_low: np.ndarray  # raw action range the base was trained on (for normalisation)
    action_high: np.ndarray

    def reset(self, env_mask: np.ndarray) -> None:
        """Forget history and queued actions of the envs where ``env_mask`` is true (they just reset)."""
        ...

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """(N, A) raw base actions for a batch of observations {key: (N, ...)}."""
        ...


def load_frozen_base(checkpoint: Path, config: FinetuneConfig, device: str = "auto") -> DiffusionPolicy:
    """The base as every fine-tuning path runs it (twins, online, benchmark): the config's DDIM steps, seed and
    initial noise, so a residual is always trained and measured on the same base behaviour."""
    from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy

    return DiffusionPolicy.from_checkpoint(checkpoint, device=device, seed=config.seed,
                                           num_inference_steps=config.base_inference_steps,
                                           zero_noise=config.base_zero_noise)


class DiffusionChunkedBase:
    """A trained :class:`DiffusionPolicy` as the frozen base of N parallel envs.

    Load it with ``DiffusionPolicy.from_checkpoint(..., num_inference_steps=4)`` for ResiP's few-step base.
    """

    def __init__(self, policy, n_envs: int):
        self.policy = policy
        self.n_envs = n_envs
        stats = policy.processor.normalizer.stats[policy.config.action_key]
        self.action_low, self.action_high = stats["min"].copy(), stats["max"].copy()
        self._history: list[deque] = [deque(maxlen=policy.n_obs_steps) for _ in range(n_envs)]
        self._queue: list[deque] = [deque() for _ in range(n_envs)]

    def reset(self, env_mask: np.ndarray) -> None:
        for i in np.flatnonzero(env_mask):
            self._history[i].clear()
            self._queue[i].clear()

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        keys = self.policy.obs_keys
        for i in range(self.n_envs):
            frame = {k: np.asarray(obs[k][i]) for k in keys}
            if not self._history[i]:  # pad the first step of an episode by repeating it
                self._history[i].extend([frame] * self.policy.n_obs_steps)
            else:
                self._history[i].append(frame)
        empty = [i for i in range(self.n_envs) if not self._queue[i]]
        if empty:
            batch = {k: np.stack([np.stack([f[k] for f in self._history[i]]) for i in empty]) for k in keys}
            chunks = self.policy.predict_chunks(batch)
            for row, i in enumerate(empty):
                self._queue[i].extend(chunks[row])
        return np.stack([self._queue[i].popleft() for i in range(self.n_envs)]).astype(np.float32)


class ExpertChunkedBase:
    """Scripted experts with heavy noise, as a stand-in base for tests and for checking the RL loop."""

    def __init__(self, cell: CellConfig, task: TaskConfig, n_envs: int, action_low: np.ndarray,
                 action_high: np.ndarray, noise: ExpertNoise | None = None, seed: int = 0):
        self.cell, self.task, self.noise = cell, task, noise
        self.action_low, self.action_high = np.asarray(action_low), np.asarray(action_high)
        self._rng = np.random.default_rng(seed)
        self._experts: list[ScriptedExpert] = [self._new() for _ in range(n_envs)]

    def _new(self) -> ScriptedExpert:
        return make_expert(self.cell, self.task, seed=int(self._rng.integers(1 << 31)), noise=self.noise)

    def reset(self, env_mask: np.ndarray) -> None:
        for i in np.flatnonzero(env_mask):
            self._experts[i] = self._new()

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.stack([e.act({k: v[i] for k, v in obs.items()}) for i, e in enumerate(self._experts)])
