"""The twins of residual PPO as Ray actors (a local Ray cluster of 2 CPUs): the rollout the learner collects through
them is, step for step, the one it collects from in-process twins with the same seeds, episode ends included."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit

from robot_learning.rl.base_policy import FrozenBase, load_frozen_base
from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.ppo import RolloutBuffer
from robot_learning.rl.residual import ResidualPolicy
from robot_learning.rl.rollout import ResidualRolloutCollector
from robot_learning.scale.twins import TwinBackend, make_twins

ray = pytest.importorskip("ray", reason="the scale extra (ray) is not installed")

KEYS = ["tcp_position", "tcp_rot6d", "gripper_width"]
N_ENVS, STEPS = 3, 14


@pytest.fixture(scope="module")
def local_ray():
    from robot_learning.scale.ray_twins import connect

    connect(num_cpus=2)
    yield
    ray.shutdown()


def _rollout(state_base, backend: TwinBackend | None):
    """STEPS steps of base + stochastic residual in N_ENVS lift twins whose episodes end after 5 steps (TimeLimit),
    so the rollout crosses same-step autoresets; everything the buffer and the episode stats hold."""
    config = FinetuneConfig(task="lift", seed=3, base_inference_steps=2)
    envs = make_twins(N_ENVS, backend, task="lift", image_size=None, wrapper=partial(TimeLimit, max_episode_steps=5))
    try:
        base = FrozenBase(load_frozen_base(state_base, config, device="cpu"), N_ENVS)
        torch.manual_seed(0)
        policy = ResidualPolicy(int(sum(np.prod(envs.single_observation_space[k].shape) for k in KEYS)),
                                int(base.action_low.size), config.residual)
        collector = ResidualRolloutCollector(envs, base, policy, KEYS, seed=11)
        buffer = RolloutBuffer.allocate(STEPS, N_ENVS, policy.obs_normalizer.mean.numel(), int(base.action_low.size))
        stats, next_value = collector.collect(buffer)
    finally:
        envs.close()
    tensors = {k: v.clone() for k, v in vars(buffer).items() if isinstance(v, torch.Tensor)}
    return tensors, stats, next_value


def test_ray_twins_give_the_in_process_rollout_for_the_same_seeds(state_base, local_ray):
    reference = _rollout(state_base, TwinBackend(kind="process"))
    on_ray = _rollout(state_base, TwinBackend(kind="ray", ray_workers=2))  # blocks of 2 and 1 twins
    (ref_buffer, ref_stats, ref_value), (ray_buffer, ray_stats, ray_value) = reference, on_ray
    assert ref_buffer.keys() == ray_buffer.keys() and {"obs", "reward", "done", "residual"} <= ref_buffer.keys()
    for key, tensor in ref_buffer.items():
        assert torch.equal(tensor, ray_buffer[key]), key
    assert torch.equal(ref_value, ray_value)
    assert ref_buffer["done"].sum() == 2 * N_ENVS  # episodes ended at steps 5 and 10 in every twin
    assert ray_stats.env_indices == ref_stats.env_indices and ray_stats.lengths == ref_stats.lengths == [5] * 6
    assert ray_stats.returns == ref_stats.returns and ray_stats.outcomes == ref_stats.outcomes


def test_more_ray_workers_than_twins_is_refused(local_ray):
    with pytest.raises(ValueError, match="at most one worker per twin"):
        make_twins(2, TwinBackend(kind="ray", ray_workers=3), image_size=None)


def test_ray_flags_without_the_ray_backend_or_with_online_are_refused_before_anything_starts(tmp_path, capsys):
    from robot_learning.cli.main import main

    missing = str(tmp_path / "no_such_policy.pt")  # never read: the flags are refused first
    assert main(["finetune", "--checkpoint", missing, "--ray-workers", "2", "--out", str(tmp_path / "a")]) == 2
    assert "need --backend ray" in capsys.readouterr().err
    assert main(["finetune", "--online", "--backend", "ray", "--checkpoint", missing, "--out", str(tmp_path)]) == 2
    assert "no --backend ray" in capsys.readouterr().err
