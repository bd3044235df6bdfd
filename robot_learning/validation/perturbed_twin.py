"""Stand-ins for real-robot recordings: episodes from a deliberately perturbed twin, with sensor noise.

Used to check that validation finds what is wrong (each perturbation must be detected and named) and to
derive its thresholds from clean-vs-clean variation. A perturbed twin differs from the nominal one in:

- ``friction_scale``: every geom's sliding friction multiplied (other pads, worn fingers, another surface);
- ``camera``: one camera's extrinsics moved by ``camera_offset_m`` and rotated by ``camera_rotvec_rad``
  (expressed in the camera's parent frame), as after a bump or a stale calibration;
- ``latency_steps``: each command reaches the arm that many policy steps late (the recorded action is what
  was sent, the executed one is older);
- sensor noise, which every "real" recording has, clean ones too: pixel noise (``image_noise_std``), joint
  encoder noise (``joint_noise_rad``, TCP noise through it), gripper width noise, and the object pose estimate's
  error (``object_noise_m``, ``object_noise_rad``; on the robot, initial object poses come from perception).
  This is what gives clean-vs-clean comparisons their spread, from which validation derives its thresholds.

Episodes are driven closed loop by the task's scripted expert, reading the perturbed observations, and stored
exactly like collected demonstrations.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from geometry.transforms import axis_angle_to_matrix, matrix_to_quat_xyzw, quat_xyzw_to_matrix
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.sessions.collect import dataset_specs
from sim.env import TwinEnv
from sim.experts import make_expert


@dataclass(frozen=True)
class Perturbation:
    name: str = "clean"
    friction_scale: float = 1.0
    camera: str | None = None
    camera_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    camera_rotvec_rad: tuple[float, float, float] = (0.0, 0.0, 0.0)
    latency_steps: int = 0
    image_noise_std: float = 2.0
    joint_noise_rad: float = 2e-4
    tcp_noise_m: float = 2e-4
    gripper_noise_m: float = 2e-4
    object_noise_m: float = 1.5e-3
    object_noise_rad: float = 0.02


# What validation must find (and name) in each: the self-test of ``manip-stack validate`` and the tests use these.
STANDARD_PERTURBATIONS: dict[str, Perturbation] = {
    "clean": Perturbation(),
    # mu 1.2 -> 0.006: the grasp slips and the cube falls (in most scenes: a cube wedged diagonally may still hold).
    # Milder changes (x0.05) let the cube sag <= 5 mm in the
    # fingers, within the spread that the measured initial object pose alone causes: nothing to detect.
    "friction": Perturbation(name="friction", friction_scale=0.005),
    # 2.5 cm along the mount's z and 2 degrees about it: a bumped camera
    "camera": Perturbation(name="camera", camera="cam_side", camera_offset_m=(0.0, 0.0, 0.025),
                           camera_rotvec_rad=(0.0, 0.0, float(np.radians(2.0)))),
    "latency": Perturbation(name="latency", latency_steps=1),  # 100 ms at 10 Hz
}
# Seeds of scenes where each is visible: the slippery cube falls at any friction scale from x0.003 to x0.01
# there (a cube wedged diagonally in the fingers can hold without friction, and then nothing differs).
STANDARD_SEEDS = {"clean": 2001, "friction": 2006, "camera": 2003, "latency": 2004}
EXPECTED_FINDINGS = {"clean": set(), "friction": {"object_dynamics"}, "camera": {"camera_extrinsics:cam_side"},
                     "latency": {"command_latency"}}


def apply_perturbation(env: TwinEnv, p: Perturbation) -> None:
    """Edit the compiled twin in place (model parameters, not the cell file, so the nominal twin is untouched)."""
    m = env.model
    if p.friction_scale != 1.0:
        m.geom_friction[:, 0] *= p.friction_scale
    if p.camera is not None:
        cam = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, p.camera)
        if cam < 0:
            raise KeyError(f"no camera {p.camera!r} in the twin")
        m.cam_pos[cam] += np.asarray(p.camera_offset_m)
        rot = quat_xyzw_to_matrix(np.roll(m.cam_quat[cam], -1))  # MuJoCo quaternions are (w, x, y, z)
        q = matrix_to_quat_xyzw(axis_angle_to_matrix(np.asarray(p.camera_rotvec_rad)) @ rot)
        m.cam_quat[cam] = np.roll(q, 1)


def record_perturbed_episodes(out: str | Path, perturbation: Perturbation, n_episodes: int, seed: int = 0,
                              cell: str = "franka_3cam", task: str = "lift",
                              image_size: tuple[int, int] = (96, 96), keep_failures: bool = True) -> Path:
    """Record ``n_episodes`` expert episodes in the perturbed twin into a store at ``out`` (seeds seed, seed+1...)."""
    env = TwinEnv(cell=cell, task=task, image_size=image_size)
    apply_perturbation(env, perturbation)
    attrs = {"cell": env.cell.name, "task": env.task_config.name, "source": f"perturbed_twin:{perturbation.name}",
             "policy_hz": env.cell.rates.policy_hz, "image_size": list(image_size),
             "perturbation": perturbation.__dict__ | {"camera_offset_m": list(perturbation.camera_offset_m),
                                                      "camera_rotvec_rad": list(perturbation.camera_rotvec_rad)}}
    rng = np.random.default_rng(seed + 12345)
    store = EpisodeStore.open_or_create(out, dataset_specs(env), attrs, durable=False)
    try:
        for k in range(n_episodes):
            _record(env, store, perturbation, seed + k, rng, keep_failures)
    finally:
        store.close()
        env.close()
    return Path(out)


def _noisy(env: TwinEnv, obs: dict[str, np.ndarray], p: Perturbation,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """What sensors would report: the twin's observation plus the noise model of ``p``.

    The task errors (``privileged_relative``) are recomputed from the noisy TCP and object poses, so the two stay
    one consistent, equally noisy estimate of the scene.
    """
    out = dict(obs)
    for key, value in obs.items():
        if key.endswith("_rgb") and p.image_noise_std > 0:
            noisy = value.astype(np.float32) + rng.normal(0.0, p.image_noise_std, value.shape)
            out[key] = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    out["joint_pos"] = obs["joint_pos"] + rng.normal(0.0, p.joint_noise_rad, 7).astype(np.float32)
    out["tcp_position"] = obs["tcp_position"] + rng.normal(0.0, p.tcp_noise_m, 3).astype(np.float32)
    out["gripper_width"] = obs["gripper_width"] + rng.normal(0.0, p.gripper_noise_m, 1).astype(np.float32)
    poses = obs["privileged"].reshape(-1, 7).astype(float)
    for pose in poses:
        pose[:3] += rng.normal(0.0, p.object_noise_m, 3)
        rot = axis_angle_to_matrix(rng.normal(0.0, p.object_noise_rad, 3)) @ quat_xyzw_to_matrix(pose[3:])
        pose[3:] = matrix_to_quat_xyzw(rot)
    out["privileged"] = poses.reshape(-1).astype(np.float32)
    if "privileged_relative" in obs:
        tcp_quaternion_xyzw = env.robot.read_state().tcp_quaternion_xyzw
        out["privileged_relative"] = env.task.relative_state(out["tcp_position"], tcp_quaternion_xyzw,
                                                             privileged=out["privileged"])
    return out


def _record(env: TwinEnv, store: EpisodeStore, p: Perturbation, seed: int, rng: np.random.Generator,
            keep_failures: bool) -> None:
    obs, _ = env.reset(seed=seed)
    obs = _noisy(env, obs, p, rng)
    expert = make_expert(env.cell, env.task_config, seed=seed)
    in_flight: deque[np.ndarray] = deque()
    success = False
    with store.begin_episode({"seed": seed, "task": env.task_config.name, "operator": "scripted_expert",
                              "perturbation": p.name}) as ep:
        for _ in range(env.task_config.horizon_steps):
            action = expert.act(obs)
            in_flight.append(action)
            # Until the first command arrives the arm holds, gripper open.
            executed = in_flight.popleft() if len(in_flight) > p.latency_steps else np.zeros(7, np.float32)
            stamp = env.data.time
            next_obs, reward, terminated, truncated, info = env.step(executed)
            ep.add_step(**obs, action=action, reward=np.float32(reward), timestamp=np.float64(stamp))
            obs = _noisy(env, next_obs, p, rng)
            if terminated or truncated:
                success = bool(info["success"])
                break
        if success or keep_failures:
            ep.commit(success=success)
