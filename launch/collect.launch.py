"""Demonstrations or policy roll-outs into the episode store: the sim or robot bring-up plus session_node
(services ~/start, ~/stop, ~/accept, ~/discard).

    ros2 launch manip_stack collect.launch.py use_sim:=true task:=lift store_path:=outputs/lift.zarr
"""

from launch import LaunchDescription
from ros_support.launch_graph import launch_entities


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(launch_entities(
        "collect", ["cell", "task", "checkpoint", "use_sim", "camera_driver", "camera_source", "recording_dir",
                    "controller_type", "perception", "objects", "store_path", "params_file"]))
