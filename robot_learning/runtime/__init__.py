"""What runs a policy against a robot: loading a checkpoint (plain tensors only) and the policy runner every
runtime shares (in-process evaluation and the demo, ROS 2's ``policy_node``)."""
