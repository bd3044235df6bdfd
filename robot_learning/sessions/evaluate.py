"""Roll a trained policy out in the twin: success rate with a 95% Wilson interval, videos, a JSON report.

Every env runs its own :class:`PolicyRunner` in synchronous mode on sim time (the sim waits while the
policy thinks, as in Diffusion Policy's sim evaluations); the real-time behaviour of the runner (late
chunks, holds) is exercised by its own tests and the real-time twin loop. Each env gets a fixed quota
of episodes, so fast (successful) episodes are not over-counted. Scenes come from ``seed`` onwards,
away from the collection seeds (0, 1, 2, ...), so evaluation scenes are not the training scenes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
from tqdm import tqdm

from hardware_configs.schema import CellConfig, TaskConfig
from robot_learning.data.video import compose_frame
from robot_learning.runtime.loading import load_policy
from robot_learning.runtime.policy_runner import DeltaHold, PolicyRunner, RunnerConfig, RunnerStats

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


def evaluate_policy(checkpoint: str | Path, task: TaskConfig | str | None = None,
                    cell: CellConfig | str | None = None, n_episodes: int = 50,
                    n_envs: int = 2, seed: int = EVAL_SEED, out: str | Path | None = None, n_videos: int = 2,
                    device: str = "auto", progress: bool = True, half: bool = False, compile_unet: bool = False,
                    cpu_threads: int | None = 1, n_action_steps: int | None = None,
                    num_inference_steps: int | None = None, zero_noise: bool | None = None) -> EvalReport:
    """Evaluate ``checkpoint`` on ``task`` (default: the task it was trained on); write into ``out`` if given.

    ``cpu_threads``: torch threads for inference on a CPU. One by default: the twin processes use the other
    cores, and a second OpenMP thread fighting them makes small-batch inference several times slower.
    ``zero_noise``: DDIM from zero noise (a deterministic base); None keeps the checkpoint's own way (a fine-tuned
    checkpoint runs its base as it was fine-tuned).
    """
    import torch

    from hardware_configs import load_cell, load_task
    from sim.vector import ended_episode_outcomes, make_vector_env

    policy = load_policy(checkpoint, device=device, half=half, compile_unet=compile_unet,
                         n_action_steps=n_action_steps, num_inference_steps=num_inference_steps,
                         **({} if zero_noise is None else {"zero_noise": zero_noise}))
    if policy.device.type == "cpu" and cpu_threads:
        torch.set_num_threads(cpu_threads)
    if n_videos and not policy.camera_keys:
        log.info("no videos: %s sees no cameras (a state-only policy), so there are no frames to show", checkpoint)
        n_videos = 0
    task = task or policy.dataset.get("task")
    if not task:
        raise ValueError(f"{checkpoint} does not record its task; pass --task")
    cell, task = load_cell(cell or policy.dataset.get("cell") or "franka_3cam"), load_task(task)  # loaded once
    n_envs = max(1, min(n_envs, n_episodes))
    quota = [n_episodes // n_envs + (i < n_episodes % n_envs) for i in range(n_envs)]
    out = Path(out) if out is not None else None
    envs = make_vector_env(n_envs, cell=cell, task=task, image_size=policy.image_size, asynchronous=n_envs > 1)
    runners: list[PolicyRunner] = []
    try:
        policy.check_observation(envs.single_observation_space)
        period_s = 1.0 / cell.rates.policy_hz
        action_dim = int(envs.single_action_space.shape[0])
        runners += [PolicyRunner(policy, DeltaHold(action_dim, policy.delta_action_dims),
                                 RunnerConfig(period_s=period_s, asynchronous=False)) for _ in range(n_envs)]
        results: list[dict[str, Any]] = []
        done, steps = [0] * n_envs, [0] * n_envs
        frames: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
        saved = {True: 0, False: 0}
        videos: list[str] = []
        start = time.monotonic()
        obs, _ = envs.reset(seed=seed)
        bar = tqdm(total=n_episodes, desc=f"eval {task.name}", unit="ep", disable=not progress)
        while sum(done) < n_episodes:
            actions = np.zeros((n_envs, action_dim), np.float32)
            for i, runner in enumerate(runners):
                obs_i = {k: obs[k][i] for k in policy.obs_keys}
                if done[i] < quota[i] and out is not None and n_videos:
                    frames[i].append(_frame(obs_i, policy.camera_keys, f"step {steps[i]}"))
                runner.observe(obs_i, steps[i] * period_s)
                actions[i] = runner.next_action(steps[i] * period_s).action
            obs, _, terminated, truncated, info = envs.step(actions)
            ended = np.flatnonzero(terminated | truncated)
            outcomes = ended_episode_outcomes(info, n_envs) if ended.size else []
            for i in ended:
                success = bool(info["final_info"]["success"][i])
                outcome = outcomes[i]
                if done[i] < quota[i]:
                    results.append({"env": int(i), "episode": done[i], "success": success, "steps": steps[i] + 1,
                                    "outcome": outcome})
                    done[i] += 1
                    bar.update(1)
                    bar.set_postfix(success=f"{sum(r['success'] for r in results)}/{len(results)}")
                    if out is not None and saved[success] < n_videos and frames[i]:
                        final = {k: info["final_obs"][i][k] for k in policy.camera_keys}
                        frames[i].append(_frame(final, policy.camera_keys, f"step {steps[i] + 1} "
                                                + ("SUCCESS" if success else "failure")))
                        name = f"{'success' if success else 'failure'}_{saved[success]:02d}.mp4"
                        videos.append(str(_write_video(out / "videos" / name, frames[i], period_s)))
                        saved[success] += 1
                runners[i].reset()
                steps[i], frames[i] = 0, []
            for i in np.flatnonzero(~(terminated | truncated)):
                steps[i] += 1
        bar.close()
    finally:
        envs.close()
        for runner in runners:
            runner.close()
    k = sum(r["success"] for r in results)
    stats = _sum_stats([r.stats for r in runners])
    n = len(results)
    report = EvalReport(str(checkpoint), cell.name, task.name, n, k, k / n, wilson_interval(k, n),
                        float(np.mean([r["steps"] for r in results])), time.monotonic() - start, results, videos, stats)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary = {**asdict(report), "failures_by_outcome": report.failures_by_outcome}
        (out / "eval_report.json").write_text(json.dumps(summary, indent=2))
    return report


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
