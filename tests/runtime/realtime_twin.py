"""The robot's real-time loop run against the twin, for the policy runner's tests: one env step per policy
period of wall-clock time.

It does what ``policy_node`` does on the robot (observe, take the action due now, send it on), with the twin's
``step`` standing in for "send to the controller and wait a period". Inference runs in the runner's worker
thread, so a slow policy shows up as dropped late actions and holds, as on hardware.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot_learning.runtime.policy_runner import PolicyRunner


@dataclass
class StepRecord:
    now_s: float  # wall time the action was taken [s]
    due_s: float  # when that action was due [s]
    source: str  # "policy" or "hold"
    action: np.ndarray
    tcp_position_m: np.ndarray  # TCP position observed before the action


@dataclass
class RealtimeEpisode:
    success: bool
    steps: list[StepRecord] = field(default_factory=list)
    overruns: int = 0  # periods where the env step itself took longer than a period


def run_realtime_episode(env, runner: PolicyRunner, max_steps: int, seed: int | None = None,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], None] = time.sleep) -> RealtimeEpisode:
    """Reset ``env`` (a TwinEnv) and run ``runner`` on it in real time for at most ``max_steps`` periods."""
    period_s = runner.config.period_s
    obs, _ = env.reset(seed=seed)
    runner.reset()
    episode = RealtimeEpisode(success=False)
    start_s = clock()
    for k in range(max_steps):
        delay_s = start_s + k * period_s - clock()
        if delay_s > 0:
            sleep(delay_s)
        elif delay_s < -period_s / 2:
            episode.overruns += 1
        now_s = clock()
        runner.observe(obs, now_s)
        item = runner.next_action(now_s)
        episode.steps.append(StepRecord(now_s, item.due_s, item.source, item.action, obs["tcp_position"].copy()))
        obs, _, terminated, truncated, info = env.step(item.action)
        if terminated or truncated:
            episode.success = bool(info["success"])
            break
    return episode
