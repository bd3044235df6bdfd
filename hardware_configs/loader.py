"""Load cell and task YAML files into typed models, with errors a person can act on.

A name (``franka_3cam``) resolves to ``hardware_configs/cells/franka_3cam.yaml``; a path is used as is.
Every failure raises :class:`ConfigError` naming the file, the field, the bad value and what is valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

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


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s)"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<top level>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (typo? unknown keys are not ignored)"
        shown = repr(item.get("input"))
        if len(shown) > 80:
            shown = shown[:77] + "..."
        lines.append(f"  - {field}: {message} (got {shown})")
    return "\n".join(lines)


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None


def load_cell(name_or_path: str | Path) -> CellConfig:
    return load_model(resolve("cells", name_or_path), CellConfig)


def load_task(name_or_path: str | Path) -> TaskConfig:
    return load_model(resolve("tasks", name_or_path), TaskConfig)


def dump_yaml(model: BaseModel) -> str:
    """YAML text of a model, in the same shape the loader reads back."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False)
