"""The twin's estimated keys: the robot's estimator on the twin's cameras, and the training surrogate."""

from __future__ import annotations

import numpy as np
import pytest

from robot_learning.rl.config import FinetuneConfig
from sim.env import TwinEnv
from sim.estimation_config import StateEstimationConfig


def test_the_cameras_estimate_the_scene_within_millimetres_of_the_truth() -> None:
    env = TwinEnv(task="peg_insert", image_size=None, state_estimation=StateEstimationConfig(image_size=(320, 240)))
    try:
        obs, _ = env.reset(seed=11)
        assert env.observation_space.contains(obs)
        est, truth = obs["estimated"].reshape(-1, 7), obs["privileged"].reshape(-1, 7)
        assert np.all(np.linalg.norm(est[:, :3] - truth[:, :3], axis=1) < 0.005)  # peg, hole
        assert np.all(obs["estimate_confidence"] > 0.3)
        # the task's errors from the estimate, read like the twin's: hole-frame x, y of the peg within 3 mm
        np.testing.assert_allclose(obs["estimated_relative"][4:6], obs["privileged_relative"][4:6], atol=0.003)
        assert not env.observation_schema["estimated"].sim_only and env.observation_schema["privileged"].sim_only
    finally:
        env.close()


def test_the_error_model_is_the_exact_scene_plus_errors_of_the_configured_size() -> None:
    config = StateEstimationConfig(source="error_model", common_offset_m=0.0, position_offset_m=0.002,
                                   position_noise_m=0.0)
    env = TwinEnv(task="peg_insert", image_size=None, state_estimation=config)
    try:
        offsets = []
        for seed in range(12):
            obs, _ = env.reset(seed=seed)
            delta = (obs["estimated"] - obs["privileged"]).reshape(-1, 7)[:, :3]
            obs2, *_ = env.step(np.zeros(7, np.float32))
            delta2 = (obs2["estimated"] - obs2["privileged"]).reshape(-1, 7)[:, :3]
            np.testing.assert_allclose(delta, delta2, atol=1e-5)  # an episode keeps its offset
            offsets.append(delta)
        sigma = np.std(np.concatenate(offsets))
        assert 0.001 < sigma < 0.0035 and env.observation_space.contains(obs)
        layout = env.task.layout  # the relative keys are the layout's errors of the estimated poses
        expected = layout.relative_state(obs2["tcp_position"], obs2["tcp_quaternion"], obs2["estimated"],
                                         env.estimation._initial_height)
        np.testing.assert_allclose(obs2["estimated_relative"], expected, atol=1e-6)
    finally:
        env.close()


def test_a_finetune_config_reading_estimates_says_how_the_twin_makes_them() -> None:
    keys = ["tcp_position", "tcp_rot6d", "gripper_width", "estimated", "estimated_relative"]
    with pytest.raises(ValueError, match="state_estimation"):
        FinetuneConfig(residual={"obs_keys": keys})
    config = FinetuneConfig(residual={"obs_keys": keys}, state_estimation={"source": "error_model"},
                            base_inputs={"privileged": "estimated"})
    assert not config.sim_only  # nothing the robot lacks
    with pytest.raises(ValueError, match="only a sim-only key may be fed its estimate"):
        FinetuneConfig(base_inputs={"privileged": "estimated_relative"})
