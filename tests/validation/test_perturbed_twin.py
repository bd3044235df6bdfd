"""The perturbed twin's sensor model: what a "real" recording of the twin would report."""

import numpy as np

from robot_learning.validation.perturbed_twin import Perturbation, _noisy
from sim.env import TwinEnv


def test_noisy_task_errors_agree_with_the_noisy_poses_they_are_recorded_beside():
    env = TwinEnv(task="peg_insert", image_size=None)
    try:
        obs, _ = env.reset(seed=3)
        noisy = _noisy(env, obs, Perturbation(object_noise_m=0.01, tcp_noise_m=0.005), np.random.default_rng(0))
    finally:
        env.close()
    peg_minus_tcp_m = noisy["privileged_relative"][:3]
    np.testing.assert_allclose(peg_minus_tcp_m, noisy["privileged"][:3] - noisy["tcp_position"], atol=1e-5)
    assert not np.allclose(peg_minus_tcp_m, obs["privileged_relative"][:3], atol=1e-3)  # not the twin's exact ones
