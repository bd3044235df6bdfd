"""Residual PPO fine-tuning of a frozen diffusion base in parallel twins (`manip-stack finetune`).

``out/`` receives ``finetune_log.csv`` (row 0: the base alone, or the ``init_residual`` it starts from, evaluated;
then one row per iteration), ``finetune_curves.png``, ``residual_last.pt`` (resume state, plain tensors, written
atomically after every iteration: a run given the same ``out`` goes on from it) and, at the end,
``base_plus_residual.pt``: one self-contained checkpoint (the base embedded, the residual, its normalisers and the
config) that ``manip-stack eval`` and the policy node serve like a plain policy. Each iteration collects
``steps_per_iteration`` steps in every env and updates the residual; every ``eval_every`` iterations the
deterministic residual is evaluated on the same scenes (``EVAL_SEED``).
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hardware_configs.loader import load_cell, load_task
from robot_learning.rl.base_policy import FrozenBase, load_frozen_base
from robot_learning.rl.combined import save_combined
from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.ppo import PPOUpdater, RolloutBuffer, UpdateStats
from robot_learning.rl.residual import ResidualPolicy
from robot_learning.rl.rewards import finetune_reward
from robot_learning.rl.rollout import EpisodeStats, ResidualRolloutCollector
from robot_learning.rl.warm_start import load_trained_residual
from robot_learning.runtime.safe_load import load_plain, save_plain
from robot_learning.scale.twins import TwinBackend, make_twins
from robot_learning.sessions.evaluate import describe_failures, episode_quotas, failures_by_outcome, wilson_interval
from sim.env import estimated_then

log = logging.getLogger(__name__)
EVAL_SEED = 10_000  # every evaluation sees the same scenes, so points of one curve differ by the policy only
CSV_FIELDS = ["iteration", "env_steps", "wall_s", "train_success", "train_return", "episodes", "eval_success",
              "eval_ci_low", "eval_ci_high", "approx_kl", "epochs_run", "value_loss", "explained_variance"]
RESUME_FILE = "residual_last.pt"  # saved after every iteration; a run finds it in its --out and goes on from it


@dataclass
class FinetuneResult:
    checkpoint: Path
    iterations: int
    env_steps: int
    wall_s: float
    last_eval_success: float | None


def _obs_dim(envs, keys: list[str]) -> int:
    spaces = envs.single_observation_space.spaces
    missing = [k for k in keys if k not in spaces]
    if missing:
        raise ValueError(f"residual observation keys {missing} are not in the env; it has {sorted(spaces)}")
    return int(sum(np.prod(spaces[k].shape) for k in keys))


def evaluate_residual(envs, base: FrozenBase, policy: ResidualPolicy, keys: list[str], n_episodes: int,
                      seed: int) -> tuple[int, int, dict[str, int]]:
    """Deterministic residual (its mean) on fresh scenes: (successes, episodes, failures by outcome).

    Each env contributes a fixed quota of its first episodes, as ``manip-stack eval`` does: the first
    ``n_episodes`` to end overall would over-count successes, which end early while failures run to the horizon.
    """
    collector = ResidualRolloutCollector(envs, base, policy, keys, seed=seed)
    obs_dim, action_dim = _obs_dim(envs, keys), int(base.action_low.size)
    ended: list[tuple[int, bool, str]] = []  # (env, success, outcome) in the order the episodes ended
    while (kept := first_episodes_per_env(ended, n_episodes, envs.num_envs)) is None:
        buffer = RolloutBuffer.allocate(50, envs.num_envs, obs_dim, action_dim)
        stats, _ = collector.collect(buffer, deterministic=True, update_obs_stats=False)
        ended += zip(stats.env_indices, stats.successes, stats.outcomes, strict=True)
    successes, outcomes = [s for _, s, _ in kept], [o for _, _, o in kept]
    return int(sum(successes)), n_episodes, failures_by_outcome(successes, outcomes)


def first_episodes_per_env(ended: list[tuple], n_episodes: int, n_envs: int) -> list[tuple] | None:
    """The first episodes of each env (env index first in each tuple), ``n_episodes`` shared out as evenly as
    possible; None while some env has not ended its share yet."""
    quota = episode_quotas(n_episodes, n_envs)
    per_env: list[list[tuple]] = [[] for _ in range(n_envs)]
    for episode in ended:
        per_env[episode[0]].append(episode)
    if any(len(episodes) < q for episodes, q in zip(per_env, quota, strict=True)):
        return None
    return [e for episodes, q in zip(per_env, quota, strict=True) for e in episodes[:q]]


def plot_curves(csv_path: Path, png_path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["env_steps"]) for r in rows])
    trained = [r for r in rows if r["train_success"] != ""]  # row 0 is the base alone: evaluation only
    trained_steps = [float(r["env_steps"]) for r in trained]
    fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    ax_s.plot(trained_steps, [float(r["train_success"]) for r in trained], label="training rollouts (stochastic)")
    evals = [(s, float(r["eval_success"]), float(r["eval_ci_low"]), float(r["eval_ci_high"]))
             for s, r in zip(steps, rows, strict=True) if r["eval_success"]]
    if evals:
        e = np.array(evals)
        # clipped: logs written before wilson_interval held its rate can have a bound a rounding error inside it
        yerr = np.clip([e[:, 1] - e[:, 2], e[:, 3] - e[:, 1]], 0.0, None)
        ax_s.errorbar(e[:, 0], e[:, 1], yerr=yerr, fmt="o-",
                      label="evaluation (deterministic, 95% CI)")
    ax_s.axhline(0.95, color="grey", ls="--", lw=0.8)
    ax_s.set(xlabel="env steps", ylabel="success rate", ylim=(0, 1.02), title="success")
    ax_s.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)  # off the curves
    ax_r.plot(trained_steps, [float(r["train_return"]) for r in trained])
    ax_r.set(xlabel="env steps", ylabel="mean episode return", title="return")
    for ax in (ax_s, ax_r):  # 100k, not 100000: long runs' tick labels ran into each other
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path


def finetune(base_checkpoint: Path, out: Path, config: FinetuneConfig, progress: bool = True,
             backend: TwinBackend | None = None) -> FinetuneResult:
    """``backend``: where the twins run (default: subprocesses here; ``TwinBackend(kind="ray")``: Ray actors, here
    or on a cluster); the learner stays in this process either way."""
    out.mkdir(parents=True, exist_ok=True)
    resume_path = out / RESUME_FILE  # read before the base and the twins start: a refused file costs nothing
    resume = load_plain(resume_path, "fine-tuning resume state") if resume_path.exists() else None
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.torch_threads)
    ppo = config.ppo
    policy_base = load_frozen_base(base_checkpoint, config)  # with base_inputs: fed the robot's estimate
    with finetune_reward(config) as wrapper:  # a model endpoint, for KAGI, lives as long as the twins
        if config.state_estimation is not None:
            wrapper = partial(estimated_then, config.state_estimation, wrapper)
        cell, task = load_cell(config.cell), load_task(config.task)  # loaded once; the twins get the typed models
        envs = make_twins(ppo.n_envs, backend, cell=cell, task=task, image_size=policy_base.image_size,
                          wrapper=wrapper)
        try:  # the twins are subprocesses: closed on every exit, a refused config included
            return _run(envs, policy_base, base_checkpoint, out, config, progress, resume)
        finally:
            envs.close()


@dataclass
class _Learner:
    """The frozen base (chunked over the envs), the residual it corrects, and the PPO updater of the residual."""

    base: FrozenBase
    policy: ResidualPolicy
    updater: PPOUpdater
    keys: list[str]  # the residual's observation keys
    obs_dim: int
    action_dim: int


def _run(envs, policy_base, base_checkpoint: Path, out: Path, config: FinetuneConfig, progress: bool,
         resume: dict | None) -> FinetuneResult:
    ppo = config.ppo
    learner = _build_learner(envs, policy_base, config)
    ckpt_path, csv_path = out / RESUME_FILE, out / "finetune_log.csv"
    start_iteration, env_steps, wall_offset = _start(learner, config, resume, ckpt_path, csv_path)
    if start_iteration == 0:  # the curve starts at the base alone (the zero-initialised residual adds nothing)
        # or at the residual it was initialised from
        label = f"starting residual ({config.init_residual})" if config.init_residual else "base alone"
        evaluation = _evaluate(envs, learner, config, label)
        _append_row(csv_path, {**dict.fromkeys(CSV_FIELDS, ""), "iteration": 0, "env_steps": env_steps,
                               "wall_s": round(wall_offset, 1), **evaluation})
    collector = ResidualRolloutCollector(envs, learner.base, learner.policy, learner.keys,
                                         seed=config.seed + 7919 * start_iteration)
    started = time.monotonic() - wall_offset
    last_eval: float | None = None
    bar = tqdm(range(start_iteration, config.iterations), desc=f"finetune {config.task}", unit="it",
               disable=not progress, initial=start_iteration, total=config.iterations)
    try:
        for iteration in bar:
            buffer = RolloutBuffer.allocate(ppo.steps_per_iteration, ppo.n_envs, learner.obs_dim, learner.action_dim)
            stats, next_value = collector.collect(buffer)
            update = learner.updater.update(buffer, next_value)
            env_steps += ppo.steps_per_iteration * ppo.n_envs
            row = _iteration_row(iteration + 1, env_steps, time.monotonic() - started, stats, update)
            if (iteration + 1) % config.eval_every == 0 or iteration + 1 == config.iterations:
                row.update(_evaluate(envs, learner, config, f"iteration {iteration + 1}"))
                last_eval = row["eval_success"]
                collector = ResidualRolloutCollector(envs, learner.base, learner.policy, learner.keys,
                                                     seed=config.seed + 7919 * iteration)
            _append_row(csv_path, row)
            _save_resume_state(ckpt_path, learner, config, iteration + 1, env_steps, time.monotonic() - started)
            plot_curves(csv_path, out / "finetune_curves.png", f"residual PPO on {config.task}")
            bar.set_postfix(success=f"{stats.success_rate:.2f}", eval="-" if last_eval is None else f"{last_eval:.2f}")
    finally:
        bar.close()
    combined = save_combined(out / "base_plus_residual.pt", base_checkpoint, learner.policy, config,
                             learner.base.action_low, learner.base.action_high)
    return FinetuneResult(combined, config.iterations, env_steps, time.monotonic() - started, last_eval)


def _build_learner(envs, policy_base, config: FinetuneConfig) -> _Learner:
    """A zero-initialised residual over ``policy_base``, refused if the twins do not give what either reads."""
    policy_base.check_observation(envs.single_observation_space)
    base = FrozenBase(policy_base, config.ppo.n_envs)
    keys = list(config.residual.obs_keys)
    obs_dim, action_dim = _obs_dim(envs, keys), int(base.action_low.size)
    policy = ResidualPolicy(obs_dim, action_dim, config.residual)
    return _Learner(base, policy, PPOUpdater(policy, config.ppo), keys, obs_dim, action_dim)


def _start(learner: _Learner, config: FinetuneConfig, resume: dict | None, ckpt_path: Path,
           csv_path: Path) -> tuple[int, int, float]:
    """Resume, warm-start from ``init_residual`` or start afresh; returns (iterations done, env steps, wall s).

    A fresh run (warm-started or not) starts a new log; every run leaves one with its header.
    """
    start_iteration, env_steps, wall_offset = 0, 0, 0.0
    if resume is not None:
        learner.policy.load_state_dict(resume["residual"])
        learner.updater.load_state_dict(resume["ppo"])
        start_iteration, env_steps, wall_offset = resume["iteration"], resume["env_steps"], resume["wall_s"]
        log.info("resuming from %s at iteration %d (%d env steps)", ckpt_path, start_iteration, env_steps)
    else:
        if config.init_residual:  # its env steps and time count: the curve and the budget go on from there
            prior = load_trained_residual(Path(config.init_residual), learner.policy, config.residual)
            env_steps, wall_offset = prior.env_steps, prior.wall_s
        csv_path.unlink(missing_ok=True)
    if not csv_path.exists():
        with csv_path.open("w", newline="") as f:
            csv.DictWriter(f, CSV_FIELDS).writeheader()
    return start_iteration, env_steps, wall_offset


def _evaluate(envs, learner: _Learner, config: FinetuneConfig, label: str) -> dict[str, float]:
    """Evaluate the residual on the fixed evaluation scenes, log it under ``label``; the row's eval columns."""
    k, n, failures = evaluate_residual(envs, learner.base, learner.policy, learner.keys, config.eval_episodes,
                                       seed=EVAL_SEED)
    low, high = wilson_interval(k, n)
    log.info("%s: %d/%d evaluation successes; failures: %s", label, k, n, describe_failures(failures))
    return {"eval_success": k / n, "eval_ci_low": low, "eval_ci_high": high}


def _iteration_row(iteration: int, env_steps: int, wall_s: float, stats: EpisodeStats,
                   update: UpdateStats) -> dict[str, object]:
    """A log row of a training iteration (1-based), its eval columns empty."""
    return {"iteration": iteration, "env_steps": env_steps, "wall_s": round(wall_s, 1),
            "train_success": stats.success_rate, "train_return": float(np.mean(stats.returns or [np.nan])),
            "episodes": len(stats.successes), "eval_success": "", "eval_ci_low": "", "eval_ci_high": "",
            "approx_kl": update.approx_kl, "epochs_run": update.epochs_run, "value_loss": update.value_loss,
            "explained_variance": update.explained_variance}


def _append_row(csv_path: Path, row: dict[str, object]) -> None:
    with csv_path.open("a", newline="") as f:
        csv.DictWriter(f, CSV_FIELDS).writerow(row)


def _save_resume_state(path: Path, learner: _Learner, config: FinetuneConfig, iteration: int, env_steps: int,
                       wall_s: float) -> None:
    """``residual_last.pt`` (plain tensors, written atomically): a run with the same ``--out`` goes on from it."""
    save_plain({"residual": learner.policy.state_dict(), "ppo": learner.updater.state_dict(), "iteration": iteration,
                "env_steps": env_steps, "wall_s": wall_s, "config": config.model_dump(mode="json")}, path)
