"""Learned policies (the diffusion-policy behaviour-cloning base) and their training windows."""
