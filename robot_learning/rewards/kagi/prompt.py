"""The KAGI question (marked images + instruction) and the structure of its answer.

The model picks, by label: the grasp (contact) point on the object, the target the grasp point must reach,
and optional via-points, each with a height above the chosen mark (the model reads "10 cm" from the
instruction; a VLM is poor at metric depth, the depth camera is not). Labels that are not in the image are
validation errors, sent back for repair like any other.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from robot_learning.rewards.fm.messages import user_message
from robot_learning.rewards.kagi.camera import Keyframe
from robot_learning.rewards.kagi.marks import Mark, draw_marks

SYSTEM_PROMPT = (
    "You guide a robot arm with a parallel gripper. You see camera images with numbered candidate points: "
    "P# lie on objects, Q# in free space, and tiles A1..D4 split each image into a grid. Choose points by "
    "label only. Answer with one JSON object and nothing else."
)


class PointChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    mark: str = Field(description="a label shown in the image (P#, Q# or a tile)")
    height_above_m: Annotated[float, Field(ge=-0.05, le=0.4)] = Field(
        0.0, description="how far above the chosen point, in metres")


class KagiAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    grasp: str = Field(description="label of the object point the gripper should grasp or touch (a P# label)")
    pre_grasp_height_m: Annotated[float, Field(ge=0.0, le=0.3)] = Field(
        0.05, description="height above the grasp point from which the gripper comes straight down (pre-contact)")
    target: PointChoice = Field(description="where the grasped point must end up")
    waypoints: list[PointChoice] = Field(default_factory=list, max_length=4,
                                         description="points the grasped point passes on the way, in order")
    reasoning: str = Field("", max_length=600)

    @model_validator(mode="after")
    def _labels_shown(self, info: ValidationInfo) -> KagiAnswer:
        kinds: dict[str, str] | None = (info.context or {}).get("mark_kinds")
        if kinds is None:
            return self
        if kinds.get(self.grasp) != "object":
            objects = sorted(k for k, v in kinds.items() if v == "object")
            raise ValueError(f"grasp must be an object point label, one of {objects}; got {self.grasp!r}")
        unknown = [c.mark for c in [self.target, *self.waypoints] if c.mark not in kinds]
        if unknown:
            raise ValueError(f"label(s) {unknown} are not in the image; labels are {sorted(kinds)}")
        return self


def build_messages(instruction: str, frames: list[Keyframe], marks: list[Mark],
                   tile_grid: tuple[int, int] = (4, 4)) -> tuple[list[dict], list]:
    """Chat messages (system + one user turn with the marked images) and the marked images themselves."""
    images = [draw_marks(frame, marks, tile_grid) for frame in frames]
    legend = "\n".join(m.legend() for m in marks if m.kind != "tile")
    cameras = ", ".join(f"image {i + 1}: {f.camera.name}" for i, f in enumerate(frames))
    text = (
        f"Task: {instruction}\n{cameras}.\nCandidate points:\n{legend}\n"
        f"Tiles: {', '.join(m.label for m in marks if m.kind == 'tile')} (rows top to bottom, columns left to right)."
        "\nChoose the grasp point, the height above it from which the gripper should come down, the target the "
        "grasp point must reach (with its height above the chosen point in metres) and up to 4 waypoints on the way. "
        "JSON fields: grasp, pre_grasp_height_m, target {mark, height_above_m}, waypoints [{mark, height_above_m}], "
        "reasoning (one sentence)."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, user_message(text, images)], images
