"""Learning side of the stack: episode data, policies, runtime, RL, rewards, sessions and the CLI."""
