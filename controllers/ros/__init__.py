"""ROS 2 nodes of `controllers` (rclpy is imported only in this package's node modules)."""
