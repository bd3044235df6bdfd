"""How fast the twin runs on this machine, and how good its scripted experts are.

    python benchmarks/twin.py                 # full table (a few minutes on 2 cores)
    python benchmarks/twin.py --quick         # smaller counts, for a smoke run

Prints: physics steps/s; env steps/s without images and with all three cameras at 96x96 and 640x480;
env steps/s of 1, 2 and 4 parallel twins (subprocesses); scripted-expert success with a 95% interval.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from hardware_configs import load_cell, load_task
from robot_learning.sessions.evaluate import wilson_interval
from sim.env import TwinEnv
from sim.experts import make_expert
from sim.robot import TwinRobot
from sim.scene import build_model
from sim.vector import make_vector_env


def physics_steps_per_s(n_steps: int) -> float:
    cell = load_cell("franka_3cam")
    model = build_model(cell, load_task("lift"))
    data = mujoco.MjData(model)
    TwinRobot(model, data, cell).reset_to()
    start = time.perf_counter()
    mujoco.mj_step(model, data, nstep=n_steps)
    return n_steps / (time.perf_counter() - start)


def env_steps_per_s(n_steps: int, image_size: tuple[int, int] | None, fast_render: bool = True) -> float:
    env = TwinEnv(task="lift", image_size=image_size, fast_render=fast_render)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(env.action_space.low, env.action_space.high, (n_steps, 7)) * 0.3
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    rate = n_steps / (time.perf_counter() - start)
    env.close()
    return rate


def vector_steps_per_s(n_envs: int, n_steps: int, image_size: tuple[int, int] | None) -> float:
    envs = make_vector_env(n_envs, task="lift", image_size=image_size, asynchronous=n_envs > 1)
    try:
        envs.reset(seed=list(range(n_envs)))
        zeros = np.zeros((n_envs, 7), dtype=np.float32)
        envs.step(zeros)  # warm-up: renderers are created lazily in the workers
        start = time.perf_counter()
        for _ in range(n_steps):
            envs.step(zeros)
        return n_envs * n_steps / (time.perf_counter() - start)
    finally:
        envs.close()


def expert_success(task: str, n_episodes: int) -> tuple[int, float]:
    env = TwinEnv(task=task, image_size=None)
    successes, steps = 0, 0
    for seed in range(n_episodes):
        obs, _ = env.reset(seed=10_000 + seed)
        expert = make_expert(env.cell, env.task_config, seed=seed)
        for _ in range(env.task_config.horizon_steps):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            steps += 1
            if terminated or truncated:
                break
        successes += info["success"]
    return successes, steps / n_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--expert-episodes", type=int, default=100)
    parser.add_argument("--json", type=Path, default=Path("outputs/benchmarks/twin.json"))
    args = parser.parse_args()
    n = 40 if args.quick else 150
    rows: list[tuple[str, str]] = []

    def report(label: str, value: str) -> None:
        rows.append((label, value))
        print(f"  {label:<58} {value}", flush=True)

    print(f"twin benchmark on {os.cpu_count()} cores, MUJOCO_GL={os.environ['MUJOCO_GL']}")
    physics_steps = 5000 if args.quick else 20_000
    report("physics steps/s (lift scene, 2 ms step)", f"{physics_steps_per_s(physics_steps):,.0f}")
    report("env steps/s (10 Hz policy step, no images)", f"{env_steps_per_s(n, None):.1f}")
    report("env steps/s, 3 cameras RGB 96x96", f"{env_steps_per_s(n, (96, 96)):.1f}")
    report("env steps/s, 3 cameras RGB 640x480", f"{env_steps_per_s(n // 2, (640, 480)):.1f}")
    full_meshes = env_steps_per_s(n // 2, (640, 480), fast_render=False)
    report("env steps/s, 3 cameras RGB 640x480, full visual meshes", f"{full_meshes:.1f}")
    for n_envs in (1, 2, 4):
        rate = vector_steps_per_s(n_envs, n // 2, (96, 96))
        report(f"{n_envs} parallel twin(s), 3 cameras 96x96: env steps/s (total)", f"{rate:.1f}")
    episodes = 20 if args.quick else args.expert_episodes
    for task in ("lift", "peg_insert"):
        successes, mean_len = expert_success(task, episodes)
        low, high = wilson_interval(successes, episodes)
        report(f"scripted expert on {task}: success ({episodes} episodes)",
               f"{successes / episodes:.0%} [95% CI {low:.0%}-{high:.0%}], {mean_len:.0f} steps/episode")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(rows), indent=2))
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
