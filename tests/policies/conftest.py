"""A tiny expert dataset (3 lift episodes at 32x32, collected once per session) and tiny policy configs."""

import pytest
import torch

from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig, TrainConfig
from robot_learning.sessions.collect import collect_expert_episodes

# One thread: on a small shared machine a second OpenMP thread competing for a busy core makes small
# torch ops an order of magnitude slower, not faster.
torch.set_num_threads(1)

TINY_POLICY = dict(
    low_dim_keys=["tcp_position", "tcp_rot6d", "gripper_width"],
    horizon=8, n_action_steps=4, down_dims=[16, 32], n_groups=4, diffusion_step_embed_dim=16, kernel_size=3,
    small_conv_channels=[8, 8, 8], spatial_softmax_keypoints=8, image_feature_dim=16, num_inference_steps=4,
)


def tiny_config(**train) -> PolicyTrainingConfig:
    train = {"batch_size": 16, "num_epochs": 2, "lr_warmup_steps": 2, "learning_rate": 1e-3, "num_threads": 1,
             **train}
    return PolicyTrainingConfig(policy=DiffusionConfig(**TINY_POLICY), train=TrainConfig(**train))


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "lift_tiny.zarr"
    collect_expert_episodes(path, task="lift", n_episodes=3, image_size=(32, 32), seed=0, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory):
    """A tiny policy trained for 2 epochs: for checkpoint and evaluation tests (not for success)."""
    from robot_learning.sessions.train import train_policy

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train_policy(tiny_store, tiny_config(), out, device="cpu", progress=False)


@pytest.fixture(scope="session")
def make_config():
    """``make_config(**train_overrides)`` -> a tiny PolicyTrainingConfig."""
    return tiny_config
