"""Accept a stage plan only if demonstrations agree with it.

Along every successful demonstration all stages must complete, in order, and the plan's progress must rise
with time (Spearman rank correlation > ``min_spearman``); failed or random rollouts must score lower (their
final progress below every demonstration's, their mean progress below the demonstrations' mean). Otherwise
the plan is rejected with reasons a person, or the planning model, can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hardware_configs.schema import TaskConfig
from robot_learning.rewards.base import Obs
from robot_learning.rewards.stages.language import StagePlan
from robot_learning.rewards.stages.reward import StagePlanReward

STATE_KEYS = ("tcp_position", "tcp_quaternion", "gripper_width", "privileged")


@dataclass
class Trajectory:
    """Low-dimensional observations of one episode, first observation included."""

    observations: list[Obs]
    success: bool
    source: str = ""


@dataclass
class PlanCheck:
    accepted: bool
    reasons: list[str] = field(default_factory=list)
    spearman: list[float] = field(default_factory=list)
    demo_final_progress: list[float] = field(default_factory=list)
    negative_final_progress: list[float] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "accepted" if self.accepted else "rejected: " + "; ".join(self.reasons)
        rho = f"{min(self.spearman):.3f}" if self.spearman else "n/a"
        return (f"plan {verdict} (min Spearman {rho} over {len(self.spearman)} demos; final progress demos "
                f"{_fmt(self.demo_final_progress)}, negatives {_fmt(self.negative_final_progress)})")


def _fmt(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "n/a"


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as scipy.stats.rankdata), so constant stretches do not fake a trend."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def progress_along(plan: StagePlan, task: TaskConfig, trajectory: Trajectory) -> tuple[np.ndarray, list[int | None]]:
    """Normalised progress at every step and the step at which each stage completed."""
    values, completed_at, _ = _evaluate(plan, task, trajectory)
    return values, completed_at


def _evaluate(plan: StagePlan, task: TaskConfig, trajectory: Trajectory
              ) -> tuple[np.ndarray, list[int | None], list[int | None]]:
    """Progress per step, latched completion steps, and the first step each stage's condition held on its own."""
    reward = StagePlanReward(plan, task)
    reward.reset(trajectory.observations[0], {})
    first_true: list[int | None] = [None] * len(plan.stages)
    values = []
    for t, obs in enumerate(trajectory.observations):
        if t > 0:
            reward(trajectory.observations[t - 1], np.zeros(7), obs, {})
        state = reward.scene.read(obs)
        values.append(reward.progress(state)[0])
        for k, holds in enumerate(reward.stage_conditions(state)):
            if holds and first_true[k] is None:
                first_true[k] = t
    return np.array(values), list(reward.completed_at), first_true


def check_plan(plan: StagePlan, task: TaskConfig, demos: list[Trajectory], negatives: list[Trajectory],
               min_spearman: float = 0.8) -> PlanCheck:
    successful = [d for d in demos if d.success]
    if not successful:
        return PlanCheck(False, ["no successful demonstration to check the plan against"])
    check = PlanCheck(True)
    names = [s.name for s in plan.stages]
    for i, demo in enumerate(successful):
        progress, completed_at, first_true = _evaluate(plan, task, demo)
        rho = spearman(progress, np.arange(len(progress)))
        for k in range(1, len(names)):
            before, after = first_true[k - 1], first_true[k]
            if before is not None and after is not None and after < before:
                check.reasons.append(f"demo {i}: stage {names[k]!r} holds first at step {after}, before stage "
                                     f"{names[k - 1]!r} (step {before}): not the demonstration's order")
        check.spearman.append(rho)
        check.demo_final_progress.append(float(progress[-1]))
        missing = [n for n, t in zip(names, completed_at, strict=True) if t is None]
        if missing:
            check.reasons.append(f"demo {i}: stage(s) {missing} never complete along a successful demonstration")
        if rho <= min_spearman:
            check.reasons.append(f"demo {i}: progress does not rise with time (Spearman {rho:.2f} <= {min_spearman})")
    demo_mean = np.mean([progress_along(plan, task, d)[0].mean() for d in successful])
    failed = [Trajectory(d.observations, False, d.source or "failed demo") for d in demos if not d.success]
    for i, neg in enumerate([*negatives, *failed]):
        progress, _ = progress_along(plan, task, neg)
        check.negative_final_progress.append(float(progress[-1]))
        if progress[-1] >= min(check.demo_final_progress):
            check.reasons.append(f"{neg.source or 'negative'} rollout {i} ends with progress {progress[-1]:.2f}, "
                                 f"not below the demonstrations' {min(check.demo_final_progress):.2f}")
        if progress.mean() >= demo_mean:
            check.reasons.append(f"{neg.source or 'negative'} rollout {i} scores {progress.mean():.2f} on average, "
                                 f"not below the demonstrations' {demo_mean:.2f}")
    check.accepted = not check.reasons
    return check


def twin_trajectories(task: str | TaskConfig, n: int, policy: str = "expert", seed: int = 0,
                      cell: str = "franka_3cam") -> list[Trajectory]:
    """Roll the scripted expert (``policy="expert"``) or uniform random actions in the twin, without images."""
    from sim.env import TwinEnv
    from sim.experts import make_expert

    env = TwinEnv(cell=cell, task=task, image_size=None)
    rng = np.random.default_rng(seed)
    out = []
    try:
        for episode in range(n):
            obs, _ = env.reset(seed=seed + episode)
            expert = make_expert(env.cell, env.task_config, seed=seed + episode) if policy == "expert" else None
            observations, success = [_state(obs)], False
            for _ in range(env.task_config.horizon_steps):
                action = expert.act(obs) if expert else rng.uniform(env.action_space.low, env.action_space.high)
                obs, _, terminated, truncated, info = env.step(action)
                observations.append(_state(obs))
                success = bool(info["success"])
                if terminated or truncated:
                    break
            out.append(Trajectory(observations, success, source=policy))
    finally:
        env.close()
    return out


def _state(obs: Obs) -> Obs:
    return {k: np.array(obs[k]) for k in STATE_KEYS}
