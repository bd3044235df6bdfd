"""Policy configs refuse inconsistent values at construction, naming the value and the rule."""

import pytest
from pydantic import ValidationError

from hardware_configs.loader import ConfigError
from robot_learning.policies.diffusion.configuration import (
    DiffusionConfig,
    load_training_config,
    resolve_input_keys,
)

IMAGES = ["cam_front_rgb", "cam_side_rgb", "cam_wrist_rgb"]
LOW_DIM = ["gripper_width", "joint_pos", "privileged", "privileged_relative", "tcp_position", "tcp_quaternion",
           "tcp_rot6d", "action"]


def test_defaults_are_diffusion_policys_horizons():
    cfg = DiffusionConfig()
    assert (cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps) == (2, 16, 8)
    # sampling: 2 DDIM steps spaced trailing (docs/denoising_steps.md); training: 100 DDPM steps
    assert (cfg.num_train_timesteps, cfg.num_inference_steps, cfg.timestep_spacing) == (100, 2, "trailing")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"horizon": 10, "down_dims": [32, 64, 128]}, r"horizon=10 must be divisible by .* downsampling factor 4"),
        ({"n_action_steps": 16}, r"n_action_steps=16 must be <= horizon - n_obs_steps \+ 1 = 15"),
        ({"num_inference_steps": 200}, r"num_inference_steps=200 must be <= num_train_timesteps=100"),
        ({"down_dims": [60, 120, 240]}, r"down_dims \[60\] are not divisible by n_groups=8"),
        ({"kernel_size": 4}, r"kernel_size=4 must be odd"),
        ({"camera_keys": ["cam_front_rgb", "cam_front_rgb"]}, r"camera_keys has duplicates"),
        ({"backbone": "resnet50"}, r"resnet18.*small_conv|small_conv.*resnet18"),
        ({"horizon_steps": 3}, r"Extra inputs are not permitted"),
    ],
)
def test_inconsistent_values_are_refused_with_the_rule(fields, message):
    with pytest.raises(ValidationError, match=message):
        DiffusionConfig(**fields)


def test_a_yaml_error_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("policy:\n  horizon: 10\n  down_dims: [64, 128, 256]\ntrain:\n  batch_size: 0\n")
    with pytest.raises(ConfigError) as err:
        load_training_config(path)
    assert str(path) in str(err.value) and "train.batch_size" in str(err.value) and "horizon=10" in str(err.value)


def test_the_shipped_configs_load():
    for name in ("lift_cpu", "peg_insert_cpu", "peg_insert_student_cpu", "gpu_resnet18", "smoke"):
        load_training_config(name)


def test_inputs_default_to_the_datasets_cameras_and_real_proprioception():
    cfg = resolve_input_keys(DiffusionConfig(), IMAGES, LOW_DIM)
    assert cfg.camera_keys == IMAGES
    assert cfg.low_dim_keys == ["gripper_width", "joint_pos", "tcp_position", "tcp_rot6d"]  # no sim-only state


def test_named_inputs_must_exist_in_the_dataset_and_never_be_privileged():
    with pytest.raises(KeyError, match=r"camera_keys \['cam_top_rgb'\] are not image arrays"):
        resolve_input_keys(DiffusionConfig(camera_keys=["cam_top_rgb"]), IMAGES, LOW_DIM)
    for sim_only in ("privileged", "privileged_relative"):
        with pytest.raises(ValueError, match="sim-only state does not exist on the robot"):
            resolve_input_keys(DiffusionConfig(low_dim_keys=[sim_only]), IMAGES, LOW_DIM)
    with pytest.raises(ValidationError, match="at least one input"):
        resolve_input_keys(DiffusionConfig(camera_keys=[], low_dim_keys=[]), IMAGES, LOW_DIM)
