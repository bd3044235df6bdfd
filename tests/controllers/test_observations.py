"""What an observation means: one schema of keys with units and frames, and proprioception computed from it."""

import numpy as np
import pytest

from controllers.interface import RobotState
from controllers.observations import (
    NOT_POLICY_INPUTS,
    PROPRIO_KEYS,
    SIM_ONLY_KEYS,
    matrix_from_rot6d,
    observation_schema,
    proprio_observation,
)
from geometry.transforms import quat_xyzw_to_matrix

Q = np.array([0.1, 0.9, 0.1, 0.4]) / np.linalg.norm([0.1, 0.9, 0.1, 0.4])
STATE = RobotState(0.0, np.linspace(-1, 1, 7), np.zeros(7), np.array([0.5, 0.1, 0.2]), Q, 0.05)


def test_proprioception_has_exactly_the_schemas_keys_shapes_and_dtypes(cell):
    obs = proprio_observation(STATE)
    schema = observation_schema(cell, [], None, depth=False)
    assert tuple(obs) == PROPRIO_KEYS == tuple(schema)
    for key, value in obs.items():
        assert (value.shape, value.dtype) == (schema[key].shape, schema[key].dtype), key


def test_rot6d_is_the_first_two_columns_of_the_tcp_rotation():
    rot6d = proprio_observation(STATE)["tcp_rot6d"]
    np.testing.assert_allclose(matrix_from_rot6d(rot6d.astype(float)), quat_xyzw_to_matrix(Q), atol=1e-6)


def test_what_the_robot_observes_has_no_sim_only_keys(cell):
    robot = observation_schema(cell, ["cam_front", "cam_wrist"], (32, 24), depth=True)
    assert not set(robot) & set(SIM_ONLY_KEYS)
    assert robot["cam_front_rgb"].shape == (24, 32, 3) and robot["cam_front_rgb"].dtype == np.uint8
    assert robot["cam_wrist_depth"].unit == "m"
    assert robot["cam_wrist_rgb"].frame == cell.camera("cam_wrist").optical_frame
    twin = observation_schema(cell, ["cam_front", "cam_wrist"], (32, 24), depth=True,
                              sim_dims={"privileged": 14, "privileged_relative": 5})
    assert set(twin) - set(robot) == set(SIM_ONLY_KEYS)
    assert twin["privileged"].shape == (14,) and twin["privileged"].sim_only


def test_sim_only_and_discontinuous_keys_are_not_policy_inputs():
    assert set(NOT_POLICY_INPUTS) == {*SIM_ONLY_KEYS, "tcp_quaternion"}


def test_an_unknown_sim_only_key_is_refused(cell):
    with pytest.raises(KeyError, match="object_pose"):
        observation_schema(cell, [], None, depth=False, sim_dims={"object_pose": 7})
