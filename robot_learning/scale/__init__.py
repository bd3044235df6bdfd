"""Scaling past one process on engines made for it: DDP training through ``accelerate`` (:mod:`.ddp`), the twins
as Ray actors (:mod:`.ray_twins`, picked through :func:`.twins.make_twins`), and MuJoCo Warp physics for
privileged-state rollouts (:mod:`.warp_twin`). Each engine is imported only when its path runs (extra ``scale``).
"""
