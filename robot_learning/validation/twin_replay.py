"""Replay a recorded episode's commands in the twin, from the recorded initial state.

The initial state comes from the first recorded step: the arm's joint positions (``joint_pos``) and the
object/fixture poses (``privileged``: objects then fixtures, position + quaternion (x, y, z, w), base frame;
on the robot, from perception or a measured placement). The recorded actions are then stepped open loop, and
every observation the twin produces is kept beside the recorded one, step for step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_learning.data.episode_store import EpisodeStore
from sim.env import TwinEnv

LOW_DIM_KEYS = ("tcp_position", "tcp_rot6d", "joint_pos", "gripper_width", "privileged")


class ReplayTwinEnv(TwinEnv):
    """The twin with one more way to reset: to a recorded arm configuration and recorded object poses."""

    def reset_to_recorded(self, joint_pos_rad: np.ndarray, privileged: np.ndarray,
                          seed: int | None = None) -> dict[str, np.ndarray]:
        obs, _ = self.reset(seed=seed, options={"joint_pos": np.asarray(joint_pos_rad, dtype=float),
                                                "privileged": np.asarray(privileged, dtype=float)})
        return obs


@dataclass
class ReplayResult:
    """Recorded and simulated arrays of one episode, aligned step by step (index k = before action k)."""

    episode: int
    recorded: dict[str, np.ndarray]
    simulated: dict[str, np.ndarray]
    camera_names: list[str]
    recorded_success: bool
    simulated_success: bool
    policy_hz: float

    @property
    def n_steps(self) -> int:
        return len(self.recorded["action"])


def replay_episode(store: EpisodeStore, episode: int, env: ReplayTwinEnv, delay_steps: int = 0) -> ReplayResult:
    """Step the recorded actions of ``episode`` in ``env`` from the recorded initial state.

    ``delay_steps`` > 0 replays as if each command reached the arm that many steps late (the arm holding
    until the first one arrives): the what-if that confirms a lag estimated from the trajectories.
    """
    rec = store.get_episode(episode)
    for key in ("action", "joint_pos", "privileged"):
        if key not in rec:
            raise KeyError(f"episode {episode} has no {key!r}; replay needs actions and the initial state")
    obs = env.reset_to_recorded(rec["joint_pos"][0], rec["privileged"][0])
    names = env.cameras.camera_names if env.cameras is not None else []
    keys = [k for k in LOW_DIM_KEYS if k in rec] + [f"{n}_rgb" for n in names if f"{n}_rgb" in rec]
    sim: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    success = False
    hold = np.zeros((delay_steps, 7), np.float32)
    executed = np.concatenate([hold, rec["action"]])[: len(rec["action"])]
    for action in executed:
        for k in keys:
            sim[k].append(obs[k])
        obs, _, _, _, info = env.step(action)
        success = success or bool(info["success"])
    return ReplayResult(
        episode=episode, recorded={k: rec[k] for k in [*keys, "action"]},
        simulated={k: np.stack(v) for k, v in sim.items()}, camera_names=[n for n in names if f"{n}_rgb" in rec],
        recorded_success=bool(store.episode_info(episode)["success"]), simulated_success=success,
        policy_hz=float(store.attrs.get("policy_hz", env.cell.rates.policy_hz)),
    )


def replay_env_for(store: EpisodeStore) -> ReplayTwinEnv:
    """The nominal twin of the store's cell and task, rendering at the store's image size."""
    image_keys = [k for k, s in store.specs.items() if s.is_image]
    size = None
    cameras = None
    if image_keys:
        h, w = store.specs[image_keys[0]].shape[:2]
        size = (w, h)
        cameras = [k.removesuffix("_rgb") for k in image_keys]
    return ReplayTwinEnv(cell=store.attrs["cell"], task=store.attrs["task"], image_size=size, cameras=cameras)
