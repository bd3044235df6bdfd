"""Robot interfaces, interpolation, teleop and the safety filter every command passes through."""
