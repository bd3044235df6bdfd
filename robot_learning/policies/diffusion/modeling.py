"""Diffusion Policy's network: per-camera image encoders, a 1-D temporal U-Net with FiLM conditioning,
the DDPM training loss and DDIM sampling.

Tensors in and out are already normalised (images in [-1, 1] as (B, T, C, H, W), low-dim and actions
min-max scaled to [-1, 1]); :mod:`.processor` does normalisation, device moves and history stacking, so
this module is pure torch and the same on a CPU, a GPU or inside a ROS node.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import warnings
from collections.abc import Mapping

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from robot_learning.policies.diffusion.configuration import Backbone, DiffusionConfig

# robomimic prints a warning about its private macros file on import: keep it out of our output
with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
    warnings.simplefilter("ignore")
    from robomimic.models import base_nets
    from robomimic.models.obs_core import CropRandomizer
    from robomimic.models.obs_nets import ObservationEncoder


# ---------------------------------------------------------------------------------------------- vision
class SmallConv(base_nets.ConvBase):
    """CPU backbone: three convolutions (5x5/2, 3x3/2, 3x3/1) with GroupNorm; 84x84 -> C x 21 x 21.

    About 8 M multiply-adds per 84x84 image with (16, 32, 32) channels, against ~0.3 G for ResNet-18's trunk.
    """

    def __init__(self, input_channel: int = 3, channels: tuple[int, int, int] = (16, 32, 32), group_norm: bool = True):
        super().__init__()
        self._out_channels = channels[-1]
        layers: list[nn.Module] = []
        for c_in, c_out, kernel, stride in zip((input_channel, *channels[:2]), channels, (5, 3, 3), (2, 2, 1),
                                               strict=True):
            layers.append(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2))
            if group_norm:
                layers.append(nn.GroupNorm(max(1, c_out // 8), c_out))
            layers.append(nn.ReLU())
        self.nets = nn.Sequential(*layers)

    def output_shape(self, input_shape: list[int]) -> list[int]:
        h, w = input_shape[1], input_shape[2]
        for _ in range(2):
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        return [self._out_channels, h, w]


class CameraCore(base_nets.Module):
    """Backbone -> spatial softmax keypoints -> linear feature, as robomimic's VisualCore composes them."""

    def __init__(self, input_shape: list[int], backbone: base_nets.ConvBase, num_kp: int, feature_dim: int):
        super().__init__()
        feat_shape = backbone.output_shape(input_shape)
        self.feature_dim = feature_dim
        keypoints = base_nets.SpatialSoftmax(feat_shape, num_kp=num_kp)
        self.nets = nn.Sequential(backbone, keypoints, nn.Flatten(1), nn.Linear(2 * num_kp, feature_dim))

    def output_shape(self, input_shape: list[int] | None = None) -> list[int]:
        return [self.feature_dim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets(x)


def _groupnorm_instead_of_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d (bad with EMA and small batches) by GroupNorm with 16 channels per group."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.GroupNorm(max(1, child.num_features // 16), child.num_features))
        else:
            _groupnorm_instead_of_batchnorm(child)
    return module


def build_obs_encoder(config: DiffusionConfig, image_shapes: Mapping[str, tuple[int, int, int]],
                      low_dim_sizes: Mapping[str, int]) -> ObservationEncoder:
    """robomimic ObservationEncoder: one encoder (and crop randomizer) per camera, low-dim keys passed through."""
    encoder = ObservationEncoder(feature_activation=nn.ReLU)
    for key, chw in image_shapes.items():
        crop = config.crop_shape(chw[1:])
        randomizer = CropRandomizer(list(chw), crop_height=crop[0], crop_width=crop[1]) if crop else None
        in_shape = [chw[0], *crop] if crop else list(chw)
        with warnings.catch_warnings():  # torchvision's deprecated `pretrained` argument inside robomimic
            warnings.simplefilter("ignore")
            if config.backbone is Backbone.RESNET18:
                backbone = base_nets.ResNet18Conv(input_channel=chw[0], pretrained=False)
            else:
                backbone = SmallConv(chw[0], tuple(config.small_conv_channels), group_norm=config.use_group_norm)
        if config.use_group_norm:  # (SmallConv has GroupNorm already, or no norm at all)
            _groupnorm_instead_of_batchnorm(backbone)
        net = CameraCore(in_shape, backbone, config.spatial_softmax_keypoints, config.image_feature_dim)
        encoder.register_obs_key(key, list(chw), net=net, randomizer=randomizer)
    for key, size in low_dim_sizes.items():
        encoder.register_obs_key(key, [size])
    encoder.make()
    return encoder


# ---------------------------------------------------------------------------------------------- U-Net
class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * (-math.log(10000.0) / (half - 1)))
        angles = t.float()[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


def _conv_block(c_in: int, c_out: int, kernel: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish())


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks; the condition sets a per-channel scale and bias (FiLM) between them."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int, film_scale: bool):
        super().__init__()
        self.c_out, self.film_scale = c_out, film_scale
        self.block1, self.block2 = _conv_block(c_in, c_out, kernel, groups), _conv_block(c_out, c_out, kernel, groups)
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, c_out * (2 if film_scale else 1)))
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.block1(x)
        film = self.cond_encoder(cond).unsqueeze(-1)
        if self.film_scale:
            scale, bias = film[:, : self.c_out], film[:, self.c_out :]
            out = scale * out + bias
        else:
            out = out + film
        return self.block2(out) + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """Chi et al.'s temporal U-Net: (B, horizon, action_dim) noisy actions -> predicted noise (or sample)."""

    def __init__(self, action_dim: int, global_cond_dim: int, config: DiffusionConfig):
        super().__init__()
        dims, k, g, fs = [action_dim, *config.down_dims], config.kernel_size, config.n_groups, config.film_scale
        dsed = config.diffusion_step_embed_dim
        self.step_encoder = nn.Sequential(
            SinusoidalPosEmb(dsed), nn.Linear(dsed, 4 * dsed), nn.Mish(), nn.Linear(4 * dsed, dsed)
        )
        cond_dim = dsed + global_cond_dim
        in_out = list(itertools.pairwise(dims))
        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.down.append(nn.ModuleList([
                ConditionalResidualBlock1D(c_in, c_out, cond_dim, k, g, fs),
                ConditionalResidualBlock1D(c_out, c_out, cond_dim, k, g, fs),
                nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, stride=2, padding=1),
            ]))
        mid = dims[-1]
        self.mid = nn.ModuleList([ConditionalResidualBlock1D(mid, mid, cond_dim, k, g, fs) for _ in range(2)])
        self.up = nn.ModuleList()
        for c_in, c_out in reversed(in_out[1:]):
            self.up.append(nn.ModuleList([
                ConditionalResidualBlock1D(2 * c_out, c_in, cond_dim, k, g, fs),
                ConditionalResidualBlock1D(c_in, c_in, cond_dim, k, g, fs),
                nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1),
            ]))
        start = config.down_dims[0]
        self.final = nn.Sequential(_conv_block(start, start, k, g), nn.Conv1d(start, action_dim, 1))

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.step_encoder(timestep.expand(sample.shape[0])), global_cond], dim=-1)
        x, skips = sample.transpose(1, 2), []
        for block1, block2, downsample in self.down:
            x = block2(block1(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, cond)
        for block1, block2, upsample in self.up:
            x = upsample(block2(block1(torch.cat([x, skips.pop()], dim=1), cond), cond))
        return self.final(x).transpose(1, 2)


# ---------------------------------------------------------------------------------------------- policy
class DiffusionModel(nn.Module):
    """Observation encoder + U-Net + noise schedulers.

    ``obs``: dict of normalised tensors with a time axis of ``n_obs_steps``: images (B, T, C, H, W),
    low-dim (B, T, D). ``action``: (B, horizon, action_dim) normalised.
    """

    def __init__(self, config: DiffusionConfig, image_shapes: Mapping[str, tuple[int, int, int]],
                 low_dim_sizes: Mapping[str, int], action_dim: int):
        super().__init__()
        self.config, self.action_dim = config, action_dim
        self.obs_encoder = build_obs_encoder(config, image_shapes, low_dim_sizes)
        obs_feature_dim = self.obs_encoder.output_shape()[0]
        self.unet = ConditionalUnet1D(action_dim, obs_feature_dim * config.n_obs_steps, config)
        schedule = dict(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
                        clip_sample=config.clip_sample, prediction_type=config.prediction_type)
        self.noise_scheduler = DDPMScheduler(**schedule)
        self.inference_scheduler = DDIMScheduler(**schedule, set_alpha_to_one=True, steps_offset=0,
                                                 timestep_spacing=config.timestep_spacing)

    def global_condition(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, n_obs_steps * feature_dim): every step of the history encoded by the same encoder."""
        first = next(iter(obs.values()))
        batch, steps = first.shape[:2]
        if steps != self.config.n_obs_steps:
            raise ValueError(f"observation history has {steps} steps, the policy takes {self.config.n_obs_steps}")
        flat = {k: v.reshape(batch * steps, *v.shape[2:]) for k, v in obs.items()}
        return self.obs_encoder(flat).reshape(batch, -1)

    def compute_loss(self, obs: Mapping[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        """DDPM loss: MSE between the U-Net's prediction and the noise (or clean actions) at a random step."""
        cond = self.global_condition(obs)
        noise = torch.randn_like(action)
        t = torch.randint(0, self.config.num_train_timesteps, (action.shape[0],), device=action.device)
        noisy = self.noise_scheduler.add_noise(action, noise, t)
        target = noise if self.config.prediction_type == "epsilon" else action
        return nn.functional.mse_loss(self.unet(noisy, t, cond), target)

    @torch.no_grad()
    def sample(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
               num_inference_steps: int | None = None, zero_noise: bool = False) -> torch.Tensor:
        """(B, horizon, action_dim) normalised actions by DDIM from Gaussian noise (deterministic given it), or
        from zero noise (``zero_noise``): then the same observation always gives the same chunk."""
        cond = self.global_condition(obs)
        scheduler = self.inference_scheduler
        scheduler.set_timesteps(num_inference_steps or self.config.num_inference_steps)
        shape = (cond.shape[0], self.config.horizon, self.action_dim)
        if zero_noise:
            x = torch.zeros(shape, device=cond.device, dtype=cond.dtype)
        else:
            x = torch.randn(shape, generator=generator, device=cond.device, dtype=cond.dtype)
        for t in scheduler.timesteps:
            out = self.unet(x, t.to(cond.device), cond)
            x = scheduler.step(out, t, x).prev_sample
        return x
