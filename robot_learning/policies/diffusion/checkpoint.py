"""Checkpoints (plain tensors + JSON-able metadata, loaded with ``weights_only=True``) and the inference
wrapper every runtime calls: raw observation history in, executable raw actions out.

A checkpoint carries the config, the normaliser statistics, the dataset fingerprint and the camera keys
and shapes it was trained on, so a policy refuses observations from another camera set or image size
with a message saying which key is wrong, instead of producing actions from the wrong inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler

from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig
from robot_learning.policies.diffusion.modeling import DiffusionModel
from robot_learning.policies.diffusion.processor import MinMaxNormalizer, ObservationProcessor
from robot_learning.policies.policy import ObservationMismatchError, Policy, observation_shapes
from robot_learning.runtime.fast_inference import Precision, Runtime, make_sampler, runtime_name
from robot_learning.runtime.safe_load import load_plain, save_plain

CHECKPOINT_FORMAT = "manip_stack.diffusion_policy"
CHECKPOINT_VERSION = 1


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be cpu, cuda[:N] or auto, got {device!r}")
    return torch.device(device)


def atomic_save(obj: Mapping[str, Any], path: Path) -> None:
    """torch.save to a temporary file, then rename: a kill leaves the old file or the new one, never half;
    refused (``TypeError``) if anything in ``obj`` would not load back with ``weights_only=True``."""
    save_plain(obj, path)


def build_model(config: DiffusionConfig, obs_spec: Mapping[str, Mapping[str, Any]], action_dim: int) -> DiffusionModel:
    """The network for a resolved config and the observation spec ({key: {"shape": [...], ...}})."""
    images = {k: (obs_spec[k]["shape"][2], *obs_spec[k]["shape"][:2]) for k in config.camera_keys}
    low_dim = {k: int(np.prod(obs_spec[k]["shape"])) for k in config.low_dim_keys}
    return DiffusionModel(config, images, low_dim, action_dim)


def saved_training_config(ckpt: Mapping[str, Any]) -> PolicyTrainingConfig:
    """The checkpoint's training config as this code reads it. A checkpoint saved before
    ``DiffusionConfig.timestep_spacing`` existed was trained and measured with DDIM's ``leading`` spacing (the only
    one then), so it keeps it rather than taking today's default; its ``num_inference_steps`` is saved with it."""
    stored = dict(ckpt["config"])
    policy = stored.get("policy")
    if isinstance(policy, Mapping) and "timestep_spacing" not in policy:
        stored["policy"] = {**policy, "timestep_spacing": "leading"}
    return PolicyTrainingConfig.model_validate(stored)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict; refuses files that are not ours (no pickled objects are ever loaded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return validate_checkpoint(load_plain(path, "policy checkpoint"), path)


def validate_checkpoint(ckpt: Any, path: str | Path) -> dict[str, Any]:
    """``ckpt`` if it is a diffusion-policy checkpoint this code reads; a clear error otherwise."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {ckpt.get('version')}, this code reads {CHECKPOINT_VERSION}")
    return ckpt


class DiffusionPolicy(Policy):
    """A trained diffusion policy ready to act: holds the model, the processor and the trained-on spec. Stateless
    between chunks (everything it knows is in the history it is given), so one serves many envs at once."""

    def __init__(self, model: DiffusionModel, processor: ObservationProcessor, obs_spec: Mapping[str, Any],
                 dataset: Mapping[str, Any], source: str = "<memory>", seed: int = 0,
                 n_action_steps: int | None = None, num_inference_steps: int | None = None, zero_noise: bool = False,
                 runtime: Runtime = "auto", precision: Precision = "fp32", timestep_spacing: str | None = None):
        if timestep_spacing is not None and timestep_spacing != model.config.timestep_spacing:
            # where the DDIM steps sit is an inference choice: the trained network is the same (see DiffusionConfig)
            model.config = model.config.model_copy(update={"timestep_spacing": timestep_spacing})
            model.inference_scheduler = DDIMScheduler.from_config(model.inference_scheduler.config,
                                                                  timestep_spacing=timestep_spacing)
        self.model, self.processor, self.config = model.eval(), processor, model.config
        # how chunks are sampled: robot_learning.runtime.fast_inference (auto: fast where supported, else eager)
        self.sampler = make_sampler(self.model, runtime, precision)
        self.zero_noise = zero_noise  # DDIM from x_T = 0: a deterministic base (e.g. under a residual)
        cfg = self.config
        self.n_action_steps = n_action_steps or cfg.n_action_steps
        self.num_inference_steps = num_inference_steps or cfg.num_inference_steps
        if not 1 <= self.n_action_steps <= cfg.horizon - cfg.n_obs_steps + 1:
            raise ValueError(f"n_action_steps={self.n_action_steps} must be in 1..{cfg.horizon - cfg.n_obs_steps + 1}")
        if not 1 <= self.num_inference_steps <= cfg.num_train_timesteps:
            raise ValueError(f"num_inference_steps={self.num_inference_steps} must be in 1..{cfg.num_train_timesteps}")
        self.obs_spec = {k: {**v, "shape": tuple(v["shape"])} for k, v in obs_spec.items()}
        self.dataset, self.source = dict(dataset), source
        self.generator = torch.Generator(processor.device).manual_seed(seed)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", observation_space: Mapping[str, Any] | None = None,
                        half: bool = False, compile_unet: bool = False, seed: int = 0,
                        n_action_steps: int | None = None, num_inference_steps: int | None = None,
                        zero_noise: bool = False, runtime: Runtime = "auto",
                        precision: Precision = "fp32", timestep_spacing: str | None = None) -> DiffusionPolicy:
        """Load for inference (EMA weights). ``observation_space`` (gym Dict or {key: array}) is checked now.

        ``n_action_steps``/``num_inference_steps`` override the trained config (e.g. 4 DDIM steps inside RL);
        ``zero_noise`` starts DDIM from zero instead of a Gaussian sample (a deterministic policy);
        ``timestep_spacing`` (leading / trailing) overrides where the DDIM steps sit (few steps: trailing).
        ``runtime``: ``auto`` (the fast sampler of :mod:`robot_learning.runtime.fast_inference` where it supports the
        model, else eager), ``fast`` or ``eager``; ``precision``: the fast path's ``fp32`` (default) or ``bf16``.
        """
        return cls.from_checkpoint_dict(load_checkpoint(path), str(path), device, observation_space, half,
                                        compile_unet, seed, n_action_steps, num_inference_steps, zero_noise, runtime,
                                        precision, timestep_spacing)

    @classmethod
    def from_checkpoint_dict(cls, ckpt: Mapping[str, Any], source: str, device: str = "auto",
                             observation_space: Mapping[str, Any] | None = None, half: bool = False,
                             compile_unet: bool = False, seed: int = 0, n_action_steps: int | None = None,
                             num_inference_steps: int | None = None, zero_noise: bool = False,
                             runtime: Runtime = "auto", precision: Precision = "fp32",
                             timestep_spacing: str | None = None) -> DiffusionPolicy:
        """As :meth:`from_checkpoint`, from a loaded checkpoint dict (one embedded in a combined checkpoint)."""
        config = saved_training_config(ckpt).policy
        dev = resolve_device(device)
        if half and dev.type != "cuda":
            raise ValueError("half precision is for CUDA; on a CPU run in float32")
        model = build_model(config, ckpt["obs_spec"], int(ckpt["action_dim"]))
        model.load_state_dict(ckpt["model"])
        dtype = torch.float16 if half else torch.float32
        model = model.to(dev, dtype)
        if compile_unet:
            model.unet = torch.compile(model.unet)
        processor = ObservationProcessor(config.camera_keys, config.low_dim_keys, config.action_key,
                                         MinMaxNormalizer(ckpt["normalizer"]), dev, dtype)
        policy = cls(model, processor, ckpt["obs_spec"], ckpt["dataset"], source=source, seed=seed,
                     n_action_steps=n_action_steps, num_inference_steps=num_inference_steps, zero_noise=zero_noise,
                     runtime=runtime, precision=precision, timestep_spacing=timestep_spacing)
        if observation_space is not None:
            policy.check_observation(observation_space)
        return policy

    # ------------------------------------------------------------------ properties
    @property
    def n_obs_steps(self) -> int:
        return self.config.n_obs_steps

    @property
    def camera_keys(self) -> list[str]:
        return list(self.config.camera_keys)

    @property
    def obs_keys(self) -> list[str]:
        return [*self.config.camera_keys, *self.config.low_dim_keys]

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) [px] of the trained images, as TwinEnv's ``image_size`` takes it."""
        if not self.config.camera_keys:
            return None
        h, w = self.obs_spec[self.config.camera_keys[0]]["shape"][:2]
        return int(w), int(h)

    @property
    def sim_only(self) -> bool:
        return self.config.sim_only

    @property
    def delta_action_dims(self) -> list[int]:
        return list(self.config.delta_action_dims)

    @property
    def action_low(self) -> np.ndarray:
        return self.processor.normalizer.stats[self.config.action_key]["min"].copy()

    @property
    def action_high(self) -> np.ndarray:
        return self.processor.normalizer.stats[self.config.action_key]["max"].copy()

    @property
    def device(self) -> torch.device:
        return self.processor.device

    @property
    def runtime(self) -> str:
        """``fast`` or ``eager``: how chunks are sampled (what ``runtime='auto'`` chose)."""
        return runtime_name(self.sampler)

    # ------------------------------------------------------------------ checks
    def check_observation(self, obs: Mapping[str, Any]) -> None:
        """Raise :class:`ObservationMismatchError` naming missing keys, wrong shapes and a different camera set.

        ``obs``: one observation (arrays), a gym ``spaces.Dict`` or {key: shape}. Extra keys are ignored.
        """
        shapes = observation_shapes(obs)
        problems = []
        missing = [k for k in self.obs_keys if k not in shapes]
        if missing:
            problems.append(f"missing keys {missing}")
        wrong = [f"{k} {shapes[k]} (trained on {self.obs_spec[k]['shape']})"
                 for k in self.obs_keys if k in shapes and shapes[k] != self.obs_spec[k]["shape"]]
        if wrong:
            problems.append("wrong shapes: " + ", ".join(wrong))
        given_cams = sorted(k for k in shapes if k.endswith("_rgb"))
        if any(k not in shapes for k in self.camera_keys):
            problems.append(f"camera set differs: trained on {sorted(self.camera_keys)}, observation has {given_cams}")
        if problems:
            raise ObservationMismatchError(
                f"observation does not match policy {self.source} (trained on dataset "
                f"{self.dataset.get('fingerprint', '?')[:12]}, cell {self.dataset.get('cell')}): " + "; ".join(problems)
            )

    # ------------------------------------------------------------------ inference
    def predict_chunks(self, histories: Mapping[str, np.ndarray]) -> np.ndarray:
        """(B, n_action_steps, A) raw actions for a batch of histories {key: (B, n_obs_steps, ...)}."""
        self.check_observation({k: v.shape[2:] for k, v in histories.items()})
        obs = self.processor.observations({k: histories[k] for k in self.obs_keys})
        with torch.inference_mode():
            action = self.sampler(obs, generator=self.generator, num_inference_steps=self.num_inference_steps,
                                  zero_noise=self.zero_noise)
        start = self.n_obs_steps - 1  # the chunk starts at the current (latest observed) step
        return self.processor.unnormalize_actions(action[:, start : start + self.n_action_steps])
