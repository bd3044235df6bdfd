"""The learner of an online fine-tuning session on the robot graph (``learner_node``), without ROS.

It runs in its own process, never in the control loop: it reads committed episodes from the store the policy
node writes (a read-only open sees only what a commit record covers, so a half-written episode is never read),
runs one PPO update on every episode it has not learned from yet, and saves ``online_state.pt`` atomically
(residual, PPO state, episodes consumed, a weights version) before anyone is told. A learner killed at any point
restarts from that file: at worst the last update is redone, and nothing committed is ever skipped. The file has
the in-process session's layout (:mod:`robot_learning.sessions.online_finetune`), so ``manip-stack finetune
--online`` and ``--init-residual`` read it too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robot_learning.data.episode_store import EpisodeStore, EpisodeStoreError
from robot_learning.rl.config import FinetuneConfig, PPOConfig
from robot_learning.rl.ppo import PPOUpdater, RolloutBuffer
from robot_learning.rl.residual import ActionNormalizer, ResidualPolicy
from robot_learning.rl.rollout import state_vector
from robot_learning.runtime.safe_load import load_plain, save_plain
from robot_learning.sessions.online_actor import STATE_NAME, STORE_NAME
from ros_support.params import Field, NodeParams

log = logging.getLogger(__name__)


def buffer_from_store(store: EpisodeStore, keys: list[str], normalizer: ActionNormalizer, first: int,
                      last: int) -> RolloutBuffer:
    """Episodes ``[first, last)`` as one PPO batch (one env): intervention steps masked out of the policy loss,
    an episode that ran out of time bootstrapped from its last value rather than called a failure."""
    episodes = [store.get_episode(i) for i in range(first, last)]
    successes = [store.episode_info(i)["success"] for i in range(first, last)]
    steps = sum(len(e["action"]) for e in episodes)
    obs_dim = sum(int(np.prod(store.specs[k].shape)) for k in keys)
    buffer = RolloutBuffer.allocate(steps, 1, obs_dim, len(normalizer.low))
    buffer.policy_weight = torch.ones(steps, 1)
    row = 0
    for episode, success in zip(episodes, successes, strict=True):
        n = len(episode["action"])
        sl = slice(row, row + n)
        buffer.obs[sl, 0] = torch.from_numpy(state_vector(episode, keys))
        buffer.base_action_norm[sl, 0] = torch.from_numpy(normalizer.normalize_clipped(episode["base_action"]))
        buffer.residual[sl, 0] = torch.from_numpy(episode["residual"])
        buffer.log_prob[sl, 0] = torch.from_numpy(episode["log_prob"])
        buffer.value[sl, 0] = torch.from_numpy(episode["value"])
        buffer.reward[sl, 0] = torch.from_numpy(episode["reward"])
        buffer.done[row + n - 1, 0] = 1.0
        if not success:
            buffer.bootstrap_value[row + n - 1, 0] = float(episode["value"][-1])
        buffer.policy_weight[sl, 0] = torch.from_numpy(~episode["intervention"]).float()
        row += n
    buffer.step = steps
    return buffer


@dataclass
class UpdateReport:
    version: int
    episodes_consumed: int
    episodes_in_batch: int
    steps: int
    approx_kl: float
    update_s: float
    started_unix_s: float


class OnlineLearner:
    """PPO on committed episodes; :meth:`poll` does at most one update and returns its report."""

    def __init__(self, out: Path, config: FinetuneConfig, action_low: np.ndarray, action_high: np.ndarray,
                 episodes_per_update: int = 4) -> None:
        self.out, self.config, self.episodes_per_update = Path(out), config, episodes_per_update
        self.keys = list(config.residual.obs_keys)
        self.normalizer = ActionNormalizer(np.asarray(action_low), np.asarray(action_high))
        self.ppo_config = PPOConfig.model_validate({**config.ppo.model_dump(), "n_envs": 1, "steps_per_iteration": 1,
                                                    "n_minibatches": 1})
        self.state_path = self.out / STATE_NAME
        self.store_path = self.out / STORE_NAME
        self.policy: ResidualPolicy | None = None
        self.updater: PPOUpdater | None = None
        self.episodes_consumed, self.version = 0, 0
        self._state = load_plain(self.state_path, "online session state") if self.state_path.exists() else None
        if self._state is not None:
            self.episodes_consumed = int(self._state["episodes_consumed"])
            self.version = int(self._state.get("version", self.episodes_consumed))
            log.info("resumed: %d stored episodes already learned from (weights version %d)",
                     self.episodes_consumed, self.version)

    def _open(self) -> EpisodeStore | None:
        """The store as committed now, or None while it does not exist or a commit is being published."""
        if not (self.store_path / "zarr.json").is_file():
            return None
        try:
            return EpisodeStore.open(self.store_path, mode="r")
        except EpisodeStoreError as exc:  # a read racing a commit's metadata: the next poll sees it whole
            log.debug("store not readable yet: %s", exc)
            return None

    def _build(self, store: EpisodeStore) -> None:
        missing = [k for k in self.keys if k not in store.specs]
        if missing:
            raise KeyError(f"{self.store_path} does not record the residual's keys {missing}; it has "
                           f"{sorted(store.specs)}")
        obs_dim = sum(int(np.prod(store.specs[k].shape)) for k in self.keys)
        self.policy = ResidualPolicy(obs_dim, len(self.normalizer.low), self.config.residual)
        self.updater = PPOUpdater(self.policy, self.ppo_config)
        if self._state is not None:
            self.policy.load_state_dict(self._state["residual"])
            self.updater.load_state_dict(self._state["ppo"])

    def poll(self) -> UpdateReport | None:
        """One PPO update on every committed episode not learned from yet, if there are enough of them."""
        store = self._open()
        if store is None:
            return None
        with store:
            available = store.n_episodes
            if available - self.episodes_consumed < self.episodes_per_update:
                return None
            if self.policy is None:
                self._build(store)
            started, t0 = time.time(), time.monotonic()
            buffer = buffer_from_store(store, self.keys, self.normalizer, self.episodes_consumed, available)
        stats = self.updater.update(buffer, torch.zeros(1))
        batch = available - self.episodes_consumed
        self.episodes_consumed, self.version = available, self.version + 1
        save_plain({"residual": self.policy.state_dict(), "ppo": self.updater.state_dict(),
                    "episodes_consumed": self.episodes_consumed, "version": self.version}, self.state_path)
        report = UpdateReport(self.version, available, batch, int(buffer.step), float(stats.approx_kl),
                              time.monotonic() - t0, started)
        log.info("PPO update %d on episodes up to %d: kl %.4f, %.2f s", self.version, available, stats.approx_kl,
                 report.update_s)
        return report


class LearnerParams(NodeParams):
    """``learner_node``'s parameters."""

    checkpoint: str = Field(description="the frozen base policy checkpoint (its action bounds normalise the residual)")
    config: str = Field("configs/rl/peg_insert_residual_cpu.yaml", description="FinetuneConfig YAML (residual, PPO)")
    out_dir: str = Field("outputs/online_ros", description="session folder: online_rollouts.zarr and online_state.pt")
    episodes_per_update: int = Field(4, ge=1, le=1000, description="new committed episodes per PPO update")
    poll_s: float = Field(1.0, gt=0.0, le=60.0, description="how often the store is checked for new episodes [s]")
    torch_threads: int = Field(1, ge=1, le=64, description="CPU threads for the PPO update")
    niceness: int = Field(10, ge=0, le=19, description="added to the process's nice value at start: an update "
                          "yields the CPU to the control loop's nodes (0 = as they run)")
    weights_topic: str = Field("/finetune/weights", description="std_msgs/String JSON out after every update")
