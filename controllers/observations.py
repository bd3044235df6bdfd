"""The meaning of an observation: every key with its shape, dtype, unit and frame, and the proprioception itself.

An observation is a dict of arrays, the same on the twin and on the robot:

- ``<camera>_rgb`` (H, W, 3) uint8 and ``<camera>_depth`` (H, W) float32 [m], in the camera's colour optical
  frame (x right, y down, z forward);
- proprioception, computed from a :class:`controllers.interface.RobotState` by :func:`proprio_observation`
  (what the robot measures, so it lives beside the robot interface);
- sim-only keys (``privileged``, ``privileged_relative``): the twin's exact scene state, never observable on
  the robot. Their length depends on the task, so the schema gives them no shape of its own.
- estimated keys (``estimated``, ``estimated_relative``, ``estimate_confidence``): the same scene state as the
  sim-only keys, same layout, units and frames, estimated from the cameras (:mod:`perception.task_state`), on the
  robot and in the twin alike.

The twin's env, the recorder, the bag importer and the episode store's specs
(``robot_learning.data.specs.episode_specs``) all take keys, shapes and units from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from controllers.interface import RobotState
from geometry.transforms import quat_xyzw_to_matrix
from hardware_configs.schema import CellConfig


@dataclass(frozen=True)
class ObservationKey:
    """One observation array: shape per step (None: set by the task), dtype, unit, frame, and whether it is sim-only.

    ``low``/``high`` bound every element (the gym observation space). ``policy_input`` is False for a key a
    learned policy should not read although the robot has it (the quaternion: it flips sign at the twin's
    home orientation, where ``tcp_rot6d`` carries the same rotation continuously).
    """

    name: str
    shape: tuple[int, ...] | None
    dtype: np.dtype
    unit: str
    frame: str | None = None
    description: str = ""
    sim_only: bool = False
    policy_input: bool = True
    low: float = -np.inf
    high: float = np.inf

    def with_shape(self, shape: Sequence[int]) -> ObservationKey:
        return replace(self, shape=tuple(int(s) for s in shape))


_F32 = np.dtype(np.float32)

PROPRIOCEPTION: dict[str, ObservationKey] = {k.name: k for k in (
    ObservationKey("tcp_position", (3,), _F32, "m", "base", "tool centre point position"),
    ObservationKey("tcp_rot6d", (6,), _F32, "1", "base", "first two columns of the TCP rotation matrix",
                   low=-1.0, high=1.0),
    ObservationKey("tcp_quaternion", (4,), _F32, "1", "base", "TCP orientation quaternion (x, y, z, w)",
                   policy_input=False, low=-1.0, high=1.0),
    ObservationKey("joint_pos", (7,), _F32, "rad", None, "arm joint positions"),
    ObservationKey("gripper_width", (1,), _F32, "m", None, "opening between the fingers", low=0.0, high=1.0),
)}

SIM_ONLY: dict[str, ObservationKey] = {k.name: k for k in (
    ObservationKey("privileged", None, _F32, "m|1", "base",
                   "sim only: object then fixture poses, position + quaternion (x, y, z, w)", sim_only=True),
    ObservationKey("privileged_relative", None, _F32, "m|1|rad", None,
                   "sim only: object relative to TCP and fixture, yaw/tilt errors (sim.tasks.TwinTask.relative_state)",
                   sim_only=True),
)}

# The robot's own view of the same scene: what perception.task_state makes of the cameras, laid out exactly as the
# sim-only keys (a policy trained on one reads the other), plus how sure it is of each object and fixture.
ESTIMATED: dict[str, ObservationKey] = {k.name: k for k in (
    ObservationKey("estimated", None, _F32, "m|1", "base",
                   "object then fixture poses estimated from the cameras, position + quaternion (x, y, z, w)"),
    ObservationKey("estimated_relative", None, _F32, "m|1|rad", None,
                   "the task errors of privileged_relative computed from the estimated poses"),
    ObservationKey("estimate_confidence", None, _F32, "1", None,
                   "per object then fixture: the estimator's confidence, 0 when lost", low=0.0, high=1.0),
)}
# Which robot-available key stands for each sim-only key (same layout, units and frames).
ESTIMATE_OF: dict[str, str] = {"privileged": "estimated", "privileged_relative": "estimated_relative"}

PROPRIO_KEYS: tuple[str, ...] = tuple(PROPRIOCEPTION)
ESTIMATED_KEYS: tuple[str, ...] = tuple(ESTIMATED)
SIM_ONLY_KEYS: tuple[str, ...] = tuple(SIM_ONLY)
NOT_POLICY_INPUTS: tuple[str, ...] = (*SIM_ONLY_KEYS, *(k for k, v in PROPRIOCEPTION.items() if not v.policy_input))


def rgb_key(camera: str) -> str:
    return f"{camera}_rgb"


def depth_key(camera: str) -> str:
    return f"{camera}_depth"


def camera_keys(camera: str, optical_frame: str, image_size: tuple[int, int], depth: bool) -> list[ObservationKey]:
    """The image keys of one camera; ``image_size`` is (width, height) [px]."""
    width, height = image_size
    keys = [ObservationKey(rgb_key(camera), (height, width, 3), np.dtype(np.uint8), "rgb8", optical_frame,
                           low=0, high=255)]
    if depth:
        keys.append(ObservationKey(depth_key(camera), (height, width), _F32, "m", optical_frame, low=0.0))
    return keys


def observation_schema(cell: CellConfig, cameras: Sequence[str], image_size: tuple[int, int] | None, depth: bool,
                       sim_dims: Mapping[str, int] | None = None,
                       estimated_dims: Mapping[str, int] | None = None) -> dict[str, ObservationKey]:
    """Every key of an observation: the cameras' images (none when ``image_size`` is None), proprioception, with
    ``sim_dims`` (length of each sim-only key, from the twin's task) the sim-only keys, and with ``estimated_dims``
    the estimated keys (from :class:`perception.task_state.TaskStateLayout`)."""
    schema: dict[str, ObservationKey] = {}
    if image_size is not None:
        for name in cameras:
            schema.update((k.name, k) for k in camera_keys(name, cell.camera(name).optical_frame, image_size, depth))
    schema.update(PROPRIOCEPTION)
    if sim_dims is not None:
        unknown = sorted(set(sim_dims) - set(SIM_ONLY))
        if unknown:
            raise KeyError(f"sim_dims {unknown} are not sim-only keys {list(SIM_ONLY_KEYS)}")
        schema.update((key, SIM_ONLY[key].with_shape((n,))) for key, n in sim_dims.items())
    if estimated_dims is not None:
        unknown = sorted(set(estimated_dims) - set(ESTIMATED))
        if unknown:
            raise KeyError(f"estimated_dims {unknown} are not estimated keys {list(ESTIMATED_KEYS)}")
        schema.update((key, ESTIMATED[key].with_shape((n,))) for key, n in estimated_dims.items())
    return schema


def rot6d_from_matrix(rot: np.ndarray) -> np.ndarray:
    """(6,) the first two columns of a 3x3 rotation, one after the other (continuous, unlike a quaternion)."""
    return np.asarray(rot)[:, :2].T.reshape(6)


def matrix_from_rot6d(rot6d: np.ndarray) -> np.ndarray:
    """The 3x3 rotation whose first two columns ``rot6d`` holds (third: their cross product; not re-orthonormalised)."""
    x, y = rot6d[:3], rot6d[3:6]
    return np.stack([x, y, np.cross(x, y)], axis=1)


def proprio_observation(state: RobotState) -> dict[str, np.ndarray]:
    """The proprioceptive keys of an observation from what the robot (or the twin) reports."""
    return {
        "tcp_position": np.array(state.tcp_position_m, dtype=np.float32),
        "tcp_rot6d": rot6d_from_matrix(quat_xyzw_to_matrix(state.tcp_quaternion_xyzw)).astype(np.float32),
        "tcp_quaternion": np.array(state.tcp_quaternion_xyzw, dtype=np.float32),
        "joint_pos": np.array(state.joint_positions_rad, dtype=np.float32),
        "gripper_width": np.array([state.gripper_width_m], dtype=np.float32),
    }
