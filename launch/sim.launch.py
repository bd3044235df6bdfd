"""The twin as the cell: sim_node (cameras, joint states, TCP pose, /clock), controller_node, perception_node,
and policy_node when checkpoint:= is given; every node on sim time.

    ros2 launch manip_stack sim.launch.py cell:=franka_3cam task:=lift checkpoint:=outputs/policy/policy.pt
"""

from launch import LaunchDescription
from ros_support.launch_graph import launch_entities


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        launch_entities("sim", ["cell", "task", "checkpoint", "controller_type", "perception", "objects",
                                "params_file"])
    )
