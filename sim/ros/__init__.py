"""ROS 2 nodes of `sim` (rclpy is imported only in this package's node modules)."""
