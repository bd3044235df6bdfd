"""3Dconnexion SpaceMouse over HID (the ``hidapi`` library), parsing the devices' own report formats.

Report formats (numbered reports: byte 0 is the report id, values are little-endian int16):

- id 1, 7 bytes: translation ``tx ty tz`` (older pucks: SpaceNavigator, SpaceMouse Pro/Compact/USB);
- id 2, 7 bytes: rotation ``rx ry rz`` (same devices, sent as a separate report);
- id 1, 13 bytes: translation and rotation in one report (SpaceMouse Wireless, Pro Wireless, Enterprise,
  Universal Receiver);
- id 3: button bitmask, little-endian over the remaining bytes (bit ``i`` -> channel ``btn{i}``).

HID axes: x right, y toward the operator, z down, rotations right-handed about them; full deflection is about
+-350 counts. While the cap is deflected the device streams reports continuously (tens of Hz), and sends one
all-zero report when released: so deflection with no report for ``stale_after_s`` means a lost report.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from teleop.core import ChannelParser, DeviceDisconnectedError

FULL_SCALE_COUNTS = 350.0
TRANSLATION_CHANNELS = ("tx", "ty", "tz")
ROTATION_CHANNELS = ("rx", "ry", "rz")
REPORT_TRANSLATION, REPORT_ROTATION, REPORT_BUTTONS = 1, 2, 3
COMBINED_REPORT_BYTES = 13
# (vendor id, product id) -> model, for discovery and logs.
KNOWN_DEVICES: dict[tuple[int, int], str] = {
    (0x046D, 0xC626): "SpaceNavigator",
    (0x046D, 0xC627): "SpaceExplorer",
    (0x046D, 0xC62B): "SpaceMouse Pro",
    (0x256F, 0xC62E): "SpaceMouse Wireless (cable)",
    (0x256F, 0xC62F): "SpaceMouse Wireless (receiver)",
    (0x256F, 0xC631): "SpaceMouse Pro Wireless (cable)",
    (0x256F, 0xC632): "SpaceMouse Pro Wireless (receiver)",
    (0x256F, 0xC633): "SpaceMouse Enterprise",
    (0x256F, 0xC635): "SpaceMouse Compact",
    (0x256F, 0xC63A): "SpaceMouse Wireless",
    (0x256F, 0xC641): "SpaceMouse USB",
    (0x256F, 0xC652): "3Dconnexion Universal Receiver",
}


class SpaceMouseParser(ChannelParser):
    """HID reports -> channels ``tx ty tz rx ry rz`` (raw HID axes, normalised) and ``btn0``, ``btn1`` ..."""

    def __init__(self) -> None:
        super().__init__()
        self.n_reports = 0
        self.n_ignored = 0

    def feed(self, payload: bytes | Sequence[int]) -> None:
        report = bytes(payload)
        if not report:
            return
        report_id = report[0]
        if report_id == REPORT_TRANSLATION and len(report) >= COMBINED_REPORT_BYTES:
            self._axes(TRANSLATION_CHANNELS + ROTATION_CHANNELS, report, 6)
        elif report_id == REPORT_TRANSLATION and len(report) >= 7:
            self._axes(TRANSLATION_CHANNELS, report, 3)
        elif report_id == REPORT_ROTATION and len(report) >= 7:
            self._axes(ROTATION_CHANNELS, report, 3)
        elif report_id == REPORT_BUTTONS and len(report) >= 2:
            mask = int.from_bytes(report[1:], "little")
            for bit in range(8 * (len(report) - 1)):
                name = f"btn{bit}"
                pressed = bool(mask >> bit & 1)
                if pressed or name in self.channels:
                    self.set_channel(name, 1.0 if pressed else 0.0)
        else:  # LED state, battery level (0x17) and vendor reports carry no motion
            self.n_ignored += 1
            return
        self.n_reports += 1

    def _axes(self, names: tuple[str, ...], report: bytes, count: int) -> None:
        for name, counts in zip(names, struct.unpack_from(f"<{count}h", report, 1), strict=True):
            self.set_channel(name, counts / FULL_SCALE_COUNTS)


# ------------------------------------------------------------------------------------ report encoding


def _counts(value: float) -> int:
    return round(max(-1.0, min(1.0, value)) * FULL_SCALE_COUNTS)


def translation_report(tx: float, ty: float, tz: float) -> bytes:
    """Report id 1 of the older pucks, from normalised HID axes (what a device sends; for streams and tests)."""
    return struct.pack("<B3h", REPORT_TRANSLATION, _counts(tx), _counts(ty), _counts(tz))


def rotation_report(rx: float, ry: float, rz: float) -> bytes:
    return struct.pack("<B3h", REPORT_ROTATION, _counts(rx), _counts(ry), _counts(rz))


def combined_report(axes: Sequence[float]) -> bytes:
    """The 13-byte report id 1 of the newer devices: ``tx ty tz rx ry rz``."""
    return struct.pack("<B6h", REPORT_TRANSLATION, *(_counts(v) for v in axes))


def button_report(pressed_bits: Iterable[int], n_bytes: int = 1) -> bytes:
    mask = sum(1 << bit for bit in pressed_bits)
    return bytes([REPORT_BUTTONS]) + mask.to_bytes(n_bytes, "little")


# ------------------------------------------------------------------------------------ live source


def find_spacemice() -> list[dict[str, Any]]:
    """hidapi enumeration entries of attached 3Dconnexion devices (multi-interface devices: interface 0)."""
    import hid

    found = []
    for info in hid.enumerate():
        key = (info["vendor_id"], info["product_id"])
        if key in KNOWN_DEVICES and info.get("interface_number", 0) in (0, -1):
            found.append({**info, "model": KNOWN_DEVICES[key]})
    return found


class HidSource:
    """Non-blocking reads from a SpaceMouse through hidapi; a read error means the device is gone."""

    def __init__(self, path: bytes | None = None, vendor_id: int | None = None, product_id: int | None = None,
                 max_reports_per_read: int = 256) -> None:
        self.path, self.vendor_id, self.product_id = path, vendor_id, product_id
        self.max_reports_per_read = max_reports_per_read
        self.model = "SpaceMouse"
        self._device: Any = None
        self._next_reopen_s = 0.0

    def open(self) -> None:
        import hid

        path = self.path
        if path is None and self.vendor_id is None:
            found = find_spacemice()
            if not found:
                raise DeviceDisconnectedError(
                    "no 3Dconnexion device found by hidapi; check the cable/receiver and the udev rule giving "
                    "your user read access to /dev/hidraw* (or run with the spacenavd daemon stopped)")
            path, self.model = found[0]["path"], found[0]["model"]
        device = hid.device()
        try:
            if path is not None:
                device.open_path(path)
            else:
                device.open(self.vendor_id, self.product_id)
        except OSError as exc:
            raise DeviceDisconnectedError(f"cannot open the SpaceMouse: {exc}") from exc
        device.set_nonblocking(1)
        self._device = device

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    def read(self, now_s: float) -> list[tuple[float, Any]]:
        if self._device is None:  # unplugged earlier: look for it again, once a second
            if now_s < self._next_reopen_s:
                raise DeviceDisconnectedError("SpaceMouse not attached")
            self._next_reopen_s = now_s + 1.0
            self.open()
            return [(now_s, None)]  # attached again: a heartbeat tells the device so
        reports = []
        try:
            for _ in range(self.max_reports_per_read):
                data = self._device.read(64)
                if not data:
                    break
                reports.append((now_s, bytes(data)))
        except (OSError, ValueError) as exc:  # hidapi raises on a vanished hidraw node
            self.close()
            raise DeviceDisconnectedError(f"SpaceMouse read failed: {exc}") from exc
        return reports
