"""ROS 2 messages as numpy, without ROS: conversions, parameter tables, recording and bag import.

Nothing here imports ``rclpy``. Conversions build and read messages through a :class:`MessageFactory`, so the
same code serves rclpy's message classes (in the nodes) and the ``rosbags`` typestore (bag import, tests).
"""
