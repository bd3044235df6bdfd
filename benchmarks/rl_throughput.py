"""Residual-RL throughput: env steps/s of rollouts (frozen base inference included) and PPO updates/s.

For each number of parallel twins it collects ``--steps`` steps per env with the real collector (base chunk
every ``n_action_steps``, residual every step, same-step autoreset), then times one PPO update over that batch
with the config's epochs and minibatches. Prints a table; ``--device cuda`` puts the base on a GPU when there is
one. Run: ``python benchmarks/rl_throughput.py --checkpoint outputs/rl_dev/peg_state_base2/policy.pt``
(any base checkpoint: a state base measures the twin, an image base adds rendering and the encoder).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from hardware_configs.loader import load_model
from robot_learning.rl.base_policy import FrozenBase, load_frozen_base
from robot_learning.rl.config import FinetuneConfig, PPOConfig
from robot_learning.rl.ppo import PPOUpdater, RolloutBuffer
from robot_learning.rl.residual import ResidualPolicy
from robot_learning.rl.rollout import ResidualRolloutCollector, state_vector
from sim.vector import make_vector_env


def measure(checkpoint: Path, config: FinetuneConfig, n_envs: int, steps: int, device: str
            ) -> tuple[float, float, float]:
    """(env steps/s, seconds per PPO update, share of rollout time in base inference)."""
    policy_base = load_frozen_base(checkpoint, config, device=device)
    envs = make_vector_env(n_envs, cell=config.cell, task=config.task, image_size=policy_base.image_size,
                           asynchronous=n_envs > 1)
    try:
        base = FrozenBase(policy_base, n_envs)
        base_time = [0.0]
        act = base.act

        def timed_act(obs):
            start = time.perf_counter()
            out = act(obs)
            base_time[0] += time.perf_counter() - start
            return out

        base.act = timed_act  # type: ignore[method-assign]
        keys = list(config.residual.obs_keys)
        obs, _ = envs.reset(seed=0)
        obs_dim, action_dim = state_vector(obs, keys).shape[1], int(base.action_low.size)
        policy = ResidualPolicy(obs_dim, action_dim, config.residual)
        ppo = PPOConfig.model_validate({**config.ppo.model_dump(), "n_envs": n_envs, "steps_per_iteration": steps})
        updater = PPOUpdater(policy, ppo)
        collector = ResidualRolloutCollector(envs, base, policy, keys, seed=0)
        warm = RolloutBuffer.allocate(8, n_envs, obs_dim, action_dim)
        collector.collect(warm)  # process start-up, first chunk, torch warm-up
        base_time[0] = 0.0
        buffer = RolloutBuffer.allocate(steps, n_envs, obs_dim, action_dim)
        start = time.perf_counter()
        _, next_value = collector.collect(buffer)
        rollout_s = time.perf_counter() - start
        start = time.perf_counter()
        updater.update(buffer, next_value)
        update_s = time.perf_counter() - start
        return steps * n_envs / rollout_s, update_s, base_time[0] / rollout_s
    finally:
        envs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="base policy.pt")
    parser.add_argument("--config", default="configs/rl/peg_insert_residual_cpu.yaml")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--steps", type=int, default=100, help="steps per env to time")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    args = parser.parse_args()
    config = load_model(Path(args.config), FinetuneConfig)
    torch.set_num_threads(config.torch_threads)
    print(f"residual RL throughput on {config.task}: base {args.checkpoint} with {config.base_inference_steps} DDIM "
          f"steps on {args.device}; PPO {config.ppo.update_epochs} epochs x {config.ppo.n_minibatches} minibatches")
    print(f"{'envs':>4} {'env steps/s':>12} {'base share':>11} {'s/PPO update':>13} {'PPO updates/s':>14}")
    for n in args.envs:
        rate, update_s, base_share = measure(args.checkpoint, config, n, args.steps, args.device)
        print(f"{n:>4} {rate:>12.1f} {base_share:>10.0%} {update_s:>13.2f} {1 / update_s:>14.2f}")


if __name__ == "__main__":
    main()
