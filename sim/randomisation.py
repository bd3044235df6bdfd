"""Twin randomisation for distillation: each scene's cameras, lights, colours and object dynamics drawn anew.

ResiP distils a teacher that read privileged state into a student that sees only cameras, from teacher rollouts in
randomised twins, so that the student does not learn the twin's one exact look and feel. A
:class:`TwinRandomiser` edits the compiled model in place (``env.model``: MuJoCo reads these fields at every step and
every ``update_scene``, so nothing is rebuilt) and always from the nominal values it saw first, so perturbations
never accumulate. What it draws, all bounded by :class:`RandomisationConfig`:

- **cameras** (the cell's cameras only): each camera's pose in its parent frame moved by at most
  ``translation_mm`` and rotated about a random axis by at most ``rotation_deg``. The defaults, 2 mm and 0.2 deg,
  are what the twin calibration's tests see against truth (``perception/depth_model.py``): the camera is where
  calibration says, within what calibration can tell. The frames keep the cell file's extrinsics;
- **lighting**: the light's position (offset per axis), its diffuse intensity (scaled), the ambient and diffuse
  headlight (absolute ranges);
- **appearance**: flat colours (the twin has no textures): the table and floor shifted by up to ``surface_rgb``
  per channel plus a brightness scale, the task's objects and fixtures by up to ``object_rgb`` per channel (small,
  so the blue peg stays blue: the instruction names colours);
- **sensor noise**: Gaussian grain on every colour pixel of every frame (:class:`RandomisedTwin` adds it);
- **dynamics**: the task objects' mass (inertia scaled with it: the same shape and density), sliding friction of
  objects, fixtures and table (scaled), and a damping added to the objects' free joints [N s/m, N m s/rad].

Draws come from a ``numpy.random.Generator``: :meth:`TwinRandomiser.randomise` with a seed gives the same scene
every time. :class:`RandomisedTwin` wraps an env (``sim.env.TwinEnv``) and draws before every reset, seeded by the
reset's seed, so rollouts and parallel evaluation (``sim.vector.make_vector_env(wrapper=...)``) are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from geometry.transforms import axis_angle_to_matrix, matrix_to_quat_xyzw, quat_xyzw_to_matrix


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Interval(_Strict):
    """A closed range ``[low, high]`` drawn uniformly."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def draw(self, rng: np.random.Generator, size: int | None = None) -> float | np.ndarray:
        return rng.uniform(self.low, self.high, size)

    def contains(self, value: float | np.ndarray, tol: float = 1e-9) -> bool:
        value = np.asarray(value)
        return bool(np.all(value >= self.low - tol) and np.all(value <= self.high + tol))


def _scale(low: float, high: float) -> Interval:
    return Interval(low=low, high=high)


class CameraJitter(_Strict):
    enabled: bool = True
    translation_mm: float = Field(2.0, ge=0, le=20, description="largest camera offset [mm] (in a ball)")
    rotation_deg: float = Field(0.2, ge=0, le=5, description="largest camera rotation [deg] about a random axis")


class Lighting(_Strict):
    enabled: bool = True
    position_offset_m: float = Field(0.3, ge=0, le=2, description="largest offset of each light per axis [m]")
    diffuse_scale: Interval = Field(default_factory=lambda: _scale(0.6, 1.4), description="light intensity factor")
    headlight_ambient: Interval = Field(default_factory=lambda: _scale(0.2, 0.4), description="ambient (0-1)")
    headlight_diffuse: Interval = Field(default_factory=lambda: _scale(0.25, 0.45), description="headlight (0-1)")

    @model_validator(mode="after")
    def _physical(self) -> Lighting:
        for name in ("diffuse_scale", "headlight_ambient", "headlight_diffuse"):
            if getattr(self, name).low < 0:
                raise ValueError(f"{name} must not go below 0, got {getattr(self, name)}")
        return self


class Appearance(_Strict):
    enabled: bool = True
    surface_rgb: float = Field(0.08, ge=0, le=0.5, description="largest per-channel shift of table and floor (0-1)")
    surface_brightness: Interval = Field(default_factory=lambda: _scale(0.85, 1.15),
                                         description="table and floor colour factor")
    object_rgb: float = Field(0.05, ge=0, le=0.2, description="largest per-channel shift of objects and fixtures "
                              "(small: colours stay recognisable)")


class SensorNoise(_Strict):
    enabled: bool = True
    pixel_noise_std: float = Field(2.0, ge=0, le=20, description="Gaussian noise on every colour pixel, per frame "
                                   "[uint8 levels] (a RealSense colour sensor's grain)")


class Dynamics(_Strict):
    enabled: bool = True
    mass_scale: Interval = Field(default_factory=lambda: _scale(0.8, 1.25), description="object mass factor")
    friction_scale: Interval = Field(default_factory=lambda: _scale(0.8, 1.2),
                                     description="sliding friction factor of objects, fixtures and the table")
    object_damping: Interval = Field(default_factory=lambda: _scale(0.0, 0.01),
                                     description="added to each object free-joint dof [N s/m, N m s/rad]")

    @model_validator(mode="after")
    def _positive(self) -> Dynamics:
        if self.mass_scale.low <= 0 or self.friction_scale.low <= 0 or self.object_damping.low < 0:
            raise ValueError("mass_scale and friction_scale must stay above 0, object_damping at or above 0")
        return self


class RandomisationConfig(_Strict):
    """What the twin randomises per scene and within which ranges; ``seed`` offsets every draw (a second,
    independent set of scenes from the same scene seeds)."""

    seed: int = 0
    camera: CameraJitter = CameraJitter()
    lighting: Lighting = Lighting()
    appearance: Appearance = Appearance()
    sensor: SensorNoise = SensorNoise()
    dynamics: Dynamics = Dynamics()


@dataclass(frozen=True)
class _Nominal:
    cam_pos: np.ndarray
    cam_quat: np.ndarray
    light_pos: np.ndarray
    light_diffuse: np.ndarray
    headlight_ambient: np.ndarray
    headlight_diffuse: np.ndarray
    geom_rgba: np.ndarray
    geom_friction: np.ndarray
    body_mass: np.ndarray
    body_inertia: np.ndarray
    dof_damping: np.ndarray


class TwinRandomiser:
    """Draws and applies randomised scenes to ``model`` (edited in place; :meth:`restore` puts the nominal back).

    ``cameras``: the cameras to jitter (the cell's); ``object_bodies``: the task's free objects; ``fixture_bodies``:
    its fixtures (colour and friction only). ``surfaces``: geoms given the table's colour range."""

    def __init__(self, model: mujoco.MjModel, config: RandomisationConfig, cameras: list[str],
                 object_bodies: list[str], fixture_bodies: tuple[str, ...] | list[str] = (),
                 surfaces: tuple[str, ...] = ("table", "floor")):
        self.model, self.config = model, config
        self.camera_ids = [_id(model, mujoco.mjtObj.mjOBJ_CAMERA, c) for c in cameras]
        self.object_body_ids = [_id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in object_bodies]
        fixture_ids = [_id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in fixture_bodies]
        self.surface_geom_ids = [_id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in surfaces]
        self.object_geom_ids = [g for g in range(model.ngeom) if model.geom_bodyid[g] in self.object_body_ids]
        self.fixture_geom_ids = [g for g in range(model.ngeom) if model.geom_bodyid[g] in fixture_ids]
        self.object_dof_ids = [d for d in range(model.nv) if model.dof_bodyid[d] in self.object_body_ids]
        self.friction_geom_ids = [*self.object_geom_ids, *self.fixture_geom_ids,
                                  *[g for g in self.surface_geom_ids if model.geom(g).name == "table"]]
        m = model
        self.nominal = _Nominal(m.cam_pos.copy(), m.cam_quat.copy(), m.light_pos.copy(), m.light_diffuse.copy(),
                                m.vis.headlight.ambient.copy(), m.vis.headlight.diffuse.copy(), m.geom_rgba.copy(),
                                m.geom_friction.copy(), m.body_mass.copy(), m.body_inertia.copy(),
                                m.dof_damping.copy())

    @classmethod
    def for_env(cls, env: Any, config: RandomisationConfig) -> TwinRandomiser:
        """For a :class:`sim.env.TwinEnv`: its cell's cameras, its task's objects and fixtures."""
        return cls(env.model, config, [c.name for c in env.cell.cameras], [o.name for o in env.task_config.objects],
                   [f.name for f in env.task_config.fixtures])

    def restore(self) -> None:
        """The nominal twin again."""
        m, n = self.model, self.nominal
        m.cam_pos[:], m.cam_quat[:], m.light_pos[:], m.light_diffuse[:] = n.cam_pos, n.cam_quat, n.light_pos, \
            n.light_diffuse
        m.vis.headlight.ambient[:], m.vis.headlight.diffuse[:] = n.headlight_ambient, n.headlight_diffuse
        m.geom_rgba[:], m.geom_friction[:] = n.geom_rgba, n.geom_friction
        m.body_mass[:], m.body_inertia[:], m.dof_damping[:] = n.body_mass, n.body_inertia, n.dof_damping

    def randomise(self, rng: np.random.Generator | int) -> dict[str, Any]:
        """Restore the nominal twin, then draw and apply a new scene; returns what was drawn (JSON-able: camera
        offsets [mm] and rotations [deg], light, colour shifts, dynamics factors)."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng([self.config.seed, int(rng)])
        self.restore()
        c, drawn = self.config, {}
        if c.camera.enabled:
            drawn["camera"] = self._jitter_cameras(rng)
        if c.lighting.enabled:
            drawn["lighting"] = self._light(rng)
        if c.appearance.enabled:
            drawn["appearance"] = self._colour(rng)
        if c.dynamics.enabled:
            drawn["dynamics"] = self._dynamics(rng)
        return drawn

    # ------------------------------------------------------------------ each kind
    def _jitter_cameras(self, rng: np.random.Generator) -> dict[str, dict[str, float]]:
        cfg, m, out = self.config.camera, self.model, {}
        for cam in self.camera_ids:
            offset_m = _in_ball(rng, 3) * cfg.translation_mm * 1e-3
            axis = _unit(rng, 3)
            angle_rad = np.radians(rng.uniform(0.0, cfg.rotation_deg))
            m.cam_pos[cam] = self.nominal.cam_pos[cam] + offset_m
            rot = quat_xyzw_to_matrix(np.roll(self.nominal.cam_quat[cam], -1))  # MuJoCo: (w, x, y, z)
            m.cam_quat[cam] = np.roll(matrix_to_quat_xyzw(axis_angle_to_matrix(axis * angle_rad) @ rot), 1)
            out[m.camera(cam).name] = {"offset_mm": float(np.linalg.norm(offset_m) * 1e3),
                                       "rotation_deg": float(np.degrees(angle_rad))}
        return out

    def _light(self, rng: np.random.Generator) -> dict[str, Any]:
        cfg, m = self.config.lighting, self.model
        offsets = rng.uniform(-cfg.position_offset_m, cfg.position_offset_m, self.nominal.light_pos.shape)
        scales = cfg.diffuse_scale.draw(rng, m.nlight)
        m.light_pos[:] = self.nominal.light_pos + offsets
        m.light_diffuse[:] = np.clip(self.nominal.light_diffuse * np.asarray(scales)[:, None], 0.0, 1.0)
        ambient, diffuse = cfg.headlight_ambient.draw(rng), cfg.headlight_diffuse.draw(rng)
        m.vis.headlight.ambient[:] = ambient
        m.vis.headlight.diffuse[:] = diffuse
        return {"position_offset_m": offsets.tolist(), "diffuse_scale": np.atleast_1d(scales).tolist(),
                "headlight_ambient": float(ambient), "headlight_diffuse": float(diffuse)}

    def _colour(self, rng: np.random.Generator) -> dict[str, Any]:
        cfg, m, out = self.config.appearance, self.model, {}
        for g in self.surface_geom_ids:
            shift = rng.uniform(-cfg.surface_rgb, cfg.surface_rgb, 3)
            factor = cfg.surface_brightness.draw(rng)
            m.geom_rgba[g, :3] = np.clip(self.nominal.geom_rgba[g, :3] * factor + shift, 0.0, 1.0)
            out[m.geom(g).name] = {"rgb_shift": shift.tolist(), "brightness": float(factor)}
        for body in {int(m.geom_bodyid[g]) for g in self.object_geom_ids + self.fixture_geom_ids}:
            shift = rng.uniform(-cfg.object_rgb, cfg.object_rgb, 3)  # one shift per body: its geoms stay alike
            for g in (g for g in self.object_geom_ids + self.fixture_geom_ids if m.geom_bodyid[g] == body):
                m.geom_rgba[g, :3] = np.clip(self.nominal.geom_rgba[g, :3] + shift, 0.0, 1.0)
            out[m.body(body).name] = {"rgb_shift": shift.tolist()}
        return out

    def _dynamics(self, rng: np.random.Generator) -> dict[str, Any]:
        cfg, m, out = self.config.dynamics, self.model, {}
        for body in self.object_body_ids:
            scale = float(cfg.mass_scale.draw(rng))
            m.body_mass[body] = self.nominal.body_mass[body] * scale
            m.body_inertia[body] = self.nominal.body_inertia[body] * scale
            out[m.body(body).name] = {"mass_scale": scale}
        friction = cfg.friction_scale.draw(rng, len(self.friction_geom_ids))
        m.geom_friction[self.friction_geom_ids, 0] = self.nominal.geom_friction[self.friction_geom_ids, 0] * friction
        damping = cfg.object_damping.draw(rng, len(self.object_dof_ids))
        m.dof_damping[self.object_dof_ids] = self.nominal.dof_damping[self.object_dof_ids] + damping
        out["friction_scale"] = {m.geom(g).name: float(f)
                                 for g, f in zip(self.friction_geom_ids, friction, strict=True)}
        out["object_damping"] = np.asarray(damping).tolist()
        return out


class RandomisedTwin(gym.Wrapper):
    """A twin that draws a new randomised scene before every reset.

    A reset with a seed draws from ``(config.seed, seed)``, so the same scene seed gives the same twin; resets
    without one (a vector env's autoreset) go on drawing from the stream the last seed started. Colour images get
    the sensor noise of ``config.sensor`` from the same stream. ``last_drawn``: what the latest reset drew."""

    def __init__(self, env: gym.Env, config: RandomisationConfig):
        super().__init__(env)
        self.randomiser = TwinRandomiser.for_env(env.unwrapped, config)
        self._rng = np.random.default_rng([config.seed])
        self.last_drawn: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([self.randomiser.config.seed, int(seed)])
        self.last_drawn = self.randomiser.randomise(self._rng)
        obs, info = self.env.reset(seed=seed, options=options)
        return self._noisy(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(obs), reward, terminated, truncated, info

    def _noisy(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sensor = self.randomiser.config.sensor
        if not sensor.enabled or sensor.pixel_noise_std <= 0:
            return obs
        out = dict(obs)
        for key in (k for k in obs if k.endswith("_rgb")):
            noisy = obs[key].astype(np.float32) + self._rng.normal(0.0, sensor.pixel_noise_std, obs[key].shape)
            out[key] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        return out


def randomised(env: gym.Env, config: RandomisationConfig) -> RandomisedTwin:
    """Module-level (picklable with ``functools.partial``) wrapper factory for ``make_vector_env(wrapper=...)``."""
    return RandomisedTwin(env, config)


def randomised_wrapper(config: RandomisationConfig) -> partial:
    return partial(randomised, config=config)


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    index = mujoco.mj_name2id(model, kind, name)
    if index < 0:
        raise KeyError(f"no {kind.name.removeprefix('mjOBJ_').lower()} named {name!r} in the twin")
    return index


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=n)
    return v / np.linalg.norm(v)


def _in_ball(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform in the unit ball."""
    return _unit(rng, n) * rng.uniform() ** (1.0 / n)
