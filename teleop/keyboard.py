"""Keyboard (and any evdev input device) through Linux evdev: works headless, over no display server.

The parser consumes ``evdev.InputEvent`` objects, live or replayed: ``EV_KEY`` gives channels named by key
(``KEY_W`` = 1 while held; value 2 is the kernel's auto-repeat, which keeps a held key fresh), ``EV_ABS``
gives axes normalised with the device's ``absinfo`` range, and ``SYN_DROPPED`` (the kernel's buffer overran)
releases everything, since key-ups may have been lost.

Reading ``/dev/input/event*`` needs root or the ``input`` group; a keyboard is found by its capabilities.
"""

from __future__ import annotations

from typing import Any

from teleop.core import ChannelParser, DeviceDisconnectedError

EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
SYN_DROPPED = 3
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2


def code_name(ev_type: int, code: int) -> str:
    """evdev's name for a code (``KEY_W``, ``BTN_SOUTH``, ``ABS_X``); aliases resolve to the first name."""
    from evdev import ecodes

    name = ecodes.bytype.get(ev_type, {}).get(code, f"CODE_{ev_type}_{code}")
    return name[0] if isinstance(name, (list, tuple)) else name


class EvdevParser(ChannelParser):
    """evdev events -> channels; ``abs_ranges`` maps an ABS code to its (min, max) from the device's absinfo."""

    def __init__(self, abs_ranges: dict[int, tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.abs_ranges = abs_ranges if abs_ranges is not None else {}  # shared with a live source's absinfo

    def feed(self, payload: Any) -> None:
        ev_type, code, value = payload.type, payload.code, payload.value
        if ev_type == EV_SYN and code == SYN_DROPPED:
            self.release_all()
        elif ev_type == EV_KEY:
            if value in (KEY_DOWN, KEY_REPEAT):
                self.set_channel(code_name(EV_KEY, code), 1.0)
            elif value == KEY_UP:
                self.set_channel(code_name(EV_KEY, code), 0.0)
        elif ev_type == EV_ABS:
            lo, hi = self.abs_ranges.get(code, (-32768, 32767))
            centre, half = (lo + hi) / 2.0, max((hi - lo) / 2.0, 1e-9)
            self.set_channel(code_name(EV_ABS, code), (value - centre) / half)


def find_keyboards() -> list[str]:
    """Paths of evdev devices that have letter keys and Enter (keyboards, not mice or power buttons)."""
    import evdev

    paths = []
    for path in evdev.list_devices():
        try:
            device = evdev.InputDevice(path)
        except OSError:
            continue
        keys = device.capabilities().get(EV_KEY, [])
        if evdev.ecodes.KEY_W in keys and evdev.ecodes.KEY_ENTER in keys:
            paths.append(path)
        device.close()
    return paths


class EvdevSource:
    """Non-blocking reads of one evdev device; ENODEV (unplugged) means disconnected."""

    def __init__(self, path: str | None = None, grab: bool = False) -> None:
        self.path, self.grab = path, grab
        self._device: Any = None
        self._next_reopen_s = 0.0
        self.abs_ranges: dict[int, tuple[int, int]] = {}

    def open(self) -> None:
        import evdev

        path = self.path
        if path is None:
            found = find_keyboards()
            if not found:
                raise DeviceDisconnectedError("no keyboard among /dev/input/event*: need root or the 'input' group")
            path = found[0]
        try:
            self._device = evdev.InputDevice(path)
        except OSError as exc:
            raise DeviceDisconnectedError(f"cannot open {path}: {exc}") from exc
        if self.grab:  # keys typed for the robot do not also reach the terminal
            self._device.grab()
        for code, info in self._device.capabilities(absinfo=True).get(EV_ABS, []):
            self.abs_ranges[code] = (info.min, info.max)

    def close(self) -> None:
        if self._device is not None:
            try:
                if self.grab:
                    self._device.ungrab()
            except OSError:
                pass
            self._device.close()
            self._device = None

    def read(self, now_s: float) -> list[tuple[float, Any]]:
        if self._device is None:  # unplugged earlier: look for it again, once a second
            if now_s < self._next_reopen_s:
                raise DeviceDisconnectedError("evdev device not attached")
            self._next_reopen_s = now_s + 1.0
            self.open()
            return [(now_s, None)]
        try:
            return [(now_s, event) for event in self._device.read()]
        except BlockingIOError:
            return []
        except OSError as exc:  # ENODEV after unplugging
            self.close()
            raise DeviceDisconnectedError(f"evdev read failed: {exc}") from exc
