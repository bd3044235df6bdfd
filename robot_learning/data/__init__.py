"""Episode data: the crash-safe zarr episode store, its specs and integrity checks, and episode videos."""
