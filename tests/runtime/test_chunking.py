"""Joining chunks (robot_learning/runtime/chunking.py): the committed prefix is kept, the new chunk takes over after
the overlap, a simulated delay lands chunks late without holds, and inpainting inside DDIM reproduces the prefix.

The samplers are small real classes (a scripted one) and a real, untrained low-dim diffusion policy.
"""

import itertools

import numpy as np
import pytest
import torch

from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy, build_model
from robot_learning.policies.diffusion.configuration import DiffusionConfig
from robot_learning.policies.diffusion.processor import MinMaxNormalizer, ObservationProcessor
from robot_learning.runtime.chunking import (
    ChunkingConfig,
    ChunkJoin,
    ChunkJoiner,
    DiffusionHorizonSampler,
    aligned_previous,
    horizon_sampler,
    soft_mask,
)
from robot_learning.runtime.policy_runner import DeltaHold, PolicyRunner, RunnerConfig

A = 7
PERIOD_S = 0.1


class ScriptedSampler:
    """Chunk ``c`` (0-based call) has dx = c everywhere (one velocity per chunk), other dims 0; records what it got."""

    horizon, current_index, n_action_steps = 16, 1, 4

    def __init__(self):
        self.calls = []

    def __call__(self, history, target=None, weights=None):
        self.calls.append((target, weights))
        chunk = np.zeros((self.horizon, A), np.float32)
        chunk[:, 0] = len(self.calls) - 1
        return chunk


def test_the_soft_mask_keeps_the_committed_actions_and_decays_to_zero_at_the_end_of_the_overlap():
    w = soft_mask(16, committed=4, overlap=12)
    assert np.all(w[:4] == 1.0) and np.all(w[12:] == 0.0)
    assert np.all(np.diff(w[4:12]) < 0) and 0 < w[11] < w[4] < 1
    assert np.all(soft_mask(8, 0, 0) == 0.0)
    with pytest.raises(ValueError, match="horizon=8"):
        soft_mask(8, committed=3, overlap=9)


def test_the_previous_chunk_is_reindexed_to_the_new_one():
    previous = np.arange(16 * A, dtype=np.float32).reshape(16, A)
    target, overlap = aligned_previous(previous, shift=5, horizon=16)
    assert overlap == 11
    np.testing.assert_array_equal(target[:11], previous[5:])
    assert np.all(target[11:] == 0)
    assert aligned_previous(previous, shift=20, horizon=16)[1] == 0


@pytest.mark.parametrize("join", ["blend", "rtc"])
def test_a_joined_chunk_keeps_the_committed_prefix_and_hands_over_to_the_new_one(join):
    sampler = ScriptedSampler()
    joiner = ChunkJoiner(sampler, join, PERIOD_S, lead_steps=2)
    first = joiner.predict({}, obs_stamp_s=0.0, committed=0)
    assert first.shape == (2 + 4, A) and np.all(first[:, 0] == 0) and sampler.calls[0] == (None, None)
    second = joiner.predict({}, obs_stamp_s=0.4, committed=2)  # 4 steps later, 2 actions still committed
    if join == "rtc":  # the sampler was asked to inpaint: target = the first chunk from step 4 on, mask as specified
        target, weights = sampler.calls[1]
        np.testing.assert_array_equal(target[:12, 0], 0.0)
        np.testing.assert_allclose(weights, soft_mask(16, 1 + 2, 12))
    else:  # crossfaded after sampling: committed actions are the old chunk's, later ones move towards the new one
        dx = second[:, 0]
        assert np.all(dx[:2] == 0.0) and np.all(np.diff(dx[1:]) > 0) and dx[-1] < 1.0
        joiner.reset()
        assert np.all(joiner.predict({}, obs_stamp_s=0.8, committed=2)[:, 0] == 2.0)  # a new episode: no join


def test_a_short_decay_lets_the_new_chunk_take_over_sooner():
    sampler = ScriptedSampler()
    joiner = ChunkJoiner(sampler, "rtc", PERIOD_S, lead_steps=2, decay_steps=2)
    joiner.predict({}, 0.0, 0)
    joiner.predict({}, 0.4, 2)
    np.testing.assert_allclose(sampler.calls[1][1], soft_mask(16, 1 + 2, 1 + 2 + 2))
    with pytest.raises(ValueError, match="decay_steps"):
        ChunkJoiner(sampler, "rtc", PERIOD_S, decay_steps=0)


def test_without_a_join_the_new_chunk_replaces_the_old_one():
    sampler = ScriptedSampler()
    joiner = ChunkJoiner(sampler, ChunkJoin.NONE, PERIOD_S, lead_steps=1)
    joiner.predict({}, 0.0, 0)
    second = joiner.predict({}, 0.4, 1)
    assert second.shape == (1 + 4, A) and np.all(second[:, 0] == 1.0) and sampler.calls[1] == (None, None)
    with pytest.raises(ValueError, match="do not fit"):
        ChunkJoiner(sampler, ChunkJoin.NONE, PERIOD_S, lead_steps=12)


def test_a_simulated_delay_lands_chunks_late_while_the_committed_actions_execute_without_holds():
    sampler = ScriptedSampler()
    delay = 3
    runner = PolicyRunner(_StubPolicy(), DeltaHold(A, range(6)),
                          RunnerConfig(period_s=PERIOD_S, asynchronous=False, replan_remaining=delay,
                                       simulated_delay_s=delay * PERIOD_S),
                          joiner=ChunkJoiner(sampler, "none", PERIOD_S, lead_steps=delay))
    sources, chunk_ids = [], []
    for step in range(30):
        now = step * PERIOD_S
        runner.observe({"tcp_position": np.zeros(3, np.float32)}, now)
        item = runner.next_action(now)
        sources.append(item.source)
        chunk_ids.append(item.chunk_id)
    assert sources[:delay] == ["hold"] * delay  # the first chunk lands after the delay; nothing before it to execute
    assert set(sources[delay:]) == {"policy"}
    runs = [len(list(g)) for _, g in itertools.groupby(chunk_ids[delay:])]
    assert runs[:-1] == [4] * (len(runs) - 1)  # every chunk executes its 4 actions, the next one lands on time
    assert runner.stats.dropped_late >= delay * (len(runs) - 1)  # its first actions were covered by the old chunk


class _StubPolicy:
    """Only what the runner reads when a joiner samples the chunks."""

    n_obs_steps, obs_keys = 2, ["tcp_position"]

    def reset(self):
        pass

    def correct(self, obs, action):
        return action


@pytest.fixture(scope="module")
def tiny_diffusion_policy():
    torch.manual_seed(0)
    config = DiffusionConfig(camera_keys=[], low_dim_keys=["tcp_position"], horizon=8, n_action_steps=4,
                             down_dims=[16, 32], n_groups=4, diffusion_step_embed_dim=16, kernel_size=3,
                             num_inference_steps=4, prediction_type="sample")
    obs_spec = {"tcp_position": {"shape": [3]}}
    normalizer = MinMaxNormalizer({"tcp_position": {"min": [-1] * 3, "max": [1] * 3},
                                   "action": {"min": [-0.02] * 6 + [0], "max": [0.02] * 6 + [1]}})
    processor = ObservationProcessor([], ["tcp_position"], "action", normalizer)
    return DiffusionPolicy(build_model(config, obs_spec, A), processor, obs_spec, {"task": "lift"})


def test_inpainting_inside_ddim_reproduces_the_committed_actions_and_leaves_the_rest_to_the_model(
        tiny_diffusion_policy):
    sampler = horizon_sampler(tiny_diffusion_policy)
    assert isinstance(sampler, DiffusionHorizonSampler) and sampler.horizon == 8 and sampler.current_index == 1
    history = {"tcp_position": np.zeros((2, 3), np.float32)}
    free = sampler(history)
    target = np.tile(np.array([0.01, -0.01, 0.005, 0, 0, 0, 0.5], np.float32), (8, 1))
    weights = soft_mask(8, committed=3, overlap=6)
    guided = sampler(history, target, weights)
    np.testing.assert_allclose(guided[:3], target[:3], atol=1e-5)  # committed: exactly what is executing
    assert np.abs(guided[6:] - free[6:]).max() > 1e-4  # after the overlap: the model's own, continued from the prefix
    assert np.abs(guided[:3] - free[:3]).max() > 1e-3  # (the untrained model alone would not have given the prefix)


def test_policies_without_a_horizon_and_bad_configs_are_refused():
    with pytest.raises(TypeError, match="need a diffusion policy"):
        horizon_sampler(_StubPolicyWithSource())
    with pytest.raises(ValueError, match="join"):
        ChunkingConfig(join="average")
    with pytest.raises(ValueError, match="inference_delay_s"):
        ChunkingConfig(inference_delay_s=-0.1)
    assert ChunkingConfig(inference_delay_s=0.1).delay_steps(PERIOD_S) == 1
    assert ChunkingConfig(inference_delay_s=0.25).delay_steps(PERIOD_S) == 3
    with pytest.raises(ValueError, match="asynchronous"):
        RunnerConfig(simulated_delay_s=0.1, asynchronous=True)


class _StubPolicyWithSource(_StubPolicy):
    source = "scripted"
