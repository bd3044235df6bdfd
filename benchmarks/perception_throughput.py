"""How many framesets per second 3 cameras at 640x480 get through capture, align, fusion and downsampling.

Capture is librealsense playing back recordings of the twin (written here first): the same decode and
``rs.align`` path a live camera takes. Two measurements:

- *stages*: one thread steps the three recordings in lockstep (every frame delivered) and times each stage
  per frameset: where the time goes, on one core.
- *capacity*: a thread per camera (wait, align, convert) feeding fusion in the main thread, every frame
  delivered as fast as it can be processed: framesets per second the two cores can sustain.
- *runtime*: as deployed: a reader thread per camera (``RealSensePlaybackCamera`` in a ``CameraGroup``,
  recordings offered at 30 fps in real time) and fusion of each new matched frameset; framesets per second.

Run: ``python benchmarks/perception_throughput.py [--frames 60] [--seconds 6] [--voxel-m 0.005] [--strides 1 2]
[--downsamplers compiled open3d]``. ``open3d`` runs the fusion with open3d's ``voxel_down_sample`` (what
``perception.pointcloud`` used before issue #21) for a before/after in one run. Other processes on the machine
share its cores; the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
import open3d as o3d

import perception.pointcloud
from hardware_configs import load_cell, load_task
from perception.cameras import CameraGroup, Frame, playback_cameras, recording_path
from perception.cameras.base import CameraError
from perception.cameras.realsense import open_recording
from perception.cameras.twin import TwinCamera
from perception.pointcloud import PointCloudFuser
from perception.recording import RecordingWriter
from sim.robot import TwinRobot
from sim.scene import ImageSize, build_model
from sim.tasks import TwinTask

WIDTH, HEIGHT = 640, 480


def open3d_voxel_downsample(points_m: np.ndarray, colors_u8: np.ndarray, voxel_m: float) -> tuple[np.ndarray,
                                                                                             np.ndarray]:
    """The downsampler before issue #21: open3d's legacy ``voxel_down_sample`` on float64 copies."""
    if len(points_m) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points_m, dtype=np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors_u8, dtype=np.float64) / 255.0)
    down = cloud.voxel_down_sample(voxel_m)
    return np.asarray(down.points, dtype=np.float32), np.asarray(down.colors, dtype=np.float32)


DOWNSAMPLERS = {"compiled": perception.pointcloud.voxel_downsample, "open3d": open3d_voxel_downsample}


def write_recordings(directory: Path, n_frames: int, fps: float) -> tuple[np.ndarray, dict]:
    """Render the lift scene from every camera (the arm moving a little between frames) and record it."""
    cell, task = load_cell("franka_3cam"), load_task("lift")
    model = build_model(cell, task, ImageSize(WIDTH, HEIGHT), fast_render=True)
    data = mujoco.MjData(model)
    robot = TwinRobot(model, data, cell)
    robot.reset_to()
    TwinTask(model, data, task).reset(np.random.default_rng(0))
    cameras = {c.name: TwinCamera(model, data, c.name, WIDTH, HEIGHT) for c in cell.cameras}
    distinct = 8  # renders are slow on a CPU; the recording cycles through a few distinct scenes
    rendered = []
    for cam in cameras.values():
        cam._open()  # render in this thread, without the reader
    for k in range(distinct):
        q = np.array(cell.robot.home_joint_positions_rad) + 0.05 * np.sin(k + np.arange(7))
        robot.reset_to(q)
        rendered.append({name: cam.render() for name, cam in cameras.items()})
    for cam in cameras.values():
        cam._close()

    def write(name: str) -> None:  # paced, so real-time playback offers `fps`; one thread per camera
        with RecordingWriter(recording_path(directory, name), cameras[name].intrinsics,
                             serial=cell.camera(name).serial, fps=int(fps), time_origin_ms=0.0, pace=True) as writer:
            for k in range(n_frames):
                frame = rendered[k % distinct][name]
                writer.write(Frame(name, frame.color, frame.depth_m, k * 1e3 / fps, 0.0, k))

    threads = [threading.Thread(target=write, args=(name,)) for name in cameras]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flange = model.site("flange").id
    T_base_flange = np.eye(4)
    T_base_flange[:3, :3], T_base_flange[:3, 3] = data.site_xmat[flange].reshape(3, 3), data.site_xpos[flange]
    return T_base_flange, cell


def stages(directory: Path, cell, T_base_flange: np.ndarray, n: int, voxel_m: float, stride: int) -> dict:
    """Per-stage time per frameset [s] with one thread stepping the recordings in lockstep."""
    streams = {c.name: open_recording(recording_path(directory, c.name), c.name, real_time=False, loop=True)
               for c in cell.cameras}
    fuser = PointCloudFuser(cell, {n_: s.intrinsics for n_, s in streams.items()}, voxel_m=voxel_m, stride=stride)
    times: dict[str, list[float]] = {k: [] for k in ("capture (wait+decode)", "align", "convert", "deproject+crop",
                                                     "voxel downsample", "total", "cpu (all threads)",
                                                     "fusion (thread cpu)")}
    try:
        for index in range(n + 3):  # the first framesets warm caches up
            c0, t0 = time.process_time(), time.perf_counter()
            waited, aligned, frames = {}, {}, {}
            for name, stream in streams.items():
                waited[name] = stream.wait(2.0)
            t1 = time.perf_counter()
            for name, stream in streams.items():
                aligned[name] = stream.align.process(waited[name])
            t2 = time.perf_counter()
            for name, stream in streams.items():
                frames[name] = stream.convert(aligned[name], time.monotonic())
            t3 = time.perf_counter()
            f3 = time.thread_time()
            cloud = fuser.fuse(frames, T_base_flange)
            t4, c4, f4 = time.perf_counter(), time.process_time(), time.thread_time()
            if index >= 3:
                times["cpu (all threads)"].append(c4 - c0)
                times["fusion (thread cpu)"].append(f4 - f3)
                for key, value in (("capture (wait+decode)", t1 - t0), ("align", t2 - t1), ("convert", t3 - t2),
                                   ("deproject+crop", cloud.timings_s["deproject_crop"]),
                                   ("voxel downsample", cloud.timings_s["downsample"]), ("total", t4 - t0)):
                    times[key].append(value)
    finally:
        for stream in streams.values():
            stream.stop()
    return times


def threaded(directory: Path, cell, T_base_flange: np.ndarray, n: int, voxel_m: float,
             stride: int) -> tuple[float, float]:
    """Capacity: a thread per camera (wait, align, convert) feeding fusion in the main thread, every frame
    delivered (non-real-time playback, bounded queues). Returns framesets/s and CPU cores busy."""
    streams = {c.name: open_recording(recording_path(directory, c.name), c.name, real_time=False, loop=True)
               for c in cell.cameras}
    fuser = PointCloudFuser(cell, {n_: s.intrinsics for n_, s in streams.items()}, voxel_m=voxel_m, stride=stride)
    queues = {name: queue.Queue(maxsize=2) for name in streams}

    def read(name: str) -> None:
        for _ in range(n + 3):
            queues[name].put(streams[name].grab(2.0))

    threads = [threading.Thread(target=read, args=(name,), daemon=True) for name in streams]
    try:
        for thread in threads:
            thread.start()
        for index in range(n + 3):
            if index == 3:  # after warm-up
                cpu0, t0 = os.times(), time.perf_counter()
            fuser.fuse({name: q.get(timeout=5.0) for name, q in queues.items()}, T_base_flange)
        cpu1, elapsed = os.times(), time.perf_counter() - t0
    finally:
        for thread in threads:
            thread.join(timeout=5.0)
        for stream in streams.values():
            stream.stop()
    return n / elapsed, ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / elapsed


def pipelined(directory: Path, cell, T_base_flange: np.ndarray, seconds: float, voxel_m: float,
              stride: int) -> tuple[float, float, int, float]:
    """The runtime as deployed: ``CameraGroup`` of real-time playback cameras (30 fps offered) and fusion of
    each new matched frameset. Returns framesets/s, mean skew [ms], framesets fused and CPU cores busy."""
    group = CameraGroup(playback_cameras(cell, directory, real_time=True, loop=True), tolerance_ms=16.0)
    fused, skews = 0, []
    with group:
        fuser = PointCloudFuser(cell, {c.name: c.intrinsics for c in group.cameras.values()}, voxel_m=voxel_m,
                                stride=stride)
        group.read(timeout_s=5.0)
        cpu0, t0 = os.times(), time.monotonic()
        while time.monotonic() - t0 < seconds:
            frameset = group.read(timeout_s=2.0)
            fuser.fuse(frameset.frames, T_base_flange)
            fused += 1
            skews.append(frameset.skew_ms)
        cpu1, elapsed = os.times(), time.monotonic() - t0
    cores = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / elapsed
    return fused / elapsed, float(np.mean(skews)), fused, cores


def table(times: dict[str, list[float]]) -> str:
    """Wall time per stage (one thread), then the CPU the whole process spent per frameset (librealsense
    decodes in threads of its own): the cost that 2 dedicated cores would have to cover."""
    total, cpu = statistics.mean(times["total"]), statistics.mean(times["cpu (all threads)"])
    lines = [f"{'stage (3 cameras)':<24}{'ms/frameset':>12}{'p95 ms':>9}{'share':>8}"]
    for key, values in times.items():
        mean = statistics.mean(values)
        p95 = float(np.percentile(values, 95))
        share = "" if key in ("total", "cpu (all threads)", "fusion (thread cpu)") else f"{100 * mean / total:.0f}%"
        lines.append(f"{key:<24}{1e3 * mean:>12.1f}{1e3 * p95:>9.1f}{share:>8}")
    lines.append(f"{'-> sequential, 1 thread':<24}{1 / total:>12.1f} framesets/s")
    lines.append(f"{'-> CPU-bound ceiling':<24}{2 / cpu:>12.1f} framesets/s on 2 dedicated cores (2 / cpu)")
    fusion = statistics.mean(times["fusion (thread cpu)"])
    lines.append(f"{'-> with one fusion thread':<24}{min(2 / cpu, 1 / fusion):>12.1f} framesets/s on 2 dedicated cores "
                 "(min(2 / cpu, 1 / fusion thread cpu): CPU times, whatever else loads the machine)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per camera recording (and per measurement)")
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of the pipelined run")
    parser.add_argument("--voxel-m", type=float, default=0.005)
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2], help="pixel strides to measure")
    parser.add_argument("--downsamplers", nargs="+", choices=sorted(DOWNSAMPLERS), default=["compiled"],
                        help="voxel downsamplers to compare (open3d: the one before issue #21)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perception_bench_") as tmp:
        directory = Path(tmp)
        t0 = time.monotonic()
        T_base_flange, cell = write_recordings(directory, args.frames, fps=30.0)
        size_mb = sum(p.stat().st_size for p in directory.iterdir()) / 1e6
        print(f"recordings: 3 x {args.frames} frames {WIDTH}x{HEIGHT} at 30 fps ({size_mb:.0f} MB, "
              f"{time.monotonic() - t0:.1f} s to render and write)")
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
              f"threads: {threading.active_count()}")
        for stride in args.strides:
            for downsampler in args.downsamplers:
                perception.pointcloud.voxel_downsample = DOWNSAMPLERS[downsampler]  # what fuse() calls
                print(f"\n== full pixels, stride {stride} (every {stride}. pixel each way), voxel {args.voxel_m} m, "
                      f"{downsampler} downsampler ==")
                print(table(stages(directory, cell, T_base_flange, args.frames, args.voxel_m, stride)))
                fps, cores = threaded(directory, cell, T_base_flange, args.frames, args.voxel_m, stride)
                print(f"-> thread per camera + fusion thread (capacity): {fps:.1f} framesets/s, {cores:.2f} cores busy")
                try:
                    fps, skew_ms, fused, cores = pipelined(directory, cell, T_base_flange, args.seconds,
                                                           args.voxel_m, stride)
                except CameraError as exc:  # stalled, stale or skewed: readers starved by other processes
                    print(f"-> CameraGroup on real-time playback: no result ({type(exc).__name__}: {exc}; load "
                          f"average {os.getloadavg()[0]:.1f})")
                    continue
                print(f"-> CameraGroup on real-time playback (30 fps offered): {fps:.1f} framesets/s fused ({fused} "
                      f"in {args.seconds:.0f} s), mean skew {skew_ms:.1f} ms, {cores:.2f} cores busy")
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
