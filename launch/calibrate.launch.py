"""Calibration views: cameras (or the twin), controller_node to move the arm through poses, and session_node
recording full-resolution images with the TCP pose at each accepted view, for the hand-eye solver of
``calibration/`` to read.

    ros2 launch manip_stack calibrate.launch.py cell:=franka_3cam store_path:=outputs/calibration.zarr
"""

from launch import LaunchDescription
from ros_support.launch_graph import launch_entities


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        launch_entities(
            "calibrate",
            [
                "cell",
                "task",
                "use_sim",
                "camera_driver",
                "camera_source",
                "recording_dir",
                "controller_type",
                "store_path",
                "params_file",
            ],
            defaults={"store_path": "outputs/calibration.zarr"},
        )
    )
