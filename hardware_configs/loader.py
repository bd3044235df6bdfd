"""Load cell and task YAML files into typed models, with errors a person can act on.

A name (``franka_3cam``) resolves to ``hardware_configs/cells/franka_3cam.yaml``; a path is used as is.
Every failure raises :class:`ConfigError` naming the file, the field, the bad value and what is valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hardware_configs.safe_yaml import UnsafeYamlError, read_yaml_mapping
from hardware_configs.schema import CellConfig, TaskConfig

CONFIG_ROOT = Path(__file__).resolve().parent
ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A config file that cannot be used; the message says where and how to fix it."""


def available(kind: str) -> list[str]:
    """Names of the shipped configs of one kind (``cells`` or ``tasks``)."""
    return sorted(p.stem for p in (CONFIG_ROOT / kind).glob("*.yaml"))


def resolve(kind: str, name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise ConfigError(f"{candidate}: no such file")
        return candidate
    path = CONFIG_ROOT / kind / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"no {kind[:-1]} named {name_or_path!r}; available: {available(kind)} (or give a .yaml path)")
    return path


def format_validation_error(path: Path | str, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s)"]
    for item in error.errors()[:20]:
        field = ".".join(str(part) for part in item["loc"]) or "<top level>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (typo? unknown keys are not ignored)"
        shown = repr(item.get("input"))
        if len(shown) > 80:
            shown = shown[:77] + "..."
        message = message if len(message) <= 400 else message[:397] + "..."
        lines.append(f"  - {field}: {message} (got {shown})")
    if error.error_count() > 20:
        lines.append(f"  ... and {error.error_count() - 20} more")
    return "\n".join(lines)


def validate_model(raw: object, model: type[ModelT], source: Path | str) -> ModelT:
    """``model`` from already-parsed data, with :class:`ConfigError` naming ``source``, field and value."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    """A YAML file read under :mod:`hardware_configs.safe_yaml`'s bounds, validated into ``model``."""
    try:
        raw = read_yaml_mapping(path)
    except UnsafeYamlError as exc:
        raise ConfigError(str(exc)) from None
    return validate_model(raw, model, path)


def load_cell(name_or_path: str | Path | CellConfig) -> CellConfig:
    """The cell by name or path; an already loaded cell is returned as is (loaded once, passed down)."""
    if isinstance(name_or_path, CellConfig):
        return name_or_path
    return load_model(resolve("cells", name_or_path), CellConfig)


def load_task(name_or_path: str | Path | TaskConfig) -> TaskConfig:
    """The task by name or path; an already loaded task is returned as is."""
    if isinstance(name_or_path, TaskConfig):
        return name_or_path
    return load_model(resolve("tasks", name_or_path), TaskConfig)


def dump_yaml(model: BaseModel) -> str:
    """YAML text of a model, in the same shape the loader reads back."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)
