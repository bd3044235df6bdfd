"""Task logic in the twin: sample initial scenes from the task file, read object poses, judge success.

Only the twin knows object poses exactly; policies get them as *privileged* state (for fast RL in sim,
as ResiP does), never on the robot.
"""

from __future__ import annotations

import mujoco
import numpy as np

from geometry.transforms import wxyz_to_xyzw, xyzw_to_wxyz, yaw_to_quat_xyzw
from hardware_configs.schema import InitialPose, InsertSuccess, LiftSuccess, TaskConfig
from perception.task_state import ObjectPose, TaskStateLayout, tilt_rad
from sim.scene import TABLE_TOP_Z_M

MIN_SEPARATION_M = 0.09  # objects and fixtures are resampled until this far apart (xy)
LIFTED_M = 0.01  # an object this far above where it started counts as picked up
ON_TABLE_M = 0.01  # an object's bottom this close to the table top counts as lying on the table

# How an episode ended, judged on its final state (``TwinTask.outcome``): where a policy fails tells where a
# residual, more data or a better reward has to act.
OUTCOMES = {
    "success": "the task's success condition holds",
    "not_lifted": "lift: the object never left the table (missed or dropped grasp)",
    "too_low": "lift: the object is up, but short of the required height",
    "tipped": "insert: the object is not upright (fallen over, or lying across the fixture)",
    "away_from_fixture": "insert: the object is neither in nor over the fixture (not picked, dropped, stopped)",
    "on_rim": "insert: the object is over the fixture but its bottom is above the top face (missed the hole)",
    "short_of_depth": "insert: in the hole, centred, not deep enough (jammed or stopped)",
    "off_centre": "insert: deep enough but further off the hole's axis than allowed",
    "sim_unstable": "the twin's physics diverged (MuJoCo reset its state) and the episode was ended: a failure",
}


def _sample(pose: InitialPose, rng: np.random.Generator) -> tuple[float, float, float]:
    return (
        rng.uniform(pose.x_m.low, pose.x_m.high),
        rng.uniform(pose.y_m.low, pose.y_m.high),
        rng.uniform(pose.yaw_rad.low, pose.yaw_rad.high),
    )


class TwinTask:
    """Places a task's objects and fixtures in a twin and evaluates its success condition."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, task: TaskConfig):
        self.model, self.data, self.config = model, data, task
        self._free_qpos = {o.name: model.jnt_qposadr[model.joint(f"{o.name}_free").id] for o in task.objects}
        self._free_dof = {o.name: model.jnt_dofadr[model.joint(f"{o.name}_free").id] for o in task.objects}
        self._mocap = {f.name: model.body_mocapid[model.body(f.name).id] for f in task.fixtures}
        self.layout = TaskStateLayout(task)  # the vectors' layout and the task's errors, shared with the robot
        self._half_height = self.layout.half_height_m
        self._initial_height: dict[str, float] = {}

    def reset(self, rng: np.random.Generator) -> None:
        """Sample a scene: objects upright on the table at random poses, fixtures likewise, none overlapping."""
        placed: list[tuple[float, float]] = []

        def sample_apart(pose: InitialPose) -> tuple[float, float, float]:
            for _ in range(100):
                x, y, yaw = _sample(pose, rng)
                if all(np.hypot(x - px, y - py) >= MIN_SEPARATION_M for px, py in placed):
                    placed.append((x, y))
                    return x, y, yaw
            raise RuntimeError(f"task {self.config.name}: cannot place objects {MIN_SEPARATION_M} m apart")

        for fixture in self.config.fixtures:
            x, y, yaw = sample_apart(fixture.initial_pose)
            mocap = self._mocap[fixture.name]
            self.data.mocap_pos[mocap] = [x, y, TABLE_TOP_Z_M]
            self.data.mocap_quat[mocap] = xyzw_to_wxyz(yaw_to_quat_xyzw(yaw))
        for obj in self.config.objects:
            x, y, yaw = sample_apart(obj.initial_pose)
            z = TABLE_TOP_Z_M + self._half_height[obj.name] + 1e-4
            adr = self._free_qpos[obj.name]
            self.data.qpos[adr : adr + 3] = [x, y, z]
            self.data.qpos[adr + 3 : adr + 7] = xyzw_to_wxyz(yaw_to_quat_xyzw(yaw))
            self.data.qvel[self._free_dof[obj.name] : self._free_dof[obj.name] + 6] = 0.0
            self._initial_height[obj.name] = z
        mujoco.mj_forward(self.model, self.data)

    def set_poses(self, privileged: np.ndarray) -> None:
        """Place objects and fixtures at recorded poses (the layout of :meth:`privileged_state`)."""
        poses = self._poses(privileged)
        for name, adr in self._free_qpos.items():
            pose, dof = poses[name], self._free_dof[name]
            self.data.qpos[adr : adr + 3] = pose.position_m
            self.data.qpos[adr + 3 : adr + 7] = xyzw_to_wxyz(pose.quaternion_xyzw)
            self.data.qvel[dof : dof + 6] = 0.0
            self._initial_height[name] = float(pose.position_m[2])
        for name, mocap in self._mocap.items():
            self.data.mocap_pos[mocap] = poses[name].position_m
            self.data.mocap_quat[mocap] = xyzw_to_wxyz(poses[name].quaternion_xyzw)
        mujoco.mj_forward(self.model, self.data)

    def object_pose(self, name: str) -> ObjectPose:
        adr = self._free_qpos[name]
        return ObjectPose(self.data.qpos[adr : adr + 3].copy(), wxyz_to_xyzw(self.data.qpos[adr + 3 : adr + 7]))

    def fixture_pose(self, name: str) -> ObjectPose:
        mocap = self._mocap[name]
        return ObjectPose(self.data.mocap_pos[mocap].copy(), wxyz_to_xyzw(self.data.mocap_quat[mocap]))

    def privileged_state(self) -> np.ndarray:
        """Object poses (pos + quat xyzw) then fixture poses, in base frame: the RL/expert view of the scene."""
        parts = [np.concatenate([p.position_m, p.quaternion_xyzw]) for p in map(self.object_pose, self._free_qpos)]
        parts += [np.concatenate([p.position_m, p.quaternion_xyzw]) for p in map(self.fixture_pose, self._mocap)]
        return np.concatenate(parts).astype(np.float32)

    @property
    def privileged_dim(self) -> int:
        return 7 * (len(self._free_qpos) + len(self._mocap))

    def relative_state(self, tcp_position_m: np.ndarray, tcp_quaternion_xyzw: np.ndarray,
                       privileged: np.ndarray | None = None) -> np.ndarray:
        """The task's errors (:meth:`perception.task_state.TaskStateLayout.relative_state`) from the TCP pose and
        the poses in ``privileged`` (the layout of :meth:`privileged_state`; the twin's exact ones when omitted), so
        a noisy pose estimate gives the matching noisy errors. Sim only, like :meth:`privileged_state`."""
        vector = self.privileged_state() if privileged is None else privileged
        return self.layout.relative_state(tcp_position_m, tcp_quaternion_xyzw, vector, self._initial_height)

    @property
    def initial_height_m(self) -> dict[str, float]:
        """Each object's height at the end of reset [m] (lift measures from it)."""
        return dict(self._initial_height)

    def _poses(self, privileged: np.ndarray) -> dict[str, ObjectPose]:
        return self.layout.poses(privileged)

    @property
    def relative_dim(self) -> int:
        return self.layout.relative_dim

    def is_success(self) -> bool:
        cond = self.config.success
        if isinstance(cond, LiftSuccess):
            lifted_m = self.object_pose(cond.object).position_m[2] - self._initial_height[cond.object]
            return bool(lifted_m >= cond.height_m)
        assert isinstance(cond, InsertSuccess)
        return (self.insertion_depth_m() >= cond.depth_m
                and self.insertion_lateral_error_m() <= cond.max_lateral_error_m
                and self.insertion_tilt_rad() <= cond.max_tilt_rad)

    def outcome(self, success: bool | None = None) -> str:
        """Which of :data:`OUTCOMES` describes the scene now (at the end of an episode)."""
        if success if success is not None else self.is_success():
            return "success"
        cond = self.config.success
        if isinstance(cond, LiftSuccess):
            lifted_m = self.object_pose(cond.object).position_m[2] - self._initial_height[cond.object]
            return "not_lifted" if lifted_m < LIFTED_M else "too_low"
        if self.insertion_tilt_rad() > cond.max_tilt_rad:
            return "tipped"
        fixture = next(f for f in self.config.fixtures if f.name == cond.fixture)
        depth_m, lateral_m = self.insertion_depth_m(), self.insertion_lateral_error_m()
        bottom_m = self.object_pose(cond.object).position_m[2] - self._half_height[cond.object] - TABLE_TOP_Z_M
        over_fixture = lateral_m <= fixture.hole_half_width_m + fixture.wall_thickness_m
        if not over_fixture or bottom_m < ON_TABLE_M:
            return "away_from_fixture"
        if depth_m < 0.0:
            return "on_rim"
        return "short_of_depth" if depth_m < cond.depth_m else "off_centre"

    def insertion_depth_m(self) -> float:
        """How far the object's bottom is below the fixture's top face (negative when above)."""
        cond = self.config.success
        assert isinstance(cond, InsertSuccess)
        return self.layout.insertion_depth_m(self.object_pose(cond.object), self.fixture_pose(cond.fixture))

    def insertion_tilt_rad(self) -> float:
        """Angle between the object's z axis and the fixture's (0 when upright in the hole)."""
        cond = self.config.success
        assert isinstance(cond, InsertSuccess)
        return tilt_rad(self.object_pose(cond.object), self.fixture_pose(cond.fixture))

    def insertion_lateral_error_m(self) -> float:
        cond = self.config.success
        assert isinstance(cond, InsertSuccess)
        obj = self.object_pose(cond.object).position_m
        hole = self.fixture_pose(cond.fixture).position_m
        return float(np.hypot(*(obj[:2] - hole[:2])))
