"""Verbs over ROS 2 data that need no ROS installation: ``import-bag``, ``export-mcap``."""

from __future__ import annotations

import argparse

from robot_learning.cli.common import add_cell_task, image_size


def cmd_import_bag(args: argparse.Namespace) -> int:
    from robot_learning.data.bag_import import ImportOptions, import_bags

    opts = ImportOptions(
        cell=args.cell, task=args.task, cameras=args.cameras or None, image_size=args.image_size, depth=args.depth,
        tolerance_s=args.tolerance, joint_prefix=args.joint_prefix, gripper_joint=args.gripper_joint,
        gripper_joint_scale=args.gripper_joint_scale, joint_states_topic=args.joint_states_topic,
        tcp_pose_topic=args.tcp_pose_topic, action_topic=args.action_topic, events_topic=args.events_topic,
        success=args.success,
    )
    print(import_bags(args.bags, args.out, opts))
    return 0


def cmd_export_mcap(args: argparse.Namespace) -> int:
    from robot_learning.data.episode_store import EpisodeStore
    from robot_learning.data.mcap_export import export_mcap
    from robot_learning.viz.sources import parse_episodes

    with EpisodeStore.open(args.store) as store:
        episodes = parse_episodes(args.episodes, store.n_episodes)
    print(export_mcap(args.store, args.out, episodes))
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("import-bag", help="ROS 2 bags (.db3/.mcap from ros2 bag record) into a zarr episode store")
    p.add_argument("bags", nargs="+", help="bag files (.db3, .mcap) or bag directories")
    p.add_argument("--out", required=True, help="episode store to create or append to")
    add_cell_task(p)
    p.add_argument("--cameras", nargs="*", default=None, help="cameras to import (default: every camera of the cell)")
    p.add_argument("--image-size", type=image_size, default=(96, 96), help="WIDTHxHEIGHT of stored images")
    p.add_argument("--depth", action="store_true", help="also store aligned depth [m]")
    p.add_argument("--tolerance", type=float, default=0.06, help="largest stamp difference within a step [s]")
    p.add_argument("--joint-prefix", default="", help="prefix of the arm's joint names (fr3_ on an FR3)")
    p.add_argument("--gripper-joint", default="gripper_width", help="joint_states entry of the gripper")
    p.add_argument("--gripper-joint-scale", type=float, default=1.0, help="opening [m] = scale * position")
    p.add_argument("--joint-states-topic", default="/joint_states")
    p.add_argument("--tcp-pose-topic", default="/tcp_pose")
    p.add_argument("--action-topic", default="/manip/action")
    p.add_argument("--events-topic", default="/session_node/events")
    p.add_argument("--success", action="store_true", help="mark episodes of bags without session events successful")
    p.set_defaults(func=cmd_import_bag)

    p = verbs.add_parser("export-mcap", help="episodes of a store as a ROS 2 MCAP bag on the robot graph's topics "
                                             "(Foxglove, rerun, ros2 bag play; import-bag reads it back)")
    p.add_argument("store", help="episode store (zarr)")
    p.add_argument("--out", required=True, help="an .mcap file, or a bag directory for any other name")
    p.add_argument("--episodes", default="all", help="all, N, N,M or N-M (default all)")
    p.set_defaults(func=cmd_export_mcap)
