"""Typed models of a robot cell and a task, validated when a YAML file is loaded.

Conventions (see shared design notes):
- positions in metres, angles in radians, quaternions as (x, y, z, w);
- every pose names its parent frame: ``T_base_cam`` is the camera's optical frame (x right, y down,
  z forward, as OpenCV and REP-103 ``*_optical_frame``) expressed in the robot base frame;
- wrist cameras give their pose in the flange (end-effector) frame instead.
Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default. Every number
must be finite (a NaN or infinity is refused naming its field), and every limit lies within the physical
ceilings of the hardware (:mod:`hardware_configs.robot_limits`), so no file can switch a limit off by making it
huge. A static camera must see the workspace and a wrist camera the tool centre point: a pose the twin could
not render anything useful from is refused at load, not recorded as empty frames.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hardware_configs import robot_limits as ceilings

PositiveFloat = Annotated[float, Field(gt=0)]
UnitFloat = Annotated[float, Field(ge=0, le=1)]
Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


def _at_most(what: str, value: float, ceiling: float) -> None:
    if value > ceiling:
        raise ValueError(f"{what} is {value}, above the hardware's published {ceiling}; give at most {ceiling}")


class StrictModel(BaseModel):
    """Base for every config model: unknown keys rejected, numbers finite, values immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Pose(StrictModel):
    """A rigid transform: position [m] and unit quaternion (x, y, z, w) of ``child`` in ``parent``."""

    parent: str
    position_m: Vec3
    quaternion_xyzw: Quat = (0.0, 0.0, 0.0, 1.0)

    @field_validator("quaternion_xyzw")
    @classmethod
    def _unit_quaternion(cls, q: Quat) -> Quat:
        norm = math.sqrt(sum(c * c for c in q))
        if not 0.99 < norm < 1.01:
            raise ValueError(f"quaternion {q} has norm {norm:.4f}; give a unit quaternion (x, y, z, w)")
        if abs(norm - 1.0) < 1e-9:
            return q  # already unit: keep the file's digits so a dump reloads identically
        return tuple(c / norm for c in q)  # type: ignore[return-value]

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix T_parent_child."""
        from geometry.transforms import pose_to_matrix

        return pose_to_matrix(np.array(self.position_m), np.array(self.quaternion_xyzw))


class JointLimit(StrictModel):
    name: str
    lower_rad: float
    upper_rad: float
    max_velocity_rad_s: PositiveFloat

    @model_validator(mode="after")
    def _ordered(self) -> JointLimit:
        if self.lower_rad >= self.upper_rad:
            raise ValueError(f"joint {self.name}: lower_rad {self.lower_rad} must be below upper_rad {self.upper_rad}")
        return self


class GripperConfig(StrictModel):
    model: Literal["robotiq_2f85", "franka_hand"] = "robotiq_2f85"
    max_width_m: PositiveFloat = 0.085
    max_speed_m_s: PositiveFloat = 0.15

    @model_validator(mode="after")
    def _within_hardware(self) -> GripperConfig:
        hw = ceilings.GRIPPERS[self.model]
        _at_most(f"gripper {self.model} max_width_m", self.max_width_m, hw.max_width_m)
        _at_most(f"gripper {self.model} max_speed_m_s", self.max_speed_m_s, hw.max_speed_m_s)
        return self


class RobotModel(str, Enum):
    panda = "panda"


class RobotConfig(StrictModel):
    model: RobotModel
    base_frame: str = "base"
    flange_frame: str = "flange"
    tcp_frame: str = "tcp"
    tcp_offset_m: Vec3 = Field((0.0, 0.0, 0.1488), description="tool centre point in the flange frame")
    joints: list[JointLimit] = Field(min_length=1)
    home_joint_positions_rad: list[float]
    gripper: GripperConfig = GripperConfig()

    @property
    def ceilings(self) -> ceilings.ArmCeilings:
        return ceilings.ARMS[self.model.value]

    @model_validator(mode="after")
    def _joints_within_hardware(self) -> RobotConfig:
        arm = ceilings.ARMS[self.model.value]
        if len(self.joints) != len(arm.joints):
            raise ValueError(f"a {self.model.value} has {len(arm.joints)} joints; the file lists {len(self.joints)}")
        for joint, hw in zip(self.joints, arm.joints, strict=True):
            tol = 1e-4  # the published limits are given to 4 decimals
            if joint.lower_rad < hw.lower_rad - tol or joint.upper_rad > hw.upper_rad + tol:
                raise ValueError(
                    f"joint {joint.name}: [{joint.lower_rad}, {joint.upper_rad}] rad exceeds the {self.model.value}'s "
                    f"published [{hw.lower_rad}, {hw.upper_rad}]"
                )
            _at_most(f"joint {joint.name} max_velocity_rad_s", joint.max_velocity_rad_s, hw.max_velocity_rad_s)
        offset = float(np.linalg.norm(self.tcp_offset_m))
        _at_most("tcp_offset_m (its length)", offset, ceilings.MAX_TCP_OFFSET_M)
        return self

    @model_validator(mode="after")
    def _home_inside_limits(self) -> RobotConfig:
        if len(self.home_joint_positions_rad) != len(self.joints):
            raise ValueError(
                f"home_joint_positions_rad has {len(self.home_joint_positions_rad)} values "
                f"for {len(self.joints)} joints"
            )
        for joint, q in zip(self.joints, self.home_joint_positions_rad, strict=True):
            if not joint.lower_rad <= q <= joint.upper_rad:
                raise ValueError(
                    f"home position of {joint.name} is {q} rad, outside [{joint.lower_rad}, {joint.upper_rad}]"
                )
        return self


class WorkspaceBox(StrictModel):
    """Axis-aligned box in the base frame that the tool centre point (TCP) may never leave."""

    frame: str = "base"
    min_m: Vec3
    max_m: Vec3

    @model_validator(mode="after")
    def _ordered(self) -> WorkspaceBox:
        for axis, lo, hi in zip("xyz", self.min_m, self.max_m, strict=True):
            if lo >= hi:
                raise ValueError(f"workspace {axis}: min_m {lo} must be below max_m {hi}")
        return self


class MotionLimits(StrictModel):
    """Cartesian limits on the commanded end-effector target, enforced by the safety filter."""

    max_linear_speed_m_s: PositiveFloat = 0.25
    max_angular_speed_rad_s: PositiveFloat = 0.6
    max_linear_accel_m_s2: PositiveFloat = 2.0
    max_angular_accel_rad_s2: PositiveFloat = 6.0
    command_timeout_s: Annotated[float, Field(gt=0, le=ceilings.MAX_COMMAND_TIMEOUT_S)] = 0.5


class Rates(StrictModel):
    control_hz: PositiveFloat = 100.0
    policy_hz: PositiveFloat = 10.0

    @model_validator(mode="after")
    def _control_faster_than_policy(self) -> Rates:
        _at_most("control_hz", self.control_hz, ceilings.PANDA.max_control_hz)
        ratio = self.control_hz / self.policy_hz
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(
                f"control_hz ({self.control_hz}) must be an integer multiple of policy_hz ({self.policy_hz})"
            )
        return self


class Intrinsics(StrictModel):
    """Pinhole intrinsics in pixels for the colour stream (depth is aligned to colour)."""

    width: Annotated[int, Field(gt=0, le=ceilings.MAX_IMAGE_WIDTH_PX)]
    height: Annotated[int, Field(gt=0, le=ceilings.MAX_IMAGE_HEIGHT_PX)]
    fx: Annotated[float, Field(gt=0, le=ceilings.MAX_FOCAL_PX)]
    fy: Annotated[float, Field(gt=0, le=ceilings.MAX_FOCAL_PX)]
    cx: float
    cy: float
    distortion_model: Literal["plumb_bob", "inverse_brown_conrady", "none"] = "plumb_bob"
    distortion: list[float] = Field(default_factory=lambda: [0.0] * 5, max_length=14)

    @model_validator(mode="after")
    def _principal_point_inside(self) -> Intrinsics:
        if not (0 <= self.cx <= self.width and 0 <= self.cy <= self.height):
            raise ValueError(
                f"principal point ({self.cx}, {self.cy}) lies outside the {self.width}x{self.height} image"
            )
        return self

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


class CameraMount(str, Enum):
    static = "static"
    wrist = "wrist"


_CAMERA_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class CameraConfig(StrictModel):
    name: str
    serial: str = Field(description="RealSense serial number, as printed by rs-enumerate-devices")
    mount: CameraMount
    extrinsics: Pose = Field(description="optical frame in base (static) or flange (wrist)")
    intrinsics: Intrinsics
    fps: Annotated[int, Field(gt=0, le=ceilings.MAX_CAMERA_FPS)] = 30
    depth_scale_m: Annotated[float, Field(gt=0, le=ceilings.MAX_DEPTH_SCALE_M)] = 0.001
    namespace: str = ""

    @field_validator("name")
    @classmethod
    def _ros_safe_name(cls, name: str) -> str:
        if not _CAMERA_NAME.match(name):
            raise ValueError(f"camera name {name!r} must be lower-case letters, digits and '_' (a ROS name)")
        return name

    @model_validator(mode="after")
    def _frame_matches_mount(self) -> CameraConfig:
        expected = "base" if self.mount is CameraMount.static else "flange"
        if self.extrinsics.parent != expected:
            raise ValueError(
                f"camera {self.name} is mounted {self.mount.value}: its extrinsics parent must be "
                f"{expected!r}, not {self.extrinsics.parent!r}"
            )
        limit = (
            ceilings.MAX_STATIC_CAMERA_DISTANCE_M
            if self.mount is CameraMount.static
            else (ceilings.MAX_WRIST_CAMERA_OFFSET_M)
        )
        _at_most(
            f"camera {self.name}: distance from its parent frame [m]",
            float(np.linalg.norm(self.extrinsics.position_m)),
            limit,
        )
        return self

    def sees(self, point_parent: np.ndarray, margin_px: float = 0.0) -> bool:
        """Whether a point (in the extrinsics' parent frame) lies in front of the camera and inside its image."""
        T_cam_parent = np.linalg.inv(self.extrinsics.matrix())
        p = T_cam_parent[:3, :3] @ np.asarray(point_parent, dtype=float) + T_cam_parent[:3, 3]
        if p[2] <= 0.01:  # behind the camera or closer than any RealSense can measure
            return False
        u = self.intrinsics.fx * p[0] / p[2] + self.intrinsics.cx
        v = self.intrinsics.fy * p[1] / p[2] + self.intrinsics.cy
        return bool(
            -margin_px <= u <= self.intrinsics.width + margin_px
            and -margin_px <= v <= self.intrinsics.height + margin_px
        )

    @property
    def optical_frame(self) -> str:
        return f"{self.name}_color_optical_frame"

    def topic(self, stream: Literal["color", "depth", "camera_info"]) -> str:
        """realsense-ros 4.55+ topic names for this camera."""
        prefix = f"/{self.namespace}/{self.name}" if self.namespace else f"/{self.name}"
        suffix = {
            "color": "color/image_raw",
            "depth": "aligned_depth_to_color/image_raw",
            "camera_info": "color/camera_info",
        }[stream]
        return f"{prefix}/{suffix}"


class CellConfig(StrictModel):
    name: str
    robot: RobotConfig
    robot_base_position_m: Vec3 = Field(
        (0.0, 0.0, 0.0), description="robot base in the world frame of the twin (the table top is z=0)"
    )
    workspace: WorkspaceBox
    motion_limits: MotionLimits = MotionLimits()
    rates: Rates = Rates()
    cameras: list[CameraConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _motion_within_hardware(self) -> CellConfig:
        arm, limits = self.robot.ceilings, self.motion_limits
        for field in ("max_linear_speed_m_s", "max_angular_speed_rad_s", "max_linear_accel_m_s2",
                      "max_angular_accel_rad_s2"):
            _at_most(f"motion_limits.{field}", getattr(limits, field), getattr(arm, field))
        return self

    @model_validator(mode="after")
    def _workspace_within_reach(self) -> CellConfig:
        """No corner of the box may lie beyond what the TCP can reach: a huge box would switch the limit off."""
        arm = self.robot.ceilings
        reach = arm.reach_m + float(np.linalg.norm(self.robot.tcp_offset_m)) + 0.05  # 5 cm for rounding
        shoulder = np.array([0.0, 0.0, arm.shoulder_height_m])
        lo, hi = np.array(self.workspace.min_m), np.array(self.workspace.max_m)
        corners = np.array([[hi[i] if (k >> i) & 1 else lo[i] for i in range(3)] for k in range(8)])
        farthest = float(np.max(np.linalg.norm(corners - shoulder, axis=1)))
        if farthest > reach:
            raise ValueError(
                f"workspace box [{list(lo)}, {list(hi)}] m reaches {farthest:.3f} m from the "
                f"{self.robot.model.value}'s shoulder; the arm reaches {reach:.3f} m with this TCP: shrink the box"
            )
        return self

    @model_validator(mode="after")
    def _cameras_can_see(self) -> CellConfig:
        """A static camera must see the workspace's centre, a wrist camera the tool centre point."""
        centre = (np.array(self.workspace.min_m) + np.array(self.workspace.max_m)) / 2
        for cam in self.cameras:
            if cam.mount is CameraMount.static:
                target, what = centre, f"the workspace centre {np.round(centre, 3).tolist()} m (base frame)"
            else:
                target, what = np.array(self.robot.tcp_offset_m), "the tool centre point (flange frame)"
            if not cam.sees(target):
                raise ValueError(
                    f"camera {cam.name} does not see {what} with its extrinsics: it would record frames without "
                    "the task in them; check the extrinsics (optical frame: z forward, x right, y down)"
                )
        return self

    @model_validator(mode="after")
    def _unique_camera_names(self) -> CellConfig:
        names = [c.name for c in self.cameras]
        serials = [c.serial for c in self.cameras]
        for label, values in (("name", names), ("serial", serials)):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"camera {label}s must be unique; repeated: {dupes}")
        return self

    def camera(self, name: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"no camera {name!r} in cell {self.name}; cameras: {[c.name for c in self.cameras]}")


# ---------------------------------------------------------------------------------------------- tasks


class Range(StrictModel):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"range low {self.low} is above high {self.high}")
        return self


class InitialPose(StrictModel):
    """Uniform distribution of an object's initial pose on the table (base frame)."""

    x_m: Range
    y_m: Range
    yaw_rad: Range = Range(low=0.0, high=0.0)


class ObjectConfig(StrictModel):
    """A rigid task object; ``box`` sizes are half-extents [m] as in MuJoCo."""

    name: str
    shape: Literal["box", "cylinder"]
    half_size_m: tuple[Annotated[float, Field(gt=0, le=0.5)], ...]
    mass_kg: Annotated[float, Field(gt=0, le=ceilings.PANDA.payload_kg)] = 0.1
    rgba: tuple[UnitFloat, UnitFloat, UnitFloat, UnitFloat] = (0.8, 0.2, 0.2, 1.0)
    friction: PositiveFloat = 1.0
    initial_pose: InitialPose

    @model_validator(mode="after")
    def _size_matches_shape(self) -> ObjectConfig:
        expected = {"box": 3, "cylinder": 2}[self.shape]
        if len(self.half_size_m) != expected:
            raise ValueError(f"{self.shape} {self.name} needs {expected} half sizes, got {len(self.half_size_m)}")
        return self


class HoleFixture(StrictModel):
    """A block with a square through-hole, placed on the table; clearance is per side [m]."""

    kind: Literal["square_hole"] = "square_hole"
    name: str = "hole"
    hole_half_width_m: PositiveFloat
    wall_thickness_m: PositiveFloat = 0.03
    height_m: PositiveFloat = 0.04
    rgba: tuple[UnitFloat, UnitFloat, UnitFloat, UnitFloat] = (0.3, 0.3, 0.35, 1.0)
    initial_pose: InitialPose


class LiftSuccess(StrictModel):
    kind: Literal["lifted"] = "lifted"
    object: str
    height_m: PositiveFloat


class InsertSuccess(StrictModel):
    kind: Literal["inserted"] = "inserted"
    object: str
    fixture: str
    depth_m: PositiveFloat
    max_lateral_error_m: PositiveFloat = 0.01
    # The object's axis within this of the fixture's: without it a peg lying flat across the hole has its
    # centre low enough to read as inserted. 0.2 rad is looser than any tilt a 2 cm deep, snug hole allows.
    max_tilt_rad: PositiveFloat = 0.2


SuccessCondition = Annotated[LiftSuccess | InsertSuccess, Field(discriminator="kind")]


class TaskConfig(StrictModel):
    name: str
    instruction: str = Field(min_length=3)
    objects: list[ObjectConfig] = Field(min_length=1)
    fixtures: list[HoleFixture] = Field(default_factory=list)
    success: SuccessCondition
    horizon_steps: Annotated[int, Field(gt=0, le=100_000)] = Field(description="policy steps per episode")

    @model_validator(mode="after")
    def _success_names_exist(self) -> TaskConfig:
        objects = {o.name for o in self.objects}
        fixtures = {f.name for f in self.fixtures}
        if self.success.object not in objects:
            raise ValueError(f"success refers to object {self.success.object!r}; objects are {sorted(objects)}")
        if isinstance(self.success, InsertSuccess) and self.success.fixture not in fixtures:
            raise ValueError(f"success refers to fixture {self.success.fixture!r}; fixtures are {sorted(fixtures)}")
        return self
