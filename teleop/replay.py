"""Recorded teleop input streams: raw device input as JSON Lines, replayed through the live parsers.

A stream records what the hardware gave, not what we made of it, so replaying it exercises the same parsing,
mapping and liveness code as the live device. Format (one JSON object per line)::

    {"format": "manip_stack.teleop_stream", "version": 1, "device": "spacemouse", "meta": {...}}
    {"t": 0.00, "hid": "01 5e 01 00 00 00 00"}                      SpaceMouse HID report bytes (hex)
    {"t": 0.10, "evdev": [1, 17, 1]}                                 evdev (type, code, value)
    {"t": 0.10, "pygame": {"type": "JoyAxisMotion", "axis": 1, "value": -0.8, "instance_id": 0}}
    {"t": 0.10, "twist": {"linear": [0.1, 0, 0], "angular": [0, 0, 0]}}   ROS Twist values
    {"t": 0.10, "joy": {"axes": [0.0, 0.5], "buttons": [0, 1]}}            ROS Joy values
    {"t": 0.20, "alive": true}                                       heartbeat
    {"t": 0.30, "disconnect": "unplugged"}                           the device went away

``t`` is the session clock [s] when the input was read; replay feeds every record with ``t <= now_s``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from teleop.core import DeviceDisconnectedError, InputSource
from teleop.ros_values import JoyValues, TwistValues

STREAM_FORMAT = "manip_stack.teleop_stream"
STREAM_VERSION = 1
PAYLOAD_KEYS = ("hid", "evdev", "pygame", "twist", "joy", "alive", "disconnect")


def encode_record(t_s: float, payload: Any) -> dict[str, Any]:
    """JSON record of one raw input (the inverse of :func:`decode_payload`)."""
    record: dict[str, Any] = {"t": round(float(t_s), 6)}
    if payload is None:
        record["alive"] = True
    elif isinstance(payload, (bytes, bytearray)):
        record["hid"] = bytes(payload).hex(" ")
    elif isinstance(payload, TwistValues):
        record["twist"] = {"linear": list(payload.linear_m_s), "angular": list(payload.angular_rad_s)}
    elif isinstance(payload, JoyValues):
        record["joy"] = {"axes": list(payload.axes), "buttons": list(payload.buttons)}
    elif hasattr(payload, "code") and hasattr(payload, "sec"):  # evdev.InputEvent
        record["evdev"] = [int(payload.type), int(payload.code), int(payload.value)]
    elif hasattr(payload, "dict") and hasattr(payload, "type"):  # pygame.event.Event
        from teleop.gamepad import _pygame

        fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in payload.dict.items()}
        record["pygame"] = {"type": _pygame().event.event_name(payload.type), **fields}
    else:
        raise TypeError(f"cannot record teleop input of type {type(payload).__name__}")
    return record


def decode_payload(record: dict[str, Any]) -> Any:
    """The raw input object a live source would have produced (bytes, evdev/pygame events, ROS values)."""
    if "hid" in record:
        return bytes.fromhex(record["hid"])
    if "evdev" in record:
        import evdev

        ev_type, code, value = record["evdev"]
        t = float(record["t"])
        return evdev.InputEvent(int(t), round((t % 1.0) * 1e6) % 1_000_000, ev_type, code, value)
    if "pygame" in record:
        from teleop.gamepad import _pygame

        pg = _pygame()
        fields = dict(record["pygame"])
        type_name = fields.pop("type")
        event_type = next((getattr(pg, c) for c in dir(pg) if c.startswith("JOY")
                           and pg.event.event_name(getattr(pg, c)) == type_name), None)
        if event_type is None:
            raise ValueError(f"unknown pygame joystick event type {type_name!r}")
        if "value" in fields and isinstance(fields["value"], list):
            fields["value"] = tuple(fields["value"])  # hat values are tuples in pygame
        return pg.event.Event(event_type, fields)
    if "twist" in record:
        return TwistValues(tuple(record["twist"]["linear"]), tuple(record["twist"]["angular"]))
    if "joy" in record:
        return JoyValues(tuple(record["joy"]["axes"]), tuple(int(b) for b in record["joy"]["buttons"]))
    if "alive" in record:
        return None
    raise ValueError(f"teleop stream record has none of {PAYLOAD_KEYS}: {record}")


def read_stream(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, records) of a stream file; raises naming the file and line on a bad one."""
    path = Path(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        raise ValueError(f"{path}: empty teleop stream")
    header = json.loads(lines[0])
    if header.get("format") != STREAM_FORMAT:
        raise ValueError(f"{path}: line 1 is not a {STREAM_FORMAT} header: {lines[0][:80]}")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            record = json.loads(line)
            float(record["t"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: line {number}: bad record ({exc}): {line[:80]}") from None
        records.append(record)
    return header, records


def write_stream(path: str | Path, device: str, records: Iterable[dict[str, Any]],
                 meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": STREAM_FORMAT, "version": STREAM_VERSION, "device": device, "meta": meta or {}}
    with path.open("w") as f:
        f.write(json.dumps(header) + "\n")
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


class ReplaySource:
    """Feeds recorded records whose ``t <= now_s``; a ``disconnect`` record (or the end) disconnects."""

    def __init__(self, records: list[dict[str, Any]], disconnect_at_end: bool = True) -> None:
        self.records = sorted(records, key=lambda r: float(r["t"]))
        self.disconnect_at_end = disconnect_at_end
        self._next = 0

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> tuple[ReplaySource, dict[str, Any]]:
        header, records = read_stream(path)
        return cls(records, **kwargs), header

    def open(self) -> None:
        self._next = 0

    def close(self) -> None:
        pass

    @property
    def finished(self) -> bool:
        return self._next >= len(self.records)

    def read(self, now_s: float) -> Iterable[tuple[float, Any]]:
        if self.finished and self.disconnect_at_end:  # only after the last record was delivered
            raise DeviceDisconnectedError("end of the recorded teleop stream")
        while self._next < len(self.records) and float(self.records[self._next]["t"]) <= now_s + 1e-9:
            record = self.records[self._next]
            self._next += 1
            if "disconnect" in record:
                raise DeviceDisconnectedError(f"recorded disconnect at t={record['t']}: {record['disconnect']}")
            yield float(record["t"]), decode_payload(record)


class RecordingSource:
    """Wraps a live source and appends everything it reads (and its disconnects) to a stream file."""

    def __init__(self, inner: InputSource, path: str | Path, device: str, meta: dict[str, Any] | None = None):
        self.inner, self.path, self.device, self.meta = inner, Path(path), device, meta
        self._file: Any = None

    def open(self) -> None:
        self.inner.open()
        write_stream(self.path, self.device, [], self.meta)
        self._file = self.path.open("a")

    def close(self) -> None:
        self.inner.close()
        if self._file is not None:
            self._file.close()
            self._file = None

    def read(self, now_s: float) -> Iterable[tuple[float, Any]]:
        try:
            for t_s, payload in self.inner.read(now_s):
                self._write(encode_record(t_s, payload))
                yield t_s, payload
        except DeviceDisconnectedError as exc:
            self._write({"t": round(now_s, 6), "disconnect": str(exc)})
            raise

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
