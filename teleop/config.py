"""Teleop device configuration: deadband, scaling, axis and button mapping, validated at load time.

Every device parser turns its raw input into named *channels* with values in [-1, 1] (SpaceMouse ``tx`` ...
``rz``, gamepad ``axis0``/``btn3``/``hat0_x``, keyboard ``KEY_W``, ROS ``linear_x``/``joy_btn0``). The config
maps channels to the 7-D action of the twin and the robot (``[dx dy dz]`` m, rotation vector rad in the base
frame, gripper closure) and to session buttons, so a lab re-maps a device by editing YAML, not code.

Action axes are written as sums of signed channels, e.g. ``x: ["-ty"]`` or ``z: ["+KEY_R", "-KEY_F"]``.
Default mappings assume the operator stands behind the robot, looking along the base +x axis.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ACTION_AXES = ("x", "y", "z", "roll", "pitch", "yaw")
_TERM = re.compile(r"^([+-])([A-Za-z][A-Za-z0-9_]*)$")


class Button(str, Enum):
    """What a button means to a session; one physical button may serve several (resolved by session state)."""

    start_stop = "start_stop"  # start an episode (ready) / end it (recording)
    accept = "accept"  # keep the episode just recorded
    discard = "discard"  # drop it
    intervene = "intervene"  # held: the operator takes over from the policy
    gripper_toggle = "gripper_toggle"
    gripper_close = "gripper_close"
    gripper_open = "gripper_open"


class DeviceKind(str, Enum):
    spacemouse = "spacemouse"
    keyboard = "keyboard"
    gamepad = "gamepad"
    ros = "ros"


def parse_term(term: str) -> tuple[float, str]:
    """``"-ty"`` -> (-1.0, "ty")."""
    match = _TERM.match(term.strip())
    if match is None:
        raise ValueError(f"axis term {term!r} must be a sign and a channel name, like '+tx' or '-KEY_S'")
    return (1.0 if match.group(1) == "+" else -1.0), match.group(2)


class AxisMapping(BaseModel):
    """Signed channel sums for each action axis (translation in the base frame, rotation about base axes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    x: list[str] = Field(default_factory=list)
    y: list[str] = Field(default_factory=list)
    z: list[str] = Field(default_factory=list)
    roll: list[str] = Field(default_factory=list)
    pitch: list[str] = Field(default_factory=list)
    yaw: list[str] = Field(default_factory=list)

    @field_validator("x", "y", "z", "roll", "pitch", "yaw")
    @classmethod
    def _terms_parse(cls, terms: list[str]) -> list[str]:
        for term in terms:
            parse_term(term)
        return terms

    def terms(self) -> list[list[tuple[float, str]]]:
        """Per action axis, in :data:`ACTION_AXES` order: [(sign, channel), ...]."""
        return [[parse_term(t) for t in getattr(self, axis)] for axis in ACTION_AXES]


UnitInterval = Annotated[float, Field(ge=0.0, lt=1.0)]


class TeleopConfig(BaseModel):
    """How one device drives the arm. Scales are per policy step (``cell.rates.policy_hz``) at full deflection."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    device: DeviceKind
    deadband: UnitInterval = Field(0.1, description="fraction of full deflection ignored around rest")
    exponent: Annotated[float, Field(ge=1.0, le=3.0)] = Field(
        1.0, description="response curve |v|**exponent after the deadband: >1 gives finer control near rest")
    max_translation_m_per_step: Annotated[float, Field(gt=0.0, le=0.05)] = 0.02
    max_rotation_rad_per_step: Annotated[float, Field(gt=0.0, le=0.2)] = 0.05
    axes: AxisMapping
    buttons: dict[Button, list[str]] = Field(default_factory=dict)
    intervene_on_motion: bool = Field(True, description="any deflection past the deadband counts as intervening")
    stale_after_s: Annotated[float, Field(gt=0.0)] | None = Field(
        0.25, description="motion input older than this is dropped (the device stopped streaming); None: never")

    @field_validator("buttons")
    @classmethod
    def _channel_names(cls, buttons: dict[Button, list[str]]) -> dict[Button, list[str]]:
        for role, channels in buttons.items():
            for name in channels:
                if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", name):
                    raise ValueError(f"buttons.{role.value}: {name!r} is not a channel name")
        return buttons

    @model_validator(mode="after")
    def _something_moves(self) -> TeleopConfig:
        if not any(getattr(self.axes, axis) for axis in ACTION_AXES):
            raise ValueError("axes maps no channel to any action axis: the device could never move the arm")
        return self

    def check_against_limits(self, max_translation_m_per_step: float, max_rotation_rad_per_step: float) -> None:
        """Refuse scales beyond what the env accepts per step (the safety filter would clip them silently)."""
        if self.max_translation_m_per_step > max_translation_m_per_step + 1e-9:
            raise ValueError(f"teleop max_translation_m_per_step {self.max_translation_m_per_step} exceeds the "
                             f"cell's {max_translation_m_per_step:.4f} m per step; lower it in the teleop config")
        if self.max_rotation_rad_per_step > max_rotation_rad_per_step + 1e-9:
            raise ValueError(f"teleop max_rotation_rad_per_step {self.max_rotation_rad_per_step} exceeds the "
                             f"cell's {max_rotation_rad_per_step:.4f} rad per step; lower it in the teleop config")


def default_config(device: DeviceKind | str) -> TeleopConfig:
    """Mappings that work out of the box for each device kind (see the module docstring for the frame)."""
    device = DeviceKind(device)
    b = Button
    if device is DeviceKind.spacemouse:
        # HID axes: x right, y toward the operator, z down (right-handed); the base frame is the operator's
        # forward/left/up, so x_base = -ty, y_base = -tx, z_base = -tz, and rotations alike (a proper rotation).
        axes = AxisMapping(x=["-ty"], y=["-tx"], z=["-tz"], roll=["-ry"], pitch=["-rx"], yaw=["-rz"])
        # Two-button pucks: left toggles the gripper / discards, right starts-stops / accepts.
        buttons = {b.gripper_toggle: ["btn0"], b.discard: ["btn0"], b.start_stop: ["btn1"], b.accept: ["btn1"]}
        return TeleopConfig(device=device, axes=axes, buttons=buttons, deadband=0.08, stale_after_s=0.25)
    if device is DeviceKind.keyboard:
        axes = AxisMapping(x=["+KEY_W", "-KEY_S"], y=["+KEY_A", "-KEY_D"], z=["+KEY_R", "-KEY_F"],
                           roll=["+KEY_L", "-KEY_J"], pitch=["+KEY_I", "-KEY_K"], yaw=["+KEY_U", "-KEY_O"])
        buttons = {b.gripper_toggle: ["KEY_SPACE"], b.start_stop: ["KEY_ENTER"], b.accept: ["KEY_Y"],
                   b.discard: ["KEY_N"], b.intervene: ["KEY_TAB"]}
        # Keys are all-or-nothing: half speed keeps fine positioning possible. Auto-repeat (~30 Hz after a
        # 250-600 ms delay) keeps a held key fresh, so 0.8 s of silence means a lost key-up.
        return TeleopConfig(device=device, axes=axes, buttons=buttons, deadband=0.0, stale_after_s=0.8,
                            max_translation_m_per_step=0.01, max_rotation_rad_per_step=0.03)
    if device is DeviceKind.gamepad:
        # SDL joystick layout of Xbox-style pads: axes 0/1 left stick (y down), 3/4 right stick, hat 0 = d-pad;
        # buttons 0 A, 1 B, 2 X, 3 Y, 4 LB, 5 RB, 7 Start.
        axes = AxisMapping(x=["-axis1"], y=["-axis0"], z=["-axis4"], yaw=["-axis3"], roll=["+hat0_x"],
                           pitch=["+hat0_y"])
        buttons = {b.gripper_toggle: ["btn2"], b.start_stop: ["btn7"], b.accept: ["btn0"], b.discard: ["btn1"],
                   b.intervene: ["btn5"]}
        # The live source sends a heartbeat each poll while the pad is attached: silence means it is gone.
        return TeleopConfig(device=device, axes=axes, buttons=buttons, deadband=0.15, exponent=1.5,
                            stale_after_s=0.5)
    # ROS Twist (already in m/s and rad/s, normalised by the twist_full_scale of the ROS source) + Joy buttons.
    axes = AxisMapping(x=["+linear_x"], y=["+linear_y"], z=["+linear_z"], roll=["+angular_x"],
                       pitch=["+angular_y"], yaw=["+angular_z"])
    buttons = {b.gripper_toggle: ["joy_btn0"], b.start_stop: ["joy_btn7"], b.accept: ["joy_btn3"],
               b.discard: ["joy_btn1"], b.intervene: ["joy_btn5"]}
    return TeleopConfig(device=device, axes=axes, buttons=buttons, deadband=0.02, stale_after_s=0.5)


def load_teleop_config(path: str) -> TeleopConfig:
    """A YAML teleop config, with errors naming the file and field (the cell loader's formatting)."""
    from pathlib import Path

    from hardware_configs.loader import load_model

    return load_model(Path(path), TeleopConfig)
