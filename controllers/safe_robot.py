"""A robot wrapper that puts the safety filter, the command watchdog and the e-stop in front of a backend.

``SafeRobot`` implements :class:`controllers.interface.RobotInterface` itself, so code above this layer
holds a ``SafeRobot`` and has no way to send an unfiltered target. Time comes from the backend's clock
(``read_state().stamp_s`` and ``wait_for_tick()``), so the twin's sim time works like wall time.
"""

from __future__ import annotations

import logging

from controllers.interface import CartesianTarget, RobotInterface, RobotState
from controllers.safety import (
    ANGULAR_ACCEL_LIMITED,
    ANGULAR_SPEED_LIMITED,
    LINEAR_ACCEL_LIMITED,
    LINEAR_SPEED_LIMITED,
    SAFETY_EVENT_KINDS,
    TIME_NOT_ADVANCING,
    VIOLATION_KINDS,
    FilterResult,
    SafetyFilter,
)
from hardware_configs.schema import CellConfig

logger = logging.getLogger(__name__)
# Shaping a command to the speed and acceleration limits is routine; everything else deserves a warning.
ROUTINE_KINDS = frozenset(
    {LINEAR_SPEED_LIMITED, ANGULAR_SPEED_LIMITED, LINEAR_ACCEL_LIMITED, ANGULAR_ACCEL_LIMITED, TIME_NOT_ADVANCING}
)


class SafeRobot:
    """Every command filtered; a silent upstream or a latched e-stop makes the arm hold.

    ``violation_counts`` counts each limit that changed a command, per kind, for telemetry; the log gets
    one line the first time each kind happens, not one per control tick. Safety events (clock faults,
    refusals, e-stop, watchdog) are counted and logged by the filter itself: see :attr:`event_counts`.
    """

    def __init__(self, robot: RobotInterface, cell: CellConfig) -> None:
        self._robot = robot
        self.safety_filter = SafetyFilter(cell)
        self.last_result: FilterResult | None = None
        self.violation_counts: dict[str, int] = dict.fromkeys(VIOLATION_KINDS, 0)

    def read_state(self) -> RobotState:
        return self._robot.read_state()

    def send_target(self, target: CartesianTarget) -> None:
        """Filter ``target`` at the backend's current time and forward what is allowed."""
        state = self._robot.read_state()
        self.safety_filter.mark_fresh(state.stamp_s)
        self._forward(self.safety_filter.filter(target, state.stamp_s, measured=state))

    def wait_for_tick(self) -> float:
        """Wait for the backend's tick; then, if upstream went silent or the e-stop is latched, hold."""
        now_s = self._robot.wait_for_tick()
        if self.safety_filter.estop_latched or self.safety_filter.is_stale(now_s):
            measured = None if self.safety_filter.initialised else self._robot.read_state()
            self._forward(self.safety_filter.hold(now_s, measured=measured))
        return now_s

    def stop(self) -> None:
        """Stop the backend, then restart the filter from where the arm actually stopped, at rest."""
        self._robot.stop()
        self.safety_filter.reset(self._robot.read_state())

    def estop(self, reason: str) -> None:
        """Latch the e-stop (every later output is the hold pose) and stop the backend."""
        if not self.safety_filter.estop_latched:
            logger.error("e-stop triggered: %s", reason)
        self.safety_filter.trigger_estop(reason)
        self._robot.stop()

    def reset_estop(self) -> None:
        """Clear the e-stop and restart from the measured state; commands must arrive again to move."""
        reason = self.safety_filter.estop_reason
        self.safety_filter.reset_estop(self._robot.read_state())
        logger.warning("e-stop reset (was: %s)", reason)

    @property
    def estop_reason(self) -> str | None:
        return self.safety_filter.estop_reason

    @property
    def event_counts(self) -> dict[str, int]:
        """The filter's safety-event counters (a copy), for a node to publish."""
        return dict(self.safety_filter.event_counts)

    def _forward(self, result: FilterResult) -> None:
        self.last_result = result
        for kind in result.violations:
            count = self.violation_counts.get(kind, 0) + 1
            self.violation_counts[kind] = count
            if count == 1 and kind not in SAFETY_EVENT_KINDS:  # the filter logs those, rate-limited
                level = logging.DEBUG if kind in ROUTINE_KINDS else logging.WARNING
                logger.log(level, "safety filter: first %s (later ones are only counted in violation_counts)", kind)
        self._robot.send_target(result.target)
