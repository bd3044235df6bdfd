"""Teleop devices by name: ``spacemouse``, ``keyboard``, ``gamepad``, ``ros``, or ``replay:<stream.jsonl>``.

One registry entry per kind says which parser reads it and how to open the live hardware; replay and
recording wrap the same parsers, so a replayed stream runs exactly the code a live device runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teleop.config import DeviceKind, TeleopConfig, default_config
from teleop.core import ChannelParser, InputSource, TeleopDevice
from teleop.gamepad import PygameJoystickParser, PygameJoystickSource
from teleop.keyboard import EvdevParser, EvdevSource
from teleop.replay import RecordingSource, ReplaySource
from teleop.ros_values import QueueSource, TwistJoyParser
from teleop.spacemouse import HidSource, SpaceMouseParser


@dataclass(frozen=True)
class DeviceEntry:
    parser: Callable[[InputSource | None], ChannelParser]
    live_source: Callable[[], InputSource]
    library: str  # what a lab installs for the live device


def _evdev_parser(source: InputSource | None) -> ChannelParser:
    return EvdevParser(source.abs_ranges if isinstance(source, EvdevSource) else None)


REGISTRY: dict[DeviceKind, DeviceEntry] = {
    DeviceKind.spacemouse: DeviceEntry(lambda _: SpaceMouseParser(), HidSource, "hidapi"),
    DeviceKind.keyboard: DeviceEntry(_evdev_parser, EvdevSource, "evdev"),
    DeviceKind.gamepad: DeviceEntry(lambda _: PygameJoystickParser(), PygameJoystickSource, "pygame"),
    DeviceKind.ros: DeviceEntry(lambda _: TwistJoyParser(), QueueSource, "rclpy (ROS 2 Jazzy)"),
}


def device_names() -> list[str]:
    return [kind.value for kind in DeviceKind] + ["replay:<stream.jsonl>"]


def make_device(spec: str, config: TeleopConfig | None = None, record_to: str | Path | None = None,
                source: InputSource | None = None, **source_options: Any) -> TeleopDevice:
    """Build a device from its name (not yet connected).

    ``replay:<file>`` reads the device kind from the stream's header. ``record_to`` tees every raw input
    into a stream file that ``replay:`` plays back. ``source`` replaces the live source (scripted operators).
    """
    name = spec
    if spec.startswith("replay:"):
        replay, header = ReplaySource.from_file(spec.removeprefix("replay:"), **source_options)
        kind, source = DeviceKind(header["device"]), replay
        name = f"replay({kind.value})"
    else:
        try:
            kind = DeviceKind(spec)
        except ValueError:
            raise ValueError(f"unknown teleop device {spec!r}; choose from {device_names()}") from None
        entry = REGISTRY[kind]
        source = source if source is not None else entry.live_source(**source_options)
    config = config or default_config(kind)
    if config.device is not kind:
        raise ValueError(f"teleop config is for a {config.device.value}, the device is a {kind.value}")
    parser = REGISTRY[kind].parser(source)
    if record_to is not None:
        source = RecordingSource(source, record_to, kind.value)
    return TeleopDevice(parser, source, config, name=name)
