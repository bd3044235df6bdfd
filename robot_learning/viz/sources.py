"""What ``manip-stack view`` logs: the episodes of a store, or RealSense recordings played through perception.

A store's keys map onto :meth:`RerunView.log_step` by name: the observation keys (images, depth, TCP,
``privileged``/``estimated`` object poses) as the observation, ``action``, ``reward``, ``base_action`` and
``residual`` (online fine-tuning stores), ``intervention``, and every other per-step scalar (``log_prob``,
``value``, per-stage rewards ``reward_*``) as a time series. Stores keep no safety events; live sessions log them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robot_learning.viz.rerun_view import RerunView

ACTION_KEYS = {"action", "base_action", "residual"}
STEP_KEYS = ACTION_KEYS | {"reward", "timestamp", "intervention"}


def parse_episodes(text: str, n_episodes: int) -> list[int]:
    """``all``, ``3``, ``0,2,5`` or ``0-4`` (inclusive) as episode indices, each checked against the store."""
    text = text.strip().lower()
    if text == "all":
        return list(range(n_episodes))
    chosen: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            chosen += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise ValueError(f"--episodes takes all, N, N,M or N-M; got {text!r}") from None
    bad = [i for i in chosen if not 0 <= i < n_episodes]
    if bad:
        raise ValueError(f"episode(s) {bad} are not in the store, which has episodes 0-{n_episodes - 1}")
    return chosen


def log_store_episodes(view: RerunView, store, episodes: Sequence[int], estimate: bool = False) -> int:
    """Log ``episodes`` of an open :class:`EpisodeStore`; returns the number of steps logged.

    ``estimate``: run the object-state estimator on each step's fused cloud (stores with depth) and log its poses
    as ``estimated`` beside the episode's own (the twin's truth, for twin episodes)."""
    estimator = None
    if estimate:
        from perception.object_state import ObjectStateEstimator

        if view.task is None:
            raise ValueError("estimating object poses needs the task (its objects)")
        estimator = ObjectStateEstimator(view.task)
    steps = 0
    for index in episodes:
        if estimator is not None:
            estimator.reset()
        episode = store.get_episode(index)
        info = store.episode_info(index)
        view.start_episode(index, {k: info[k] for k in ("success", "seed", "operator") if k in info})
        n = len(episode["action"]) if "action" in episode else len(next(iter(episode.values())))
        scalar_keys = [k for k, v in episode.items() if k not in STEP_KEYS and v.ndim == 1]
        obs_keys = [k for k in episode if k not in STEP_KEYS and k not in scalar_keys]
        for t in range(n):
            obs = {k: episode[k][t] for k in obs_keys}
            cloud = estimates = None
            if estimator is not None:
                cloud = view.fused_cloud(obs)
                if cloud is None:
                    raise ValueError("--estimate needs depth in the store (collect --depth) to fuse a cloud from")
                found = estimator.update(cloud[0], cloud[1], float(episode["timestamp"][t]) if "timestamp" in episode
                                         else t * view._period_s)
                estimates = {name: e.T_base_object for name, e in found.items()}
            view.log_step(
                obs,
                cloud=cloud,
                estimates=estimates,
                action=episode["action"][t] if "action" in episode else None,
                reward=float(episode["reward"][t]) if "reward" in episode else None,
                t_s=float(episode["timestamp"][t]) if "timestamp" in episode else None,
                base_action=episode["base_action"][t] if "base_action" in episode else None,
                residual=episode["residual"][t] if "residual" in episode else None,
                intervention=bool(episode["intervention"][t]) if "intervention" in episode else None,
                scalars={k: float(episode[k][t]) for k in scalar_keys},
                events=[f"episode {index} ends: {'success' if info.get('success') else 'failure'}"]
                if t == n - 1 else (),
            )
            steps += 1
    return steps


def log_recordings(view: RerunView, directory: str | Path, task, **replay_options) -> object:
    """Play the RealSense recordings in ``directory`` through perception, logging every frameset; the report."""
    from perception.replay import replay_recordings

    view.start_episode(0, {"recordings": str(directory)})
    start_ms: list[float] = []
    tcp: dict[str, np.ndarray] = {}
    T_base_flange = replay_options.get("T_base_flange")
    if T_base_flange is not None:  # the arm's pose while recording, as the TCP pose the view places wrist cameras by
        from geometry.transforms import matrix_to_pose

        T_flange_tcp = np.eye(4)
        T_flange_tcp[:3, 3] = view.cell.robot.tcp_offset_m
        position, quaternion = matrix_to_pose(np.asarray(T_base_flange) @ T_flange_tcp)
        tcp = {"tcp_position": position, "tcp_quaternion": quaternion}

    def on_frameset(result) -> None:
        if not start_ms:
            start_ms.append(result.frameset.reference_time_ms)
        obs = dict(tcp)
        for name, frame in result.frameset.frames.items():
            obs[f"{name}_rgb"], obs[f"{name}_depth"] = frame.color, frame.depth_m
        estimates = {name: e.T_base_object for name, e in result.estimates.items()}
        view.log_step(obs, t_s=(result.frameset.reference_time_ms - start_ms[0]) / 1e3,
                      cloud=(result.cloud.points_m, result.cloud.colors), estimates=estimates,
                      scalars={"skew_ms": result.frameset.skew_ms, "cloud_points": len(result.cloud.points_m)})

    return replay_recordings(view.cell, task, directory, on_frameset=on_frameset, **replay_options)

