"""Fused clouds from recordings of the twin, played back and aligned by librealsense, match the scene geometry."""

import numpy as np
import open3d as o3d
import pytest
from scipy.spatial import cKDTree

from perception.cameras import recording_path
from perception.cameras.realsense import RealSensePlaybackCamera
from perception.pointcloud import (
    CropBox,
    MissingFlangePoseError,
    PointCloudFuser,
    camera_pose_in_base,
    voxel_downsample,
)


@pytest.fixture(scope="module")
def played_back(scene_recordings):
    """The last frame of each camera's recording, through the real playback, decode and align path."""
    frames, intrinsics = {}, {}
    for name in scene_recordings.twin_frames:
        camera = RealSensePlaybackCamera(recording_path(scene_recordings.directory, name), name=name, real_time=False,
                                         loop=False)
        with camera:
            assert camera.wait_for_frame(0.0, 5.0)
            latest = camera.read_latest(max_age_s=60.0)
            # past the first frames, or the recording's end (no newer frame comes); never a busy wait
            while latest.frame_number < 2 and camera.wait_for_frame(latest.host_time_s, 2.0):
                latest = camera.read_latest(max_age_s=60.0)
            frames[name] = latest
            intrinsics[name] = camera.intrinsics
    return frames, intrinsics


def fit_plane(points):
    """z = a x + b y + c by least squares; returns (a, b, c) and the RMS residual."""
    A = np.column_stack([points[:, 0], points[:, 1], np.ones(len(points))])
    coef, *_ = np.linalg.lstsq(A, points[:, 2], rcond=None)
    return coef, float(np.sqrt(np.mean((points[:, 2] - A @ coef) ** 2)))


def test_the_fused_table_is_the_plane_z_0_and_the_cube_top_is_where_the_twin_put_it(cell, scene_recordings,
                                                                                     played_back):
    frames, intrinsics = played_back
    fuser = PointCloudFuser(cell, intrinsics, voxel_m=0.003)
    cloud = fuser.fuse(frames, T_base_flange=scene_recordings.T_base_flange)
    points = cloud.points_m.astype(np.float64)
    assert set(cloud.points_per_camera) == {"cam_front", "cam_side", "cam_wrist"}
    assert all(n > 10_000 for n in cloud.points_per_camera.values())

    cube = scene_recordings.cube_position_m
    off_cube = np.linalg.norm(points[:, :2] - cube[:2], axis=1) > 0.06
    table = points[off_cube & (np.abs(points[:, 2]) < 0.01) & (points[:, 0] > 0.3)]
    (a, b, c), rms_m = fit_plane(table)
    assert np.degrees(np.arctan(np.hypot(a, b))) < 0.05  # level
    assert abs(c) < 0.001 and rms_m < 0.001  # at z = 0, flat to 1 mm (Z16 counts are 1 mm)

    half = scene_recordings.cube_half_size_m
    top = points[(np.linalg.norm(points[:, :2] - cube[:2], axis=1) < half * 0.7) & (points[:, 2] > half * 1.5)
                 & (points[:, 2] < half * 3)]
    assert len(top) > 20
    assert np.median(top[:, 2]) == pytest.approx(2 * half, abs=0.002)
    np.testing.assert_allclose(top[:, :2].mean(axis=0), cube[:2], atol=0.003)


def test_the_wrist_camera_goes_through_the_flange_pose(cell, scene_recordings, played_back):
    frames, intrinsics = played_back
    fuser = PointCloudFuser(cell, intrinsics, voxel_m=0.0)
    with pytest.raises(MissingFlangePoseError, match="cam_wrist"):
        fuser.camera_points(frames["cam_wrist"])
    points, colors = fuser.camera_points(frames["cam_wrist"], scene_recordings.T_base_flange)
    table = points[(np.abs(points[:, 2]) < 0.01)]
    assert len(table) > 1000 and colors.dtype == np.uint8
    (_, _, c), rms_m = fit_plane(table.astype(np.float64))
    assert abs(c) < 0.001 and rms_m < 0.002
    static = camera_pose_in_base(cell.camera("cam_front"), scene_recordings.T_base_flange)
    np.testing.assert_array_equal(static, cell.camera("cam_front").extrinsics.matrix())  # flange pose ignored


def test_the_cloud_is_cropped_to_the_workspace_and_voxel_downsampled(cell, scene_recordings, played_back):
    frames, intrinsics = played_back
    crop = CropBox.from_workspace(cell.workspace, margin_m=0.02)
    dense = PointCloudFuser(cell, intrinsics, crop=crop, voxel_m=0.0).fuse(frames, scene_recordings.T_base_flange)
    sparse = PointCloudFuser(cell, intrinsics, crop=crop, voxel_m=0.01).fuse(frames, scene_recordings.T_base_flange)
    assert np.all(crop.mask(dense.points_m)) and np.all(crop.mask(sparse.points_m))
    assert len(sparse.points_m) < len(dense.points_m) / 10
    cloud = sparse.to_open3d()
    spacing = np.asarray(cloud.compute_nearest_neighbor_distance())
    assert 0.005 < np.median(spacing) < 0.015  # about one voxel apart
    assert sparse.colors.min() >= 0.0 and sparse.colors.max() <= 1.0


def open3d_voxel_downsample(points, colors_u8, voxel_m):
    """What the fused cloud was made with before issue #21: open3d's legacy voxel_down_sample."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(np.asarray(colors_u8, np.float64) / 255.0)
    down = cloud.voxel_down_sample(voxel_m)
    return np.asarray(down.points), np.asarray(down.colors)


def assert_same_voxels(points, colors_u8, voxel_m):
    """Same number of voxels, each centroid within 1 um of one of open3d's (one to one), colours within 1e-6."""
    ours, our_colors = voxel_downsample(points, colors_u8, voxel_m)
    theirs, their_colors = open3d_voxel_downsample(points, colors_u8, voxel_m)
    assert ours.dtype == our_colors.dtype == np.float32
    assert len(ours) == len(theirs)
    distance, match = cKDTree(theirs).query(ours)
    assert distance.max() < 1e-6
    assert len(np.unique(match)) == len(theirs)
    np.testing.assert_allclose(our_colors, their_colors[match], atol=1e-6)


@pytest.mark.parametrize("voxel_m", [0.003, 0.005, 0.01])
def test_the_compiled_downsampler_gives_open3ds_voxels_on_a_fused_cloud(cell, scene_recordings, played_back, voxel_m):
    frames, intrinsics = played_back
    fuser = PointCloudFuser(cell, intrinsics, voxel_m=0.0, stride=1)
    parts = [fuser.camera_points(frame, scene_recordings.T_base_flange) for frame in frames.values()]
    points, colors = np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts])
    assert len(points) > 100_000
    assert_same_voxels(points, colors, voxel_m)


def test_the_compiled_downsampler_gives_open3ds_voxels_on_points_at_voxel_faces():
    rng = np.random.default_rng(0)
    voxel_m = 0.01
    faces = rng.integers(-50, 50, (2000, 3)) * voxel_m  # on the grid's planes, and a hair either side
    points = np.concatenate([faces, faces + 1e-7, faces - 1e-7, rng.uniform(-0.5, 0.5, (20_000, 3))])
    colors = rng.integers(0, 256, points.shape, dtype=np.uint8)
    assert_same_voxels(points, colors, voxel_m)
    assert_same_voxels(points.astype(np.float32), colors, voxel_m)


def test_the_downsampler_refuses_what_it_cannot_voxelise():
    points, colors = np.zeros((4, 3), np.float32), np.zeros((4, 3), np.uint8)
    points[2, 1] = np.nan
    with pytest.raises(ValueError, match="point 2 is not finite"):
        voxel_downsample(points, colors, 0.005)
    with pytest.raises(ValueError, match="voxel_m must be a positive"):
        voxel_downsample(np.zeros((4, 3)), colors, 0.0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        voxel_downsample(np.zeros((4, 2)), colors, 0.005)
    with pytest.raises(ValueError, match="too far"):
        voxel_downsample(np.array([[0.0, 0, 0], [1e7, 1e7, 1e7]]), np.zeros((2, 3), np.uint8), 1e-6)
    empty_points, empty_colors = voxel_downsample(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), 0.005)
    assert empty_points.shape == empty_colors.shape == (0, 3)
