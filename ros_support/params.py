"""One table of parameters per node: declared, typed and validated the same way in the node, in ``--help`` and
in the tests that check the YAML parameter files and launch files (none of which needs ROS).

A :class:`ParamSpec` names the type, the default (``REQUIRED`` when the node cannot guess one), a description
and the checks; :func:`validate` turns a mapping of values into typed values or a list of messages a person can
act on ("parameter cell: no cell named 'frank'; available: ['franka_3cam'] ...").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REQUIRED: Any = object()  # sentinel default: the node refuses to start without this parameter
_TYPES = ("bool", "int", "double", "string", "string_array", "double_array")


class ParameterError(ValueError):
    """Bad or missing node parameters; the message lists every problem at once."""


@dataclass(frozen=True)
class ParamSpec:
    """A node parameter: ``kind`` is its ROS type name (bool, int, double, string, string_array, double_array)."""

    name: str
    kind: str
    default: Any
    description: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)  # returns an error or None
    read_only: bool = True

    def __post_init__(self) -> None:
        if self.kind not in _TYPES:
            raise ValueError(f"ParamSpec {self.name}: kind must be one of {_TYPES}, got {self.kind!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def coerce(self, value: Any) -> tuple[Any, str | None]:
        """(typed value, None) or (None, error): ints are accepted for doubles, nothing else is converted."""
        kind = self.kind
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "double":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind == "string":
            ok = isinstance(value, str)
        elif kind == "string_array":
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            value = list(value) if ok else value
        else:
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            value = [float(v) for v in value] if ok else value
        if not ok:
            return None, f"expected {kind}, got {type(value).__name__} {value!r}"
        return value, self._check_value(value)

    def _check_value(self, value: Any) -> str | None:
        if self.choices is not None and value not in self.choices:
            return f"{value!r} is not one of {list(self.choices)}"
        if self.kind in ("int", "double"):
            if not math.isfinite(value):
                return f"must be finite, got {value}"
            if self.minimum is not None and value < self.minimum:
                return f"must be >= {self.minimum}, got {value}"
            if self.maximum is not None and value > self.maximum:
                return f"must be <= {self.maximum}, got {value}"
        if self.check is not None:
            return self.check(value)
        return None


def validate(specs: Sequence[ParamSpec], values: Mapping[str, Any], node: str = "node",
             allow_unknown: bool = True, require: bool = True) -> dict[str, Any]:
    """Typed values for every spec (defaults filled in); raises :class:`ParameterError` listing every problem.

    ``require=False`` checks a partial set (one parameter file of several) without asking for required ones.
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    for spec in specs:
        if spec.name not in values or values[spec.name] is None:
            if spec.required and require:
                problems.append(f"parameter {spec.name} is required ({spec.kind}): {spec.description}")
            else:
                out[spec.name] = spec.default
            continue
        value, error = spec.coerce(values[spec.name])
        if error:
            problems.append(f"parameter {spec.name}: {error}")
        else:
            out[spec.name] = value
    known = {s.name for s in specs}
    unknown = sorted(k for k in values if k not in known and k != "use_sim_time")
    if unknown and not allow_unknown:
        problems.append(f"unknown parameters {unknown} (typo?); known: {sorted(known)}")
    if problems:
        raise ParameterError(f"{node}: " + "; ".join(problems))
    return out


def help_text(node: str, summary: str, specs: Iterable[ParamSpec]) -> str:
    """What ``<node> --help`` prints: the summary and one line per parameter."""
    lines = [f"usage: ros2 run manip_stack {node} [--ros-args -p NAME:=VALUE ... | --params-file FILE]", "",
             summary, "", "parameters:"]
    for spec in specs:
        default = "(required)" if spec.required else repr(spec.default)
        extra = f" one of {list(spec.choices)}" if spec.choices else ""
        lines.append(f"  {spec.name} [{spec.kind}] default {default}{extra}\n      {spec.description}")
    lines.append("  use_sim_time [bool] default False\n      follow /clock (the twin's sim time)")
    return "\n".join(lines)


def check_cell(value: str) -> str | None:
    """A cell name or path that loads (imported lazily: hardware_configs is light, but keep params ROS-free)."""
    from hardware_configs.loader import ConfigError, load_cell

    try:
        load_cell(value)
    except ConfigError as exc:
        return str(exc)
    return None


def check_task(value: str) -> str | None:
    from hardware_configs.loader import ConfigError, load_task

    try:
        load_task(value)
    except ConfigError as exc:
        return str(exc)
    return None


CELL = ParamSpec("cell", "string", "franka_3cam", "cell name in hardware_configs/cells or a .yaml path",
                 check=check_cell)
TASK = ParamSpec("task", "string", "lift", "task name in hardware_configs/tasks or a .yaml path", check=check_task)
