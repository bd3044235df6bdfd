"""From the runner's timed delta actions to timed absolute targets for the controller.

On the robot the runner's pending actions become waypoints of :class:`controllers.interpolation.TimedWaypoints`
(``extend`` keeps the trajectory continuous and drops waypoints already past), which is sampled at the
control rate and sent through :class:`controllers.safe_robot.SafeRobot`. The deltas accumulate from the
target commanded now, as in the twin's ``step``; action ``k``, due at ``t_k``, is reached at ``t_k + period``.
"""

from __future__ import annotations

from collections.abc import Sequence

from controllers.actions import apply_delta_action
from controllers.interface import CartesianTarget
from controllers.interpolation import Waypoint
from robot_learning.runtime.policy_runner import TimedAction


def delta_actions_to_waypoints(start: CartesianTarget, actions: Sequence[TimedAction],
                               period_s: float) -> list[Waypoint]:
    """Accumulated absolute targets of ``actions`` (7-D deltas), each timed at the end of its period."""
    target, waypoints = start, []
    for item in actions:
        target = apply_delta_action(target, item.action)
        waypoints.append((item.due_s + period_s, target))
    return waypoints
