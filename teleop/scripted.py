"""A scripted operator on a SpaceMouse: stands in for a person in the twin, speaking raw HID reports.

It watches what a person would watch (the observation and the live view's episode state), decides on a motion
with an ``intent`` policy (a scripted expert in the twin), and turns it into the HID reports a puck would send
for that deflection, through the inverse of the device config's mapping. The reports then go through the real
parser and mapper, so a scripted session exercises the whole device path; recording it gives a stream that
``replay:`` plays back. Faults (going silent, unplugging) can be scheduled to test the watchdogs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from teleop.config import ACTION_AXES, Button, TeleopConfig
from teleop.core import DeviceDisconnectedError
from teleop.spacemouse import (
    ROTATION_CHANNELS,
    TRANSLATION_CHANNELS,
    button_report,
    combined_report,
    rotation_report,
    translation_report,
)

HID_CHANNELS = TRANSLATION_CHANNELS + ROTATION_CHANNELS
Intent = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass
class Faults:
    """Scheduled failures, in session time [s]: stop sending (radio gone quiet) or unplug (and maybe return)."""

    silent_from_s: float | None = None
    disconnect_at_s: float | None = None
    reconnect_at_s: float | None = None


class ScriptedSpaceMouse:
    """An :class:`teleop.core.InputSource` whose "hand" is a policy; call ``observe`` each tick."""

    def __init__(self, config: TeleopConfig, intent_factory: Callable[[int], Intent], combined: bool = True,
                 faults: Faults | None = None, think_ticks: int = 3) -> None:
        self.config = config
        self.intent_factory = intent_factory
        self.combined = combined
        self.faults = faults or Faults()
        self.think_ticks = think_ticks  # ticks a person takes to react to a new state
        self._pending: list[bytes] = []
        self._unplugged = False
        self._intent: Intent | None = None
        self._closed_belief = False
        self._deflected = False
        self._state = ""
        self._ticks_in_state = 0
        self._episode = -1
        self._unmix = self._inverse_mapping()

    # ------------------------------------------------------------------ what the person does
    def observe(self, obs: dict[str, np.ndarray], state: str, episode: int, success: bool | None = None) -> None:
        """Decide this tick's input from what the live view shows."""
        if state != self._state:
            self._state, self._ticks_in_state = state, 0
        self._ticks_in_state += 1
        reacting = self._ticks_in_state > self.think_ticks
        if state == "ready" and reacting:
            self._press(Button.start_stop)
        elif state == "recording":
            if episode != self._episode:
                self._episode, self._intent, self._closed_belief = episode, self.intent_factory(episode), False
            self._move(self._intent(obs))
        elif state == "review" and reacting:
            self._press(Button.accept if success else Button.discard)
        if state != "recording" and self._deflected:
            self._send_axes(np.zeros(6))

    def _move(self, action: np.ndarray) -> None:
        scale = np.array([self.config.max_translation_m_per_step] * 3 + [self.config.max_rotation_rad_per_step] * 3)
        wanted = np.clip(np.asarray(action[:6], dtype=float) / scale, -1.0, 1.0)
        d, e = self.config.deadband, self.config.exponent
        mixed = np.sign(wanted) * np.where(wanted != 0.0, d + (1.0 - d) * np.abs(wanted) ** (1.0 / e), 0.0)
        self._send_axes(self._unmix @ mixed)
        if (action[6] >= 0.5) != self._closed_belief:
            self._press(Button.gripper_toggle)
            self._closed_belief = not self._closed_belief

    def _send_axes(self, hid_axes: np.ndarray) -> None:
        hid_axes = np.clip(hid_axes, -1.0, 1.0)
        if self.combined:
            self._pending.append(combined_report(hid_axes))
        else:
            self._pending += [translation_report(*hid_axes[:3]), rotation_report(*hid_axes[3:])]
        self._deflected = bool(np.any(np.abs(hid_axes) > 0))

    def _press(self, role: Button) -> None:
        bits = [int(name.removeprefix("btn")) for name in self.config.buttons.get(role, []) if name.startswith("btn")]
        if not bits:
            raise ValueError(f"the SpaceMouse config maps no button to {role.value}")
        self._pending += [button_report(bits[:1]), button_report([])]  # press and release within one tick

    def _inverse_mapping(self) -> np.ndarray:
        """(6 HID channels x 6 action axes): HID deflection producing a wanted (pre-deadband) action."""
        mix = np.zeros((len(ACTION_AXES), len(HID_CHANNELS)))
        for row, terms in enumerate(self.config.axes.terms()):
            for sign, name in terms:
                if name in HID_CHANNELS:
                    mix[row, HID_CHANNELS.index(name)] += sign
        return np.linalg.pinv(mix)

    # ------------------------------------------------------------------ InputSource
    def open(self) -> None:
        self._pending = []

    def close(self) -> None:
        pass

    def read(self, now_s: float) -> list[tuple[float, Any]]:
        f = self.faults
        if f.disconnect_at_s is not None and now_s >= f.disconnect_at_s and (
                f.reconnect_at_s is None or now_s < f.reconnect_at_s):
            self._pending, self._unplugged = [], True
            raise DeviceDisconnectedError("scripted unplug")
        if f.silent_from_s is not None and now_s >= f.silent_from_s:
            self._pending = []
            return []
        reports, self._pending = self._pending, []
        inputs: list[tuple[float, Any]] = [(now_s, r) for r in reports]
        if self._unplugged:  # plugged back in: the first read after it says "attached", as the live sources do
            self._unplugged = False
            inputs.append((now_s, None))
        return inputs
