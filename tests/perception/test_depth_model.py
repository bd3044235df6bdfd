"""The RealSense-like depth model on synthetic depth images: noise, holes, range, quantisation, seeding."""

import numpy as np
import pytest
from pydantic import ValidationError

from perception.depth_model import D435, DepthModel, DepthModelConfig, depth_rms_m, stereo_shadow_mask

FOCAL_PX = 615.0  # the cell cameras' (colour) fx at 640x480: the images' focal length
NOISE_ONLY = DepthModelConfig(stereo_shadow=False, edge_jump_m=None, dark_dropout_prob=0.0)


def wall(depth_m: float, shape=(240, 320)) -> np.ndarray:
    return np.full(shape, depth_m, np.float32)


def test_noise_grows_with_distance_squared_on_a_flat_wall():
    model = DepthModel(NOISE_ONLY, rng=0)
    std = {z: float(model.apply(wall(z), FOCAL_PX).std()) for z in (0.5, 1.0)}
    for z, measured in std.items():
        expected = z**2 * 0.08 / (424.0 * 0.05)  # the D435's depth focal length: 0.94 mm at 0.5 m, 3.8 mm at 1.0 m
        # 1 mm quantisation adds ~1/12 mm^2 of variance: visible at 0.5 m only
        assert measured == pytest.approx(np.sqrt(expected**2 + 1e-6 / 12), rel=0.05), z
    assert std[1.0] / std[0.5] == pytest.approx(4.0, rel=0.25)


def test_depth_rms_model_and_defaults_are_the_d435s():
    assert D435.baseline_m == 0.05 and D435.subpixel_px == 0.08 and D435.depth_scale_m == 0.001
    assert D435.min_range_m == 0.2 and D435.max_range_m == 10.0
    assert depth_rms_m(2.0, D435, 400.0) == pytest.approx(4 * 0.08 / 20.0)
    with pytest.raises(ValidationError):
        DepthModelConfig(baseline_mm=50)  # units are in the names: a wrong name is refused
    assert D435.focal_px == 424.0
    small = DepthModel(NOISE_ONLY.model_copy(update={"focal_px": None}), rng=0).apply(
        wall(1.0, (96, 96)), 92.0, sensor_focal_px=FOCAL_PX)
    assert small.std() == pytest.approx(depth_rms_m(1.0, D435, FOCAL_PX), rel=0.1)  # the sensor's noise


def box_scene(shape=(120, 200), background_m=1.0, box_m=0.6):
    depth = wall(background_m, shape)
    depth[40:80, 80:120] = box_m
    return depth


def test_stereo_shadow_falls_left_of_a_foreground_box_with_the_disparity_step_as_width():
    depth = box_scene()
    shadow = stereo_shadow_mask(depth, FOCAL_PX, 0.05)
    width = FOCAL_PX * 0.05 * (1 / 0.6 - 1 / 1.0)  # 20.5 px
    row = shadow[60]
    assert row[80 - int(width):80].all() and not row[:80 - int(width) - 1].any()
    assert not row[80:].any() and not shadow[:40].any() and not shadow[80:].any()


def test_holes_at_a_box_silhouette_and_nowhere_else():
    depth = box_scene()
    out = DepthModel(DepthModelConfig(subpixel_px=0.0), rng=0).apply(depth, FOCAL_PX)
    holes = out == 0
    edge = np.zeros_like(holes)
    edge[38:82, 78:122] = True
    edge[40:80, 80:120][2:-2, 2:-2] = False  # the box's inside keeps its depth
    edge[40:80, 55:80] = True  # the stereo shadow
    assert holes[60, 79] and holes[60, 80] and holes[60, 119] and holes[60, 120]  # both sides of both edges
    assert holes[60, 65] and not holes[60, 125]  # shadow on the left, not on the right
    assert not (holes & ~edge).any()
    assert not holes[45:75, 85:115].any()


def test_dark_surfaces_lose_pixels_with_the_configured_probability():
    color = np.full((200, 200, 3), 180, np.uint8)
    color[:, :100] = 5  # black half
    cfg = NOISE_ONLY.model_copy(update={"dark_dropout_prob": 0.5})
    out = DepthModel(cfg, rng=0).apply(wall(1.0, (200, 200)), FOCAL_PX, color=color)
    assert (out[:, :100] == 0).mean() == pytest.approx(0.5, abs=0.03)
    assert (out[:, 100:] == 0).mean() == 0.0
    glossy = np.zeros((200, 200), bool)
    glossy[:50] = True
    out = DepthModel(NOISE_ONLY.model_copy(update={"glossy_dropout_prob": 1.0}), rng=0).apply(
        wall(1.0, (200, 200)), FOCAL_PX, glossy=glossy)
    assert (out[:50] == 0).all() and (out[50:] > 0).all()


def test_quantised_to_the_depth_unit():
    out = DepthModel(NOISE_ONLY, rng=0).apply(wall(0.8) + np.linspace(0, 0.01, 320, dtype=np.float32), FOCAL_PX)
    counts = out / 0.001
    np.testing.assert_allclose(counts, np.rint(counts), atol=1e-3)
    coarse = DepthModel(NOISE_ONLY.model_copy(update={"depth_scale_m": 0.004, "subpixel_px": 0.0}), rng=0)
    np.testing.assert_allclose(coarse.apply(wall(0.8013), FOCAL_PX), 0.8, atol=1e-6)


def test_range_limits_and_missing_depth_read_zero():
    depth = wall(1.0, (10, 40))
    depth[:, :10] = 0.15  # too close
    depth[:, 10:20] = 12.0  # too far
    depth[:, 20:30] = 0.0  # no depth already
    out = DepthModel(NOISE_ONLY.model_copy(update={"subpixel_px": 0.0}), rng=0).apply(depth, FOCAL_PX)
    assert (out[:, :30] == 0).all() and (out[:, 30:] == pytest.approx(1.0))


def test_reproducible_with_a_seed():
    depth, color = box_scene(), np.zeros((120, 200, 3), np.uint8)
    a = DepthModel(rng=np.random.default_rng(7)).apply(depth, FOCAL_PX, color=color)
    b = DepthModel(rng=np.random.default_rng(7)).apply(depth, FOCAL_PX, color=color)
    c = DepthModel(rng=np.random.default_rng(8)).apply(depth, FOCAL_PX, color=color)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_extrinsic_error_has_the_configured_size_and_is_fixed_per_camera():
    cfg = DepthModelConfig(extrinsic_rotation_deg=0.3, extrinsic_translation_mm=2.0)
    model = DepthModel(cfg, rng=3)
    T = model.extrinsic_error("cam_front")
    angle = np.degrees(np.arccos(np.clip((np.trace(T[:3, :3]) - 1) / 2, -1, 1)))
    assert angle == pytest.approx(0.3, rel=1e-6) and np.linalg.norm(T[:3, 3]) == pytest.approx(0.002)
    np.testing.assert_array_equal(T, model.extrinsic_error("cam_front"))
    assert not np.allclose(T, model.extrinsic_error("cam_side"))
    other_order = DepthModel(cfg, rng=3)
    other_order.extrinsic_error("cam_side")
    np.testing.assert_array_equal(T, other_order.extrinsic_error("cam_front"))
    np.testing.assert_array_equal(DepthModel(D435.model_copy(update={"extrinsic_rotation_deg": 0.0,
                                                                     "extrinsic_translation_mm": 0.0}))
                                  .extrinsic_error("x"), np.eye(4))
