"""The frozen base under the residual: one action chunk every ``n_action_steps`` steps, per env.

ResiP runs the diffusion base with few DDIM steps (4) and executes its chunks open loop; the residual
corrects every step. Envs reset independently, so each keeps its own observation history and queue, and
chunks are predicted in one batch for exactly the envs whose queue ran dry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hardware_configs.schema import CellConfig, TaskConfig
from robot_learning.policies.diffusion.processor import ObservationHistory
from robot_learning.policies.policy import Policy
from sim.experts import ExpertNoise, ScriptedExpert, make_expert

if TYPE_CHECKING:
    from robot_learning.rl.config import FinetuneConfig


def load_frozen_base(checkpoint: Path, config: FinetuneConfig, device: str = "auto") -> Policy:
    """The base as every fine-tuning path runs it (twins, in-process online, the ROS policy node, benchmarks): the
    config's DDIM steps, their spacing, seed and initial noise, so a residual is always trained and measured on the
    same base behaviour; and, with ``base_inputs``, fed the robot's estimate where it was trained on the twin's
    state."""
    from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy
    from robot_learning.policies.estimated_inputs import EstimatedInputs

    base = DiffusionPolicy.from_checkpoint(checkpoint, device=device, seed=config.seed,
                                           num_inference_steps=config.base_inference_steps,
                                           zero_noise=config.base_zero_noise,
                                           timestep_spacing=config.base_timestep_spacing)
    return EstimatedInputs(base, config.base_inputs) if config.base_inputs else base


class FrozenBase:
    """A :class:`~robot_learning.policies.policy.Policy` as the frozen base of N parallel envs: each env's
    observation history and chunk queue, chunks predicted in one batch for the envs whose queue ran dry.

    Load a diffusion base with :func:`load_frozen_base` (ResiP's few-step DDIM).
    """

    def __init__(self, policy: Policy, n_envs: int):
        self.policy, self.n_envs = policy, n_envs
        self.action_low, self.action_high = policy.action_low, policy.action_high  # the residual normalises with it
        self._history = [ObservationHistory(policy.n_obs_steps, policy.obs_keys) for _ in range(n_envs)]
        self._queue: list[deque[np.ndarray]] = [deque() for _ in range(n_envs)]

    def reset(self, env_mask: np.ndarray) -> None:
        """Forget history and queued actions of the envs where ``env_mask`` is true (they just reset)."""
        for i in np.flatnonzero(env_mask):
            self._history[i].reset()
            self._queue[i].clear()
        if np.any(env_mask):
            self.policy.reset()

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """(N, A) raw base actions for a batch of observations {key: (N, ...)}."""
        for i, history in enumerate(self._history):
            history.push({k: obs[k][i] for k in self.policy.obs_keys})
        empty = [i for i in range(self.n_envs) if not self._queue[i]]
        if empty:
            stacked = [self._history[i].stacked() for i in empty]
            chunks = self.policy.predict_chunks({k: np.stack([h[k] for h in stacked]) for k in self.policy.obs_keys})
            for row, i in enumerate(empty):
                self._queue[i].extend(chunks[row])
        return np.stack([self._queue[i].popleft() for i in range(self.n_envs)]).astype(np.float32)


# What the scripted experts read: their targets from the sim's privileged object poses, the TCP's pose.
EXPERT_OBS_KEYS = ["tcp_position", "tcp_rot6d", "privileged"]


class ExpertPolicy(Policy):
    """A scripted expert (with noise) as a policy, one action per chunk: a stand-in base for tests and for
    checking the RL loop. It keeps its phase between chunks, so it follows one episode at a time (``reset`` draws
    the next episode's expert)."""

    sim_only = True
    n_obs_steps = 1
    obs_keys = EXPERT_OBS_KEYS

    def __init__(self, cell: CellConfig, task: TaskConfig, action_low: np.ndarray, action_high: np.ndarray,
                 noise: ExpertNoise | None = None, seed: int = 0):
        self.cell, self.task, self.noise = cell, task, noise
        self._low, self._high = np.asarray(action_low), np.asarray(action_high)
        self._rng = np.random.default_rng(seed)
        self._expert = self._new()

    def _new(self) -> ScriptedExpert:
        return make_expert(self.cell, self.task, seed=int(self._rng.integers(1 << 31)), noise=self.noise)

    @property
    def action_low(self) -> np.ndarray:
        return self._low

    @property
    def action_high(self) -> np.ndarray:
        return self._high

    def reset(self) -> None:
        self._expert = self._new()

    def predict_chunks(self, histories: Mapping[str, np.ndarray]) -> np.ndarray:
        batch = len(next(iter(histories.values())))
        if batch != 1:
            raise ValueError(f"a scripted expert follows one episode at a time, asked for {batch}: one per env")
        return self._expert.act({k: v[0, -1] for k, v in histories.items()})[None, None]
