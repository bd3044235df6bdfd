"""The twin is built from the cell file: its cameras see what the calibrated cameras would see."""

import mujoco
import numpy as np
import pytest

from geometry.transforms import invert, matrix_to_quat_xyzw, quat_xyzw_to_matrix, rotation_angle_between
from hardware_configs.schema import CellConfig
from sim.robot import TwinRobot
from sim.scene import OPTICAL_TO_MUJOCO_CAMERA, ImageSize, build_spec, scaled_intrinsics


def render_markers(cell: CellConfig, size: ImageSize, points: list[np.ndarray]):
    """Render unlit green spheres (1 cm) at known base-frame points from every static camera."""
    spec = build_spec(cell, None, size, fast_render=True)
    spec.add_material(name="marker", rgba=[0, 1, 0, 1], emission=1.0)  # self-lit: uniform colour, unbiased centroid
    for i, point in enumerate(points):
        spec.worldbody.add_geom(name=f"marker{i}", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.008, 0, 0],
                                pos=point.tolist(), material="marker", contype=0, conaffinity=0)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, size.height, size.width)
    images = {}
    for cam in cell.cameras:
        if cam.mount.value == "static":
            renderer.update_scene(data, cam.name)
            images[cam.name] = renderer.render().astype(int)
    renderer.close()
    return images


def project(cell: CellConfig, camera: str, size: ImageSize, point_base: np.ndarray) -> np.ndarray:
    cam = cell.camera(camera)
    fx, fy, cx, cy = scaled_intrinsics(cam, size)
    T_cam_base = invert(cam.extrinsics.matrix())
    p = T_cam_base[:3, :3] @ point_base + T_cam_base[:3, 3]
    return np.array([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy])


@pytest.mark.parametrize("size", [ImageSize(640, 480), ImageSize(96, 96)])
def test_points_appear_where_the_cell_intrinsics_and_extrinsics_project_them(cell, size):
    points = [np.array([0.45, 0.12, 0.03]), np.array([0.62, -0.15, 0.12])]
    for index, point in enumerate(points):
        images = render_markers(cell, size, [point])
        for camera, image in images.items():
            mask = (image[..., 1] > 120) & (image[..., 0] < 90) & (image[..., 2] < 90)
            ys, xs = np.nonzero(mask)
            assert len(xs) > 0, f"marker {index} not visible in {camera}"
            seen = np.array([xs.mean(), ys.mean()])  # OpenCV convention: pixel i is centred at i
            tolerance_px = 0.5 * size.width / 640 + 0.3
            np.testing.assert_allclose(seen, project(cell, camera, size, point), atol=tolerance_px)


def test_rendered_depth_is_metric_distance_along_the_optical_axis(cell):
    size = ImageSize(160, 120)
    spec = build_spec(cell, None, size, fast_render=True)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    renderer = mujoco.Renderer(model, size.height, size.width)
    renderer.enable_depth_rendering()
    cam = cell.camera("cam_front")
    renderer.update_scene(data, cam.name)
    depth = renderer.render()
    fx, fy, cx, cy = scaled_intrinsics(cam, size)
    T_base_cam = cam.extrinsics.matrix()
    # Pixels in the lower image half see the table top (z = 0): back-project and check they land on it.
    for v in (70, 90, 110):
        for u in (30, 80, 130):
            z = depth[v, u]
            ray_cam = np.array([(u - cx) / fx, (v - cy) / fy, 1.0]) * z
            point_base = T_base_cam[:3, :3] @ ray_cam + T_base_cam[:3, 3]
            assert point_base[2] == pytest.approx(0.0, abs=0.003)


def test_camera_poses_in_the_twin_match_the_extrinsics(cell):
    model = build_spec(cell, None, ImageSize(96, 96)).compile()
    data = mujoco.MjData(model)
    robot = TwinRobot(model, data, cell)
    robot.reset_to()
    flange = model.site("flange").id
    T_base_flange = np.eye(4)
    T_base_flange[:3, :3] = data.site_xmat[flange].reshape(3, 3)
    T_base_flange[:3, 3] = data.site_xpos[flange]
    for cam in cell.cameras:
        expected = cam.extrinsics.matrix() if cam.mount.value == "static" else T_base_flange @ cam.extrinsics.matrix()
        cam_id = model.camera(cam.name).id
        rot_optical = data.cam_xmat[cam_id].reshape(3, 3) @ OPTICAL_TO_MUJOCO_CAMERA
        np.testing.assert_allclose(data.cam_xpos[cam_id], expected[:3, 3], atol=1e-6)
        assert rotation_angle_between(rot_optical, expected[:3, :3]) < 1e-6


def test_moving_a_camera_in_the_yaml_moves_what_the_twin_sees(cell):
    size = ImageSize(96, 96)
    before = render_markers(cell, size, [np.array([0.5, 0.0, 0.05])])["cam_front"]
    cameras = list(cell.cameras)
    front = cameras[0]
    yawed = quat_xyzw_to_matrix(np.array(front.extrinsics.quaternion_xyzw))
    turn = np.array([[np.cos(0.1), -np.sin(0.1), 0], [np.sin(0.1), np.cos(0.1), 0], [0, 0, 1]])
    new_extrinsics = front.extrinsics.model_copy(update={"quaternion_xyzw": tuple(matrix_to_quat_xyzw(turn @ yawed))})
    cameras[0] = front.model_copy(update={"extrinsics": new_extrinsics})
    moved_cell = cell.model_copy(update={"cameras": cameras})
    after = render_markers(moved_cell, size, [np.array([0.5, 0.0, 0.05])])["cam_front"]
    assert np.abs(before - after).mean() > 5.0


def test_tcp_site_matches_the_gripper_pinch_point(cell):
    """The cell's tcp_offset_m must agree with the gripper model (else grasps would miss)."""
    model = build_spec(cell, None, ImageSize(96, 96)).compile()
    data = mujoco.MjData(model)
    TwinRobot(model, data, cell).reset_to()
    gap_m = np.linalg.norm(data.site_xpos[model.site("tcp").id] - data.site_xpos[model.site("pinch").id])
    assert gap_m < 0.002
