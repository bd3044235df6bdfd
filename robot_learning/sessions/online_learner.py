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
import os
import time
from collections.abc import Callable
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
                      last: int, between: Callable[[], None] | None = None) -> RolloutBuffer:
    """Episodes ``[first, last)`` as one PPO batch (one env): intervention steps masked out of the policy loss,
    an episode that ran out of time bootstrapped from its last value rather than called a failure. ``between``
    is called after each episode is read (the learner yields the CPU there)."""
    episodes = []
    for i in range(first, last):
        episodes.append(store.get_episode(i))
        if between is not None:
            between()
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


class CpuYield:
    """Cuts a PPO update into short bursts with sleeps between them, so on a machine with few cores the nodes of
    the control loop (twin or robot driver, controller, policy) get a core while the learner updates.

    Called after every optimiser step (two per minibatch: actor and critic) and after every episode read; it
    sleeps ``ratio`` times as long as the burst since the last call took (at most ``max_sleep_s``), so the
    learner uses at most ``1 / (1 + ratio)`` of one core during an update and the update takes ``1 + ratio``
    times as long. ``ratio`` 0: no sleeps (the update as it was).
    """

    def __init__(self, ratio: float = 1.0, max_sleep_s: float = 0.1) -> None:
        if ratio < 0 or max_sleep_s < 0:
            raise ValueError(f"CpuYield needs ratio >= 0 and max_sleep_s >= 0, got {ratio}, {max_sleep_s}")
        self.ratio, self.max_sleep_s = ratio, max_sleep_s
        self.slept_s = 0.0
        self._since = time.monotonic()

    def start(self) -> None:
        self._since = time.monotonic()

    def __call__(self, *_: object) -> None:  # also an optimiser step post-hook: (optimizer, args, kwargs)
        if self.ratio > 0:
            pause = min(self.ratio * (time.monotonic() - self._since), self.max_sleep_s)
            time.sleep(pause)
            self.slept_s += pause
        self._since = time.monotonic()


def lower_priority(niceness: int, idle: bool) -> str:
    """This thread (and the threads it starts: torch's) below the control loop's nodes: Linux's ``SCHED_IDLE``
    policy if ``idle`` (it runs only on CPU time no normal thread wants; an unprivileged process may switch to
    it), else, or where it is refused, ``niceness`` added to the nice value. Returns what was done."""
    if idle and hasattr(os, "sched_setscheduler"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "SCHED_IDLE"
        except OSError as exc:
            log.warning("SCHED_IDLE refused (%s): using nice +%d instead", exc, niceness)
    if niceness:
        os.nice(niceness)
    return f"nice +{niceness}"


@dataclass
class UpdateReport:
    version: int
    episodes_consumed: int
    episodes_in_batch: int
    steps: int
    approx_kl: float
    update_s: float
    started_unix_s: float
    yielded_s: float = 0.0  # of update_s, asleep to leave the CPU to the control loop


class OnlineLearner:
    """PPO on committed episodes; :meth:`poll` does at most one update and returns its report."""

    def __init__(self, out: Path, config: FinetuneConfig, action_low: np.ndarray, action_high: np.ndarray,
                 episodes_per_update: int = 4, cpu_yield: CpuYield | None = None) -> None:
        self.out, self.config, self.episodes_per_update = Path(out), config, episodes_per_update
        self.cpu_yield = cpu_yield or CpuYield(ratio=0.0)
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
        for optimizer in (self.updater.actor_optimizer, self.updater.critic_optimizer):
            optimizer.register_step_post_hook(self.cpu_yield)
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
            started, t0, slept = time.time(), time.monotonic(), self.cpu_yield.slept_s
            self.cpu_yield.start()
            buffer = buffer_from_store(store, self.keys, self.normalizer, self.episodes_consumed, available,
                                       between=self.cpu_yield)
        stats = self.updater.update(buffer, torch.zeros(1))
        batch = available - self.episodes_consumed
        self.episodes_consumed, self.version = available, self.version + 1
        save_plain({"residual": self.policy.state_dict(), "ppo": self.updater.state_dict(),
                    "episodes_consumed": self.episodes_consumed, "version": self.version}, self.state_path)
        report = UpdateReport(self.version, available, batch, int(buffer.step), float(stats.approx_kl),
                              time.monotonic() - t0, started, self.cpu_yield.slept_s - slept)
        log.info("PPO update %d on episodes up to %d: kl %.4f, %.2f s (%.2f s of it yielded)", self.version,
                 available, stats.approx_kl, report.update_s, report.yielded_s)
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
                          "yields the CPU to the control loop's nodes (0 = as they run); used when idle_priority "
                          "is off or refused")
    idle_priority: bool = Field(False, description="run the learner under Linux's SCHED_IDLE policy: it gets only "
                                "CPU time no other thread wants (else the niceness above); off by default: on a "
                                "saturated machine it also dies slowly (a SIGKILLed one took over 10 s at load 30)")
    yield_ratio: float = Field(1.0, ge=0.0, le=20.0, description="after every optimiser step and episode read, "
                               "sleep this many times as long as it computed: at most 1/(1+ratio) of a core during "
                               "an update, which takes 1+ratio times as long (0 = no sleeps)")
    max_yield_s: float = Field(0.1, ge=0.0, le=5.0, description="longest single sleep of yield_ratio [s]")
    weights_topic: str = Field("/finetune/weights", description="std_msgs/String JSON out after every update")
