"""Scripted experts for the twin's tasks: closed-loop state machines over privileged object poses.

They act through the same 7-D delta action as a policy or a teleoperator, with Gaussian action noise
(so demonstrations cover recoveries), and read only the observation dict (so they also run inside
vector envs). They give the demonstrations the diffusion policy is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controllers.actions import ActionLimits
from controllers.observations import matrix_from_rot6d
from geometry.transforms import matrix_to_axis_angle
from hardware_configs.schema import CellConfig, TaskConfig

# TCP orientation pointing down with the fingers closing along base y (the twin's home orientation).
R_DOWN = np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]])


def rot_z(yaw_rad: float) -> np.ndarray:
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def tcp_yaw(rot6d: np.ndarray) -> float:
    """Yaw of a downward TCP relative to :data:`R_DOWN` (rot6d holds the first two matrix columns)."""
    x_axis = rot6d[:3]
    return float(np.arctan2(-x_axis[1], -x_axis[0]))


def quat_yaw(q_xyzw: np.ndarray) -> float:
    x, y, z, w = q_xyzw
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def wrap_quarter_turn(angle_rad: float) -> float:
    """Wrap to [-pi/4, pi/4): a square's yaw is defined modulo a quarter turn."""
    return float((angle_rad + np.pi / 4) % (np.pi / 2) - np.pi / 4)


@dataclass
class ExpertNoise:
    translation_std_m: float = 0.002
    rotation_std_rad: float = 0.01


class ScriptedExpert:
    """Base: turns a desired TCP pose + gripper into a bounded delta action, with noise."""

    def __init__(self, cell: CellConfig, task: TaskConfig, rng: np.random.Generator, noise: ExpertNoise | None = None):
        self.task = task
        self.rng = rng
        self.noise = noise or ExpertNoise()
        limits = ActionLimits.from_cell(cell)
        self.max_step_m, self.max_rot_rad = limits.max_translation_m, limits.max_rotation_rad
        self.phase = "approach"
        self._phase_steps = 0

    def reset(self) -> None:
        self.phase, self._phase_steps = "approach", 0

    def _goto(self, phase: str) -> None:
        self.phase, self._phase_steps = phase, 0

    def _action(self, obs: dict, target_pos: np.ndarray, target_yaw: float, gripper: float,
                gain: float = 1.0, noisy: bool = True, max_step_m: float | None = None) -> np.ndarray:
        delta = gain * (target_pos - obs["tcp_position"])
        limit = max_step_m or self.max_step_m
        norm = np.linalg.norm(delta)
        if norm > limit:
            delta *= limit / norm
        rot_err = matrix_to_axis_angle(rot_z(target_yaw) @ R_DOWN @ matrix_from_rot6d(obs["tcp_rot6d"]).T)
        angle = np.linalg.norm(rot_err)
        if angle > self.max_rot_rad:
            rot_err *= self.max_rot_rad / angle
        if noisy:
            delta = delta + self.rng.normal(0, self.noise.translation_std_m, 3)
            rot_err = rot_err + self.rng.normal(0, self.noise.rotation_std_rad, 3)
        self._phase_steps += 1
        return np.concatenate([delta, rot_err, [gripper]]).astype(np.float32)

    def _grasp_yaw(self, obs: dict, object_yaw: float) -> float:
        """Object yaw (mod quarter turn) closest to the current TCP yaw."""
        current = tcp_yaw(obs["tcp_rot6d"])
        return current + wrap_quarter_turn(object_yaw - current)

    def act(self, obs: dict) -> np.ndarray:
        raise NotImplementedError


class LiftExpert(ScriptedExpert):
    def act(self, obs: dict) -> np.ndarray:
        obj = obs["privileged"][:7]
        pos, yaw = obj[:3], quat_yaw(obj[3:7])
        grasp_yaw = self._grasp_yaw(obs, yaw)
        above = pos + np.array([0.0, 0.0, 0.10])
        grasp = pos + np.array([0.0, 0.0, -0.005])
        if self.phase == "approach":
            if np.linalg.norm(obs["tcp_position"] - above) < 0.01 or self._phase_steps > 40:
                self._goto("descend")
            return self._action(obs, above, grasp_yaw, 0.0)
        if self.phase == "descend":
            if np.linalg.norm(obs["tcp_position"] - grasp) < 0.006 or self._phase_steps > 30:
                self._goto("close")
            return self._action(obs, grasp, grasp_yaw, 0.0, noisy=False)
        if self.phase == "close":
            if self._phase_steps >= 6:
                self._goto("lift")
            return self._action(obs, grasp, grasp_yaw, 1.0, noisy=False)
        return self._action(obs, pos + np.array([0.0, 0.0, 0.18]), tcp_yaw(obs["tcp_rot6d"]), 1.0)


class PegInsertExpert(ScriptedExpert):
    """Grasp the peg, carry it over the hole, align position and yaw from the measured peg pose, insert."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        fixture = self.task.fixtures[0]
        self.fixture_height_m = fixture.height_m
        self.peg_half_height_m = self.task.objects[0].half_size_m[-1]

    def act(self, obs: dict) -> np.ndarray:
        peg, hole = obs["privileged"][:7], obs["privileged"][7:14]
        peg_pos, peg_yaw = peg[:3], quat_yaw(peg[3:7])
        tcp = obs["tcp_position"]
        grasp = peg_pos + np.array([0.0, 0.0, self.peg_half_height_m - 0.022])
        if self.phase == "approach":
            target = grasp + np.array([0.0, 0.0, 0.10])
            if np.linalg.norm(tcp - target) < 0.01 or self._phase_steps > 40:
                self._goto("descend")
            return self._action(obs, target, self._grasp_yaw(obs, peg_yaw), 0.0)
        if self.phase == "descend":
            if np.linalg.norm(tcp - grasp) < 0.005 or self._phase_steps > 30:
                self._goto("close")
            return self._action(obs, grasp, self._grasp_yaw(obs, peg_yaw), 0.0, noisy=False)
        if self.phase == "close":
            if self._phase_steps >= 6:
                self._goto("lift")
            return self._action(obs, grasp, self._grasp_yaw(obs, peg_yaw), 1.0, noisy=False)

        # Carrying: place the peg (not the TCP) over the hole, so slip in the fingers is corrected.
        offset = peg_pos - tcp
        yaw_error = wrap_quarter_turn(quat_yaw(hole[3:7]) - peg_yaw)
        target_yaw = tcp_yaw(obs["tcp_rot6d"]) + yaw_error
        clear_z = hole[2] + self.fixture_height_m + self.peg_half_height_m + 0.03
        hover = np.array([hole[0], hole[1], clear_z]) - np.array([offset[0], offset[1], 0.0])
        hover[2] = clear_z - offset[2]
        if self.phase == "lift":
            target = np.array([tcp[0], tcp[1], hover[2]])
            if tcp[2] > hover[2] - 0.01 or self._phase_steps > 20:
                self._goto("carry")
            return self._action(obs, target, target_yaw, 1.0)
        lateral = np.hypot(*(peg_pos[:2] - hole[:2]))
        if self.phase == "carry":
            if (lateral < 0.0015 and abs(yaw_error) < 0.02) or self._phase_steps > 60:
                self._goto("insert")
            near = lateral < 0.02
            return self._action(obs, hover, target_yaw, 1.0, gain=0.8 if near else 1.0, noisy=not near)
        # insert: descend slowly while keeping the peg centred over the hole
        bottom_target = hole[2] + 0.004 + self.peg_half_height_m
        target = np.array([hover[0], hover[1], bottom_target - offset[2]])
        if lateral > 0.004 and peg_pos[2] - self.peg_half_height_m > hole[2] + self.fixture_height_m:
            self._goto("carry")
        return self._action(obs, target, target_yaw, 1.0, gain=0.8, noisy=False, max_step_m=0.008)


EXPERTS: dict[str, type[ScriptedExpert]] = {"lift": LiftExpert, "peg_insert": PegInsertExpert}


def make_expert(cell: CellConfig, task: TaskConfig, seed: int, noise: ExpertNoise | None = None) -> ScriptedExpert:
    try:
        cls = EXPERTS[task.name]
    except KeyError:
        raise KeyError(f"no scripted expert for task {task.name!r}; experts exist for {sorted(EXPERTS)}") from None
    return cls(cell, task, np.random.default_rng(seed), noise)
