"""(Observation history, action chunk) training windows over an episode store, held in memory.

Every step of every episode is the current (latest observed) step of exactly one window: windows start
from ``-(n_obs_steps - 1)`` to ``L - n_obs_steps`` for an episode of ``L`` steps. Indices outside the
episode are padded: observations repeat the first frame; actions become a *hold* (zero in the delta
dimensions, the edge value in the absolute ones such as the gripper), because repeating a delta action
past the end would teach the policy to keep moving after the demonstration stopped.

This departs from Diffusion Policy's sampler, which pads only ``n_action_steps - 1`` after the end, so the
last ``horizon - n_obs_steps - n_action_steps + 1`` steps are never a current step. With ~25-step lift
episodes that is the grasp and the lift (11 of 25 steps with 4 executed actions): trained that way the
policy failed all of its first 26 lift evaluation episodes (numbers in configs/policy/lift_cpu.yaml).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np

from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.integrity import describe_skipped, load_healthy

log = logging.getLogger(__name__)


def load_arrays(store: EpisodeStore, keys: Sequence[str], max_episodes: int | None = None
                ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Arrays of ``keys`` for the first ``max_episodes`` episodes (all by default) and their episode ends.

    Episodes with a damaged chunk (undecodable, missing, or not matching its checksum) are left out with a
    WARNING naming each (episode, array): one bad chunk should cost its episode, not the training run.
    """
    n_episodes = store.n_episodes if max_episodes is None else min(max_episodes, store.n_episodes)
    if n_episodes == 0:
        raise ValueError(f"{store.path} has no episodes to train on")
    start = time.monotonic()
    healthy = load_healthy(store, keys, n_episodes)
    if healthy.damages:
        log.warning(describe_skipped(store.path, healthy.damages, len(healthy.episodes), n_episodes))
    if not len(healthy.episodes):
        raise ValueError(f"{store.path}: all {n_episodes} episodes are damaged; see `manip-stack verify {store.path}`")
    arrays, ends = healthy.arrays, healthy.episode_ends
    mib = sum(a.nbytes for a in arrays.values()) / 2**20
    log.info("loaded %d episodes (%d steps, %.0f MiB) in %.1f s", len(ends), ends[-1], mib, time.monotonic() - start)
    return arrays, ends


class WindowDataset:
    """All training windows of in-memory episodes; ``batch(indices)`` gathers them with numpy indexing."""

    def __init__(self, arrays: Mapping[str, np.ndarray], episode_ends: np.ndarray, obs_keys: Sequence[str],
                 action_key: str, n_obs_steps: int, horizon: int, n_action_steps: int,
                 delta_action_dims: Sequence[int]):
        missing = [k for k in [*obs_keys, action_key] if k not in arrays]
        if missing:
            raise KeyError(f"arrays lack keys {missing}; have {sorted(arrays)}")
        self.arrays, self.obs_keys, self.action_key = arrays, list(obs_keys), action_key
        self.n_obs_steps, self.horizon, self.n_action_steps = n_obs_steps, horizon, n_action_steps
        action_dim = arrays[action_key].shape[-1]
        self.delta_mask = np.zeros(action_dim, bool)
        self.delta_mask[list(delta_action_dims)] = True
        starts, firsts, lasts = [], [], []
        begin = 0
        for end in np.asarray(episode_ends, np.int64):
            length = int(end) - begin
            window_starts = np.arange(-(n_obs_steps - 1), length - n_obs_steps + 1)
            if length <= 0 or window_starts.size == 0:
                raise ValueError(f"episode ending at step {end} has {length} steps; too short for these horizons")
            starts.append(begin + window_starts)
            firsts.append(np.full(window_starts.size, begin))
            lasts.append(np.full(window_starts.size, int(end) - 1))
            begin = int(end)
        self._start, self._first, self._last = np.concatenate(starts), np.concatenate(firsts), np.concatenate(lasts)

    def __len__(self) -> int:
        return int(self._start.size)

    def batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """{obs_key: (B, n_obs_steps, ...), action_key: (B, horizon, A)} for windows ``indices``."""
        raw = self._start[indices, None] + np.arange(self.horizon)[None, :]  # global step index, unclipped
        first, last = self._first[indices, None], self._last[indices, None]
        steps = np.clip(raw, first, last)
        out = {k: self.arrays[k][steps[:, : self.n_obs_steps]] for k in self.obs_keys}
        action = self.arrays[self.action_key][steps].astype(np.float32, copy=True)
        outside = (raw < first) | (raw > last)
        action[outside[..., None] & self.delta_mask] = 0.0  # hold: no motion outside the demonstration
        out[self.action_key] = action
        return out

    def epoch_batches(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Shuffled index batches covering the windows once; a last partial batch is dropped (unless it is all)."""
        order = rng.permutation(len(self))
        n_full = len(order) // batch_size
        if n_full == 0:
            return [order]
        return [order[i * batch_size : (i + 1) * batch_size] for i in range(n_full)]
