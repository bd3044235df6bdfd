"""KAGI: keypoint-based affordance guidance, VLM-chosen keypoints turned into a dense reward."""

from robot_learning.rewards.kagi.camera import CameraModel, Keyframe, KeyframeSource, TwinKeyframes
from robot_learning.rewards.kagi.marks import Mark, build_marks, draw_marks
from robot_learning.rewards.kagi.prompt import KagiAnswer, PointChoice, build_messages
from robot_learning.rewards.kagi.reward import KagiConfig, KagiPlan, KagiReward, lift_answer

__all__ = [
    "CameraModel", "KagiAnswer", "KagiConfig", "KagiPlan", "KagiReward", "Keyframe", "KeyframeSource", "Mark",
    "PointChoice", "TwinKeyframes", "build_marks", "build_messages", "draw_marks", "lift_answer",
]
