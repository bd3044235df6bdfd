"""Build the MuJoCo twin of a cell (and optionally a task) from the same config the real robot uses.

The arm is the menagerie-derived Panda + Robotiq 2F-85 that ships inside the `gym-hil` wheel (no run-time
downloads). We load it with ``MjSpec`` and add, from the cell file: the table, every camera at its calibrated
extrinsics with its intrinsics, flange and TCP sites, position servos with gravity compensation (the twin's
stand-in for the robot's joint impedance controller); and, from the task file: the objects and fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path

import mujoco
import numpy as np

from geometry.transforms import matrix_to_quat_xyzw, quat_xyzw_to_matrix, xyzw_to_wxyz
from hardware_configs.schema import CameraConfig, CameraMount, CellConfig, HoleFixture, ObjectConfig, TaskConfig

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FLANGE_BODY = "attachment"
TABLE_TOP_Z_M = 0.0
# MuJoCo cameras look along -z with y up; optical frames look along +z with y down.
OPTICAL_TO_MUJOCO_CAMERA = np.diag([1.0, -1.0, -1.0])
# Joint servo gains (N m/rad, N m s/rad): stiff enough to track IK targets within a millimetre.
SERVO_KP = np.array([4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0])
SERVO_KV = np.array([120.0, 120.0, 90.0, 90.0, 40.0, 40.0, 30.0])


class MissingAssetError(RuntimeError):
    pass


def panda_model_path() -> Path:
    """Path of the Panda + Robotiq MJCF inside the installed gym-hil wheel."""
    spec = importlib_util.find_spec("gym_hil")
    if spec is None or spec.origin is None:
        raise MissingAssetError(
            "the twin needs the Panda + Robotiq model from the gym-hil wheel: pip install --no-deps gym-hil==0.1.14"
        )
    path = Path(spec.origin).parent / "assets" / "panda.xml"
    if not path.is_file():
        raise MissingAssetError(f"{path} not found; reinstall with: pip install --no-deps gym-hil==0.1.14")
    return path


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int


def scaled_intrinsics(camera: CameraConfig, size: ImageSize) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of the camera when its image is resized to ``size`` (as the policy sees it)."""
    intr = camera.intrinsics
    sx, sy = size.width / intr.width, size.height / intr.height
    return intr.fx * sx, intr.fy * sy, intr.cx * sx, intr.cy * sy


def _add_camera(parent: mujoco.MjsBody, camera: CameraConfig, size: ImageSize) -> None:
    pose = camera.extrinsics
    rot_mj = quat_xyzw_to_matrix(np.array(pose.quaternion_xyzw)) @ OPTICAL_TO_MUJOCO_CAMERA
    fx, fy, cx, cy = scaled_intrinsics(camera, size)
    cam = parent.add_camera(
        name=camera.name,
        pos=list(pose.position_m),
        quat=list(xyzw_to_wxyz(matrix_to_quat_xyzw(rot_mj))),
    )
    # Pinhole intrinsics in pixels. MuJoCo shifts the image by -principal_pixel from the centre and puts pixel
    # centres at i + 0.5, where OpenCV/RealSense put them at i: hence the half pixel (checked in tests).
    cam.resolution = [size.width, size.height]
    cam.focal_pixel = [fx, fy]
    cam.principal_pixel = [size.width / 2.0 - (cx + 0.5), size.height / 2.0 - (cy + 0.5)]
    cam.sensor_size = [size.width * 1e-6, size.height * 1e-6]  # non-zero: use intrinsics, not fovy


def _add_object(world: mujoco.MjsBody, obj: ObjectConfig) -> None:
    body = world.add_body(name=obj.name, pos=[0.5, 0.0, 0.1])
    body.add_freejoint(name=f"{obj.name}_free")
    geom_type = mujoco.mjtGeom.mjGEOM_BOX if obj.shape == "box" else mujoco.mjtGeom.mjGEOM_CYLINDER
    size = list(obj.half_size_m) + [0.0] * (3 - len(obj.half_size_m))
    body.add_geom(
        name=f"{obj.name}_geom",
        type=geom_type,
        size=size,
        mass=obj.mass_kg,
        rgba=list(obj.rgba),
        friction=[obj.friction, 0.01, 0.001],
        condim=4,
        solref=[0.005, 1.0],
    )


def _add_hole_fixture(world: mujoco.MjsBody, fixture: HoleFixture) -> None:
    """A mocap body (placed per episode) of four walls around a square through-hole."""
    body = world.add_body(name=fixture.name, mocap=True, pos=[0.5, 0.1, TABLE_TOP_Z_M])
    h, t, half_h = fixture.hole_half_width_m, fixture.wall_thickness_m, fixture.height_m / 2.0
    walls = {
        "px": ([h + t / 2, 0.0], [t / 2, h + t, half_h]),
        "nx": ([-(h + t / 2), 0.0], [t / 2, h + t, half_h]),
        "py": ([0.0, h + t / 2], [h, t / 2, half_h]),
        "ny": ([0.0, -(h + t / 2)], [h, t / 2, half_h]),
    }
    for suffix, (xy, size) in walls.items():
        body.add_geom(
            name=f"{fixture.name}_wall_{suffix}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=[xy[0], xy[1], half_h],
            size=size,
            rgba=list(fixture.rgba),
            friction=[0.6, 0.01, 0.001],
        )
    body.add_site(name=f"{fixture.name}_top", pos=[0.0, 0.0, fixture.height_m], size=[0.003, 0, 0])


def _use_collision_meshes_for_arm_visuals(spec: mujoco.MjSpec) -> None:
    """Swap the arm's detailed visual meshes (MBs of triangles) for its collision hulls.

    Rendering on a CPU-only machine is bound by triangle count: this makes a 96x96 frame ~4x cheaper
    while keeping the silhouette the cameras and policies see.
    """
    for body_index in range(8):
        body = spec.body(f"link{body_index}")
        for geom in list(body.geoms):
            if geom.classname.name == "panda/visual":
                spec.delete(geom)
            elif geom.classname.name == "panda/collision":
                geom.group = 2
                geom.rgba = [0.92, 0.92, 0.92, 1.0]


def build_spec(cell: CellConfig, task: TaskConfig | None = None, image_size: ImageSize | None = None,
               fast_render: bool = False) -> mujoco.MjSpec:
    """An editable MjSpec of the cell (and task); call ``.compile()`` for the model.

    ``fast_render`` draws the arm with its collision hulls (for policy-sized images on CPU-only machines).
    """
    spec = mujoco.MjSpec.from_file(str(panda_model_path()))
    if fast_render:
        _use_collision_meshes_for_arm_visuals(spec)
    spec.modelname = f"{cell.name}_{task.name}" if task else cell.name
    spec.option.timestep = 0.002
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST  # stiff servos need implicit damping
    spec.option.noslip_iterations = 3
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    size = image_size or ImageSize(cell.cameras[0].intrinsics.width, cell.cameras[0].intrinsics.height)
    largest = max([size.width, size.height, 640])
    spec.visual.global_.offwidth = largest
    spec.visual.global_.offheight = largest
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0
    spec.visual.headlight.ambient = [0.3, 0.3, 0.3]
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]

    link0 = spec.body("link0")
    link0.pos = list(cell.robot_base_position_m)
    for body in spec.bodies:  # arm and gripper (all there is so far): gravity compensated as on the robot
        if body.name != "world":
            body.gravcomp = 1.0

    # Replace the torque motors with joint position servos (the twin's joint impedance controller).
    for actuator in list(spec.actuators):
        if actuator.name.startswith("actuator"):
            index = int(actuator.name.removeprefix("actuator")) - 1
            actuator.gaintype = mujoco.mjtGain.mjGAIN_FIXED
            actuator.biastype = mujoco.mjtBias.mjBIAS_AFFINE
            actuator.gainprm[0] = SERVO_KP[index]
            actuator.biasprm[:3] = [0.0, -SERVO_KP[index], -SERVO_KV[index]]
            actuator.ctrlrange = list(_joint_range(cell, index))
            actuator.forcerange = [-87.0, 87.0] if index < 4 else [-12.0, 12.0]
            actuator.forcelimited = 1

    flange = spec.body(FLANGE_BODY)
    flange.add_site(name="flange", pos=[0, 0, 0], size=[0.005, 0, 0], group=4)
    flange.add_site(name="tcp", pos=list(cell.robot.tcp_offset_m), size=[0.005, 0, 0], group=4)

    world = spec.worldbody
    world.add_light(name="top", pos=[0.5, 0.0, 2.0], dir=[0.0, 0.0, -1.0], diffuse=[0.5, 0.5, 0.5])
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=[0.35, 0.0, TABLE_TOP_Z_M - 0.025],
        size=[0.75, 0.8, 0.025],
        rgba=[0.72, 0.62, 0.5, 1.0],
        friction=[0.8, 0.01, 0.001],
    )
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, pos=[0, 0, -0.75], size=[3, 3, 0.1],
                   rgba=[0.35, 0.38, 0.42, 1.0])
    for camera in cell.cameras:
        parent = world if camera.mount is CameraMount.static else flange
        _add_camera(parent, camera, size)
    if task is not None:
        for obj in task.objects:
            _add_object(world, obj)
        for fixture in task.fixtures:
            _add_hole_fixture(world, fixture)
    return spec


def _joint_range(cell: CellConfig, index: int) -> tuple[float, float]:
    joint = cell.robot.joints[index]
    return joint.lower_rad, joint.upper_rad


def build_model(cell: CellConfig, task: TaskConfig | None = None, image_size: ImageSize | None = None,
                fast_render: bool = False) -> mujoco.MjModel:
    return build_spec(cell, task, image_size, fast_render).compile()
