"""Who says an episode succeeded: the robot's estimate of the scene, the operator where it is unsure, or (twin-only
runs) the twin itself.

On the robot there is no simulator to ask. :class:`EstimatedSuccess` applies the task file's success condition to
the episode's last estimate (``estimated``, :class:`perception.task_state.TaskStateLayout`), as the twin applies it
to its exact state; when the estimator is not sure of the objects the condition names, it asks the operator (a
callable: a teleop button, a service, a prompt) and, with nobody to ask, calls it a failure and says so in the log.
:class:`TwinSuccess` reads the twin's own judgement and is for ``sim_only`` runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np

from hardware_configs.schema import TaskConfig
from perception.task_state import EstimateSuccessJudge

log = logging.getLogger(__name__)
Operator = Callable[[Mapping[str, np.ndarray]], bool | None]


class TwinSuccess:
    """The twin's verdict (``info["success"]``): simulator state, for sim_only runs only."""

    sim_only = True

    def start(self, obs: Mapping[str, np.ndarray]) -> None:
        return

    def __call__(self, info: Mapping, obs: Mapping[str, np.ndarray]) -> bool:
        return bool(info.get("success", False))


class EstimatedSuccess:
    """The task's success condition on the last estimate; the operator decides where the estimator is unsure."""

    sim_only = False

    def __init__(self, task: TaskConfig, min_confidence: float = 0.5, operator: Operator | None = None):
        self._judge, self.operator = EstimateSuccessJudge(task, min_confidence), operator
        self.asked = 0  # episodes the operator was asked about

    def start(self, obs: Mapping[str, np.ndarray]) -> None:
        """The episode's first observation: each object's starting height (lift measures from it)."""
        self._judge.start(obs["estimated"])

    def judge(self, obs: Mapping[str, np.ndarray]) -> bool | None:
        """True/False from the estimate, None when the objects the condition names are known too poorly."""
        return self._judge.judge(obs["estimated"], obs["estimate_confidence"])

    def __call__(self, info: Mapping, obs: Mapping[str, np.ndarray]) -> bool:
        verdict = self.judge(obs)
        if verdict is not None:
            return verdict
        self.asked += 1
        answer = self.operator(obs) if self.operator is not None else None
        if answer is None:
            log.warning("the estimator is unsure of the scene and nobody answered: the episode counts as a failure")
            return False
        return bool(answer)
