"""The object-state estimator on synthetic clouds: a sampled primitive's visible surface plus noise, on a table."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.transforms import rotation_angle_between
from hardware_configs.schema import ObjectConfig
from perception.object_models import ObjectModel, symmetric_rotation_error_rad
from perception.object_state import EstimatorParams, ObjectStateEstimator, TrackState

BOX = ObjectConfig(name="peg", shape="box", half_size_m=(0.0125, 0.02, 0.04), rgba=(0.15, 0.3, 0.85, 1.0),
                   initial_pose={"x_m": {"low": 0.5, "high": 0.5}, "y_m": {"low": 0.0, "high": 0.0}})
CYLINDER = ObjectConfig(name="can", shape="cylinder", half_size_m=(0.02, 0.03), rgba=(0.85, 0.15, 0.15, 1.0),
                        initial_pose={"x_m": {"low": 0.5, "high": 0.5}, "y_m": {"low": 0.0, "high": 0.0}})
TABLE_GREY = (0.45, 0.45, 0.45)
VIEWPOINTS = ((0.0, -0.6, 0.6), (0.0, 0.6, 0.6), (1.1, 0.0, 0.5))  # where the cell's cameras look from


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rot_z(yaw), [x, y, z]
    return T


def visible_surface(model: ObjectModel, T: np.ndarray, viewpoints) -> tuple[np.ndarray, np.ndarray]:
    """The model's surface points (and normals) at pose ``T`` that face one of the viewpoints, above the table."""
    p, n = model.sample_surface(0.003)
    p, n = p @ T[:3, :3].T + T[:3, 3], n @ T[:3, :3].T
    seen = np.zeros(len(p), bool)
    for v in viewpoints:
        seen |= np.einsum("ij,ij->i", n, np.asarray(v) - p) > 0
    keep = seen & (p[:, 2] > 0.001)
    return p[keep], n[keep]


def scene(config: ObjectConfig | None, T: np.ndarray | None, rng: np.random.Generator, noise_m: float = 0.001,
          viewpoints=VIEWPOINTS) -> tuple[np.ndarray, np.ndarray]:
    """A table (z = 0) and the faces of the object that face one of the viewpoints, shaded, with noise."""
    g = np.arange(0.3, 0.75, 0.005)
    xx, yy = np.meshgrid(g, np.arange(-0.25, 0.25, 0.005))
    table = np.column_stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)])
    points, colors = [table], [np.tile(TABLE_GREY, (len(table), 1))]
    if config is not None:
        p, n = visible_surface(ObjectModel.from_config(config), T, viewpoints)
        shade = 0.5 + 0.5 * np.abs(n[:, 2:3])
        points.append(p)
        colors.append(np.clip(shade * np.asarray(config.rgba[:3]), 0, 1))
    pts = np.concatenate(points)
    return pts + rng.normal(0, noise_m, pts.shape), np.concatenate(colors)


def errors(model: ObjectModel, T_est: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    return (float(np.linalg.norm(T_est[:3, 3] - T_true[:3, 3])),
            float(np.degrees(symmetric_rotation_error_rad(model, T_est[:3, :3], T_true[:3, :3]))))


@pytest.mark.parametrize("yaw", [0.3, -1.2, 2.5])
def test_box_pose_from_a_synthetic_cloud(yaw: float) -> None:
    rng = np.random.default_rng(0)
    T_true = pose(0.52, 0.05, 0.04, yaw)
    estimator = ObjectStateEstimator([BOX])
    est = estimator.update(*scene(BOX, T_true, rng), stamp_s=1.5)["peg"]
    assert est.state is TrackState.tracking and est.method == "detected"
    position_m, angle_deg = errors(estimator.models["peg"].model, est.T_base_object, T_true)
    assert position_m < 0.003 and angle_deg < 3.0
    assert 0.5 < est.confidence <= 1.0 and est.visible_points > 50 and est.stamp_s == 1.5
    # reported modulo the box's half-turn symmetry: z up, yaw within a quarter turn of 0
    reported_yaw = np.arctan2(est.T_base_object[1, 0], est.T_base_object[0, 0])
    assert est.T_base_object[2, 2] > 0.99 and abs(reported_yaw) <= np.pi / 2 + 1e-6


def test_cylinder_yaw_is_reported_modulo_its_symmetry() -> None:
    rng = np.random.default_rng(1)
    model = ObjectModel.from_config(CYLINDER)
    assert model.yaw_period_rad == 0.0 and ObjectModel.from_config(BOX).yaw_period_rad == np.pi
    for yaw in (0.0, 0.9, -2.0):
        T_true = pose(0.5, -0.05, 0.03, yaw)
        est = ObjectStateEstimator([CYLINDER]).update(*scene(CYLINDER, T_true, rng))["can"]
        assert est.state is TrackState.tracking
        position_m, axis_deg = errors(model, est.T_base_object, T_true)
        assert position_m < 0.003 and axis_deg < 3.0
        # any yaw reads as the same canonical pose: axis up, object x axis facing base x
        assert rotation_angle_between(est.T_base_object[:3, :3], np.eye(3)) < np.radians(3.0)


def test_an_absent_object_is_lost_and_a_vanished_one_becomes_lost() -> None:
    rng = np.random.default_rng(2)
    params = EstimatorParams(lost_after_frames=3)
    estimator = ObjectStateEstimator([BOX], params)
    empty = estimator.update(*scene(None, None, rng))["peg"]
    assert empty.state is TrackState.lost and empty.T_base_object is None and empty.confidence == 0.0
    assert estimator.update(np.zeros((0, 3)), np.zeros((0, 3)))["peg"].state is TrackState.lost
    T_true = pose(0.5, 0.0, 0.04, 0.2)
    assert estimator.update(*scene(BOX, T_true, rng))["peg"].state is TrackState.tracking
    states = [estimator.update(*scene(None, None, rng))["peg"] for _ in range(3)]
    assert [s.state for s in states] == [TrackState.tracking, TrackState.tracking, TrackState.lost]
    assert states[0].method == "held" and states[0].confidence < 1.0 and states[-1].confidence == 0.0
    assert np.allclose(states[-1].T_base_object[:3, 3], T_true[:3, 3], atol=0.003)  # last known pose kept


def test_a_grey_object_is_not_picked_by_colour_and_a_wrong_colour_is_not_found() -> None:
    rng = np.random.default_rng(3)
    green = BOX.model_copy(update={"rgba": (0.1, 0.8, 0.1, 1.0)})
    est = ObjectStateEstimator([green]).update(*scene(BOX, pose(0.5, 0.0, 0.04, 0.0), rng))["peg"]
    assert est.state is TrackState.lost


def test_tracking_from_the_previous_pose_follows_a_moving_object() -> None:
    rng = np.random.default_rng(4)
    estimator = ObjectStateEstimator([BOX])
    model = estimator.models["peg"].model
    for k in range(8):  # lifted and turned a little every frame, then tilted
        T_true = pose(0.5 + 0.004 * k, 0.01 * k, 0.04 + 0.01 * k, 0.1 + 0.05 * k)
        if k >= 5:
            T_true[:3, :3] = T_true[:3, :3] @ np.array([[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)],
                                                        [0, np.sin(0.2), np.cos(0.2)]])
        est = estimator.update(*scene(BOX, T_true, rng))["peg"]
        assert est.state is TrackState.tracking
        assert est.method == ("detected" if k == 0 else "tracked")
        position_m, angle_deg = errors(model, est.T_base_object, T_true)
        assert position_m < 0.003 and angle_deg < 3.0, (k, position_m, angle_deg)


def test_box_symmetries() -> None:
    cube = ObjectModel.from_config(BOX.model_copy(update={"half_size_m": (0.02, 0.02, 0.02)}))
    square = ObjectModel.from_config(BOX.model_copy(update={"half_size_m": (0.0125, 0.0125, 0.04)}))
    assert len(cube.symmetries) == 24 and len(square.symmetries) == 8
    assert len(ObjectModel.from_config(BOX).symmetries) == 4 and square.yaw_period_rad == np.pi / 2
    assert symmetric_rotation_error_rad(square, rot_z(np.pi / 2 + 0.1), rot_z(0.0)) == pytest.approx(0.1)


def test_fpfh_global_registration_also_finds_the_box() -> None:
    import open3d as o3d

    o3d.utility.random.seed(0)
    rng = np.random.default_rng(5)
    T_true = pose(0.55, -0.05, 0.04, 0.7)
    estimator = ObjectStateEstimator([BOX], EstimatorParams(global_registration="fpfh"))
    est = estimator.update(*scene(BOX, T_true, rng))["peg"]
    assert est.state is TrackState.tracking and est.method == "detected"
    position_m, angle_deg = errors(estimator.models["peg"].model, est.T_base_object, T_true)
    assert position_m < 0.003 and angle_deg < 3.0
