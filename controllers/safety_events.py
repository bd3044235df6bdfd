"""The safety filter's events: their names, and a counter that logs them without flooding a 100 Hz loop.

Each flag in :data:`SAFETY_EVENT_KINDS` (clock faults and resyncs, control gaps, refusals, steps from outside
the box, e-stop latch, hold and reset, watchdog holds) is counted once per call that reports it and logged at
WARNING on the ``controllers.safety`` logger: the first one at once, then at most one line per kind every
:data:`LOG_EVERY_CALLS` calls, with the number since the last line, so a rare event is never lost in a
stream of others. A node publishes the counts (``controller_node``'s ``~/safety_events``).
"""

from __future__ import annotations

import logging
from typing import Final

logger = logging.getLogger("controllers.safety")

NONFINITE_REJECTED: Final = "nonfinite_rejected"
MALFORMED_REJECTED: Final = "malformed_rejected"
CLOCK_FAULT: Final = "clock_fault"
CLOCK_RESYNC: Final = "clock_resync"
TIME_NOT_ADVANCING: Final = "time_not_advancing"
CONTROL_GAP: Final = "control_gap"
WORKSPACE_CLAMPED: Final = "workspace_clamped"
OUTSIDE_WORKSPACE: Final = "outside_workspace"
LINEAR_SPEED_LIMITED: Final = "linear_speed_limited"
ANGULAR_SPEED_LIMITED: Final = "angular_speed_limited"
LINEAR_ACCEL_LIMITED: Final = "linear_accel_limited"
ANGULAR_ACCEL_LIMITED: Final = "angular_accel_limited"
GRIPPER_CLIPPED: Final = "gripper_clipped"
ESTOP_HOLD: Final = "estop_hold"
STALE_HOLD: Final = "stale_hold"
SENSOR_HOLD: Final = "sensor_hold"
# Events that are no flag of a result: reported by trigger_estop / reset_estop, or by a node (record_event).
ESTOP_LATCHED: Final = "estop_latched"
ESTOP_RESET: Final = "estop_reset"
UPSTREAM_REJECTED: Final = "upstream_rejected"

VIOLATION_KINDS: Final[tuple[str, ...]] = (
    NONFINITE_REJECTED,
    MALFORMED_REJECTED,
    CLOCK_FAULT,
    CLOCK_RESYNC,
    TIME_NOT_ADVANCING,
    CONTROL_GAP,
    WORKSPACE_CLAMPED,
    OUTSIDE_WORKSPACE,
    LINEAR_SPEED_LIMITED,
    ANGULAR_SPEED_LIMITED,
    LINEAR_ACCEL_LIMITED,
    ANGULAR_ACCEL_LIMITED,
    GRIPPER_CLIPPED,
    ESTOP_HOLD,
    STALE_HOLD,
    SENSOR_HOLD,
)
SAFETY_EVENT_KINDS: Final[tuple[str, ...]] = (
    CLOCK_FAULT,
    CLOCK_RESYNC,
    CONTROL_GAP,
    NONFINITE_REJECTED,
    MALFORMED_REJECTED,
    UPSTREAM_REJECTED,
    OUTSIDE_WORKSPACE,
    ESTOP_LATCHED,
    ESTOP_HOLD,
    ESTOP_RESET,
    STALE_HOLD,
    SENSOR_HOLD,
)

LOG_EVERY_CALLS: Final = 200  # 2 s at 100 Hz


class SafetyEventLog:
    """Counts of safety events since start, and their rate-limited WARNING lines."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(SAFETY_EVENT_KINDS, 0)
        self.calls = 0  # filter calls so far: the clock of the rate limit
        self._details: dict[str, str] = {}  # why the current call raised an event, for its log line
        self._unlogged: dict[str, tuple[int, str]] = {}  # kind -> (events since its last line, latest detail)
        self._logged_at: dict[str, int] = {}  # kind -> call count at its last line

    def explain(self, kind: str, detail: str) -> None:
        """Why the current call raises ``kind``: shown in its log line if one is due."""
        self._details[kind] = detail

    def finish_call(self, violations: tuple[str, ...], hold_reason: str | None = None) -> None:
        """Count the call's safety events (a hold's reason is one, whatever it is) and log what is due."""
        for kind in violations:
            if kind in SAFETY_EVENT_KINDS or kind == hold_reason:
                self._note(kind)
        self._details.clear()
        self.report()

    def record(self, kind: str, detail: str = "") -> None:
        """Count and log one event found outside a filter call (e-stop, a node's refused message)."""
        self._details[kind] = detail
        self._note(kind)
        self.report()

    def _note(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        since, _ = self._unlogged.get(kind, (0, ""))
        self._unlogged[kind] = (since + 1, self._details.get(kind, ""))

    def report(self) -> None:
        """One WARNING per kind with events not yet logged, unless that kind had a line in the last calls."""
        for kind in list(self._unlogged):
            last = self._logged_at.get(kind)
            if last is not None and self.calls - last < LOG_EVERY_CALLS:
                continue
            since, detail = self._unlogged.pop(kind)
            self._logged_at[kind] = self.calls
            logger.warning(
                "safety event %s%s (%d since its last report, %d in all)",
                kind,
                f": {detail}" if detail else "",
                since,
                self.counts[kind],
            )
