"""Verbs of residual RL: finetune (in parallel twins)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_finetune(args: argparse.Namespace) -> int:
    import yaml

    from robot_learning.rl.config import FinetuneConfig
    from robot_learning.sessions.finetune import finetune

    if args.online:
        raise SystemExit("online fine-tuning sessions are not built yet (issue 7); run without --online in the twin")
    raw = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    overrides = {k: v for k, v in {"task": args.task, "iterations": args.iterations}.items() if v is not None}
    if args.envs is not None:
        raw.setdefault("ppo", {})["n_envs"] = args.envs
    config = FinetuneConfig.model_validate({**raw, **overrides})
    result = finetune(Path(args.checkpoint), Path(args.out), config)
    print(f"combined checkpoint: {result.checkpoint}\n{result.env_steps} env steps in {result.wall_s / 60:.1f} min; "
          f"last evaluation success {result.last_eval_success}")
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("finetune", help="residual PPO on a frozen diffusion base, in parallel twins")
    p.add_argument("--checkpoint", required=True, help="the base policy checkpoint (policy.pt)")
    p.add_argument("--config", default=None, help="FinetuneConfig YAML (e.g. configs/rl/peg_insert_residual_cpu.yaml)")
    p.add_argument("--task", default=None)
    p.add_argument("--envs", type=int, default=None, help="parallel twins (default from the config)")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--out", default="outputs/finetune")
    p.add_argument("--online", action="store_true", help="fine-tune on the robot in real time (not built yet)")
    p.set_defaults(func=cmd_finetune)
