"""The main job on the embedded default (the twin cell): what `make demo` runs.

Stages, each writing into ``out``: expert demonstrations (zarr), a summary, a video and a contact sheet
of one episode; then a diffusion policy trained on them (``policy/``: loss curve, log, checkpoints) and
evaluated in the twin (``eval/``: success rate with a 95% interval, a summary plot, videos of successes
and failures). Sized for a 2-core CPU: with 100 demonstrations the whole job took 14.5 min on a shared
2-core machine (collect 1.4, train 11.3, evaluate 1.7 min) and the policy lifted the cube in 48/50 new scenes.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from hardware_configs.loader import load_cell, load_task
from hardware_configs.schema import CellConfig, TaskConfig
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.video import render_episode_video, write_contact_sheet
from robot_learning.policies.diffusion.configuration import CONFIG_DIR
from robot_learning.sessions.collect import collect_expert_episodes

# Imported here, not when the stage starts: diffusers pulls in triton, whose LLVM segfaults if it is loaded
# after MuJoCo's EGL renderer (Mesa's own LLVM) is up in the same process; loaded first, both work.
from robot_learning.sessions.evaluate import evaluate_policy, plot_eval_summary
from robot_learning.sessions.train import train_policy

log = logging.getLogger(__name__)


def run_demo(out: Path, cell: CellConfig | str = "franka_3cam", task: TaskConfig | str = "lift", n_episodes: int = 20,
             seed: int = 0,
             train_config: str | None = None, eval_episodes: int = 50, eval_envs: int = 2, device: str = "auto",
             policy: bool = True) -> None:
    """Collect, summarise, then (``policy``) train on the demonstrations and evaluate in the twin.

    ``train_config``: a name in ``configs/policy/`` or a YAML path; default ``<task>_cpu`` when it exists.
    """
    cell, task_config = load_cell(cell), load_task(task)  # a bad file fails here, before anything runs
    task = task_config.name
    out.mkdir(parents=True, exist_ok=True)
    stages = 5 if policy else 2
    timings: dict[str, float] = {}
    dataset = out / f"{task}_demos.zarr"
    for previous in (dataset, out / "policy", out / "eval"):  # a demo always starts from scratch
        if previous.exists():
            log.info("removing the previous demo output %s", previous)
            shutil.rmtree(previous)
    start = time.monotonic()
    log.info("stage 1/%d: collecting %d expert episodes of %s in the twin of %s", stages, n_episodes, task, cell.name)
    report = collect_expert_episodes(dataset, cell=cell, task=task_config, n_episodes=n_episodes, seed=seed)
    log.info("%s", report)
    timings["collect_s"] = time.monotonic() - start

    log.info("stage 2/%d: summary and video", stages)
    with EpisodeStore.open(dataset) as store:
        summary = store.summary()
        (out / "dataset_summary.txt").write_text(summary + "\n")
        video = render_episode_video(store, 0, out / "episode_0000.mp4", fps=10) or out / "episode_0000.mp4"
        sheet = write_contact_sheet(store, 0, out / "episode_0000.png")
    print(summary)
    print(f"\n{report}\nvideo: {video}\ncontact sheet: {sheet}")
    if not policy:
        return

    config = train_config or (f"{task}_cpu" if (CONFIG_DIR / f"{task}_cpu.yaml").is_file() else "lift_cpu")
    log.info("stage 3/%d: training a diffusion policy (%s) on %d episodes", stages, config, n_episodes)
    start = time.monotonic()
    trained = train_policy(dataset, config, out / "policy", device=device)
    timings["train_s"] = time.monotonic() - start
    print(f"\n{trained}\nloss curve: {out / 'policy' / 'loss.png'}")

    log.info("stage 4/%d: evaluating it on %d new scenes of %s", stages, eval_episodes, task)
    start = time.monotonic()
    result = evaluate_policy(trained.policy_path, task=task_config, cell=cell, n_episodes=eval_episodes,
                             n_envs=eval_envs, out=out / "eval", device=device)
    timings["eval_s"] = time.monotonic() - start

    log.info("stage 5/%d: plots", stages)
    plot = plot_eval_summary(result, out / "eval" / "eval_summary.png")
    summary_json = {"task": task, "cell": cell.name, "demonstrations": n_episodes, "train_config": config,
                    "success_rate": result.success_rate, "successes": result.successes,
                    "episodes": result.n_episodes, "ci95": result.ci95, "timings_s": timings,
                    "videos": result.videos}
    (out / "demo_report.json").write_text(json.dumps(summary_json, indent=2))
    print(f"\n{result}\nplot: {plot}\nvideos: {', '.join(result.videos)}\n"
          f"stage times: " + ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in timings.items()))
