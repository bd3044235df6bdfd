"""Twin randomisation (sim/randomisation.py): a seed gives one scene, another seed another, every draw within its
configured range, and the nominal twin is always the starting point (perturbations never accumulate)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from geometry.transforms import quat_xyzw_to_matrix
from sim.env import TwinEnv
from sim.randomisation import (
    Appearance,
    CameraJitter,
    Dynamics,
    Interval,
    Lighting,
    RandomisationConfig,
    RandomisedTwin,
    SensorNoise,
    TwinRandomiser,
)

FIELDS = ("cam_pos", "cam_quat", "light_pos", "light_diffuse", "geom_rgba", "geom_friction", "body_mass",
          "body_inertia", "dof_damping")


@pytest.fixture(scope="module")
def env():
    twin = TwinEnv(task="peg_insert", image_size=(32, 32))
    yield twin
    twin.close()


def snapshot(model) -> dict[str, np.ndarray]:
    return {name: getattr(model, name).copy() for name in FIELDS} | {
        "headlight": np.concatenate([model.vis.headlight.ambient, model.vis.headlight.diffuse])}


def rotation_deg(q_wxyz_a: np.ndarray, q_wxyz_b: np.ndarray) -> float:
    ra, rb = (quat_xyzw_to_matrix(np.roll(q, -1)) for q in (q_wxyz_a, q_wxyz_b))
    cos = (np.trace(ra.T @ rb) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def test_the_same_seed_gives_the_same_scene_and_another_seed_another(env):
    randomiser = TwinRandomiser.for_env(env, RandomisationConfig())
    first = randomiser.randomise(7)
    a = snapshot(env.model)
    other = randomiser.randomise(8)
    b = snapshot(env.model)
    again = randomiser.randomise(7)
    assert first == again and first != other
    for name, value in snapshot(env.model).items():
        assert np.array_equal(value, a[name]), name
    changed = [name for name in a if not np.array_equal(a[name], b[name])]
    assert set(changed) == {*FIELDS, "headlight"}  # every kind of perturbation moved between the seeds
    randomiser.restore()


def test_every_draw_stays_within_its_configured_range_and_colours_stay_recognisable(env):
    config = RandomisationConfig()
    randomiser = TwinRandomiser.for_env(env, config)
    nominal, m = randomiser.nominal, env.model
    peg = m.body("peg").id
    peg_geom = m.geom("peg_geom").id
    for seed in range(20):
        randomiser.randomise(seed)
        for cam in randomiser.camera_ids:
            assert np.linalg.norm(m.cam_pos[cam] - nominal.cam_pos[cam]) <= config.camera.translation_mm * 1e-3 + 1e-12
            assert rotation_deg(m.cam_quat[cam], nominal.cam_quat[cam]) <= config.camera.rotation_deg + 1e-6
        assert config.dynamics.mass_scale.contains(m.body_mass[peg] / nominal.body_mass[peg])
        rubbing = randomiser.friction_geom_ids
        ratios = m.geom_friction[rubbing, 0] / nominal.geom_friction[rubbing, 0]
        assert config.dynamics.friction_scale.contains(ratios)
        assert config.dynamics.object_damping.contains(m.dof_damping[randomiser.object_dof_ids])
        assert np.all(np.abs(m.light_pos - nominal.light_pos) <= config.lighting.position_offset_m + 1e-12)
        assert config.lighting.headlight_ambient.contains(m.vis.headlight.ambient)
        shift = np.abs(m.geom_rgba[randomiser.object_geom_ids + randomiser.fixture_geom_ids, :3]
                       - nominal.geom_rgba[randomiser.object_geom_ids + randomiser.fixture_geom_ids, :3])
        assert shift.max() <= config.appearance.object_rgb + 1e-7
        assert np.argmax(m.geom_rgba[peg_geom, :3]) == 2  # the blue peg is still blue
        # nothing outside the task's objects, fixtures, table and floor changes colour (the arm, the pads)
        others = [g for g in range(m.ngeom) if g not in {*randomiser.object_geom_ids, *randomiser.fixture_geom_ids,
                                                          *randomiser.surface_geom_ids}]
        assert np.array_equal(m.geom_rgba[others], nominal.geom_rgba[others])
    randomiser.restore()
    assert all(np.array_equal(getattr(m, n), getattr(nominal, n)) for n in FIELDS)


def test_a_disabled_kind_is_left_nominal(env):
    config = RandomisationConfig(dynamics=Dynamics(enabled=False))
    randomiser = TwinRandomiser.for_env(env, config)
    drawn = randomiser.randomise(3)
    assert "dynamics" not in drawn and np.array_equal(env.model.body_mass, randomiser.nominal.body_mass)
    randomiser.restore()


def test_the_wrapped_twin_renders_the_same_scene_differently_per_randomisation_seed(env):
    observations = []
    for randomisation_seed in (0, 0, 1):
        twin = RandomisedTwin(env, RandomisationConfig(seed=randomisation_seed))
        obs, _ = twin.reset(seed=11)
        observations.append(obs)
        twin.randomiser.restore()
    same, repeat, other = observations
    assert all(np.array_equal(same[k], repeat[k]) for k in same)
    # the scene (where the peg and the hole are) is the reset seed's; its look is the randomisation's
    np.testing.assert_allclose(same["privileged"], other["privileged"], atol=2e-3)
    diff = np.abs(same["cam_front_rgb"].astype(float) - other["cam_front_rgb"])
    assert 1.0 < diff.mean() < 60.0


def test_with_every_kind_off_the_wrapped_twin_is_the_nominal_one_and_sensor_noise_alone_is_grain(env):
    off = dict(camera=CameraJitter(enabled=False), lighting=Lighting(enabled=False),
               appearance=Appearance(enabled=False), dynamics=Dynamics(enabled=False))
    nominal, _ = env.reset(seed=11)
    plain, _ = RandomisedTwin(env, RandomisationConfig(**off, sensor=SensorNoise(enabled=False))).reset(seed=11)
    grainy, _ = RandomisedTwin(env, RandomisationConfig(**off, sensor=SensorNoise(pixel_noise_std=3.0))).reset(seed=11)
    assert all(np.array_equal(nominal[k], plain[k]) for k in nominal)
    noise = grainy["cam_side_rgb"].astype(float) - nominal["cam_side_rgb"]
    assert 2.0 < noise.std() < 4.0 and abs(noise.mean()) < 0.5
    assert np.array_equal(grainy["tcp_position"], nominal["tcp_position"])  # images only


@pytest.mark.parametrize("bad", [
    {"dynamics": {"mass_scale": {"low": 1.2, "high": 0.8}}},
    {"dynamics": {"friction_scale": {"low": 0.0, "high": 1.0}}},
    {"camera": {"translation_mm": -1.0}},
    {"lighting": {"headlight_ambient": {"low": -0.1, "high": 0.3}}},
    {"camera": {"translation_mm": 1.0, "typo": 2}},
])
def test_bad_ranges_are_refused_when_the_config_is_built(bad):
    with pytest.raises(ValidationError):
        RandomisationConfig.model_validate(bad)


def test_an_interval_draws_inside_itself():
    rng = np.random.default_rng(0)
    interval = Interval(low=0.5, high=0.7)
    assert interval.contains(interval.draw(rng, 100)) and not interval.contains(0.71)
