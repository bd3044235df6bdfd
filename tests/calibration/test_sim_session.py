"""The calibration session in the twin: from extrinsics 20 mm and 2 degrees off, back to the truth.

One session (fixed seed, no added noise, 640x480 views) is shared by the tests of this module.
"""

import numpy as np
import pytest

from calibration.handeye import CLOSED_FORM_METHODS, Method, Setup
from calibration.intrinsics import check_intrinsics
from calibration.multicam import pose_difference
from calibration.report import format_report
from calibration.session import Thresholds, solve_camera
from calibration.sim import SimCalibrationConfig, perturb_extrinsics, run_sim_calibration


@pytest.fixture(scope="module")
def session(cell):
    believed = perturb_extrinsics(cell, np.random.default_rng(1), translation_m=0.02, rotation_deg=2.0)
    config = SimCalibrationConfig(static_poses=12, wrist_poses=8, seed=0)
    return believed, run_sim_calibration(cell, believed, config)


def test_every_camera_is_recovered_within_2_mm_and_0_2_degrees(cell, session):
    believed, result = session
    assert result.report.passed, format_report(result.report)
    for camera in cell.cameras:
        start_deg, start_mm = pose_difference(believed.camera(camera.name).extrinsics.matrix(),
                                              camera.extrinsics.matrix())
        assert start_deg == pytest.approx(2.0) and start_mm == pytest.approx(20.0)  # where it started
        rotation_deg, translation_mm = result.error_vs_truth[camera.name]
        assert rotation_deg < 0.2 and translation_mm < 2.0, camera.name


def test_static_cameras_are_solved_eye_to_hand_and_the_wrist_camera_eye_in_hand(session):
    _, result = session
    setups = {name: r.setup for name, r in result.report.cameras.items()}
    assert setups == {"cam_front": Setup.eye_to_hand, "cam_side": Setup.eye_to_hand, "cam_wrist": Setup.eye_in_hand}
    for camera_result in result.report.cameras.values():
        assert camera_result.n_views >= 8
        assert {s.method for s in camera_result.solutions} == {*CLOSED_FORM_METHODS, Method.refined}
        best = camera_result.best.residuals
        assert best.reprojection_rms_px < 0.2 and best.translation_rms_mm < 3.0 and best.rotation_rms_deg < 0.5


def test_the_static_cameras_agree_with_each_other_through_shared_board_views(session):
    _, result = session
    (pair,) = result.report.pairs
    assert (pair.camera_a, pair.camera_b) == ("cam_front", "cam_side")
    assert pair.n_views >= 3 and pair.rotation_deg < 0.5 and pair.translation_mm < 5.0


def test_the_intrinsics_the_views_were_solved_with_explain_them(session):
    _, result = session
    views = result.views[Setup.eye_to_hand]
    detections = [v.boards["cam_front"].detection for v in views if v.boards["cam_front"] is not None]
    intr = result.intrinsics["cam_front"]
    check = check_intrinsics(detections, intr, estimate=True)
    assert check.passed(given=intr) and check.reprojection_rms_px < 0.2


def test_a_result_that_misses_a_threshold_is_refused_with_the_reason(session):
    _, result = session
    strict = Thresholds(max_reprojection_rms_px=0.001, min_views=50)
    refused = solve_camera("cam_wrist", Setup.eye_in_hand, result.views[Setup.eye_in_hand],
                           result.intrinsics["cam_wrist"], strict)
    assert not refused.passed
    assert any("need 50" in p for p in refused.problems)
    assert any(p.startswith("reprojection RMS") for p in refused.problems)


def test_the_report_is_a_readable_table(session):
    believed, result = session
    text = format_report(result.report, all_methods=True,
                         believed={c.name: c.extrinsics.matrix() for c in believed.cameras})
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["camera", "setup", "method"]
    assert sum(line.startswith("cam_") for line in lines) == 3
    assert text.count("refined") == 3 and "tsai" in text and "daniilidis" in text
    assert "pair cam_front/cam_side" in text and text.endswith("thresholds: passed")
