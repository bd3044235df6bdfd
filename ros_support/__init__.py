"""ROS 2 support shared by every node: message conversions, the node runtime, parameter tables, the launch graph.

Imported only by the ``*/ros/`` node packages, the launch files and the tests; no core module imports it.
``conversions`` and ``params`` import no ``rclpy`` (the bag importer and the no-ROS tests use them); ``node``
does, and is the one place a node's process is started, watched and ended.
"""
