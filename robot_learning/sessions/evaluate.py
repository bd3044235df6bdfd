"""Roll a trained policy out in the twin: success rate with a 95% Wilson interval, videos, a JSON report.

Every env runs its own :class:`PolicyRunner` in synchronous mode on sim time (the sim waits while the
policy thinks, as in Diffusion Policy's sim evaluations); the real-time behaviour of the runner (late
chunks, holds) is exercised by its own tests, on a manual clock and against the twin in wall-clock time.
Each env gets a fixed quota of episodes, so fast (successful) episodes are not over-counted. Scenes come
from ``seed`` onwards, away from the collection seeds (0, 1, 2, ...), so evaluation scenes are not the
training scenes. ``out/`` receives ``eval_report.json`` and ``videos/`` (the first successes and failures).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
from tqdm import tqdm

from controllers.observations import ESTIMATED_KEYS
from hardware_configs.schema import CellConfig, TaskConfig
from robot_learning.data.video import compose_frame
from robot_learning.runtime.chunking import ChunkingConfig, ChunkJoin, ChunkJoiner, horizon_sampler
from robot_learning.runtime.loading import load_policy
from robot_learning.runtime.policy_runner import DeltaHold, PolicyRunner, RunnerConfig, RunnerStats
from robot_learning.scale.twins import TwinBackend, make_twins
from sim.estimation_config import StateEstimationConfig

log = logging.getLogger(__name__)
EVAL_SEED = 100_000


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% (by default) Wilson score interval of a binomial proportion; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 or k = n the exact bound is p itself; rounding can leave it a hair inside, which plots as negative
    # error bars (matplotlib refuses them), so the interval is made to hold p
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def failures_by_outcome(successes: Sequence[bool], outcomes: Sequence[str]) -> dict[str, int]:
    """How the failed episodes ended (``sim.tasks.OUTCOMES``), most common first."""
    return dict(Counter(o for o, ok in zip(outcomes, successes, strict=True) if not ok).most_common())


def describe_failures(failures: dict[str, int]) -> str:
    """``on_rim 5, short_of_depth 3``; ``none`` when nothing failed."""
    return ", ".join(f"{name} {n}" for name, n in failures.items()) or "none"


@dataclass
class EvalReport:
    checkpoint: str
    cell: str
    task: str
    n_episodes: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]
    mean_steps: float
    wall_s: float
    episodes: list[dict[str, Any]] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    runner: dict[str, Any] = field(default_factory=dict)

    @property
    def failures_by_outcome(self) -> dict[str, int]:
        return failures_by_outcome([e["success"] for e in self.episodes],
                                   [e.get("outcome", "unknown") for e in self.episodes])

    def __str__(self) -> str:
        lo, hi = self.ci95
        failures = self.failures_by_outcome
        return (f"{self.task}: {self.successes}/{self.n_episodes} successes = {self.success_rate:.0%} "
                f"(95% Wilson CI {lo:.0%}-{hi:.0%}), mean {self.mean_steps:.1f} steps, {self.wall_s:.0f} s"
                + (f"; failures: {describe_failures(failures)}" if failures else ""))


def episode_quotas(n_episodes: int, n_envs: int) -> list[int]:
    """Episodes each env contributes: ``n_episodes`` shared out as evenly as possible, the first envs one more."""
    return [n_episodes // n_envs + (i < n_episodes % n_envs) for i in range(n_envs)]


def evaluate_policy(checkpoint: str | Path, task: TaskConfig | str | None = None,
                    cell: CellConfig | str | None = None, n_episodes: int = 50,
                    n_envs: int = 2, seed: int = EVAL_SEED, out: str | Path | None = None, n_videos: int = 2,
                    device: str = "auto", progress: bool = True, half: bool = False, compile_unet: bool = False,
                    cpu_threads: int | None = 1, n_action_steps: int | None = None,
                    chunking: ChunkingConfig | None = None,
                    num_inference_steps: int | None = None, zero_noise: bool | None = None,
                    timestep_spacing: str | None = None,
                    env_wrapper: Callable[[Any], Any] | None = None, runtime: str = "auto",
                    precision: str = "fp32", state_estimation: StateEstimationConfig | None = None,
                    backend: TwinBackend | None = None,
                    view: Callable[[CellConfig, TaskConfig], Any] | None = None) -> EvalReport:
    """Evaluate ``checkpoint`` on ``task`` (default: the task it was trained on); write into ``out`` if given.

    ``cpu_threads``: torch threads for inference on a CPU. One by default: the twin processes use the other
    cores, and a second OpenMP thread fighting them makes small-batch inference several times slower.
    ``zero_noise``: DDIM from zero noise (a deterministic base); None keeps the checkpoint's own way (a fine-tuned
    checkpoint runs its base as it was fine-tuned).
    ``chunking``: an inference delay to simulate on sim time (the next chunk is asked for that many policy steps
    before the queue runs out, and lands that late) and how a new chunk joins the executing one
    (:mod:`robot_learning.runtime.chunking`); None: no delay, chunks replace each other.
    ``env_wrapper``: wraps each twin in its worker (picklable), e.g. ``sim.randomisation.randomised_wrapper``.
    ``backend``: where the twins run (default: subprocesses here; Ray actors with ``TwinBackend(kind="ray")``).
    ``view``: makes a :class:`robot_learning.viz.rerun_view.RerunView` from the cell and task; it logs the first
    twin's counted episodes step by step (observation, action, reward) and is closed at the end.
    ``runtime``/``precision``: how chunks are sampled (:mod:`robot_learning.runtime.fast_inference`; ``auto``: the
    fast sampler where it supports the model, ``eager`` to fall back).
    ``state_estimation``: how the twins make the robot's estimate of the scene (:mod:`sim.estimation`); a policy
    that reads estimated keys gets the cameras through the robot's estimator when it is None.
    """
    import torch

    policy = load_policy(checkpoint, device=device, half=half, compile_unet=compile_unet, runtime=runtime,
                         precision=precision,
                         n_action_steps=n_action_steps, num_inference_steps=num_inference_steps,
                         **({} if zero_noise is None else {"zero_noise": zero_noise}),
                         **({} if timestep_spacing is None else {"timestep_spacing": timestep_spacing}))
    if policy.device.type == "cpu" and cpu_threads:
        torch.set_num_threads(cpu_threads)
    if n_videos and not policy.camera_keys:
        log.info("no videos: %s sees no cameras (a state-only policy), so there are no frames to show", checkpoint)
        n_videos = 0
    cell, task = _cell_and_task(policy, checkpoint, task, cell)
    viewer = view(cell, task) if view is not None else None
    if state_estimation is None and any(k in ESTIMATED_KEYS for k in policy.obs_keys):
        state_estimation = StateEstimationConfig()  # the reference: rendered cameras, noisy depth, the estimator
    if state_estimation is not None:
        from functools import partial

        from sim.env import estimated_then

        env_wrapper = partial(estimated_then, state_estimation, env_wrapper)
    n_envs = max(1, min(n_envs, n_episodes))
    out = Path(out) if out is not None else None
    envs = make_twins(n_envs, backend, cell=cell, task=task, image_size=policy.image_size, wrapper=env_wrapper)
    runners: list[PolicyRunner] = []
    try:
        policy.check_observation(envs.single_observation_space)
        period_s = 1.0 / cell.rates.policy_hz
        runners += _make_runners(policy, n_envs, int(envs.single_action_space.shape[0]), period_s, chunking)
        videos = _VideoKeeper(None if out is None else out / "videos", n_videos, n_envs, policy.camera_keys, period_s)
        start = time.monotonic()
        results = _roll_out(envs, runners, policy, episode_quotas(n_episodes, n_envs), seed, period_s, videos,
                            desc=f"eval {task.name}", progress=progress, view=viewer)
    finally:
        envs.close()
        if viewer is not None:
            viewer.close()
        for runner in runners:
            runner.close()
    k, n = sum(r["success"] for r in results), len(results)
    report = EvalReport(str(checkpoint), cell.name, task.name, n, k, k / n, wilson_interval(k, n),
                        float(np.mean([r["steps"] for r in results])), time.monotonic() - start, results,
                        videos.paths, {**_sum_stats([r.stats for r in runners]),
                                       "chunking": (chunking or ChunkingConfig()).model_dump(mode="json")})
    if out is not None:
        write_report(report, out)
    return report


def write_report(report: EvalReport, out: Path) -> Path:
    """``out/eval_report.json``: the report with its failures counted by outcome."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {**asdict(report), "failures_by_outcome": report.failures_by_outcome}
    path = out / "eval_report.json"
    path.write_text(json.dumps(summary, indent=2))
    return path


def _cell_and_task(policy, checkpoint: str | Path, task: TaskConfig | str | None,
                   cell: CellConfig | str | None) -> tuple[CellConfig, TaskConfig]:
    """The given cell and task, else the ones the policy was trained in; loaded once, typed."""
    from hardware_configs import load_cell, load_task

    task = task or policy.dataset.get("task")
    if not task:
        raise ValueError(f"{checkpoint} does not record its task; pass --task")
    return load_cell(cell or policy.dataset.get("cell") or "franka_3cam"), load_task(task)


def _make_runners(policy, n_envs: int, action_dim: int, period_s: float,
                  chunking: ChunkingConfig | None = None) -> list[PolicyRunner]:
    """One synchronous runner per env, on sim time: the twin waits while the policy thinks (or, with a simulated
    delay, its chunk lands that much later in sim time while the previous chunk goes on)."""
    chunking = chunking or ChunkingConfig()
    delay_steps = chunking.delay_steps(period_s)
    config = RunnerConfig(period_s=period_s, asynchronous=False, replan_remaining=delay_steps,
                          simulated_delay_s=chunking.inference_delay_s)
    joined = delay_steps > 0 or chunking.join is not ChunkJoin.NONE
    return [PolicyRunner(policy, DeltaHold(action_dim, policy.delta_action_dims), config,
                         joiner=ChunkJoiner(horizon_sampler(policy), chunking.join, period_s, delay_steps,
                                            chunking.decay_steps) if joined else None)
            for _ in range(n_envs)]


def _roll_out(envs, runners: list[PolicyRunner], policy, quota: list[int], seed: int, period_s: float,
              videos: _VideoKeeper, desc: str, progress: bool, view=None) -> list[dict[str, Any]]:
    """Step all envs until each has ended its ``quota`` of episodes; one result per counted episode, in the
    order they ended. Episodes past an env's quota run on (the vector env steps every env) but are not counted."""
    from sim.vector import ended_episode_outcomes

    n_envs, n_episodes = len(runners), sum(quota)
    action_dim = int(envs.single_action_space.shape[0])
    results: list[dict[str, Any]] = []
    done, steps = [0] * n_envs, [0] * n_envs
    obs, _ = envs.reset(seed=seed)
    if view is not None:
        view.start_episode(0, {"env": 0})
    bar = tqdm(total=n_episodes, desc=desc, unit="ep", disable=not progress)
    while sum(done) < n_episodes:
        actions = np.zeros((n_envs, action_dim), np.float32)
        for i, runner in enumerate(runners):
            obs_i = {k: obs[k][i] for k in policy.obs_keys}
            if done[i] < quota[i]:
                videos.add(i, obs_i, f"step {steps[i]}")
            runner.observe(obs_i, steps[i] * period_s)
            actions[i] = runner.next_action(steps[i] * period_s).action
        seen = {k: v[0] for k, v in obs.items()} if view is not None and done[0] < quota[0] else None
        obs, rewards, terminated, truncated, info = envs.step(actions)
        if seen is not None:
            view.log_step(seen, actions[0], float(rewards[0]), t_s=steps[0] * period_s)
        ended = np.flatnonzero(terminated | truncated)
        outcomes = ended_episode_outcomes(info, n_envs) if ended.size else []
        for i in ended:
            success = bool(info["final_info"]["success"][i])
            if done[i] < quota[i]:
                results.append({"env": int(i), "episode": done[i], "success": success, "steps": steps[i] + 1,
                                "outcome": outcomes[i]})
                done[i] += 1
                bar.update(1)
                bar.set_postfix(success=f"{sum(r['success'] for r in results)}/{len(results)}")
                videos.episode_ended(i, success, info["final_obs"][i], steps[i] + 1)
            runners[i].reset()
            steps[i] = 0
            if view is not None and i == 0 and done[0] < quota[0]:
                view.start_episode(done[0], {"env": 0})
            videos.discard(i)
        for i in np.flatnonzero(~(terminated | truncated)):
            steps[i] += 1
    bar.close()
    return results


class _VideoKeeper:
    """Films each env's episode in progress and keeps, as mp4s, the first ``n_per_outcome`` successes and the first
    ``n_per_outcome`` failures (``success_00.mp4``, ``failure_00.mp4``, ...); films nothing without ``out_dir``."""

    def __init__(self, out_dir: Path | None, n_per_outcome: int, n_envs: int, camera_keys: list[str],
                 period_s: float) -> None:
        self.out_dir, self.n_per_outcome = out_dir, n_per_outcome
        self.camera_keys, self.period_s = camera_keys, period_s
        self.filming = out_dir is not None and n_per_outcome > 0
        self.frames: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
        self.saved = {True: 0, False: 0}
        self.paths: list[str] = []

    def add(self, env: int, obs: dict[str, np.ndarray], caption: str) -> None:
        if self.filming:
            self.frames[env].append(_frame(obs, self.camera_keys, caption))

    def episode_ended(self, env: int, success: bool, final_obs: dict[str, np.ndarray], steps: int) -> None:
        """Write the episode with its final frame if its outcome still wants a video."""
        if self.out_dir is None or self.saved[success] >= self.n_per_outcome or not self.frames[env]:
            return
        final = {k: final_obs[k] for k in self.camera_keys}
        self.frames[env].append(_frame(final, self.camera_keys, f"step {steps} {'SUCCESS' if success else 'failure'}"))
        name = f"{'success' if success else 'failure'}_{self.saved[success]:02d}.mp4"
        self.paths.append(str(_write_video(self.out_dir / name, self.frames[env], self.period_s)))
        self.saved[success] += 1

    def discard(self, env: int) -> None:
        self.frames[env] = []


def _frame(obs: dict[str, np.ndarray], camera_keys: list[str], caption: str) -> np.ndarray:
    return compose_frame([obs[k] for k in camera_keys], camera_keys, caption, height=2 * obs[camera_keys[0]].shape[0])


def _write_video(path: Path, frames: list[np.ndarray], period_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=1.0 / period_s, codec="libx264", quality=8, macro_block_size=1,
                            ffmpeg_log_level="error") as writer:
        for frame in frames:
            h, w = frame.shape[:2]
            writer.append_data(np.pad(frame, ((0, -h % 16), (0, -w % 16), (0, 0))))
    return path


def _sum_stats(stats: list[RunnerStats]) -> dict[str, Any]:
    latencies = [s for st in stats for s in st.latencies_s]
    return {
        "chunks": sum(s.chunks for s in stats), "actions": sum(s.actions for s in stats),
        "holds": sum(s.holds for s in stats), "dropped_late": sum(s.dropped_late for s in stats),
        "failures": sum(s.failures for s in stats), "invalid_chunks": sum(s.invalid_chunks for s in stats),
        "residual_failures": sum(s.residual_failures for s in stats),
        "inference_ms_mean": 1000 * float(np.mean(latencies)) if latencies else None,
        "inference_ms_p95": 1000 * float(np.percentile(latencies, 95)) if latencies else None,
    }


def plot_eval_summary(report: EvalReport, png: str | Path) -> Path:
    """Success rate with its Wilson interval, episode lengths of successes and failures, and how failures ended."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    failures = report.failures_by_outcome
    fig, axes = plt.subplots(1, 3 if failures else 2, figsize=(11.5 if failures else 8, 3.2), dpi=100,
                             gridspec_kw={"width_ratios": [1, 2, 1.5] if failures else [1, 2]})
    ax_rate, ax_len = axes[0], axes[1]
    lo, hi = report.ci95
    ax_rate.bar([0], [report.success_rate], color="tab:green", width=0.5)
    ax_rate.errorbar([0], [report.success_rate], yerr=[[report.success_rate - lo], [hi - report.success_rate]],
                     color="k", capsize=8)
    ax_rate.set(xticks=[], ylim=(0, 1), ylabel="success rate",
                title=f"{report.successes}/{report.n_episodes} ({lo:.0%}-{hi:.0%})")
    all_lengths = [e["steps"] for e in report.episodes] or [0]
    edges = np.arange(min(all_lengths), max(all_lengths) + 2) - 0.5  # one bin per step, shared by both groups
    for success, colour in ((True, "tab:green"), (False, "tab:red")):
        lengths = [e["steps"] for e in report.episodes if e["success"] == success]
        if lengths:
            ax_len.hist(lengths, bins=edges, alpha=0.7, color=colour,
                        label=f"{'success' if success else 'failure'} ({len(lengths)})")
    ax_len.set(xlabel="episode length [policy steps]", ylabel="episodes", title=f"{report.task} in the twin")
    ax_len.legend(fontsize=8)
    if failures:
        names = list(failures)[::-1]  # most common on top
        axes[2].barh(names, [failures[n] for n in names], color="tab:red", alpha=0.7)
        axes[2].set(xlabel="failed episodes", title="how failures ended")
        axes[2].tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return Path(png)
