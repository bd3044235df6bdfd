"""What `manip-stack distill` costs here: teacher rollouts in randomised twins per episode and per step, student
training samples per second, student evaluation per episode; and the whole run extrapolated to a real size.

Run: ``python benchmarks/distill_cost.py --teacher /path/base_plus_residual.pt`` (the real teacher), or without
``--teacher`` for a stand-in of the shipped sizes (configs/rl/peg_insert_state_base.yaml's base trained for one
epoch on two expert episodes, configs/rl/peg_insert_residual_cpu.yaml's residual with random weights): it costs what
the real one costs per step, but fails, so its episodes run the whole horizon (the real teacher's successful
episodes are shorter: use the ms per step). The student trains one epoch of ``--config`` (default peg_insert_cpu).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch


def stand_in_teacher(root: Path, task: str) -> Path:
    from robot_learning.policies.diffusion.configuration import load_training_config
    from robot_learning.rl.combined import save_combined
    from robot_learning.rl.config import FinetuneConfig
    from robot_learning.rl.residual import ResidualPolicy
    from robot_learning.sessions.collect import collect_expert_episodes
    from robot_learning.sessions.train import train_policy
    from sim.env import TwinEnv

    configs = Path(__file__).resolve().parents[1] / "configs" / "rl"
    store = root / "expert.zarr"
    collect_expert_episodes(store, task=task, n_episodes=2, image_size=None, progress=False)
    base_cfg = load_training_config(configs / "peg_insert_state_base.yaml")
    base_cfg = base_cfg.model_copy(update={"train": base_cfg.train.model_copy(update={"num_epochs": 1})})
    base = train_policy(store, base_cfg, root / "base", device="cpu", progress=False).policy_path
    from hardware_configs.loader import load_model

    rl_cfg = load_model(configs / "peg_insert_residual_cpu.yaml", FinetuneConfig)
    env = TwinEnv(task=task, image_size=None)
    obs_dim = int(sum(np.prod(env.observation_space[k].shape) for k in rl_cfg.residual.obs_keys))
    env.close()
    torch.manual_seed(0)
    residual = ResidualPolicy(obs_dim, 7, rl_cfg.residual)
    with torch.no_grad():
        for p in residual.actor.net.parameters():
            p.normal_(0.0, 0.05)
    return save_combined(root / "base_plus_residual.pt", base, residual, rl_cfg, -np.ones(7), np.ones(7))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=None, help="base_plus_residual.pt (default: a stand-in, see above)")
    parser.add_argument("--task", default="peg_insert")
    parser.add_argument("--config", default="peg_insert_cpu", help="student policy config")
    parser.add_argument("--episodes", type=int, default=3, help="teacher rollouts to time")
    parser.add_argument("--eval-episodes", type=int, default=2)
    parser.add_argument("--plan-episodes", type=int, default=110, help="teacher rollouts of the extrapolated run")
    parser.add_argument("--plan-success", type=float, default=0.9, help="teacher success assumed for the plan")
    parser.add_argument("--plan-steps", type=float, default=70.0, help="mean steps of a successful episode")
    parser.add_argument("--plan-eval", type=int, default=100, help="student evaluation episodes of the plan")
    args = parser.parse_args()

    from sim.gl_backend import select_gl_backend

    select_gl_backend()  # a headless renderer, chosen before anything imports mujoco
    from robot_learning.sessions.distill import distill, load_student_config

    torch.set_num_threads(1)
    student = load_student_config(args.config)
    epochs = student.train.num_epochs
    one_epoch = student.model_copy(update={"train": student.train.model_copy(update={"num_epochs": 1})})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        teacher = Path(args.teacher) if args.teacher else stand_in_teacher(root, args.task)
        report = distill(teacher, one_epoch, root / "distill", args.episodes, task=args.task, keep_failures=True,
                         eval_episodes=args.eval_episodes, eval_envs=1, n_videos=0, device="cpu", progress=False)
    c, s, e = report.collection, report.student, report.evaluation
    ms_per_step = 1000 * c["wall_s"] / max(1, c["steps"])
    samples_per_s = s["samples_per_s"]
    eval_s = e["wall_s"] / e["n_episodes"] if e else float("nan")
    plan_steps = args.plan_episodes * args.plan_success * args.plan_steps
    plan_collect_min = (args.plan_episodes * (args.plan_success * args.plan_steps
                                              + (1 - args.plan_success) * 120) * ms_per_step / 1000 / 60)
    plan_train_min = epochs * plan_steps / samples_per_s / 60
    plan_eval_min = args.plan_eval * eval_s / 60
    print(f"teacher: {'stand-in' if not args.teacher else teacher}; task {args.task}; student {args.config} "
          f"({epochs} epochs); 96x96, 3 cameras; torch 1 thread")
    print(f"| phase | measured | unit cost |\n|---|---|---|\n"
          f"| teacher rollouts, randomised | {c['attempted']} episodes, {c['steps']} steps, {c['wall_s']:.0f} s | "
          f"{c['s_per_episode']:.1f} s/episode, {ms_per_step:.0f} ms/step |\n"
          f"| student training (1 epoch) | {s['wall_s']:.0f} s | {samples_per_s:.0f} samples/s |\n"
          f"| student evaluation, randomised | {e.get('n_episodes', 0)} episodes, {e.get('wall_s', 0):.0f} s | "
          f"{eval_s:.1f} s/episode |")
    print(f"plan: {args.plan_episodes} teacher rollouts at {args.plan_success:.0%} success ({plan_steps:.0f} steps "
          f"recorded): collect {plan_collect_min:.0f} min, train {epochs} epochs {plan_train_min:.0f} min, evaluate "
          f"{args.plan_eval} episodes {plan_eval_min:.0f} min (1 env; --envs 2 about halves it)")
    print(json.dumps({"ms_per_step": ms_per_step, "samples_per_s": samples_per_s, "eval_s_per_episode": eval_s}))


if __name__ == "__main__":
    main()
