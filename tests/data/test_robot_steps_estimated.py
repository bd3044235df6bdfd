"""Robot steps with the estimated scene: object_state_node's samples join observations, recorded and fed to a
policy like any other key, and a sample of the wrong length is refused."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_configs import load_cell
from robot_learning.data.robot_steps import MissingStreamsError, StepBuilder

DIMS = {"estimated": 14, "estimated_relative": 11, "estimate_confidence": 2}  # peg_insert: peg and hole


def builder() -> StepBuilder:
    return StepBuilder(load_cell("franka_3cam"), [], (96, 96), depth=False, tolerance_s=0.02, estimated_dims=DIMS,
                       estimate_max_age_s=0.3)


def test_the_newest_estimate_within_its_age_joins_the_step() -> None:
    steps = builder()
    steps.add_joints(10.0, np.zeros(7), 0.08)
    steps.add_tcp(10.0, np.array([0.4, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0]))
    steps.add_estimated(9.8, np.arange(27, dtype=float))  # the estimator is slower than the arm's state
    obs = steps.observation(10.0)
    np.testing.assert_array_equal(obs["estimated"], np.arange(14))
    np.testing.assert_array_equal(obs["estimate_confidence"], [25, 26])
    assert {"estimated", "estimated_relative", "estimate_confidence"} <= set(steps.specs)
    steps.add_joints(10.4, np.zeros(7), 0.08)
    steps.add_tcp(10.4, np.array([0.4, 0.0, 0.3]), np.array([1.0, 0.0, 0.0, 0.0]))
    with pytest.raises(MissingStreamsError) as missing:
        steps.observation(10.4)  # 0.6 s after the last estimate: too old to act on
    assert missing.value.streams == ["estimated"]


def test_an_estimate_of_another_task_is_refused() -> None:
    with pytest.raises(ValueError, match="holds 13 values; the task needs 27"):
        builder().add_estimated(1.0, np.zeros(13))
