"""`manip-stack train --processes 2`: two CPU processes (DDP through accelerate, gloo) train what one process trains
with the same global batch: same checkpoint format, weights equal up to floating-point summation order."""

import csv

import numpy as np
import pytest
import torch
import yaml

from robot_learning.cli.main import main
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.policies.dataset import WindowDataset, load_arrays
from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy, build_model, load_checkpoint
from robot_learning.policies.diffusion.configuration import PolicyTrainingConfig
from robot_learning.scale.ddp import ShardedRandomness
from robot_learning.sessions.train import train_policy

pytest.importorskip("accelerate", reason="the scale extra (accelerate) is not installed")

# Two processes sum each gradient in another order (gloo's all-reduce of two half-batch means vs one mean): the
# weights differ by float32 rounding amplified by Adam, measured at most 1.2e-7 after 8 steps at lr 1e-3. A run whose
# noise or data order differed is off by ~lr per step (checked below), far outside this. Except: the bias of the
# spatial softmax's keypoint convolution has a zero gradient (a softmax ignores a constant shift), so in both runs it
# moves only by rounding noise that Adam scales up to ~lr; those are left out of the weight comparison, and the two
# policies' action chunks are compared instead, which that shift cannot change.
ATOL = 1e-5


def _losses(run):
    with open(run / "train_log.csv", newline="") as f:
        return np.array([float(r["loss"]) for r in csv.DictReader(f)])


def _max_weight_gap(a, b, skip=()) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point()
               and k not in skip)


def _shift_invariant_biases(ckpt) -> set[str]:
    """Keypoint-convolution biases of every spatial softmax: their true gradient is zero."""
    from robomimic.models.base_nets import SpatialSoftmax

    model = build_model(PolicyTrainingConfig.model_validate(ckpt["config"]).policy, ckpt["obs_spec"],
                        ckpt["action_dim"])
    return {f"{name}.nets.bias" for name, m in model.named_modules() if isinstance(m, SpatialSoftmax)}


def _chunks(policy_path, store_path):
    """Deterministic (zero-noise DDIM) action chunks of a policy for the first 16 training windows."""
    policy = DiffusionPolicy.from_checkpoint(policy_path, device="cpu", zero_noise=True)
    with EpisodeStore.open(store_path) as store:
        arrays, ends = load_arrays(store, [*policy.obs_keys, "action"])
    windows = WindowDataset(arrays, ends, policy.obs_keys, "action", policy.n_obs_steps, 8, 4, [])
    batch = windows.batch(np.arange(16))
    return policy.predict_chunks({k: batch[k] for k in policy.obs_keys})


def test_two_processes_train_the_weights_one_process_trains(tiny_store, make_config, tmp_path, capsys):
    cfg = make_config(num_epochs=2, batch_size=16)  # 4 global batches of 16 per epoch: 8 steps, 8 windows each
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    one = train_policy(tiny_store, cfg, tmp_path / "one", device="cpu", progress=False)

    assert main(["train", "--dataset", str(tiny_store), "--config", str(config), "--out", str(tmp_path / "two"),
                 "--device", "cpu", "--no-progress", "--processes", "2"]) == 0

    two = tmp_path / "two"
    for name in ("config.yaml", "train_log.csv", "loss.png", "policy.pt", "checkpoints/last.pt"):
        assert (two / name).is_file(), name
    a, b = load_checkpoint(one.policy_path), load_checkpoint(two / "policy.pt")
    assert a.keys() == b.keys() and a["config"] == b["config"]  # the single-process format, the same config
    assert a["model"].keys() == b["model"].keys()
    raw_a = load_checkpoint(one.out / "checkpoints" / "last.pt")["training"]
    raw_b = load_checkpoint(two / "checkpoints" / "last.pt")["training"]
    assert raw_b["global_step"] == raw_a["global_step"] == one.steps
    skip = _shift_invariant_biases(a)
    assert skip and skip < a["model"].keys()
    assert _max_weight_gap(raw_a["model"], raw_b["model"], skip) < ATOL
    assert _max_weight_gap(a["model"], b["model"], skip) < ATOL
    np.testing.assert_allclose(_chunks(two / "policy.pt", tiny_store), _chunks(one.policy_path, tiny_store), atol=1e-4)
    np.testing.assert_allclose(_losses(two), _losses(one.out), rtol=1e-4)  # rank 0 logs the global batch's loss

    other_noise = train_policy(tiny_store, make_config(num_epochs=2, batch_size=16, seed=1), tmp_path / "seed1",
                               device="cpu", progress=False)
    gap = _max_weight_gap(load_checkpoint(other_noise.policy_path)["model"], a["model"], skip)
    assert gap > 100 * ATOL, f"another seed moved the weights by only {gap:.2e}: the tolerance would not see it"


def test_a_batch_that_does_not_split_over_the_processes_is_refused(tiny_store, make_config, tmp_path, capsys):
    config = tmp_path / "odd.yaml"
    config.write_text(yaml.safe_dump(make_config(num_epochs=1, batch_size=15).model_dump(mode="json")))
    assert main(["train", "--dataset", str(tiny_store), "--config", str(config), "--out", str(tmp_path / "run"),
                 "--device", "cpu", "--no-progress", "--processes", "2"]) != 0
    assert not (tmp_path / "run" / "policy.pt").exists()


def test_each_process_draws_its_block_of_the_global_batchs_noise():
    torch.manual_seed(3)
    whole = (torch.rand(8, 2), torch.randn(8, 3, 2), torch.randint(0, 100, (8,)))
    blocks = []
    for rank in range(2):
        torch.manual_seed(3)
        with ShardedRandomness(rank, 2, local_batch=4):
            blocks.append((torch.rand(4, 2), torch.randn_like(torch.zeros(4, 3, 2)), torch.randint(0, 100, (4,))))
    for i, full in enumerate(whole):
        assert torch.equal(torch.cat([blocks[0][i], blocks[1][i]]), full)
    with ShardedRandomness(0, 2, local_batch=4), pytest.raises(RuntimeError, match="cannot be split"):
        torch.nn.functional.dropout(torch.ones(4, 3), 0.5)
