"""What runs a policy against a robot: the policy runner shared by every runtime (in-process, ROS 2)."""
