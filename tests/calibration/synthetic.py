"""Synthetic board views of a known camera: corners projected exactly (plus optional noise), for hand-eye tests."""

from __future__ import annotations

import numpy as np

from calibration.board import BoardDetection, BoardPose, CharucoBoardSpec, estimate_board_pose
from calibration.handeye import Setup
from geometry.transforms import axis_angle_to_matrix, invert
from hardware_configs.schema import Intrinsics
from perception.geometry import project_points

INTRINSICS = Intrinsics(width=640, height=480, fx=615.0, fy=614.0, cx=321.5, cy=243.2)
BOARD = CharucoBoardSpec()


def transform(rotvec, translation) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = axis_angle_to_matrix(np.asarray(rotvec, dtype=float)), translation
    return T


# The truth of each setup: X (what hand-eye solves) and Y (the board's pose).
TRUTH = {
    Setup.eye_in_hand: (transform([0.1, -0.2, 1.5], [0.05, -0.03, 0.08]), transform([np.pi, 0, 0.2], [0.5, 0.0, 0.0])),
    Setup.eye_to_hand: (transform([2.0, 0.3, -0.5], [1.2, 0.1, 0.5]), transform([0.3, 0.2, 0.1], [0.02, 0.03, 0.15])),
}


def board_in_camera(setup: Setup, X: np.ndarray, Y: np.ndarray, T_base_flange: np.ndarray) -> np.ndarray:
    if setup is Setup.eye_in_hand:
        return invert(X) @ invert(T_base_flange) @ Y
    return invert(X) @ T_base_flange @ Y


def detection(T_cam_board: np.ndarray, noise_px: float, rng: np.random.Generator,
              intr: Intrinsics = INTRINSICS) -> BoardDetection | None:
    points = BOARD.corner_points_m() @ T_cam_board[:3, :3].T + T_cam_board[:3, 3]
    uv, depth = project_points(points, intr)
    inside = (depth > 0) & np.all(uv > 0, axis=1) & (uv[:, 0] < intr.width) & (uv[:, 1] < intr.height)
    if inside.sum() < 10:
        return None
    ids = np.flatnonzero(inside)
    return BoardDetection(ids, uv[inside] + rng.normal(0.0, noise_px, (len(ids), 2)), BOARD.corner_points_m(ids))


def views(setup: Setup, n: int, noise_px: float, seed: int = 0) -> tuple[list[np.ndarray], list[BoardPose]]:
    """``n`` flange poses around a nominal one and the board poses the camera measures from them."""
    rng = np.random.default_rng(seed)
    X, Y = TRUTH[setup]
    flanges, poses = [], []
    while len(poses) < n:
        T_base_flange = transform(rng.normal(size=3) * 0.4 + [np.pi, 0, 0], [0.5, 0, 0.4] + rng.normal(size=3) * 0.08)
        found = detection(board_in_camera(setup, X, Y, T_base_flange), noise_px, rng)
        if found is not None:
            flanges.append(T_base_flange)
            poses.append(estimate_board_pose(found, INTRINSICS))
    return flanges, poses
