"""The twin's depth through the RealSense-like depth model: off by default, holes at the cube's silhouette, and a
camera pose error that moves the cloud by the configured amount."""

import dataclasses

import mujoco
import numpy as np
import pytest

from geometry.transforms import invert
from perception.depth_model import DepthModel, DepthModelConfig
from perception.pointcloud import frame_points_in_base
from sim.render import TwinRenderer
from sim.scene import ImageSize, build_model

W, H = 640, 480
EXACT = dict(subpixel_px=0.0, stereo_shadow=False, edge_jump_m=None, dark_dropout_prob=0.0,
             extrinsic_rotation_deg=0.0, extrinsic_translation_mm=0.0)


@pytest.fixture(scope="module")
def twin(cell, lift_task):
    model = build_model(cell, lift_task, ImageSize(W, H))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


def render(model, data, cell, depth_model=None, **kw):
    renderer = TwinRenderer(model, W, H, cell, max_depth_m=6.0, depth_model=depth_model)
    try:
        return renderer.render(data, "cam_front", segmentation=True, **kw)
    finally:
        renderer.close()


def cube_mask(model, frame):
    geom = model.geom("cube_geom").id
    return (frame.segmentation[..., 0] == geom) & (frame.segmentation[..., 1] == mujoco.mjtObj.mjOBJ_GEOM)


def test_default_is_the_exact_render_and_a_model_keeps_the_frames_extrinsics(cell, twin):
    model, data = twin
    exact = render(model, data, cell)
    assert TwinRenderer(model, W, H, cell).depth_model is None
    no_errors = render(model, data, cell, DepthModel(DepthModelConfig(**EXACT, depth_scale_m=1e-6)))
    np.testing.assert_allclose(no_errors.depth_m, exact.depth_m, atol=1e-6)
    noisy = render(model, data, cell, DepthModel(rng=0), rgb=False)
    assert noisy.color is None and noisy.depth_m.dtype == np.float32
    np.testing.assert_array_equal(noisy.T_parent_optical, exact.T_parent_optical)
    assert 0.5 < (noisy.depth_m > 0).mean() < (exact.depth_m > 0).mean()


def test_holes_appear_at_the_cubes_silhouette(cell, twin):
    model, data = twin
    cfg = DepthModelConfig(**{**EXACT, "stereo_shadow": True, "edge_jump_m": 0.05})
    frame = render(model, data, cell, DepthModel(cfg))
    cube = cube_mask(model, frame)
    assert cube.sum() > 500
    holes = frame.depth_m == 0
    rows = np.flatnonzero(cube.any(axis=1))
    row = rows[len(rows) // 2]
    left, right = np.flatnonzero(cube[row])[[0, -1]]
    assert holes[row, left - 3:left + 1].all()  # the stereo shadow and the edge band on the left
    assert holes[row, right:right + 2].any() and not holes[row, right + 3:right + 10].any()
    assert not holes[row, left + 3:right - 2].any()  # the cube's face keeps its depth


@pytest.mark.parametrize("rotation_deg, translation_mm", [(0.0, 5.0), (0.5, 0.0)])
def test_extrinsic_error_moves_the_cloud_by_the_configured_amount(cell, twin, rotation_deg, translation_mm):
    model, data = twin
    cfg = DepthModelConfig(**{**EXACT, "extrinsic_rotation_deg": rotation_deg,
                              "extrinsic_translation_mm": translation_mm, "depth_scale_m": 1e-6})
    depth_model = DepthModel(cfg, rng=4)
    T_base_cam = cell.camera("cam_front").extrinsics.matrix()
    centroids = []
    for frame in (render(model, data, cell), render(model, data, cell, depth_model)):
        only_cube = dataclasses.replace(frame, depth_m=np.where(cube_mask(model, frame), frame.depth_m, 0))
        points, _ = frame_points_in_base(only_cube, frame.intrinsics, T_base_cam)
        centroids.append(points.astype(float).mean(axis=0))
    exact, moved = centroids
    # the fuser believes the file's pose; the camera was at T_base_cam @ T_believed_true
    T_move = T_base_cam @ invert(depth_model.extrinsic_error("cam_front")) @ invert(T_base_cam)
    expected = T_move[:3, :3] @ exact + T_move[:3, 3]
    shift_mm = np.linalg.norm(expected - exact) * 1e3
    if translation_mm:
        assert shift_mm == pytest.approx(translation_mm, rel=1e-6)
    else:  # 0.5 deg at ~0.8 m: up to ~7 mm depending on the axis
        assert 0.5 < shift_mm < np.radians(rotation_deg) * np.linalg.norm(exact - T_base_cam[:3, 3]) * 1e3 + 1e-6
    assert np.linalg.norm(moved - expected) * 1e3 < 0.3 * shift_mm
    assert np.linalg.norm(moved - exact) * 1e3 == pytest.approx(shift_mm, rel=0.3)
