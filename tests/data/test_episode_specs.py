"""An episode's array specs come from the observation schema and the action's meaning: nothing restated."""

import numpy as np
import pytest

from controllers.actions import ACTION_DIM, ACTION_UNITS
from controllers.observations import PROPRIOCEPTION, SIM_ONLY, observation_schema
from robot_learning.data.specs import ACTION_SPEC, episode_specs, observation_spec


def test_every_observation_key_is_stored_with_its_unit_frame_and_shape(cell):
    schema = observation_schema(cell, ["cam_side"], (16, 12), depth=True, sim_dims={"privileged": 7})
    specs = episode_specs(schema)
    assert list(specs) == [*schema, "action", "reward", "timestamp"]
    for key, obs_key in schema.items():
        spec = specs[key]
        assert (spec.shape, spec.dtype, spec.unit, spec.frame, spec.description) == (
            obs_key.shape, obs_key.dtype, obs_key.unit, obs_key.frame, obs_key.description), key
    assert specs["cam_side_rgb"].is_image and specs["cam_side_depth"].shape == (12, 16)
    assert specs["tcp_position"].unit == PROPRIOCEPTION["tcp_position"].unit == "m"


def test_the_action_is_stored_with_one_unit_per_dimension():
    assert ACTION_SPEC.unit.split(",") == list(ACTION_UNITS)
    assert ACTION_SPEC.shape == (ACTION_DIM,) and ACTION_SPEC.dtype == np.float32 and ACTION_SPEC.frame == "base"


def test_a_sim_only_key_needs_its_length_from_the_task():
    with pytest.raises(ValueError, match="privileged"):
        observation_spec(SIM_ONLY["privileged"])
