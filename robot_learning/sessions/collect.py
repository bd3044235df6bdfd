"""Collect demonstrations into the episode store from scripted experts in the twin (teleoperated ones:
:mod:`teleop.session`).

Each episode is recorded step by step and committed whole when it ends; a failed or interrupted episode is
discarded (or kept, flagged unsuccessful, with ``keep_failures``), so the store only ever holds complete
episodes, whatever happens to the process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hardware_configs.schema import CellConfig, TaskConfig
from robot_learning.data.episode_store import ArraySpec, EpisodeStore
from robot_learning.data.specs import episode_specs
from sim.env import TwinEnv
from sim.experts import make_expert

log = logging.getLogger(__name__)

def dataset_specs(env: TwinEnv) -> dict[str, ArraySpec]:
    """Array specs for every observation key of the env (in its observation space's order), plus action, reward
    and time."""
    return episode_specs({key: env.observation_schema[key] for key in env.observation_space.spaces})


@dataclass
class CollectReport:
    path: Path
    attempted: int
    committed: int
    successes: int
    steps: int
    wall_s: float

    def __str__(self) -> str:
        rate = self.successes / max(self.attempted, 1)
        return (
            f"{self.committed} episodes committed to {self.path} ({self.successes}/{self.attempted} expert successes, "
            f"{rate:.0%}; {self.steps} steps in {self.wall_s:.1f} s, {self.steps / max(self.wall_s, 1e-9):.0f} steps/s)"
        )


def collect_expert_episodes(
    out: Path,
    cell: CellConfig | str = "franka_3cam",
    task: TaskConfig | str = "lift",
    n_episodes: int = 10,
    image_size: tuple[int, int] | None = (96, 96),
    depth: bool = False,
    seed: int = 0,
    keep_failures: bool = False,
    progress: bool = True,
    view=None,
) -> CollectReport:
    """Roll the task's scripted expert in the twin and append its episodes to the store at ``out``.

    ``view``: a :class:`robot_learning.viz.rerun_view.RerunView` that logs every step (attempts that are discarded
    too), with the safety filter's events."""
    env = TwinEnv(cell=cell, task=task, image_size=image_size, depth=depth)
    specs = dataset_specs(env)
    attrs = {"cell": env.cell.name, "task": env.task_config.name, "instruction": env.task_config.instruction,
             "source": "scripted_expert", "policy_hz": env.cell.rates.policy_hz,
             "image_size": list(image_size) if image_size else None}
    store = EpisodeStore.open_or_create(out, specs, attrs)
    first_seed = seed + store.n_episodes * 1000  # a resumed collection continues with new scenes
    attempted = committed = successes = steps = 0
    start = time.monotonic()
    bar = tqdm(total=n_episodes, desc=f"collect {env.task_config.name}", unit="ep", disable=not progress)
    try:
        while committed < n_episodes:
            episode_seed = first_seed + attempted
            attempted += 1
            success, n = _record_episode(env, store, episode_seed, keep_failures, view)
            successes += success
            steps += n
            committed += success or keep_failures
            bar.update(int(success or keep_failures))
            bar.set_postfix(success=f"{successes}/{attempted}")
            if attempted > 3 * n_episodes + 10:
                raise RuntimeError(f"expert succeeded only {successes}/{attempted} times on {env.task_config.name}; "
                                   "check the task")
    finally:
        bar.close()
        store.close()
        env.close()
    return CollectReport(Path(out), attempted, committed, successes, steps, time.monotonic() - start)


def _record_episode(env: TwinEnv, store: EpisodeStore, episode_seed: int, keep_failures: bool,
                    view=None) -> tuple[bool, int]:
    obs, _ = env.reset(seed=episode_seed)
    if view is not None:
        view.start_episode(store.n_episodes, {"seed": episode_seed})
    expert = make_expert(env.cell, env.task_config, seed=episode_seed)
    success = False
    with store.begin_episode({"seed": episode_seed, "task": env.task_config.name, "operator": "scripted_expert"}) as ep:
        for _ in range(env.task_config.horizon_steps):
            action = expert.act(obs)
            stamp = env.data.time
            next_obs, reward, terminated, truncated, info = env.step(action)
            ep.add_step(**obs, action=action, reward=np.float32(reward), timestamp=np.float64(stamp))
            if view is not None:
                view.log_step(obs, action, float(reward), t_s=stamp, safety_counts=env.safe_robot.event_counts)
            obs = next_obs
            if terminated or truncated:
                success = bool(info["success"])
                break
        n_steps = len(ep)
        if success or keep_failures:
            ep.commit(success=success)
        else:
            ep.discard()
            log.info("episode with seed %d failed (%s); discarded", episode_seed, expert.phase)
    return success, n_steps
