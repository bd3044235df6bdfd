"""Specification of the safety filter's events: every one counted, every kind logged at WARNING, no flood.

A 100 Hz loop that keeps receiving bad commands must not write a line per tick, yet the first occurrence of
anything safety-relevant, and any event after a quiet spell, must reach the log at once.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from controllers.interface import CartesianTarget, RobotState
from controllers.safe_robot import SafeRobot
from controllers.safety import (
    CLOCK_FAULT,
    ESTOP_LATCHED,
    ESTOP_RESET,
    LOG_EVERY_CALLS,
    NONFINITE_REJECTED,
    OUTSIDE_WORKSPACE,
    SAFETY_EVENT_KINDS,
    STALE_HOLD,
    UPSTREAM_REJECTED,
    SafetyFilter,
)
from hardware_configs import load_cell

CELL = load_cell("franka_3cam")
PERIOD_S = 1.0 / CELL.rates.control_hz
CENTRE_M = (np.array(CELL.workspace.min_m) + np.array(CELL.workspace.max_m)) / 2
DOWN_XYZW = np.array([1.0, 0.0, 0.0, 0.0])
GOOD = CartesianTarget(CENTRE_M, DOWN_XYZW, 0.0)
NAN = CartesianTarget(np.array([np.nan, 0.0, 0.3]), DOWN_XYZW, 0.0)


def state_at(position_m=CENTRE_M, stamp_s: float = 0.0) -> RobotState:
    return RobotState(stamp_s, np.zeros(7), np.zeros(7), np.array(position_m, float), DOWN_XYZW.copy(), 0.085)


def started() -> SafetyFilter:
    safety = SafetyFilter(CELL)
    safety.reset(state_at())
    return safety


def warnings_about(caplog, kind: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "controllers.safety" and r.levelno == logging.WARNING and kind in r.getMessage()
    ]


def test_counters_start_at_zero_for_every_kind():
    assert started().event_counts == dict.fromkeys(SAFETY_EVENT_KINDS, 0)


def test_a_stream_of_bad_commands_is_counted_each_time_and_logged_once_per_interval(caplog):
    safety = started()
    calls = 5 * LOG_EVERY_CALLS
    with caplog.at_level(logging.WARNING, logger="controllers.safety"):
        for k in range(1, calls + 1):
            safety.filter(NAN, k * PERIOD_S)
        first = warnings_about(caplog, NONFINITE_REJECTED)
    assert safety.event_counts[NONFINITE_REJECTED] == calls
    assert 1 < len(first) <= calls // LOG_EVERY_CALLS + 1
    assert "1 in all" in first[0]
    assert f"{LOG_EVERY_CALLS} since its last report" in first[1], "later lines say how many were not logged"


def test_an_event_after_a_quiet_spell_is_logged_at_once(caplog):
    safety = started()
    with caplog.at_level(logging.WARNING, logger="controllers.safety"):
        safety.trigger_estop("operator")
        safety.reset_estop(state_at(stamp_s=0.0))
        for k in range(1, LOG_EVERY_CALLS + 1):
            safety.filter(GOOD, k * PERIOD_S)
        safety.trigger_estop("second press")
    latched = warnings_about(caplog, ESTOP_LATCHED)
    assert len(latched) == 2 and "second press" in latched[1]
    assert len(warnings_about(caplog, ESTOP_RESET)) == 1
    assert safety.event_counts[ESTOP_LATCHED] == 2 and safety.event_counts[ESTOP_RESET] == 1


def test_an_event_within_the_interval_is_reported_with_the_next_line_of_its_kind(caplog):
    safety = started()
    with caplog.at_level(logging.WARNING, logger="controllers.safety"):
        safety.filter(GOOD, 1e18)  # logged at once
        safety.filter(GOOD, PERIOD_S)
        safety.filter(GOOD, -1e18)  # counted; its line waits for the interval
        assert len(warnings_about(caplog, CLOCK_FAULT)) == 1
        for k in range(2, LOG_EVERY_CALLS + 2):
            safety.filter(GOOD, k * PERIOD_S)
    lines = warnings_about(caplog, CLOCK_FAULT)
    assert len(lines) == 2 and "1 since its last report, 2 in all" in lines[1]


@pytest.mark.parametrize(
    ("provoke", "kind"),
    [
        (lambda f: f.filter(GOOD, 1e18), CLOCK_FAULT),
        (lambda f: f.filter(GOOD, None), CLOCK_FAULT),
        (lambda f: f.filter(NAN, PERIOD_S), NONFINITE_REJECTED),
        (lambda f: f.filter(CartesianTarget(np.full(3, 0.5 + 1j), DOWN_XYZW, 0.0), PERIOD_S), "malformed_rejected"),
        (lambda f: f.hold(PERIOD_S), STALE_HOLD),
        (lambda f: f.trigger_estop("button"), ESTOP_LATCHED),
        (lambda f: f.record_event(UPSTREAM_REJECTED, "action has 6 values"), UPSTREAM_REJECTED),
    ],
    ids=["future_stamp", "no_stamp", "nan", "complex", "watchdog", "estop", "upstream"],
)
def test_each_safety_event_is_counted_and_logged_at_warning(caplog, provoke, kind):
    safety = started()
    with caplog.at_level(logging.WARNING, logger="controllers.safety"):
        provoke(safety)
    assert safety.event_counts[kind] == 1
    assert len(warnings_about(caplog, kind)) == 1


def test_a_step_from_outside_the_box_is_an_event():
    safety = SafetyFilter(CELL)
    safety.reset(state_at(CENTRE_M + np.array([0.0, 0.0, -1.0])))
    safety.filter(GOOD, PERIOD_S)
    assert safety.event_counts[OUTSIDE_WORKSPACE] == 1


class StillRobot:
    """A backend that stays where it is and ticks one control period per call."""

    def __init__(self) -> None:
        self.ticks = 0

    def read_state(self) -> RobotState:
        return state_at(stamp_s=self.ticks * PERIOD_S)

    def send_target(self, target: CartesianTarget) -> None:
        pass

    def wait_for_tick(self) -> float:
        self.ticks += 1
        return self.ticks * PERIOD_S

    def stop(self) -> None:
        pass


def test_safe_robot_exposes_the_filters_counters_and_does_not_log_them_twice(caplog):
    robot = SafeRobot(StillRobot(), CELL)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            robot.send_target(NAN)
            robot.wait_for_tick()
    assert robot.event_counts[NONFINITE_REJECTED] == 3
    assert sum(NONFINITE_REJECTED in r.getMessage() for r in caplog.records) == 1
