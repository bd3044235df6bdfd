"""Pixels, depth and 3-D points: exact inverses of each other, and in agreement with what the twin renders."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hardware_configs.schema import Intrinsics
from perception.cameras.base import Frame
from perception.geometry import base_to_pixel, deproject_pixels, pixel_to_base, project_points
from perception.pointcloud import frame_points_in_base

intrinsics = st.builds(
    lambda fx, aspect, cx, cy, model, k1, k2, p1, p2, k3: Intrinsics(
        width=640, height=480, fx=fx, fy=fx * aspect, cx=cx, cy=cy, distortion_model=model,
        distortion=[k1, k2, p1, p2, k3]),
    st.floats(300.0, 900.0), st.floats(0.98, 1.02), st.floats(300.0, 340.0), st.floats(220.0, 260.0),
    st.sampled_from(["plumb_bob", "inverse_brown_conrady", "none"]),
    st.floats(-0.1, 0.1), st.floats(-0.05, 0.05), st.floats(-0.002, 0.002), st.floats(-0.002, 0.002),
    st.floats(-0.01, 0.01),
)


def invertible_over_the_image(intr: Intrinsics) -> bool:
    """A lens model is only a lens where distorted radius grows with the true radius; beyond, no pixel maps back."""
    corner = np.hypot(max(intr.cx, intr.width - intr.cx) / intr.fx, max(intr.cy, intr.height - intr.cy) / intr.fy)
    k1, k2, _, _, k3 = intr.distortion
    r = np.linspace(0.0, 1.5 * corner, 200)
    r2 = r * r
    return bool(np.all(np.diff(r * (1 + r2 * (k1 + r2 * (k2 + r2 * k3)))) > 0))


@settings(max_examples=200, deadline=None)
@given(intr=intrinsics, u=st.floats(0.0, 639.0), v=st.floats(0.0, 479.0), depth=st.floats(0.1, 5.0))
def test_pixel_to_point_to_pixel_round_trips(intr, u, v, depth):
    assume(invertible_over_the_image(intr))
    point = deproject_pixels(np.array([[u, v]]), np.array([depth]), intr)
    assert point[0, 2] == pytest.approx(depth)  # depth is z, not range
    uv, z = project_points(point, intr)
    np.testing.assert_allclose(uv[0], [u, v], atol=1e-4)
    assert z[0] == pytest.approx(depth)


@settings(max_examples=50, deadline=None)
@given(intr=intrinsics, rotvec=st.tuples(*[st.floats(-3.0, 3.0)] * 3), shift=st.tuples(*[st.floats(-1.0, 1.0)] * 3))
def test_base_frame_lifting_and_projection_are_inverses(intr, rotvec, shift):
    assume(invertible_over_the_image(intr))
    from geometry.transforms import axis_angle_to_matrix

    T_base_cam = np.eye(4)
    T_base_cam[:3, :3], T_base_cam[:3, 3] = axis_angle_to_matrix(np.array(rotvec)), shift
    uv = np.array([[10.0, 20.0], [320.0, 240.0], [600.0, 470.0]])
    depth = np.array([0.5, 1.0, 2.0])
    back, z = base_to_pixel(pixel_to_base(uv, depth, intr, T_base_cam), intr, T_base_cam)
    np.testing.assert_allclose(back, uv, atol=1e-4)
    np.testing.assert_allclose(z, depth, atol=1e-9)


def test_points_behind_the_camera_have_no_pixel():
    intr = Intrinsics(width=640, height=480, fx=600, fy=600, cx=320, cy=240)
    uv, _ = project_points(np.array([[0.0, 0.0, -1.0], [0.1, 0.0, 1.0]]), intr)
    assert np.all(np.isnan(uv[0])) and np.allclose(uv[1], [380.0, 240.0])


def test_a_depth_image_on_cached_rays_matches_per_pixel_deprojection():
    intr = Intrinsics(width=8, height=6, fx=5.0, fy=5.5, cx=3.7, cy=2.2, distortion_model="inverse_brown_conrady",
                      distortion=[0.05, -0.01, 0.001, 0.0, 0.0])
    depth = np.arange(48, dtype=np.float32).reshape(6, 8) / 10.0  # pixel (0, 0) has no depth
    frame = Frame(camera="cam", color=np.zeros((6, 8, 3), np.uint8), depth_m=depth, device_time_ms=0.0, host_time_s=0.0,
                  frame_number=0)
    points, _ = frame_points_in_base(frame, intr, np.eye(4))  # the base frame is the optical frame here
    v, u = np.divmod(np.arange(1, 48), 8)
    expected = deproject_pixels(np.column_stack([u, v]), depth[v, u], intr)
    assert len(points) == 47
    np.testing.assert_allclose(points, expected, rtol=1e-5, atol=1e-6)


def test_the_cube_top_seen_by_a_static_camera_lifts_to_its_true_position(cell, scene_recordings):
    """Project the cube's true top centre, read the twin's depth there, lift it back: the same point."""
    top_m = scene_recordings.cube_position_m + np.array([0.0, 0.0, scene_recordings.cube_half_size_m])
    for name in ("cam_front", "cam_side"):
        intr, T_base_cam = scene_recordings.intrinsics[name], cell.camera(name).extrinsics.matrix()
        uv, _ = base_to_pixel(top_m[None], intr, T_base_cam)
        pixel = np.rint(uv)  # depth is sampled at a pixel centre: lift that pixel, not the sub-pixel point
        u, v = pixel.astype(int)[0]
        depth = scene_recordings.twin_frames[name].depth_m[v, u : u + 1]
        lifted = pixel_to_base(pixel, depth, intr, T_base_cam)[0]
        assert lifted[2] == pytest.approx(top_m[2], abs=0.001)  # on the top face
        assert np.linalg.norm(lifted[:2] - top_m[:2]) < 0.003  # within the pixel's footprint
