"""The calibration session core: move the arm through a plan, collect board views, solve, judge, report.

Runtime-neutral: it drives a :class:`controllers.safe_robot.SafeRobot` (every target filtered, as always)
and reads images through a :class:`ViewSource` (twin renders, or live cameras via :class:`CameraViews`).
Nothing is written here; :mod:`calibration.cell_file` writes a result only if :attr:`CalibrationReport.passed`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from calibration.board import BoardPose, CharucoBoardSpec, detect_board, estimate_board_pose
from calibration.handeye import HandEyeError, HandEyeSolution, Method, Setup, solve_all, view_rotation_residuals_deg
from calibration.multicam import PairConsistency, consistency, relative_pose
from calibration.poses import order_plan
from controllers.interface import CartesianTarget, RobotState
from controllers.interpolation import interpolate_pose
from controllers.safe_robot import SafeRobot
from geometry.transforms import invert, matrix_to_quat_xyzw, quat_xyzw_to_matrix, rotation_angle_between
from hardware_configs.schema import CellConfig, Intrinsics
from perception.cameras.base import Camera, Frame, StaleFrameError

logger = logging.getLogger(__name__)


class ViewSource(Protocol):
    def intrinsics(self, camera: str) -> Intrinsics: ...

    def capture(self, camera: str) -> Frame:
        """A frame taken after this call began (the arm is at rest by then)."""
        ...


class CameraViews:
    """Live (or playback) cameras as a :class:`ViewSource`: waits for the first frame newer than the request."""

    def __init__(self, cameras: Mapping[str, Camera], timeout_s: float = 2.0) -> None:
        self.cameras, self.timeout_s = dict(cameras), timeout_s

    def intrinsics(self, camera: str) -> Intrinsics:
        return self.cameras[camera].intrinsics

    def capture(self, camera: str) -> Frame:
        asked_s = time.monotonic()
        if not self.cameras[camera].wait_for_frame(asked_s, self.timeout_s):
            raise StaleFrameError(f"camera {camera}: no new frame within {self.timeout_s} s")
        return next(f for f in self.cameras[camera].recent_frames() if f.host_time_s > asked_s)


@dataclass(frozen=True)
class Thresholds:
    """What a calibration must reach before it may be written into the cell file.

    The decisive ones are the corner reprojection error and the 1-sigma uncertainty of the refined solution.
    The per-view rotation and translation residuals and the pair check compare against single-view PnP
    poses, whose own noise dominates them, so their limits only catch gross errors (a camera knocked
    during the session, wrong flange poses). Views whose PnP rotation is off by more than
    ``pnp_outlier_deg`` (PnP's mirror ambiguity) are dropped and the camera solved again.
    """

    min_views: int = 8
    max_reprojection_rms_px: float = 1.0
    max_uncertainty_deg: float = 0.1
    max_uncertainty_mm: float = 1.0
    max_rotation_rms_deg: float = 2.0
    max_translation_rms_mm: float = 5.0
    max_pair_rotation_deg: float = 1.0
    max_pair_translation_mm: float = 10.0
    pnp_outlier_deg: float = 10.0


@dataclass
class View:
    """One arm pose: the measured flange pose and each camera's board pose (``None``: board not found)."""

    T_base_flange: np.ndarray
    boards: dict[str, BoardPose | None]


@dataclass
class CameraResult:
    camera: str
    setup: Setup
    solutions: list[HandEyeSolution]
    n_views: int
    problems: list[str] = field(default_factory=list)
    dropped_views: int = 0

    @property
    def best(self) -> HandEyeSolution | None:
        return self.solutions[0] if self.solutions else None

    @property
    def passed(self) -> bool:
        return self.best is not None and not self.problems


@dataclass
class CalibrationReport:
    cameras: dict[str, CameraResult]
    pairs: list[PairConsistency]
    pair_problems: list[str]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.cameras.values()) and not self.pair_problems

    def extrinsics(self) -> dict[str, np.ndarray]:
        """Best ``T_base_cam`` (static) or ``T_flange_cam`` (wrist) of every solved camera."""
        return {name: r.best.T_solution for name, r in self.cameras.items() if r.best is not None}


def flange_pose(state: RobotState, cell: CellConfig) -> np.ndarray:
    """``T_base_flange`` from a state's TCP pose (the TCP is the flange offset along its own axes)."""
    T_base_tcp = np.eye(4)
    T_base_tcp[:3, :3] = quat_xyzw_to_matrix(state.tcp_quaternion_xyzw)
    T_base_tcp[:3, 3] = state.tcp_position_m
    T_flange_tcp = np.eye(4)
    T_flange_tcp[:3, 3] = cell.robot.tcp_offset_m
    return T_base_tcp @ invert(T_flange_tcp)


def tcp_target(T_base_flange: np.ndarray, cell: CellConfig, gripper_closure: float = 0.0) -> CartesianTarget:
    position = T_base_flange[:3, :3] @ np.asarray(cell.robot.tcp_offset_m) + T_base_flange[:3, 3]
    return CartesianTarget(position, matrix_to_quat_xyzw(T_base_flange[:3, :3]), gripper_closure)


MIN_JERK_PEAK_SPEED = 1.875  # peak over mean speed of a minimum-jerk profile


def move_to(robot: SafeRobot, goal: CartesianTarget, speed_m_s: float = 0.23, speed_rad_s: float = 0.55,
            settle_s: float = 1.5, still_rad_s: float = 2e-3) -> RobotState:
    """Send a minimum-jerk path to ``goal`` one control tick at a time, then hold until the arm is still.

    ``speed_*`` are the path's peak speeds: keep them under the cell's limits, or the safety filter will
    slow the path down (safe, but the arm then lags the path and takes longer to settle).
    """
    state = robot.read_state()
    start = state.tcp_target(goal.gripper_closure)
    distance_m = float(np.linalg.norm(goal.position_m - start.position_m))
    angle_rad = rotation_angle_between(quat_xyzw_to_matrix(goal.quaternion_xyzw),
                                       quat_xyzw_to_matrix(start.quaternion_xyzw))
    duration_s = max(MIN_JERK_PEAK_SPEED * max(distance_m / speed_m_s, angle_rad / speed_rad_s), 0.2)
    t0_s = now_s = state.stamp_s
    while now_s - t0_s < duration_s:
        tau = min((now_s - t0_s) / duration_s, 1.0)
        robot.send_target(interpolate_pose(start, goal, tau**3 * (10 - 15 * tau + 6 * tau**2)))
        now_s = robot.wait_for_tick()
    t1_s = now_s
    while now_s - t1_s < settle_s:
        robot.send_target(goal)
        now_s = robot.wait_for_tick()
        if np.linalg.norm(robot.read_state().joint_velocities_rad_s) < still_rad_s and now_s - t1_s > 0.1:
            break
    return robot.read_state()


def collect_views(robot: SafeRobot, source: ViewSource, cell: CellConfig, board: CharucoBoardSpec,
                  plan: Sequence[np.ndarray], cameras: Sequence[str], corner_noise_px: float = 0.0,
                  rng: np.random.Generator | None = None) -> list[View]:
    """Visit every planned flange pose, then look for the board with every camera.

    ``corner_noise_px`` adds Gaussian noise to detected corners (sim studies of how accuracy degrades).
    """
    rng = rng or np.random.default_rng(0)
    views: list[View] = []
    plan = order_plan(plan, flange_pose(robot.read_state(), cell))
    for index, T_planned in enumerate(plan):
        state = move_to(robot, tcp_target(T_planned, cell))
        T_base_flange = flange_pose(state, cell)
        boards: dict[str, BoardPose | None] = {}
        for camera in cameras:
            frame = source.capture(camera)
            detection = detect_board(frame.color, board)
            if detection is not None and corner_noise_px > 0:
                noisy = detection.corners_px + rng.normal(0.0, corner_noise_px, detection.corners_px.shape)
                detection = type(detection)(detection.ids, noisy, detection.object_points_m)
            boards[camera] = None if detection is None else estimate_board_pose(detection, source.intrinsics(camera))
        seen = [c for c, b in boards.items() if b is not None]
        logger.info("pose %d/%d (%.1f s): board seen by %s", index + 1, len(plan), state.stamp_s, seen or "no camera")
        views.append(View(T_base_flange, boards))
    return views


def solve_camera(camera: str, setup: Setup, views: Sequence[View], intr: Intrinsics, thresholds: Thresholds,
                 methods: Sequence[Method] | None = None) -> CameraResult:
    """All hand-eye methods for one camera (best first) and the thresholds it misses, if any."""
    usable = [v for v in views if v.boards.get(camera) is not None]
    result = CameraResult(camera, setup, [], len(usable))
    if len(usable) < thresholds.min_views:
        result.problems.append(f"{len(usable)} views with the board, need {thresholds.min_views}")
        if len(usable) < 3:
            return result
    kwargs = {} if methods is None else {"methods": methods}
    flanges, boards = [v.T_base_flange for v in usable], [v.boards[camera] for v in usable]
    try:
        result.solutions = solve_all(setup, flanges, boards, intr, **kwargs)
        outliers = view_rotation_residuals_deg(result.best, flanges, boards) > thresholds.pnp_outlier_deg
        if outliers.any() and (~outliers).sum() >= 3:
            result.dropped_views = int(outliers.sum())
            flanges = [f for f, out in zip(flanges, outliers, strict=True) if not out]
            boards = [b for b, out in zip(boards, outliers, strict=True) if not out]
            result.solutions = solve_all(setup, flanges, boards, intr, **kwargs)
            result.n_views = len(boards)
    except (HandEyeError, np.linalg.LinAlgError) as exc:
        result.problems.append(f"hand-eye failed: {exc}")
        return result
    res, sigma = result.best.residuals, result.best.uncertainty
    checks = [("reprojection RMS", res.reprojection_rms_px, thresholds.max_reprojection_rms_px, "px"),
              ("rotation RMS", res.rotation_rms_deg, thresholds.max_rotation_rms_deg, "deg"),
              ("translation RMS", res.translation_rms_mm, thresholds.max_translation_rms_mm, "mm")]
    if sigma is not None:
        checks += [("rotation 1-sigma", sigma.rotation_deg, thresholds.max_uncertainty_deg, "deg"),
                   ("translation 1-sigma", sigma.translation_mm, thresholds.max_uncertainty_mm, "mm")]
    result.problems += [f"{name} {value:.3f} {unit} > {limit} {unit}" for name, value, limit, unit in checks
                        if value > limit]
    return result


def check_pairs(results: Mapping[str, CameraResult], views: Sequence[View], thresholds: Thresholds
                ) -> tuple[list[PairConsistency], list[str]]:
    """Board-only relative poses of every pair of eye-to-hand cameras against their hand-eye results."""
    static = [name for name, r in results.items() if r.setup is Setup.eye_to_hand and r.best is not None]
    pairs, problems = [], []
    for i, a in enumerate(static):
        for b in static[i + 1:]:
            estimate = relative_pose(a, b, [v.boards for v in views])
            if estimate is None:
                continue
            pair = consistency(estimate, results[a].best.T_solution, results[b].best.T_solution)
            pairs.append(pair)
            if pair.rotation_deg > thresholds.max_pair_rotation_deg:
                problems.append(f"{a}/{b} disagree by {pair.rotation_deg:.3f} deg")
            if pair.translation_mm > thresholds.max_pair_translation_mm:
                problems.append(f"{a}/{b} disagree by {pair.translation_mm:.2f} mm")
    return pairs, problems
