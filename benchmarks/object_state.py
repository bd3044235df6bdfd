"""How well and how fast the object-state estimator (:mod:`perception.object_state`) finds the task's objects
from the cell's 3 cameras in the twin, against the twin's true poses.

Per task (lift, peg_insert) and per object and fixture: *at rest*, several random scenes, each estimated from
scratch (global detection); then scripted expert episodes with the estimator tracking frame to frame, each frame
counted in its phase: *approach* (the object not in the hand), *grasp* (in the closed hand, lifted) and
*insertion* (held within 2 cm of the hole's axis). Every frame renders the cell's cameras (colour + depth; the
wrist camera at the flange pose the robot reports), and :class:`perception.scene_estimator.SceneEstimator` (the
robot's code: fusion, tracking, the hand's pose and opening) estimates the scene. Errors are position [mm] and
rotation modulo the shape's symmetries [deg], over the frames where the object is not lost; "lost" is the share
of frames reported lost. "jit" is how much the error changes from one frame to the next within an episode (position:
sigma per axis of the change of the error vector / sqrt 2 [mm]; rotation: mean change of the error angle [deg]):
far below the error itself, the error is a slow offset rather than per-step noise, which is how the twin's error
model for RL (:mod:`sim.estimation`) splits it. Updates/s time fusion + estimator only (not rendering), one thread.

``--depth-model`` renders depth through the twin's D435-like model (:mod:`perception.depth_model`: z^2 noise,
stereo-shadow and edge holes, dark dropout, quantisation, per-camera extrinsic error); ``--noise-k`` adds plain
Gaussian depth noise with sigma = k z^2 (k = 0.004/m: 1.4 mm at 0.6 m) instead or on top.

Run: ``python benchmarks/object_state.py [--scenes 8] [--episodes 1] [--size 320x240] [--voxel-m 0.004]
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
from perception.object_state import EstimatorParams, TrackState
from perception.scene_estimator import SceneEstimator
from sim.env import TwinEnv
from sim.experts import make_expert
from sim.render import TwinRenderer


class Bench:
    def __init__(self, task: str, width: int, height: int, voxel_m: float, noise_k: float, stride: int,
                 global_registration: str = "shape", depth_model: bool = False, grasp_smoothing: float | None = None):
        self.env = TwinEnv(task=task, image_size=None)
        self.renderer = TwinRenderer(self.env.model, width, height, self.env.cell,
                                     depth_model=DepthModel(rng=0) if depth_model else None)
        names = [c.name for c in self.env.cell.cameras]
        intrinsics = {n: self.renderer.intrinsics(n) for n in names}
        self.scene = SceneEstimator(self.env.cell, self.env.task_config, intrinsics,
                                    EstimatorParams(global_registration=global_registration,
                                                    **({} if grasp_smoothing is None
                                                       else {"grasp_smoothing": grasp_smoothing})), voxel_m=voxel_m,
                                    stride=stride)
        self.cameras = names
        self.noise_k, self.rng = noise_k, np.random.default_rng(0)
        self.errors: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self.lost: dict[tuple[str, str], list[bool]] = {}
        # step-to-step change of each object's error within an episode: position error vector [mm] and rotation
        # error angle [deg]; small against the error itself means the error is an offset, not per-step noise
        self.jitter: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self._previous: dict[str, tuple[np.ndarray, float]] = {}
        self.update_s: list[float] = []

    def frames(self):
        frames = {}
        for camera in self.cameras:
            frame = self.renderer.render(self.env.data, camera)
            if self.noise_k > 0:
                z = frame.depth_m
                noisy = z + self.rng.normal(0.0, 1.0, z.shape).astype(np.float32) * self.noise_k * z * z
                frame = dataclasses.replace(frame, depth_m=np.where(z > 0, noisy, 0.0).astype(np.float32))
            frames[camera] = frame
        return frames

    def phase(self, default: str) -> str:
        """at rest / approach / grasp (the object in the closed hand) / insertion (held, over the hole)."""
        task = self.env.task
        if default == "at rest" or not task.config.objects:
            return default
        obj = task.config.objects[0]
        width = self.env.robot.read_state().gripper_width_m
        held = width < 2 * min(obj.half_size_m[:2]) + 0.006 and task.object_pose(obj.name).position_m[2] > 0.045
        if not held:
            return "approach"
        if task.config.fixtures:
            hole = task.fixture_pose(task.config.fixtures[0].name).position_m
            if np.hypot(*(task.object_pose(obj.name).position_m[:2] - hole[:2])) < 0.02:
                return "insertion"
        return "grasp"

    def measure(self, phase: str) -> None:
        frames = self.frames()
        t0 = time.perf_counter()
        estimate = self.scene.update(frames, self.env.robot.read_state(), float(self.env.data.time))
        self.update_s.append(time.perf_counter() - t0)
        phase = self.phase(phase)
        task = self.env.task
        for name, est in estimate.objects.items():
            truth = task.object_pose(name) if name in task.layout.object_names else task.fixture_pose(name)
            T_true = pose_to_matrix(truth.position_m, truth.quaternion_xyzw)
            lost = est.state is TrackState.lost
            self.lost.setdefault((name, phase), []).append(lost)
            if not lost:
                model = self.scene.tracker.models[name].model
                err_mm = 1e3 * float(np.linalg.norm(est.T_base_object[:3, 3] - T_true[:3, 3]))
                err_deg = float(np.degrees(symmetric_rotation_error_rad(model, est.T_base_object[:3, :3],
                                                                        T_true[:3, :3])))
                self.errors.setdefault((name, phase), []).append((err_mm, err_deg))
                err_vec_mm = 1e3 * (est.T_base_object[:3, 3] - T_true[:3, 3])
                if phase != "at rest" and name in self._previous:
                    before_mm, before_deg = self._previous[name]
                    self.jitter.setdefault((name, phase), []).append(
                        (float(np.sqrt(np.mean((err_vec_mm - before_mm) ** 2) / 2)), abs(err_deg - before_deg)))
                self._previous[name] = (err_vec_mm, err_deg)
            else:
                self._previous.pop(name, None)

    def at_rest(self, scenes: int) -> None:
        for seed in range(scenes):
            self.env.reset(seed=1000 + seed)
            self.scene.reset()
            self._previous.clear()
            self.measure("at rest")

    def grasp(self, episodes: int) -> None:
        for episode in range(episodes):
            obs, _ = self.env.reset(seed=2000 + episode)
            self.scene.reset()
            self._previous.clear()
            expert = make_expert(self.env.cell, self.env.task_config, seed=episode)
            for _ in range(self.env.task_config.horizon_steps):
                self.measure("episode")
                obs, _, done, truncated, _ = self.env.step(expert.act(obs))
                if done or truncated:
                    break


PHASES = ("at rest", "approach", "grasp", "insertion")


def row(task: str, phase: str, errors: list[tuple[float, float]], lost: list[bool],
        jitter: list[tuple[float, float]]) -> str:
    e = np.asarray(errors) if errors else np.full((1, 2), np.nan)
    j = np.asarray(jitter) if jitter else np.full((1, 2), np.nan)
    return (f"{task:<18}{phase:<12}{len(lost):>7}{np.mean(e[:, 0]):>9.1f}{np.percentile(e[:, 0], 95):>9.1f}"
            f"{np.mean(e[:, 1]):>9.1f}{np.percentile(e[:, 1], 95):>9.1f}{100 * np.mean(lost):>8.0f}%"
            f"{np.mean(j[:, 0]):>10.2f}{np.mean(j[:, 1]):>10.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["lift", "peg_insert"])
    parser.add_argument("--scenes", type=int, default=8, help="random scenes at rest per task")
    parser.add_argument("--episodes", type=int, default=1, help="scripted expert episodes per task (0: none)")
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT (320x240 stride 1: the twin's estimator)")
    parser.add_argument("--voxel-m", type=float, default=0.004)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--noise-k", type=float, default=0.0, help="stand-in depth noise sigma = k z^2 [1/m]")
    parser.add_argument("--global-registration", choices=["shape", "fpfh"], default="shape",
                        help="detection's initial guesses: the cluster's shape, or FPFH + RANSAC")
    parser.add_argument("--depth-model", action="store_true",
                        help="the twin's D435-like depth model (noise, holes, quantisation, extrinsic error)")
    parser.add_argument("--grasp-smoothing", type=float, default=None,
                        help="weight of a new fit of a held object (1: no smoothing; default: the estimator's)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    print(f"{args.size}, 3 cameras, stride {args.stride}, voxel {1e3 * args.voxel_m:.0f} mm, depth noise k "
          f"{args.noise_k}/m, D435 depth model {'on' if args.depth_model else 'off'}, "
          f"detection {args.global_registration}, grasp smoothing {args.grasp_smoothing or 'default'}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'task: object':<18}{'phase':<12}{'frames':>7}{'pos mm':>9}{'p95':>9}{'rot deg':>9}{'p95':>9}{'lost':>9}"
          f"{'jit mm':>10}{'jit deg':>10}")
    update_s = []
    for task in args.tasks:
        bench = Bench(task, width, height, args.voxel_m, args.noise_k, args.stride, args.global_registration,
                      args.depth_model, args.grasp_smoothing)
        bench.at_rest(args.scenes)
        bench.grasp(args.episodes)
        for (name, phase), lost in sorted(bench.lost.items(), key=lambda kv: (kv[0][0], PHASES.index(kv[0][1]))):
            print(row(f"{task}: {name}", phase, bench.errors.get((name, phase), []), lost,
                      bench.jitter.get((name, phase), [])))
        update_s += bench.update_s
        bench.renderer.close()
        bench.env.close()
    print(f"updates/s (fusion + estimator, 1 thread): {1 / np.mean(update_s):.1f} "
          f"(mean {1e3 * np.mean(update_s):.0f} ms, p95 {1e3 * np.percentile(update_s, 95):.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
