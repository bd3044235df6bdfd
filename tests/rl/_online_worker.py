"""Runs an online fine-tuning session in the twin; used by the crash/resume test (and killed by it)."""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from robot_learning.rl.base_policy import ExpertPolicy, FrozenBase
from robot_learning.rl.config import PPOConfig, ResidualConfig
from robot_learning.rl.ppo import PPOUpdater
from robot_learning.rl.residual import ResidualPolicy
from robot_learning.sessions.online_finetune import OnlineFinetuneSession
from sim.env import TwinEnv
from sim.experts import ExpertNoise, make_expert

KEYS = ["tcp_position", "tcp_rot6d", "gripper_width", "privileged"]


class InterveneEarly:
    """A person takes over for steps 2-4 of every episode with the expert's action (a scripted teleop)."""

    def __init__(self, env):
        self.env = env
        self.reset()

    def reset(self):
        self.step = 0
        self.expert = make_expert(self.env.cell, self.env.task_config, seed=1)

    def __call__(self, obs):
        self.step += 1
        action = self.expert.act(obs)
        return action if 2 <= self.step <= 4 else None


def make_session(out: str, seed: int = 0, init_residual=None) -> OnlineFinetuneSession:
    torch.manual_seed(seed)
    env = TwinEnv(task="lift", image_size=None)
    high = env.action_space.high
    base = FrozenBase(ExpertPolicy(env.cell, env.task_config, -high, high, ExpertNoise(0.006, 0.03), seed=seed), 1)
    obs_dim = sum(int(np.prod(env.observation_space[k].shape)) for k in KEYS)
    policy = ResidualPolicy(obs_dim, 7, ResidualConfig(hidden_sizes=[32, 32], obs_keys=KEYS))
    updater = PPOUpdater(policy, PPOConfig(n_envs=1, steps_per_iteration=1, update_epochs=2, n_minibatches=1))
    return OnlineFinetuneSession(env, base, policy, updater, KEYS, out, episodes_per_update=1,
                                 intervention=InterveneEarly(env), seed=seed, init_residual=init_residual)


if __name__ == "__main__":
    out, n_episodes = sys.argv[1], int(sys.argv[2])
    session = make_session(out)
    while session.store.n_episodes < n_episodes:
        session.run(session.store.n_episodes + 1)
        print(f"committed {session.store.n_episodes}", flush=True)
    session.close()
