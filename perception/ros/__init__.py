"""ROS 2 nodes of `perception` (rclpy is imported only in this package's node modules)."""
