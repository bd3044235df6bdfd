"""The policy side of an online fine-tuning session on the robot graph (``finetune_policy_node``), without ROS.

:class:`ResidualActor` serves the frozen base plus the residual with its exploration noise, one action per policy
step, and returns what PPO needs of that step (base action, residual sample, log-probability, value).
:class:`EpisodeRecorder` writes those steps into the crash-safe episode store with the same keys as the in-process
session (:data:`robot_learning.sessions.online_finetune.RL_SPECS`), so the learner, ``manip-stack show`` and an
in-process session read one format. Rewards are ResiP's sparse success: a step is written once the next one (or
the episode's label) says what its reward was, so the last step carries the success.

Weights change only between episodes (:meth:`ResidualActor.load_weights` is refused while an episode runs): one
episode is one policy, which the log-probabilities the learner uses assume.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from controllers.observations import PROPRIOCEPTION, SIM_ONLY
from robot_learning.data.episode_store import ArraySpec, EpisodeStore
from robot_learning.data.specs import episode_specs
from robot_learning.rl.base_policy import FrozenBase
from robot_learning.rl.config import FinetuneConfig
from robot_learning.rl.residual import ActionNormalizer, ResidualPolicy
from robot_learning.rl.rollout import state_vector
from robot_learning.runtime.safe_load import load_plain
from robot_learning.sessions.online_finetune import RL_SPECS
from ros_support.params import CELL_DESCRIPTION, TASK_DESCRIPTION, CellName, Field, NodeParams, TaskName

log = logging.getLogger(__name__)
STORE_NAME = "online_rollouts.zarr"  # as the in-process session: the learner and ``finetune --online`` share it
STATE_NAME = "online_state.pt"  # the learner's state: residual, PPO, episodes consumed, weights version


def load_finetune_config(path: str | Path) -> FinetuneConfig:
    """A FinetuneConfig YAML through the bounded loader, refused with the file, field and value."""
    from configs import config_dir
    from hardware_configs.loader import ConfigError, validate_model
    from hardware_configs.safe_yaml import UnsafeYamlError, read_yaml_mapping

    path = Path(path)
    if not path.is_file() and not path.is_absolute() and (config_dir("rl") / path.name).is_file():
        path = config_dir("rl") / path.name  # a shipped config by name, from any working directory
    try:
        raw = read_yaml_mapping(path)
    except UnsafeYamlError as exc:
        raise ConfigError(str(exc)) from None
    config = validate_model(raw, FinetuneConfig, path)
    if config.reward != "sparse":
        raise ConfigError(f"{path}: reward {config.reward}: an online session learns from the success label "
                          "(reward: sparse)")
    return config


class ActorError(RuntimeError):
    """A request the actor refuses in its current state (an episode running, none running)."""


def low_dim_specs(obs: Mapping[str, np.ndarray], keys: list[str]) -> dict[str, ArraySpec]:
    """Episode specs for the low-dimensional ``keys`` of ``obs`` (shapes from the observation; units and frames
    from :mod:`controllers.observations`), then action, reward, time and the RL keys."""
    from controllers import observations

    table = {**PROPRIOCEPTION, **SIM_ONLY, **getattr(observations, "ESTIMATED", {})}  # estimated: the robot's view
    schema = {}
    for key in keys:
        known = table.get(key)
        if known is None:
            raise KeyError(f"observation key {key!r} is not a low-dimensional key the stack knows: {sorted(table)}")
        schema[key] = known.with_shape(np.asarray(obs[key]).shape)
    return {**episode_specs(schema), **RL_SPECS}


class ResidualActor:
    """Base + residual (sampled: exploration) for one robot; built lazily at the first observation, whose shapes
    size the residual's input."""

    def __init__(self, base_policy, config: FinetuneConfig) -> None:
        self.base = FrozenBase(base_policy, 1)
        self.config = config
        self.keys = list(config.residual.obs_keys)
        self.obs_keys = list(dict.fromkeys([*base_policy.obs_keys, *self.keys]))  # what a step records
        self.normalizer = ActionNormalizer(self.base.action_low, self.base.action_high)
        self.policy: ResidualPolicy | None = None
        self.weights_version = -1  # -1: the zero-initialised residual (the base alone)
        self._pending: dict[str, Any] | None = None  # weights waiting for the next episode

    def build(self, obs: Mapping[str, np.ndarray]) -> None:
        if self.policy is None:
            missing = [k for k in self.obs_keys if k not in obs]
            if missing:
                raise KeyError(f"observation lacks {missing}; it has {sorted(obs)}")
            obs_dim = int(state_vector({k: np.asarray(obs[k])[None] for k in self.keys}, self.keys).shape[1])
            self.policy = ResidualPolicy(obs_dim, int(self.base.action_low.size), self.config.residual)
            if self._pending is not None:
                self._apply(self._pending)

    def offer_weights(self, path: Path) -> int:
        """Read the learner's state file now (atomically written: whole or absent) and keep its residual for the
        next episode; returns its version."""
        state = load_plain(path, "online session state")  # refused if it holds pickled objects
        if not isinstance(state, dict) or not isinstance(state.get("residual"), dict):
            raise ValueError(f"{path} holds no residual weights")
        self._pending = state
        return int(state.get("version", state.get("episodes_consumed", 0)))

    def between_episodes(self) -> int:
        """Swap in offered weights (call only between episodes); returns the version now served."""
        if self._pending is not None and self.policy is not None:
            self._apply(self._pending)
        self.base.reset(np.ones(1, dtype=bool))
        return self.weights_version

    def _apply(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["residual"])
        self.weights_version = int(state.get("version", state.get("episodes_consumed", 0)))
        self._pending = None
        log.info("serving residual version %d", self.weights_version)

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(executed action, the step's RL record) for one observation."""
        self.build(obs)
        batch = {k: np.asarray(obs[k], dtype=np.float32)[None] for k in self.obs_keys}
        base_raw = self.base.act(batch)[0]
        base_t = torch.from_numpy(self.normalizer.normalize_clipped(base_raw))[None]
        residual, log_prob, value = self.policy.act(torch.from_numpy(state_vector(batch, self.keys)), base_t)
        action = np.asarray(self.policy.executed_action(self.normalizer, base_t, residual)[0], dtype=np.float32)
        record = {"base_action": base_raw, "residual": residual[0].numpy(), "log_prob": np.float32(log_prob[0]),
                  "value": np.float32(value[0])}
        return action, record


class EpisodeRecorder:
    """Steps of the running episode into the store (opened at the first step: its shapes come from it)."""

    def __init__(self, out: Path, cell: str, task: str, keys: list[str]) -> None:
        self.out, self.cell, self.task, self.keys = Path(out), cell, task, keys
        self.store: EpisodeStore | None = None
        self._episode = None
        self._held: dict[str, Any] | None = None  # the last step, written once its reward is known
        self.steps = 0
        self.interventions = 0
        if (self.out / STORE_NAME).exists():  # take the writer lock now: a second writer is refused at start
            self.store = EpisodeStore.open(self.out / STORE_NAME, mode="a")

    @property
    def n_episodes(self) -> int:
        return 0 if self.store is None else self.store.n_episodes

    @property
    def running(self) -> bool:
        return self._episode is not None

    def begin(self, info: Mapping[str, Any]) -> None:
        if self.running:
            raise ActorError("an episode is already running: end or discard it first")
        self._info, self._episode, self._held, self.steps, self.interventions = dict(info), "pending", None, 0, 0

    def add(self, obs: Mapping[str, np.ndarray], action: np.ndarray, record: Mapping[str, np.ndarray],
            intervention: bool, stamp_s: float) -> None:
        if not self.running:
            raise ActorError("no episode is running")
        if self._episode == "pending":
            if self.store is None:
                self.out.mkdir(parents=True, exist_ok=True)
                attrs = {"cell": self.cell, "task": self.task, "source": "online_residual_finetune_ros"}
                self.store = EpisodeStore.open_or_create(self.out / STORE_NAME, low_dim_specs(obs, self.keys), attrs)
            self._episode = self.store.begin_episode(self._info)
        self._flush(reward=0.0)
        self._held = {**{k: np.asarray(obs[k], dtype=np.float32) for k in self.keys},
                      "action": np.asarray(action, np.float32), "timestamp": np.float64(stamp_s),
                      **record, "intervention": np.bool_(intervention)}
        self.steps += 1
        self.interventions += int(intervention)

    def _flush(self, reward: float) -> None:
        if self._held is not None:
            self._episode.add_step(**self._held, reward=np.float32(reward))
            self._held = None

    def end(self, success: bool) -> int | None:
        """Commit the running episode (the last step's reward is the success); its index, or None if it had no
        step (nothing to commit)."""
        if not self.running:
            raise ActorError("no episode is running")
        episode, index = self._episode, None
        if episode != "pending" and self._held is not None:
            self._flush(reward=float(success))
            index = episode.commit(success=bool(success))
        elif episode != "pending":
            episode.discard()
        self._episode = None
        return index

    def discard(self) -> bool:
        """Drop the running episode (nothing of it reaches the store); False if none was running."""
        if not self.running:
            return False
        if self._episode != "pending":
            self._episode.discard()
        self._episode, self._held = None, None
        return True

    def close(self) -> None:
        self.discard()
        if self.store is not None:
            self.store.close()


class FinetunePolicyParams(NodeParams):
    """``finetune_policy_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    task: TaskName = Field("peg_insert", description=TASK_DESCRIPTION)
    checkpoint: str = Field(description="the frozen base policy checkpoint (policy.pt)")
    config: str = Field("configs/rl/peg_insert_residual_cpu.yaml",
                        description="FinetuneConfig YAML: the residual, PPO and the base's DDIM settings")
    out_dir: str = Field("outputs/online_ros", description="session folder: online_rollouts.zarr and online_state.pt")
    allow_sim_only: bool = Field(False, description="serve a base or residual that reads the twin's privileged state "
                                 "(set by finetune.launch.py with use_sim:=true only)")
    device: str = Field("cpu", description="torch device of the base and residual")
    torch_threads: int = Field(1, ge=1, le=64, description="CPU threads for inference")
    obs_topic_prefix: str = Field("/manip/obs/", description="std_msgs/Float64MultiArray per observation key that is "
                                  "not proprioception (e.g. <prefix>privileged from the twin or an estimator)")
    action_topic: str = Field("/manip/action", description="delta actions out (JointTrajectory over the action names)")
    intervention_topic: str = Field("/manip/teleop_action", description=(
        "a person's delta actions in (same message as action_topic, from any teleop device node); while they "
        "arrive they are executed instead of the policy's and the steps are marked as interventions"))
    teleop_device: str = Field("", description=(
        "a teleop device this node reads itself: '' (none), ros (Twist on /teleop/cmd_vel + Joy on /joy), "
        "spacemouse, keyboard, gamepad; while it intervenes its action is executed and the step marked; its accept "
        "and discard buttons label the episode (success, failure) on operator_label_topic"))
    operator_label_topic: str = Field("/manip/operator_label",
                                      description="std_msgs/Bool out: the teleop device's success label")
    intervention_timeout_s: float = Field(0.3, gt=0.0, le=5.0,
                                          description="a teleop action older than this no longer takes over [s]")
    weights_topic: str = Field("/finetune/weights", description="std_msgs/String JSON in: the learner's new weights")
    joint_states_topic: str = Field("/joint_states", description="sensor_msgs/JointState in")
    tcp_pose_topic: str = Field("/tcp_pose", description="geometry_msgs/PoseStamped in")
    joint_prefix: str = Field("", description="prefix of the arm's joint names")
    gripper_joint: str = Field("gripper_width", description="joint_states entry of the gripper")
    gripper_joint_scale: float = Field(1.0, ge=1e-6, description="opening [m] = scale * position")
    max_observation_age_s: float = Field(0.3, ge=0.001, description="an older observation is not acted on [s]")
