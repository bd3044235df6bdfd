"""Verbs for people at the robot: ``teleop`` (collect demonstrations with a device) and ``validate`` (sim-to-real)."""

from __future__ import annotations

import argparse
from pathlib import Path

from robot_learning.cli.common import add_cell_task, image_size


def ros_feed(twist_topic: str = "/teleop/cmd_vel", joy_topic: str = "/joy"):
    """The ROS teleop subscriber (twist + joy topics) that feeds the ros device: ROS stays at the CLI's edge."""
    from teleop.ros.twist_joy import start_ros_teleop

    return lambda device: start_ros_teleop(device, twist_topic, joy_topic)


def cmd_teleop(args: argparse.Namespace) -> int:
    from teleop.session import run_teleop_collection

    out = args.out or f"outputs/teleop_{args.task.name}.zarr"
    view = None
    if args.rrd or args.view:
        from robot_learning.viz.rerun_view import session_view

        view = session_view(args.cell, args.task, args.rrd, args.view)
    try:
        report = run_teleop_collection(
            out, device_spec=args.device, cell=args.cell, task=args.task, n_episodes=args.episodes,
            operator=args.operator, image_size=args.image_size, seed=args.seed, countdown_s=args.countdown,
            view_mp4=args.view_mp4, screenshot=args.screenshot, record_input=args.record_input,
            teleop_config=args.teleop_config, window=False if args.headless else None,
            device_feed=ros_feed(args.twist_topic, args.joy_topic) if args.device == "ros" else None,
            rerun_view=view,
        )
    finally:
        if view is not None:
            view.close()
    print(report)
    if args.rrd:
        print(f"rerun view: {args.rrd} (open it with `rerun {args.rrd}`)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from robot_learning.sessions.validate import run_validation
    from robot_learning.validation.diagnosis import Thresholds

    thresholds = Thresholds.load(args.thresholds) if args.thresholds else None
    if args.selftest:
        return _selftest(args, thresholds)
    if not args.store:
        raise ValueError("give an episode store to validate (or --selftest)")
    out = args.out or str(Path(args.store).with_suffix("")) + "_validation"
    report = run_validation(args.store, out, thresholds=thresholds, reference=args.reference,
                            episodes=args.episodes, calibration_episodes=args.calibration_episodes)
    print(report)
    return 0


def _selftest(args: argparse.Namespace, thresholds) -> int:
    """Record one 'real' store per perturbation in the twin, validate each, and print what was found."""
    from robot_learning.sessions.validate import calibrate_from_twin, run_validation
    from robot_learning.validation.perturbed_twin import (
        STANDARD_PERTURBATIONS,
        STANDARD_SEEDS,
        record_perturbed_episodes,
    )

    out = Path(args.out or "outputs/validate_selftest")
    thresholds = thresholds or calibrate_from_twin(args.cell, args.task, args.image_size, args.calibration_episodes)
    for name in STANDARD_PERTURBATIONS:
        store = out / f"{name}.zarr"
        if not store.exists():
            record_perturbed_episodes(store, STANDARD_PERTURBATIONS[name], args.selftest_episodes,
                                      seed=STANDARD_SEEDS[name],
                                      cell=args.cell, task=args.task, image_size=args.image_size)
        report = run_validation(store, out / f"{name}_report", thresholds=thresholds)
        print(f"[{name}]\n{report}\n")
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("teleop", help="collect demonstrations with a teleop device (twin, or robot via ROS)")
    add_cell_task(p)
    p.add_argument("--device", default="scripted",
                   help="spacemouse | keyboard | gamepad | ros | replay:<stream.jsonl> | scripted (a scripted "
                        "operator on a virtual SpaceMouse, standing in for a person)")
    p.add_argument("--episodes", type=int, default=5, help="episodes to keep")
    p.add_argument("--operator", default="operator", help="who is teleoperating (stored per episode)")
    p.add_argument("--out", default=None, help="store path (default outputs/teleop_<task>.zarr)")
    p.add_argument("--image-size", type=image_size, default=(96, 96), help="WIDTHxHEIGHT of stored images")
    p.add_argument("--seed", type=int, default=0, help="first scene seed in the twin")
    p.add_argument("--countdown", type=float, default=3.0, help="seconds between START and recording")
    p.add_argument("--teleop-config", default=None, help="YAML TeleopConfig (deadband, scaling, mapping)")
    p.add_argument("--record-input", default=None, help="also write the raw device input to this .jsonl stream")
    p.add_argument("--view-mp4", default=None, help="write the live view to this mp4")
    p.add_argument("--screenshot", default=None, help="save a PNG of the live view while recording")
    p.add_argument("--headless", action="store_true", help="never open a window, even with a display")
    p.add_argument("--rrd", default=None, help="log every recorded step to this rerun file (headless)")
    p.add_argument("--view", action="store_true", help="log every recorded step to a rerun viewer it opens")
    p.add_argument("--twist-topic", default="/teleop/cmd_vel", help="--device ros: geometry_msgs/Twist topic")
    p.add_argument("--joy-topic", default="/joy", help="--device ros: sensor_msgs/Joy topic")
    p.set_defaults(func=cmd_teleop)

    p = verbs.add_parser("validate", help="replay recorded robot episodes in the twin and report sim-to-real gaps")
    add_cell_task(p)
    p.add_argument("store", nargs="?", help="episode store recorded on the robot (or imported from a bag)")
    p.add_argument("--out", default=None, help="report folder (default <store>_validation)")
    p.add_argument("--episodes", type=int, nargs="*", default=None, help="episode indices (default all)")
    p.add_argument("--reference", default=None, help="store of known-clean episodes to derive thresholds from")
    p.add_argument("--thresholds", default=None, help="thresholds.json from an earlier run")
    p.add_argument("--calibration-episodes", type=int, default=3,
                   help="without --reference/--thresholds: clean twin episodes to derive thresholds from")
    p.add_argument("--selftest", action="store_true",
                   help="record clean/friction/camera/latency stores in a perturbed twin and validate each")
    p.add_argument("--selftest-episodes", type=int, default=1)
    p.add_argument("--image-size", type=image_size, default=(96, 96), help="--selftest: WIDTHxHEIGHT")
    p.set_defaults(func=cmd_validate)
