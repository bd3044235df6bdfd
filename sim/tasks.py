"""Task logic in the twin: sample initial scenes from the task file, read object poses, judge success.

Only the twin knows object poses exactly; policies get them as *privileged* state (for fast RL in sim,
as ResiP does), never on the robot.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from geometry.transforms import quat_xyzw_to_matrix, wxyz_to_xyzw, xyzw_to_wxyz, yaw_to_quat_xyzw
from hardware_configs.schema import InitialPose, InsertSuccess, LiftSuccess, TaskConfig
from sim.scene import TABLE_TOP_Z_M

MIN_SEPARATION_M = 0.09  # objects and fixtures are resampled until this far apart (xy)
LIFTED_M = 0.01  # an object this far above where it started counts as picked up
ON_TABLE_M = 0.01  # an object's bottom this close to the table top counts as lying on the table
FINE_ERROR_M = 0.005  # relative_state also gives tanh(error / this): steep over the last millimetres of alignment

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
}


def _yaw(rotation: np.ndarray) -> float:
    """Rotation about z of a (near-upright) rotation matrix [rad]."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


@dataclass(frozen=True)
class ObjectPose:
    position_m: np.ndarray
    quaternion_xyzw: np.ndarray


def _tilt_rad(obj: ObjectPose, fixture: ObjectPose) -> float:
    """Angle between the object's z axis and the fixture's [rad]."""
    object_z = quat_xyzw_to_matrix(obj.quaternion_xyzw)[:, 2]
    fixture_z = quat_xyzw_to_matrix(fixture.quaternion_xyzw)[:, 2]
    return float(np.arccos(np.clip(object_z @ fixture_z, -1.0, 1.0)))


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
        self._half_height = {o.name: o.half_size_m[-1] for o in task.objects}
        self._initial_height: dict[str, float] = {}
        # yaw period of each object's shape about its axis: a square box repeats every quarter turn, any other
        # box every half turn; a cylinder's yaw means nothing (0)
        self._yaw_symmetry_rad = {o.name: 0.0 if o.shape == "cylinder" else
                                  np.pi / 2 if np.isclose(o.half_size_m[0], o.half_size_m[1]) else np.pi
                                  for o in task.objects}

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
        """The scene in the frames where the task's precision lives (sim only, like :meth:`privileged_state`).

        Per object its position relative to the TCP (base frame, m) and its yaw relative to the TCP's modulo the
        object's symmetry [rad] (how squarely the fingers meet it). Lift: the object's height above its start.
        Insert: the object's centre relative to the hole's axis in the fixture frame (x, y; also as
        ``tanh(e / FINE_ERROR_M)``, resolving the last millimetres that a policy normalising over the whole workspace
        cannot see), its bottom's height above the fixture's top face, its yaw error modulo the object's symmetry
        and its tilt [rad]. A residual policy reads millimetre errors directly instead of differencing poses.

        A pure function of the TCP pose and the poses in ``privileged`` (the layout of :meth:`privileged_state`;
        the twin's exact ones when omitted), so a noisy pose estimate gives the matching noisy errors.
        """
        poses = self._poses(self.privileged_state() if privileged is None else privileged)
        tcp = np.asarray(tcp_position_m, dtype=float)
        tcp_yaw = _yaw(quat_xyzw_to_matrix(np.asarray(tcp_quaternion_xyzw, dtype=float)))
        parts: list = []
        for o in self.config.objects:
            pose = poses[o.name]
            parts += [pose.position_m - tcp, [self._wrap_yaw(o.name, _yaw(quat_xyzw_to_matrix(pose.quaternion_xyzw))
                                                             - tcp_yaw)]]
        cond = self.config.success
        if isinstance(cond, LiftSuccess):
            parts.append([poses[cond.object].position_m[2] - self._initial_height[cond.object]])
        else:
            obj, fixture = poses[cond.object], poses[cond.fixture]
            fixture_rot = quat_xyzw_to_matrix(fixture.quaternion_xyzw)
            error_xy = (fixture_rot.T @ (obj.position_m - fixture.position_m))[:2]
            yaw_error = self._wrap_yaw(cond.object, _yaw(fixture_rot.T @ quat_xyzw_to_matrix(obj.quaternion_xyzw)))
            parts += [error_xy, np.tanh(error_xy / FINE_ERROR_M), [-self._depth_m(obj, fixture), yaw_error,
                                                              _tilt_rad(obj, fixture)]]
        return np.concatenate([np.asarray(p, dtype=float).reshape(-1) for p in parts]).astype(np.float32)

    def _poses(self, privileged: np.ndarray) -> dict[str, ObjectPose]:
        """Name -> pose from a vector laid out like :meth:`privileged_state` (objects, then fixtures)."""
        values = np.asarray(privileged, dtype=float).reshape(-1)
        if values.size != self.privileged_dim:
            raise ValueError(f"privileged must hold {self.privileged_dim} values (7 per object/fixture), "
                             f"got {values.size}")
        names = [*self._free_qpos, *self._mocap]
        return {n: ObjectPose(v[:3].copy(), v[3:].copy()) for n, v in zip(names, values.reshape(-1, 7), strict=True)}

    def _wrap_yaw(self, name: str, yaw_rad: float) -> float:
        """``yaw_rad`` wrapped to half the object's symmetry period either side of 0 (0 for a cylinder)."""
        period = self._yaw_symmetry_rad[name]
        return float((yaw_rad + period / 2) % period - period / 2) if period else 0.0

    @property
    def relative_dim(self) -> int:
        return 4 * len(self.config.objects) + (1 if isinstance(self.config.success, LiftSuccess) else 7)

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
        return self._depth_m(self.object_pose(cond.object), self.fixture_pose(cond.fixture))

    def _depth_m(self, obj: ObjectPose, fixture_pose: ObjectPose) -> float:
        cond = self.config.success
        fixture = next(f for f in self.config.fixtures if f.name == cond.fixture)
        top_z = fixture_pose.position_m[2] + fixture.height_m
        return float(top_z - (obj.position_m[2] - self._half_height[cond.object]))

    def insertion_tilt_rad(self) -> float:
        """Angle between the object's z axis and the fixture's (0 when upright in the hole)."""
        cond = self.config.success
        assert isinstance(cond, InsertSuccess)
        return _tilt_rad(self.object_pose(cond.object), self.fixture_pose(cond.fixture))

    def insertion_lateral_error_m(self) -> float:
        cond = self.config.success
        assert isinstance(cond, InsertSuccess)
        obj = self.object_pose(cond.object).position_m
        hole = self.fixture_pose(cond.fixture).position_m
        return float(np.hypot(*(obj[:2] - hole[:2])))
