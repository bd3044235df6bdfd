"""A residual can start from one trained before (twin -> robot, or a run continued with another batch): weights
and observation statistics carry over, exploration noise comes from the new config, a misfit is refused."""

import pytest
import torch

from robot_learning.rl.config import ResidualConfig
from robot_learning.rl.residual import ResidualPolicy
from robot_learning.rl.warm_start import IncompatibleResidualError, load_trained_residual

KEYS = ["position", "goal"]


def trained_residual(tmp_path, config: ResidualConfig, **extra) -> tuple[ResidualPolicy, object]:
    torch.manual_seed(0)
    policy = ResidualPolicy(obs_dim=4, action_dim=2, config=config)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p))
    policy.obs_normalizer.update(torch.randn(50, 4) * 3 + 1)
    path = tmp_path / "residual_last.pt"
    torch.save({"residual": policy.state_dict(), "config": {"residual": config.model_dump(mode="json")}, **extra},
               path)
    return policy, path


def test_weights_and_observation_statistics_carry_over_and_noise_comes_from_the_new_config(tmp_path):
    source, path = trained_residual(tmp_path, ResidualConfig(obs_keys=KEYS, init_log_std=-1.0),
                                    env_steps=190_080, wall_s=1800.0)
    quieter = ResidualConfig(obs_keys=KEYS, init_log_std=-1.6)
    fresh = ResidualPolicy(obs_dim=4, action_dim=2, config=quieter)
    prior = load_trained_residual(path, fresh, quieter)

    assert prior.env_steps == 190_080 and prior.wall_s == 1800.0
    obs, base = torch.randn(8, 4), torch.rand(8, 2) * 2 - 1
    mean_action = fresh.act(obs, base, deterministic=True)[0]
    torch.testing.assert_close(mean_action, source.act(obs, base, deterministic=True)[0])
    torch.testing.assert_close(fresh.act(obs, base)[2], source.act(obs, base)[2])  # the critic too
    torch.testing.assert_close(fresh.obs_normalizer.mean, source.obs_normalizer.mean)
    torch.testing.assert_close(fresh.actor.log_std.detach(), torch.full((2,), -1.6))


def test_a_residual_trained_on_other_observation_keys_is_refused_by_name(tmp_path):
    _, path = trained_residual(tmp_path, ResidualConfig(obs_keys=["goal", "position"]))
    with pytest.raises(IncompatibleResidualError, match=r"\['goal', 'position'\].*\['position', 'goal'\]"):
        load_trained_residual(path, ResidualPolicy(4, 2, ResidualConfig(obs_keys=KEYS)), ResidualConfig(obs_keys=KEYS))


def test_a_residual_of_another_size_is_refused(tmp_path):
    _, path = trained_residual(tmp_path, ResidualConfig(obs_keys=KEYS))
    wider = ResidualConfig(obs_keys=KEYS, hidden_sizes=[64, 64])
    with pytest.raises(IncompatibleResidualError, match="does not fit this run's residual"):
        load_trained_residual(path, ResidualPolicy(4, 2, wider), wider)


def test_a_file_without_a_residual_or_no_file_at_all_is_refused(tmp_path):
    config = ResidualConfig(obs_keys=KEYS)
    torch.save({"model": {}}, tmp_path / "policy.pt")
    with pytest.raises(IncompatibleResidualError, match="holds no residual weights"):
        load_trained_residual(tmp_path / "policy.pt", ResidualPolicy(4, 2, config), config)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_trained_residual(tmp_path / "missing.pt", ResidualPolicy(4, 2, config), config)
