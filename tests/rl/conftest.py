"""Fixtures shared by the residual-RL tests."""

from __future__ import annotations

import pytest

from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig, TrainConfig
from robot_learning.sessions.collect import collect_expert_episodes


@pytest.fixture(scope="session")
def state_base(tmp_path_factory):
    """A tiny state-only lift base trained for seconds (sessions are checked, not success rates)."""
    from robot_learning.sessions.train import train_policy

    root = tmp_path_factory.mktemp("finetune")
    store = root / "lift_state.zarr"
    collect_expert_episodes(store, task="lift", n_episodes=3, image_size=None, seed=0, progress=False)
    config = PolicyTrainingConfig(
        policy=DiffusionConfig(sim_only=True, camera_keys=[], horizon=8, n_action_steps=4, down_dims=[16, 32],
                               n_groups=4, diffusion_step_embed_dim=16, kernel_size=3, num_inference_steps=4,
                               low_dim_keys=["tcp_position", "tcp_rot6d", "gripper_width", "privileged"]),
        train=TrainConfig(batch_size=16, num_epochs=1, lr_warmup_steps=2, num_threads=1))
    return train_policy(store, config, root / "base", device="cpu", progress=False).policy_path
