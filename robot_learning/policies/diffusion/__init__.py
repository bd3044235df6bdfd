"""Diffusion Policy (Chi et al., RSS 2023) in LeRobot's layout: configuration, modeling, processor.

``checkpoint`` adds the checkpoint format and :class:`DiffusionPolicy`, the inference wrapper runtimes call.
Import the submodules directly; this package does not import torch on its own.
"""
