"""Privileged simulator state is for the twin only: a fine-tuning config whose residual reads it must say
``sim_only: true``, for runs in the twins and for online sessions alike; the default reads what the robot has."""

import pytest
from pydantic import ValidationError

from controllers.observations import SIM_ONLY_KEYS
from robot_learning.cli.main import main
from robot_learning.rl.combined import _as_current_config
from robot_learning.rl.config import FinetuneConfig, ResidualConfig

PRIVILEGED = ["tcp_position", "gripper_width", "privileged_relative"]


def test_the_default_residual_reads_only_what_the_robot_has():
    assert not set(FinetuneConfig().residual.obs_keys) & set(SIM_ONLY_KEYS)


def test_privileged_keys_without_sim_only_are_refused_naming_them():
    with pytest.raises(ValidationError, match=r"\['privileged_relative'\] are the twin's simulator state.*sim_only"):
        FinetuneConfig(residual=ResidualConfig(obs_keys=PRIVILEGED))


def test_privileged_keys_are_accepted_when_the_config_says_sim_only():
    assert FinetuneConfig(sim_only=True, residual=ResidualConfig(obs_keys=PRIVILEGED)).sim_only


@pytest.mark.parametrize("online", [False, True])
def test_both_finetune_verbs_refuse_a_config_reading_privileged_keys_without_sim_only(tmp_path, capsys, online):
    config = tmp_path / "rl.yaml"
    config.write_text("task: lift\nresidual:\n  obs_keys: [tcp_position, privileged]\n")
    argv = ["finetune", "--checkpoint", str(tmp_path / "never_read.pt"), "--config", str(config),
            "--out", str(tmp_path / "out"), *(["--online"] if online else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "sim_only" in err and "privileged" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_a_combined_checkpoint_written_before_sim_only_existed_still_loads_its_config():
    stored = FinetuneConfig(sim_only=True, residual=ResidualConfig(obs_keys=PRIVILEGED)).model_dump(mode="json")
    stored.pop("sim_only")
    assert FinetuneConfig.model_validate(_as_current_config(stored)).sim_only
