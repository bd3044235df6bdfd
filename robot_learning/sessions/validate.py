"""Sim-to-real validation: replay recorded robot episodes in the twin and report where the two disagree.

Input is an episode store (collected on the robot, or imported from a ROS 2 bag by ``manip-stack import-bag``,
which writes the same layout). Each episode's actions are replayed in the twin from the recorded initial
state; tracking, lag, object, success and per-camera image metrics are compared against thresholds derived
from clean-vs-clean variation (:mod:`robot_learning.validation.diagnosis`); the result is a Markdown report
with PNG plots that names what differs: command latency, arm tracking, object dynamics, or a camera.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from robot_learning.data.episode_store import EpisodeStore
from robot_learning.validation.diagnosis import Thresholds, calibrate, diagnose, latency_candidate
from robot_learning.validation.metrics import EpisodeMetrics, episode_metrics
from robot_learning.validation.report import EpisodeValidation, plot_episode, plot_summary, write_markdown
from robot_learning.validation.twin_replay import ReplayResult, replay_env_for, replay_episode

log = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    store: str
    thresholds: Thresholds
    episodes: list[EpisodeValidation]
    markdown: Path | None
    wall_s: float

    def __str__(self) -> str:
        lines = [f"validated {len(self.episodes)} episode(s) of {self.store} in {self.wall_s:.1f} s "
                 f"(thresholds: {self.thresholds.source})"]
        for v in self.episodes:
            m = v.metrics
            lines.append(f"  episode {v.episode}: lag {m.lag_s * 1e3:.0f} ms, TCP RMSE {m.tcp_rmse_m * 1e3:.2f} mm, "
                         f"success robot/twin {m.recorded_success}/{m.simulated_success}: "
                         f"{', '.join(v.kinds) or 'clean'}")
            lines += [f"    - {f.message}" for f in v.findings]
        if self.markdown is not None:
            lines.append(f"report: {self.markdown}")
        return "\n".join(lines)


def _n_objects(store: EpisodeStore) -> int:
    from hardware_configs import load_task

    return len(load_task(store.attrs["task"]).objects)


def measure(store: EpisodeStore, episodes: Sequence[int] | None = None,
            thresholds: Thresholds | None = None) -> list[tuple[EpisodeMetrics, ReplayResult]]:
    """Replay and measure episodes; with ``thresholds``, a significant lag also gets its what-if replay."""
    env = replay_env_for(store)
    n_objects = _n_objects(store)
    out = []
    try:
        for i in range(store.n_episodes) if episodes is None else episodes:
            result = replay_episode(store, i, env)
            m = episode_metrics(result, n_objects)
            delay = latency_candidate(m, thresholds, result.policy_hz) if thresholds is not None else 0
            if delay:
                m.delay_steps = delay
                m.delayed = episode_metrics(replay_episode(store, i, env, delay_steps=delay), n_objects)
            out.append((m, result))
    finally:
        env.close()
    return out


def calibrate_from_store(reference: str | Path, margin: float = 3.0) -> Thresholds:
    """Thresholds from episodes known to be clean (e.g. recorded right after a verified calibration)."""
    with EpisodeStore.open(reference) as store:
        clean = [m for m, _ in measure(store)]
    return calibrate(clean, margin, source=f"clean reference {reference}")


def calibrate_from_twin(cell: str, task: str, image_size: tuple[int, int], n_episodes: int = 3, seed: int = 10_000,
                        margin: float = 3.0) -> Thresholds:
    """Thresholds from the twin against itself, with the sensor-noise model of a real recording."""
    from robot_learning.validation.perturbed_twin import Perturbation, record_perturbed_episodes

    with tempfile.TemporaryDirectory() as tmp:
        path = record_perturbed_episodes(Path(tmp) / "clean.zarr", Perturbation(), n_episodes, seed=seed, cell=cell,
                                         task=task, image_size=image_size)
        with EpisodeStore.open(path) as store:
            clean = [m for m, _ in measure(store)]
    return calibrate(clean, margin, source=f"twin self-check, {n_episodes} clean episodes with sensor noise")


def run_validation(store_path: str | Path, out_dir: str | Path | None = None, thresholds: Thresholds | None = None,
                   reference: str | Path | None = None, episodes: Sequence[int] | None = None,
                   calibration_episodes: int = 3, plots: bool = True) -> ValidationReport:
    """Validate the episodes of ``store_path``; writes ``report.md``, PNGs and ``thresholds.json`` to ``out_dir``.

    Thresholds: given, else calibrated on the clean ``reference`` store, else on the twin's own clean
    recordings (``calibration_episodes`` of them, which takes about as long as validating as many episodes).
    """
    start = time.monotonic()
    with EpisodeStore.open(store_path) as store:
        if thresholds is None:
            if reference is not None:
                thresholds = calibrate_from_store(reference)
            else:
                image_keys = [k for k, s in store.specs.items() if s.is_image]
                h, w = store.specs[image_keys[0]].shape[:2] if image_keys else (96, 96)
                thresholds = calibrate_from_twin(store.attrs["cell"], store.attrs["task"], (w, h),
                                                 calibration_episodes)
        log.debug("thresholds: %s", thresholds)
        out = Path(out_dir) if out_dir is not None else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            thresholds.save(out / "thresholds.json")
        validations = []
        for m, result in measure(store, episodes, thresholds):
            v = EpisodeValidation(m.episode, m, diagnose(m, thresholds))
            if out is not None and plots:
                v.plot_png = plot_episode(result, v, thresholds, out / f"episode_{m.episode:04d}.png")
            validations.append(v)
    markdown = None
    if out is not None:
        summary = plot_summary(validations, thresholds, out / "summary.png") if plots and validations else None
        markdown = write_markdown(str(store_path), validations, thresholds, summary, out / "report.md")
    return ValidationReport(str(store_path), thresholds, validations, markdown, time.monotonic() - start)
