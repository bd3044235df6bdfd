"""Stand-in for ROS 2's ``launch`` package (not installable from PyPI): records what a launch file declares.

Only the API our launch files use, with the real signatures; ``tests/ros/test_ros_launch.py`` puts this folder
first on ``sys.path`` for its own tests only.
"""

from launch import actions, substitutions  # noqa: F401


class LaunchDescription:
    def __init__(self, initial_entities=None):
        self.entities = list(initial_entities or [])


class LaunchContext:
    def __init__(self, launch_configurations=None):
        self.launch_configurations = dict(launch_configurations or {})
