"""Rewards for RL fine-tuning: one interface, a sparse baseline, KAGI keypoints and RoboHorizon stage plans.

Light to import: the model client (``rewards.fm``), KAGI (``rewards.kagi``, needs cv2 and MuJoCo for the twin)
and stage plans (``rewards.stages``) are imported from their subpackages.
"""

from robot_learning.rewards.base import PotentialShapedReward, RewardFunction, RewardWrapper, SparseSuccessReward

__all__ = ["PotentialShapedReward", "RewardFunction", "RewardWrapper", "SparseSuccessReward"]
