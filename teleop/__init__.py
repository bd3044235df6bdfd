"""Teleop devices: one interface (:class:`TeleopDevice`) over SpaceMouse, keyboard, gamepad and ROS Twist/Joy.

``make_device("spacemouse")`` builds a live device, ``make_device("replay:stream.jsonl")`` a recorded one;
``poll(now_s)`` returns a :class:`TeleopCommand` with the 7-D delta action the env and the robot take.
"""

from teleop.config import ACTION_AXES, AxisMapping, Button, DeviceKind, TeleopConfig, default_config
from teleop.core import (
    ChannelParser,
    DeviceDisconnectedError,
    DeviceStatus,
    InputSource,
    TeleopCommand,
    TeleopDevice,
)
from teleop.devices import device_names, make_device
from teleop.intervention import intervention_action

__all__ = [
    "ACTION_AXES",
    "AxisMapping",
    "Button",
    "ChannelParser",
    "DeviceDisconnectedError",
    "DeviceKind",
    "DeviceStatus",
    "InputSource",
    "TeleopCommand",
    "TeleopConfig",
    "TeleopDevice",
    "default_config",
    "device_names",
    "intervention_action",
    "make_device",
]
