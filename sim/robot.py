"""The twin as a robot backend: the same :class:`controllers.interface.RobotInterface` the real arm has.

A Cartesian TCP target is turned into joint targets by damped-least-squares IK (linearised at the previous
joint target, so it converges over ticks rather than chasing the lagging measured pose) and tracked by the
joint servos of :mod:`sim.scene`, as a joint impedance controller would on the robot. ``wait_for_tick``
advances physics by one control period: in the twin, time only moves when the loop asks it to.
"""

from __future__ import annotations

import mujoco
import numpy as np

from controllers.interface import CartesianTarget, RobotState
from geometry.transforms import matrix_to_quat_xyzw, quat_xyzw_to_matrix
from hardware_configs.schema import CellConfig
from sim.scene import ARM_JOINTS

GRIPPER_CTRL_CLOSED = 255.0
# MuJoCo's checks for a diverged state: it warns, then resets mjData itself (time back to 0, every body at its
# model pose) and steps on, so a blowup would silently teleport the scene in the middle of an episode.
DIVERGENCE_WARNINGS = (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQVEL,
                       mujoco.mjtWarning.mjWARN_BADQPOS)
GRIPPER_DRIVER_CLOSED_RAD = 0.8
IK_DAMPING = 1e-3
IK_NULLSPACE_GAIN = 0.05


def _orientation_error(rot_target: np.ndarray, rot_current: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) taking ``rot_current`` to ``rot_target``."""
    err = rot_target @ rot_current.T
    q = matrix_to_quat_xyzw(err)
    sin_half = np.linalg.norm(q[:3])
    if sin_half < 1e-12:
        return np.zeros(3)
    return q[:3] / sin_half * 2.0 * np.arctan2(sin_half, q[3])


class TwinRobot:
    """MuJoCo arm + gripper behind the robot interface. Owns nothing but references to model and data."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, cell: CellConfig):
        self.model, self.data, self.cell = model, data, cell
        self.control_period_s = 1.0 / cell.rates.control_hz
        self.physics_steps_per_tick = max(1, round(self.control_period_s / model.opt.timestep))
        self._qpos_ids = np.array([model.jnt_qposadr[model.joint(name).id] for name in ARM_JOINTS])
        self._dof_ids = np.array([model.jnt_dofadr[model.joint(name).id] for name in ARM_JOINTS])
        self._arm_actuators = np.array([model.actuator(f"actuator{i}").id for i in range(1, 8)])
        self._gripper_actuator = model.actuator("fingers_actuator").id
        self._gripper_joint_qpos = model.jnt_qposadr[model.joint("right_driver_joint").id]
        self._tcp_site = model.site("tcp").id
        self._lower = np.array([j.lower_rad for j in cell.robot.joints])
        self._upper = np.array([j.upper_rad for j in cell.robot.joints])
        self._home = np.array(cell.robot.home_joint_positions_rad)
        self._scratch = mujoco.MjData(model)  # kinematics at the joint target, separate from physics
        self._jac_pos = np.zeros((3, model.nv))
        self._jac_rot = np.zeros((3, model.nv))
        self._q_target = self._home.copy()
        self._gripper_closure = 0.0
        self._divergences_at_reset, self._diverged = self._divergences(), False

    # ------------------------------------------------------------------ set-up
    def reset_to(self, joint_positions_rad: np.ndarray | None = None) -> None:
        """Place the arm (default: home) at rest with the gripper open; objects are placed by the task."""
        q = self._home if joint_positions_rad is None else np.asarray(joint_positions_rad, dtype=float)
        self.data.qpos[self._qpos_ids] = q
        self.data.qvel[self._dof_ids] = 0.0
        self._q_target = q.copy()
        self._gripper_closure = 0.0
        self._apply_controls()
        mujoco.mj_forward(self.model, self.data)
        self._divergences_at_reset, self._diverged = self._divergences(), False

    @property
    def physics_diverged(self) -> bool:
        """True once MuJoCo found a NaN or huge position, velocity or acceleration since the last
        :meth:`reset_to` and reset the state itself: the scene is gone, the episode must end (the real arm's
        counterpart is a controller fault)."""
        return self._diverged

    def _divergences(self) -> int:
        return sum(int(self.data.warning[w].number) for w in DIVERGENCE_WARNINGS)

    # ------------------------------------------------------------------ RobotInterface
    def read_state(self) -> RobotState:
        d = self.data
        rot = d.site_xmat[self._tcp_site].reshape(3, 3)
        driver = float(d.qpos[self._gripper_joint_qpos])
        width = self.cell.robot.gripper.max_width_m * float(np.clip(1.0 - driver / GRIPPER_DRIVER_CLOSED_RAD, 0, 1))
        return RobotState(
            stamp_s=float(d.time),
            joint_positions_rad=d.qpos[self._qpos_ids].copy(),
            joint_velocities_rad_s=d.qvel[self._dof_ids].copy(),
            tcp_position_m=d.site_xpos[self._tcp_site].copy(),
            tcp_quaternion_xyzw=matrix_to_quat_xyzw(rot),
            gripper_width_m=width,
            gripper_closure=self._gripper_closure,
        )

    def send_target(self, target: CartesianTarget) -> None:
        self._q_target = self.solve_ik(target.position_m, quat_xyzw_to_matrix(target.quaternion_xyzw))
        self._gripper_closure = float(np.clip(target.gripper_closure, 0.0, 1.0))
        self._apply_controls()

    def wait_for_tick(self) -> float:
        before_s = float(self.data.time)
        mujoco.mj_step(self.model, self.data, nstep=self.physics_steps_per_tick)
        # physics moves only here, so one look at MuJoCo's counters per tick keeps physics_diverged current
        self._diverged = self._diverged or self._divergences() > self._divergences_at_reset
        if self._diverged:  # MuJoCo's reset took the clock back to 0 too: the twin's clock runs on
            self.data.time = before_s + self.physics_steps_per_tick * self.model.opt.timestep
        return float(self.data.time)

    def stop(self) -> None:
        """Hold the measured joint configuration (the twin's brakes)."""
        self._q_target = self.data.qpos[self._qpos_ids].copy()
        self._apply_controls()

    # ------------------------------------------------------------------ internals
    def solve_ik(self, position_m: np.ndarray, rot: np.ndarray, iterations: int = 2) -> np.ndarray:
        """Joint target reaching the TCP pose, within joint limits, with a weak pull toward home."""
        m, s = self.model, self._scratch
        q = self._q_target.copy()
        for _ in range(iterations):
            s.qpos[self._qpos_ids] = q
            mujoco.mj_kinematics(m, s)
            mujoco.mj_comPos(m, s)
            err = np.concatenate([
                position_m - s.site_xpos[self._tcp_site],
                _orientation_error(rot, s.site_xmat[self._tcp_site].reshape(3, 3)),
            ])
            mujoco.mj_jacSite(m, s, self._jac_pos, self._jac_rot, self._tcp_site)
            J = np.vstack([self._jac_pos[:, self._dof_ids], self._jac_rot[:, self._dof_ids]])
            JJt = J @ J.T + IK_DAMPING * np.eye(6)
            dq = J.T @ np.linalg.solve(JJt, err)
            null = np.eye(7) - np.linalg.pinv(J, rcond=1e-4) @ J  # exact null space: no leak into the task
            dq += null @ (IK_NULLSPACE_GAIN * (self._home - q))
            q = np.clip(q + dq, self._lower, self._upper)
        return q

    def _apply_controls(self) -> None:
        self.data.ctrl[self._arm_actuators] = self._q_target
        self.data.ctrl[self._gripper_actuator] = GRIPPER_CTRL_CLOSED * self._gripper_closure
