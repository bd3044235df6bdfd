"""The meaning of an action: what its seven numbers are, how far one may move the arm, and where it sends the TCP.

An action is given once per policy step (``cell.rates.policy_hz``), in the robot base frame::

    [dx, dy, dz]  TCP translation [m]
    [rx, ry, rz]  TCP rotation vector [rad], applied on the left (R_goal = R(r) @ R_base)
    gripper       closure target in [0, 1] (0 open, 1 closed)

The deltas move a *goal* that accumulates (so motion the safety filter delays is not lost) but never runs
more than one policy step of motion ahead of the pose being commanded (no wind-up) and never leaves the
workspace box. The twin's env, ``controller_node``'s core, the teleop devices
and the bag importer all apply actions through this module, so an action means the same thing everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from controllers.interface import CartesianTarget
from controllers.interpolation import interpolate_pose
from geometry.transforms import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat_xyzw,
    quat_xyzw_to_matrix,
    rotation_angle_between,
)
from hardware_configs.schema import CellConfig

# Names of the action dimensions; on ROS an action (chunk) travels as a JointTrajectory with these "joints".
ACTION_NAMES: tuple[str, ...] = ("dx", "dy", "dz", "rx", "ry", "rz", "gripper")
ACTION_UNITS: tuple[str, ...] = ("m", "m", "m", "rad", "rad", "rad", "1")
ACTION_DIM = len(ACTION_NAMES)
ACTION_DTYPE = np.dtype(np.float32)
ACTION_FRAME = "base"
ACTION_DESCRIPTION = "TCP delta translation, delta rotation vector, gripper closure target (0 open, 1 closed)"
DELTA_DIMS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)  # relative dimensions: holding still means zeros there
GRIPPER_DIM = 6


@dataclass(frozen=True)
class ActionLimits:
    """What one action may ask of a cell: motion per policy step and the box the goal stays in.

    ``max_translation_m`` and ``max_rotation_rad`` bound each axis of one step (the cell's Cartesian speed
    limits times the policy period); ``ticks_per_action`` is how many control ticks one step is spread over.
    """

    max_translation_m: float
    max_rotation_rad: float
    workspace_min_m: np.ndarray
    workspace_max_m: np.ndarray
    ticks_per_action: int

    @classmethod
    def from_cell(cls, cell: CellConfig) -> ActionLimits:
        rates, limits = cell.rates, cell.motion_limits
        return cls(
            max_translation_m=limits.max_linear_speed_m_s / rates.policy_hz,
            max_rotation_rad=limits.max_angular_speed_rad_s / rates.policy_hz,
            workspace_min_m=np.asarray(cell.workspace.min_m, dtype=float),
            workspace_max_m=np.asarray(cell.workspace.max_m, dtype=float),
            ticks_per_action=round(rates.control_hz / rates.policy_hz),
        )

    @property
    def high(self) -> np.ndarray:
        """(7,) float32 upper bound of an action (the gym action space's ``high``)."""
        return np.array([self.max_translation_m] * 3 + [self.max_rotation_rad] * 3 + [1.0], dtype=ACTION_DTYPE)

    @property
    def low(self) -> np.ndarray:
        """(7,) float32 lower bound: the negated deltas, gripper closure 0."""
        low = -self.high
        low[GRIPPER_DIM] = 0.0
        return low


def as_action(action: np.ndarray, finite: bool = False) -> np.ndarray:
    """``action`` as a (7,) float64 vector; ValueError naming the dimensions if it has another shape (or, with
    ``finite``, a NaN or infinity: the control core refuses those, the twin lets its safety filter hold)."""
    vector = np.asarray(action, dtype=np.float64).reshape(-1)
    if vector.shape != (ACTION_DIM,) or (finite and not np.all(np.isfinite(vector))):
        wanted = "finite values" if finite else "values"
        raise ValueError(f"action must have {ACTION_DIM} {wanted} [{' '.join(ACTION_NAMES)}], got {np.asarray(action)}"
                         f" (shape {np.shape(action)})")
    return vector


def hold_action(gripper_closure: float) -> np.ndarray:
    """(7,) float32 action that keeps the arm where it is commanded and the gripper at ``gripper_closure``."""
    action = np.zeros(ACTION_DIM, ACTION_DTYPE)
    action[GRIPPER_DIM] = gripper_closure
    return action


def apply_delta_action(base: CartesianTarget, action: np.ndarray) -> CartesianTarget:
    """The Cartesian target a 7-D delta action asks for, relative to ``base`` (unbounded)."""
    rot = axis_angle_to_matrix(action[3:6]) @ quat_xyzw_to_matrix(base.quaternion_xyzw)
    return CartesianTarget(base.position_m + action[:3], matrix_to_quat_xyzw(rot), float(action[6]))


def bounded_goal(goal: CartesianTarget, commanded: CartesianTarget, limits: ActionLimits) -> CartesianTarget:
    """``goal`` clipped to the workspace box and pulled back towards ``commanded`` (the target being sent now)
    until it is at most one policy step of motion ahead (sqrt(3) times the per-axis bound: a full diagonal)."""
    goal = CartesianTarget(np.clip(goal.position_m, limits.workspace_min_m, limits.workspace_max_m),
                           goal.quaternion_xyzw, float(np.clip(goal.gripper_closure, 0.0, 1.0)))
    lead_m = float(np.linalg.norm(goal.position_m - commanded.position_m))
    lead_rad = rotation_angle_between(quat_xyzw_to_matrix(goal.quaternion_xyzw),
                                      quat_xyzw_to_matrix(commanded.quaternion_xyzw))
    high = limits.high  # the action space's float32 bounds, the exact numbers the twin's data was collected under
    fraction = min(1.0, float(high[0]) * math.sqrt(3) / max(lead_m, 1e-12),
                   float(high[3]) * math.sqrt(3) / max(lead_rad, 1e-12))
    if fraction >= 1.0:
        return goal
    bounded = interpolate_pose(commanded, goal, fraction)
    return CartesianTarget(bounded.position_m, bounded.quaternion_xyzw, goal.gripper_closure)


def next_goal(goal: CartesianTarget, commanded: CartesianTarget, action: np.ndarray,
              limits: ActionLimits) -> CartesianTarget:
    """Where ``action`` moves the accumulated ``goal``, bounded against ``commanded`` (see the module docstring)."""
    return bounded_goal(apply_delta_action(goal, action), commanded, limits)


def delta_action_between(position_a_m: np.ndarray, quaternion_a_xyzw: np.ndarray, position_b_m: np.ndarray,
                         quaternion_b_xyzw: np.ndarray, gripper_closure: float) -> np.ndarray:
    """The (7,) float32 action that moves the TCP from pose a to pose b: the inverse of :func:`apply_delta_action`
    (how a recording without actions is given the motion that happened)."""
    rotvec = matrix_to_axis_angle(quat_xyzw_to_matrix(quaternion_b_xyzw) @ quat_xyzw_to_matrix(quaternion_a_xyzw).T)
    translation = np.asarray(position_b_m) - np.asarray(position_a_m)
    return np.concatenate([translation, rotvec, [gripper_closure]]).astype(ACTION_DTYPE)
