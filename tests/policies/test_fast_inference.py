"""The fast sampler (robot_learning.runtime.fast_inference) gives eager's chunks from the same noise, is what a
loaded policy runs by default, and falls back to eager where it does not support the model.

Tolerance: with the same generator seed (or zero noise), every action of the fast path's chunk is within 1e-4 of
eager's in normalised units (actions span [-1, 1]); only float rounding differs (GEMMs summed in another order).
bf16 (opt-in) is held to 0.1: it halves the weights' bits, so it is a different numerical result, only a close one.
"""

import logging

import numpy as np
import pytest
import torch
from torch import nn

from robot_learning.policies.diffusion.configuration import DiffusionConfig
from robot_learning.policies.diffusion.modeling import DiffusionModel
from robot_learning.runtime.fast_inference import (
    FastDiffusionSampler,
    FastPathUnavailableError,
    denoiser,
    make_sampler,
    runtime_name,
)
from robot_learning.runtime.loading import load_policy

FP32_TOLERANCE = 1e-4  # normalised action units
BF16_TOLERANCE = 0.1


def _model(n_cameras: int = 2, **overrides) -> DiffusionModel:
    config = DiffusionConfig(**{
        "camera_keys": [f"cam{i}_rgb" for i in range(n_cameras)], "low_dim_keys": ["state"],
        "horizon": 8, "n_action_steps": 4, "down_dims": [32, 64, 128], "n_groups": 8, "kernel_size": 5,
        "diffusion_step_embed_dim": 32, "small_conv_channels": [8, 8, 8], "spatial_softmax_keypoints": 8,
        "image_feature_dim": 16, "num_inference_steps": 6, **overrides})
    torch.manual_seed(0)
    model = DiffusionModel(config, {k: (3, 24, 24) for k in config.camera_keys}, {"state": 5}, action_dim=7).eval()
    with torch.no_grad():  # non-trivial GroupNorm affines (they start at 1 and 0)
        for m in model.unet.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def _obs(model: DiffusionModel, batch: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    obs = {k: torch.rand(batch, 2, 3, 24, 24, generator=g) * 2 - 1 for k in model.config.camera_keys}
    obs["state"] = torch.rand(batch, 2, 5, generator=g) * 2 - 1
    return obs


def _both(model: DiffusionModel, sampler, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    obs = _obs(model)
    with torch.inference_mode():
        eager = model.sample(obs, generator=torch.Generator().manual_seed(3), **kwargs)
        fast = sampler(obs, generator=torch.Generator().manual_seed(3), **kwargs)
    return eager, fast


@pytest.mark.parametrize("overrides", [
    {},  # epsilon prediction, FiLM scale and bias
    {"prediction_type": "sample", "film_scale": False, "kernel_size": 3},
    {"down_dims": [16, 32], "n_groups": 4},  # two levels: no downsampling in the last one
])
def test_fast_chunks_match_eager_from_the_same_noise(overrides):
    model = _model(**overrides)
    eager, fast = _both(model, FastDiffusionSampler(model))
    assert eager.shape == fast.shape == (2, 8, 7)
    assert eager.abs().max() > 0.1  # a real chunk, not a collapsed one
    assert (eager - fast).abs().max() < FP32_TOLERANCE


def test_with_two_threads_too():
    """Several threads take another GroupNorm (one that opens no OpenMP region); the chunk is the same."""
    model = _model(n_cameras=1, down_dims=[16, 32], n_groups=4)  # small: 2 spinning threads are slow on a busy CI
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        eager, fast = _both(model, FastDiffusionSampler(model))
    finally:
        torch.set_num_threads(threads)
    assert (eager - fast).abs().max() < FP32_TOLERANCE


def test_zero_noise_and_other_step_counts_match_too():
    model = _model(n_cameras=1)
    sampler = FastDiffusionSampler(model)
    for kwargs in ({"zero_noise": True}, {"num_inference_steps": 3}, {"num_inference_steps": 10}):
        eager, fast = _both(model, sampler, **kwargs)
        assert (eager - fast).abs().max() < FP32_TOLERANCE, kwargs


def test_the_step_by_step_denoiser_gives_the_unets_outputs():
    model = _model()
    sampler = FastDiffusionSampler(model)
    with torch.inference_mode():
        cond = model.global_condition(_obs(model))
        timesteps = torch.tensor([90, 40, 0])
        x = torch.randn(2, 8, 7, generator=torch.Generator().manual_seed(1))
        fast, eager = denoiser(sampler, model, cond, timesteps), denoiser(model.sample, model, cond, timesteps)
        for i, t in enumerate(timesteps):
            reference = model.unet(x, t, cond)
            assert (fast(x, i) - reference).abs().max() < 1e-4
            assert torch.equal(eager(x, i), reference)


def test_bf16_is_close_to_eager():
    model = _model()
    eager, fast = _both(model, FastDiffusionSampler(model, precision="bf16"))
    assert (eager - fast).abs().max() < BF16_TOLERANCE


def test_auto_falls_back_to_eager_for_a_unet_it_does_not_implement(caplog):
    model = _model()
    model.unet.final[0][2] = nn.SiLU()  # a variant U-Net (another activation): the fast path must not guess
    with caplog.at_level(logging.INFO, logger="robot_learning.runtime.fast_inference"):
        sampler = make_sampler(model, "auto")
    assert runtime_name(sampler) == "eager" and "SiLU" in caplog.text
    eager, chosen = _both(model, sampler)
    assert torch.equal(eager, chosen)
    with pytest.raises(FastPathUnavailableError, match="SiLU"):
        make_sampler(model, "fast")


def test_a_compiled_unet_and_non_float32_weights_run_eager():
    model = _model()
    model.unet = torch.compile(model.unet)  # wrapped (compiled lazily, never called here)
    assert runtime_name(make_sampler(model, "auto")) == "eager"
    with pytest.raises(FastPathUnavailableError, match="compile"):
        make_sampler(model, "fast")
    model = _model().to(torch.float64)
    with pytest.raises(FastPathUnavailableError, match="float64"):
        make_sampler(model, "fast")


def test_unknown_runtime_or_precision_is_refused():
    model = _model()
    with pytest.raises(ValueError, match="runtime must be one of"):
        make_sampler(model, "turbo")
    with pytest.raises(ValueError, match="precision"):
        make_sampler(model, "fast", precision="int4")
    with pytest.raises(ValueError, match="fast-path option"):
        make_sampler(model, "eager", precision="bf16")


def test_a_loaded_policy_samples_fast_by_default_and_eager_on_request(tiny_run):
    """What eval, the policy runner and policy_node get from load_policy: the fast runtime unless told otherwise,
    and the same raw actions either way for the same seed."""
    fast = load_policy(tiny_run.policy_path, device="cpu", seed=7)
    eager = load_policy(tiny_run.policy_path, device="cpu", seed=7, runtime="eager")
    assert (fast.runtime, eager.runtime) == ("fast", "eager")
    rng = np.random.default_rng(0)
    history = {k: rng.integers(0, 255, (2, *fast.obs_spec[k]["shape"]), dtype=np.uint8) if k.endswith("_rgb")
               else rng.uniform(-0.1, 0.1, (2, *fast.obs_spec[k]["shape"])).astype(np.float32)
               for k in fast.obs_keys}
    span = fast.action_high - fast.action_low
    for _ in range(2):  # the generators advance alike
        a, b = fast.predict_chunk(history), eager.predict_chunk(history)
        assert np.all(np.abs(a - b) <= FP32_TOLERANCE * np.maximum(span, 1e-3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the CUDA-graph path)")
def test_cuda_graph_path_matches_eager_on_the_gpu():
    model = _model().to("cuda")
    sampler = FastDiffusionSampler(model)
    obs = {k: v.cuda() for k, v in _obs(model).items()}
    with torch.inference_mode():
        eager = model.sample(obs, generator=torch.Generator("cuda").manual_seed(3))
        for _ in range(2):  # capture, then replay
            fast = sampler(obs, generator=torch.Generator("cuda").manual_seed(3))
            assert (eager - fast).abs().max() < 1e-3
    assert sampler._graphs


def test_trailing_spacing_puts_few_steps_at_the_noisy_end_and_the_fast_path_follows_it():
    """Leading spacing runs 1 step at t=0 (the denoiser is told pure noise is clean); trailing runs it at t=T-1.
    The fast sampler takes its schedule from the model's scheduler, so it matches eager there too."""
    leading = _model(n_cameras=1, timestep_spacing="leading")
    trailing = _model(n_cameras=1, timestep_spacing="trailing")
    for steps, expected in ((1, [99]), (2, [99, 49])):
        trailing.inference_scheduler.set_timesteps(steps)
        assert trailing.inference_scheduler.timesteps.tolist() == expected
    leading.inference_scheduler.set_timesteps(1)
    assert leading.inference_scheduler.timesteps.tolist() == [0]
    eager, fast = _both(trailing, FastDiffusionSampler(trailing), num_inference_steps=2)
    assert (eager - fast).abs().max() < FP32_TOLERANCE
    assert (eager - _both(leading, FastDiffusionSampler(leading), num_inference_steps=2)[0]).abs().max() > 1e-3


def test_a_loaded_policy_takes_either_spacing_at_inference_without_retraining(tiny_run):
    assert load_policy(tiny_run.policy_path, device="cpu").config.timestep_spacing == "trailing"  # the trained one
    for spacing, expected in (("leading", [50, 0]), ("trailing", [99, 49])):
        policy = load_policy(tiny_run.policy_path, device="cpu", timestep_spacing=spacing, num_inference_steps=2)
        policy.model.inference_scheduler.set_timesteps(2)
        assert policy.config.timestep_spacing == spacing
        assert policy.model.inference_scheduler.timesteps.tolist() == expected
