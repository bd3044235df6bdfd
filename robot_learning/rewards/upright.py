"""How upright the inserted object stands, as a shaping potential for insertion tasks (sim only).

Why: on peg_insert the failures a residual is left with start when the fingers close off-centre and knock the
peg askew; with the sparse reward that mistake is paid for only at the end of the episode, a hundred steps
later. As a potential (``PotentialShapedReward``, gamma of the learner) the tilt costs at the step it happens
and is refunded if the object stands up again, so the optimal policy of the sparse task is unchanged (Ng et
al. 1999) while the credit lands on the grasp that caused it.

It reads the twin's object pose (privileged, like the task's success predicate), so it is a sim reward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hardware_configs.schema import InsertSuccess, TaskConfig
from robot_learning.rewards.base import Obs


def check_upright_task(task: TaskConfig) -> None:
    """Refuse a task without an insertion predicate: there is no 'upright' to measure against."""
    if not isinstance(task.success, InsertSuccess):
        raise ValueError(f"the upright potential shapes the tilt of an inserted object; task {task.name!r} has "
                         f"success kind {task.success.kind!r}, not 'inserted'")


class UprightProgress:
    """``progress`` = -min(tilt / max_tilt_rad, 1): 0 upright, -1 at or past the task's success bound on tilt.

    Pays nothing per step itself (reward 0); wrapped in ``PotentialShapedReward`` the progress is the potential.
    ``tilt_rad`` reads the object's current tilt against the fixture's axis [rad] (the twin's
    ``TwinTask.insertion_tilt_rad``), called after the env has stepped.
    """

    name = "upright"

    def __init__(self, task: TaskConfig, tilt_rad: Callable[[], float]):
        check_upright_task(task)
        self.max_tilt_rad = float(task.success.max_tilt_rad)
        self.tilt_rad = tilt_rad

    def reset(self, obs: Obs, info: dict[str, Any]) -> None:
        pass

    def progress(self) -> float:
        tilt = float(self.tilt_rad())
        if not np.isfinite(tilt):  # a broken simulation state: count it as fallen, never as upright
            return -1.0
        return -min(tilt / self.max_tilt_rad, 1.0)

    def __call__(self, obs: Obs, action: np.ndarray, next_obs: Obs, info: dict[str, Any]) -> tuple[float, dict]:
        return 0.0, {"progress": self.progress()}
