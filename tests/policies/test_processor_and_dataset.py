"""Normalisation, observation history and training windows: what the model sees is what the data says."""

import numpy as np
import pytest
import torch

from robot_learning.policies.dataset import WindowDataset
from robot_learning.policies.diffusion.processor import MinMaxNormalizer, ObservationHistory, images_to_tensor


def test_min_max_normalisation_maps_the_data_range_to_minus_one_one_and_back():
    rng = np.random.default_rng(0)
    data = rng.uniform([-0.03, 0.0, 5.0], [0.02, 1.0, 5.0], size=(500, 3)).astype(np.float32)  # last dim constant
    norm = MinMaxNormalizer.fit({"action": data})
    x = torch.from_numpy(data)
    y = norm.normalize("action", x)
    assert y[:, :2].min(0).values.tolist() == pytest.approx([-1, -1], abs=1e-6)
    assert y[:, :2].max(0).values.tolist() == pytest.approx([1, 1], abs=1e-6)
    assert torch.allclose(y[:, 2], torch.zeros(500), atol=1e-6)  # constant dims are centred, not blown up
    assert torch.allclose(norm.unnormalize("action", y), x, atol=1e-6)
    again = MinMaxNormalizer(norm.state_dict())  # what a checkpoint restores
    assert torch.equal(again.normalize("action", x), y)


def test_normaliser_refuses_non_finite_data_and_unknown_keys():
    with pytest.raises(ValueError, match="non-finite"):
        MinMaxNormalizer.fit({"action": np.array([[0.0], [np.nan]])})
    with pytest.raises(KeyError, match="no normalisation statistics for 'joint_pos'"):
        MinMaxNormalizer.fit({"action": np.zeros((2, 1))}).normalize("joint_pos", torch.zeros(1))


def test_images_become_float_chw_in_minus_one_one():
    img = np.zeros((2, 5, 4, 3), np.uint8)
    img[..., 1] = 255
    x = images_to_tensor(img, "cpu")
    assert x.shape == (2, 3, 5, 4) and x.dtype == torch.float32
    assert x[:, 0].eq(-1).all() and x[:, 1].eq(1).all()


def test_history_repeats_the_first_observation_then_slides():
    history = ObservationHistory(2, ["x"])
    history.push({"x": np.array([1.0]), "ignored": 0})
    assert history.stacked()["x"].ravel().tolist() == [1.0, 1.0]
    history.push({"x": np.array([2.0])})
    history.push({"x": np.array([3.0])})
    assert history.stacked()["x"].ravel().tolist() == [2.0, 3.0]


def _toy_windows(n_obs=2, horizon=4, n_action=2):
    # Two episodes of 5 and 3 steps; obs = global step index, action = (step, step, gripper = step % 2)
    steps = np.arange(8, dtype=np.float32)
    arrays = {"obs": steps[:, None], "action": np.stack([steps, steps, steps % 2], axis=1)}
    return WindowDataset(arrays, np.array([5, 8]), ["obs"], "action", n_obs, horizon, n_action,
                         delta_action_dims=[0, 1])


def test_every_step_is_the_current_step_of_exactly_one_window():
    windows = _toy_windows()  # n_obs 2, horizon 4, n_action 2; episodes of 5 and 3 steps
    batch = windows.batch(np.arange(len(windows)))
    current = batch["obs"][:, -1, 0].tolist()  # latest observation of each window
    assert current == list(range(8))  # the grasp-and-lift end of short episodes is learnt too
    np.testing.assert_array_equal(batch["action"][:, 1, 0], np.arange(8))  # the action taken at that step


def test_edges_repeat_observations_and_pad_actions_with_a_hold():
    windows = _toy_windows()
    batch = windows.batch(np.arange(len(windows)))
    assert batch["obs"][0, :, 0].tolist() == [0.0, 0.0]  # before the start: first frame repeated
    np.testing.assert_array_equal(batch["action"][0, 0], [0.0, 0.0, 0.0])  # and a hold as the action
    last = 4  # current step 4, the last of episode 0: steps 3, 4, then two past the end
    np.testing.assert_array_equal(batch["action"][last, :2, 0], [3.0, 4.0])
    # past the end: no motion and the gripper at its last value (0), never the next episode's step 5 (1)
    np.testing.assert_array_equal(batch["action"][last, 2:], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_epoch_batches_cover_the_windows_once_and_depend_only_on_the_seed():
    windows = _toy_windows()
    a = windows.epoch_batches(2, np.random.default_rng([0, 3]))
    b = windows.epoch_batches(2, np.random.default_rng([0, 3]))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert len(np.unique(np.concatenate(a))) == len(np.concatenate(a)) == len(windows) // 2 * 2
