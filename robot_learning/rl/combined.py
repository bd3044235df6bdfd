"""The fine-tuned policy as one file: the frozen diffusion base (embedded) plus the residual, served as one.

The base still predicts action chunks (``predict_chunks``), with the DDIM steps it ran with during RL, since the
residual learned corrections for exactly that base; the residual corrects every action as it is executed
(``correct``), from the newest observation, as in training. Both are :class:`~robot_learning.policies.policy.
Policy` methods the runner calls on every policy, so evaluation, the demo loop and the ROS policy node serve a
combined checkpoint like a plain one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from controllers.observations import SIM_ONLY_KEYS
from robot_learning.policies.diffusion.checkpoint import (
    DiffusionPolicy,
    atomic_save,
    load_checkpoint,
    validate_checkpoint,
)
from robot_learning.policies.estimated_inputs import EstimatedInputs
from robot_learning.policies.policy import ObservationMismatchError, Policy, observation_shapes
from robot_learning.rl.config import POSE_REWARDS, FinetuneConfig
from robot_learning.rl.residual import ActionNormalizer, ResidualPolicy
from robot_learning.rl.rewards import OLD_REWARD_NAMES
from robot_learning.rl.rollout import state_vector

COMBINED_FORMAT = "manip_stack.residual_diffusion"
COMBINED_VERSION = 1


def save_combined(path: Path, base_checkpoint: Path, residual: ResidualPolicy, config: FinetuneConfig,
                  action_low: np.ndarray, action_high: np.ndarray) -> Path:
    """One self-contained file: the base checkpoint's contents, the residual's weights and how to run both."""
    atomic_save({"format": COMBINED_FORMAT, "version": COMBINED_VERSION, "base": load_checkpoint(base_checkpoint),
                 "base_source": str(base_checkpoint), "residual": residual.state_dict(),
                 "obs_dim": int(residual.obs_normalizer.mean.numel()),
                 "action_low": np.asarray(action_low).tolist(), "action_high": np.asarray(action_high).tolist(),
                 "config": config.model_dump(mode="json")}, path)
    return path


def _as_current_config(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored fine-tuning config as this code spells it: a reward named before the registry (``kagi_pbrs``)
    as ``reward: kagi, reward_shaping: potential``, and ``sim_only`` (absent before) true when the residual read
    privileged keys. A file a program wrote keeps loading; a config a person writes the old way is refused."""
    from controllers.observations import SIM_ONLY_KEYS

    if "sim_only" not in stored:  # written before sim_only existed: a residual on privileged keys was twin-only
        keys = (stored.get("residual") or {}).get("obs_keys", ["privileged"])
        stored = {**stored, "sim_only": any(k in SIM_ONLY_KEYS for k in keys)}
    reward = stored.get("reward")
    if reward in OLD_REWARD_NAMES or ("reward_poses" not in stored and reward in POSE_REWARDS):
        # written before reward_poses existed: the reward measured the twin's exact poses, a twin-only run
        stored = {**stored, "reward_poses": "privileged", "sim_only": True}
    old = stored.get("reward")
    if old not in OLD_REWARD_NAMES:
        return stored
    return {**stored, "reward": OLD_REWARD_NAMES[old], "reward_shaping": "potential"}


class ResidualDiffusionPolicy(Policy):
    """Base chunks + per-step residual corrections; what it was trained on, its cameras and device are the base's."""

    def __init__(self, base: DiffusionPolicy | EstimatedInputs, residual: ResidualPolicy, config: FinetuneConfig,
                 action_low: np.ndarray, action_high: np.ndarray, source: str = "<memory>"):
        self.base, self.residual, self.finetune_config, self.source = base, residual.eval(), config, source
        self.residual_keys = list(config.residual.obs_keys)
        self.normalizer = ActionNormalizer(action_low, action_high)
        self.dataset = base.dataset
        self.sim_only = base.sim_only or any(k in SIM_ONLY_KEYS for k in self.residual_keys)
        self.delta_action_dims = base.delta_action_dims

    @classmethod
    def from_checkpoint_dict(cls, ckpt: Any, source: str, device: str = "auto", seed: int = 0,
                             num_inference_steps: int | None = None, **base_kwargs: Any) -> ResidualDiffusionPolicy:
        """From a loaded ``base_plus_residual.pt`` (load files with ``runtime.loading.load_policy``). The base runs
        the DDIM steps and spacing it was fine-tuned with unless ``num_inference_steps`` / ``timestep_spacing`` say
        otherwise (a fine-tuning config saved before ``base_timestep_spacing`` existed ran a leading-spaced base)."""
        if not isinstance(ckpt, dict) or ckpt.get("format") != COMBINED_FORMAT:
            raise ValueError(f"{source} is not a {COMBINED_FORMAT} checkpoint")
        if ckpt.get("version") != COMBINED_VERSION:
            raise ValueError(f"{source} has version {ckpt.get('version')}, this code reads {COMBINED_VERSION}")
        config = FinetuneConfig.model_validate(_as_current_config(ckpt["config"]))
        base_kwargs.setdefault("zero_noise", config.base_zero_noise)  # the base as the residual learned on it
        if base_kwargs.get("timestep_spacing") is None:
            base_kwargs["timestep_spacing"] = config.base_timestep_spacing
        base = DiffusionPolicy.from_checkpoint_dict(
            validate_checkpoint(ckpt["base"], f"{source} (embedded base)"), f"{source} (base {ckpt['base_source']})",
            device=device, seed=seed, num_inference_steps=num_inference_steps or config.base_inference_steps,
            **base_kwargs)
        residual = ResidualPolicy(int(ckpt["obs_dim"]), len(ckpt["action_low"]), config.residual)
        residual.load_state_dict(ckpt["residual"])
        if config.base_inputs:  # trained on the twin's exact state, fed the robot's estimate of it
            base = EstimatedInputs(base, config.base_inputs)
        return cls(base, residual, config, np.asarray(ckpt["action_low"]), np.asarray(ckpt["action_high"]),
                   source=source)

    @property
    def n_obs_steps(self) -> int:
        return self.base.n_obs_steps

    @property
    def obs_keys(self) -> list[str]:
        return [*self.base.obs_keys, *(k for k in self.residual_keys if k not in self.base.obs_keys)]

    @property
    def camera_keys(self) -> list[str]:
        return self.base.camera_keys

    @property
    def image_size(self) -> tuple[int, int] | None:
        return self.base.image_size

    @property
    def action_low(self) -> np.ndarray:
        return self.normalizer.low.copy()

    @property
    def action_high(self) -> np.ndarray:
        return self.normalizer.high.copy()

    @property
    def device(self) -> torch.device:
        return self.base.device

    def reset(self) -> None:
        self.base.reset()

    def check_observation(self, obs: Mapping[str, Any]) -> None:
        self.base.check_observation(obs)
        missing = [k for k in self.residual_keys if k not in observation_shapes(obs)]
        if missing:
            raise ObservationMismatchError(f"observation lacks the residual's keys {missing} ({self.source}); "
                                           "a residual fine-tuned on privileged state runs in the twin only")

    def predict_chunks(self, histories: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.base.predict_chunks(histories)

    @torch.no_grad()
    def correct(self, obs: Mapping[str, np.ndarray], base_action: np.ndarray) -> np.ndarray:
        """The executed action: ``unnormalize(clip(normalize(base) + scale * mean residual))`` for the newest
        observation ``obs`` {key: array} (the deterministic residual, as evaluated during fine-tuning)."""
        state = torch.from_numpy(state_vector({k: np.asarray(obs[k])[None] for k in self.residual_keys},
                                              self.residual_keys))
        base_norm = torch.from_numpy(self.normalizer.normalize_clipped(np.asarray(base_action)))[None]
        residual, _, _ = self.residual.act(state, base_norm, deterministic=True)
        return self.residual.executed_action(self.normalizer, base_norm, residual)[0]
