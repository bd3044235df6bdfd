"""A task with a known solution for checking the residual PPO: reach a goal in the plane.

The base is a proportional controller with a constant bias, so it settles 11 cm from the goal and almost
never succeeds (radius 5 cm); the optimal residual cancels the bias. PPO must find it. The reward is the
success bonus minus the distance to the goal, so the learning signal does not depend on lucky successes.
"""

import gymnasium as gym
import numpy as np
from gymnasium import spaces

BIAS = np.array([0.08, -0.08], dtype=np.float32)
STEP_GAIN = 0.5
SUCCESS_RADIUS = 0.05


class PointReachEnv(gym.Env):
    def __init__(self, horizon: int = 25):
        self.horizon = horizon
        self.observation_space = spaces.Dict({
            "position": spaces.Box(-2, 2, (2,), np.float32), "goal": spaces.Box(-2, 2, (2,), np.float32)})
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.t = 0
        return self._obs(), {"success": False}

    def step(self, action):
        self.position = (self.position + STEP_GAIN * np.clip(action, -1, 1)).astype(np.float32)
        self.t += 1
        success = bool(np.linalg.norm(self.position - self.goal) < SUCCESS_RADIUS)
        reward = float(success) * 10.0 - float(np.linalg.norm(self.position - self.goal))
        return self._obs(), reward, success, self.t >= self.horizon and not success, {"success": success}

    def _obs(self):
        return {"position": self.position.copy(), "goal": self.goal.copy()}


class BiasedBase:
    """Proportional controller plus a constant bias: the imperfect base policy."""

    action_low = np.array([-1.0, -1.0], dtype=np.float32)
    action_high = np.array([1.0, 1.0], dtype=np.float32)

    def reset(self, env_mask):
        pass

    def act(self, obs):
        return np.clip(obs["goal"] - obs["position"] + BIAS, -1, 1).astype(np.float32)
