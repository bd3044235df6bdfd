"""ChArUco calibration boards: the physical model, its printable image, detection and single-view pose.

Board frame (OpenCV's): origin at the top-left outer corner of the chessboard (inside the white margin),
x along the columns, y down the rows, z into the board (away from a viewer). Corner ``i`` of a board
with ``squares_x`` columns lies at ``((i % (squares_x - 1) + 1) * s, (i // (squares_x - 1) + 1) * s, 0)``.

Distortion is removed from detected corners with the stack's own camera model (:mod:`perception.geometry`,
which knows RealSense's inverse Brown-Conrady), so OpenCV's PnP always sees ideal pinhole points.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from hardware_configs.schema import Intrinsics
from perception.geometry import normalised_rays, project_points

MIN_CORNERS = 6


class BoardError(ValueError):
    pass


@dataclass(frozen=True)
class CharucoBoardSpec:
    """A printed ChArUco board: squares, their side [m], marker side [m], ArUco dictionary, white margin [m]."""

    squares_x: int = 5
    squares_y: int = 7
    square_length_m: float = 0.035
    marker_length_m: float = 0.026
    dictionary: str = "DICT_4X4_50"
    margin_m: float = 0.0175

    def __post_init__(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise BoardError(f"a ChArUco board needs at least 3x3 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_length_m < self.square_length_m:
            raise BoardError(f"marker_length_m {self.marker_length_m} must be in (0, square_length_m "
                             f"{self.square_length_m})")
        if not hasattr(cv2.aruco, self.dictionary):
            names = sorted(n for n in dir(cv2.aruco) if n.startswith("DICT_"))
            raise BoardError(f"unknown ArUco dictionary {self.dictionary!r}; valid: {names}")
        markers = self.squares_x * self.squares_y // 2
        available = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary)).bytesList.shape[0]
        if markers > available:
            raise BoardError(f"{self.squares_x}x{self.squares_y} needs {markers} markers; {self.dictionary} has "
                             f"{available}")

    @cached_property
    def cv_board(self) -> cv2.aruco.CharucoBoard:
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_length_m,
                                      self.marker_length_m, dictionary)

    @cached_property
    def detector(self) -> cv2.aruco.CharucoDetector:
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        return cv2.aruco.CharucoDetector(self.cv_board, cv2.aruco.CharucoParameters(), params)

    @property
    def n_corners(self) -> int:
        return (self.squares_x - 1) * (self.squares_y - 1)

    @property
    def size_m(self) -> tuple[float, float]:
        """Outer (width, height) [m] of the printed board, margin included."""
        return (self.squares_x * self.square_length_m + 2 * self.margin_m,
                self.squares_y * self.square_length_m + 2 * self.margin_m)

    def corner_points_m(self, ids: np.ndarray | None = None) -> np.ndarray:
        """(N, 3) board-frame positions of the chessboard corners ``ids`` (all corners by default)."""
        points = np.asarray(self.cv_board.getChessboardCorners(), dtype=np.float64)
        return points if ids is None else points[np.asarray(ids, dtype=int).reshape(-1)]

    def image(self, px_per_square: int = 200) -> np.ndarray:
        """Grayscale uint8 image of the whole board, margin included, exactly ``px_per_square`` per square."""
        margin_px = round(self.margin_m / self.square_length_m * px_per_square)
        size = (self.squares_x * px_per_square + 2 * margin_px, self.squares_y * px_per_square + 2 * margin_px)
        return self.cv_board.generateImage(size, marginSize=margin_px, borderBits=1)


@dataclass(frozen=True)
class BoardDetection:
    """ChArUco corners found in one image: ids, pixel positions (as detected, distorted) and board points."""

    ids: np.ndarray
    corners_px: np.ndarray
    object_points_m: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class BoardPose:
    """``T_cam_board`` from one view, with the RMS reprojection error of its corners [px]."""

    T_cam_board: np.ndarray
    reprojection_rms_px: float
    detection: BoardDetection


def detect_board(image: np.ndarray, board: CharucoBoardSpec, min_corners: int = MIN_CORNERS) -> BoardDetection | None:
    """ChArUco corners (sub-pixel) in an RGB or grayscale image; ``None`` with fewer than ``min_corners``."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    corners, ids, _, _ = board.detector.detectBoard(gray)
    if ids is None or len(ids) < min_corners:
        return None
    ids = ids.reshape(-1).astype(int)
    return BoardDetection(ids, corners.reshape(-1, 2).astype(np.float64), board.corner_points_m(ids))


def ideal_pixels(corners_px: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Detected pixels with the lens distortion removed (pinhole pixels of the same camera)."""
    rays = normalised_rays(corners_px, intr)
    return np.column_stack([rays[:, 0] * intr.fx + intr.cx, rays[:, 1] * intr.fy + intr.cy])


def reprojection_errors_px(T_cam_board: np.ndarray, detection: BoardDetection, intr: Intrinsics) -> np.ndarray:
    """Per-corner distance [px] between detected corners and the board points projected through ``T_cam_board``."""
    points_cam = detection.object_points_m @ T_cam_board[:3, :3].T + T_cam_board[:3, 3]
    uv, _ = project_points(points_cam, intr)
    return np.linalg.norm(uv - detection.corners_px, axis=1)


def estimate_board_pose(detection: BoardDetection, intr: Intrinsics) -> BoardPose | None:
    """Board pose in the camera's optical frame (IPPE, then Levenberg-Marquardt); ``None`` if PnP fails."""
    K = intr.matrix()
    image_points = ideal_pixels(detection.corners_px, intr)
    object_points = detection.object_points_m
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, K, None, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        return None
    rvec, tvec = cv2.solvePnPRefineLM(object_points, image_points, K, None, rvec, tvec)
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec.reshape(3)
    if T[2, 3] <= 0:
        return None
    errors = reprojection_errors_px(T, detection, intr)
    return BoardPose(T, float(np.sqrt(np.mean(errors**2))), detection)
