"""Hand-eye: every method recovers a known transform exactly from exact views; the refinement is the one to
trust when the corners are noisy."""

import numpy as np
import pytest
from synthetic import INTRINSICS, TRUTH, views

from calibration.handeye import CLOSED_FORM_METHODS, HandEyeError, Method, Setup, mean_pose, solve, solve_all
from calibration.multicam import pose_difference
from geometry.transforms import axis_angle_to_matrix


@pytest.mark.parametrize("setup", list(Setup))
@pytest.mark.parametrize("method", CLOSED_FORM_METHODS)
def test_every_method_recovers_the_truth_from_exact_views(setup, method):
    flanges, poses = views(setup, 12, noise_px=0.0)
    solution = solve(setup, flanges, poses, INTRINSICS, method)
    X, Y = TRUTH[setup]
    rotation_deg, translation_mm = pose_difference(solution.T_solution, X)
    assert rotation_deg < 1e-4 and translation_mm < 1e-3
    assert pose_difference(solution.T_board, Y)[1] < 1e-3
    assert solution.residuals.reprojection_rms_px < 1e-4 and solution.residuals.n_views == 12


@pytest.mark.parametrize("setup", list(Setup))
def test_with_noisy_corners_the_refinement_beats_every_closed_form_method(setup):
    flanges, poses = views(setup, 20, noise_px=0.3, seed=1)
    solutions = solve_all(setup, flanges, poses, INTRINSICS)
    assert solutions[0].method is Method.refined  # best first, by reprojection error
    assert {s.method for s in solutions} == {*CLOSED_FORM_METHODS, Method.refined}
    X, _ = TRUTH[setup]
    errors = {s.method: pose_difference(s.T_solution, X) for s in solutions}
    rotation_deg, translation_mm = errors[Method.refined]
    assert rotation_deg < 0.05 and translation_mm < 0.5
    assert all(errors[m][1] > translation_mm for m in CLOSED_FORM_METHODS)
    assert solutions[0].residuals.reprojection_rms_px == pytest.approx(0.3 * np.sqrt(2), rel=0.2)  # the noise


def test_too_few_views_or_mismatched_inputs_are_refused():
    flanges, poses = views(Setup.eye_in_hand, 4, noise_px=0.0)
    with pytest.raises(HandEyeError, match="at least 3 views"):
        solve(Setup.eye_in_hand, flanges[:2], poses[:2], INTRINSICS)
    with pytest.raises(HandEyeError, match="4 board views but 3 flange poses"):
        solve(Setup.eye_in_hand, flanges[:3], poses, INTRINSICS)
    with pytest.raises(HandEyeError, match="not a closed-form method"):
        solve(Setup.eye_in_hand, flanges, poses, INTRINSICS, Method.refined)


def test_the_mean_pose_of_symmetric_perturbations_is_the_centre():
    centre = np.eye(4)
    centre[:3, 3] = [0.1, 0.2, 0.3]
    perturbed = []
    for axis in np.eye(3):
        for sign in (1, -1):
            T = centre.copy()
            T[:3, :3] = axis_angle_to_matrix(axis * sign * 0.1)
            perturbed.append(T)
    rotation_deg, translation_mm = pose_difference(mean_pose(perturbed), centre)
    assert rotation_deg < 1e-9 and translation_mm < 1e-9
