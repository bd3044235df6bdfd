"""A validated stage plan compiled into predicates and distances (closures, no eval) and into the reward.

Reward shape (RoboHorizon): ``sum_k [c_k * B_k + (1 - c_k) * (G * grasped + exp(-d / scale))]``, where the
dense term counts for the active (first incomplete) stage only. Stages complete in order and stay complete for
the rest of the episode (latched), so a plan's stage conditions need not keep holding once passed. The sum
is normalised by ``K * B`` and scaled by ``dense_scale``; a step where the task succeeds gets
``success_reward`` instead, as the KAGI reward does, so the two are comparable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from geometry.transforms import quat_xyzw_to_matrix
from hardware_configs.schema import TaskConfig
from robot_learning.rewards.base import Breakdown, Obs
from robot_learning.rewards.scene import SceneReader, SceneState
from robot_learning.rewards.stages.language import (
    Above,
    Aligned,
    And,
    Distance,
    Grasped,
    GripperClosed,
    GripperOpen,
    Inside,
    Near,
    Not,
    Or,
    StagePlan,
)

StatePredicate = Callable[[SceneState], bool]
GRIPPER_OPEN_FRACTION = 0.8  # of the maximum opening
GRIPPER_CLOSED_FRACTION = 0.6


def _yaw(q_xyzw: np.ndarray) -> float:
    x_axis = quat_xyzw_to_matrix(q_xyzw)[:, 0]
    return math.atan2(x_axis[1], x_axis[0])


def compile_predicate(node: object, max_gripper_width_m: float = 0.085) -> StatePredicate:
    """A predicate over scene states; the model's JSON only ever selects among these closures."""
    if isinstance(node, Near):
        off = np.array(node.offset_m)
        return lambda s: bool(np.linalg.norm(s.position(node.a) - s.position(node.b) - off) <= node.max_m)
    if isinstance(node, Above):
        def above(s: SceneState) -> bool:
            a, b = s.position(node.a), s.position(node.b)
            lateral_ok = node.max_lateral_m is None or np.hypot(*(a[:2] - b[:2])) <= node.max_lateral_m
            return bool(a[2] - b[2] >= node.min_m and lateral_ok)
        return above
    if isinstance(node, Inside):
        def inside(s: SceneState) -> bool:
            a, b = s.position(node.a), s.position(node.b)
            return bool(b[2] - a[2] >= node.min_depth_m and np.hypot(*(a[:2] - b[:2])) <= node.max_lateral_m)
        return inside
    if isinstance(node, Aligned):
        period = math.radians(node.symmetry_deg) if node.symmetry_deg else 2 * math.pi

        def aligned(s: SceneState) -> bool:
            diff = _yaw(s.frames[node.a].quaternion_xyzw) - _yaw(s.frames[node.b].quaternion_xyzw)
            wrapped = (diff + period / 2) % period - period / 2
            return abs(wrapped) <= node.max_angle_rad
        return aligned
    if isinstance(node, Grasped):
        return lambda s: s.grasped.get(node.object, False)
    if isinstance(node, GripperOpen):
        return lambda s: s.gripper_width_m >= GRIPPER_OPEN_FRACTION * max_gripper_width_m
    if isinstance(node, GripperClosed):
        return lambda s: s.gripper_width_m <= GRIPPER_CLOSED_FRACTION * max_gripper_width_m
    if isinstance(node, And):
        parts = [compile_predicate(a, max_gripper_width_m) for a in node.args]
        return lambda s: all(p(s) for p in parts)
    if isinstance(node, Or):
        parts = [compile_predicate(a, max_gripper_width_m) for a in node.args]
        return lambda s: any(p(s) for p in parts)
    if isinstance(node, Not):
        inner = compile_predicate(node.arg, max_gripper_width_m)
        return lambda s: not inner(s)
    raise TypeError(f"not a predicate node: {type(node).__name__}")


_AXES = {"xyz": slice(0, 3), "xy": slice(0, 2), "z": slice(2, 3)}


def distance_m(term: Distance, state: SceneState) -> float:
    delta = state.position(term.a) - state.position(term.b) - np.array(term.offset_m)
    return float(np.linalg.norm(delta[_AXES[term.axes]]))


@dataclass(frozen=True)
class StageRewardConfig:
    grasp_weight: float = 0.5  # G
    stage_bonus: float = 1.5  # B_k (>= 1 + G, so completing a stage never lowers the reward)
    distance_scale_m: float = 0.1  # d in exp(-d) is measured in units of this: the scale of the task's motions
    dense_scale: float = 0.5  # lambda: the dense reward stays below the success reward
    success_reward: float = 1.0


class StagePlanReward:
    """The compiled plan as a :class:`~robot_learning.rewards.base.RewardFunction`."""

    name = "robohorizon"

    def __init__(self, plan: StagePlan, task: TaskConfig, scene: SceneReader | None = None,
                 config: StageRewardConfig | None = None):
        self.plan, self.task = plan, task
        self.scene = scene or SceneReader(task)
        self.config = config or StageRewardConfig()
        width = self.scene.max_gripper_width_m
        self._success = [compile_predicate(s.success, width) for s in plan.stages]
        self.completed = [False] * len(plan.stages)
        self.completed_at: list[int | None] = [None] * len(plan.stages)
        self._t = 0

    @property
    def active_stage(self) -> int:
        return sum(self.completed)

    def reset(self, obs: Obs, info: dict[str, Any]) -> None:
        self.completed = [False] * len(self.plan.stages)
        self.completed_at = [None] * len(self.plan.stages)
        self._t = 0
        self._advance(self.scene.reset(obs))

    def _advance(self, state: SceneState) -> None:
        k = self.active_stage
        while k < len(self.plan.stages) and self._success[k](state):
            self.completed[k], self.completed_at[k] = True, self._t
            k += 1

    def stage_conditions(self, state: SceneState) -> list[bool]:
        """Each stage's success condition on this state alone (no latching, no order)."""
        return [check(state) for check in self._success]

    def progress(self, state: SceneState) -> tuple[float, Breakdown]:
        """Normalised sum of the paper's terms in [0, 1], and its parts."""
        cfg, stages = self.config, self.plan.stages
        k = self.active_stage
        total = cfg.stage_bonus * k
        done = zip(stages, self.completed, strict=True)
        parts: Breakdown = {f"stage{i}_{s.name}": float(c) for i, (s, c) in enumerate(done)}
        if k < len(stages):
            prog = stages[k].progress
            d = distance_m(prog.distance, state)
            grasp = float(state.grasped.get(prog.grasp, False)) if prog.grasp else 0.0
            total += cfg.grasp_weight * grasp + math.exp(-d / cfg.distance_scale_m)
            parts.update(distance_m=d, grasped=grasp)
        normalised = total / (cfg.stage_bonus * len(stages))
        parts.update(active_stage=float(k), progress=normalised)
        return normalised, parts

    def __call__(self, obs: Obs, action: np.ndarray, next_obs: Obs, info: dict[str, Any]) -> tuple[float, Breakdown]:
        self._t += 1
        state = self.scene.read(next_obs)
        self._advance(state)
        normalised, parts = self.progress(state)
        success = bool(info.get("success", False))
        parts["success"] = float(success)
        reward = self.config.success_reward if success else self.config.dense_scale * normalised
        return reward, parts
