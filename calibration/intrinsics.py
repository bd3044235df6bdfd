"""Check a camera's factory intrinsics against board views, and optionally estimate them afresh.

RealSense cameras ship calibrated, and the stack uses the intrinsics the device reports. This check says
whether those still explain what the camera sees: with the given intrinsics, each view's best board pose
should reproject its corners to within a fraction of a pixel. That catches distortion and gross errors but
not a focal length a few percent off (each view's PnP absorbs it into the board's distance), so
``estimate=True`` also runs OpenCV's ``calibrateCamera`` on the same corners and reports how far its focal
lengths and principal point are from the given ones; a large difference is a reason to re-run the vendor's
calibration, not to patch the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.board import BoardDetection, estimate_board_pose, ideal_pixels, reprojection_errors_px
from hardware_configs.schema import Intrinsics

MIN_VIEWS_FOR_ESTIMATE = 5


class IntrinsicsCheckError(ValueError):
    pass


@dataclass(frozen=True)
class IntrinsicsEstimate:
    """``calibrateCamera``'s pinhole (no distortion fitted beyond what the given model removed) and its RMS."""

    fx: float
    fy: float
    cx: float
    cy: float
    rms_px: float

    def difference(self, intr: Intrinsics) -> dict[str, float]:
        """Estimate minus given, in pixels, for fx, fy, cx, cy."""
        return {"fx": self.fx - intr.fx, "fy": self.fy - intr.fy, "cx": self.cx - intr.cx, "cy": self.cy - intr.cy}


@dataclass(frozen=True)
class IntrinsicsCheck:
    reprojection_rms_px: float
    reprojection_max_px: float
    n_views: int
    estimate: IntrinsicsEstimate | None

    def passed(self, max_rms_px: float = 0.5, max_focal_fraction: float = 0.01, max_principal_px: float = 5.0,
               given: Intrinsics | None = None) -> bool:
        """Reprojection within ``max_rms_px``; with an estimate (and ``given``), focal lengths within
        ``max_focal_fraction`` and the principal point within ``max_principal_px`` of the given ones."""
        if self.reprojection_rms_px > max_rms_px:
            return False
        if self.estimate is None or given is None:
            return True
        diff = self.estimate.difference(given)
        return (abs(diff["fx"]) <= max_focal_fraction * given.fx and abs(diff["fy"]) <= max_focal_fraction * given.fy
                and abs(diff["cx"]) <= max_principal_px and abs(diff["cy"]) <= max_principal_px)


def check_intrinsics(detections: Sequence[BoardDetection], intr: Intrinsics, estimate: bool = False) -> IntrinsicsCheck:
    """Reprojection error of every view's PnP pose under ``intr``; with ``estimate``, a fresh calibration too."""
    poses = [p for p in (estimate_board_pose(d, intr) for d in detections) if p is not None]
    if not poses:
        raise IntrinsicsCheckError("no view gave a board pose; need views with at least 6 corners")
    errors = np.concatenate([reprojection_errors_px(p.T_cam_board, p.detection, intr) for p in poses])
    result_estimate = None
    if estimate:
        if len(detections) < MIN_VIEWS_FOR_ESTIMATE:
            raise IntrinsicsCheckError(
                f"estimating intrinsics needs {MIN_VIEWS_FOR_ESTIMATE} views, got {len(detections)}")
        result_estimate = _calibrate(detections, intr)
    return IntrinsicsCheck(float(np.sqrt(np.mean(errors**2))), float(errors.max()), len(poses), result_estimate)


def _calibrate(detections: Sequence[BoardDetection], intr: Intrinsics) -> IntrinsicsEstimate:
    """Pinhole fit to the distortion-free corners (the lens model stays the factory's), seeded by ``intr``."""
    object_points = [d.object_points_m.astype(np.float32) for d in detections]
    image_points = [ideal_pixels(d.corners_px, intr).astype(np.float32) for d in detections]
    flags = (cv2.CALIB_USE_INTRINSIC_GUESS | cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2
             | cv2.CALIB_FIX_K3)
    rms, K, _, _, _ = cv2.calibrateCamera(object_points, image_points, (intr.width, intr.height),
                                          intr.matrix().copy(), np.zeros(5), flags=flags)
    return IntrinsicsEstimate(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), float(rms))
