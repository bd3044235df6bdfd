"""From the policy's rate (10 Hz actions) to the control rate (100 Hz): poses interpolated between targets.

Positions and gripper closure are interpolated linearly, orientations by slerp along the short way.
Nothing here enforces limits: the safety filter downstream does, so this module only has to be smooth
and continuous (a new chunk starts from the pose being commanded now, never from a stale one).
"""

from __future__ import annotations

import math

import numpy as np

from controllers.interface import CartesianTarget
from geometry.transforms import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
)


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
