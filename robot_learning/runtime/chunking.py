"""Joining a new action chunk to the one still executing, so the arm does not jump at chunk boundaries.

A chunk requested at observation time ``t`` lands ``d`` policy steps later; the previous chunk keeps executing
meanwhile (the runner asks for the next chunk when ``d`` actions remain). Sampled independently, the new chunk
can disagree with the one it replaces (another mode of the demonstrations, another noise sample), and the
commanded TCP velocity jumps where they meet. Two joins, chosen with :class:`ChunkJoin`:

- ``rtc``: real-time chunking (Black et al. 2025, "Real-Time Execution of Action Chunking Flow Policies") as
  inpainting: at every DDIM step the clean-action estimate is pulled towards the previous chunk over the overlap
  with a soft mask (weight 1 for the actions already executed or committed while the new chunk is computed,
  then decaying exponentially to 0 over the rest of the overlap), and the next denoising step continues from
  there, so the U-Net makes the rest of the chunk consistent with the committed prefix. The paper guides the
  flow with a vector-Jacobian product through the network; pulling the estimate directly costs nothing extra
  per step (no backward pass, which would double a CPU chunk's ~150 ms).
- ``blend``: a temporal crossfade after sampling, with the same soft mask: cheap and policy-agnostic, but it
  averages two samples, which can fall between two modes.
- ``none``: the new chunk replaces the old one as it is (the runner's behaviour before issue #21).

``decay_steps`` (default 4) ends the decay that many steps after the committed prefix; the paper's mask decays to
the end of the overlap, which at 10 Hz with 4 executed actions keeps most of the executed actions on the old plan.

Measured with ``benchmarks/chunk_boundaries.py`` (lift, the demo checkpoint, twin, 20 episodes per row, 40 at
100 ms): both joins with the 4-step decay cut the largest acceleration jump at chunk boundaries by a quarter to
a third (e.g. 5.2-5.9 to 3.7-3.9 m/s^2 at 100 ms) and its 95th percentile by about 40% at 100 ms, and the largest
velocity jump by 5-35%. Success: at 0 ms 19/20 (none), 18/20 (rtc, blend); at 100 ms 22/40 (none), 19/40
(blend), 14/40 (rtc); at 300 ms 1/20, 1/20 (blend), 2/20 (rtc). Inpainting pulls the executed actions towards a
plan made from older observations, which costs reactivity at 100 ms; the crossfade smooths as much and kept
more success, so ``blend`` is the join to use where smooth commands matter, and ``none`` stays the default.
The delay itself costs far more success than the boundaries do (the policy acts on observations ``d`` steps
old, which no join repairs): a policy trained with the delay, or a faster one, is the remedy for that.

Chunks here cover the whole model horizon, indexed as the model's: index ``n_obs_steps - 1`` is the current
(newest observed) step, the ones before it are past actions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy
    from robot_learning.policies.policy import Policy


class ChunkJoin(str, Enum):
    NONE = "none"
    BLEND = "blend"
    RTC = "rtc"


class ChunkingConfig(BaseModel):
    """How a new chunk joins the executing one, and the inference delay to simulate on sim time."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    join: ChunkJoin = ChunkJoin.NONE
    inference_delay_s: float = Field(0.0, ge=0.0, le=2.0, description="sim-time delay from request to chunk [s] "
                                     "(the twin's evaluation; on the robot the delay is the real one)")
    decay_steps: int | None = Field(4, ge=1, le=64, description="steps after the committed prefix over which the "
                                    "previous chunk's pull decays to 0 (None: to the end of the overlap, the RTC "
                                    "paper's mask, which lost success in the twin)")

    def delay_steps(self, period_s: float) -> int:
        """Policy periods a chunk is late by: the actions the old chunk must still cover (ceil of delay / period)."""
        return math.ceil(self.inference_delay_s / period_s - 1e-9)


def soft_mask(horizon: int, committed: int, overlap: int) -> np.ndarray:
    """(horizon,) weights of the previous chunk: 1 for the first ``committed`` actions (executed, or executing while
    the new chunk is computed), then RTC's exponential decay ``c (e^c - 1) / (e - 1)`` with ``c`` falling linearly
    to 0 at ``overlap`` (where the previous chunk ends), 0 after."""
    if not 0 <= committed <= horizon or not 0 <= overlap <= horizon:
        raise ValueError(f"committed={committed} and overlap={overlap} must lie in 0..horizon={horizon}")
    weights = np.zeros(horizon, np.float32)
    weights[:committed] = 1.0
    if overlap > committed:
        i = np.arange(committed, overlap)
        c = (overlap - i) / (overlap - committed + 1)
        weights[committed:overlap] = c * np.expm1(c) / np.expm1(1.0)
    return weights


def aligned_previous(previous: np.ndarray, shift: int, horizon: int) -> tuple[np.ndarray, int]:
    """The previous chunk re-indexed to the new one (``shift`` policy steps later): (horizon, A) with its values
    where it overlaps, zeros after; and the overlap length (``horizon - shift``, 0 when there is none)."""
    target = np.zeros((horizon, previous.shape[1]), np.float32)
    overlap = max(0, min(horizon, len(previous) - shift)) if shift >= 0 else 0
    target[:overlap] = previous[shift : shift + overlap]
    return target, overlap


def blend(new: np.ndarray, previous: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weights * previous + (1 - weights) * new`` per step (weights (n,), chunks (n, A))."""
    w = np.asarray(weights, np.float32)[:, None]
    return (w * previous + (1.0 - w) * new).astype(np.float32)


class HorizonSampler(Protocol):
    """Samples a whole model horizon of raw actions, optionally pulled towards ``target`` with ``weights``."""

    horizon: int
    current_index: int  # index of the current step in the horizon (n_obs_steps - 1)
    n_action_steps: int  # actions executed per chunk

    def __call__(self, history: Mapping[str, np.ndarray], target: np.ndarray | None = None,
                 weights: np.ndarray | None = None) -> np.ndarray: ...


class DiffusionHorizonSampler:
    """DDIM over the diffusion policy's whole horizon, with soft inpainting of the clean-action estimate.

    Uses the policy's model, normaliser, noise generator, step count and ``zero_noise`` as they are, its U-Net
    through the policy's sampler (the fast path of :mod:`robot_learning.runtime.fast_inference` where the policy
    runs it), and a scheduler of its own (the policy's is not shared across threads). Raw actions in and out.
    """

    def __init__(self, policy: DiffusionPolicy) -> None:
        from diffusers import DDIMScheduler

        self.policy, cfg = policy, policy.config
        self.horizon, self.current_index, self.n_action_steps = cfg.horizon, cfg.n_obs_steps - 1, policy.n_action_steps
        self.scheduler = DDIMScheduler.from_config(policy.model.inference_scheduler.config)
        self.scheduler.set_timesteps(policy.num_inference_steps)

    def __call__(self, history: Mapping[str, np.ndarray], target: np.ndarray | None = None,
                 weights: np.ndarray | None = None) -> np.ndarray:
        import torch

        from robot_learning.runtime.fast_inference import denoiser

        policy, model = self.policy, self.policy.model
        policy.check_observation({k: np.asarray(history[k]).shape[1:] for k in policy.obs_keys})
        obs = policy.processor.observations({k: np.asarray(history[k])[None] for k in policy.obs_keys})
        with torch.inference_mode():
            cond = model.global_condition(obs)
            shape = (1, self.horizon, model.action_dim)
            if policy.zero_noise:
                x = torch.zeros(shape, device=cond.device, dtype=cond.dtype)
            else:
                x = torch.randn(shape, generator=policy.generator, device=cond.device, dtype=cond.dtype)
            guide = target is not None and weights is not None and float(np.max(weights)) > 0
            if guide:
                y = policy.processor.actions(np.asarray(target, np.float32)[None])
                w = torch.as_tensor(np.asarray(weights, np.float32), device=cond.device, dtype=cond.dtype)
                w = w[None, :, None]
            alphas, timesteps = self.scheduler.alphas_cumprod, self.scheduler.timesteps
            sample_prediction = model.config.prediction_type == "sample"
            unet = denoiser(getattr(policy, "sampler", model.sample), model, cond, timesteps)
            for i, t in enumerate(timesteps):
                out = unet(x, i)
                if guide:
                    a = alphas[int(t)].to(cond.device, cond.dtype)
                    x0 = out if sample_prediction else (x - (1 - a).sqrt() * out) / a.sqrt()
                    x0 = x0 + w * (y - x0)  # pull the clean estimate towards the committed actions
                    out = x0 if sample_prediction else (x - a.sqrt() * x0) / (1 - a).sqrt()
                x = self.scheduler.step(out, t, x).prev_sample
        return policy.processor.unnormalize_actions(x)[0]


def horizon_sampler(policy: Policy) -> HorizonSampler:
    """The sampler of a diffusion policy, or of the diffusion base of a fine-tuned base+residual (the residual still
    corrects each action as it comes due); other policies cannot be joined and are refused."""
    from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy

    base = getattr(policy, "base", policy)
    if not isinstance(base, DiffusionPolicy):
        raise TypeError(f"chunk joining and simulated inference delay need a diffusion policy (or a base+residual "
                        f"on one); {type(policy).__name__} from {policy.source} has no horizon to sample")
    return DiffusionHorizonSampler(base)


class ChunkJoiner:
    """Per episode: samples each chunk over the whole horizon, joins it to the previous one, remembers it.

    ``predict`` returns the actions from the current step on that the runner queues: ``lead_steps`` (the
    inference delay in policy steps; the runner asks that many steps before its queue runs out, and these
    actions are due before the chunk lands, so they are dropped as late) plus the policy's ``n_action_steps``.
    The ``committed`` ones, the previous chunk's still queued at the request, are what the join continues.
    """

    def __init__(self, sampler: HorizonSampler, join: ChunkJoin | str, period_s: float, lead_steps: int = 0,
                 decay_steps: int | None = None) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        if lead_steps < 0 or sampler.current_index + lead_steps + sampler.n_action_steps > sampler.horizon:
            raise ValueError(f"{lead_steps} lead steps + {sampler.n_action_steps} executed actions from index "
                             f"{sampler.current_index} do not fit in a horizon of {sampler.horizon} steps: a delay "
                             "that long needs a longer horizon or fewer executed actions")
        if decay_steps is not None and decay_steps < 1:
            raise ValueError(f"decay_steps must be >= 1 or None, got {decay_steps}")
        self.sampler, self.join, self.period_s, self.lead_steps = sampler, ChunkJoin(join), period_s, lead_steps
        self.decay_steps = decay_steps
        self._previous: np.ndarray | None = None  # (horizon, A) raw, as committed
        self._previous_stamp_s = 0.0

    def reset(self) -> None:
        self._previous = None

    def predict(self, history: Mapping[str, np.ndarray], obs_stamp_s: float, committed: int) -> np.ndarray:
        """(lead_steps + n_action_steps, A) raw actions, the first for the step at ``obs_stamp_s``; ``committed``:
        the previous chunk's actions still queued (they execute while this chunk is computed)."""
        s = self.sampler
        if not 0 <= committed <= s.horizon - s.current_index:
            raise ValueError(f"committed={committed} must lie in 0..{s.horizon - s.current_index}")
        target, weights = None, None
        if self.join is not ChunkJoin.NONE and self._previous is not None:
            shift = round((obs_stamp_s - self._previous_stamp_s) / self.period_s)
            target, overlap = aligned_previous(self._previous, shift, s.horizon)
            committed_end = min(overlap, s.current_index + committed)
            if self.decay_steps is not None:
                overlap = min(overlap, committed_end + self.decay_steps)
            weights = soft_mask(s.horizon, committed_end, overlap)
        if self.join is ChunkJoin.RTC:
            chunk = s(history, target, weights)
        else:
            chunk = s(history)
            if target is not None:
                chunk = blend(chunk, target, weights)
        self._previous, self._previous_stamp_s = chunk, obs_stamp_s
        return chunk[s.current_index : s.current_index + self.lead_steps + s.n_action_steps]
