"""The main job on the embedded default (the twin cell): what `make demo` runs.

Stages, each writing into ``out``: expert demonstrations (zarr), a summary, a video and a contact sheet
of one episode. Later stages (train, evaluate, fine-tune) are added here as the stack grows.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.video import render_episode_video, write_contact_sheet
from robot_learning.sessions.collect import collect_expert_episodes

log = logging.getLogger(__name__)


def run_demo(out: Path, cell: str = "franka_3cam", task: str = "lift", n_episodes: int = 20, seed: int = 0) -> None:
    out.mkdir(parents=True, exist_ok=True)
    dataset = out / f"{task}_demos.zarr"
    if dataset.exists():
        log.info("removing the previous demo dataset %s", dataset)
        shutil.rmtree(dataset)
    log.info("stage 1/2: collecting %d expert episodes of %s in the twin of %s", n_episodes, task, cell)
    report = collect_expert_episodes(dataset, cell=cell, task=task, n_episodes=n_episodes, seed=seed)
    log.info("%s", report)

    log.info("stage 2/2: summary and video")
    with EpisodeStore.open(dataset) as store:
        summary = store.summary()
        (out / "dataset_summary.txt").write_text(summary + "\n")
        video = render_episode_video(store, 0, out / "episode_0000.mp4", fps=10) or out / "episode_0000.mp4"
        sheet = write_contact_sheet(store, 0, out / "episode_0000.png")
    print(summary)
    print(f"\n{report}\nvideo: {video}\ncontact sheet: {sheet}")
