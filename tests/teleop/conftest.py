"""Recorded input streams are replayed through ``make_device``: the registry's real parser, mapping and watchdog."""

from __future__ import annotations

import pytest

from teleop import TeleopConfig, TeleopDevice, make_device
from teleop.replay import ReplaySource


def replayed(kind: str, records: list[dict], config: TeleopConfig | None = None) -> TeleopDevice:
    """A connected device of ``kind`` fed from ``records`` (stream format of teleop.replay)."""
    return make_device(kind, config=config, source=ReplaySource(records, disconnect_at_end=False)).connect()


@pytest.fixture
def replay_device():
    return replayed
