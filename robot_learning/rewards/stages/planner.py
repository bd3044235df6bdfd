"""RoboHorizon planner: an LLM writes a stage plan in the declarative language, demonstrations vet it.

Round 1 asks for a plan (schema-repair turns included, see :func:`ask_structured`); a valid plan is checked
against demonstrations; a rejected plan goes back to the model with the reasons for another round. If no
plan survives, :func:`make_stage_reward` falls back to the sparse reward with a warning: the session goes on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from hardware_configs.schema import TaskConfig
from robot_learning.rewards.base import RewardFunction, SparseSuccessReward
from robot_learning.rewards.fm.client import FMClient
from robot_learning.rewards.fm.structured import ask_structured
from robot_learning.rewards.scene import frame_names
from robot_learning.rewards.stages.check import PlanCheck, Trajectory, check_plan
from robot_learning.rewards.stages.language import LANGUAGE_GUIDE, StagePlan
from robot_learning.rewards.stages.reward import StagePlanReward, StageRewardConfig

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You plan rewards for a robot arm with a parallel gripper. Split the task into the stages it must go "
    "through and describe each with the JSON language below. Never write code.\n\n" + LANGUAGE_GUIDE
)


@dataclass
class PlanResult:
    plan: StagePlan | None
    check: PlanCheck | None
    rounds: int = 0
    errors: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def accepted(self) -> bool:
        return self.plan is not None and self.check is not None and self.check.accepted

    @property
    def reason(self) -> str:
        if self.accepted:
            return "accepted"
        return self.errors[-1] if self.errors else "no plan"


def task_prompt(task: TaskConfig) -> str:
    objects = ", ".join(f"{o.name} ({o.shape}, half sizes {list(o.half_size_m)} m)" for o in task.objects)
    fixtures = ", ".join(f"{f.name} (square hole, half width {f.hole_half_width_m} m, height {f.height_m} m)"
                         for f in task.fixtures) or "none"
    return (f"Task: {task.instruction}\nObjects: {objects}\nFixtures: {fixtures}\n"
            f"Frames: {', '.join(frame_names(task))}\n"
            "(<object>@start is where the object was when the episode began; .top/.bottom are face centres; "
            "tcp is the point between the gripper fingers.)\nAnswer with the JSON plan only.")


def plan_messages(task: TaskConfig) -> list[dict[str, Any]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": task_prompt(task)}]


def propose_plan(client: FMClient, task: TaskConfig, demos: list[Trajectory], negatives: list[Trajectory],
                 max_rounds: int = 2, max_repairs: int = 2, min_spearman: float = 0.8) -> PlanResult:
    """Ask for a plan, check it against demonstrations, feed rejections back; never raises for model failures."""
    messages = plan_messages(task)
    result = PlanResult(None, None)
    for round_index in range(max_rounds):
        result.rounds = round_index + 1
        answer = ask_structured(client, messages, StagePlan, context={"task": task}, max_repairs=max_repairs)
        result.prompt_tokens += answer.prompt_tokens
        result.completion_tokens += answer.completion_tokens
        if not answer.ok:
            result.errors.append(f"no valid plan: {answer.errors[-1] if answer.errors else 'unknown'}")
            return result
        result.plan = answer.value
        result.check = check_plan(answer.value, task, demos, negatives, min_spearman)
        if result.check.accepted:
            log.info("stage plan accepted in round %d: %s", result.rounds, result.check.summary())
            return result
        result.errors.append(result.check.summary())
        log.info("stage plan rejected in round %d: %s", result.rounds, result.check.summary())
        messages = [*messages, {"role": "assistant", "content": json.dumps(answer.value.model_dump(mode="json"))},
                    {"role": "user", "content": "The plan was checked against demonstrations and rejected: "
                     + "; ".join(result.check.reasons) + "\nReply with a corrected JSON plan only."}]
    return result


def make_stage_reward(result: PlanResult, task: TaskConfig, config: StageRewardConfig | None = None,
                      success_reward: float = 1.0) -> RewardFunction:
    """The plan's reward if it was accepted, else the sparse reward (with a warning saying why)."""
    if result.accepted and result.plan is not None:
        return StagePlanReward(result.plan, task, config=config)
    log.warning("no accepted stage plan (%s); falling back to the sparse success reward", result.reason)
    return SparseSuccessReward(success_reward)
