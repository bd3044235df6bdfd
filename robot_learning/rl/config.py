"""Typed configs for residual PPO; defaults are ResiP's published values (see shared/notes/methods.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from controllers.observations import ESTIMATED_KEYS, SIM_ONLY_KEYS
from hardware_configs.loader import load_cell, load_task
from robot_learning.policies.estimated_inputs import check_estimate_map
from robot_learning.rl.rewards import REWARDS, Shaping, check_shaping, registered_reward
from sim.estimation_config import StateEstimationConfig

POSE_REWARDS = ("kagi", "robohorizon")  # rewards that measure the scene's poses
PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ResidualConfig(_Strict):
    """Per-step Gaussian residual over the normalised action: a = base + scale * r, r ~ N(mu(s, a_base), std)."""

    hidden_sizes: list[PosInt] = Field(default_factory=lambda: [256, 256])
    action_scale: PosFloat | list[PosFloat] = Field(
        0.1, description="the correction is action_scale * r in normalised action units; one value for every "
        "dimension (ResiP: 0.1) or one per action dimension (e.g. more authority over the gripper's closure, which "
        "0.1 of its range cannot hold open or closed against the base)")
    init_log_std: float | list[float] = Field(
        -1.0, description="log of the residual's exploration std (in units of r, before action_scale); one value or "
        "one per action dimension (a dimension given more authority may need less noise: the gripper's closure "
        "with noise of its full range drops what it holds)")
    learn_log_std: bool = False
    obs_keys: list[str] = Field(
        default_factory=lambda: ["tcp_position", "tcp_rot6d", "gripper_width"],
        description="low-dimensional observation keys the residual and critic see; privileged* are the twin's "
        "simulator state, which the robot cannot observe, allowed only with the run's sim_only: true; "
        "privileged_relative gives the task's errors in millimetres, which the residual would otherwise have to "
        "find by differencing absolute poses (docs/config_history.md: what it changed)",
    )


class PPOConfig(_Strict):
    n_envs: PosInt = 1024
    steps_per_iteration: PosInt = 700
    update_epochs: PosInt = 50
    n_minibatches: PosInt = 1
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.999
    gae_lambda: Annotated[float, Field(ge=0, le=1)] = 0.95
    clip_coef: PosFloat = 0.2
    target_kl: PosFloat | None = 0.1
    actor_lr: PosFloat = 3e-4
    critic_lr: PosFloat = 5e-3
    max_grad_norm: PosFloat = 1.0
    normalize_advantages: bool = True
    normalize_values: bool = True
    value_coef: PosFloat = 1.0
    entropy_coef: Annotated[float, Field(ge=0)] = 0.0
    critic_warmup_iterations: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _minibatches_divide_the_batch(self) -> PPOConfig:
        batch = self.n_envs * self.steps_per_iteration
        if batch % self.n_minibatches:
            raise ValueError(
                f"n_minibatches ({self.n_minibatches}) must divide the batch n_envs*steps_per_iteration ({batch})"
            )
        return self


class FinetuneConfig(_Strict):
    task: str = "peg_insert"
    cell: str = "franka_3cam"

    @field_validator("cell")
    @classmethod
    def _cell_loads(cls, name: str) -> str:
        """The cell is loaded and checked with the config, so a bad cell stops the run before any twin starts."""
        load_cell(name)
        return name

    @field_validator("task")
    @classmethod
    def _task_loads(cls, name: str) -> str:
        load_task(name)
        return name
    base_inference_steps: PosInt = Field(4, description="DDIM steps of the frozen base during RL (ResiP: 4)")
    base_zero_noise: bool = Field(False, description="run the base's DDIM from zero noise instead of a Gaussian "
                                  "sample: the same observation always gives the same chunk, so the residual corrects "
                                  "one base behaviour per state rather than a different sampled grasp every episode")
    base_timestep_spacing: Literal["leading", "trailing"] = Field(
        "leading", description="where the frozen base's DDIM steps sit on the training timesteps, whatever the base "
        "checkpoint's own default (docs/denoising_steps.md): every residual so far was trained and measured on a "
        "leading-spaced base, so a base saved with the trailing default still runs as they learned it")
    torch_threads: PosInt = Field(1, description="CPU threads for the base and PPO; more oversubscribes the "
                                  "cores the twins run on (measured: 37 ms vs 650 ms per chunk on 2 busy cores)")
    reward: str = Field("sparse", description="the reward, by name in the registry (robot_learning.rl.rewards."
                        "REWARDS): " + "; ".join(f"{name}: {kind.pays}" for name, kind in REWARDS.items()))
    reward_shaping: Shaping = Field(
        "none", description="none: the reward paid per step as it is; potential: sparse task success plus the "
        "reward's progress as a potential with the learner's gamma (pays for progress, not for lingering short of "
        "success, which a per-step reward does when success ends the episode); each reward names those it takes")
    plan_path: str | None = Field(None, description="robohorizon: JSON of an accepted plan (manip-stack reward "
                                  "plan); none = ask model_profile for one and vet it on twin demonstrations")
    model_profile: str = Field("oracle_local", description="kagi, robohorizon: model profile in configs/fm "
                               "(oracle_local: the built-in oracle server, what a good model answers)")
    answer_cache: str | None = Field(None, description="kagi, robohorizon: sqlite answer cache (shared by the "
                                     "workers), so the run can be replayed offline with the same rewards")
    answer_cache_mode: Literal["read_write", "offline"] = "read_write"
    init_residual: str | None = Field(None, description="start from a trained residual (a run's residual_last.pt, "
                                      "a base_plus_residual.pt, an online session's online_state.pt): its weights and "
                                      "observation statistics; exploration std and optimisers come from this config. "
                                      "A sim-trained residual continued online, or a run continued with another batch")
    sim_only: bool = Field(False, description="the residual may read the twin's privileged (simulator) state; such a "
                           "run, its checkpoints and an online session from them work in the twin only. Say so "
                           "explicitly: a config that reads privileged keys without it is refused")
    state_estimation: StateEstimationConfig | None = Field(
        None, description="how the twin makes the robot's estimate of the scene (estimated, estimated_relative, "
        "estimate_confidence): source cameras (the robot's estimator on rendered, noisy depth) or error_model (the "
        "exact poses with estimator-sized errors, fast enough for RL); needed when anything reads estimated keys")
    reward_poses: Literal["estimated", "privileged"] = Field(
        "estimated", description="where a reward that measures the scene (kagi, robohorizon) reads the poses: the "
        "robot's estimate from the cameras, or (sim_only runs) the twin's exact state")
    base_inputs: dict[str, str] = Field(
        default_factory=dict, description="feed the frozen base the robot's estimate where it was trained on the "
        "twin's exact state: {privileged: estimated} (and privileged_relative: estimated_relative); the base "
        "then reads only what the robot has")
    iterations: PosInt = 100
    eval_every: PosInt = 5
    eval_episodes: PosInt = 32
    seed: int = 0
    residual: ResidualConfig = ResidualConfig()
    ppo: PPOConfig = PPOConfig()

    @field_validator("reward")
    @classmethod
    def _reward_is_registered(cls, name: str) -> str:
        return registered_reward(name)

    @model_validator(mode="after")
    def _reward_takes_the_shaping(self) -> FinetuneConfig:
        check_shaping(self.reward, self.reward_shaping)
        return self

    @model_validator(mode="after")
    def _privileged_keys_only_when_said(self) -> FinetuneConfig:
        privileged = [k for k in self.residual.obs_keys if k in SIM_ONLY_KEYS]
        if privileged and not self.sim_only:
            raise ValueError(
                f"residual.obs_keys {privileged} are the twin's simulator state, which the robot cannot observe: "
                "set sim_only: true for a twin-only run, or give the residual keys the robot has "
                "(proprioception and the base's action)"
            )
        return self

    @field_validator("base_inputs")
    @classmethod
    def _base_inputs_are_estimates(cls, inputs: dict[str, str]) -> dict[str, str]:
        return check_estimate_map(inputs)

    @model_validator(mode="after")
    def _estimates_need_a_source(self) -> FinetuneConfig:
        read = [k for k in [*self.residual.obs_keys, *self.base_inputs.values()] if k in ESTIMATED_KEYS]
        if self.reward in POSE_REWARDS and self.reward_poses == "estimated":
            read.append(f"the {self.reward} reward's poses (reward_poses: estimated)")
        if read and self.state_estimation is None:
            raise ValueError(f"{read} are the robot's estimate of the scene: say how the twin makes it with "
                             "state_estimation: {source: error_model} (fast, for training) or {source: cameras}")
        return self

    @model_validator(mode="after")
    def _privileged_rewards_only_when_said(self) -> FinetuneConfig:
        if self.reward_poses == "privileged" and not self.sim_only:
            raise ValueError("reward_poses: privileged reads the twin's simulator state, which the robot cannot "
                             "observe: set sim_only: true for a twin-only run, or use reward_poses: estimated")
        return self

    @model_validator(mode="after")
    def _offline_needs_a_cache(self) -> FinetuneConfig:
        if self.answer_cache_mode == "offline" and not self.answer_cache:
            raise ValueError("answer_cache_mode offline replays answers from answer_cache: give its path")
        return self
