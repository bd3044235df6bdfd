"""Calibrate the cell's cameras in the twin: the full session against a world whose truth is known.

The twin is built from the *true* cell (where the cameras really are); the session plans from a *believed*
cell (the file being calibrated, e.g. with perturbed extrinsics) and its result is compared with the truth.
Two phases, as on the robot: the board bolted to the flange for the static cameras (eye-to-hand), then
lying on the table for the wrist camera (eye-in-hand). The arm moves only through ``SafeRobot``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import mujoco
import numpy as np

from calibration.board import CharucoBoardSpec
from calibration.handeye import Setup
from calibration.multicam import pose_difference
from calibration.poses import board_centre, eye_in_hand_plan, eye_to_hand_plan
from calibration.session import CalibrationReport, Thresholds, View, check_pairs, collect_views, solve_camera
from calibration.twin import BOARD_THICKNESS_M, TwinBoardViews, add_board
from controllers.safe_robot import SafeRobot
from geometry.transforms import axis_angle_to_matrix, matrix_to_pose
from hardware_configs.schema import CameraMount, CellConfig, Intrinsics, Pose
from sim.robot import TwinRobot
from sim.scene import FLANGE_BODY, ImageSize, build_spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimCalibrationConfig:
    board: CharucoBoardSpec = field(default_factory=CharucoBoardSpec)
    thresholds: Thresholds = field(default_factory=Thresholds)
    static_poses: int = 24
    wrist_poses: int = 16
    width: int = 640
    height: int = 480
    supersample: int = 2
    corner_noise_px: float = 0.0
    seed: int = 0


@dataclass
class SimCalibrationResult:
    report: CalibrationReport
    views: dict[Setup, list[View]]
    error_vs_truth: dict[str, tuple[float, float]]  # camera -> (rotation deg, translation mm) of the best solution
    intrinsics: dict[str, Intrinsics]  # what the views were solved with (the twin's, as a device's would be)
    seconds: float


def flange_board_mount(board: CharucoBoardSpec) -> np.ndarray:
    """``T_flange_board`` of the twin's flange-mounted board: on a bracket beside the gripper, its face turned
    up and outward so that with the gripper pointing down both static cameras see it."""
    visible_flange = np.array([-0.65, -0.62, -0.44])
    z_board = -visible_flange / np.linalg.norm(visible_flange)
    x_board = np.cross([0.0, 0.0, 1.0], z_board)
    x_board /= np.linalg.norm(x_board)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([x_board, np.cross(z_board, x_board), z_board])
    T[:3, 3] = np.array([-0.12, -0.12, 0.05]) - T[:3, :3] @ board_centre(board)
    return T


def table_board_pose(board: CharucoBoardSpec, centre_xy_m: tuple[float, float] = (0.45, 0.0)) -> np.ndarray:
    """``T_base_board`` of a board lying face up on the table, centred at ``centre_xy_m``."""
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])  # x along base x, z into the table
    T[:3, 3] = [centre_xy_m[0], centre_xy_m[1], BOARD_THICKNESS_M] - T[:3, :3] @ board_centre(board)
    return T


def perturb_extrinsics(cell: CellConfig, rng: np.random.Generator, translation_m: float = 0.02,
                       rotation_deg: float = 2.0) -> CellConfig:
    """The cell with every camera's extrinsics moved by ``translation_m`` and turned by ``rotation_deg``."""
    cameras = []
    for camera in cell.cameras:
        T = camera.extrinsics.matrix()
        axis = rng.normal(size=3)
        T[:3, :3] = axis_angle_to_matrix(axis / np.linalg.norm(axis) * np.radians(rotation_deg)) @ T[:3, :3]
        shift = rng.normal(size=3)
        T[:3, 3] += shift / np.linalg.norm(shift) * translation_m
        position, quaternion = matrix_to_pose(T)
        pose = Pose(parent=camera.extrinsics.parent, position_m=tuple(position), quaternion_xyzw=tuple(quaternion))
        cameras.append(camera.model_copy(update={"extrinsics": pose}))
    return cell.model_copy(update={"cameras": cameras})


def _twin_with_board(true_cell: CellConfig, config: SimCalibrationConfig, on_flange: bool
                     ) -> tuple[SafeRobot, TwinBoardViews]:
    spec = build_spec(true_cell, None, ImageSize(config.width, config.height))
    spec.visual.global_.offwidth = max(spec.visual.global_.offwidth, config.width * config.supersample)
    spec.visual.global_.offheight = max(spec.visual.global_.offheight, config.height * config.supersample)
    if on_flange:
        add_board(spec, config.board, spec.body(FLANGE_BODY), flange_board_mount(config.board))
    else:
        add_board(spec, config.board, spec.worldbody, table_board_pose(config.board))
    model = spec.compile()
    data = mujoco.MjData(model)
    robot = TwinRobot(model, data, true_cell)
    robot.reset_to()
    safe = SafeRobot(robot, true_cell)
    safe.safety_filter.reset(robot.read_state())
    return safe, TwinBoardViews(model, data, true_cell, config.width, config.height, config.supersample)


def run_sim_calibration(true_cell: CellConfig, believed_cell: CellConfig,
                        config: SimCalibrationConfig | None = None) -> SimCalibrationResult:
    """Calibrate every camera of the cell in the twin; compare the best solutions with the truth."""
    config = config or SimCalibrationConfig()
    start_s = time.monotonic()
    rng = np.random.default_rng(config.seed)
    static = [c.name for c in believed_cell.cameras if c.mount is CameraMount.static]
    wrist = [c.name for c in believed_cell.cameras if c.mount is CameraMount.wrist]
    results, all_views, intrinsics = {}, {}, {}
    phases = [(Setup.eye_to_hand, static), (Setup.eye_in_hand, wrist)]
    for setup, cameras in phases:
        if not cameras:
            continue
        robot, source = _twin_with_board(true_cell, config, on_flange=setup is Setup.eye_to_hand)
        try:
            if setup is Setup.eye_to_hand:
                plan = eye_to_hand_plan(believed_cell, cameras, config.board, flange_board_mount(config.board),
                                        config.static_poses, rng)
            else:
                plan = eye_in_hand_plan(believed_cell, cameras[0], config.board, table_board_pose(config.board),
                                        config.wrist_poses, rng)
            views = collect_views(robot, source, believed_cell, config.board, plan, cameras,
                                  corner_noise_px=config.corner_noise_px, rng=rng)
            for camera in cameras:
                intrinsics[camera] = source.intrinsics(camera)
                results[camera] = solve_camera(camera, setup, views, intrinsics[camera], config.thresholds)
            all_views[setup] = views
        finally:
            source.close()
    pairs, pair_problems = check_pairs(results, all_views.get(Setup.eye_to_hand, []), config.thresholds)
    report = CalibrationReport(results, pairs, pair_problems)
    errors = {name: pose_difference(r.best.T_solution, true_cell.camera(name).extrinsics.matrix())
              for name, r in results.items() if r.best is not None}
    return SimCalibrationResult(report, all_views, errors, intrinsics, time.monotonic() - start_s)
