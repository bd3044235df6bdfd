"""`manip-stack <verb>`: the command line; one module per group of verbs, each a thin wrapper over a session."""
