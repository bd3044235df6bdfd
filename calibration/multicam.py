"""Static cameras relative to each other, from views in which both saw the board at the same time.

For every shared view ``T_a_b = T_a_board @ inv(T_b_board)``; their chordal mean is the board-only estimate
of the pair, and its scatter says how well the views agree. Comparing it with what the two hand-eye results
imply (``inv(T_base_a) @ T_base_b``) checks the cell's extrinsics for consistency without trusting either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from calibration.board import BoardPose
from calibration.handeye import mean_pose
from geometry.transforms import invert, rotation_angle_between


@dataclass(frozen=True)
class PairEstimate:
    """``T_a_b`` of two cameras from ``n_views`` shared board views, with the scatter of the per-view estimates."""

    camera_a: str
    camera_b: str
    T_a_b: np.ndarray
    n_views: int
    rotation_rms_deg: float
    translation_rms_mm: float


@dataclass(frozen=True)
class PairConsistency:
    """Disagreement between the board-only ``T_a_b`` and the one implied by two hand-eye results."""

    camera_a: str
    camera_b: str
    rotation_deg: float
    translation_mm: float
    n_views: int


def pose_difference(T_1: np.ndarray, T_2: np.ndarray) -> tuple[float, float]:
    """(rotation [deg], translation [mm]) between two transforms of the same frames."""
    return (float(np.degrees(rotation_angle_between(T_1[:3, :3], T_2[:3, :3]))),
            float(1e3 * np.linalg.norm(T_1[:3, 3] - T_2[:3, 3])))


def relative_pose(camera_a: str, camera_b: str, views: Sequence[Mapping[str, BoardPose | None]],
                  min_views: int = 3, outlier_deg: float = 10.0) -> PairEstimate | None:
    """Board-only ``T_a_b`` from the views in which both cameras found the board; ``None`` with too few.

    Estimates more than ``outlier_deg`` from the medoid (a flipped PnP pose in either camera) are left out.
    """
    shared = [v for v in views if v.get(camera_a) is not None and v.get(camera_b) is not None]
    estimates = [v[camera_a].T_cam_board @ invert(v[camera_b].T_cam_board) for v in shared]
    if len(estimates) < min_views:
        return None
    angles = np.array([[pose_difference(Ti, Tj)[0] for Tj in estimates] for Ti in estimates])
    medoid = estimates[int(np.argmin(angles.sum(axis=1)))]
    estimates = [T for T in estimates if pose_difference(T, medoid)[0] <= outlier_deg]
    if len(estimates) < min_views:
        return None
    mean = mean_pose(estimates)
    rot, trans = zip(*(pose_difference(T, mean) for T in estimates), strict=True)
    return PairEstimate(camera_a, camera_b, mean, len(estimates), float(np.sqrt(np.mean(np.square(rot)))),
                        float(np.sqrt(np.mean(np.square(trans)))))


def consistency(pair: PairEstimate, T_base_a: np.ndarray, T_base_b: np.ndarray) -> PairConsistency:
    """How far the hand-eye extrinsics of two static cameras are from their board-only relative pose."""
    rot_deg, trans_mm = pose_difference(invert(T_base_a) @ T_base_b, pair.T_a_b)
    return PairConsistency(pair.camera_a, pair.camera_b, rot_deg, trans_mm, pair.n_views)
