"""Training samples per second of the diffusion policy, data loading included (window gather, transfer,
forward, backward, optimiser and EMA steps), on an episode store in memory.

Run: ``python benchmarks/train_throughput.py --dataset outputs/lift.zarr`` (collect one first with
``manip-stack collect --task lift --episodes 20 --expert --out outputs/lift.zarr``). Without ``--dataset``
it uses random 96x96 images of the same shapes, which measures the same loop minus the zarr read.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from diffusers.training_utils import EMAModel

from robot_learning.policies.dataset import WindowDataset, load_arrays
from robot_learning.policies.diffusion.checkpoint import build_model, resolve_device
from robot_learning.policies.diffusion.configuration import load_training_config, resolve_input_keys
from robot_learning.policies.diffusion.processor import MinMaxNormalizer, ObservationProcessor

CAMERAS = ["cam_front_rgb", "cam_side_rgb", "cam_wrist_rgb"]
LOW_DIM = {"tcp_position": 3, "tcp_rot6d": 6, "gripper_width": 1}


def synthetic(n_steps: int, image_px: int) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, dict]]:
    rng = np.random.default_rng(0)
    arrays = {k: rng.integers(0, 255, (n_steps, image_px, image_px, 3), np.uint8) for k in CAMERAS}
    arrays.update({k: rng.normal(size=(n_steps, d)).astype(np.float32) for k, d in LOW_DIM.items()})
    arrays["action"] = rng.uniform(-1, 1, (n_steps, 7)).astype(np.float32)
    spec = {k: {"shape": list(arrays[k].shape[1:])} for k in [*CAMERAS, *LOW_DIM]}
    return arrays, np.arange(25, n_steps + 1, 25), spec


def measure(config_name: str, dataset: str | None, device: str, batch_size: int, steps: int, threads: int,
            image_px: int) -> tuple[float, float, int]:
    torch.set_num_threads(threads)
    cfg = load_training_config(config_name)
    if dataset:
        from robot_learning.data.episode_store import EpisodeStore
        from robot_learning.sessions.train import dataset_keys

        with EpisodeStore.open(dataset) as store:
            policy = resolve_input_keys(cfg.policy, *dataset_keys(store))
            keys = [*policy.camera_keys, *policy.low_dim_keys]
            arrays, ends = load_arrays(store, [*keys, "action"])
            spec = {k: {"shape": list(store.specs[k].shape)} for k in keys}
    else:
        arrays, ends, spec = synthetic(2500, image_px)
        policy = resolve_input_keys(cfg.policy, CAMERAS, list(LOW_DIM))
    dev = resolve_device(device)
    windows = WindowDataset(arrays, ends, [*policy.camera_keys, *policy.low_dim_keys], "action", policy.n_obs_steps,
                            policy.horizon, policy.n_action_steps, policy.delta_action_dims)
    normalizer = MinMaxNormalizer.fit({k: arrays[k] for k in [*policy.low_dim_keys, "action"]})
    processor = ObservationProcessor(policy.camera_keys, policy.low_dim_keys, "action", normalizer, dev)
    torch.manual_seed(0)
    model = build_model(policy, spec, 7).to(dev).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ema = EMAModel(model.parameters(), power=0.75)
    rng = np.random.default_rng(0)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        batch = windows.batch(rng.integers(0, len(windows), batch_size))
        loss = model.compute_loss(processor.observations(batch), processor.actions(batch["action"]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.step(model.parameters())
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    per_step = float(np.median(times))
    return batch_size / per_step, 1000 * per_step, len(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="episode store; default: synthetic data of the same shapes")
    parser.add_argument("--configs", nargs="+", default=["lift_cpu", "gpu_resnet18"])
    parser.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--image-px", type=int, default=96)
    args = parser.parse_args()
    print(f"training throughput, batch {args.batch_size}, median of {args.steps} steps, "
          f"data: {args.dataset or f'synthetic {args.image_px}x{args.image_px}'}")
    print(f"{'config':<14} {'device':<10} {'samples/s':>10} {'ms/step':>9} {'windows':>8} {'min/epoch':>10}")
    for name in args.configs:
        for threads in args.threads:
            rate, ms, n = measure(name, args.dataset, args.device, args.batch_size, args.steps, threads, args.image_px)
            label = f"{resolve_device(args.device).type} x{threads}"
            print(f"{name:<14} {label:<10} {rate:>10.1f} {ms:>9.0f} {n:>8} {n / rate / 60:>10.2f}")


if __name__ == "__main__":
    main()
