"""Where a session's parallel twins run: the backend choice of finetune and eval.

``process`` (the default, and the reference): gymnasium's vector env from :func:`sim.vector.make_vector_env`, one
subprocess per twin on this machine. ``ray``: the same twins as Ray actors (:mod:`.ray_twins`), on this machine or
on every node of a Ray cluster, stepping through the same gym API, so the sessions do not change.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field

from hardware_configs.schema import CellConfig, TaskConfig

Backend = Literal["process", "ray"]
BACKENDS: tuple[str, ...] = ("process", "ray")


class TwinBackend(BaseModel):
    """How to run the twins. ``ray_workers`` None: one actor per twin; ``ray_address`` None: ``RAY_ADDRESS`` or a
    local Ray; ``ray_cpus`` (local Ray only): the logical CPUs it offers (default: the machine's cores)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Backend = "process"
    ray_workers: int | None = Field(None, gt=0)
    ray_address: str | None = None
    ray_cpus: int | None = Field(None, gt=0)
    cpus_per_worker: float = Field(1.0, gt=0)


def _twin(cell: CellConfig | str, task: TaskConfig | str, image_size: tuple[int, int] | None, depth: bool,
          wrapper: Callable[[gym.Env], gym.Env] | None) -> gym.Env:
    """One twin, built as ``sim.vector`` builds each of its envs (so both backends step the same env)."""
    from sim.env import TwinEnv

    env = TwinEnv(cell=cell, task=task, image_size=image_size, depth=depth)
    return wrapper(env) if wrapper is not None else env


def make_twins(n_envs: int, backend: TwinBackend | None = None, cell: CellConfig | str = "franka_3cam",
               task: TaskConfig | str = "lift", image_size: tuple[int, int] | None = (96, 96), depth: bool = False,
               wrapper: Callable[[gym.Env], gym.Env] | None = None) -> gym.vector.VectorEnv:
    """``n_envs`` twins with same-step autoreset on ``backend`` (default: subprocesses, one per twin)."""
    backend = backend or TwinBackend()
    if n_envs < 1:
        raise ValueError(f"n_envs must be at least 1, got {n_envs}")
    if backend.kind == "process":
        from sim.vector import make_vector_env

        return make_vector_env(n_envs, cell=cell, task=task, image_size=image_size, depth=depth,
                               asynchronous=n_envs > 1, wrapper=wrapper)
    from robot_learning.scale.ray_twins import RayVectorEnv, connect

    workers = backend.ray_workers or n_envs
    if workers > n_envs:
        raise ValueError(f"{workers} Ray workers for {n_envs} twins: give at most one worker per twin")
    connect(backend.ray_address, backend.ray_cpus)
    factory = partial(_twin, cell, task, image_size, depth, wrapper)
    return RayVectorEnv([factory] * n_envs, workers, backend.cpus_per_worker)
