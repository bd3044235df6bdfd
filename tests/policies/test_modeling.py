"""The network: shapes through encoder, U-Net and sampler; GroupNorm, crops and EMA as Diffusion Policy has them."""

import pytest
import torch
from diffusers.training_utils import EMAModel
from torch import nn

from robot_learning.policies.diffusion.configuration import DiffusionConfig
from robot_learning.policies.diffusion.modeling import ConditionalUnet1D, DiffusionModel, SmallConv

TINY = dict(horizon=8, n_action_steps=4, down_dims=[16, 32], n_groups=4, diffusion_step_embed_dim=16, kernel_size=3,
            small_conv_channels=[8, 8, 8], spatial_softmax_keypoints=8, image_feature_dim=16, num_inference_steps=4)
IMAGES = {"cam_front_rgb": (3, 32, 32), "cam_wrist_rgb": (3, 32, 32)}


def _obs(batch, cfg):
    obs = {k: torch.rand(batch, cfg.n_obs_steps, *chw) * 2 - 1 for k, chw in IMAGES.items()}
    obs["tcp_position"] = torch.rand(batch, cfg.n_obs_steps, 3)
    return obs


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DiffusionModel(DiffusionConfig(**TINY), IMAGES, {"tcp_position": 3}, action_dim=7)


def test_unet_maps_a_noisy_chunk_to_a_chunk_of_the_same_shape():
    cfg = DiffusionConfig(horizon=16, down_dims=[16, 32, 64], diffusion_step_embed_dim=16)
    unet = ConditionalUnet1D(action_dim=7, global_cond_dim=10, config=cfg)
    out = unet(torch.randn(3, 16, 7), torch.tensor([0, 50, 99]), torch.randn(3, 10))
    assert out.shape == (3, 16, 7)


def test_observation_features_stack_every_history_step(model):
    cond = model.global_condition(_obs(5, model.config))
    per_step = 2 * 16 + 3  # two cameras' features + the low-dim key
    assert cond.shape == (5, model.config.n_obs_steps * per_step)


def test_the_policy_refuses_a_history_of_the_wrong_length(model):
    obs = {k: v[:, :1] for k, v in _obs(2, model.config).items()}
    with pytest.raises(ValueError, match="history has 1 steps, the policy takes 2"):
        model.global_condition(obs)


def test_training_loss_is_a_finite_scalar_with_gradients_everywhere(model):
    model.train()
    loss = model.compute_loss(_obs(4, model.config), torch.rand(4, 8, 7) * 2 - 1)
    assert loss.ndim == 0 and torch.isfinite(loss)
    model.zero_grad()
    loss.backward()
    without_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert without_grad == []


def test_ddim_sampling_gives_a_full_chunk_in_the_clipped_range_and_is_seeded(model):
    model.eval()
    obs = _obs(2, model.config)
    a = model.sample(obs, generator=torch.Generator().manual_seed(3))
    b = model.sample(obs, generator=torch.Generator().manual_seed(3))
    c = model.sample(obs, generator=torch.Generator().manual_seed(4))
    assert a.shape == (2, 8, 7) and a.abs().max() <= 1.0 + 1e-5  # clip_sample keeps normalised actions in range
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(model.inference_scheduler.timesteps) == 4  # DDIM steps from the config, not the 100 of DDPM


def test_zero_noise_sampling_gives_one_chunk_per_observation_whatever_the_generator(model):
    obs = _obs(2, model.config)
    model.eval()
    first = model.sample(obs, generator=torch.Generator().manual_seed(1), zero_noise=True)
    second = model.sample(obs, generator=torch.Generator().manual_seed(2), zero_noise=True)
    torch.testing.assert_close(first, second)
    sampled = model.sample(obs, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(first, sampled)  # the default still samples


def test_crops_are_random_in_training_and_centred_in_evaluation(model):
    obs = _obs(1, model.config)
    encoder = model.obs_encoder
    encoder.eval()
    assert torch.equal(model.global_condition(obs), model.global_condition(obs))
    encoder.train()
    torch.manual_seed(0)
    assert not torch.equal(model.global_condition(obs), model.global_condition(obs))
    randomizer = encoder.obs_randomizers["cam_front_rgb"]
    assert (randomizer.crop_height, randomizer.crop_width) == (28, 28)  # 0.875 of 32 px


def test_resnet18_encoders_use_group_norm_not_batch_norm():
    cfg = DiffusionConfig(**{**TINY, "backbone": "resnet18"})
    m = DiffusionModel(cfg, {"cam_front_rgb": (3, 32, 32)}, {}, action_dim=7)
    kinds = {type(mod) for mod in m.modules()}
    assert nn.GroupNorm in kinds and nn.BatchNorm2d not in kinds


def test_small_conv_output_shape_is_what_it_reports():
    net = SmallConv(3, (8, 16, 16))
    assert list(net(torch.zeros(2, 3, 84, 84)).shape[1:]) == net.output_shape([3, 84, 84]) == [16, 21, 21]


def test_ema_follows_the_weights_slowly_with_diffusion_policys_warmup():
    layer = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(layer.weight)
    ema = EMAModel(layer.parameters(), decay=0.9999, use_ema_warmup=True, power=0.75)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    for _ in range(10):
        ema.step(layer.parameters())
    assert ema.shadow_params[0].item() == pytest.approx(1.0)  # copies at once (decay 0 on the first step) ...
    with torch.no_grad():
        layer.weight.fill_(0.0)
    ema.step(layer.parameters())
    decay_11 = 1 - (1 + 10) ** -0.75
    assert ema.shadow_params[0].item() == pytest.approx(decay_11)  # ... then moves by (1 - decay) only
    assert 0.0 < ema.shadow_params[0].item() < 1.0
