"""Checkpoints hold plain tensors and JSON-able metadata, and a loaded policy refuses observations that are
not what it was trained on, saying which key, shape or camera is wrong."""

import json

import numpy as np
import pytest
import torch

from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy, ObservationMismatchError, load_checkpoint
from sim.env import TwinEnv


@pytest.fixture(scope="module")
def policy(tiny_run):
    return DiffusionPolicy.from_checkpoint(tiny_run.policy_path, device="cpu")


def _obs(shape=(32, 32, 3), cameras=("cam_front", "cam_side", "cam_wrist")):
    obs = {f"{c}_rgb": np.zeros(shape, np.uint8) for c in cameras}
    obs.update(tcp_position=np.zeros(3, np.float32), tcp_rot6d=np.zeros(6, np.float32),
               gripper_width=np.zeros(1, np.float32))
    return obs


def test_checkpoint_is_plain_tensors_and_json_metadata(tiny_run, tiny_store):
    from robot_learning.data.episode_store import EpisodeStore

    raw = torch.load(tiny_run.policy_path, weights_only=True)  # would raise on any pickled object
    meta = {k: v for k, v in raw.items() if k != "model"}
    json.dumps(meta)  # config, normaliser, dataset, obs spec: all JSON-able
    assert all(isinstance(v, torch.Tensor) for v in raw["model"].values())
    with EpisodeStore.open(tiny_store) as store:
        assert raw["dataset"]["fingerprint"] == store.fingerprint
    assert raw["obs_spec"]["cam_wrist_rgb"]["shape"] == [32, 32, 3]
    assert set(raw["normalizer"]) == {"action", "tcp_position", "tcp_rot6d", "gripper_width"}


def test_a_matching_observation_gives_a_finite_chunk_of_n_action_steps(policy):
    history = {k: np.stack([v, v]) for k, v in _obs().items()}
    chunk = policy.predict_chunk(history)
    assert chunk.shape == (policy.n_action_steps, 7) and chunk.dtype == np.float32
    assert np.all(np.isfinite(chunk))
    assert chunk[:, 6].min() >= 0.0 - 1e-4 and chunk[:, 6].max() <= 1.0 + 1e-4  # unnormalised to the data range


def test_missing_keys_are_named(policy):
    obs = _obs()
    del obs["tcp_rot6d"]
    with pytest.raises(ObservationMismatchError, match=r"missing keys \['tcp_rot6d'\]"):
        policy.check_observation(obs)


def test_wrong_image_shapes_are_named_with_the_trained_shape(policy):
    with pytest.raises(ObservationMismatchError, match=r"cam_front_rgb \(64, 64, 3\) \(trained on \(32, 32, 3\)\)"):
        policy.check_observation(_obs(shape=(64, 64, 3)))


def test_another_camera_set_is_refused_naming_both_sets(policy):
    with pytest.raises(ObservationMismatchError) as err:
        policy.check_observation(_obs(cameras=("cam_front", "cam_top", "cam_wrist")))
    message = str(err.value)
    assert "camera set differs" in message and "cam_side_rgb" in message and "cam_top_rgb" in message


def test_loading_against_an_env_checks_its_observation_space(tiny_run):
    env = TwinEnv(task="lift", image_size=(48, 48))
    try:
        with pytest.raises(ObservationMismatchError, match=r"wrong shapes: cam_front_rgb \(48, 48, 3\)"):
            DiffusionPolicy.from_checkpoint(tiny_run.policy_path, device="cpu", observation_space=env.observation_space)
    finally:
        env.close()
    policy = DiffusionPolicy.from_checkpoint(tiny_run.policy_path, device="cpu")
    assert policy.image_size == (32, 32)


def test_a_file_that_is_not_a_policy_checkpoint_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match=r"is not a manip_stack\.diffusion_policy checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_executed_actions_and_ddim_steps_can_be_overridden_within_the_trained_horizon(tiny_run):
    policy = DiffusionPolicy.from_checkpoint(tiny_run.policy_path, device="cpu", n_action_steps=2,
                                             num_inference_steps=2)
    history = {k: np.stack([v, v]) for k, v in _obs().items()}
    assert policy.predict_chunk(history).shape == (2, 7)
    assert len(policy.model.inference_scheduler.timesteps) == 2
    with pytest.raises(ValueError, match=r"n_action_steps=8 must be in 1\.\.7"):
        DiffusionPolicy.from_checkpoint(tiny_run.policy_path, device="cpu", n_action_steps=8)
