"""The calibration board in the twin, and board views rendered from the twin's cameras.

The board is a thin box whose top face carries the board image as a 2-D texture (MuJoCo stretches a 2-D
texture over each face of a box: image columns along the box's +x, rows along its -y). So the board frame
sits at a fixed pose in the box frame (:func:`board_in_geom`), and a board placed at ``T_parent_board`` gets
its box at ``T_parent_board @ inv(board_in_geom)``. The texture is resampled to power-of-two sides: MuJoCo's
mipmaps of other sizes are misaligned by fractions of a texel, which showed up as a 0.1-0.2 % board scale
error (a millimetre of depth at 0.5 m).

Views are rendered (by :class:`sim.render.TwinRenderer`) at ``supersample`` times the camera resolution and
area-averaged, as a sensor integrates over its pixels; this halves the corner noise of the aliased render (0.06 vs
0.12 px RMS at 640x480). Frames are colour only (``depth_m`` is None).
"""

from __future__ import annotations

import cv2
import mujoco
import numpy as np

from calibration.board import CharucoBoardSpec
from geometry.transforms import invert, matrix_to_quat_xyzw, xyzw_to_wxyz
from hardware_configs.schema import CellConfig, Intrinsics
from perception.cameras.base import Frame
from sim.render import TwinRenderer

BOARD_BODY = "calibration_board"
BOARD_THICKNESS_M = 0.004


def _power_of_two_below(n: int) -> int:
    return 1 << (int(n).bit_length() - 1)


def board_texture(board: CharucoBoardSpec, px_per_square: int = 300) -> np.ndarray:
    """RGB texture of the board with power-of-two sides (area-downsampled from an exact rendering)."""
    image = board.image(px_per_square)
    size = (_power_of_two_below(image.shape[1]), _power_of_two_below(image.shape[0]))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))


def board_in_geom(board: CharucoBoardSpec) -> np.ndarray:
    """Board frame in the textured box's frame: origin at the top-left chessboard corner of the +z face."""
    width_m, height_m = board.size_m
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])
    T[:3, 3] = [-width_m / 2 + board.margin_m, height_m / 2 - board.margin_m, BOARD_THICKNESS_M / 2]
    return T


def add_board(spec: mujoco.MjSpec, board: CharucoBoardSpec, parent: mujoco.MjsBody, T_parent_board: np.ndarray) -> None:
    """Add the textured board, rigidly attached to ``parent`` with its board frame at ``T_parent_board``.

    Visual only (no contacts, no mass), as a board on the table or bolted to the flange would not change
    the arm's dynamics in any way the calibration cares about.
    """
    texture = board_texture(board)
    tex = spec.add_texture(name=f"{BOARD_BODY}_texture", type=mujoco.mjtTexture.mjTEXTURE_2D,
                           width=texture.shape[1], height=texture.shape[0], nchannel=3)
    tex.data = texture.tobytes()
    material = spec.add_material(name=f"{BOARD_BODY}_material", specular=0.0, shininess=0.0, reflectance=0.0)
    material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = f"{BOARD_BODY}_texture"
    T_parent_geom = np.asarray(T_parent_board) @ invert(board_in_geom(board))
    width_m, height_m = board.size_m
    body = parent.add_body(name=BOARD_BODY, pos=T_parent_geom[:3, 3].tolist(),
                           quat=xyzw_to_wxyz(matrix_to_quat_xyzw(T_parent_geom[:3, :3])).tolist())
    body.add_geom(name=f"{BOARD_BODY}_geom", type=mujoco.mjtGeom.mjGEOM_BOX,
                  size=[width_m / 2, height_m / 2, BOARD_THICKNESS_M / 2], material=f"{BOARD_BODY}_material",
                  contype=0, conaffinity=0, mass=0.0)


class TwinBoardViews:
    """Renders the twin's cameras for calibration: supersampled, on demand, in the caller's thread."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, cell: CellConfig, width: int = 640,
                 height: int = 480, supersample: int = 2) -> None:
        self.model, self.data, self.cell = model, data, cell
        self.width, self.height, self.supersample = width, height, supersample
        self._renderer = TwinRenderer(model, width, height, cell, supersample=supersample)
        self._frame_number = 0

    def intrinsics(self, camera: str) -> Intrinsics:
        return self._renderer.intrinsics(camera)

    def capture(self, camera: str) -> Frame:
        """An RGB frame of ``camera`` now (depth is not rendered: calibration uses colour only)."""
        self._frame_number += 1
        return self._renderer.render(self.data, camera, depth=False, frame_number=self._frame_number)

    def close(self) -> None:
        self._renderer.close()
