"""Train the diffusion policy on an episode store: deterministic given a seed, resumable, logged.

``out/`` receives ``config.yaml`` (with the input keys resolved from the dataset), ``train_log.csv``
(one row per optimiser step), ``loss.png``, ``checkpoints/last.pt`` (everything needed to resume,
written atomically after every ``checkpoint_every_epochs``) and, at the end, ``policy.pt`` (EMA weights
for inference). Running again with the same ``out`` resumes from the last saved epoch; a kill loses at
most the epoch in progress. Each epoch's shuffling and torch RNG derive from (seed, epoch), so a resumed
run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from robot_learning.data.episode_store import EpisodeStore
from robot_learning.policies.dataset import WindowDataset, load_arrays
from robot_learning.policies.diffusion.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    atomic_save,
    build_model,
    load_checkpoint,
    resolve_device,
)
from robot_learning.policies.diffusion.configuration import (
    PolicyTrainingConfig,
    load_training_config,
    resolve_input_keys,
)
from robot_learning.policies.diffusion.processor import MinMaxNormalizer, ObservationProcessor

if TYPE_CHECKING:
    from robot_learning.scale.ddp import Partition

log = logging.getLogger(__name__)
LOG_FIELDS = ("epoch", "step", "loss", "lr", "samples_per_s", "wall_s")


@dataclass
class TrainResult:
    out: Path
    policy_path: Path
    epochs: int
    steps: int
    wall_s: float  # training time over all sessions of this run (resumes included), data loading excluded
    final_epoch_loss: float
    samples_per_s: float
    resumed_from_epoch: int

    def __str__(self) -> str:
        return (f"trained {self.epochs} epochs ({self.steps} steps) in {self.wall_s / 60:.1f} min, "
                f"{self.samples_per_s:.0f} samples/s, last epoch loss {self.final_epoch_loss:.4f}"
                + (f" (resumed after epoch {self.resumed_from_epoch})" if self.resumed_from_epoch else "")
                + f"; policy: {self.policy_path}")


def dataset_keys(store: EpisodeStore) -> tuple[list[str], list[str]]:
    """(image keys, 1-D per-step keys) of a store: the candidates for camera and low-dim inputs."""
    images = [k for k, s in store.specs.items() if s.is_image]
    low_dim = [k for k, s in store.specs.items() if not s.is_image and len(s.shape) == 1]
    return images, low_dim


@dataclass
class TrainingData:
    """What training reads from the store: arrays in memory, episode ends, and the facts a checkpoint records."""

    arrays: dict[str, np.ndarray]
    ends: np.ndarray
    obs_spec: dict[str, dict[str, Any]]  # per observation key: shape, dtype, unit
    info: dict[str, Any]  # path, fingerprints, episodes, cell, task, image size


@dataclass
class Optimisation:
    """The model and everything that updates it; one ``step`` per batch, saved and restored whole."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_schedule: torch.optim.lr_scheduler.LRScheduler
    ema: EMAModel | None
    grad_clip_norm: float | None

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip_norm)
        self.optimizer.step()
        self.lr_schedule.step()
        if self.ema is not None:
            self.ema.step(self.model.parameters())

    def state(self, epoch: int, global_step: int, elapsed_s: float) -> dict[str, Any]:
        """The ``training`` entry of ``last.pt``: enough to go on after ``epoch`` as if never stopped."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_schedule.state_dict(), "ema": self.ema.state_dict() if self.ema else None,
                "epoch": epoch, "global_step": global_step, "elapsed_s": elapsed_s}

    def restore(self, state: dict[str, Any]) -> tuple[int, int, float]:
        """Load a :meth:`state`; returns (epochs done, optimiser steps done, training seconds so far)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        return int(state["epoch"]), int(state["global_step"]), float(state.get("elapsed_s", 0.0))

    def inference_weights(self) -> dict[str, torch.Tensor]:
        return _inference_weights(self.model, self.ema)


def train_policy(dataset: str | Path, config: PolicyTrainingConfig | str | Path, out: str | Path,
                 device: str = "auto", progress: bool = True, stop_after_epoch: int | None = None,
                 partition: Partition | None = None) -> TrainResult:
    """Train (or resume) into ``out``; ``stop_after_epoch`` ends early as a kill would (for tests).

    ``partition``: this process's place in a group of training processes (:mod:`robot_learning.scale.ddp`): the
    config's batch stays the global batch, each process trains on its block, only rank 0 writes ``out``."""
    from robot_learning.scale.ddp import Partition

    part = partition or Partition()
    cfg = config if isinstance(config, PolicyTrainingConfig) else load_training_config(config)
    out, dev = Path(out), part.device or resolve_device(device)
    progress = progress and part.is_main
    tc = cfg.train
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    cfg, data = load_training_data(dataset, cfg)
    pc = cfg.policy
    resume = _resume_state(out, cfg, data.info)  # refused before anything is built
    normalizer = MinMaxNormalizer.fit({k: data.arrays[k] for k in [*pc.low_dim_keys, pc.action_key]})
    windows = WindowDataset(data.arrays, data.ends, [*pc.camera_keys, *pc.low_dim_keys], pc.action_key,
                            pc.n_obs_steps, pc.horizon, pc.n_action_steps, pc.delta_action_dims)
    processor = ObservationProcessor(pc.camera_keys, pc.low_dim_keys, pc.action_key, normalizer, dev)
    action_dim = int(data.arrays[pc.action_key].shape[-1])
    steps_per_epoch = len(windows.epoch_batches(tc.batch_size, np.random.default_rng(0)))
    opt = build_optimisation(cfg, data.obs_spec, action_dim, steps_per_epoch, dev)
    part.check(tc.batch_size, opt.model)
    loss_fn = part.loss_function(opt.model)
    start_epoch, step, elapsed_before_s = 0, 0, 0.0
    if resume is not None:
        start_epoch, step, elapsed_before_s = opt.restore(resume["training"])
        log.info("resuming %s after epoch %d (step %d)", out, start_epoch, step)
    log_path = _prepare_run_dir(out, cfg, step) if part.is_main else Path(os.devnull)
    meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": cfg.model_dump(mode="json"),
            "normalizer": normalizer.state_dict(), "dataset": data.info, "obs_spec": data.obs_spec,
            "action_dim": action_dim}
    log.info("training on %s: %d windows, %d steps/epoch, %d epochs, device %s, %.2f M parameters%s",
             dataset, len(windows), steps_per_epoch, tc.num_epochs, dev,
             sum(p.numel() for p in opt.model.parameters()) / 1e6,
             f", process {part.rank} of {part.world_size}" if part.world_size > 1 else "")
    start_wall = time.monotonic() - elapsed_before_s  # wall_s counts the run's training time across resumes
    session_start, epoch_loss, samples, last_epoch = time.monotonic(), float("nan"), 0, start_epoch
    end_epoch = tc.num_epochs if stop_after_epoch is None else min(tc.num_epochs, stop_after_epoch)
    with open(log_path, "a", newline="") as log_file:
        writer = csv.DictWriter(log_file, LOG_FIELDS)
        if log_file.tell() == 0:
            writer.writeheader()
        bar = tqdm(range(start_epoch, end_epoch), desc="train", unit="epoch", disable=not progress,
                   initial=start_epoch, total=tc.num_epochs)
        for epoch in bar:
            losses, epoch_samples = _train_epoch(opt, windows, processor, cfg, epoch, step, writer, start_wall,
                                                 progress, loss_fn, part)
            step, samples = step + len(losses), samples + epoch_samples
            epoch_loss, last_epoch = float(np.mean(losses)), epoch + 1
            bar.set_postfix(loss=f"{epoch_loss:.4f}")
            if part.is_main and (last_epoch % tc.checkpoint_every_epochs == 0 or last_epoch == end_epoch):
                log_file.flush()
                _save_last(out, meta, opt, last_epoch, step, time.monotonic() - start_wall)
        bar.close()

    wall_s, session_s = time.monotonic() - start_wall, time.monotonic() - session_start
    policy_path = out / "policy.pt"
    if last_epoch == tc.num_epochs and part.is_main:
        atomic_save({**meta, "model": opt.inference_weights()}, policy_path)
    result = TrainResult(out, policy_path, last_epoch, step, wall_s, epoch_loss, samples / max(session_s, 1e-9),
                         start_epoch)
    if not part.is_main:
        return result
    (out / "train_summary.json").write_text(json.dumps({k: str(v) if isinstance(v, Path) else v
                                                        for k, v in asdict(result).items()}, indent=2))
    return result


def load_training_data(dataset: str | Path, cfg: PolicyTrainingConfig,
                       ) -> tuple[PolicyTrainingConfig, TrainingData]:
    """Read the inputs ``cfg`` names (camera and low-dim keys resolved against the store) and the action."""
    tc = cfg.train
    with EpisodeStore.open(dataset) as store:
        images, low_dim = dataset_keys(store)
        cfg = cfg.model_copy(update={"policy": resolve_input_keys(cfg.policy, images, low_dim)})
        pc = cfg.policy
        obs_keys = [*pc.camera_keys, *pc.low_dim_keys]
        arrays, ends = load_arrays(store, [*obs_keys, pc.action_key], tc.max_episodes)
        obs_spec = {k: {"shape": list(store.specs[k].shape), "dtype": store.specs[k].dtype.name,
                        "unit": store.specs[k].unit} for k in obs_keys}
        info = {"path": str(store.path), "fingerprint": store.fingerprint,
                "schema_fingerprint": store.schema_fingerprint, "n_episodes": len(ends),
                "cell": store.attrs.get("cell"), "task": store.attrs.get("task"),
                "image_size": store.attrs.get("image_size")}
    return cfg, TrainingData(arrays, ends, obs_spec, info)


def build_optimisation(cfg: PolicyTrainingConfig, obs_spec: dict[str, dict[str, Any]], action_dim: int,
                       steps_per_epoch: int, device: torch.device) -> Optimisation:
    """A freshly initialised model (weights a function of the seed), AdamW, the LR schedule and the EMA."""
    tc = cfg.train
    torch.manual_seed(tc.seed)
    model = build_model(cfg.policy, obs_spec, action_dim).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate, betas=tc.adam_betas,
                                  weight_decay=tc.weight_decay)
    lr_schedule = get_scheduler(tc.lr_schedule, optimizer, num_warmup_steps=tc.lr_warmup_steps,
                                num_training_steps=tc.num_epochs * steps_per_epoch)
    ema = EMAModel(model.parameters(), decay=tc.ema_max_decay, use_ema_warmup=True, power=tc.ema_power) \
        if tc.use_ema else None
    return Optimisation(model, optimizer, lr_schedule, ema, tc.grad_clip_norm)


def _prepare_run_dir(out: Path, cfg: PolicyTrainingConfig, step: int) -> Path:
    """``checkpoints/``, the resolved ``config.yaml`` and a log holding no row past ``step``; returns the log."""
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log_path = out / "train_log.csv"
    _truncate_log(log_path, step)
    return log_path


def _train_epoch(opt: Optimisation, windows: WindowDataset, processor: ObservationProcessor,
                 cfg: PolicyTrainingConfig, epoch: int, step: int, writer: csv.DictWriter, start_wall: float,
                 progress: bool, loss_fn, part: Partition) -> tuple[list[float], int]:
    """One pass over the windows (0-based ``epoch``, ``step`` optimiser steps before it), a log row per batch;
    returns the batch losses (of the global batch) and the number of samples seen (by the whole group)."""
    tc, action_key = cfg.train, cfg.policy.action_key
    rng = np.random.default_rng([tc.seed, epoch])
    torch.manual_seed(tc.seed * 1_000_003 + epoch)  # crops, noise, timesteps: a function of (seed, epoch)
    opt.model.train()
    losses, samples = [], 0
    for indices in tqdm(windows.epoch_batches(tc.batch_size, rng), desc=f"epoch {epoch + 1}", leave=False,
                        disable=not progress):
        t0 = time.monotonic()
        batch = windows.batch(part.shard(indices))
        loss = loss_fn(processor.observations(batch), processor.actions(batch[action_key]))
        opt.step(loss)
        samples += len(indices)
        losses.append(part.mean(loss.item()))
        writer.writerow({"epoch": epoch + 1, "step": step + len(losses), "loss": f"{losses[-1]:.6f}",
                         "lr": f"{opt.lr_schedule.get_last_lr()[0]:.3e}",
                         "samples_per_s": f"{len(indices) / max(time.monotonic() - t0, 1e-9):.1f}",
                         "wall_s": f"{time.monotonic() - start_wall:.2f}"})
    return losses, samples


def _save_last(out: Path, meta: dict[str, Any], opt: Optimisation, epoch: int, step: int, elapsed_s: float) -> None:
    """``checkpoints/last.pt`` (atomic: a kill leaves the previous one) and the loss plot so far."""
    atomic_save({**meta, "model": opt.inference_weights(), "training": opt.state(epoch, step, elapsed_s)},
                out / "checkpoints" / "last.pt")
    plot_loss_curve(out / "train_log.csv", out / "loss.png")


def _inference_weights(model: torch.nn.Module, ema: EMAModel | None) -> dict[str, torch.Tensor]:
    """State dict with the EMA parameters (what Diffusion Policy evaluates), buffers from the model."""
    if ema is None:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    shadow = copy.deepcopy(model)
    ema.copy_to(shadow.parameters())
    return shadow.state_dict()


# How the trained policy samples (DDIM steps and where they sit): they change no training step, so a run started
# before a sampler default changed (docs/denoising_steps.md) still resumes; the new values are what it saves.
SAMPLING_ONLY_FIELDS = ("num_inference_steps", "timestep_spacing")


def _what_training_reads(config: dict[str, Any]) -> dict[str, Any]:
    policy = {k: v for k, v in config.get("policy", {}).items() if k not in SAMPLING_ONLY_FIELDS}
    return {**config, "policy": policy}


def _resume_state(out: Path, cfg: PolicyTrainingConfig, dataset_info: dict[str, Any]) -> dict[str, Any] | None:
    """The last checkpoint in ``out`` if it belongs to the same config and dataset; refuse a mix-up."""
    last = out / "checkpoints" / "last.pt"
    if not last.exists():
        return None
    ckpt = load_checkpoint(last)
    if _what_training_reads(ckpt["config"]) != _what_training_reads(cfg.model_dump(mode="json")):
        raise ValueError(f"{out} holds a run with another config (see {out / 'config.yaml'}); "
                         f"use a new --out or delete it to start over")
    if ckpt["dataset"]["fingerprint"] != dataset_info["fingerprint"]:
        raise ValueError(f"{out} was trained on dataset {ckpt['dataset']['fingerprint'][:12]}, not "
                         f"{dataset_info['fingerprint'][:12]} ({dataset_info['path']}); use a new --out")
    if "training" not in ckpt:
        raise ValueError(f"{last} has no training state to resume from")
    return ckpt


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows past the resumed step (written by an epoch that was killed before its checkpoint)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def plot_loss_curve(log_path: Path, png: Path) -> Path:
    """Per-step loss (faint), its moving average and per-epoch means, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return png
    step = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    epoch = np.array([int(r["epoch"]) for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(step, loss, color="tab:blue", alpha=0.25, lw=0.8, label="step loss")
    window = max(1, min(50, len(loss) // 10))
    if window > 1:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(step[window - 1 :], smooth, color="tab:blue", lw=1.5, label=f"moving average ({window} steps)")
    ends = [np.flatnonzero(epoch == e)[-1] for e in np.unique(epoch)]
    means = [loss[epoch == e].mean() for e in np.unique(epoch)]
    ax.plot(step[ends], means, "o-", color="tab:orange", ms=3, lw=1, label="epoch mean")
    ax.set(xlabel="optimiser step", ylabel="diffusion loss (MSE, normalised)", yscale="log",
           title=f"training loss: {len(np.unique(epoch))} epochs, {step[-1]} steps")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return png
