"""Every config shipped under configs/ loads: a typo in a recipe the README points to fails here, not an hour
into a run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from robot_learning.policies.diffusion.configuration import load_training_config
from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.rewards import REWARDS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FINETUNE = sorted((CONFIGS / "rl").glob("*_residual_*.yaml"))
POLICY = sorted((CONFIGS / "policy").glob("*.yaml")) + sorted((CONFIGS / "rl").glob("*_state_base.yaml"))


def test_the_recipes_are_all_found():
    assert len(FINETUNE) >= 8 and len(POLICY) >= 6


@pytest.mark.parametrize("path", FINETUNE, ids=lambda p: p.name)
def test_finetune_configs_validate(path):
    config = FinetuneConfig.model_validate(yaml.safe_load(path.read_text()))
    assert config.task in ("lift", "peg_insert")


def test_every_registered_reward_has_a_recipe_for_each_shaping_it_takes():
    shipped = {(c.reward, c.reward_shaping) for c in
               (FinetuneConfig.model_validate(yaml.safe_load(path.read_text())) for path in FINETUNE)}
    assert shipped == {(name, shaping) for name, kind in REWARDS.items() for shaping in kind.shapings}


@pytest.mark.parametrize("path", POLICY, ids=lambda p: p.name)
def test_policy_configs_validate(path):
    load_training_config(path)
