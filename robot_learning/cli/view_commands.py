"""``manip-stack view``: an episode store or RealSense recordings to rerun (an ``.rrd`` file, or a viewer).

A thin wrapper over :mod:`robot_learning.viz`; rerun is imported only when the verb runs (the ``view`` extra).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from robot_learning.cli.common import cell_arg, task_arg
from robot_learning.cli.perception_commands import pose_arg

log = logging.getLogger(__name__)


def _is_recording_dir(source: Path) -> bool:
    return source.is_dir() and any(source.glob("*.db3")) and not (source / "zarr.json").exists()


def cmd_view(args: argparse.Namespace) -> int:
    from hardware_configs import load_cell, load_task
    from robot_learning.viz.rerun_view import RerunView

    source = Path(args.source)
    if not source.exists():
        raise FileNotFoundError(f"no episode store or recording directory at {source}")
    recordings = _is_recording_dir(source)
    rrd = None if args.spawn else Path(args.rrd) if args.rrd else (
        source / "view.rrd" if recordings else source.with_suffix(".rrd"))
    if recordings:
        from robot_learning.viz.sources import log_recordings

        cell, task = args.cell or load_cell("franka_3cam"), args.task or load_task("lift")
        with RerunView(cell, task, rrd, spawn=args.spawn, cloud=not args.no_cloud) as view:
            report = log_recordings(view, source, task, real_time=args.real_time,
                                    max_framesets=args.max_framesets, T_base_flange=args.flange_pose)
            steps = view.steps_logged
        print(report.table())
    else:
        from robot_learning.data.episode_store import EpisodeStore
        from robot_learning.viz.sources import log_store_episodes, parse_episodes

        with EpisodeStore.open(source) as store:
            cell = args.cell or load_cell(store.attrs.get("cell") or "franka_3cam")
            task = args.task or load_task(store.attrs.get("task") or "lift")
            episodes = parse_episodes(args.episodes, store.n_episodes)
            with RerunView(cell, task, rrd, spawn=args.spawn, cloud=not args.no_cloud) as view:
                steps = log_store_episodes(view, store, episodes, estimate=args.estimate)
        print(f"logged {len(episodes)} episode(s), {steps} steps of {source} ({cell.name}, {task.name})")
    if rrd is None:
        return 1 if view.viewer_lost else 0
    from robot_learning.viz.rrd_read import read_rrd

    contents = read_rrd(rrd)  # read back with rerun's own reader: the file is whole and holds what was logged
    print(f"wrote {rrd} ({rrd.stat().st_size / 2**20:.1f} MiB): {len(contents.steps())} steps, "
          f"{len(contents.entities)} entities; open it with `rerun {rrd}`")
    if args.png:
        from robot_learning.viz.render_frame import render_frame

        step = args.png_step if args.png_step is not None else contents.steps()[len(contents.steps()) // 2]
        out = render_frame(contents, step, args.png, title=f"{source.name}: step {step} as read back from {rrd.name}")
        print(f"rendered step {step} of {rrd} to {out}")
    return 0 if steps else 1


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("view", help="log an episode store or a directory of RealSense recordings to rerun "
                                      "(cameras in 3-D, cloud, objects, TCP, actions, rewards, events)")
    p.add_argument("source", help="episode store (.zarr) or directory of <camera>.db3 recordings")
    p.add_argument("--rrd", default=None,
                   help="rerun file to write (default: <store>.rrd, or <recordings>/view.rrd)")
    p.add_argument("--spawn", action="store_true", help="open a rerun viewer instead of writing a file")
    p.add_argument("--episodes", default="0", help="store episodes: all, N, N,M or N-M (default 0)")
    p.add_argument("--cell", type=cell_arg, default=None, help="cell (default: the store's; franka_3cam)")
    p.add_argument("--task", type=task_arg, default=None, help="task (default: the store's; lift)")
    p.add_argument("--no-cloud", action="store_true", help="do not fuse depth into a cloud")
    p.add_argument("--estimate", action="store_true",
                   help="stores with depth: run the object-state estimator on each step's cloud and log its poses")
    p.add_argument("--real-time", action="store_true",
                   help="recordings: at their frame rate, as cameras deliver (default: every frame)")
    p.add_argument("--max-framesets", type=int, default=None, help="recordings: stop after this many framesets")
    p.add_argument("--flange-pose", type=pose_arg, default=None, metavar="X,Y,Z,QX,QY,QZ,QW",
                   help="recordings: T_base_flange while recording [m]: places and fuses the wrist camera")
    p.add_argument("--png", default=None, help="also render a step read back from the .rrd to this PNG")
    p.add_argument("--png-step", type=int, default=None, help="which step to render (default: the middle one)")
    p.set_defaults(func=cmd_view)
