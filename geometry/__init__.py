"""Rigid-body geometry every layer shares: rotations and transforms (numpy only, no ROS, no MuJoCo)."""
