"""Stand-in for ROS 2's ``launch_ros`` package: records the nodes a launch file would start."""

from launch_ros import actions  # noqa: F401
