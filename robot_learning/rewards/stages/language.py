"""The small declarative language an LLM writes RoboHorizon stage plans in (JSON, validated, never executed).

A plan is a list of stages; each has a success predicate and a progress term over named frames of the task
(see :mod:`robot_learning.rewards.scene`). Predicates: ``near``, ``above``, ``inside``, ``aligned``,
``grasped``, ``gripper_open``, ``gripper_closed`` and ``and``/``or``/``not``. Progress: a distance between two
frames (optionally offset, optionally along some axes) plus, optionally, the object whose grasp earns the bonus.
Unknown operators, unknown fields and unknown frame names are validation errors whose messages list what is
valid, so they can be sent back to the model for repair. Validate with ``context={"task": TaskConfig}``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from hardware_configs.schema import TaskConfig
from robot_learning.rewards.scene import frame_names

Metres = Annotated[float, Field(ge=0.0, le=1.0)]
Offset = tuple[float, float, float]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Near(_Node):
    """Frame ``a`` within ``max_m`` of frame ``b`` (+ ``offset_m`` in the base frame)."""

    op: Literal["near"]
    a: str
    b: str
    max_m: Metres
    offset_m: Offset = (0.0, 0.0, 0.0)


class Above(_Node):
    """``a`` at least ``min_m`` higher than ``b``; and laterally within ``max_lateral_m`` when given."""

    op: Literal["above"]
    a: str
    b: str
    min_m: Annotated[float, Field(ge=-0.5, le=1.0)]
    max_lateral_m: Metres | None = None


class Inside(_Node):
    """``a`` (an object's frame) at least ``min_depth_m`` below ``b`` (a fixture's ``.top``), centred within
    ``max_lateral_m``."""

    op: Literal["inside"]
    a: str
    b: str
    min_depth_m: Metres
    max_lateral_m: Metres


class Aligned(_Node):
    """Yaw of ``a`` matches yaw of ``b`` within ``max_angle_rad``, modulo ``symmetry_deg`` (90 for a square)."""

    op: Literal["aligned"]
    a: str
    b: str
    max_angle_rad: Annotated[float, Field(gt=0.0, le=3.15)]
    symmetry_deg: Literal[0, 90, 180] = 90


class Grasped(_Node):
    op: Literal["grasped"]
    object: str


class GripperOpen(_Node):
    op: Literal["gripper_open"]


class GripperClosed(_Node):
    op: Literal["gripper_closed"]


class And(_Node):
    op: Literal["and"]
    args: list[Predicate] = Field(min_length=1, max_length=6)


class Or(_Node):
    op: Literal["or"]
    args: list[Predicate] = Field(min_length=1, max_length=6)


class Not(_Node):
    op: Literal["not"]
    arg: Predicate


Predicate = Annotated[
    Near | Above | Inside | Aligned | Grasped | GripperOpen | GripperClosed | And | Or | Not,
    Field(discriminator="op"),
]
OPERATORS = ("near", "above", "inside", "aligned", "grasped", "gripper_open", "gripper_closed", "and", "or", "not")


class Distance(_Node):
    """Distance [m] from frame ``a`` to frame ``b`` + ``offset_m``, over the chosen axes."""

    a: str
    b: str
    offset_m: Offset = (0.0, 0.0, 0.0)
    axes: Literal["xyz", "xy", "z"] = "xyz"


class Progress(_Node):
    distance: Distance
    grasp: str | None = Field(None, description="object whose grasp earns the grasp bonus in this stage")


class Stage(_Node):
    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_ -]+$")
    success: Predicate
    progress: Progress


class StagePlan(_Node):
    stages: list[Stage] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _names_exist(self, info: ValidationInfo) -> StagePlan:
        task: TaskConfig | None = (info.context or {}).get("task")
        if task is None:
            return self
        frames = set(frame_names(task))
        objects = {o.name for o in task.objects}
        bad_frames, bad_objects = set(), set()
        for stage in self.stages:
            for kind, name in _names(stage.success) + _progress_names(stage.progress):
                if kind == "frame" and name not in frames:
                    bad_frames.add(name)
                elif kind == "object" and name not in objects:
                    bad_objects.add(name)
        problems = []
        if bad_frames:
            problems.append(f"unknown frame(s) {sorted(bad_frames)}; frames are {sorted(frames)}")
        if bad_objects:
            problems.append(f"unknown object(s) {sorted(bad_objects)}; objects are {sorted(objects)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _names(node: _Node) -> list[tuple[str, str]]:
    if isinstance(node, (And, Or)):
        return [n for arg in node.args for n in _names(arg)]
    if isinstance(node, Not):
        return _names(node.arg)
    if isinstance(node, Grasped):
        return [("object", node.object)]
    if isinstance(node, (Near, Above, Inside, Aligned)):
        return [("frame", node.a), ("frame", node.b)]
    return []


def _progress_names(progress: Progress) -> list[tuple[str, str]]:
    names = [("frame", progress.distance.a), ("frame", progress.distance.b)]
    return names + ([("object", progress.grasp)] if progress.grasp else [])


LANGUAGE_GUIDE = """\
Answer with one JSON object {"stages": [...]} (1 to 8 stages, in the order they must happen).
Each stage: {"name": str, "success": <predicate>, "progress": {"distance": <distance>, "grasp": <object or null>}}.
Predicates (JSON objects with an "op"):
  {"op": "near", "a": F, "b": F, "max_m": m, "offset_m": [x, y, z]}   a within max_m of b + offset
  {"op": "above", "a": F, "b": F, "min_m": m, "max_lateral_m": m or null}   a.z - b.z >= min_m
  {"op": "inside", "a": F, "b": F, "min_depth_m": m, "max_lateral_m": m}   a at least min_depth_m below b
  {"op": "aligned", "a": F, "b": F, "max_angle_rad": r, "symmetry_deg": 0 | 90 | 180}   yaw alignment
  {"op": "grasped", "object": O}   {"op": "gripper_open"}   {"op": "gripper_closed"}
  {"op": "and", "args": [...]}   {"op": "or", "args": [...]}   {"op": "not", "arg": {...}}
Distance: {"a": F, "b": F, "offset_m": [x, y, z], "axes": "xyz" | "xy" | "z"}; the stage's progress rises as
it shrinks. F is a frame name, O an object name, from the lists below; metres, base frame, z up."""
