"""The one teleop device interface: raw input -> parser -> channels -> mapped 7-D action, buttons, liveness.

A device is three parts with fixed roles, so the code that runs on a live device is the code the tests run:

- a **source** yields raw inputs ``(t_s, payload)``: HID report bytes, evdev or pygame events, ROS values.
  Live sources read hardware; :class:`teleop.replay.ReplaySource` reads a recorded stream.
  A payload of ``None`` is a heartbeat ("still attached, nothing new"; live sources send one when a device
  they lost is back); a source raises :class:`DeviceDisconnectedError` while the device is gone.
- a **parser** (one per device kind) turns payloads into named channels in [-1, 1] and latches button presses
  between polls, so a press shorter than the 10 Hz session tick is never lost.
- :class:`TeleopDevice` maps channels through a :class:`teleop.config.TeleopConfig` and applies
  the liveness rule: a disconnected device, or motion input older than ``stale_after_s``, gives zero deltas.

Time is passed in by the caller (``poll(now_s)``), as the safety filter does: replay in the twin uses a step
clock, a live session uses the wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np

from teleop.config import Button, TeleopConfig

log = logging.getLogger(__name__)
BUTTON_THRESHOLD = 0.5  # a channel above this counts as a pressed button


class DeviceDisconnectedError(RuntimeError):
    """The device went away (unplugged, out of radio range, stream ended with a disconnect record)."""


class DeviceStatus(str, Enum):
    ok = "ok"
    stale = "stale"  # attached, but motion input stopped arriving while deflected: motion dropped
    disconnected = "disconnected"


@dataclass(frozen=True)
class TeleopCommand:
    """One poll of a device: what the arm should do for the next policy step and what the operator pressed.

    ``action`` follows the env convention: ``[dx dy dz]`` [m], rotation vector [rad] (base frame), gripper
    closure target in [0, 1]. ``pressed`` holds button roles pressed since the previous poll, ``held`` those
    down now.
    """

    action: np.ndarray
    pressed: frozenset[Button] = frozenset()
    held: frozenset[Button] = frozenset()
    motion_active: bool = False
    status: DeviceStatus = DeviceStatus.ok
    intervening: bool = False


class InputSource(Protocol):
    """Where raw inputs come from (hardware or a recording)."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, now_s: float) -> Iterable[tuple[float, Any]]:
        """Every raw input available at ``now_s`` as ``(t_s, payload)``; raises DeviceDisconnectedError."""
        ...


class ChannelParser:
    """Base of the device parsers: named channels in [-1, 1] plus latched button presses."""

    def __init__(self) -> None:
        self.channels: dict[str, float] = {}
        self.detached = False  # the input itself said the device went away (e.g. a JOYDEVICEREMOVED event)
        self._presses: set[str] = set()

    def feed(self, payload: Any) -> None:
        raise NotImplementedError

    def set_channel(self, name: str, value: float) -> None:
        value = float(np.clip(value, -1.0, 1.0))
        if value > BUTTON_THRESHOLD >= self.channels.get(name, 0.0):
            self._presses.add(name)
        self.channels[name] = value

    def release_all(self) -> None:
        """Forget every deflection and held button (after a resync or a disconnect): the safe state."""
        self.channels = dict.fromkeys(self.channels, 0.0)

    def take_presses(self) -> set[str]:
        presses, self._presses = self._presses, set()
        return presses


@dataclass
class ChannelMapper:
    """Config applied to channels: signed sums, deadband, response curve, per-step scaling."""

    config: TeleopConfig
    _terms: list[list[tuple[float, str]]] = field(init=False)

    def __post_init__(self) -> None:
        self._terms = self.config.axes.terms()

    def normalised(self, channels: dict[str, float]) -> np.ndarray:
        """(6,) in [-1, 1] after deadband (rescaled so output starts at 0 at its edge) and response curve."""
        raw = np.array([sum(s * channels.get(n, 0.0) for s, n in axis) for axis in self._terms])
        raw = np.clip(raw, -1.0, 1.0)
        d = self.config.deadband
        mag = np.clip((np.abs(raw) - d) / (1.0 - d), 0.0, 1.0) ** self.config.exponent
        return np.sign(raw) * mag

    def deltas(self, channels: dict[str, float]) -> np.ndarray:
        """(6,) [dx dy dz] m and rotation vector rad for one policy step."""
        v = self.normalised(channels)
        return np.concatenate([v[:3] * self.config.max_translation_m_per_step,
                               v[3:] * self.config.max_rotation_rad_per_step])

    def held(self, channels: dict[str, float]) -> frozenset[Button]:
        return frozenset(role for role, names in self.config.buttons.items()
                         if any(channels.get(n, 0.0) > BUTTON_THRESHOLD for n in names))

    def pressed(self, presses: set[str]) -> frozenset[Button]:
        return frozenset(role for role, names in self.config.buttons.items() if presses & set(names))


class TeleopDevice:
    """A teleop device built from a parser, a source and a config; use as a context manager."""

    def __init__(self, parser: ChannelParser, source: InputSource, config: TeleopConfig, name: str = "") -> None:
        self.parser, self.source, self.config = parser, source, config
        self.name = name or config.device.value
        self.mapper = ChannelMapper(config)
        self.gripper_closure = 0.0
        self.last_input_s: float | None = None
        self.status = DeviceStatus.ok
        self.intervening = False  # whether the last poll was an intervention (its start syncs the gripper)
        self._connected = False

    # ------------------------------------------------------------------ lifecycle
    def connect(self) -> TeleopDevice:
        if self._connected:
            raise RuntimeError(f"teleop device {self.name} is already connected")
        self.source.open()
        self._connected = True
        self.status = DeviceStatus.ok
        return self

    def disconnect(self) -> None:
        if self._connected:
            self.source.close()
            self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def __enter__(self) -> TeleopDevice:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ------------------------------------------------------------------ polling
    def _drain(self, now_s: float) -> tuple[list[tuple[float, Any]], bool]:
        """Inputs available now, and whether the source is still there."""
        inputs: list[tuple[float, Any]] = []
        try:
            for item in self.source.read(now_s):
                inputs.append(item)
        except DeviceDisconnectedError as exc:
            if self.status is not DeviceStatus.disconnected:
                log.warning("teleop device %s disconnected: %s", self.name, exc)
            return inputs, False
        return inputs, True

    def poll(self, now_s: float) -> TeleopCommand:
        """Read everything the source has at ``now_s`` and return the command for the next policy step."""
        if not self._connected:
            raise RuntimeError(f"teleop device {self.name} is not connected; call connect() first")
        inputs, attached = self._drain(now_s)
        if self.status is DeviceStatus.disconnected and attached and inputs:
            log.info("teleop device %s is back", self.name)
            self.parser.release_all()  # whatever was held when it went away is not held now
        for t_s, payload in inputs:
            self.last_input_s = t_s
            if payload is not None:
                self.parser.feed(payload)
        attached = attached and not self.parser.detached
        if not attached or (self.status is DeviceStatus.disconnected and not inputs):
            self.status = DeviceStatus.disconnected
            self.parser.release_all()
            self.parser.take_presses()
            self.intervening = False
            return TeleopCommand(self._action(np.zeros(6)), status=DeviceStatus.disconnected)

        channels = self.parser.channels
        presses = self.mapper.pressed(self.parser.take_presses())
        held = self.mapper.held(channels)
        deltas = self.mapper.deltas(channels)
        motion = bool(np.any(deltas != 0.0))
        stale_after = self.config.stale_after_s
        silent_s = np.inf if self.last_input_s is None else now_s - self.last_input_s
        self.status = DeviceStatus.ok
        if motion and stale_after is not None and silent_s > stale_after:
            # Deflected, yet the device stopped streaming: a lost release report must not keep the arm moving.
            self.status = DeviceStatus.stale
            deltas, motion = np.zeros(6), False
        self._update_gripper(presses, held)
        intervening = Button.intervene in held or (self.config.intervene_on_motion and motion)
        self.intervening = intervening
        return TeleopCommand(self._action(deltas), presses, held, motion, self.status, intervening)

    def _update_gripper(self, pressed: frozenset[Button], held: frozenset[Button]) -> None:
        if Button.gripper_toggle in pressed:
            self.gripper_closure = 0.0 if self.gripper_closure >= 0.5 else 1.0
        if Button.gripper_close in held:
            self.gripper_closure = 1.0
        if Button.gripper_open in held:
            self.gripper_closure = 0.0

    def _action(self, deltas: np.ndarray) -> np.ndarray:
        return np.concatenate([deltas, [self.gripper_closure]]).astype(np.float32)

    def sync_gripper(self, closure: float) -> None:
        """Adopt the gripper state the arm has (at an intervention's start), so taking over never snaps it."""
        self.gripper_closure = 1.0 if closure >= 0.5 else 0.0
