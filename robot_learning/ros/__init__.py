"""ROS 2 nodes of `robot_learning` (rclpy is imported only in this package's node modules)."""
