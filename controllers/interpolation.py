"""From the policy's rate (10 Hz action chunks) to the control rate: time-stamped waypoints, interpolated.

Positions and gripper closure are interpolated linearly, orientations by slerp along the short way.
Nothing here enforces limits: the safety filter downstream does, so this module only has to be smooth
and continuous (a new chunk starts from the pose being commanded now, never from a stale one).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

import numpy as np

from controllers.interface import CartesianTarget
from geometry.transforms import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
)

Waypoint = tuple[float, CartesianTarget]


def slerp_xyzw(q_a: np.ndarray, q_b: np.ndarray, fraction: float) -> np.ndarray:
    """Quaternion (x, y, z, w), w >= 0, a ``fraction`` of the way from ``q_a`` to ``q_b`` along the short way.

    Done on rotations rather than on quaternion components, so ``q`` and ``-q`` give the same result.
    """
    R_a = quat_xyzw_to_matrix(q_a)
    rotvec_ab_rad = matrix_to_axis_angle(quat_xyzw_to_matrix(q_b) @ R_a.T)  # angle in [0, pi]: the short way
    return matrix_to_quat_xyzw(axis_angle_to_matrix(fraction * rotvec_ab_rad) @ R_a)


def interpolate_pose(a: CartesianTarget, b: CartesianTarget, fraction: float) -> CartesianTarget:
    """The target ``fraction`` (clipped to [0, 1]: no extrapolation) of the way from ``a`` to ``b``."""
    if not math.isfinite(fraction):
        raise ValueError(f"interpolation fraction must be finite, got {fraction}")
    f = min(max(float(fraction), 0.0), 1.0)
    position_m = (1.0 - f) * np.asarray(a.position_m, dtype=float) + f * np.asarray(b.position_m, dtype=float)
    gripper = (1.0 - f) * float(a.gripper_closure) + f * float(b.gripper_closure)
    return CartesianTarget(position_m, slerp_xyzw(a.quaternion_xyzw, b.quaternion_xyzw, f), gripper)


def upsample(start: CartesianTarget, goal: CartesianTarget, steps: int) -> list[CartesianTarget]:
    """``steps`` evenly spaced targets from ``start`` (exclusive) to ``goal`` (inclusive), one per control tick."""
    if steps < 1:
        raise ValueError(f"upsample needs at least one step, got {steps}")
    return [interpolate_pose(start, goal, k / steps) for k in range(1, steps + 1)]


class TimedWaypoints:
    """A piecewise trajectory of targets at given times [s], sampled at any time.

    Before the first waypoint it holds the first, after the last it holds the last. ``extend`` schedules
    a new chunk the way diffusion_policy's ``PoseTrajectoryInterpolator.schedule_waypoint`` does: the
    pose sampled now becomes the start, so the commanded pose never jumps when a chunk arrives.
    """

    def __init__(self, waypoints: Iterable[Waypoint] = ()) -> None:
        self._times_s: list[float] = []
        self._targets: list[CartesianTarget] = []
        self._replace(list(waypoints))

    def __len__(self) -> int:
        return len(self._times_s)

    @property
    def times_s(self) -> tuple[float, ...]:
        return tuple(self._times_s)

    @property
    def waypoints(self) -> list[Waypoint]:
        return list(zip(self._times_s, self._targets, strict=True))

    def sample(self, t_s: float) -> CartesianTarget:
        """The target at time ``t_s`` (held before the first and after the last waypoint)."""
        if not self._times_s:
            raise ValueError("TimedWaypoints is empty: nothing to sample; extend() it first")
        if not math.isfinite(t_s):
            raise ValueError(f"sample time must be finite, got {t_s}")
        i = bisect.bisect_right(self._times_s, t_s)
        if i == 0:
            return self._targets[0]
        if i == len(self._times_s):
            return self._targets[-1]
        t_a, t_b = self._times_s[i - 1], self._times_s[i]
        return interpolate_pose(self._targets[i - 1], self._targets[i], (t_s - t_a) / (t_b - t_a))

    def extend(self, waypoints: Iterable[Waypoint], now_s: float) -> int:
        """Replace everything after ``now_s`` with ``waypoints``; returns how many were dropped as late.

        Waypoints at or before ``now_s`` are dropped (their time has passed). The pose sampled at
        ``now_s`` is kept as a waypoint at ``now_s``, so the trajectory is continuous. On an empty
        trajectory with only late waypoints, the latest one is kept so there is something to hold.
        """
        if not math.isfinite(now_s):
            raise ValueError(f"now_s must be finite, got {now_s}")
        given = _checked(waypoints)
        future = [w for w in given if w[0] > now_s]
        if self._times_s:
            self._replace([(now_s, self.sample(now_s)), *future])
        elif future:
            self._replace(future)
        elif given:
            latest = max(given, key=lambda w: w[0])
            self._replace([latest])
            return len(given) - 1
        return len(given) - len(future)

    def _replace(self, waypoints: list[Waypoint]) -> None:
        # Sorted by time; for equal times the last given wins (a stable sort keeps their order).
        by_time: dict[float, CartesianTarget] = {}
        for t_s, target in sorted(_checked(waypoints), key=lambda w: w[0]):
            by_time[t_s] = target
        self._times_s = list(by_time)
        self._targets = list(by_time.values())


def _checked(waypoints: Iterable[Waypoint]) -> list[Waypoint]:
    out = []
    for t_s, target in waypoints:
        if not math.isfinite(t_s):
            raise ValueError(f"waypoint time must be finite, got {t_s}")
        out.append((float(t_s), target))
    return out
