"""Online residual fine-tuning on the robot graph: the robot (or, with use_sim:=true, the twin) and
controller_node, finetune_policy_node (base + residual with exploration noise, recording every step),
learner_node (PPO on committed episodes, its own process), finetune_session_node (homing, scene reset,
success label, pause/resume/abort) and live_view_node (a headless PNG dashboard).

    ros2 launch manip_stack finetune.launch.py checkpoint:=outputs/peg_base/policy.pt success_source:=operator
    ros2 launch manip_stack finetune.launch.py use_sim:=true success_source:=twin checkpoint:=... episodes:=20
"""

from launch import LaunchDescription
from ros_support.finetune_launch import launch_entities


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(launch_entities())
