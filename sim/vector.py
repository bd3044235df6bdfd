"""Many twins at once: a gymnasium vector env (subprocesses by default, one per core is a good start).

Same-step autoreset, so a policy (and PPO's bootstrapping) sees the final observation of an episode in
``info["final_obs"]`` and the first of the next one as the observation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import gymnasium as gym

from hardware_configs.schema import CellConfig, TaskConfig
from sim.env import TwinEnv


def _make(cell: CellConfig | str, task: TaskConfig | str, image_size: tuple[int, int] | None, depth: bool,
          wrapper: Callable[[gym.Env], gym.Env] | None = None) -> gym.Env:
    env = TwinEnv(cell=cell, task=task, image_size=image_size, depth=depth)
    return wrapper(env) if wrapper is not None else env


def make_vector_env(
    n_envs: int,
    cell: CellConfig | str = "franka_3cam",
    task: TaskConfig | str = "lift",
    image_size: tuple[int, int] | None = (96, 96),
    depth: bool = False,
    asynchronous: bool = True,
    wrapper: Callable[[gym.Env], gym.Env] | None = None,
) -> gym.vector.VectorEnv:
    """``wrapper`` (picklable: a module-level function or a partial of one) wraps each twin in its worker,
    e.g. to replace the sparse reward by a foundation-model reward (:class:`RewardWrapper`)."""
    if n_envs < 1:
        raise ValueError(f"n_envs must be at least 1, got {n_envs}")
    factories = [partial(_make, cell, task, image_size, depth, wrapper) for _ in range(n_envs)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    if asynchronous:
        # spawn: each worker creates its own GL context, never inheriting one through fork
        return gym.vector.AsyncVectorEnv(factories, context="spawn", autoreset_mode=mode)
    return gym.vector.SyncVectorEnv(factories, autoreset_mode=mode)


def ended_episode_outcomes(info: Mapping, n_envs: int) -> list[str]:
    """How the episodes that ended this step ended (``sim.tasks.OUTCOMES``), one per env, from the same-step
    autoreset's ``final_info``; "unknown" where an env did not say (it did not end, or it is not a twin)."""
    outcomes = info.get("final_info", {}).get("outcome", [None] * n_envs)
    return [str(o) if o else "unknown" for o in outcomes]
