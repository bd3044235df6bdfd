"""Verbs of residual RL: finetune, in parallel twins or ``--online`` (one episode at a time, resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_finetune(args: argparse.Namespace) -> int:
    from hardware_configs.loader import ConfigError, validate_model
    from hardware_configs.safe_yaml import UnsafeYamlError, read_yaml_mapping
    from robot_learning.rl.config import FinetuneConfig
    from robot_learning.sessions.finetune import finetune

    try:
        raw = read_yaml_mapping(Path(args.config)) if args.config else {}
    except UnsafeYamlError as exc:
        raise ConfigError(str(exc)) from None
    if (args.rrd or args.view) and not args.online:
        raise ValueError("--rrd/--view log an --online session's steps; the parallel twins' rollouts are not logged")
    if args.online:
        if args.backend != "process":
            raise ValueError("--online runs one episode at a time through the robot interface: no --backend ray")
        return _online(args, raw, args.config or "finetune defaults")
    overrides = {k: v for k, v in {"task": args.task, "iterations": args.iterations, "seed": args.seed,
                                   "init_residual": args.init_residual}.items() if v is not None}
    if args.envs is not None:
        raw.setdefault("ppo", {})["n_envs"] = args.envs
    config = validate_model({**raw, **overrides}, FinetuneConfig, args.config or "finetune defaults")
    result = finetune(Path(args.checkpoint), Path(args.out), config, backend=twin_backend(args))
    last = ("no evaluation in this run" if result.last_eval_success is None
            else f"last evaluation success {result.last_eval_success:.0%}")
    print(f"combined checkpoint: {result.checkpoint}\n{result.env_steps} env steps in {result.wall_s / 60:.1f} min; "
          f"{last}\nevaluate it: manip-stack eval --checkpoint {result.checkpoint} --task {config.task}")
    return 0


def twin_backend(args: argparse.Namespace):
    """The ``--backend`` flags as a :class:`~robot_learning.scale.twins.TwinBackend` (refused when inconsistent)."""
    from robot_learning.scale.twins import TwinBackend

    if args.backend != "ray" and (args.ray_workers or args.ray_address):
        raise ValueError("--ray-workers and --ray-address need --backend ray")
    return TwinBackend(kind=args.backend, ray_workers=args.ray_workers, ray_address=args.ray_address)


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """``--backend``, ``--ray-workers``, ``--ray-address``: where a session's twins run."""
    p.add_argument("--backend", default="process", choices=["process", "ray"],
                   help="where the twins run: process (subprocesses on this machine, the default) or ray (Ray actors: "
                        "a local Ray, or the cluster at --ray-address / RAY_ADDRESS)")
    p.add_argument("--ray-workers", type=int, default=None,
                   help="--backend ray: actors to spread the twins over (default: one per twin)")
    p.add_argument("--ray-address", default=None,
                   help="--backend ray: the cluster to join (e.g. auto, or <head>:6379; default RAY_ADDRESS, else a "
                        "local Ray)")


def _online(args: argparse.Namespace, raw: dict, source: str) -> int:
    """Online session: the twin stands in for the robot here; on the robot the env is the ROS robot env. It learns
    from the task's success label (what a robot episode has), so a config asking for another reward is refused."""
    import numpy as np

    from controllers.observations import SIM_ONLY_KEYS
    from hardware_configs.loader import ConfigError, validate_model
    from robot_learning.rl.base_policy import FrozenBase, load_frozen_base
    from robot_learning.rl.config import FinetuneConfig, PPOConfig
    from robot_learning.rl.ppo import PPOUpdater
    from robot_learning.rl.residual import ResidualPolicy
    from robot_learning.sessions.online_finetune import OnlineFinetuneSession
    from robot_learning.sessions.success import EstimatedSuccess, TwinSuccess
    from sim.env import TwinEnv
    from sim.estimation_config import StateEstimationConfig

    config = validate_model({**raw, **{k: v for k, v in {"task": args.task, "init_residual": args.init_residual}.items()
                                       if v}}, FinetuneConfig, source)
    if config.reward != "sparse":
        raise ConfigError(f"{source}: reward {config.reward}: an online session learns from the task's success "
                          "label (reward: sparse); the other rewards run in the twins (finetune without --online)")
    import torch

    torch.set_num_threads(config.torch_threads)
    base_policy = load_frozen_base(Path(args.checkpoint), config)  # with base_inputs: fed the robot's estimate
    if base_policy.sim_only and not config.sim_only:
        raise ConfigError(f"{source}: the base {args.checkpoint} reads the twin's simulator state "
                          f"({[k for k in base_policy.obs_keys if k in SIM_ONLY_KEYS]}): feed it the robot's estimate "
                          "(base_inputs: {privileged: estimated}) or say sim_only: true for a twin-only session")
    # Success on the robot comes from the estimate (the operator where it is unsure); the twin's own verdict is
    # simulator state, for sim_only sessions.
    estimation = None if config.sim_only else (config.state_estimation or StateEstimationConfig())
    env = TwinEnv(cell=config.cell, task=config.task, image_size=base_policy.image_size, state_estimation=estimation)
    base_policy.check_observation(env.observation_space)
    label = TwinSuccess() if config.sim_only else EstimatedSuccess(env.task_config)
    base = FrozenBase(base_policy, 1)
    keys = list(config.residual.obs_keys)
    obs_dim = int(sum(np.prod(env.observation_space[k].shape) for k in keys))
    policy = ResidualPolicy(obs_dim, int(base.action_low.size), config.residual)
    ppo = PPOConfig.model_validate({**config.ppo.model_dump(), "n_envs": 1, "steps_per_iteration": 1,
                                    "n_minibatches": 1})
    view = None
    if args.rrd or args.view:
        from robot_learning.viz.rerun_view import session_view

        view = session_view(env.cell, env.task_config, args.rrd, args.view)
    session = OnlineFinetuneSession(env, base, policy, PPOUpdater(policy, ppo), keys, Path(args.out),
                                    episodes_per_update=args.episodes_per_update, seed=config.seed,
                                    init_residual=config.init_residual, label_success=label, view=view)
    try:
        report = session.run(args.episodes)
    finally:
        session.close()
        if view is not None:
            view.close()
            if args.rrd:
                print(f"rerun view: {args.rrd} (open it with `rerun {args.rrd}`)")
    print(f"{report.episodes_in_store} episodes in {Path(args.out) / 'online_rollouts.zarr'} "
          f"({report.episodes_run} this run), {report.updates} updates, {report.interventions} intervention steps, "
          f"recent success {report.recent_success:.0%}")
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("finetune", help="residual PPO on a frozen diffusion base, in parallel twins")
    p.add_argument("--checkpoint", required=True, help="the base policy checkpoint (policy.pt)")
    p.add_argument("--config", default=None, help="FinetuneConfig YAML (e.g. configs/rl/peg_insert_residual_cpu.yaml)")
    p.add_argument("--task", default=None)
    p.add_argument("--envs", type=int, default=None, help="parallel twins (default from the config)")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--seed", type=int, default=None, help="seed of the residual, the rollouts and the base sampler")
    p.add_argument("--init-residual", default=None,
                   help="start from this trained residual (residual_last.pt, base_plus_residual.pt or "
                        "online_state.pt), e.g. the one trained in the twin for an --online session")
    p.add_argument("--out", default="outputs/finetune")
    p.add_argument("--online", action="store_true",
                   help="one episode at a time through the robot interface, every rollout stored; resumable")
    p.add_argument("--episodes", type=int, default=20, help="--online: episodes the store should hold at the end")
    p.add_argument("--episodes-per-update", type=int, default=4, help="--online: episodes per PPO update")
    p.add_argument("--rrd", default=None, help="--online: log every step (cameras, TCP path, base and residual "
                   "actions, reward, value, interventions, safety events) to this rerun file (headless)")
    p.add_argument("--view", action="store_true", help="--online: the same to a rerun viewer it opens")
    add_backend_args(p)
    p.set_defaults(func=cmd_finetune)
