"""RoboHorizon-style stage plans: a declarative language, its compiled reward, checks and the LLM planner."""

from robot_learning.rewards.stages.check import PlanCheck, Trajectory, check_plan, twin_trajectories
from robot_learning.rewards.stages.language import StagePlan
from robot_learning.rewards.stages.planner import PlanResult, make_stage_reward, propose_plan
from robot_learning.rewards.stages.reward import StagePlanReward, StageRewardConfig

__all__ = [
    "PlanCheck", "PlanResult", "StagePlan", "StagePlanReward", "StageRewardConfig", "Trajectory", "check_plan",
    "make_stage_reward", "propose_plan", "twin_trajectories",
]
