"""Training: the loss falls on a tiny overfit set, a resumed run ends where an uninterrupted one does, a run
directory refuses another config, and every promised artefact is written."""

import csv

import numpy as np
import pytest
import torch

from robot_learning.policies.diffusion.checkpoint import load_checkpoint
from robot_learning.sessions.train import train_policy


def _losses(run_dir):
    with open(run_dir / "train_log.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_training_loss_falls_on_a_tiny_overfit_set(tiny_store, make_config, tmp_path):
    # Predicting the clean chunk ("sample") shows learning within ~100 steps; the noise-predicting default
    # needs a few hundred steps to do the same, too slow for a unit test.
    cfg = make_config(num_epochs=50, max_episodes=1, batch_size=8, lr_warmup_steps=0, use_ema=False,
                      learning_rate=3e-3, checkpoint_every_epochs=50)
    cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"prediction_type": "sample"})})
    train_policy(tiny_store, cfg, tmp_path / "run", device="cpu", progress=False)
    losses = _losses(tmp_path / "run")
    assert len(losses) >= 80
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert last < 0.5 * first, f"loss went from {first:.3f} to {last:.3f}"


def test_a_resumed_run_ends_with_exactly_the_weights_of_an_uninterrupted_one(tiny_store, make_config, tmp_path):
    cfg = make_config(num_epochs=3)
    straight = train_policy(tiny_store, cfg, tmp_path / "straight", device="cpu", progress=False)
    killed = train_policy(tiny_store, cfg, tmp_path / "resumed", device="cpu", progress=False, stop_after_epoch=1)
    assert killed.epochs == 1 and not (tmp_path / "resumed" / "policy.pt").exists()
    resumed = train_policy(tiny_store, cfg, tmp_path / "resumed", device="cpu", progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs == 3 and resumed.steps == straight.steps
    a, b = load_checkpoint(straight.policy_path), load_checkpoint(resumed.policy_path)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert _losses(tmp_path / "straight") == _losses(tmp_path / "resumed")


def test_a_run_directory_refuses_to_resume_with_another_config(tiny_store, make_config, tmp_path):
    train_policy(tiny_store, make_config(num_epochs=1), tmp_path / "run", device="cpu", progress=False)
    with pytest.raises(ValueError, match="holds a run with another config"):
        train_policy(tiny_store, make_config(num_epochs=1, learning_rate=5e-4), tmp_path / "run", device="cpu",
                     progress=False)


def test_a_run_resumes_when_only_how_the_policy_samples_changed(tiny_store, make_config, tmp_path):
    cfg = make_config(num_epochs=2)
    train_policy(tiny_store, cfg, tmp_path / "run", device="cpu", progress=False, stop_after_epoch=1)
    sampler = cfg.policy.model_copy(update={"num_inference_steps": 16, "timestep_spacing": "leading"})
    resumed = train_policy(tiny_store, cfg.model_copy(update={"policy": sampler}), tmp_path / "run", device="cpu",
                           progress=False)
    assert resumed.resumed_from_epoch == 1
    saved = load_checkpoint(resumed.policy_path)["config"]["policy"]
    assert (saved["num_inference_steps"], saved["timestep_spacing"]) == (16, "leading")


def test_a_run_writes_config_log_plot_and_an_ema_policy(tiny_run):
    out = tiny_run.out
    for name in ("config.yaml", "train_log.csv", "loss.png", "policy.pt", "checkpoints/last.pt", "train_summary.json"):
        assert (out / name).is_file(), name
    policy, last = load_checkpoint(out / "policy.pt"), load_checkpoint(out / "checkpoints" / "last.pt")
    assert "training" not in policy and last["training"]["epoch"] == 2
    raw = last["training"]["model"]
    ema_differs = [k for k, v in policy["model"].items() if v.is_floating_point() and not torch.equal(v, raw[k])]
    assert ema_differs, "policy.pt must hold the EMA weights, not the raw ones"
    assert policy["config"]["policy"]["camera_keys"] == ["cam_front_rgb", "cam_side_rgb", "cam_wrist_rgb"]


def test_cuda_is_refused_clearly_when_there_is_none(tiny_store, make_config, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA device"):
        train_policy(tiny_store, make_config(), tmp_path / "run", device="cuda", progress=False)
