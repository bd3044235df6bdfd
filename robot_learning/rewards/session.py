"""Building rewards for a twin session, and a preview episode a person can look at.

``model_client`` gives an :class:`FMClient` for a profile name; the special profile ``oracle_local`` starts the
in-repo fake server answering from :class:`~robot_learning.rewards.oracles.TaskOracle` (no model needed).
``preview_episode`` runs one scripted-expert episode, scores it with the sparse, KAGI and RoboHorizon rewards
on the same transitions, and writes the KAGI explanation image, the reward plot and the accepted plan.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware_configs.schema import TaskConfig
from robot_learning.rewards.base import Breakdown, RewardFunction, SparseSuccessReward
from robot_learning.rewards.fm.cache import ResponseCache
from robot_learning.rewards.fm.client import CacheMode, FMClient
from robot_learning.rewards.fm.fake_server import FakeOpenAIServer
from robot_learning.rewards.fm.profiles import load_profile
from robot_learning.rewards.kagi.camera import TwinKeyframes
from robot_learning.rewards.kagi.reward import KagiReward
from robot_learning.rewards.oracles import TaskOracle
from robot_learning.rewards.stages.check import twin_trajectories
from robot_learning.rewards.stages.planner import PlanResult, make_stage_reward, propose_plan
from robot_learning.rewards.viz import kagi_explanation, plot_reward_trace, save_rgb

log = logging.getLogger(__name__)
ORACLE_PROFILE = "oracle_local"


@contextmanager
def model_endpoint(profile: str, task: TaskConfig, offline: bool = False,
                   keep_requests: int | None = None) -> Iterator[str | None]:
    """The base_url to reach ``profile`` at: for ``oracle_local`` the built-in oracle server's (up meanwhile),
    else None (the profile's own). Offline replays need no server: every answer comes from the cache."""
    if profile != ORACLE_PROFILE or offline:
        yield None
        return
    log.warning("model profile %s: answers come from the built-in oracle (what a good model answers)", profile)
    server = FakeOpenAIServer(TaskOracle(task), keep_requests=keep_requests).start()
    try:
        yield server.base_url
    finally:
        server.stop()
        log.info("the oracle endpoint answered %d requests", server.log.served)


@contextmanager
def model_client(profile: str, task: TaskConfig, cache_path: Path | None = None,
                 cache_mode: CacheMode = CacheMode.read_write) -> Iterator[FMClient]:
    """A client for ``profile``; for ``oracle_local`` a fake server answering from the task oracle runs meanwhile."""
    cache = ResponseCache(cache_path) if cache_path is not None and cache_mode is not CacheMode.off else None
    try:
        with model_endpoint(profile, task, offline=cache_mode is CacheMode.offline) as base_url:
            yield FMClient(load_profile(profile, **({"base_url": base_url} if base_url else {})), cache, cache_mode)
    finally:
        if cache is not None:
            cache.close()


def plan_for_task(client: FMClient, task: TaskConfig, n_demos: int = 4, n_random: int = 3, seed: int = 0) -> PlanResult:
    """Ask for a RoboHorizon plan and vet it on scripted-expert demos and random rollouts from the twin."""
    demos = twin_trajectories(task, n_demos, "expert", seed=seed + 10_000)
    negatives = twin_trajectories(task, n_random, "random", seed=seed + 20_000)
    return propose_plan(client, task, demos, negatives)


@dataclass
class PreviewResult:
    explanation_png: Path
    reward_plot_png: Path
    plan_json: Path | None
    plan_summary: str
    returns: dict[str, float]
    success: bool
    usage: dict[str, float]


def preview_episode(out_dir: Path, task_name: TaskConfig | str = "lift", profile: str = ORACLE_PROFILE, seed: int = 0,
                    cache_path: Path | None = None, cache_mode: CacheMode = CacheMode.read_write) -> PreviewResult:
    from sim.env import TwinEnv
    from sim.experts import make_expert

    env = TwinEnv(task=task_name, image_size=None)
    task = env.task_config
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with model_client(profile, task, cache_path, cache_mode) as client:
            plan = plan_for_task(client, task, seed=seed)
            rewards: dict[str, RewardFunction] = {
                "sparse": SparseSuccessReward(),
                "kagi": KagiReward(task, client, TwinKeyframes(env)),
                "robohorizon": make_stage_reward(plan, task),
            }
            obs, info = env.reset(seed=seed)
            for reward in rewards.values():
                reward.reset(obs, info)
            expert = make_expert(env.cell, task, seed=seed)
            traces: dict[str, list[tuple[float, Breakdown]]] = {name: [] for name in rewards}
            tcp_path = [np.array(obs["tcp_position"])]
            for _ in range(task.horizon_steps):
                action = expert.act(obs)
                next_obs, _, terminated, truncated, info = env.step(action)
                for name, reward in rewards.items():
                    traces[name].append(reward(obs, action, next_obs, info))
                tcp_path.append(np.array(next_obs["tcp_position"]))
                obs = next_obs
                if terminated or truncated:
                    break
            usage = client.usage.snapshot()
            client_name = client.profile.model
    finally:
        env.close()
    kagi = rewards["kagi"]
    assert isinstance(kagi, KagiReward)
    explanation = save_rgb(out_dir / "kagi_keyframe.png", kagi_explanation(kagi, tcp_path))
    oracle_note = " (answers from an oracle standing in for a good model)" if profile == ORACLE_PROFILE else ""
    title = f"{task.name}, scripted expert, seed {seed}: rewards per step\nmodel {client_name}{oracle_note}"
    plot = plot_reward_trace(traces, out_dir / "reward_episode.png", title)
    plan_json = None
    if plan.plan is not None:
        plan_json = out_dir / "stage_plan.json"
        plan_json.write_text(json.dumps({"plan": plan.plan.model_dump(mode="json"), "accepted": plan.accepted,
                                         "check": plan.check.summary() if plan.check else plan.reason}, indent=2))
    returns = {name: float(sum(r for r, _ in trace)) for name, trace in traces.items()}
    return PreviewResult(explanation, plot, plan_json, plan.check.summary() if plan.check else plan.reason, returns,
                         bool(info.get("success", False)), usage)
