"""Residual RL runs its frozen base with ``base_timestep_spacing`` (leading unless said otherwise), not the base
checkpoint's own spacing: every residual so far learned its corrections on a leading-spaced base, so a base saved
with the trailing default (#21) must still run that way under RL, in training and when the combined checkpoint is
served. Untrained tiny networks: only the schedule the base runs is checked."""

from __future__ import annotations

import numpy as np
import torch

from robot_learning.policies.diffusion.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, atomic_save, build_model
from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig
from robot_learning.rl.base_policy import load_frozen_base
from robot_learning.rl.combined import save_combined
from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.residual import ResidualPolicy
from robot_learning.runtime.loading import load_policy
from robot_learning.runtime.safe_load import load_plain, save_plain

torch.set_num_threads(1)

LOW_DIM = {"tcp_position": 3, "gripper_width": 1}
ACTION_DIM, RESIDUAL_OBS_DIM = 7, 10
LEADING_4, TRAILING_4 = [75, 50, 25, 0], [99, 74, 49, 24]  # 100 training steps, 4 DDIM steps (base_inference_steps)


def trailing_base(path):
    """A base checkpoint saved with the trailing spacing the new DiffusionConfig default gives it."""
    config = PolicyTrainingConfig(policy=DiffusionConfig(
        camera_keys=[], low_dim_keys=list(LOW_DIM), horizon=8, n_action_steps=4, down_dims=[16, 32], n_groups=4,
        diffusion_step_embed_dim=16, kernel_size=3, timestep_spacing="trailing"))
    obs_spec = {k: {"shape": [n], "dtype": "float32"} for k, n in LOW_DIM.items()}
    stats = {k: {"min": [-1.0] * n, "max": [1.0] * n} for k, n in {**LOW_DIM, "action": ACTION_DIM}.items()}
    atomic_save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": config.model_dump(mode="json"),
                 "normalizer": stats, "dataset": {"task": "lift", "cell": "franka_3cam"}, "obs_spec": obs_spec,
                 "action_dim": ACTION_DIM, "model": build_model(config.policy, obs_spec, ACTION_DIM).state_dict()},
                path)
    return path


def timesteps(policy) -> list[int]:
    scheduler = policy.model.inference_scheduler
    scheduler.set_timesteps(policy.num_inference_steps)
    return scheduler.timesteps.tolist()


def test_the_frozen_base_runs_leading_spacing_even_when_its_checkpoint_says_trailing(tmp_path):
    base = trailing_base(tmp_path / "base.pt")
    assert load_policy(base, device="cpu").config.timestep_spacing == "trailing"  # served alone: its own default
    frozen = load_frozen_base(base, FinetuneConfig(task="lift"), device="cpu")
    assert (frozen.config.timestep_spacing, frozen.num_inference_steps, timesteps(frozen)) == ("leading", 4, LEADING_4)
    chosen = load_frozen_base(base, FinetuneConfig(task="lift", base_timestep_spacing="trailing"), device="cpu")
    assert timesteps(chosen) == TRAILING_4


def test_the_combined_checkpoint_serves_its_base_with_the_spacing_it_was_fine_tuned_with(tmp_path):
    base = trailing_base(tmp_path / "base.pt")
    config = FinetuneConfig(task="lift")
    residual = ResidualPolicy(RESIDUAL_OBS_DIM, ACTION_DIM, config.residual)
    low, high = -np.ones(ACTION_DIM), np.ones(ACTION_DIM)
    path = save_combined(tmp_path / "base_plus_residual.pt", base, residual, config, low, high)
    served = load_policy(path, device="cpu")
    assert (served.base.config.timestep_spacing, timesteps(served.base)) == ("leading", LEADING_4)
    assert timesteps(load_policy(path, device="cpu", timestep_spacing="trailing").base) == TRAILING_4  # eval override

    ckpt = load_plain(path, "combined")  # written before base_timestep_spacing existed: its base ran leading
    del ckpt["config"]["base_timestep_spacing"]
    save_plain(ckpt, tmp_path / "old.pt")
    assert load_policy(tmp_path / "old.pt", device="cpu").base.config.timestep_spacing == "leading"
