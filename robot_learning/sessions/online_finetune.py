"""Online residual fine-tuning on the robot (the twin stands in for it here): `manip-stack finetune --online`.

Episodes run one at a time through the robot's env (every command through SafeRobot). Every step goes into
the episode store with what PPO needs (base action, residual sample, log-probability, value) and whether a
person had taken over with teleop. Only committed episodes are learned from, so a crash loses at most the
episode in progress; ``online_state.pt`` records how many stored episodes the residual has consumed, so a
restarted session first learns from what it had collected but not yet used, then carries on. A new session
can start from a residual trained in the twin (``init_residual``) instead of from the base alone.

Intervention steps stay in the store (and can be added to the BC dataset) but are masked out of the PPO
policy loss: their action was the person's, not the policy's. They still train the critic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from controllers.actions import ACTION_DIM
from robot_learning.data.episode_store import ArraySpec, EpisodeStore
from robot_learning.data.specs import ACTION_SPEC
from robot_learning.rl.base_policy import FrozenBase
from robot_learning.rl.ppo import PPOUpdater, RolloutBuffer
from robot_learning.rl.residual import ActionNormalizer, ResidualPolicy
from robot_learning.rl.rollout import state_vector
from robot_learning.rl.warm_start import load_trained_residual
from robot_learning.runtime.safe_load import load_plain, save_plain
from robot_learning.sessions.collect import dataset_specs
from robot_learning.sessions.success import EstimatedSuccess, TwinSuccess

log = logging.getLogger(__name__)
# A teleop source: called every step with the observation, returns the person's action or None (the policy
# acts). If it has a ``reset()`` method, it is called at the start of every episode.
Intervention = Callable[[Mapping[str, np.ndarray]], "np.ndarray | None"]

RL_SPECS = {
    "base_action": replace(ACTION_SPEC, description="frozen base's action"),
    "residual": ArraySpec((ACTION_DIM,), np.float32, "1", None, "residual sample r (normalised action units)"),
    "log_prob": ArraySpec((), np.float32, "1", None, "log-probability of the residual sample"),
    "value": ArraySpec((), np.float32, "1", None, "critic value (normalised returns)"),
    "intervention": ArraySpec((), np.bool_, "1", None, "a person's teleop action was executed"),
}


SuccessLabel = TwinSuccess | EstimatedSuccess


@dataclass
class OnlineReport:
    episodes_run: int
    episodes_in_store: int
    updates: int
    interventions: int
    recent_success: float


class OnlineFinetuneSession:
    def __init__(self, env, base: FrozenBase, policy: ResidualPolicy, updater: PPOUpdater, obs_keys: list[str],
                 out: Path, episodes_per_update: int = 4, intervention: Intervention | None = None,
                 label_success: SuccessLabel | None = None, seed: int = 0,
                 init_residual: Path | str | None = None, view=None):
        self.view = view  # a robot_learning.viz.rerun_view.RerunView: every step, base and residual, to rerun
        self.env, self.base, self.policy, self.updater, self.keys = env, base, policy, updater, obs_keys
        self.out, self.episodes_per_update, self.seed = Path(out), episodes_per_update, seed
        self.intervention = intervention
        self.label_success = label_success or TwinSuccess()  # the CLI passes EstimatedSuccess unless sim_only
        self.normalizer = ActionNormalizer(base.action_low, base.action_high)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "online_state.pt"
        self.episodes_consumed = 0
        if self.state_path.exists():
            state = load_plain(self.state_path, "online session state")  # refused if it holds pickled objects
            policy.load_state_dict(state["residual"])
            updater.load_state_dict(state["ppo"])
            self.episodes_consumed = int(state["episodes_consumed"])
            log.info("resumed: %d stored episodes already learned from", self.episodes_consumed)
        elif init_residual is not None:  # e.g. the residual trained in the twin, continued on the robot
            load_trained_residual(Path(init_residual), policy, policy.config)
        specs = {**dataset_specs(env), **RL_SPECS}
        attrs = {"cell": env.cell.name, "task": env.task_config.name, "source": "online_residual_finetune"}
        self.store = EpisodeStore.open_or_create(self.out / "online_rollouts.zarr", specs, attrs)

    # ------------------------------------------------------------------ one episode
    @torch.no_grad()
    def run_episode(self, seed: int) -> tuple[bool, int]:
        """Run and commit one episode; returns (success, intervention steps)."""
        obs, _ = self.env.reset(seed=seed)
        self.base.reset(np.ones(1, dtype=bool))
        if hasattr(self.intervention, "reset"):
            self.intervention.reset()
        interventions, success, info = 0, False, {}
        self.label_success.start(obs)
        if self.view is not None:
            self.view.start_episode(self.store.n_episodes, {"seed": seed, "residual": "online"})
        with self.store.begin_episode({"seed": seed, "task": self.env.task_config.name, "operator": "online"}) as ep:
            for _ in range(self.env.task_config.horizon_steps):
                batch = {k: np.asarray(v)[None] for k, v in obs.items()}
                base_raw = self.base.act(batch)[0]
                base_t = torch.from_numpy(self.normalizer.normalize_clipped(base_raw))[None]
                obs_t = torch.from_numpy(state_vector(batch, self.keys))
                residual, log_prob, value = self.policy.act(obs_t, base_t)
                action = self.policy.executed_action(self.normalizer, base_t, residual)[0]
                person = self.intervention(obs) if self.intervention else None
                if person is not None:
                    action = np.asarray(person, dtype=np.float32)
                    interventions += 1
                next_obs, reward, terminated, truncated, info = self.env.step(action)
                ep.add_step(**obs, action=action, reward=np.float32(reward), timestamp=np.float64(self.env.data.time),
                            base_action=base_raw, residual=residual[0].numpy(), log_prob=np.float32(log_prob[0]),
                            value=np.float32(value[0]), intervention=np.bool_(person is not None))
                if self.view is not None:
                    self.view.log_step(obs, action, float(reward), t_s=float(self.env.data.time),
                                       base_action=base_raw, residual=residual[0].numpy(),
                                       intervention=person is not None, scalars={"value": float(value[0])},
                                       safety_counts=getattr(getattr(self.env, "safe_robot", None),
                                                             "event_counts", None))
                obs = next_obs
                if terminated or truncated:
                    break
            success = self.label_success(info, obs)
            ep.commit(success=success)
        return success, interventions

    # ------------------------------------------------------------------ learning from the store
    def _buffer_from_store(self, first: int, last: int) -> tuple[RolloutBuffer, torch.Tensor]:
        episodes = [self.store.get_episode(i) for i in range(first, last)]
        successes = [self.store.episode_info(i)["success"] for i in range(first, last)]
        steps = sum(len(e["action"]) for e in episodes)
        obs_dim = sum(int(np.prod(self.store.specs[k].shape)) for k in self.keys)
        buffer = RolloutBuffer.allocate(steps, 1, obs_dim, len(self.normalizer.low))
        buffer.policy_weight = torch.ones(steps, 1)
        row = 0
        for episode, success in zip(episodes, successes, strict=True):
            n = len(episode["action"])
            sl = slice(row, row + n)
            buffer.obs[sl, 0] = torch.from_numpy(state_vector(episode, self.keys))
            buffer.base_action_norm[sl, 0] = torch.from_numpy(self.normalizer.normalize_clipped(episode["base_action"]))
            buffer.residual[sl, 0] = torch.from_numpy(episode["residual"])
            buffer.log_prob[sl, 0] = torch.from_numpy(episode["log_prob"])
            buffer.value[sl, 0] = torch.from_numpy(episode["value"])
            buffer.reward[sl, 0] = torch.from_numpy(episode["reward"])
            buffer.done[row + n - 1, 0] = 1.0
            if not success:  # ran out of time: bootstrap from the last value rather than call it a failure
                buffer.bootstrap_value[row + n - 1, 0] = float(episode["value"][-1])
            buffer.policy_weight[sl, 0] = torch.from_numpy(~episode["intervention"]).float()
            row += n
        buffer.step = steps
        return buffer, torch.zeros(1)

    def learn_from_new_episodes(self) -> bool:
        """One PPO update on every stored episode not yet learned from; saves the state atomically."""
        available = self.store.n_episodes
        if available - self.episodes_consumed < self.episodes_per_update:
            return False
        buffer, next_value = self._buffer_from_store(self.episodes_consumed, available)
        stats = self.updater.update(buffer, next_value)
        self.episodes_consumed = available
        save_plain({"residual": self.policy.state_dict(), "ppo": self.updater.state_dict(),
                    "episodes_consumed": self.episodes_consumed}, self.state_path)
        log.info("PPO update on episodes up to %d: kl %.4f, %d epochs", available, stats.approx_kl, stats.epochs_run)
        return True

    def run(self, n_episodes: int) -> OnlineReport:
        """Run until the store holds ``n_episodes`` episodes (a resumed session runs only the rest)."""
        updates = int(self.learn_from_new_episodes())  # first, whatever a crashed session left unlearned
        interventions, recent, ran = 0, [], 0
        while self.store.n_episodes < n_episodes:
            success, taken = self.run_episode(seed=self.seed + self.store.n_episodes)
            interventions += taken
            recent = ([*recent, success])[-10:]
            ran += 1
            updates += int(self.learn_from_new_episodes())
        return OnlineReport(ran, self.store.n_episodes, updates, interventions,
                            float(np.mean(recent)) if recent else float("nan"))

    def close(self) -> None:
        self.store.close()
