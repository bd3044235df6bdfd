"""The ChArUco board: a model that refuses impossible boards, an exact image, and a pose the twin confirms."""

import mujoco
import numpy as np
import pytest

from calibration.board import BoardError, CharucoBoardSpec, detect_board, estimate_board_pose
from calibration.sim import table_board_pose
from calibration.twin import TwinBoardViews, add_board, board_texture
from geometry.transforms import invert, rotation_angle_between
from sim.scene import ImageSize, build_spec


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"marker_length_m": 0.04}, "marker_length_m"),
    ({"dictionary": "DICT_4X4_5"}, "unknown ArUco dictionary"),
    ({"squares_x": 11, "squares_y": 11}, "needs 60 markers"),
    ({"squares_x": 2}, "at least 3x3"),
])
def test_impossible_boards_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(BoardError, match=message):
        CharucoBoardSpec(**kwargs)


def test_the_board_image_has_exact_squares_and_margins_and_its_texture_power_of_two_sides():
    board = CharucoBoardSpec()
    image = board.image(px_per_square=100)
    assert image.shape == (7 * 100 + 2 * 50, 5 * 100 + 2 * 50)  # margin = half a square
    assert image[:50].min() == 255 and image[:, :50].min() == 255  # a white quiet zone
    texture = board_texture(board)
    height, width = texture.shape[:2]
    assert width & (width - 1) == 0 and height & (height - 1) == 0
    assert board.corner_points_m().shape == (board.n_corners, 3)


def test_a_board_rendered_on_the_twins_table_is_found_where_it_lies(cell):
    """Checks the texture mapping and the twin's camera model together: the PnP pose is the true pose."""
    board = CharucoBoardSpec()
    spec = build_spec(cell, None, ImageSize(640, 480))
    spec.visual.global_.offwidth, spec.visual.global_.offheight = 1280, 1280
    T_base_board = table_board_pose(board, (0.65, -0.15))  # in full view of both static cameras
    add_board(spec, board, spec.worldbody, T_base_board)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    views = TwinBoardViews(model, data, cell)
    try:
        for name in ("cam_front", "cam_side"):
            detection = detect_board(views.capture(name).color, board)
            assert detection is not None and len(detection) == board.n_corners
            pose = estimate_board_pose(detection, views.intrinsics(name))
            truth = invert(cell.camera(name).extrinsics.matrix()) @ T_base_board
            assert pose.reprojection_rms_px < 0.15
            assert np.linalg.norm(pose.T_cam_board[:3, 3] - truth[:3, 3]) < 0.001
            assert np.degrees(rotation_angle_between(pose.T_cam_board[:3, :3], truth[:3, :3])) < 0.15
    finally:
        views.close()


def test_no_board_means_no_detection():
    assert detect_board(np.full((120, 160, 3), 128, np.uint8), CharucoBoardSpec()) is None
