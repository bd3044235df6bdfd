"""How well and how fast the object-state estimator (:mod:`perception.object_state`) finds the task's objects
from the cell's 3 cameras in the twin, against the twin's true poses.

Per task (lift, peg_insert): *at rest*, several random scenes, each estimated from scratch (global detection);
*during grasp*, a scripted expert episode with the estimator tracking frame to frame. Every frame renders the
cell's cameras (colour + depth; the wrist camera through the flange pose), fuses them with
:class:`perception.pointcloud.PointCloudFuser` and runs the estimator. Errors are position [mm] and rotation
modulo the shape's symmetries [deg], over the frames where the object is not lost; "lost" is the share of
frames reported lost. Updates/s time fusion + estimator only (not rendering), one thread.

``--depth-model`` renders depth through the twin's D435-like model (:mod:`perception.depth_model`: z^2 noise,
stereo-shadow and edge holes, dark dropout, quantisation, per-camera extrinsic error); ``--noise-k`` adds plain
Gaussian depth noise with sigma = k z^2 (k = 0.004/m: 1.4 mm at 0.6 m) instead or on top.

Run: ``python benchmarks/object_state.py [--scenes 8] [--episodes 1] [--size 640x480] [--voxel-m 0.004]
[--depth-model]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this folder's name would shadow `perception`

import numpy as np

from geometry.transforms import pose_to_matrix
from perception.depth_model import DepthModel
from perception.object_models import symmetric_rotation_error_rad
from perception.object_state import EstimatorParams, ObjectStateEstimator, TrackState
from perception.pointcloud import PointCloudFuser
from sim.env import TwinEnv
from sim.experts import make_expert
from sim.render import TwinRenderer


class Bench:
    def __init__(self, task: str, width: int, height: int, voxel_m: float, noise_k: float, stride: int,
                 global_registration: str = "shape", depth_model: bool = False):
        self.env = TwinEnv(task=task, image_size=(width, height))
        self.env.cameras.close()
        self.env.cameras = None  # the benchmark renders depth itself; the policy's images are not needed
        self.renderer = TwinRenderer(self.env.model, width, height, self.env.cell,
                                     depth_model=DepthModel(rng=0) if depth_model else None)
        names = [c.name for c in self.env.cell.cameras]
        self.fuser = PointCloudFuser(self.env.cell, {n: self.renderer.intrinsics(n) for n in names},
                                     voxel_m=voxel_m, stride=stride)
        params = EstimatorParams(global_registration=global_registration)
        self.estimator = ObjectStateEstimator(self.env.task_config, params)
        self.noise_k, self.rng = noise_k, np.random.default_rng(0)
        self.flange = self.env.model.site("flange").id
        self.errors: dict[str, list[tuple[float, float]]] = {}
        self.lost: dict[str, list[bool]] = {}
        self.update_s: list[float] = []

    def frames(self):
        frames = {}
        for camera in self.fuser.cameras:
            frame = self.renderer.render(self.env.data, camera)
            if self.noise_k > 0:
                z = frame.depth_m
                noisy = z + self.rng.normal(0.0, 1.0, z.shape).astype(np.float32) * self.noise_k * z * z
                frame = dataclasses.replace(frame, depth_m=np.where(z > 0, noisy, 0.0).astype(np.float32))
            frames[camera] = frame
        T_base_flange = np.eye(4)
        T_base_flange[:3, :3] = self.env.data.site_xmat[self.flange].reshape(3, 3)
        T_base_flange[:3, 3] = self.env.data.site_xpos[self.flange]
        return frames, T_base_flange

    def measure(self, phase: str) -> None:
        frames, T_base_flange = self.frames()
        t0 = time.perf_counter()
        cloud = self.fuser.fuse(frames, T_base_flange)
        estimates = self.estimator.update_cloud(cloud, float(self.env.data.time))
        self.update_s.append(time.perf_counter() - t0)
        for name, est in estimates.items():
            truth = self.env.task.object_pose(name)
            T_true = pose_to_matrix(truth.position_m, truth.quaternion_xyzw)
            lost = est.state is TrackState.lost
            self.lost.setdefault(phase, []).append(lost)
            if not lost:
                model = self.estimator.models[name].model
                err_mm = 1e3 * float(np.linalg.norm(est.T_base_object[:3, 3] - T_true[:3, 3]))
                err_deg = float(np.degrees(symmetric_rotation_error_rad(model, est.T_base_object[:3, :3],
                                                                        T_true[:3, :3])))
                self.errors.setdefault(phase, []).append((err_mm, err_deg))

    def at_rest(self, scenes: int) -> None:
        for seed in range(scenes):
            self.env.reset(seed=1000 + seed)
            self.estimator.reset()
            self.measure("at rest")

    def grasp(self, episodes: int) -> None:
        for episode in range(episodes):
            obs, _ = self.env.reset(seed=2000 + episode)
            self.estimator.reset()
            expert = make_expert(self.env.cell, self.env.task_config, seed=episode)
            for _ in range(self.env.task_config.horizon_steps):
                self.measure("grasp (expert episode)")
                obs, _, done, truncated, _ = self.env.step(expert.act(obs))
                if done or truncated:
                    break


def row(task: str, phase: str, errors: list[tuple[float, float]], lost: list[bool]) -> str:
    e = np.asarray(errors) if errors else np.full((1, 2), np.nan)
    return (f"{task:<11}{phase:<24}{len(lost):>7}{np.mean(e[:, 0]):>9.1f}{np.percentile(e[:, 0], 95):>9.1f}"
            f"{np.mean(e[:, 1]):>9.1f}{np.percentile(e[:, 1], 95):>9.1f}{100 * np.mean(lost):>8.0f}%")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["lift", "peg_insert"])
    parser.add_argument("--scenes", type=int, default=8, help="random scenes at rest per task")
    parser.add_argument("--episodes", type=int, default=1, help="scripted expert episodes per task (0: none)")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--voxel-m", type=float, default=0.004)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--noise-k", type=float, default=0.0, help="stand-in depth noise sigma = k z^2 [1/m]")
    parser.add_argument("--global-registration", choices=["shape", "fpfh"], default="shape",
                        help="detection's initial guesses: the cluster's shape, or FPFH + RANSAC")
    parser.add_argument("--depth-model", action="store_true",
                        help="the twin's D435-like depth model (noise, holes, quantisation, extrinsic error)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"{args.size}, 3 cameras, stride {args.stride}, voxel {1e3 * args.voxel_m:.0f} mm, depth noise k "
          f"{args.noise_k}/m, D435 depth model {'on' if args.depth_model else 'off'}, "
          f"detection {args.global_registration}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'task':<11}{'phase':<24}{'frames':>7}{'pos mm':>9}{'p95':>9}{'rot deg':>9}{'p95':>9}{'lost':>9}")
    update_s = []
    for task in args.tasks:
        bench = Bench(task, width, height, args.voxel_m, args.noise_k, args.stride, args.global_registration,
                      args.depth_model)
        bench.at_rest(args.scenes)
        bench.grasp(args.episodes)
        for phase, lost in bench.lost.items():
            print(row(task, phase, bench.errors.get(phase, []), lost))
        update_s += bench.update_s
        bench.renderer.close()
        bench.env.close()
    print(f"updates/s (fusion + estimator, 1 thread): {1 / np.mean(update_s):.1f} "
          f"(mean {1e3 * np.mean(update_s):.0f} ms, p95 {1e3 * np.percentile(update_s, 95):.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
