"""Verbs over demonstrations and episode stores: collect, show, verify, render, export-lerobot, import-lerobot, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robot_learning.cli.common import add_cell_task, image_size


def cmd_collect(args: argparse.Namespace) -> int:
    from robot_learning.sessions.collect import collect_expert_episodes

    args.out = args.out or f"outputs/{args.task.name}.zarr"
    if not args.teleop and not args.expert:
        raise SystemExit("say where demonstrations come from: --expert (scripted, twin) or --teleop DEVICE")
    view = None
    if args.rrd or args.view:
        from robot_learning.viz.rerun_view import session_view

        view = session_view(args.cell, args.task, args.rrd, args.view)
    try:
        if args.teleop:
            from robot_learning.cli.teleop_commands import ros_feed
            from teleop.session import run_teleop_collection

            report = run_teleop_collection(args.out, device_spec=args.teleop, cell=args.cell, task=args.task,
                                           n_episodes=args.episodes, operator=args.operator,
                                           image_size=args.image_size or (96, 96), seed=args.seed,
                                           device_feed=ros_feed() if args.teleop == "ros" else None,
                                           rerun_view=view)
        else:
            report = collect_expert_episodes(
                Path(args.out), cell=args.cell, task=args.task, n_episodes=args.episodes,
                image_size=args.image_size, depth=args.depth, seed=args.seed, keep_failures=args.keep_failures,
                view=view,
            )
    finally:
        if view is not None:
            view.close()
    print(report)
    if args.rrd:
        print(f"rerun view: {args.rrd} (open it with `rerun {args.rrd}`)")
    return 0


def _store_error(verb: str, exc: Exception) -> int:
    """A damaged or unreadable store is the user's to deal with: one line naming it, exit code 2 (as bad input)."""
    print(f"manip-stack {verb}: error: {exc}", file=sys.stderr)
    return 2


def cmd_show(args: argparse.Namespace) -> int:
    from robot_learning.data.episode_store import EpisodeStore, EpisodeStoreError
    from robot_learning.data.integrity import scan

    try:
        with EpisodeStore.open(args.store) as store:
            print(store.summary())
            report = scan(store) if args.verify else None
    except EpisodeStoreError as exc:
        return _store_error("show", exc)
    if report is not None:
        print(report.table())
    return 0 if report is None or report.ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    """Decode and check every episode and array; exit code 1 when anything is damaged."""
    from robot_learning.data.episode_store import EpisodeStore, EpisodeStoreError
    from robot_learning.data.integrity import scan

    try:
        with EpisodeStore.open(args.store) as store:
            report = scan(store)
    except EpisodeStoreError as exc:
        return _store_error("verify", exc)
    print(report.table())
    return 0 if report.ok else 1


def cmd_render(args: argparse.Namespace) -> int:
    from robot_learning.data.episode_store import EpisodeStore, EpisodeStoreError
    from robot_learning.data.video import render_episode_video, write_contact_sheet

    out = Path(args.out) if args.out else Path(args.store).with_suffix("") / f"episode_{args.episode:04d}.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with EpisodeStore.open(args.store) as store:
            render_episode_video(store, args.episode, out, fps=args.fps)
            sheet = write_contact_sheet(store, args.episode, out.with_suffix(".png"))
    except EpisodeStoreError as exc:
        return _store_error("render", exc)
    print(f"wrote {out} and {sheet}")
    return 0


def cmd_export_lerobot(args: argparse.Namespace) -> int:
    """A store as a LeRobotDataset v3.0 folder (videos, parquet, meta/)."""
    from robot_learning.data.lerobot_format import export_lerobot

    episodes = [int(e) for e in args.episodes.split(",")] if args.episodes else None
    print(export_lerobot(args.store, args.out, codec=args.video_codec, episodes=episodes))
    return 0


def cmd_import_lerobot(args: argparse.Namespace) -> int:
    """A LeRobotDataset v3.0 folder as a new episode store."""
    from robot_learning.data.lerobot_format import import_lerobot

    print(import_lerobot(args.dataset, args.out))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The embedded main job: everything the stack does, end to end, on the twin cell."""
    from robot_learning.sessions.demo import run_demo

    run_demo(Path(args.out), cell=args.cell, task=args.task, n_episodes=args.episodes, seed=args.seed)
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("collect", help="record demonstrations into a zarr episode store")
    add_cell_task(p)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--expert", action="store_true", help="use the task's scripted expert in the twin")
    p.add_argument("--teleop", default=None, metavar="DEVICE",
                   help="a person teleoperates: spacemouse, keyboard, gamepad, ros, replay:<file>, scripted "
                        "(the full session options are on `manip-stack teleop`)")
    p.add_argument("--operator", default="operator", help="--teleop: operator name stored with each episode")
    p.add_argument("--out", default=None, help="store path (default outputs/<task>.zarr)")
    p.add_argument("--image-size", type=image_size, default=(96, 96), help="WIDTHxHEIGHT of stored images, or none")
    p.add_argument("--depth", action="store_true", help="also store aligned depth [m]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-failures", action="store_true", help="commit failed episodes too, flagged unsuccessful")
    p.add_argument("--rrd", default=None, help="log every recorded step to this rerun file (headless)")
    p.add_argument("--view", action="store_true", help="log every recorded step to a rerun viewer it opens")
    p.set_defaults(func=cmd_collect)

    p = verbs.add_parser("show", help="print a summary of an episode store")
    p.add_argument("store")
    p.add_argument("--verify", action="store_true", help="also check every episode and array (as `verify`)")
    p.set_defaults(func=cmd_show)

    p = verbs.add_parser("verify", help="check every episode and array of a store; exit code 1 if any is damaged")
    p.add_argument("store")
    p.set_defaults(func=cmd_verify)

    p = verbs.add_parser("render", help="write an mp4 (all cameras side by side) and a contact sheet of an episode")
    p.add_argument("store")
    p.add_argument("--episode", type=int, default=0)
    p.add_argument("--out", default=None, help="mp4 path (default next to the store)")
    p.add_argument("--fps", type=float, default=10.0)
    p.set_defaults(func=cmd_render)

    p = verbs.add_parser("export-lerobot", help="write a store as a LeRobotDataset v3.0 folder (LeRobot, the Hub)")
    p.add_argument("store")
    p.add_argument("--out", required=True, help="dataset folder to create (must not exist or be empty)")
    p.add_argument("--video-codec", default="lossless", choices=["lossless", "h264", "av1"],
                   help="lossless: H.264 RGB, bit-exact (default); h264/av1: smaller, lossy, browser-playable")
    p.add_argument("--episodes", default=None, help="comma-separated episode indices (default: all)")
    p.set_defaults(func=cmd_export_lerobot)

    p = verbs.add_parser("import-lerobot", help="read a LeRobotDataset v3.0 folder into a new episode store")
    p.add_argument("dataset")
    p.add_argument("--out", required=True, help="episode store to create")
    p.set_defaults(func=cmd_import_lerobot)

    p = verbs.add_parser("demo", help="the main job on the twin: collect expert demos, render, summarise")
    add_cell_task(p)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
