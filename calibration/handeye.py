"""Hand-eye calibration: where a camera is on the wrist (eye-in-hand) or in the cell (eye-to-hand).

Both setups have two unknown rigid transforms, related in every view ``i`` by the robot's flange pose
``T_base_flange[i]`` and the board pose the camera measured, ``T_cam_board[i]``:

- eye-in-hand (camera on the flange, board fixed on the table):
  ``T_base_flange[i] @ T_flange_cam @ T_cam_board[i] = T_base_board``
- eye-to-hand (camera fixed, board on the flange):
  ``T_base_cam @ T_cam_board[i] = T_base_flange[i] @ T_flange_board``

OpenCV solves them in closed form by several methods (``calibrateHandEye``: Tsai, Park, Horaud, Andreff,
Daniilidis; ``calibrateRobotWorldHandEye``: Shah, Li). Each result is then judged the same way, by the
board poses it predicts: rotation [deg] and board-centre translation [mm] against each measured pose,
and reprojection of the detected corners [px]. ``refine`` minimises that reprojection error over both
unknowns at once (Levenberg-Marquardt), starting from the best closed-form result: the closed forms
minimise algebraic errors, the refinement the one the pixels actually have.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares

from calibration.board import BoardPose, ideal_pixels, reprojection_errors_px
from geometry.transforms import axis_angle_to_matrix, invert, rotation_angle_between
from hardware_configs.schema import Intrinsics

MIN_VIEWS = 3


class HandEyeError(ValueError):
    pass


class Setup(str, enum.Enum):
    eye_in_hand = "eye_in_hand"
    eye_to_hand = "eye_to_hand"


class Method(str, enum.Enum):
    tsai = "tsai"
    park = "park"
    horaud = "horaud"
    andreff = "andreff"
    daniilidis = "daniilidis"
    shah = "shah"
    li = "li"
    refined = "refined"


_HAND_EYE_FLAGS = {
    Method.tsai: cv2.CALIB_HAND_EYE_TSAI,
    Method.park: cv2.CALIB_HAND_EYE_PARK,
    Method.horaud: cv2.CALIB_HAND_EYE_HORAUD,
    Method.andreff: cv2.CALIB_HAND_EYE_ANDREFF,
    Method.daniilidis: cv2.CALIB_HAND_EYE_DANIILIDIS,
}
_ROBOT_WORLD_FLAGS = {Method.shah: cv2.CALIB_ROBOT_WORLD_HAND_EYE_SHAH, Method.li: cv2.CALIB_ROBOT_WORLD_HAND_EYE_LI}
CLOSED_FORM_METHODS = tuple(_HAND_EYE_FLAGS) + tuple(_ROBOT_WORLD_FLAGS)


@dataclass(frozen=True)
class Residuals:
    """How well a solution explains the views: RMS and max over views (rotation, translation) or corners (px)."""

    rotation_rms_deg: float
    rotation_max_deg: float
    translation_rms_mm: float
    translation_max_mm: float
    reprojection_rms_px: float
    reprojection_max_px: float
    n_views: int


@dataclass(frozen=True)
class Uncertainty:
    """1-sigma uncertainty of a refined solution (from the Jacobian at the optimum, scaled by the fit's
    residual variance): the largest rotation [deg] and translation [mm] standard deviation over all axes."""

    rotation_deg: float
    translation_mm: float


@dataclass(frozen=True)
class HandEyeSolution:
    """``T_solution`` is T_flange_cam (eye-in-hand) or T_base_cam (eye-to-hand); ``T_board`` is the other unknown.
    ``uncertainty`` is known for the refined solution only."""

    setup: Setup
    method: Method
    T_solution: np.ndarray
    T_board: np.ndarray
    residuals: Residuals
    uncertainty: Uncertainty | None = None


def mean_pose(transforms: Sequence[np.ndarray]) -> np.ndarray:
    """Chordal mean of rigid transforms: the rotation nearest to the mean matrix (SVD), the mean translation."""
    mats = np.asarray(transforms)
    U, _, Vt = np.linalg.svd(mats[:, :3, :3].sum(axis=0))
    rot = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    T = np.eye(4)
    T[:3, :3] = rot
    T[:3, 3] = mats[:, :3, 3].mean(axis=0)
    return T


def _predicted_board_in_cam(setup: Setup, X: np.ndarray, Y: np.ndarray, T_base_flange: np.ndarray) -> np.ndarray:
    if setup is Setup.eye_in_hand:  # X = T_flange_cam, Y = T_base_board
        return invert(X) @ invert(T_base_flange) @ Y
    return invert(X) @ T_base_flange @ Y  # X = T_base_cam, Y = T_flange_board


def _board_from_solution(setup: Setup, X: np.ndarray, T_base_flange: Sequence[np.ndarray],
                         views: Sequence[BoardPose]) -> np.ndarray:
    if setup is Setup.eye_in_hand:
        return mean_pose([Tbf @ X @ v.T_cam_board for Tbf, v in zip(T_base_flange, views, strict=True)])
    return mean_pose([invert(Tbf) @ X @ v.T_cam_board for Tbf, v in zip(T_base_flange, views, strict=True)])


def residuals(setup: Setup, X: np.ndarray, Y: np.ndarray, T_base_flange: Sequence[np.ndarray],
              views: Sequence[BoardPose], intr: Intrinsics) -> Residuals:
    """Per-view disagreement between the board pose a solution predicts and the one the camera measured."""
    rot_deg, trans_mm, pixels = [], [], []
    for Tbf, view in zip(T_base_flange, views, strict=True):
        predicted = _predicted_board_in_cam(setup, X, Y, Tbf)
        centre = view.detection.object_points_m.mean(axis=0)
        measured_centre = view.T_cam_board[:3, :3] @ centre + view.T_cam_board[:3, 3]
        predicted_centre = predicted[:3, :3] @ centre + predicted[:3, 3]
        rot_deg.append(np.degrees(rotation_angle_between(predicted[:3, :3], view.T_cam_board[:3, :3])))
        trans_mm.append(1e3 * np.linalg.norm(predicted_centre - measured_centre))
        pixels.append(reprojection_errors_px(predicted, view.detection, intr))
    rot, trans, px = np.array(rot_deg), np.array(trans_mm), np.concatenate(pixels)
    return Residuals(float(np.sqrt(np.mean(rot**2))), float(rot.max()), float(np.sqrt(np.mean(trans**2))),
                     float(trans.max()), float(np.sqrt(np.mean(px**2))), float(px.max()), len(views))


def _split(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return T[:3, :3], T[:3, 3].reshape(3, 1)


def _join(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, np.asarray(t).reshape(3)
    return T


def solve(setup: Setup, T_base_flange: Sequence[np.ndarray], views: Sequence[BoardPose], intr: Intrinsics,
          method: Method = Method.park) -> HandEyeSolution:
    """One closed-form solution, with its residuals."""
    setup, method = Setup(setup), Method(method)
    if len(views) != len(T_base_flange):
        raise HandEyeError(f"{len(views)} board views but {len(T_base_flange)} flange poses")
    if len(views) < MIN_VIEWS:
        raise HandEyeError(f"hand-eye needs at least {MIN_VIEWS} views with the board, got {len(views)}")
    # OpenCV's "gripper" poses: T_base_flange for eye-in-hand, its inverse for eye-to-hand (the roles swap).
    gripper = [Tbf if setup is Setup.eye_in_hand else invert(Tbf) for Tbf in T_base_flange]
    if method in _HAND_EYE_FLAGS:
        R_g, t_g = zip(*(_split(T) for T in gripper), strict=True)
        R_t, t_t = zip(*(_split(v.T_cam_board) for v in views), strict=True)
        R_x, t_x = cv2.calibrateHandEye(R_g, t_g, R_t, t_t, method=_HAND_EYE_FLAGS[method])
        X = _join(R_x, t_x)
        Y = _board_from_solution(setup, X, T_base_flange, views)
    elif method in _ROBOT_WORLD_FLAGS:
        # calibrateRobotWorldHandEye solves T_cam_world[i] = T_cam_gripper @ T_gripper_base[i] @ T_base_world.
        if setup is Setup.eye_in_hand:  # world = board: T_cam_board[i] = T_cam_flange @ T_flange_base[i] @ T_base_board
            world_to_cam = [v.T_cam_board for v in views]
        else:  # camera <-> board swap: T_board_cam[i] = T_board_flange @ T_flange_base[i] @ T_base_cam
            world_to_cam = [invert(v.T_cam_board) for v in views]
        base_to_gripper = [invert(Tbf) for Tbf in T_base_flange]
        R_w, t_w = zip(*(_split(T) for T in world_to_cam), strict=True)
        R_b, t_b = zip(*(_split(T) for T in base_to_gripper), strict=True)
        R_bw, t_bw, R_gc, t_gc = cv2.calibrateRobotWorldHandEye(R_w, t_w, R_b, t_b, method=_ROBOT_WORLD_FLAGS[method])
        T_world_base, T_cam_gripper = _join(R_bw, t_bw), _join(R_gc, t_gc)
        if setup is Setup.eye_in_hand:
            X, Y = invert(T_cam_gripper), invert(T_world_base)  # T_flange_cam, T_base_board
        else:
            X, Y = invert(T_world_base), invert(T_cam_gripper)  # T_base_cam, T_flange_board
    else:
        valid = [m.value for m in CLOSED_FORM_METHODS]
        raise HandEyeError(f"{method.value} is not a closed-form method; valid: {valid}")
    return HandEyeSolution(setup, method, X, Y, residuals(setup, X, Y, T_base_flange, views, intr))


def _perturb(T: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``T`` moved by a small twist (rotation vector [rad], translation [m]) applied on the left."""
    out = np.eye(4)
    out[:3, :3] = axis_angle_to_matrix(delta[:3]) @ T[:3, :3]
    out[:3, 3] = T[:3, 3] + delta[3:]
    return out


def refine(initial: HandEyeSolution, T_base_flange: Sequence[np.ndarray], views: Sequence[BoardPose],
           intr: Intrinsics) -> HandEyeSolution:
    """Both unknowns refined together by minimising corner reprojection errors over all views."""
    setup = initial.setup
    ideal = [ideal_pixels(v.detection.corners_px, intr) for v in views]  # distortion removed once
    focal, centre = np.array([intr.fx, intr.fy]), np.array([intr.cx, intr.cy])

    def pixel_residuals(params: np.ndarray) -> np.ndarray:
        X, Y = _perturb(initial.T_solution, params[:6]), _perturb(initial.T_board, params[6:])
        out = []
        for Tbf, view, uv_ideal in zip(T_base_flange, views, ideal, strict=True):
            predicted = _predicted_board_in_cam(setup, X, Y, Tbf)
            points_cam = view.detection.object_points_m @ predicted[:3, :3].T + predicted[:3, 3]
            out.append((points_cam[:, :2] / points_cam[:, 2:3] * focal + centre - uv_ideal).ravel())
        return np.concatenate(out)

    fit = least_squares(pixel_residuals, np.zeros(12), method="lm", x_scale=np.full(12, 1e-2))
    X, Y = _perturb(initial.T_solution, fit.x[:6]), _perturb(initial.T_board, fit.x[6:])
    dof = max(len(fit.fun) - 12, 1)
    covariance = np.linalg.pinv(fit.jac.T @ fit.jac) * float(fit.fun @ fit.fun) / dof
    uncertainty = Uncertainty(float(np.degrees(np.sqrt(np.linalg.eigvalsh(covariance[:3, :3]).max()))),
                              float(1e3 * np.sqrt(np.linalg.eigvalsh(covariance[3:6, 3:6]).max())))
    return HandEyeSolution(setup, Method.refined, X, Y, residuals(setup, X, Y, T_base_flange, views, intr),
                           uncertainty)


def view_rotation_residuals_deg(solution: HandEyeSolution, T_base_flange: Sequence[np.ndarray],
                                views: Sequence[BoardPose]) -> np.ndarray:
    """Per view: angle [deg] between the board rotation a solution predicts and the one PnP measured.

    A few degrees is PnP noise on a small or distant board; tens of degrees is PnP's mirror ambiguity (a
    flipped pose), which would poison the closed-form methods.
    """
    return np.array([np.degrees(rotation_angle_between(
        _predicted_board_in_cam(solution.setup, solution.T_solution, solution.T_board, Tbf)[:3, :3],
        view.T_cam_board[:3, :3])) for Tbf, view in zip(T_base_flange, views, strict=True)])


def solve_all(setup: Setup, T_base_flange: Sequence[np.ndarray], views: Sequence[BoardPose], intr: Intrinsics,
              methods: Sequence[Method] = CLOSED_FORM_METHODS, with_refinement: bool = True) -> list[HandEyeSolution]:
    """Every requested method, plus the refinement of the best (lowest reprojection RMS); best first."""
    solutions = [solve(setup, T_base_flange, views, intr, m) for m in methods]
    solutions.sort(key=lambda s: s.residuals.reprojection_rms_px)
    if with_refinement:
        solutions.insert(0, refine(solutions[0], T_base_flange, views, intr))
        solutions.sort(key=lambda s: s.residuals.reprojection_rms_px)
    return solutions
