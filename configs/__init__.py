"""Every shipped YAML that is not a cell or a task, under one root that installs with the package.

``fm/`` foundation-model profiles, ``policy/`` diffusion-policy training configs, ``rl/`` residual RL configs,
``ros/`` ROS 2 parameter files for the nodes. Cells and tasks live in ``hardware_configs/`` (the design card's
name). Found through this package's own location, so an installed copy works as well as a source checkout.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_ROOT = Path(__file__).resolve().parent
KINDS = ("fm", "policy", "rl", "ros")


def config_dir(kind: str) -> Path:
    """The folder of one kind of config (``fm``, ``policy``, ``rl`` or ``ros``)."""
    if kind not in KINDS:
        raise KeyError(f"no config kind {kind!r}; kinds: {list(KINDS)}")
    return CONFIG_ROOT / kind
