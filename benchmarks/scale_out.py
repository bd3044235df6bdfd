"""Scale-out figures (#23): Ray rollout workers, training processes, MuJoCo Warp worlds. Prints three tables.

1. Residual PPO with its twins as Ray actors: ``--envs`` twins (4) over 1, 2 and 4 Ray workers of a local Ray (its
   logical CPUs = the most workers asked for, whatever the cores), beside the subprocess backend: env steps/s of
   the rollouts (base + residual inference included) and wall seconds per PPO iteration (rollout + update).
2. Behaviour cloning with ``manip-stack train --processes N`` (DDP, gloo on CPU): samples/s for 1 and 2 processes
   (rank 0's ``train_summary.json``: training time, data loading excluded), the same global batch.
3. MuJoCo Warp physics of the twin (when the ``warp`` extra is installed): physics steps/s x worlds on Warp's
   device (a GPU where there is one), beside MuJoCo's own CPU step.

Without ``--checkpoint``/``--dataset`` it makes a small state base and an image dataset first (about a minute).
Run: ``nice -n 15 .venv/bin/python benchmarks/scale_out.py`` (add ``--skip-warp`` without a warm Warp cache: its
CPU kernels take ~4 min to compile once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig, TrainConfig
from robot_learning.rl.base_policy import FrozenBase, load_frozen_base
from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.ppo import PPOUpdater, RolloutBuffer
from robot_learning.rl.residual import ResidualPolicy
from robot_learning.rl.rollout import ResidualRolloutCollector, state_vector
from robot_learning.scale.twins import TwinBackend, make_twins

SMALL_POLICY = dict(horizon=8, n_action_steps=4, down_dims=[32, 64], n_groups=4, diffusion_step_embed_dim=32,
                    kernel_size=3, num_inference_steps=4)


def make_inputs(root: Path) -> tuple[Path, Path]:
    """A state base (5 expert lift episodes, 20 epochs) and a 32x32 image dataset of the same episodes."""
    from robot_learning.sessions.collect import collect_expert_episodes
    from robot_learning.sessions.train import train_policy

    state, images = root / "lift_state.zarr", root / "lift_32.zarr"
    collect_expert_episodes(state, task="lift", n_episodes=5, image_size=None, seed=0, progress=False)
    collect_expert_episodes(images, task="lift", n_episodes=5, image_size=(32, 32), seed=0, progress=False)
    config = PolicyTrainingConfig(
        policy=DiffusionConfig(sim_only=True, camera_keys=[], **SMALL_POLICY,
                               low_dim_keys=["tcp_position", "tcp_rot6d", "gripper_width", "privileged"]),
        train=TrainConfig(batch_size=32, num_epochs=20, num_threads=1))
    base = train_policy(state, config, root / "base", device="cpu", progress=False).policy_path
    return base, images


def ppo_iteration(checkpoint: Path, n_envs: int, backend: TwinBackend, steps: int, iterations: int
                  ) -> tuple[float, float]:
    """(env steps/s of the rollouts, wall s per PPO iteration) over ``iterations`` after a warm-up one."""
    config = FinetuneConfig(task="lift", base_inference_steps=4,
                            ppo={"n_envs": n_envs, "steps_per_iteration": steps, "update_epochs": 10,
                                 "n_minibatches": 4})
    base_policy = load_frozen_base(checkpoint, config, device="cpu")
    envs = make_twins(n_envs, backend, task="lift", image_size=base_policy.image_size)
    try:
        base, keys = FrozenBase(base_policy, n_envs), list(config.residual.obs_keys)
        obs, _ = envs.reset(seed=0)
        obs_dim, action_dim = state_vector(obs, keys).shape[1], int(base.action_low.size)
        policy = ResidualPolicy(obs_dim, action_dim, config.residual)
        updater, collector = PPOUpdater(policy, config.ppo), ResidualRolloutCollector(envs, base, policy, keys)
        rollout_s, total_s = 0.0, 0.0
        for i in range(iterations + 1):
            buffer = RolloutBuffer.allocate(steps, n_envs, obs_dim, action_dim)
            start = time.perf_counter()
            _, next_value = collector.collect(buffer)
            collected = time.perf_counter()
            updater.update(buffer, next_value)
            if i:  # the first iteration warms up (actors, first chunks)
                rollout_s += collected - start
                total_s += time.perf_counter() - start
        return iterations * steps * n_envs / rollout_s, total_s / iterations
    finally:
        envs.close()


def train_samples_per_s(dataset: Path, processes: int, root: Path, epochs: int) -> float:
    """samples/s of ``manip-stack train --processes N`` with a small image policy (global batch 32)."""
    config = PolicyTrainingConfig(policy=DiffusionConfig(**SMALL_POLICY, small_conv_channels=[16, 16, 16],
                                                         spatial_softmax_keypoints=16, image_feature_dim=32),
                                  train=TrainConfig(batch_size=32, num_epochs=epochs, num_threads=1,
                                                    checkpoint_every_epochs=epochs))
    path, out = root / "train.yaml", root / f"train_{processes}"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    subprocess.run([sys.executable, "-m", "robot_learning.cli.main", "train", "--dataset", str(dataset), "--config",
                    str(path), "--out", str(out), "--device", "cpu", "--no-progress", "--processes", str(processes)],
                   check=True, capture_output=True)
    return float(json.loads((out / "train_summary.json").read_text())["samples_per_s"])


def warp_rates(worlds: list[int], ticks: int) -> list[tuple[str, int, float]]:
    """(engine and device, worlds, physics steps/s x worlds) for MuJoCo on one CPU core and Warp."""
    import mujoco

    from robot_learning.scale.warp_twin import WarpTwinPhysics
    from sim.env import TwinEnv

    env = TwinEnv(task="lift", image_size=None)
    env.reset(seed=0)
    model, data, per_tick = env.model, env.data, env.robot.physics_steps_per_tick
    start = time.perf_counter()
    mujoco.mj_step(model, data, nstep=ticks * per_tick)
    rows = [("mujoco cpu", 1, ticks * per_tick / (time.perf_counter() - start))]
    for n in worlds:
        warp = WarpTwinPhysics(model, n, per_tick)
        warp.load([env.data] * n)
        ctrl = np.repeat(env.data.ctrl[None], n, axis=0)
        warp.tick(ctrl)  # kernel load / compile
        warp._wp.synchronize()
        start = time.perf_counter()
        for _ in range(ticks):
            warp.tick(ctrl)
        warp._wp.synchronize()
        rows.append((f"warp {warp.device}", n, ticks * per_tick * n / (time.perf_counter() - start)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="state base policy.pt (default: make a small one)")
    parser.add_argument("--dataset", type=Path, help="image episode store for the training table (default: make one)")
    parser.add_argument("--envs", type=int, default=4, help="twins per PPO iteration")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=50, help="steps per env per PPO iteration")
    parser.add_argument("--iterations", type=int, default=2, help="timed PPO iterations (after one warm-up)")
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--warp-worlds", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-warp", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="scale_out_"))
    checkpoint, dataset = args.checkpoint, args.dataset
    if checkpoint is None or dataset is None:
        made_base, made_data = make_inputs(root)
        checkpoint, dataset = checkpoint or made_base, dataset or made_data
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start (other jobs included)")

    import ray

    from robot_learning.scale.ray_twins import connect

    connect(num_cpus=max(args.workers))
    print(f"\nresidual PPO on lift, {args.envs} twins x {args.steps} steps per iteration, state base {checkpoint}")
    print(f"{'backend':<22} {'env steps/s':>12} {'s / PPO iteration':>18}")
    backends = [("process (subprocesses)", TwinBackend())]
    backends += [(f"ray, {w} worker{'s' if w > 1 else ''}", TwinBackend(kind="ray", ray_workers=w))
                 for w in args.workers]
    for name, backend in backends:
        rate, per_iteration = ppo_iteration(checkpoint, args.envs, backend, args.steps, args.iterations)
        print(f"{name:<22} {rate:>12.0f} {per_iteration:>18.2f}")
    ray.shutdown()

    if not args.skip_train:
        print(f"\nbehaviour cloning, small image policy, global batch 32, {args.train_epochs} epochs on {dataset}")
        print(f"{'processes':>9} {'samples/s':>10}")
        for n in (1, 2):
            print(f"{n:>9} {train_samples_per_s(dataset, n, root, args.train_epochs):>10.0f}")

    if args.skip_warp:
        return
    from robot_learning.scale.warp_twin import warp_available

    if warp_available():
        print(f"\nMuJoCo Warp: {warp_available()}")
        return
    print("\ntwin physics (lift scene), physics steps/s summed over worlds")
    print(f"{'engine':<16} {'worlds':>6} {'steps/s':>10}")
    for engine, n, rate in warp_rates(args.warp_worlds, ticks=20):
        print(f"{engine:<16} {n:>6} {rate:>10.0f}")


if __name__ == "__main__":
    main()
