"""KAGI dense reward: keypoints chosen by a VLM at the episode's start, lifted to 3-D, tracked, rewarded.

At ``reset`` (the keyframe) the model is shown marked images and picks a grasp point, via-points and a target;
the grasp point is attached to its object (stored in the object's frame, so it moves with the object: via
the twin's pose here, a pose tracker on the robot), the others are fixed in the base frame. Waypoints, in
order (MOKA's pre-contact, contact, post-contact): the TCP passes the pre-grasp point above the grasp point,
reaches the grasp point and holds it (the gripper closed on something), then the grasp point reaches each
via-point and the target. Per step: ``success_reward`` when the task succeeds, else ``lambda * (k + phi) / M`` with
``k`` waypoints reached (latched, in order), ``phi`` in [0, 1] the progress to the next one relative to where
that segment started, ``M`` the number of waypoints. A failed query falls back to the sparse reward.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geometry.transforms import invert, pose_to_matrix
from hardware_configs.schema import TaskConfig
from robot_learning.rewards.base import Breakdown, Obs
from robot_learning.rewards.fm.client import FMClient
from robot_learning.rewards.fm.structured import ask_structured
from robot_learning.rewards.kagi.camera import Keyframe, KeyframeSource
from robot_learning.rewards.kagi.marks import Mark, build_marks
from robot_learning.rewards.kagi.prompt import KagiAnswer, build_messages
from robot_learning.rewards.scene import ObjectPoseSource, PrivilegedPoses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KagiConfig:
    n_object_points: int = 4
    tile_grid: tuple[int, int] = (4, 4)
    reach_radius_m: float = 0.03  # TCP to its pre-grasp point and to its grasp target
    # A parallel gripper holds with its pads, below the top contact the model picks: the TCP's target is the
    # grasp point lowered by this much (0 for a suction cup or a push).
    tcp_below_grasp_point_m: float = 0.02
    waypoint_radius_m: float = 0.02  # grasp point to a via-point or the target
    holding_width_m: tuple[float, float] = (0.01, 0.065)  # fingers closed but held apart by something: a grasp
    dense_scale: float = 0.5  # lambda
    success_reward: float = 1.0
    max_repairs: int = 2


@dataclass
class KagiPlan:
    """The model's choice lifted to 3-D: where the grasp point sits on its object, and where it must go."""

    grasp_object: str
    grasp_in_object_m: np.ndarray  # grasp point in the object's frame
    waypoints_base_m: list[np.ndarray]  # via-points then the target, base frame
    answer: KagiAnswer
    marks: list[Mark] = field(default_factory=list)


@dataclass
class QueryStats:
    queries: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reset_ms: float = 0.0


def lift_answer(answer: KagiAnswer, marks: list[Mark], object_poses: dict[str, Any]) -> KagiPlan:
    """3-D keypoints from the chosen labels (their marks carry depth-lifted base-frame points)."""
    by_label = {m.label: m for m in marks}
    grasp = by_label[answer.grasp]
    pose = object_poses[grasp.object]
    T_obj_base = invert(pose_to_matrix(pose.position_m, pose.quaternion_xyzw))
    grasp_obj = T_obj_base[:3, :3] @ np.array(grasp.point_base_m) + T_obj_base[:3, 3]
    waypoints = [np.array(by_label[c.mark].point_base_m) + np.array([0.0, 0.0, c.height_above_m])
                 for c in [*answer.waypoints, answer.target]]
    return KagiPlan(grasp.object or "", grasp_obj, waypoints, answer, marks)


class KagiReward:
    """:class:`~robot_learning.rewards.base.RewardFunction` from VLM-chosen keypoints."""

    name = "kagi"

    def __init__(self, task: TaskConfig, client: FMClient | None, keyframes: KeyframeSource,
                 poses: ObjectPoseSource | None = None, config: KagiConfig | None = None):
        self.task, self.client, self.keyframes = task, client, keyframes
        self.poses = poses or PrivilegedPoses(task)
        self.config = config or KagiConfig()
        self.plan: KagiPlan | None = None
        self.frames: list[Keyframe] = []
        self.prompt_images: list[np.ndarray] = []
        self.stats = QueryStats()
        self.fallback_reason = ""
        self._k = 0
        self._segment_start_m = 1.0

    def reset(self, obs: Obs, info: dict[str, Any]) -> None:
        start = time.perf_counter()
        self.plan, self._k, self.fallback_reason = None, 0, ""
        try:
            self.plan = self._query(obs)
        finally:
            self.stats.reset_ms += (time.perf_counter() - start) * 1e3
        if self.plan is not None:
            self._segment_start_m = max(self._distance_to_next(obs), self.config.reach_radius_m)

    def close(self) -> None:
        """Frees the keyframe renderers (GL contexts); the client's cache belongs to whoever made it."""
        close_keyframes = getattr(self.keyframes, "close", None)
        if close_keyframes is not None:
            close_keyframes()

    def _query(self, obs: Obs) -> KagiPlan | None:
        self.frames = self.keyframes(obs)
        marks = build_marks(self.frames, self.config.n_object_points, self.config.tile_grid)
        messages, self.prompt_images = build_messages(self.task.instruction, self.frames, marks, self.config.tile_grid)
        if self.client is None or not any(m.kind == "object" for m in marks):
            return self._fallback("no model client" if self.client is None else "no object visible in the keyframe")
        self.stats.queries += 1
        kinds = {m.label: m.kind for m in marks}
        result = ask_structured(self.client, messages, KagiAnswer, context={"mark_kinds": kinds},
                                max_repairs=self.config.max_repairs)
        self.stats.prompt_tokens += result.prompt_tokens
        self.stats.completion_tokens += result.completion_tokens
        if not result.ok:
            return self._fallback(result.errors[-1] if result.errors else "no answer")
        return lift_answer(result.value, marks, self.poses.poses(obs))

    def _fallback(self, reason: str) -> None:
        self.fallback_reason = reason
        self.stats.fallbacks += 1
        log.warning("KAGI keypoints unavailable (%s): this episode uses the sparse reward", reason)
        return None

    def grasp_point_m(self, obs: Obs) -> np.ndarray:
        """The grasp keypoint now: it moves with its object."""
        assert self.plan is not None
        pose = self.poses.poses(obs)[self.plan.grasp_object]
        T = pose_to_matrix(pose.position_m, pose.quaternion_xyzw)
        return T[:3, :3] @ self.plan.grasp_in_object_m + T[:3, 3]

    def _mover_and_target(self, obs: Obs) -> tuple[np.ndarray, np.ndarray]:
        """What must reach the next waypoint (the TCP, then the grasp point) and where that waypoint is now."""
        assert self.plan is not None
        grasp = self.grasp_point_m(obs)
        if self._k < 2:  # the TCP's waypoints: above the grasp target, then the grasp target itself
            above = self.plan.answer.pre_grasp_height_m if self._k == 0 else 0.0
            return np.asarray(obs["tcp_position"], dtype=float), grasp + np.array(
                [0.0, 0.0, above - self.config.tcp_below_grasp_point_m])
        return grasp, self.plan.waypoints_base_m[self._k - 2]

    def _distance_to_next(self, obs: Obs) -> float:
        mover, target = self._mover_and_target(obs)
        return float(np.linalg.norm(mover - target))

    def _passed_within(self, obs: Obs, next_obs: Obs) -> float:
        """Closest approach to the next waypoint during the step: a via-point is passed, not stopped at, and a
        10 Hz step moves up to 2.5 cm."""
        start, _ = self._mover_and_target(obs)
        end, target = self._mover_and_target(next_obs)
        seg = end - start
        t = float(np.clip(np.dot(target - start, seg) / max(float(np.dot(seg, seg)), 1e-12), 0.0, 1.0))
        return float(np.linalg.norm(start + t * seg - target))

    def _reached(self, obs: Obs, distance_m: float) -> bool:
        if self._k == 1:  # contact means holding: closing above the object (width -> 0) does not count
            low, high = self.config.holding_width_m
            holding = low <= float(np.asarray(obs["gripper_width"]).reshape(-1)[0]) <= high
            return distance_m <= self.config.reach_radius_m and holding
        return distance_m <= (self.config.reach_radius_m if self._k == 0 else self.config.waypoint_radius_m)

    @property
    def n_waypoints(self) -> int:
        return 0 if self.plan is None else 2 + len(self.plan.waypoints_base_m)

    def __call__(self, obs: Obs, action: np.ndarray, next_obs: Obs, info: dict[str, Any]) -> tuple[float, Breakdown]:
        success = bool(info.get("success", False))
        if self.plan is None:
            return (self.config.success_reward if success else 0.0), {"success": float(success), "fallback": 1.0}
        m = self.n_waypoints
        d = self._distance_to_next(next_obs) if self._k < m else 0.0
        passed = d if self._k in (1, m) else self._passed_within(obs, next_obs)  # the grasp must hold, not pass
        while self._k < m and self._reached(next_obs, passed):
            self._k += 1
            d = passed = self._distance_to_next(next_obs) if self._k < m else 0.0
            self._segment_start_m = max(d, self.config.waypoint_radius_m)
        phi = 0.0 if self._k >= m else float(np.clip(1.0 - d / self._segment_start_m, 0.0, 1.0))
        progress = (self._k + phi) / m
        reward = self.config.success_reward if success else self.config.dense_scale * progress
        return reward, {"success": float(success), "waypoints_reached": float(self._k), "phi": phi,
                        "distance_m": d, "progress": progress, "fallback": 0.0}
