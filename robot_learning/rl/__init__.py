"""Residual RL (ResiP): a small Gaussian residual policy trained with PPO on top of a frozen base policy."""
