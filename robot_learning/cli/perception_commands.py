"""Verbs over cameras and calibration: cameras, record-cameras, replay-perception, calibrate.

Thin wrappers over ROS-free cores in :mod:`perception` and :mod:`calibration`; heavy imports happen when a
verb runs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from robot_learning.cli.common import add_cell_task, cell_arg, image_size

log = logging.getLogger(__name__)


def cmd_cameras(args: argparse.Namespace) -> int:
    """Which of the cell's cameras are connected (by serial), and what else is."""
    from hardware_configs import load_cell
    from perception.cameras.realsense import connected_serials

    cell = load_cell(args.cell)
    found = connected_serials()
    for camera in cell.cameras:
        state = "connected" if camera.serial in found else "MISSING"
        print(f"{camera.name:<12} {camera.serial:<16} {camera.mount.value:<7} {state}")
    others = sorted(set(found) - {c.serial for c in cell.cameras})
    if others:
        print(f"other RealSense devices: {others}")
    return 0 if all(c.serial in found for c in cell.cameras) else 1


def _record_twin(args: argparse.Namespace, cell) -> dict[str, Path]:
    """The twin's cameras, frameset by frameset: step the sim to each frame's time, render, write.

    Synchronous, so every recording holds the same frame times (k / fps of sim time) whatever the machine's
    load; frames are written paced, so real-time playback runs at the frame rate when rendering keeps up.
    """
    from perception.cameras import recording_path
    from perception.cameras.twin import TwinCamera
    from perception.recording import RecordingWriter
    from sim.env import TwinEnv

    env = TwinEnv(cell, args.task, image_size=None, fast_render=True)
    env.reset(seed=args.seed)
    fps = cell.cameras[0].fps
    cameras = [TwinCamera(env.model, env.data, c.name, *args.image_size, fps=fps, serial=c.serial, cell=cell)
               for c in cell.cameras]
    writers = {}
    try:
        for camera in cameras:
            camera.open()
            writers[camera.name] = RecordingWriter(recording_path(args.out, camera.name), camera.intrinsics,
                                                   serial=camera.serial, fps=fps, time_origin_ms=0.0, pace=True)
        start_s = float(env.data.time)
        for k in range(max(1, round(args.seconds * fps))):
            while env.data.time - start_s < k / fps - 1e-9:
                env.safe_robot.wait_for_tick()  # the arm holds its pose through the safety filter
            for camera in cameras:
                writers[camera.name].write(camera.render(stamp_ms=k * 1e3 / fps))
    finally:
        for writer in writers.values():
            writer.close()
        for camera in cameras:
            camera.close()
        env.close()
    return {name: writer.path for name, writer in writers.items()}


def cmd_record_cameras(args: argparse.Namespace) -> int:
    from hardware_configs import load_cell
    from perception.cameras import CameraError, CameraGroup, realsense_cameras
    from perception.recording import record_group

    cell = load_cell(args.cell)
    try:
        if args.sim:
            paths = _record_twin(args, cell)
        else:
            with CameraGroup(realsense_cameras(cell, hardware_sync=args.hardware_sync),
                             tolerance_ms=args.tolerance_ms) as group:
                paths = record_group(group, Path(args.out), args.seconds,
                                     serials={c.name: c.serial for c in cell.cameras})
    except CameraError as exc:
        print(f"manip-stack record-cameras: error: {exc}", file=sys.stderr)
        return 2
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def pose_arg(text: str):
    """``x,y,z,qx,qy,qz,qw`` (metres, unit quaternion) as a 4x4 matrix."""
    import numpy as np

    from geometry.transforms import pose_to_matrix

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 7 or not np.all(np.isfinite(values)) or abs(np.linalg.norm(values[3:]) - 1.0) > 0.01:
        raise argparse.ArgumentTypeError(f"a pose is x,y,z,qx,qy,qz,qw in metres with a unit quaternion; got {text!r}")
    return pose_to_matrix(np.array(values[:3]), np.array(values[3:]))


def cmd_replay_perception(args: argparse.Namespace) -> int:
    """RealSense recordings through capture, alignment, fusion and object state, as live cameras go."""
    from perception.replay import cloud_picture, replay_recordings

    report = replay_recordings(args.cell, args.task, args.recordings, real_time=args.real_time,
                               tolerance_ms=args.tolerance_ms, T_base_flange=args.flange_pose,
                               max_framesets=args.max_framesets)
    print(report.table())
    if report.framesets == 0 or report.last_cloud is None:
        print(f"manip-stack replay-perception: error: no frameset was matched ({report.ended})", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else Path(args.recordings) / "fused_cloud.png"
    cloud_picture(report.last_cloud, out, report.estimates,
                  title=f"{args.recordings}: fused cloud of frameset {report.framesets - 1} "
                        f"({len(report.last_cloud.points_m)} points, cameras {', '.join(report.fused_cameras)})")
    print(f"fused cloud picture: {out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Calibrate every camera of the cell; in the twin, from a perturbed copy of the cell file."""
    if not args.sim:
        raise SystemExit("manip-stack calibrate: only --sim exists so far; on the robot the same session core "
                         "runs behind the arm driver (calibration.session with CameraViews)")
    import numpy as np

    from calibration.cell_file import write_extrinsics
    from calibration.report import format_report
    from calibration.sim import SimCalibrationConfig, perturb_extrinsics, run_sim_calibration
    from hardware_configs.loader import dump_yaml, load_cell, resolve

    source = resolve("cells", args.cell)
    truth = load_cell(source)
    believed = perturb_extrinsics(truth, np.random.default_rng(args.seed + 1), args.perturb_mm / 1e3,
                                  args.perturb_deg)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="calibrate_")) / source.name
    if out.resolve() == source.resolve():
        raise FileExistsError(f"--out {out} is the cell file the twin is built from; give another path")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.perturb_mm > 0 or args.perturb_deg > 0:
        out.write_text(f"# {source.name} with extrinsics perturbed by {args.perturb_mm} mm and {args.perturb_deg} deg "
                       f"(manip-stack calibrate --sim)\n" + dump_yaml(believed))
    else:
        shutil.copy(source, out)
    print(f"twin built from {source}; calibrating the copy {out}")
    config = SimCalibrationConfig(static_poses=args.static_poses, wrist_poses=args.wrist_poses,
                                  corner_noise_px=args.noise_px, seed=args.seed)
    result = run_sim_calibration(truth, believed, config)
    print(format_report(result.report, all_methods=args.all_methods,
                        believed={c.name: c.extrinsics.matrix() for c in believed.cameras},
                        truth={c.name: c.extrinsics.matrix() for c in truth.cameras}))
    print(f"{sum(len(v) for v in result.views.values())} arm poses in {result.seconds:.1f} s")
    if not result.report.passed:
        print(f"not written: thresholds failed; {out} unchanged")
        return 1
    if args.dry_run:
        print("not written (--dry-run)")
        return 0
    worst = max(s.best.residuals.reprojection_rms_px for s in result.report.cameras.values())
    backup = write_extrinsics(out, result.report.extrinsics(), note=f"twin, reprojection RMS <= {worst:.3f} px")
    print(f"wrote {out} (previous version kept as {backup})")
    return 0


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("cameras", help="list the cell's RealSense cameras and whether each is connected")
    p.add_argument("--cell", type=cell_arg, default="franka_3cam",
                   help="cell name in hardware_configs/cells or a .yaml path")
    p.set_defaults(func=cmd_cameras)

    p = verbs.add_parser("record-cameras", help="record every camera of the cell into <out>/<camera>.db3")
    add_cell_task(p)
    p.add_argument("--out", required=True, help="directory for the recordings (one .db3 per camera)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--sim", action="store_true", help="record the twin's cameras instead of live RealSense")
    p.add_argument("--image-size", type=image_size, default=(640, 480), help="WIDTHxHEIGHT of --sim frames")
    p.add_argument("--hardware-sync", action="store_true", help="first camera master, others slave (sync cable)")
    p.add_argument("--tolerance-ms", type=float, default=17.0, help="largest skew of a recorded frameset")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_record_cameras)

    p = verbs.add_parser("replay-perception", help="play <camera>.db3 recordings through capture, sync, fusion and "
                                                   "object state; report framesets, skew, drops, cloud, poses")
    p.add_argument("recordings", help="directory of <camera>.db3 recordings (as record-cameras writes them)")
    add_cell_task(p)
    p.add_argument("--real-time", action="store_true",
                   help="play at the recorded frame rate, as cameras deliver: framesets that come while one is being "
                        "processed are skipped and counted (default: every frame, in time order)")
    p.add_argument("--tolerance-ms", type=float, default=17.0, help="largest skew of a matched frameset")
    p.add_argument("--flange-pose", type=pose_arg, default=None, metavar="X,Y,Z,QX,QY,QZ,QW",
                   help="T_base_flange while recording [m]: fuses the wrist camera too (else it is left out)")
    p.add_argument("--max-framesets", type=int, default=None, help="stop after this many framesets")
    p.add_argument("--out", default=None, help="PNG of the fused cloud (default <recordings>/fused_cloud.png)")
    p.set_defaults(func=cmd_replay_perception)

    p = verbs.add_parser("calibrate", help="hand-eye and multi-camera calibration; writes the cell file if it passes")
    p.add_argument("--cell", default="franka_3cam", help="cell name in hardware_configs/cells or a .yaml path")
    p.add_argument("--sim", action="store_true", help="in the twin (the only mode so far)")
    p.add_argument("--out", default=None, help="--sim: the cell copy to calibrate (default: a new temp dir)")
    p.add_argument("--perturb-mm", type=float, default=20.0, help="--sim: shift of the copy's extrinsics")
    p.add_argument("--perturb-deg", type=float, default=2.0, help="--sim: rotation of the copy's extrinsics")
    p.add_argument("--noise-px", type=float, default=0.0, help="--sim: Gaussian noise on detected corners")
    p.add_argument("--static-poses", type=int, default=24, help="arm poses for the static cameras")
    p.add_argument("--wrist-poses", type=int, default=16, help="arm poses for the wrist camera")
    p.add_argument("--all-methods", action="store_true", help="a row per hand-eye method, not just the best")
    p.add_argument("--dry-run", action="store_true", help="report only; never write the cell file")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_calibrate)
