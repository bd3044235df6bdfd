"""Configuration of the diffusion policy and of its training run, checked when built (not when it fails).

One YAML file holds both (``configs/policy/*.yaml``)::

    policy: {backbone: small_conv, n_obs_steps: 2, horizon: 16, n_action_steps: 8, ...}
    train: {seed: 0, batch_size: 64, num_epochs: 60, ...}

Inputs are not named in code: ``camera_keys``/``low_dim_keys`` left empty are filled from the dataset
(every ``<camera>_rgb`` the cell recorded; every proprioceptive array except the sim-only and
discontinuous ones, see :data:`EXCLUDED_LOW_DIM_KEYS`) and the resolved lists are stored in the checkpoint.

Backbones: ``resnet18`` is the published default (Chi et al.: ResNet-18 per camera, GroupNorm, spatial
softmax), meant for the robot's GPU. ``small_conv`` (three strided convolutions + GroupNorm + spatial
softmax, ~30x fewer multiply-adds at 84x84) is the CPU default so the twin demo trains on two cores.
The class defaults are the published recipe (epsilon prediction, 8 executed actions) except the sampler (2 DDIM
steps spaced trailing, measured in docs/denoising_steps.md; training is unchanged); the CPU configs
``configs/policy/*_cpu.yaml`` change the objective and the executed actions, with the measurements in them.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from configs import config_dir
from controllers.actions import DELTA_DIMS
from controllers.observations import NOT_POLICY_INPUTS, SIM_ONLY_KEYS
from hardware_configs.loader import load_model

PosInt = Annotated[int, Field(ge=1)]
CONFIG_DIR = config_dir("policy")  # shipped YAML configs

# Keys never used as policy inputs by default: not observations, and the observation keys the schema marks as
# sim-only (exact scene state, twin only) or not a policy input (the quaternion, which flips sign at the twin's
# home orientation; tcp_rot6d carries the same information continuously): controllers.observations.
NON_OBSERVATION_KEYS = ("action", "reward", "timestamp")
EXCLUDED_LOW_DIM_KEYS = NOT_POLICY_INPUTS


class Backbone(str, Enum):
    RESNET18 = "resnet18"
    SMALL_CONV = "small_conv"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DiffusionConfig(_Strict):
    """Model, noise schedule and horizons (defaults: Diffusion Policy's, U-Net sized for a CPU)."""

    # Inputs; None = resolved from the dataset by :func:`resolve_input_keys`.
    sim_only: bool = Field(False, description="may read privileged sim state; never loads on the robot")
    camera_keys: list[str] | None = None
    low_dim_keys: list[str] | None = None
    action_key: str = "action"
    # Horizons, in policy steps: observe n_obs_steps, predict horizon, execute n_action_steps.
    n_obs_steps: PosInt = 2
    horizon: PosInt = 16
    n_action_steps: PosInt = 8
    # Vision (one encoder per camera, robomimic ObservationEncoder).
    backbone: Backbone = Backbone.SMALL_CONV
    crop_ratio: float = Field(0.875, gt=0.0, le=1.0, description="random crop (train) / centre crop (eval)")
    small_conv_channels: Annotated[list[PosInt], Field(min_length=3, max_length=3)] = Field(
        default_factory=lambda: [16, 32, 32])
    spatial_softmax_keypoints: PosInt = 32
    image_feature_dim: PosInt = 64
    use_group_norm: bool = True
    # 1-D temporal U-Net with FiLM conditioning.
    down_dims: list[PosInt] = Field(default_factory=lambda: [64, 128, 256])
    kernel_size: PosInt = 5
    n_groups: PosInt = 8
    diffusion_step_embed_dim: PosInt = 64
    film_scale: bool = True
    # Noise: DDPM for training, DDIM with fewer steps for inference.
    num_train_timesteps: PosInt = 100
    # Sampling only (training is DDPM at num_train_timesteps either way): 2 DDIM steps spaced trailing, at t=99, 49.
    # Measured on the lift and peg_insert policies (prediction_type sample, trained and first measured at 16 leading
    # steps) on the same scenes: within noise of 16 leading steps, 8x less U-Net work (docs/denoising_steps.md).
    # Where DDIM's steps sit on the training timesteps: leading (diffusers' default: 1 step runs the denoiser at
    # t=0, i.e. on pure noise told it is clean; 2 at t=50, 0) or trailing (1 step at t=T-1; 2 at T-1, T/2-1).
    # A checkpoint saved before this field existed keeps leading (checkpoint.saved_training_config); residual RL
    # runs its base with FinetuneConfig.base_timestep_spacing.
    num_inference_steps: PosInt = 2
    timestep_spacing: Literal["leading", "trailing"] = "trailing"
    beta_schedule: Literal["squaredcos_cap_v2", "linear", "scaled_linear"] = "squaredcos_cap_v2"
    prediction_type: Literal["epsilon", "sample"] = "epsilon"
    clip_sample: bool = True
    # Action layout: dims that are per-step deltas (held at 0); the others are absolute (held at last value).
    delta_action_dims: list[int] = Field(default_factory=lambda: list(DELTA_DIMS))

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.down_dims) - 1)

    @model_validator(mode="after")
    def _cross_field_checks(self) -> DiffusionConfig:
        if self.horizon % self.downsampling_factor:
            raise ValueError(
                f"horizon={self.horizon} must be divisible by the U-Net's downsampling factor "
                f"{self.downsampling_factor} (2 ** (len(down_dims)-1), down_dims={self.down_dims})"
            )
        if self.n_obs_steps > self.horizon:
            raise ValueError(f"n_obs_steps={self.n_obs_steps} must be <= horizon={self.horizon}")
        max_exec = self.horizon - self.n_obs_steps + 1
        if self.n_action_steps > max_exec:
            raise ValueError(
                f"n_action_steps={self.n_action_steps} must be <= horizon - n_obs_steps + 1 = {max_exec} "
                f"(actions are taken from the current step on)"
            )
        if self.num_inference_steps > self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps={self.num_inference_steps} must be <= num_train_timesteps="
                f"{self.num_train_timesteps}"
            )
        bad = [d for d in self.down_dims if d % self.n_groups]
        if bad:
            raise ValueError(f"down_dims {bad} are not divisible by n_groups={self.n_groups} (GroupNorm)")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={self.kernel_size} must be odd to keep the horizon length")
        for name in ("camera_keys", "low_dim_keys", "delta_action_dims"):
            values = getattr(self, name)
            if values is not None and len(set(values)) != len(values):
                raise ValueError(f"{name} has duplicates: {values}")
        if self.camera_keys is not None and self.low_dim_keys is not None:
            if not self.camera_keys and not self.low_dim_keys:
                raise ValueError("the policy needs at least one input (camera_keys and low_dim_keys are both empty)")
            both = set(self.camera_keys) & set(self.low_dim_keys)
            if both:
                raise ValueError(f"keys {sorted(both)} are in both camera_keys and low_dim_keys")
        return self

    def crop_shape(self, image_hw: tuple[int, int]) -> tuple[int, int] | None:
        """Crop (H, W) [px] for images of ``image_hw``; None when ``crop_ratio`` is 1 (no crop)."""
        if self.crop_ratio >= 1.0:
            return None
        crop = (round(image_hw[0] * self.crop_ratio), round(image_hw[1] * self.crop_ratio))
        if min(crop) < 8 or crop == tuple(image_hw):
            raise ValueError(f"crop_ratio={self.crop_ratio} gives crop {crop} of {image_hw} images; need 8 px..size-1")
        return crop


class TrainConfig(_Strict):
    """Optimisation (Diffusion Policy's AdamW + cosine schedule with warm-up + EMA) and bookkeeping."""

    seed: int = 0
    batch_size: PosInt = 64
    num_epochs: PosInt = 60
    learning_rate: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-6, ge=0)
    adam_betas: tuple[float, float] = (0.95, 0.999)
    lr_warmup_steps: int = Field(500, ge=0)
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    use_ema: bool = True
    ema_power: float = Field(0.75, gt=0)
    ema_max_decay: float = Field(0.9999, gt=0, lt=1)
    grad_clip_norm: float | None = Field(None, gt=0)
    checkpoint_every_epochs: PosInt = 1
    max_episodes: PosInt | None = Field(None, description="train on the first N episodes only")
    num_threads: PosInt | None = Field(None, description="torch CPU threads (None: torch's default)")


class PolicyTrainingConfig(_Strict):
    """The YAML file: ``policy`` and ``train`` sections."""

    policy: DiffusionConfig = Field(default_factory=DiffusionConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


def load_training_config(name_or_path: str | Path) -> PolicyTrainingConfig:
    """Read a YAML config by path or by name in ``configs/policy/``; errors name the file, field and value."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no policy config at {path}; shipped configs in {CONFIG_DIR}: {shipped}")
    return load_model(path, PolicyTrainingConfig)


def resolve_input_keys(config: DiffusionConfig, image_keys: list[str], low_dim_keys: list[str]) -> DiffusionConfig:
    """The config with its input keys filled from a dataset's keys, and checked against them.

    ``image_keys`` are the dataset's uint8 HxWx3 arrays; ``low_dim_keys`` its other per-step arrays.
    """
    cameras = list(image_keys) if config.camera_keys is None else list(config.camera_keys)
    low_dim = (
        [k for k in low_dim_keys if k not in NON_OBSERVATION_KEYS + EXCLUDED_LOW_DIM_KEYS]
        if config.low_dim_keys is None
        else list(config.low_dim_keys)
    )
    unknown_cams = [k for k in cameras if k not in image_keys]
    if unknown_cams:
        raise KeyError(f"camera_keys {unknown_cams} are not image arrays of the dataset; it has {image_keys}")
    unknown_low = [k for k in low_dim if k not in low_dim_keys or k in NON_OBSERVATION_KEYS]
    if unknown_low:
        raise KeyError(f"low_dim_keys {unknown_low} are not observation arrays of the dataset; it has {low_dim_keys}")
    sim_only_inputs = [k for k in low_dim if k in SIM_ONLY_KEYS]
    if sim_only_inputs and not config.sim_only:
        raise ValueError(f"low_dim_keys may not contain {sim_only_inputs}: sim-only state does not exist on the robot "
                         "(set sim_only: true for a twin-only policy, e.g. the base of residual RL in sim)")
    return DiffusionConfig.model_validate({**config.model_dump(), "camera_keys": cameras, "low_dim_keys": low_dim})
