"""The robot's own view of a task: fixtures and held objects in the estimator, and the scene vectors it fills,
which must mean exactly what the twin's privileged vectors mean."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_configs import load_task
from hardware_configs.schema import HoleFixture
from perception.object_models import ObjectModel
from perception.object_state import ObjectStateEstimator, TrackState
from perception.task_state import ObjectPose, TaskStateLayout
from tests.perception.test_object_state import BOX, VIEWPOINTS, errors, pose, scene, visible_surface

HOLE = HoleFixture(name="hole", hole_half_width_m=0.014, wall_thickness_m=0.03, height_m=0.04,
                   initial_pose={"x_m": {"low": 0.5, "high": 0.5}, "y_m": {"low": 0.1, "high": 0.1}})


def hole_block_cloud(T: np.ndarray, rng: np.random.Generator):
    """The hole block's faces that face a camera (the hole has no floor to see), grey, noisy."""
    p, _ = visible_surface(ObjectModel.from_fixture(HOLE), T, VIEWPOINTS)
    return p + rng.normal(0, 0.001, p.shape), np.tile([0.3, 0.3, 0.35], (len(p), 1))


def test_the_hole_block_is_found_from_its_grey_surface_beside_a_coloured_peg() -> None:
    rng = np.random.default_rng(0)
    T_hole = pose(0.5, 0.1, 0.0, 0.2)  # the frame sits at the block's bottom centre, as the twin's
    table_and_peg = scene(BOX, pose(0.52, -0.05, 0.04, 0.4), rng)
    block = hole_block_cloud(T_hole, rng)
    points, colors = (np.concatenate([a, b]) for a, b in zip(table_and_peg, block, strict=True))
    estimator = ObjectStateEstimator([BOX, HOLE])
    estimates = estimator.update(points, colors)
    hole, peg = estimates["hole"], estimates["peg"]
    assert hole.state is TrackState.tracking and peg.state is TrackState.tracking
    position_m, angle_deg = errors(estimator.models["hole"].model, hole.T_base_object, T_hole)
    assert position_m < 0.003 and angle_deg < 2.0, (position_m, angle_deg)
    assert np.linalg.norm(peg.T_base_object[:3, 3] - [0.52, -0.05, 0.04]) < 0.003  # the peg is not the block


def test_a_fixture_is_never_lost_while_the_arm_hides_it() -> None:
    rng = np.random.default_rng(1)
    estimator = ObjectStateEstimator([HOLE])
    T_hole = pose(0.5, 0.1, 0.0, 0.0)
    points, colors = (np.concatenate([a, b]) for a, b in zip(scene(None, None, rng), hole_block_cloud(T_hole, rng),
                                                              strict=True))
    found = estimator.update(points, colors)["hole"]
    table_only = scene(None, None, rng)
    for _ in range(20):  # hidden for far longer than an object would stay tracked
        hidden = estimator.update(*table_only)["hole"]
    assert hidden.state is TrackState.tracking and hidden.method in {"held", "static"}
    np.testing.assert_allclose(hidden.T_base_object, found.T_base_object)


def test_a_held_object_is_carried_by_the_tcp_when_the_cameras_lose_it() -> None:
    rng = np.random.default_rng(2)
    estimator = ObjectStateEstimator([BOX])
    T_obj = pose(0.52, 0.0, 0.04, 0.0)
    T_tcp = pose(0.52, 0.0, 0.05, 0.0)
    T_tcp[:3, :3] = np.diag([1.0, -1.0, -1.0])  # pointing down, as when grasping
    width = 2 * BOX.half_size_m[0]  # fingers closed on the peg's narrow side
    first = estimator.update(*scene(BOX, T_obj, rng), T_base_tcp=T_tcp, gripper_width_m=width)["peg"]
    assert first.state is TrackState.tracking
    lift = np.eye(4)
    lift[:3, 3] = [0.05, 0.02, 0.15]
    table_only = scene(None, None, rng)  # the hand hides the peg from every camera
    for _ in range(8):
        held = estimator.update(*table_only, T_base_tcp=lift @ T_tcp, gripper_width_m=width)["peg"]
    assert held.state is TrackState.tracking and held.method == "in_gripper"
    np.testing.assert_allclose(held.T_base_object[:3, 3], (lift @ first.T_base_object)[:3, 3], atol=1e-6)
    released = [estimator.update(*table_only, T_base_tcp=lift @ T_tcp, gripper_width_m=0.08)["peg"]
                for _ in range(6)]
    assert released[-1].state is TrackState.lost  # let go and unseen: no longer where the hand is


def test_pose_vectors_round_trip_and_refuse_a_wrong_length() -> None:
    layout = TaskStateLayout(load_task("peg_insert"))
    assert layout.names == ("peg", "hole") and layout.pose_dim == 14 and layout.relative_dim == 11
    poses = {"peg": ObjectPose(np.array([0.5, -0.1, 0.04]), np.array([0.0, 0.0, 0.0, 1.0])),
             "hole": ObjectPose(np.array([0.5, 0.1, 0.0]), np.array([0.0, 0.0, 0.0, 1.0]))}
    vector = layout.vector(poses)
    np.testing.assert_allclose(layout.poses(vector)["hole"].position_m, [0.5, 0.1, 0.0])
    with pytest.raises(ValueError, match="14 values"):
        layout.poses(vector[:-1])


def test_success_on_an_estimate_is_the_twins_success_condition() -> None:
    layout = TaskStateLayout(load_task("peg_insert"))
    hole, up = np.array([0.5, 0.1, 0.0]), np.array([0.0, 0.0, 0.0, 1.0])
    inserted = layout.vector({"peg": ObjectPose(hole + np.array([0.001, 0.0, 0.055]), up),
                              "hole": ObjectPose(hole, up)})  # bottom 2.5 cm below the block's top face
    on_rim = layout.vector({"peg": ObjectPose(hole + np.array([0.0, 0.0, 0.081]), up), "hole": ObjectPose(hole, up)})
    beside = layout.vector({"peg": ObjectPose(hole + np.array([0.006, 0.0, 0.055]), up), "hole": ObjectPose(hole, up)})
    assert layout.is_success(inserted, {}) and not layout.is_success(on_rim, {})
    assert not layout.is_success(beside, {})  # deep enough, but 6 mm off the axis



def _yaw_deg(T: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(T[1, 0], T[0, 0])))


def test_a_held_objects_fit_noise_is_smoothed_but_a_slip_in_the_fingers_is_followed_at_once() -> None:
    """In closed fingers the object moves with the TCP: its fits' frame-to-frame scatter (the partial view's
    noise) is averaged in the TCP frame, and a fit far from the grasp (a slip) is taken as it is."""
    rng = np.random.default_rng(3)
    estimator = ObjectStateEstimator([BOX])
    T_tcp = pose(0.52, 0.0, 0.05, 0.0)
    T_tcp[:3, :3] = np.diag([1.0, -1.0, -1.0])
    width = 2 * BOX.half_size_m[0]
    wobble_deg = [3.0 * (-1) ** i for i in range(12)]  # what the cloud says, frame after frame: +-3 deg
    reported = [_yaw_deg(estimator.update(*scene(BOX, pose(0.52, 0.0, 0.04, np.radians(w)), rng), T_base_tcp=T_tcp,
                                          gripper_width_m=width)["peg"].T_base_object) for w in wobble_deg]
    swings = np.abs(np.diff(reported[4:]))
    assert swings.max() < 2.0, reported  # the clouds swing by 6 deg per frame
    assert abs(np.mean(reported[4:])) < 1.0
    slipped = estimator.update(*scene(BOX, pose(0.52, 0.0, 0.04, np.radians(20.0)), rng), T_base_tcp=T_tcp,
                               gripper_width_m=width)["peg"]
    assert abs(_yaw_deg(slipped.T_base_object) - 20.0) < 2.0
