"""The intrinsics check: the right intrinsics explain the corners; wrong ones show, and a fresh fit finds the truth."""

import numpy as np
import pytest
from synthetic import INTRINSICS, detection, transform

from calibration.intrinsics import IntrinsicsCheckError, check_intrinsics


def board_views(noise_px: float, n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < n:  # the board 0.4-0.8 m away, tilted up to ~35 degrees
        T_cam_board = transform(rng.normal(size=3) * 0.35, [-0.09, -0.12, rng.uniform(0.4, 0.8)])
        view = detection(T_cam_board, noise_px, rng)
        if view is not None:
            found.append(view)
    return found


def test_the_factory_intrinsics_reproject_the_corners_to_the_noise_level():
    check = check_intrinsics(board_views(noise_px=0.1), INTRINSICS)
    assert check.passed() and check.reprojection_rms_px < 0.15 and check.n_views == 12
    assert check.estimate is None


def test_a_focal_length_3_percent_off_passes_reprojection_but_the_fresh_estimate_exposes_it():
    detections = board_views(noise_px=0.1)
    wrong = INTRINSICS.model_copy(update={"fx": INTRINSICS.fx * 1.03, "fy": INTRINSICS.fy * 1.03})
    right = check_intrinsics(detections, INTRINSICS, estimate=True)
    off = check_intrinsics(detections, wrong, estimate=True)
    assert off.reprojection_rms_px < 0.2  # each view's PnP absorbs a focal error into the board's distance
    assert right.passed(given=INTRINSICS) and not off.passed(given=wrong)
    assert off.estimate.difference(wrong)["fx"] < -0.02 * wrong.fx  # the estimate is well below the wrong value
    truth_error = off.estimate.difference(INTRINSICS)
    assert all(abs(truth_error[k]) < 2.0 for k in ("fx", "fy", "cx", "cy"))  # pixels, of ~615: the truth
    assert off.estimate.rms_px < 0.15


def test_estimating_needs_enough_views():
    with pytest.raises(IntrinsicsCheckError, match="needs 5 views"):
        check_intrinsics(board_views(noise_px=0.0, n=3), INTRINSICS, estimate=True)
