"""An online episode's success on the robot: the task condition on the estimate, the operator where it is unsure."""

from __future__ import annotations

import logging

import numpy as np

from hardware_configs import load_task
from perception.task_state import ObjectPose, TaskStateLayout
from robot_learning.sessions.success import EstimatedSuccess, TwinSuccess

TASK = load_task("peg_insert")
UP = np.array([0.0, 0.0, 0.0, 1.0])
HOLE = np.array([0.5, 0.1, 0.0])


def observation(peg_offset_m, confidence=(0.9, 0.9)) -> dict[str, np.ndarray]:
    layout = TaskStateLayout(TASK)
    vector = layout.vector({"peg": ObjectPose(HOLE + np.asarray(peg_offset_m), UP), "hole": ObjectPose(HOLE, UP)})
    return {"estimated": vector, "estimate_confidence": np.asarray(confidence, np.float32)}


def test_success_is_the_task_condition_on_the_estimate_not_the_twins_word() -> None:
    label = EstimatedSuccess(TASK)
    label.start(observation([0.0, -0.2, 0.04]))
    twin_says_yes = {"success": True}
    assert label(twin_says_yes, observation([0.001, 0.0, 0.055])) is True  # 2.5 cm deep, 1 mm off the axis
    assert label(twin_says_yes, observation([0.0, 0.0, 0.081])) is False  # on the rim, whatever the twin says
    assert TwinSuccess()(twin_says_yes, observation([0.0, 0.0, 0.081])) is True and TwinSuccess.sim_only


def test_an_unsure_estimate_asks_the_operator_and_without_one_counts_as_failure(caplog) -> None:
    asked = []
    label = EstimatedSuccess(TASK, operator=lambda obs: asked.append(obs) or True)
    unsure = observation([0.001, 0.0, 0.055], confidence=(0.2, 0.9))  # the peg is barely seen
    assert label({}, unsure) is True and len(asked) == 1 and label.asked == 1
    with caplog.at_level(logging.WARNING):
        assert EstimatedSuccess(TASK)({}, unsure) is False
    assert "nobody answered" in caplog.text
