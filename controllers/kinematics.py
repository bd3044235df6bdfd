"""Inverse kinematics of the cell's arm, for backends whose low-level controller takes joint positions.

The arm is a kinematic MuJoCo model built here from the Panda's published kinematic parameters (Franka's
modified Denavit-Hartenberg table, FCI documentation) with the cell's joint limits and TCP offset: no meshes,
no gripper, nothing from ``sim/``, so the controllers stand alone (they need ``mujoco`` and ``mink``, not the
twin's assets). A test checks that its TCP pose matches the twin's for the same joints.

:meth:`ArmKinematics.solve` runs a few steps of ``mink``'s differential IK from the seed joints (the last
command, for continuity): a frame task pulls the TCP site to the target, a weak posture task towards the
cell's home pose settles the redundant degree of freedom, and the joint position and velocity limits of the
cell are hard constraints. The velocity limits bound the step of one call to ``max_velocity_rad_s`` times one
control period, so a streamed joint command never asks the robot for more than its joints may do; a far
target is reached over several ticks (the safety filter upstream keeps targets close anyway).
"""

from __future__ import annotations

import math

import mink
import mujoco
import numpy as np

from controllers.interface import CartesianTarget
from geometry.transforms import matrix_to_quat_xyzw, quat_xyzw_to_matrix, rotation_angle_between, xyzw_to_wxyz
from hardware_configs.schema import CellConfig, RobotModel

# (a_{i-1} [m], d_i [m], alpha_{i-1} [rad]) of joints 1..7: Franka's modified DH table of the Panda (and FR3).
PANDA_DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
)
PANDA_FLANGE_D_M = 0.107  # flange along joint 7's axis
# The flange frame the twin and its training data use (the menagerie Panda's "attachment", where the gripper is
# mounted) is turned 135 deg about joint 7's axis from Franka's flange frame; tcp_offset_m is given in it.
PANDA_FLANGE_YAW_RAD = 3 * math.pi / 4

TCP_SITE = "tcp"
QP_SOLVER = "daqp"  # mink's default dependency, dense and fast for 7 variables
POSITION_COST = 1.0  # per metre of TCP error
ORIENTATION_COST = 1.0  # per radian: 1 mm weighs as 1 mrad
POSTURE_COST = 1e-3  # per radian from home: only settles the redundant DOF, costs < 0.1 mm of TCP error
LM_DAMPING = 1e-6  # Levenberg-Marquardt damping: keeps steps bounded near singular poses


class IKError(RuntimeError):
    """The IK's quadratic program had no solution (numerically; the seed always satisfies the constraints)."""


class ModelMismatchError(RuntimeError):
    """The arm model's TCP at the measured joints is not where the robot reports its TCP."""


def _quat_wxyz_about_x(angle_rad: float) -> list[float]:
    return [math.cos(angle_rad / 2), math.sin(angle_rad / 2), 0.0, 0.0]


def build_arm_model(cell: CellConfig) -> mujoco.MjModel:
    """Kinematic MjModel of the cell's arm: link0 at the origin of the base frame, joints named as in the cell,
    sites ``flange`` and ``tcp``. Masses are nominal (MuJoCo needs them on moving bodies; IK does not)."""
    if cell.robot.model is not RobotModel.panda:
        raise ValueError(f"no kinematic parameters for robot model {cell.robot.model.value!r}; known: panda")
    spec = mujoco.MjSpec()
    spec.modelname = f"{cell.name}_arm_kinematics"
    spec.compiler.degree = False  # joint ranges in radians (MjSpec's default is degrees)
    parent = spec.worldbody.add_body(name="link0")
    for i, ((a_m, d_m, alpha_rad), joint) in enumerate(zip(PANDA_DH, cell.robot.joints, strict=True), start=1):
        # modified DH: T_{i-1,i} = RotX(alpha) TransX(a) RotZ(theta) TransZ(d), so the body sits at
        # (a, -d sin(alpha), d cos(alpha)) turned by RotX(alpha), its joint about its own z
        body = parent.add_body(name=f"link{i}", pos=[a_m, -d_m * math.sin(alpha_rad), d_m * math.cos(alpha_rad)],
                               quat=_quat_wxyz_about_x(alpha_rad), mass=1.0, inertia=[1e-3, 1e-3, 1e-3])
        body.add_joint(name=joint.name, type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1],
                       range=[joint.lower_rad, joint.upper_rad], limited=mujoco.mjtLimited.mjLIMITED_TRUE)
        parent = body
    yaw = PANDA_FLANGE_YAW_RAD
    flange = parent.add_body(name="flange", pos=[0.0, 0.0, PANDA_FLANGE_D_M],
                             quat=[math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
    flange.add_site(name="flange")
    flange.add_site(name=TCP_SITE, pos=list(cell.robot.tcp_offset_m))
    return spec.compile()


class ArmKinematics:
    """Forward and inverse kinematics of the cell's arm; TCP poses in the robot base frame."""

    def __init__(self, cell: CellConfig, iterations: int = 2, period_s: float | None = None) -> None:
        """``iterations`` differential-IK steps per :meth:`solve`; ``period_s`` (default: one control period)
        is the time one call's joint motion may take at the joints' maximum velocities."""
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.model = build_arm_model(cell)
        self.iterations = iterations
        self.period_s = 1.0 / cell.rates.control_hz if period_s is None else float(period_s)
        if not self.period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.lower_rad = np.array([j.lower_rad for j in cell.robot.joints])
        self.upper_rad = np.array([j.upper_rad for j in cell.robot.joints])
        self.home_rad = np.array(cell.robot.home_joint_positions_rad, dtype=float)
        self._configuration = mink.Configuration(self.model, q=self.home_rad)
        self._tcp_task = mink.FrameTask(TCP_SITE, "site", position_cost=POSITION_COST,
                                        orientation_cost=ORIENTATION_COST, lm_damping=LM_DAMPING)
        self._posture_task = mink.PostureTask(self.model, cost=POSTURE_COST)
        self._posture_task.set_target(self.home_rad)
        self._limits = [
            mink.ConfigurationLimit(self.model),
            mink.VelocityLimit(self.model, {j.name: j.max_velocity_rad_s for j in cell.robot.joints}),
        ]

    def tcp_pose(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: (position [m], quaternion xyzw) of the TCP in the base frame at joints ``q_rad``."""
        data = self._configuration.data
        data.qpos[:] = np.asarray(q_rad, dtype=float)
        mujoco.mj_kinematics(self.model, data)
        site = self.model.site(TCP_SITE).id
        return data.site_xpos[site].copy(), matrix_to_quat_xyzw(data.site_xmat[site].reshape(3, 3))

    def check_against(self, q_rad: np.ndarray, tcp_position_m: np.ndarray, tcp_quaternion_xyzw: np.ndarray,
                      max_position_error_m: float = 0.01, max_angle_error_rad: float = 0.05) -> None:
        """Raise :class:`ModelMismatchError` unless the model's TCP at ``q_rad`` matches the robot's reported TCP.

        Targets start from the reported TCP pose; if the model disagrees with it (another flange frame, a wrong
        ``tcp_offset_m``), IK would turn the wrist by the difference on the first command. Check once, at rest.
        """
        position_m, quaternion_xyzw = self.tcp_pose(q_rad)
        position_error_m = float(np.linalg.norm(position_m - np.asarray(tcp_position_m, dtype=float)))
        angle_error_rad = rotation_angle_between(quat_xyzw_to_matrix(quaternion_xyzw),
                                                 quat_xyzw_to_matrix(np.asarray(tcp_quaternion_xyzw, dtype=float)))
        if position_error_m > max_position_error_m or angle_error_rad > max_angle_error_rad:
            raise ModelMismatchError(
                f"at the measured joints {np.round(q_rad, 4).tolist()} rad the arm model puts the TCP "
                f"{position_error_m * 1000:.1f} mm and {angle_error_rad:.3f} rad from the reported TCP pose "
                f"(allowed {max_position_error_m * 1000:.0f} mm, {max_angle_error_rad} rad): the robot's TCP frame "
                "does not match the cell's (tcp_offset_m, flange frame of controllers/kinematics.py)")

    def solve(self, target: CartesianTarget, seed_q_rad: np.ndarray, iterations: int | None = None) -> np.ndarray:
        """Joint positions [rad] moving the TCP towards ``target`` (base frame), from ``seed_q_rad``.

        Within the joint limits always (a seed outside them is clipped in first), and within one period's joint
        velocities of the seed. Raises :class:`IKError` if the QP solver fails.
        """
        seed = np.asarray(seed_q_rad, dtype=float).reshape(-1)
        if seed.shape != self.home_rad.shape or not np.all(np.isfinite(seed)):
            raise ValueError(f"seed must be {len(self.home_rad)} finite joint positions [rad], got {seed}")
        steps = self.iterations if iterations is None else iterations
        dt_s = self.period_s / steps
        rotation = mink.SO3(xyzw_to_wxyz(np.asarray(target.quaternion_xyzw, dtype=float)))
        self._tcp_task.set_target(mink.SE3.from_rotation_and_translation(
            rotation.normalize(), np.asarray(target.position_m, dtype=float)))
        configuration = self._configuration
        configuration.update(np.clip(seed, self.lower_rad, self.upper_rad))
        tasks = [self._tcp_task, self._posture_task]
        for _ in range(steps):
            try:
                velocity = mink.solve_ik(configuration, tasks, dt_s, QP_SOLVER, limits=self._limits)
            except mink.NoSolutionFound as exc:
                raise IKError(f"no IK step towards TCP {target.position_m} m from q {seed} rad: {exc}") from exc
            configuration.integrate_inplace(velocity, dt_s)
        # integration rounds a joint resting on its limit a hair past it
        return np.clip(configuration.q, self.lower_rad, self.upper_rad)
