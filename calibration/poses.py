"""Flange poses that show the board to the cameras, planned from the extrinsics believed before calibrating.

Hand-eye needs views whose flange rotations differ about several axes (tens of degrees) and boards seen
at a slant, not face-on (PnP rotations of face-on boards are poorly determined). The plans draw such
poses at random around a nominal one, keep the tool centre point inside the workspace box with a margin,
and keep the flange within ``max_tilt_deg`` of its nominal orientation (the arm can reach them without
passing near joint limits). A few centimetres or degrees of error in the believed extrinsics only shift
where the board appears in the image, which is why planning from them works.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calibration.board import CharucoBoardSpec
from geometry.transforms import axis_angle_to_matrix, invert, rotation_angle_between
from hardware_configs.schema import CameraConfig, CellConfig
from perception.geometry import project_points, transform_points

# The flange pointing straight down with its x axis along base -x (the Panda's home orientation).
R_BASE_FLANGE_NOMINAL = np.diag([-1.0, 1.0, -1.0])
MAX_DRAWS = 20000


class PlanningError(RuntimeError):
    pass


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    return axis_angle_to_matrix(_unit(rng.normal(size=3)) * np.radians(rng.uniform(0.0, max_deg)))


def board_centre(board: CharucoBoardSpec) -> np.ndarray:
    """Centre of the chessboard in the board frame [m]."""
    return np.array([board.squares_x * board.square_length_m / 2, board.squares_y * board.square_length_m / 2, 0.0])


def board_visible(camera: CameraConfig, T_base_cam: np.ndarray, T_base_board: np.ndarray, board: CharucoBoardSpec,
                  margin_px: float = 25.0, max_angle_deg: float = 60.0) -> bool:
    """Whether the whole board would appear inside the image, facing the camera within ``max_angle_deg``
    (predicted from the believed extrinsics and the file's intrinsics)."""
    T_cam_board = invert(T_base_cam) @ T_base_board
    facing = -T_cam_board[:3, 2]  # the board's visible normal, in the camera frame
    to_camera = -(T_cam_board[:3, :3] @ board_centre(board) + T_cam_board[:3, 3])
    if facing @ _unit(to_camera) < np.cos(np.radians(max_angle_deg)):
        return False
    uv, depth = project_points(transform_points(T_cam_board, board.corner_points_m()), camera.intrinsics)
    intr = camera.intrinsics
    return bool(np.all(depth > 0) and np.all(uv >= margin_px)
                and np.all(uv[:, 0] <= intr.width - margin_px) and np.all(uv[:, 1] <= intr.height - margin_px))


def tcp_inside(cell: CellConfig, T_base_flange: np.ndarray, margin_m: float) -> bool:
    tcp = T_base_flange[:3, :3] @ np.asarray(cell.robot.tcp_offset_m) + T_base_flange[:3, 3]
    lo = np.asarray(cell.workspace.min_m) + margin_m
    hi = np.asarray(cell.workspace.max_m) - margin_m
    return bool(np.all(tcp >= lo) and np.all(tcp <= hi))


def eye_to_hand_plan(cell: CellConfig, cameras: Sequence[str], board: CharucoBoardSpec, T_flange_board: np.ndarray,
                     n_poses: int, rng: np.random.Generator, centre_box_m: tuple[Sequence[float], Sequence[float]] = (
                         (0.45, -0.20, 0.15), (0.70, 0.10, 0.32)),
                     max_tilt_deg: float = 35.0, margin_m: float = 0.02) -> list[np.ndarray]:
    """Flange poses putting the flange-mounted board in front of the static ``cameras``.

    The board centre is drawn in ``centre_box_m`` (base frame); its face turns toward one camera, then the
    next, or toward all of them (so shared views exist), with a random tilt of up to ``max_tilt_deg``.
    """
    eyes = {name: cell.camera(name).extrinsics.matrix()[:3, 3] for name in cameras}
    targets = [*list(cameras), "all"]
    centre_board = board_centre(board)
    plan: list[np.ndarray] = []
    for _ in range(MAX_DRAWS):
        if len(plan) == n_poses:
            return plan
        centre = rng.uniform(*centre_box_m)
        target = targets[len(plan) % len(targets)]
        looks = [_unit(eyes[name] - centre) for name in (cameras if target == "all" else [target])]
        facing = _random_rotation(rng, max_tilt_deg) @ _unit(np.sum(looks, axis=0))  # the board's visible normal
        # Orientation: the nominal flange's board rotated so its normal faces `facing` by the shortest rotation.
        R_nominal = R_BASE_FLANGE_NOMINAL @ T_flange_board[:3, :3]
        R_board = _rotation_between(-R_nominal[:, 2], facing) @ R_nominal
        R_board = axis_angle_to_matrix(facing * np.radians(rng.uniform(-25.0, 25.0))) @ R_board
        T_base_board = np.eye(4)
        T_base_board[:3, :3] = R_board
        T_base_board[:3, 3] = centre - R_board @ centre_board
        T_base_flange = T_base_board @ invert(T_flange_board)
        if rotation_angle_between(T_base_flange[:3, :3], R_BASE_FLANGE_NOMINAL) > np.radians(70.0):
            continue
        wanted = cameras if target == "all" else [target]
        if tcp_inside(cell, T_base_flange, margin_m) and all(
                board_visible(cell.camera(c), cell.camera(c).extrinsics.matrix(), T_base_board, board) for c in wanted):
            plan.append(T_base_flange)
    raise PlanningError(f"found {len(plan)} of {n_poses} reachable eye-to-hand poses; widen centre_box_m")


def eye_in_hand_plan(cell: CellConfig, camera: str, board: CharucoBoardSpec, T_base_board: np.ndarray, n_poses: int,
                     rng: np.random.Generator, distance_m: tuple[float, float] = (0.30, 0.45),
                     max_tilt_deg: float = 35.0, margin_m: float = 0.02) -> list[np.ndarray]:
    """Flange poses from which the wrist ``camera`` looks at a board lying at ``T_base_board``.

    The camera sits at ``distance_m`` from the board centre, up to ``max_tilt_deg`` off the board's normal,
    aimed near the centre; its roll about the optical axis is the one closest to the nominal flange
    orientation, plus up to 30 degrees either way.
    """
    T_flange_cam = cell.camera(camera).extrinsics.matrix()
    centre = T_base_board[:3, :3] @ board_centre(board) + T_base_board[:3, 3]
    normal = -T_base_board[:3, 2]  # the visible side
    plan: list[np.ndarray] = []
    for _ in range(MAX_DRAWS):
        if len(plan) == n_poses:
            return plan
        direction = _random_rotation(rng, max_tilt_deg) @ normal
        if direction @ normal < np.cos(np.radians(max_tilt_deg)):
            continue
        eye = centre + direction * rng.uniform(*distance_m)
        aim = centre + rng.uniform(-0.03, 0.03, size=3) * [1, 1, 0]
        z_cam = _unit(aim - eye)
        best = min((_look_rotation(z_cam, roll) for roll in np.radians(np.arange(0.0, 360.0, 5.0))),
                   key=lambda R: rotation_angle_between(R @ T_flange_cam[:3, :3].T, R_BASE_FLANGE_NOMINAL))
        R_cam = axis_angle_to_matrix(z_cam * np.radians(rng.uniform(-30.0, 30.0))) @ best
        T_base_cam = np.eye(4)
        T_base_cam[:3, :3], T_base_cam[:3, 3] = R_cam, eye
        T_base_flange = T_base_cam @ invert(T_flange_cam)
        if rotation_angle_between(T_base_flange[:3, :3], R_BASE_FLANGE_NOMINAL) > np.radians(60.0):
            continue
        if tcp_inside(cell, T_base_flange, margin_m) and board_visible(cell.camera(camera), T_base_cam, T_base_board,
                                                                        board):
            plan.append(T_base_flange)
    raise PlanningError(f"found {len(plan)} of {n_poses} reachable eye-in-hand poses; move the board or the range")


def travel_time_s(T_a: np.ndarray, T_b: np.ndarray, speed_m_s: float = 0.2, speed_rad_s: float = 0.5) -> float:
    """Time-like distance between two flange poses: the slower of the translation and the rotation."""
    return max(float(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3])) / speed_m_s,
               rotation_angle_between(T_a[:3, :3], T_b[:3, :3]) / speed_rad_s)


def order_plan(plan: Sequence[np.ndarray], T_start: np.ndarray) -> list[np.ndarray]:
    """Visit order by nearest neighbour from ``T_start`` (random draws in drawn order waste most of the time
    travelling between far-apart orientations)."""
    remaining, ordered, current = list(plan), [], T_start
    while remaining:
        index = min(range(len(remaining)), key=lambda i: travel_time_s(current, remaining[i]))
        current = remaining.pop(index)
        ordered.append(current)
    return ordered


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector ``a`` to unit vector ``b``."""
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis), float(a @ b)
    if sin < 1e-12:
        if cos > 0:
            return np.eye(3)
        other = _unit(np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0]))
        return axis_angle_to_matrix(other * np.pi)
    return axis_angle_to_matrix(axis / sin * np.arctan2(sin, cos))


def _look_rotation(z_axis: np.ndarray, roll_rad: float) -> np.ndarray:
    """An optical frame looking along ``z_axis``, rolled by ``roll_rad`` about it."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(z_axis[2]) < 0.95 else np.array([1.0, 0.0, 0.0])
    x = _unit(np.cross(helper, z_axis))
    y = np.cross(z_axis, x)
    return axis_angle_to_matrix(z_axis * roll_rad) @ np.column_stack([x, y, z_axis])
