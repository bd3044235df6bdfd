"""The twins as Ray actors: a gymnasium vector env whose envs live in Ray workers, on this machine or a cluster.

:class:`RayVectorEnv` behaves as gymnasium's ``SyncVectorEnv`` with same-step autoreset does (the collectors of
residual PPO and evaluation use it unchanged): env ``i`` is reset with seed ``seed + i``, an episode that ends is
reset in the same step, and ``info["final_obs"]``/``info["final_info"]`` carry its end. Only where the envs run
differs: ``n_workers`` Ray actors each hold a contiguous block of twins and step them in order, all actors at once.
The learner (base policy and residual, on a GPU where there is one) stays in the driver and sees one batch.

Where the actors run is Ray's business: :func:`connect` starts a local Ray (this machine's cores), or joins the
cluster at ``address`` (``--ray-address`` or ``RAY_ADDRESS``; ``ray start --head`` on one machine and
``ray start --address=<head>:6379`` on the others makes one). The same code then places actors on every node.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

log = logging.getLogger(__name__)


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Join the Ray cluster at ``address`` (else ``RAY_ADDRESS``), or start a local one with ``num_cpus`` logical
    CPUs (default: this machine's cores); returns where. A second call reuses the connection."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=True)
    return address or "a local Ray on this machine"


class TwinWorker:
    """Twins in one Ray worker process, stepped in order; an episode that ends is reset in the same step.

    ``blob``: the twins' factories, cloudpickled, unpacked only after the worker chose its OpenGL backend (anything
    that imports mujoco first would leave a headless node unable to render)."""

    def __init__(self, blob: bytes):
        from ray import cloudpickle

        from sim.gl_backend import GLBackendError, select_gl_backend

        try:
            select_gl_backend()
        except GLBackendError as exc:  # state-only twins do not render
            log.warning("%s Twins with cameras will fail on this node.", exc)
        self.envs: list[gym.Env] = [make() for make in cloudpickle.loads(blob)]

    def spaces(self) -> tuple[gym.Space, gym.Space, dict[str, Any], str | None]:
        env = self.envs[0]
        return env.observation_space, env.action_space, dict(env.metadata), env.render_mode

    def reset(self, seeds: Sequence[int | None], options: dict[str, Any] | None) -> list[tuple[Any, dict]]:
        return [env.reset(seed=seed, options=options) for env, seed in zip(self.envs, seeds, strict=True)]

    def step(self, actions: Sequence[np.ndarray]) -> list[tuple]:
        """Per twin: (obs, reward, terminated, truncated, (final_obs, final_info) or None, info)."""
        results = []
        for env, action in zip(self.envs, actions, strict=True):
            obs, reward, terminated, truncated, info = env.step(action)
            final = None
            if terminated or truncated:
                final = (obs, info)
                obs, info = env.reset()
            results.append((obs, reward, terminated, truncated, final, info))
        return results

    def call(self, name: str, args: tuple, kwargs: dict) -> list[Any]:
        out = []
        for env in self.envs:
            attr = getattr(env, name)
            out.append(attr(*args, **kwargs) if callable(attr) else attr)
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()


def split_evenly(n_items: int, n_parts: int) -> list[range]:
    """Contiguous blocks of ``range(n_items)``, sizes differing by at most one, the first ones larger."""
    sizes = [n_items // n_parts + (i < n_items % n_parts) for i in range(n_parts)]
    starts = np.cumsum([0, *sizes])
    return [range(int(starts[i]), int(starts[i + 1])) for i in range(n_parts)]


class RayVectorEnv(gym.vector.VectorEnv):
    """``len(env_fns)`` envs in ``n_workers`` Ray actors of ``cpus_per_worker`` logical CPUs each."""

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], n_workers: int, cpus_per_worker: float = 1.0):
        import ray
        from ray import cloudpickle

        if not ray.is_initialized():
            raise RuntimeError("Ray is not connected: call robot_learning.scale.ray_twins.connect() first")
        if not 1 <= n_workers <= len(env_fns):
            raise ValueError(f"ray workers must be between 1 and the number of envs ({len(env_fns)}), got {n_workers}")
        self.num_envs = len(env_fns)
        self.blocks = split_evenly(self.num_envs, n_workers)
        actor = ray.remote(num_cpus=cpus_per_worker)(TwinWorker)
        self.workers = [actor.remote(cloudpickle.dumps([env_fns[i] for i in block])) for block in self.blocks]
        obs_space, act_space, metadata, render_mode = ray.get(self.workers[0].spaces.remote())
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = batch_space(obs_space, self.num_envs)
        self.action_space = batch_space(act_space, self.num_envs)
        self.metadata = {**metadata, "autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.render_mode = render_mode
        self._observations = create_empty_array(obs_space, n=self.num_envs, fn=np.zeros)

    def _gather(self, method: str, per_env_args: Sequence[Any], *extra: Any) -> list[Any]:
        """Call ``method`` on every actor with its block of ``per_env_args``; results in env order."""
        import ray

        refs = [getattr(w, method).remote([per_env_args[i] for i in block], *extra)
                for w, block in zip(self.workers, self.blocks, strict=True)]
        return [item for block in ray.get(refs) for item in block]

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int | np.integer):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"{len(seeds)} seeds for {self.num_envs} envs")
        results = self._gather("reset", seeds, options)
        infos: dict[str, Any] = {}
        for i, (_, info) in enumerate(results):
            infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, [o for o, _ in results], self._observations)
        return _copy(self._observations), infos

    def step(self, actions):
        results = self._gather("step", list(iterate(self.action_space, actions)))
        rewards = np.array([r[1] for r in results], dtype=np.float64)
        terminated = np.array([r[2] for r in results], dtype=np.bool_)
        truncated = np.array([r[3] for r in results], dtype=np.bool_)
        infos: dict[str, Any] = {}
        for i, (_, _, _, _, final, info) in enumerate(results):
            if final is not None:  # the order of SyncVectorEnv's same-step autoreset: the end, then the reset's info
                infos = self._add_info(infos, {"final_obs": final[0], "final_info": final[1]}, i)
            infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, [r[0] for r in results], self._observations)
        return _copy(self._observations), rewards, terminated, truncated, infos

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        import ray

        return tuple(x for block in ray.get([w.call.remote(name, args, kwargs) for w in self.workers]) for x in block)

    def render(self) -> tuple[Any, ...]:
        return self.call("render")

    def close_extras(self, **kwargs: Any) -> None:
        import ray

        try:
            ray.get([w.close.remote() for w in self.workers], timeout=30)
        finally:
            for w in self.workers:
                ray.kill(w)


def _copy(obs: Any) -> Any:
    return {k: np.copy(v) for k, v in obs.items()} if isinstance(obs, dict) else np.copy(obs)
