"""The one robot interface every backend implements (twin, ROS 2 topics, direct drivers).

Commands are Cartesian targets of the tool centre point (TCP) in the robot base frame plus a gripper
closure; the backend turns them into whatever its controller takes (impedance equilibrium pose, joint
trajectory through IK, ...). Code above this layer never talks to a backend directly: it holds a
:class:`controllers.safe_robot.SafeRobot`, which filters every command first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class CartesianTarget:
    """Commanded TCP pose in the base frame and gripper closure (0 = open, 1 = closed)."""

    position_m: np.ndarray
    quaternion_xyzw: np.ndarray
    gripper_closure: float

    def as_vector(self) -> np.ndarray:
        """[x, y, z, qx, qy, qz, qw, gripper]."""
        return np.concatenate([self.position_m, self.quaternion_xyzw, [self.gripper_closure]])


@dataclass(frozen=True)
class RobotState:
    """What a backend reports each control tick; ``stamp_s`` is the backend's clock (sim or wall time)."""

    stamp_s: float
    joint_positions_rad: np.ndarray
    joint_velocities_rad_s: np.ndarray
    tcp_position_m: np.ndarray
    tcp_quaternion_xyzw: np.ndarray
    gripper_width_m: float
    gripper_closure: float = 0.0
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def tcp_target(self, gripper_closure: float | None = None) -> CartesianTarget:
        """A target that holds the current pose."""
        closure = self.gripper_closure if gripper_closure is None else gripper_closure
        return CartesianTarget(self.tcp_position_m.copy(), self.tcp_quaternion_xyzw.copy(), closure)


@runtime_checkable
class RobotInterface(Protocol):
    """A robot backend. Implementations: :class:`sim.robot.TwinRobot`; ROS 2 and direct drivers later."""

    def read_state(self) -> RobotState:
        """Latest state; never blocks for more than one control period."""
        ...

    def send_target(self, target: CartesianTarget) -> None:
        """Set the Cartesian target that the low-level controller tracks until the next call."""
        ...

    def wait_for_tick(self) -> float:
        """Block until the next control tick (the twin advances physics here); returns the new time [s]."""
        ...

    def stop(self) -> None:
        """Hold the current pose with the brakes/controller engaged; used by e-stop and faults."""
        ...
