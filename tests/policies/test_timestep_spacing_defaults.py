"""The sampler's defaults (#21): a new policy samples with 2 DDIM steps spaced ``trailing`` (docs/denoising_steps.md);
a checkpoint saved before the spacing was a config field keeps the leading spacing it was measured with; residual
RL runs its frozen base with the spacing its residuals learned on (leading), whatever the base's own config says;
``eval --timestep-spacing`` / ``--ddim-steps`` still override. Untrained tiny networks: only the schedule is checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_learning.policies.diffusion.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    DiffusionPolicy,
    atomic_save,
    build_model,
)
from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig
from robot_learning.runtime.loading import load_policy

torch.set_num_threads(1)

LOW_DIM = {"tcp_position": 3, "gripper_width": 1}
ACTION_DIM = 7
TINY = dict(camera_keys=[], low_dim_keys=list(LOW_DIM), horizon=8, n_action_steps=4, down_dims=[16, 32], n_groups=4,
            diffusion_step_embed_dim=16, kernel_size=3)
LEADING_16 = list(range(90, -1, -6))  # 100 training steps, 16 leading DDIM steps: t = 90, 84, ..., 0


def checkpoint_dict(**policy) -> dict:
    """A plain checkpoint of an untrained tiny state-only network, saved as training saves one."""
    config = PolicyTrainingConfig(policy=DiffusionConfig(**TINY, **policy))
    obs_spec = {k: {"shape": [n], "dtype": "float32"} for k, n in LOW_DIM.items()}
    model = build_model(config.policy, obs_spec, ACTION_DIM)
    stats = {k: {"min": [-1.0] * n, "max": [1.0] * n} for k, n in {**LOW_DIM, "action": ACTION_DIM}.items()}
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": config.model_dump(mode="json"),
            "normalizer": stats, "dataset": {"task": "lift", "cell": "franka_3cam"}, "obs_spec": obs_spec,
            "action_dim": ACTION_DIM, "model": model.state_dict()}


def timesteps(policy) -> list[int]:
    """The DDIM timesteps the policy's sampler runs at its step count (the fast sampler reads the same scheduler)."""
    scheduler = policy.model.inference_scheduler
    scheduler.set_timesteps(policy.num_inference_steps)
    return scheduler.timesteps.tolist()


def chunk(policy) -> np.ndarray:
    history = {k: np.zeros((policy.n_obs_steps, n), np.float32) for k, n in LOW_DIM.items()}
    return policy.predict_chunk(history)


def test_a_new_policy_samples_two_steps_spaced_trailing():
    config = DiffusionConfig()
    assert (config.num_train_timesteps, config.num_inference_steps, config.timestep_spacing) == (100, 2, "trailing")
    policy = DiffusionPolicy.from_checkpoint_dict(checkpoint_dict(), "<new>", device="cpu")
    assert timesteps(policy) == [99, 49]  # from where the noise is; leading would run t=50, 0
    assert chunk(policy).shape == (4, ACTION_DIM)


def test_a_checkpoint_saved_before_the_spacing_field_keeps_leading_and_its_16_steps():
    old = checkpoint_dict(num_inference_steps=16)
    del old["config"]["policy"]["timestep_spacing"]
    policy = DiffusionPolicy.from_checkpoint_dict(old, "<old>", device="cpu")
    assert (policy.config.timestep_spacing, policy.num_inference_steps) == ("leading", 16)
    assert timesteps(policy) == LEADING_16
    # a config that says trailing is taken as it is: the migration fills only a missing field
    saved = checkpoint_dict(num_inference_steps=16, timestep_spacing="trailing")
    assert DiffusionPolicy.from_checkpoint_dict(saved, "<new>", device="cpu").config.timestep_spacing == "trailing"


def test_eval_overrides_steps_and_spacing_of_a_checkpoint(tmp_path):
    from robot_learning.cli.main import build_parser

    path = tmp_path / "policy.pt"
    atomic_save(checkpoint_dict(), path)
    policy = load_policy(path, device="cpu", num_inference_steps=16, timestep_spacing="leading")
    assert (policy.config.timestep_spacing, timesteps(policy)) == ("leading", LEADING_16)
    assert chunk(policy).shape == (4, ACTION_DIM)
    args = build_parser().parse_args(["eval", "--checkpoint", str(path), "--ddim-steps", "16",
                                      "--timestep-spacing", "leading"])
    assert (args.ddim_steps, args.timestep_spacing) == (16, "leading")  # what cmd_eval hands evaluate_policy
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--checkpoint", str(path), "--timestep-spacing", "linspace"])
