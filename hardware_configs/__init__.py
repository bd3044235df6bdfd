"""Cell and task descriptions: YAML files plus the typed models and loader that validate them."""

from hardware_configs.loader import ConfigError, load_cell, load_task
from hardware_configs.schema import CameraConfig, CellConfig, TaskConfig

__all__ = ["CameraConfig", "CellConfig", "ConfigError", "TaskConfig", "load_cell", "load_task"]
