"""rclpy adapters of the teleop devices (the only teleop modules that import rclpy)."""
