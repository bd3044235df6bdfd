"""The lab robot: one camera driver per camera of the cell (realsense2_camera, or our camera_node with
camera_driver:=manip_stack), controller_node, perception_node, and policy_node when checkpoint:= is given.
The arm's own bring-up (franka_ros2 / ros2_control) is started separately, as the lab runs it. With use_sim:=true
the twin stands in for the cell: the nodes of sim.launch.py, no camera driver.

    ros2 launch manip_stack robot.launch.py cell:=franka_3cam checkpoint:=outputs/policy/policy.pt
"""

from launch import LaunchDescription
from ros_support.launch_graph import launch_entities


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        launch_entities(
            "robot",
            [
                "cell",
                "task",
                "checkpoint",
                "use_sim",
                "camera_driver",
                "camera_source",
                "recording_dir",
                "controller_type",
                "perception",
                "objects",
                "params_file",
            ],
        )
    )
