"""Gamepads through pygame's joystick events (SDL), headless with ``SDL_VIDEODRIVER=dummy``.

The parser consumes real ``pygame.event.Event`` objects, live or replayed: ``JOYAXISMOTION`` -> ``axis{i}``,
``JOYBUTTONDOWN/UP`` -> ``btn{i}``, ``JOYHATMOTION`` -> ``hat{i}_x``/``hat{i}_y`` (d-pad, y up), and
``JOYDEVICEREMOVED`` for the pad in use -> disconnected. SDL sends axis events only when a value changes, so
the live source adds a heartbeat each poll while the pad is attached; a pad that stops answering goes stale.
"""

from __future__ import annotations

import os
from typing import Any

from teleop.core import ChannelParser, DeviceDisconnectedError

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def _pygame() -> Any:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame

    return pygame


class PygameJoystickParser(ChannelParser):
    """pygame joystick events of one pad (``instance_id``; None: any pad) -> channels."""

    def __init__(self, instance_id: int | None = None) -> None:
        super().__init__()
        self.instance_id = instance_id

    def feed(self, payload: Any) -> None:
        pg = _pygame()
        event_id = getattr(payload, "instance_id", getattr(payload, "joy", None))
        if self.instance_id is not None and event_id is not None and event_id != self.instance_id:
            return
        if payload.type == pg.JOYAXISMOTION:
            self.set_channel(f"axis{payload.axis}", payload.value)
        elif payload.type == pg.JOYBUTTONDOWN:
            self.set_channel(f"btn{payload.button}", 1.0)
        elif payload.type == pg.JOYBUTTONUP:
            self.set_channel(f"btn{payload.button}", 0.0)
        elif payload.type == pg.JOYHATMOTION:
            x, y = payload.value
            self.set_channel(f"hat{payload.hat}_x", x)
            self.set_channel(f"hat{payload.hat}_y", y)
        elif payload.type == pg.JOYDEVICEREMOVED:
            self.detached = True
            self.release_all()
        elif payload.type == pg.JOYDEVICEADDED:
            self.detached = False


class PygameJoystickSource:
    """Live pad: drains pygame's joystick events each poll, plus a heartbeat while the pad is attached."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.instance_id: int | None = None
        self._joystick: Any = None

    def open(self) -> None:
        pg = _pygame()
        pg.display.init()  # the event queue lives in the video subsystem (dummy driver when headless)
        pg.joystick.init()
        if pg.joystick.get_count() <= self.index:
            raise DeviceDisconnectedError(f"no gamepad at index {self.index} ({pg.joystick.get_count()} attached)")
        self._joystick = pg.joystick.Joystick(self.index)
        self.instance_id = self._joystick.get_instance_id()

    def close(self) -> None:
        if self._joystick is not None:
            _pygame().joystick.quit()
            self._joystick = None

    def read(self, now_s: float) -> list[tuple[float, Any]]:
        pg = _pygame()
        if self._joystick is None:  # removed earlier: SDL re-enumerates pads on its own; reopen when it is back
            pg.event.pump()
            self.open()
            return [(now_s, None)]
        events = pg.event.get([pg.JOYAXISMOTION, pg.JOYBUTTONDOWN, pg.JOYBUTTONUP, pg.JOYHATMOTION,
                               pg.JOYDEVICEADDED, pg.JOYDEVICEREMOVED])
        inputs: list[tuple[float, Any]] = [(now_s, e) for e in events]
        if any(e.type == pg.JOYDEVICEREMOVED and e.instance_id == self.instance_id for e in events):
            self.close()
            raise DeviceDisconnectedError("gamepad removed")
        inputs.append((now_s, None))  # heartbeat: attached and pumped
        return inputs
