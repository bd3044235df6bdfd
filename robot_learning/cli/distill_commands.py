"""``manip-stack distill``: a teacher (base + privileged residual) distilled into an image student in randomised
twins (ResiP's deployment route; core: :mod:`robot_learning.sessions.distill`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from robot_learning.cli.common import cell_arg, image_size, task_arg


def cmd_distill(args: argparse.Namespace) -> int:
    from hardware_configs.loader import load_model
    from robot_learning.sessions.distill import distill, load_student_config
    from sim.randomisation import RandomisationConfig

    student = load_student_config(args.config)  # a student reading privileged keys is refused before anything runs
    if args.image_size is None:
        raise ValueError("--image-size none: the student sees the scene through cameras; give e.g. 96x96")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {args.episodes}")
    if not Path(args.teacher).is_file():
        raise FileNotFoundError(f"no teacher checkpoint at {args.teacher}")
    randomisation = (load_model(Path(args.randomisation), RandomisationConfig) if args.randomisation
                     else RandomisationConfig())
    report = distill(args.teacher, student, args.out, args.episodes, cell=args.cell, task=args.task,
                     image_size=args.image_size, randomisation=randomisation, seed=args.seed,
                     keep_failures=args.keep_failures, eval_episodes=args.eval_episodes, eval_envs=args.envs,
                     eval_seed=args.eval_seed, eval_randomised=not args.eval_nominal, n_videos=args.videos,
                     device=args.device, progress=not args.no_progress, teacher_estimation=args.teacher_estimation)
    print(report)
    print(f"report: {Path(args.out) / 'distill_report.json'}")
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("distill", help="distil a teacher (base+residual) into an image student in randomised twins")
    p.add_argument("--teacher", required=True, help="base_plus_residual.pt of a fine-tune (or any policy checkpoint)")
    p.add_argument("--config", required=True,
                   help="the student's policy YAML (path or name in configs/policy/, e.g. peg_insert_cpu): cameras "
                        "plus tcp_position, tcp_rot6d, gripper_width (joint_pos allowed); privileged keys are refused")
    p.add_argument("--episodes", type=int, required=True,
                   help="teacher rollouts (randomised scenes); its successful episodes become the student's data")
    p.add_argument("--out", required=True, help="run directory; a run there is resumed (collection, training)")
    p.add_argument("--task", type=task_arg, default=None, help="task (default: the teacher's)")
    p.add_argument("--cell", type=cell_arg, default=None, help="cell (default: the teacher's)")
    p.add_argument("--image-size", type=image_size, default=(96, 96), help="camera images WIDTHxHEIGHT (96x96)")
    p.add_argument("--randomisation", default=None,
                   help="YAML of sim.randomisation.RandomisationConfig (default: its built-in ranges)")
    p.add_argument("--seed", type=int, default=0, help="first collection scene")
    p.add_argument("--keep-failures", action="store_true",
                   help="record the teacher's failed episodes too (flagged; for a smoke run of a weak teacher)")
    p.add_argument("--teacher-estimation", choices=["cameras", "error_model"], default="cameras",
                   help="a teacher on the estimated scene gets it from the randomised cameras (as on the robot) or "
                        "from the estimator's error model (what it trained on; no 3-camera fusion per step)")
    p.add_argument("--eval-episodes", type=int, default=50, help="student evaluation scenes (0: skip)")
    p.add_argument("--eval-seed", type=int, default=100_000, help="first evaluation scene (new scenes)")
    p.add_argument("--eval-nominal", action="store_true", help="evaluate in the nominal twin, not randomised ones")
    p.add_argument("--envs", type=int, default=2, help="parallel twins for the evaluation")
    p.add_argument("--videos", type=int, default=2, help="evaluation videos of this many successes and failures")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"], help="student training/inference")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_distill)
