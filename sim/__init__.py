"""The MuJoCo twin of the cell, built from hardware_configs: scene, robot, tasks, scripted experts."""
