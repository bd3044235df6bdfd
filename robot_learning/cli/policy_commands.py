"""Verbs over policies: train (resumable) and eval (rollouts in the twin)."""

from __future__ import annotations

import argparse
from pathlib import Path

from robot_learning.cli.common import cell_arg, task_arg
from robot_learning.cli.rl_commands import add_backend_args, twin_backend

DEFAULT_CONFIG = "lift_cpu"


def cmd_train(args: argparse.Namespace) -> int:
    from robot_learning.scale.ddp import Partition, in_launched_group, launch_local
    from robot_learning.sessions.train import train_policy

    if args.processes < 1:
        raise ValueError(f"--processes must be at least 1, got {args.processes}")
    if args.processes > 1 and not in_launched_group():  # start the group; each process runs this verb again
        from robot_learning.policies.diffusion.configuration import load_training_config

        batch = load_training_config(args.config).train.batch_size  # a bad config fails here, before any launch
        if not Path(args.dataset).exists():
            raise FileNotFoundError(f"no episode store at {args.dataset}")
        if batch % args.processes:
            raise ValueError(f"{args.config}: batch_size {batch} (the global batch) does not split over "
                             f"{args.processes} processes; give a multiple of {args.processes}")
        argv = ["train", "--dataset", str(args.dataset), "--config", str(args.config), "--out", str(args.out),
                "--device", args.device, *(["--no-progress"] if args.no_progress else [])]
        return launch_local(args.processes, argv)
    partition = Partition.from_environment(args.device)
    try:
        result = train_policy(args.dataset, args.config, args.out, device=args.device, progress=not args.no_progress,
                              partition=partition)
    finally:
        partition.close()
    if not partition.is_main:
        return 0
    print(result)
    print(f"loss curve: {Path(args.out) / 'loss.png'}  log: {Path(args.out) / 'train_log.csv'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from robot_learning.runtime.threads import prefer_passive_omp_wait

    prefer_passive_omp_wait()  # before torch loads OpenMP: idle threads sleep, not spin (runtime.threads)
    from robot_learning.runtime.chunking import ChunkingConfig
    from robot_learning.sessions.evaluate import evaluate_policy, plot_eval_summary

    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "eval"
    view = None
    if args.rrd or args.view:
        from functools import partial

        from robot_learning.viz.rerun_view import session_view

        view = partial(session_view, rrd=args.rrd, spawn=args.view)
    report = evaluate_policy(args.checkpoint, view=view, task=args.task, cell=args.cell, n_episodes=args.episodes,
                             n_envs=args.envs, seed=args.seed, out=out, n_videos=args.videos, device=args.device,
                             backend=twin_backend(args),
                             progress=not args.no_progress, half=args.half, compile_unet=args.compile,
                             n_action_steps=args.action_steps, num_inference_steps=args.ddim_steps,
                             timestep_spacing=args.timestep_spacing,
                             zero_noise=True if args.zero_noise else None, runtime=args.runtime,
                             precision=args.precision,
                             chunking=ChunkingConfig(join=args.chunk_join,
                                                     inference_delay_s=args.inference_delay_ms / 1000.0,
                                                     decay_steps=args.chunk_decay_steps or None),
                             state_estimation=_state_estimation(args))
    plot_eval_summary(report, out / "eval_summary.png")
    print(report)
    print(f"report: {out / 'eval_report.json'}  videos: {', '.join(report.videos) or 'none'}")
    return 0


def _state_estimation(args: argparse.Namespace):
    """--state-estimation: how the twins estimate the scene for a policy that reads the estimate."""
    from sim.estimation_config import StateEstimationConfig

    if args.state_estimation == "auto":
        return None
    width, height = (int(v) for v in args.estimator_size.lower().split("x"))
    return StateEstimationConfig(source=args.state_estimation, image_size=(width, height))


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("train", help="train the diffusion policy on an episode store (resumes in --out)")
    p.add_argument("--dataset", required=True, help="episode store (zarr) to train on")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"YAML path, or a name in configs/policy/ (default {DEFAULT_CONFIG})")
    p.add_argument("--out", required=True, help="run directory; an existing run there is resumed")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--processes", type=int, default=1,
                   help="training processes on this machine (DDP through accelerate: one per GPU, or CPU processes "
                        "with gloo); the config's batch_size stays the global batch. Under accelerate launch or "
                        "torchrun (several machines) leave it out: the launched group is joined")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("eval", help="roll a trained policy out in the twin: success rate, CI, videos, report")
    p.add_argument("--checkpoint", required=True,
                   help="policy.pt (or checkpoints/last.pt) of a training run, or base_plus_residual.pt of a fine-tune")
    p.add_argument("--task", type=task_arg, default=None,
                   help="task name or .yaml (default: the task the policy was trained on)")
    p.add_argument("--cell", type=cell_arg, default=None, help="cell name or .yaml (default: the policy's cell)")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--envs", type=int, default=2, help="parallel twin processes (about one per core)")
    p.add_argument("--seed", type=int, default=100_000, help="first scene seed (collection uses 0, 1, ...)")
    p.add_argument("--videos", type=int, default=2, help="videos of this many successes and as many failures")
    p.add_argument("--out", default=None, help="output directory (default: <checkpoint dir>/eval)")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--action-steps", type=int, default=None, help="actions executed per chunk (default: trained)")
    p.add_argument("--ddim-steps", type=int, default=None, help="DDIM denoising steps (default: the checkpoint's)")
    p.add_argument("--timestep-spacing", choices=["leading", "trailing"], default=None,
                   help="where the DDIM steps sit (default: the checkpoint's: trailing for new ones, leading for those "
                        "saved before the option); trailing keeps success at 2 steps (docs/denoising_steps.md)")
    p.add_argument("--zero-noise", action="store_true",
                   help="start DDIM from zero noise: a deterministic policy (default: a Gaussian sample, or what a "
                        "fine-tuned checkpoint's base ran with)")
    p.add_argument("--inference-delay-ms", type=float, default=0.0,
                   help="simulate this inference delay on sim time: the next chunk is asked for that many policy "
                        "steps early and lands that late, the previous chunk executing meanwhile (default 0)")
    p.add_argument("--chunk-join", default="none", choices=["none", "blend", "rtc"],
                   help="how a new chunk joins the executing one: rtc (inpainting towards the committed actions), "
                        "blend (crossfade) or none (replace); see robot_learning/runtime/chunking.py")
    p.add_argument("--chunk-decay-steps", type=int, default=4,
                   help="steps after the committed actions over which the old chunk's pull decays (default 4; 0: to "
                        "the end of the overlap, the RTC paper's mask)")
    p.add_argument("--half", action="store_true", help="float16 inference (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the U-Net (CUDA; slow first chunk)")
    p.add_argument("--runtime", default="auto", choices=["auto", "fast", "eager"],
                   help="diffusion sampling: auto (the fast sampler of robot_learning.runtime.fast_inference where it "
                        "supports the model, else eager), fast, or eager (the fallback)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="the fast sampler's U-Net precision (bf16: about half the weight traffic, looser match)")
    p.add_argument("--state-estimation", default="auto", choices=["auto", "cameras", "error_model"],
                   help="how the twins make the robot's estimate of the scene for a policy that reads it: cameras "
                        "(rendered with the D435-like depth model, fused and tracked as on the robot; what auto "
                        "picks) or error_model (exact poses plus estimator-sized errors, the training surrogate)")
    p.add_argument("--estimator-size", default="320x240", help="WIDTHxHEIGHT the estimator's cameras render at")
    p.add_argument("--no-progress", action="store_true")
    add_backend_args(p)
    p.add_argument("--rrd", default=None, help="log the first twin's episodes to this rerun file (headless)")
    p.add_argument("--view", action="store_true", help="log the first twin's episodes to a rerun viewer it opens")
    p.set_defaults(func=cmd_eval)
