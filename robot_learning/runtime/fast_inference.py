"""Fast DDIM sampling for the trained diffusion policy: the same network and weights, less work per chunk.

Measured on a 2-core CPU (``benchmarks/policy_latency.py``), eager sampling spends almost all of its time in the
1-D U-Net's convolutions, which PyTorch runs through its generic ``slow_conv2d`` path at batch 1 and a horizon of
4-16 steps, and in recomputing, at every denoising step, the FiLM projections of an observation that does not
change within a chunk. :class:`FastDiffusionSampler` therefore

- encodes the observation history once per chunk (as eager does);
- splits every residual block's FiLM projection ``Linear(mish([t_emb, obs]))`` into its step part, computed once
  for the scheduler's timesteps and kept, and its observation part, computed once per chunk for all blocks in one
  matrix product; a denoising step only adds the two;
- runs each convolution as one GEMM over an im2col view (oneDNN's linear, or ``F.linear``, on the conv weight
  reshaped, no copy of the weights), the transposed convolution as a GEMM plus overlap-add, with GroupNorm and
  Mish as eager computes them. In float32 a denoising step then reads its ~245 MB of conv weights at about the
  machine's memory bandwidth (~12 GB/s measured here), which bounds it;
- optionally (``precision="bf16"``) keeps the convolution weights in bfloat16 and rounds their inputs to it for the
  GEMMs only (norms, FiLM and the residual stream stay float32): half the weight bytes read per step, and CPUs
  with AVX512-BF16 (this project's EPYC) multiply them natively. Opt-in, since it changes the result (see the test);
- on CUDA, replays each denoising step's U-Net from a captured CUDA graph (kernel launches dominate there at
  batch 1). That path cannot be measured on the 2-core CPU machine; its test runs where a GPU is.

The noise comes from the same generator call as eager, so with the same seed both give the same chunk up to float
rounding (checked by ``tests/policies/test_fast_inference.py``). Which runtime a policy uses is chosen by name,
:data:`RUNTIMES`: ``auto`` (the fast path where it supports the model and device, else eager, with a log line
saying why), ``fast`` (the fast path or an error) and ``eager`` (the model's own ``sample``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as fn

from robot_learning.policies.diffusion.modeling import (
    ConditionalResidualBlock1D,
    ConditionalUnet1D,
    DiffusionModel,
    SinusoidalPosEmb,
)

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "fast", "eager")
Runtime = Literal["auto", "fast", "eager"]
Precision = Literal["fp32", "bf16"]
Sampler = Callable[..., torch.Tensor]  # (obs, generator=, num_inference_steps=, zero_noise=) -> (B, H, A)


class FastPathUnavailableError(RuntimeError):
    """The fast path cannot run this model on this device; the message says why (``auto`` then runs eager)."""


# ---------------------------------------------------------------------------------------------- layers as GEMMs
@functools.cache
def _onednn_linear() -> bool:
    """Whether oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, what inductor calls on CPU) is there and
    agrees with ``F.linear``. On the 2-core EPYC it runs the U-Net's skinny float32 GEMMs about 10% faster than
    MKL's sgemm behind ``F.linear`` (full chunk, 1 and 2 threads); a private op, so checked, never assumed."""
    try:
        rows, weight, bias = torch.randn(3, 40), torch.randn(24, 40), torch.randn(24)
        out = torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
        return bool(torch.allclose(out, fn.linear(rows, weight, bias), atol=1e-4))
    except (AttributeError, RuntimeError):
        return False


def _gemm(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``rows @ weight.T + bias``; with lower-precision weights (bf16) the rows are rounded to them for the product
    only (accumulated in float32 by oneDNN/cuBLAS) and the result returns to the rows' dtype."""
    if weight.dtype == rows.dtype:
        if rows.device.type == "cpu" and rows.dtype == torch.float32 and _onednn_linear():
            return torch.ops.mkldnn._linear_pointwise(rows, weight, bias, "none", [], "")
        return fn.linear(rows, weight, bias)
    out = fn.linear(rows.to(weight.dtype), weight).to(rows.dtype)
    return out if bias is None else out + bias


def _conv1d(x: torch.Tensor, weight_2d: torch.Tensor, bias: torch.Tensor | None, kernel: int, stride: int,
            padding: int) -> torch.Tensor:
    """``F.conv1d`` (dilation 1, groups 1, zero padding) as one GEMM: x (B, C_in, L) -> (B, C_out, L_out).

    ``weight_2d`` is the conv weight (C_out, C_in, k) viewed as (C_out, C_in * k): im2col rows are ordered
    (C_in, k) the same way, so the weights are used in place."""
    batch = x.shape[0]
    if kernel == 1 and stride == 1 and padding == 0:
        cols = x.transpose(1, 2)
    else:
        cols = fn.pad(x, (padding, padding)).unfold(2, kernel, stride).transpose(1, 2)  # (B, L_out, C_in, k)
    length = cols.shape[1]
    out = _gemm(cols.reshape(batch * length, -1), weight_2d, bias)
    return out.view(batch, length, -1).transpose(1, 2)


def _conv_transpose1d(x: torch.Tensor, weight_2d: torch.Tensor, bias: torch.Tensor | None, kernel: int,
                      stride: int, padding: int) -> torch.Tensor:
    """``F.conv_transpose1d`` (dilation 1, groups 1, no output padding) as one GEMM plus an overlap-add.

    ``weight_2d``: (C_out * k, C_in), the weight (C_in, C_out, k) transposed once when the sampler is built.
    Input step l, tap j lands on output position l * stride + j - padding."""
    batch, _, length = x.shape
    taps = _gemm(x.transpose(1, 2).reshape(batch * length, -1), weight_2d, None)  # (B * L, C_out * k)
    taps = taps.view(batch, length, -1, kernel).permute(0, 2, 3, 1)  # (B, C_out, k, L)
    full_len = (length - 1) * stride + kernel
    out = taps.new_zeros(batch, taps.shape[1], full_len)
    for j in range(kernel):
        out[:, :, j : j + (length - 1) * stride + 1 : stride] += taps[:, :, j]
    out = out[:, :, padding : full_len - padding]
    return out if bias is None else out + bias[:, None]


class _Conv:
    """One Conv1d or ConvTranspose1d of the U-Net, its weights laid out for :func:`_conv1d` in ``dtype`` (the GEMM's;
    the bias stays float32)."""

    def __init__(self, conv: nn.Module, dtype: torch.dtype):
        if not isinstance(conv, nn.Conv1d | nn.ConvTranspose1d):
            raise FastPathUnavailableError(f"unsupported layer {type(conv).__name__} (expected Conv1d/ConvTranspose1d)")
        if conv.groups != 1 or conv.dilation != (1,) or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str):
            raise FastPathUnavailableError(f"unsupported {conv}: groups, dilation or padding mode other than eager's "
                                           "plain zero-padded convolution")
        if isinstance(conv, nn.ConvTranspose1d) and conv.output_padding != (0,):
            raise FastPathUnavailableError(f"unsupported {conv}: output_padding")
        self.transposed = isinstance(conv, nn.ConvTranspose1d)
        self.kernel, self.stride, self.padding = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        w = conv.weight.detach()
        if self.transposed:  # (C_in, C_out, k) -> (C_out * k, C_in): a copy, made once
            self.weight = w.reshape(w.shape[0], -1).t().contiguous().to(dtype)
        else:  # (C_out, C_in, k) -> (C_out, C_in * k): a view of the same storage in float32
            self.weight = w.reshape(w.shape[0], -1).to(dtype)
        self.bias = None if conv.bias is None else conv.bias.detach()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        op = _conv_transpose1d if self.transposed else _conv1d
        return op(x, self.weight, self.bias, self.kernel, self.stride, self.padding)


class _NormAct:
    """GroupNorm then Mish, as ``modeling._conv_block`` ends."""

    def __init__(self, norm: nn.Module, act: nn.Module):
        if not isinstance(norm, nn.GroupNorm) or not isinstance(act, nn.Mish):
            raise FastPathUnavailableError(f"unsupported conv block ending {type(norm).__name__}, {type(act).__name__}")
        self.groups, self.eps = norm.num_groups, norm.eps
        self.weight = None if norm.weight is None else norm.weight.detach()
        self.bias = None if norm.bias is None else norm.bias.detach()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.get_num_threads() == 1 or x.device.type != "cpu":
            return fn.mish(fn.group_norm(x, self.groups, self.weight, self.bias, self.eps))
        # ATen's CPU GroupNorm opens an OpenMP region even for (1, 1024, 4): on a busy machine each one waits for a
        # descheduled thread (4.6 ms mean against 7 us median, measured with 2 threads under load). These ops stay
        # under ATen's parallel grain size, so they run on the calling thread: 43 us, never a wait.
        batch, channels, length = x.shape
        xg = x.reshape(batch, self.groups, -1)
        var, mean = torch.var_mean(xg, dim=-1, keepdim=True, correction=0)
        y = ((xg - mean) * torch.rsqrt(var + self.eps)).view(batch, channels, length)
        if self.weight is not None:
            y = torch.addcmul(self.bias[:, None], y, self.weight[:, None]) if self.bias is not None \
                else y * self.weight[:, None]
        elif self.bias is not None:
            y = y + self.bias[:, None]
        return fn.mish(y)


class _ConvBlock:
    def __init__(self, block: nn.Module, dtype: torch.dtype):
        if not isinstance(block, nn.Sequential) or len(block) != 3:
            raise FastPathUnavailableError("unsupported conv block (expected Conv1d, GroupNorm, Mish)")
        self.conv, self.norm_act = _Conv(block[0], dtype), _NormAct(block[1], block[2])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_act(self.conv(x))


class _ResidualBlock:
    """:class:`ConditionalResidualBlock1D` given its FiLM vector (B, C_out or 2 * C_out) instead of the condition."""

    def __init__(self, block: ConditionalResidualBlock1D, dtype: torch.dtype):
        self.c_out, self.film_scale = block.c_out, block.film_scale
        self.block1, self.block2 = _ConvBlock(block.block1, dtype), _ConvBlock(block.block2, dtype)
        self.residual = None if isinstance(block.residual, nn.Identity) else _Conv(block.residual, dtype)

    def __call__(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        out = self.block1(x)
        film = film.unsqueeze(-1)
        out = film[:, : self.c_out] * out + film[:, self.c_out :] if self.film_scale else out + film
        return self.block2(out) + (x if self.residual is None else self.residual(x))


# ---------------------------------------------------------------------------------------------- the U-Net
class FastUnet1D:
    """:class:`ConditionalUnet1D`'s forward with the FiLM projections split into a per-timestep part (kept) and a
    per-observation part (once per chunk). Shares the eager module's weights (no copy in float32). ``dtype``: the
    convolutions' GEMM precision; activations, norms and FiLM stay float32."""

    def __init__(self, unet: ConditionalUnet1D, dtype: torch.dtype = torch.float32):
        check_supported(unet)
        self.unet, self.dtype = unet, dtype
        blocks: list[ConditionalResidualBlock1D] = []
        self.down = []
        for block1, block2, down in unet.down:
            blocks += [block1, block2]
            self.down.append((_ResidualBlock(block1, dtype), _ResidualBlock(block2, dtype),
                              None if isinstance(down, nn.Identity) else _Conv(down, dtype)))
        blocks += list(unet.mid)
        self.mid = [_ResidualBlock(b, dtype) for b in unet.mid]
        self.up = []
        for block1, block2, up in unet.up:
            blocks += [block1, block2]
            self.up.append((_ResidualBlock(block1, dtype), _ResidualBlock(block2, dtype), _Conv(up, dtype)))
        self.final_block, self.final_conv = _ConvBlock(unet.final[0], dtype), _Conv(unet.final[1], dtype)
        # FiLM: Linear(cond_dim -> n) of mish([t_emb, obs]) = W_t mish(t_emb) + W_obs mish(obs) + b, all blocks stacked
        step_dim = unet.step_encoder[0].dim
        linears = [b.cond_encoder[1] for b in blocks]
        weight = torch.cat([lin.weight.detach() for lin in linears])  # (sum of n, step_dim + obs_dim)
        self._w_step, self._w_obs = weight[:, :step_dim].contiguous(), weight[:, step_dim:].contiguous()
        self._b = torch.cat([lin.bias.detach() for lin in linears])
        self._splits = [lin.out_features for lin in linears]
        self._step_films: dict[tuple[int, ...], torch.Tensor] = {}

    def step_films(self, timesteps: torch.Tensor) -> torch.Tensor:
        """(S, sum of FiLM widths): the timestep part (bias included) of every block's FiLM at each timestep,
        computed at the first chunk with this schedule and kept."""
        key = tuple(int(t) for t in timesteps)
        if key not in self._step_films:
            with torch.inference_mode():
                emb = self.unet.step_encoder(timesteps.to(self._b.device))
                self._step_films[key] = fn.linear(fn.mish(emb), self._w_step, self._b)
        return self._step_films[key]

    def films(self, timesteps: torch.Tensor, global_cond: torch.Tensor) -> list[list[torch.Tensor]]:
        """Per timestep, per residual block (in forward order): the FiLM vector (B, n) for ``global_cond``."""
        obs_part = fn.linear(fn.mish(global_cond), self._w_obs)  # (B, sum n), once per chunk
        total = self.step_films(timesteps)[:, None] + obs_part[None]  # (S, B, sum n)
        return [list(step.split(self._splits, dim=-1)) for step in total]

    def __call__(self, sample: torch.Tensor, films: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, horizon, action_dim) noisy actions and one timestep's FiLM vectors -> the U-Net's output."""
        film = iter(films)
        x, skips = sample.transpose(1, 2), []
        for block1, block2, down in self.down:
            x = block2(block1(x, next(film)), next(film))
            skips.append(x)
            if down is not None:
                x = down(x)
        for block in self.mid:
            x = block(x, next(film))
        for block1, block2, up in self.up:
            x = up(block2(block1(torch.cat([x, skips.pop()], dim=1), next(film)), next(film)))
        return self.final_conv(self.final_block(x)).transpose(1, 2)


def check_supported(unet: nn.Module) -> None:
    """Raise :class:`FastPathUnavailableError` unless ``unet`` is the U-Net this module knows, layer by layer (a model
    changed or wrapped, e.g. by ``torch.compile``, runs eager)."""
    if type(unet) is not ConditionalUnet1D:
        raise FastPathUnavailableError(f"the U-Net is a {type(unet).__name__}, the fast path knows ConditionalUnet1D "
                                       "(a torch.compile'd U-Net runs eager)")
    enc = unet.step_encoder
    if not (len(enc) == 4 and isinstance(enc[0], SinusoidalPosEmb) and isinstance(enc[2], nn.Mish)):
        raise FastPathUnavailableError("unsupported diffusion-step encoder")
    known = (ConditionalUnet1D, ConditionalResidualBlock1D, nn.ModuleList, nn.Sequential, nn.Conv1d,
             nn.ConvTranspose1d, nn.GroupNorm, nn.Mish, nn.Linear, nn.Identity, SinusoidalPosEmb)
    unknown = sorted({type(m).__name__ for m in unet.modules() if type(m) not in known})
    if unknown:
        raise FastPathUnavailableError(f"the U-Net has layers the fast path does not implement: {unknown}")
    for block in unet.modules():
        if isinstance(block, ConditionalResidualBlock1D) and not (
                len(block.cond_encoder) == 2 and isinstance(block.cond_encoder[0], nn.Mish)):
            raise FastPathUnavailableError("unsupported FiLM encoder (expected Mish then Linear)")


# ---------------------------------------------------------------------------------------------- CUDA graphs
class _CudaGraphStep:
    """One denoising step's U-Net captured as a CUDA graph (static input, FiLM and output buffers); replayed for
    every step of every chunk of the same batch size. Only built on CUDA. The buffers are shared, so a lock keeps
    two threads (two runners on one policy) from replaying over each other."""

    def __init__(self, unet: FastUnet1D, sample: torch.Tensor, films: Sequence[torch.Tensor]):
        self.lock = threading.Lock()
        self.sample = sample.clone()
        self.films = [f.clone() for f in films]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside the graph (allocator, cuBLAS handles)
            for _ in range(2):
                unet(self.sample, self.films)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = unet(self.sample, self.films)

    def __call__(self, sample: torch.Tensor, films: Sequence[torch.Tensor]) -> torch.Tensor:
        with self.lock:
            self.sample.copy_(sample)
            for dst, src in zip(self.films, films, strict=True):
                dst.copy_(src)
            self.graph.replay()
            return self.out.clone()


# ---------------------------------------------------------------------------------------------- the sampler
class FastDiffusionSampler:
    """``DiffusionModel.sample`` through :class:`FastUnet1D`: same arguments, same noise draws, same scheduler."""

    def __init__(self, model: DiffusionModel, precision: Precision = "fp32", cuda_graphs: bool = True):
        device = next(model.parameters()).device
        param_dtype = next(model.parameters()).dtype
        if param_dtype != torch.float32:
            raise FastPathUnavailableError(f"the model's weights are {param_dtype}; the fast path builds its own lower "
                                           "precision from float32 weights (precision='bf16')")
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.model, self.device = model, device
        self.unet = FastUnet1D(model.unet, torch.bfloat16 if precision == "bf16" else torch.float32)
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        self._graphs: dict[tuple[int, ...], _CudaGraphStep] = {}
        self._capture_lock = threading.Lock()

    def _unet_step(self, x: torch.Tensor, films: Sequence[torch.Tensor]) -> torch.Tensor:
        if not self.cuda_graphs:
            return self.unet(x, films)
        key = tuple(x.shape)
        with self._capture_lock:
            if key not in self._graphs:
                self._graphs[key] = _CudaGraphStep(self.unet, x, films)
        return self._graphs[key](x, films)

    @torch.inference_mode()
    def sample(self, obs: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
               num_inference_steps: int | None = None, zero_noise: bool = False) -> torch.Tensor:
        """(B, horizon, action_dim) normalised actions, as :meth:`DiffusionModel.sample` computes them."""
        model = self.model
        cond = model.global_condition(obs)  # the observation, encoded once per chunk
        scheduler = model.inference_scheduler
        scheduler.set_timesteps(num_inference_steps or model.config.num_inference_steps)
        shape = (cond.shape[0], model.config.horizon, model.action_dim)
        if zero_noise:
            x = torch.zeros(shape, device=cond.device, dtype=cond.dtype)
        else:
            x = torch.randn(shape, generator=generator, device=cond.device, dtype=cond.dtype)
        films = self.unet.films(scheduler.timesteps, cond)
        for t, step_films in zip(scheduler.timesteps, films, strict=True):
            x = scheduler.step(self._unet_step(x, step_films), t, x).prev_sample
        return x

    __call__ = sample

    def denoiser(self, cond: torch.Tensor, timesteps: torch.Tensor) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """``(x, i) -> U-Net output`` at ``timesteps[i]`` for one chunk's encoded observation ``cond`` (B, obs_dim),
        for samplers that change x between steps themselves (guided or inpainting DDIM)."""
        films = self.unet.films(timesteps, cond)
        return lambda x, i: self._unet_step(x, films[i])


def make_sampler(model: DiffusionModel, runtime: Runtime = "auto", precision: Precision = "fp32") -> Sampler:
    """The sampling function a policy runs: eager ``model.sample``, or :class:`FastDiffusionSampler` (``fast``;
    ``auto``: where it supports the model, else eager with a log line saying why)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "eager":
        if precision != "fp32":
            raise ValueError(f"precision {precision!r} is a fast-path option; eager runs the model's own dtype")
        return model.sample
    try:
        return FastDiffusionSampler(model, precision=precision)
    except FastPathUnavailableError as exc:
        if runtime == "fast":
            raise
        log.info("fast inference unavailable (%s): sampling eager", exc)
        return model.sample


def denoiser(sampler: Sampler, model: DiffusionModel, cond: torch.Tensor,
             timesteps: torch.Tensor) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``(x, i) -> model.unet(x, timesteps[i], cond)``, through the fast U-Net when ``sampler`` (what
    :func:`make_sampler` gave, e.g. ``DiffusionPolicy.sampler``) is the fast one: the FiLM projections of ``cond``
    are then computed once here, not at every step. Call under ``torch.inference_mode``."""
    if isinstance(sampler, FastDiffusionSampler):
        return sampler.denoiser(cond, timesteps)
    return lambda x, i: model.unet(x, timesteps[i].to(cond.device), cond)


def runtime_name(sampler: Sampler) -> str:
    """``fast`` or ``eager``: what :func:`make_sampler` chose (for logs and reports)."""
    return "fast" if isinstance(sampler, FastDiffusionSampler) else "eager"
