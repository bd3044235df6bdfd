"""Node parameters as one pydantic model per node: declared, typed and validated the same way in the node, in
``--help`` and in the tests that check the YAML parameter files and launch files (none of which needs ROS).

A node's model (a :class:`NodeParams` subclass living beside the node's ROS-free core) names each parameter's
type (its annotation: ``bool``, ``int``, ``float``, ``str`` or a ``Literal`` of strings, ``list[str]``,
``list[float]``), default (none when the node cannot guess one), description (``Field(description=...)``)
and checks (``Field(ge=..., le=...)``, ``Literal`` choices, :data:`CellName`/:data:`TaskName` that must load).
``ros_support.node.declare_parameters`` declares the ROS parameters from the model and returns the typed
model; :func:`validate` turns a mapping of values into the model or raises :class:`ParameterError` listing
messages a person can act on ("parameter cell: no cell named 'frank'; available: ['franka_3cam'] ...").
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticUndefined

_TYPES = ("bool", "int", "double", "string", "string_array", "double_array")


class ParameterError(ValueError):
    """Bad or missing node parameters; the message lists every problem at once."""


class NodeParams(BaseModel):
    """Base of every node's parameter model: frozen, strict (ints are accepted for doubles, nothing else is
    converted), finite numbers only. A field with ``json_schema_extra={"read_only": False}`` may be set while
    the node runs (see ``ros_support.node.dynamic_parameter_guard``)."""

    model_config = ConfigDict(frozen=True, strict=True, allow_inf_nan=False, extra="ignore")


P = TypeVar("P", bound=NodeParams)


def _loads(kind: str):
    """A validator: the cell or task name (or path) must load (hardware_configs is imported lazily: ROS-free)."""

    def check(value: str) -> str:
        from hardware_configs import loader

        try:
            (loader.load_cell if kind == "cell" else loader.load_task)(value)
        except loader.ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    return check


CellName = Annotated[str, AfterValidator(_loads("cell"))]
TaskName = Annotated[str, AfterValidator(_loads("task"))]
CELL_DESCRIPTION = "cell name in hardware_configs/cells or a .yaml path"
TASK_DESCRIPTION = "task name in hardware_configs/tasks or a .yaml path"


@dataclass(frozen=True)
class ParamInfo:
    """One field of a node's model as ROS sees it: ``kind`` is its ROS type name."""

    name: str
    kind: str
    default: Any  # PydanticUndefined when required
    description: str
    choices: tuple[Any, ...] | None
    read_only: bool

    @property
    def required(self) -> bool:
        return self.default is PydanticUndefined


def _kind(annotation: Any) -> tuple[str, tuple[Any, ...] | None]:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        kinds = {_kind(type(c))[0] for c in choices}
        if len(kinds) == 1:
            return kinds.pop(), choices
    elif origin is list:
        (item,) = typing.get_args(annotation)
        item_kind = _kind(item)[0]
        if item_kind in ("string", "double"):
            return f"{item_kind}_array", None
    else:
        simple = {bool: "bool", int: "int", float: "double", str: "string"}.get(annotation)
        if simple is not None:
            return simple, None
    raise TypeError(f"no ROS parameter type for {annotation!r}; use one of {_TYPES}")


def param_infos(model: type[NodeParams]) -> tuple[ParamInfo, ...]:
    """The ROS view (name, type, default, description) of every field of ``model``, in declaration order."""
    out = []
    for name, field in model.model_fields.items():
        kind, choices = _kind(field.annotation)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = field.get_default(call_default_factory=True) if not field.is_required() else PydanticUndefined
        out.append(ParamInfo(name, kind, default, field.description or "", choices,
                             bool(extra.get("read_only", True))))
    return tuple(out)


def _message(error: Mapping[str, Any], infos: Mapping[str, ParamInfo], values: Mapping[str, Any]) -> str:
    name = str(error["loc"][0]) if error["loc"] else "?"
    info = infos.get(name)
    value, ctx, kind = error.get("input"), error.get("ctx") or {}, error["type"]
    if len(error["loc"]) > 1 and info is not None:  # an item of an array: name the whole value
        return f"parameter {name}: expected {info.kind}, got {values.get(name)!r}"
    if kind == "missing" and info is not None:
        return f"parameter {name} is required ({info.kind}): {info.description}"
    if kind == "value_error":
        text = str(ctx.get("error", error["msg"]))
    elif kind in ("greater_than_equal", "greater_than"):
        text = f"must be {'>=' if kind.endswith('equal') else '>'} {ctx.get('ge', ctx.get('gt'))}, got {value}"
    elif kind in ("less_than_equal", "less_than"):
        text = f"must be {'<=' if kind.endswith('equal') else '<'} {ctx.get('le', ctx.get('lt'))}, got {value}"
    elif kind == "literal_error" and info is not None and info.choices is not None:
        text = f"{value!r} is not one of {list(info.choices)}"
    elif kind == "finite_number":
        text = f"must be finite, got {value}"
    elif info is not None and len(error["loc"]) == 1:
        text = f"expected {info.kind}, got {type(value).__name__} {value!r}"
    else:
        text = f"{error['msg']}, got {value!r}"
    return f"parameter {name}: {text}"


def validate(model: type[P], values: Mapping[str, Any], node: str = "node", allow_unknown: bool = True,
             require: bool = True) -> P | None:
    """The typed model of ``values`` (defaults filled in, ``None`` values taken as unset); raises
    :class:`ParameterError` naming the node and every bad, missing or (``allow_unknown=False``) unknown one.

    ``require=False`` checks a partial set (one parameter file of several) without asking for required ones; it
    returns ``None`` when a required one is absent.
    """
    infos = {i.name: i for i in param_infos(model)}
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}
    problems: list[str] = []
    result: P | None = None
    try:
        result = model.model_validate({k: v for k, v in given.items() if k in infos})
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"] == "missing" and not require:
                continue
            problems.append(_message(error, infos, given))
    unknown = sorted(k for k in values if k not in infos and k != "use_sim_time")
    if unknown and not allow_unknown:
        problems.append(f"unknown parameters {unknown} (typo?); known: {sorted(infos)}")
    if problems:
        raise ParameterError(f"{node}: " + "; ".join(problems))
    return result


def help_text(node: str, summary: str, model: type[NodeParams]) -> str:
    """What ``<node> --help`` prints: the summary and one line per parameter."""
    lines = [f"usage: ros2 run manip_stack {node} [--ros-args -p NAME:=VALUE ... | --params-file FILE]", "",
             summary, "", "parameters:"]
    for info in param_infos(model):
        default = "(required)" if info.required else repr(info.default)
        extra = f" one of {list(info.choices)}" if info.choices else ""
        lines.append(f"  {info.name} [{info.kind}] default {default}{extra}\n      {info.description}")
    lines.append("  use_sim_time [bool] default False\n      follow /clock (the twin's sim time)")
    return "\n".join(lines)


__all__ = ["CELL_DESCRIPTION", "TASK_DESCRIPTION", "CellName", "Field", "NodeParams", "ParamInfo",
           "ParameterError", "TaskName", "help_text", "param_infos", "validate"]
