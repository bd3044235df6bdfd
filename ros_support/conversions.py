"""ROS 2 messages <-> numpy for the stack's sensors and commands, for rclpy and for rosbags alike.

Why one module for both: the nodes get rclpy's message classes, the bag importer and the no-ROS tests get
``rosbags``' typestore classes, and the field names are the same. What differs is how arrays are stored:
rclpy wants ``array.array`` for unbounded sequences and numpy for fixed arrays, and its constructors fill
defaults; rosbags' dataclasses want every field, numpy for every numeric array. A :class:`MessageFactory`
hides exactly that, so every builder below runs unchanged on both (the tests compare the CDR bytes).

Conventions (REP-103/105 and what realsense-ros publishes):
- ``header.stamp`` is the acquisition time (sensor) or the time the command is meant for; with
  ``use_sim_time`` it is sim time from ``/clock``. Seconds are split into ``sec``/``nanosec`` exactly.
- Images and camera infos carry the camera's optical frame (``<camera>_color_optical_frame``: x right,
  y down, z forward); poses and point clouds the robot base frame; ``JointState`` no frame.
- Colour is ``rgb8`` (``bgr8`` read too); aligned depth is ``16UC1`` in millimetres (the driver's format, a
  ``depth_scale_m`` of 0.001) or ``32FC1`` in metres. Decoded depth is float32 metres, 0 where invalid.
- Point clouds: ``x, y, z`` float32 plus PCL's packed ``rgb`` (0x00RRGGBB stored in a float32 field).
"""

from __future__ import annotations

import array
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware_configs.schema import Intrinsics

# sensor_msgs/PointField datatypes
_POINTFIELD_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32,
                      7: np.float32, 8: np.float64}
_FLOAT32 = 7
_IMAGE_DTYPES = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
                 "mono8": (np.uint8, 1), "16UC1": (np.uint16, 1), "mono16": (np.uint16, 1), "32FC1": (np.float32, 1)}
DEPTH_ENCODINGS = ("16UC1", "32FC1")


class ConversionError(ValueError):
    """A message that cannot be turned into the array asked for (wrong encoding, size, missing joint)."""


# ------------------------------------------------------------------------------------------ factories


class MessageFactory:
    """Message classes by full name (``sensor_msgs/msg/Image``) plus how that backend stores arrays."""

    def cls(self, name: str) -> type:
        raise NotImplementedError

    def make(self, msg_type: str, /, **fields: Any) -> Any:
        return self.cls(msg_type)(**fields)

    def sequence(self, values: Any, dtype: Any) -> Any:
        """An unbounded numeric sequence field (``float64[]``, ``uint8[]``)."""
        raise NotImplementedError

    def fixed(self, values: Any, dtype: Any) -> np.ndarray:
        """A fixed-size numeric array field (``float64[9]``): numpy for both backends."""
        return np.ascontiguousarray(values, dtype=dtype).reshape(-1)


class RosbagsFactory(MessageFactory):
    """rosbags' typestore dataclasses (every field required, numpy arrays)."""

    def __init__(self, typestore: Any = None) -> None:
        if typestore is None:
            from rosbags.typesys import Stores, get_typestore

            typestore = get_typestore(Stores.ROS2_JAZZY)
        self.typestore = typestore

    def cls(self, name: str) -> type:
        return self.typestore.types[name]

    def sequence(self, values: Any, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(values, dtype=dtype).reshape(-1)


class RclpyFactory(MessageFactory):
    """rclpy's generated message classes, imported on first use (``sensor_msgs.msg`` ...)."""

    _TYPECODES = {np.dtype(np.uint8): "B", np.dtype(np.float64): "d", np.dtype(np.float32): "f",
                  np.dtype(np.int32): "i", np.dtype(np.uint32): "I"}

    def __init__(self) -> None:
        self._cache: dict[str, type] = {}

    def cls(self, name: str) -> type:
        if name not in self._cache:
            package, kind, type_name = name.split("/")
            self._cache[name] = getattr(importlib.import_module(f"{package}.{kind}"), type_name)
        return self._cache[name]

    def sequence(self, values: Any, dtype: Any) -> array.array:
        arr = np.ascontiguousarray(values, dtype=dtype).reshape(-1)
        return array.array(self._TYPECODES[arr.dtype], arr.tobytes())  # from bytes: no per-element Python loop


# ------------------------------------------------------------------------------------------ time


def split_stamp(stamp_s: float) -> tuple[int, int]:
    """(sec, nanosec) of a time in seconds, rounded to the nanosecond, nanosec in [0, 1e9)."""
    if not math.isfinite(stamp_s) or stamp_s < 0:
        raise ConversionError(f"stamps must be finite and non-negative seconds, got {stamp_s}")
    total_ns = round(stamp_s * 1e9)
    return total_ns // 1_000_000_000, total_ns % 1_000_000_000


def stamp_to_seconds(stamp: Any) -> float:
    """Seconds of a ``builtin_interfaces/Time`` (or ``Duration``)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def time_msg(f: MessageFactory, stamp_s: float) -> Any:
    sec, nanosec = split_stamp(stamp_s)
    return f.make("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def duration_msg(f: MessageFactory, seconds: float) -> Any:
    sec, nanosec = split_stamp(seconds)
    return f.make("builtin_interfaces/msg/Duration", sec=sec, nanosec=nanosec)


def header_msg(f: MessageFactory, stamp_s: float, frame_id: str) -> Any:
    return f.make("std_msgs/msg/Header", stamp=time_msg(f, stamp_s), frame_id=frame_id)


def clock_msg(f: MessageFactory, stamp_s: float) -> Any:
    return f.make("rosgraph_msgs/msg/Clock", clock=time_msg(f, stamp_s))


# ------------------------------------------------------------------------------------------ images


def image_msg(f: MessageFactory, image: np.ndarray, stamp_s: float, frame_id: str, encoding: str | None = None) -> Any:
    """An Image from uint8 HxWx3 (``rgb8``, or ``bgr8`` with the channels swapped), uint16 HxW (``16UC1``) or
    float32 HxW (``32FC1``); ``encoding`` defaults from the dtype and shape."""
    image = np.asarray(image)
    if encoding is None:
        encoding = {(np.dtype(np.uint8), 3): "rgb8", (np.dtype(np.uint16), 2): "16UC1",
                    (np.dtype(np.float32), 2): "32FC1"}.get((image.dtype, image.ndim))
        if encoding is None:
            raise ConversionError(f"no default encoding for an image of dtype {image.dtype} and shape {image.shape}")
    if encoding not in _IMAGE_DTYPES:
        raise ConversionError(f"unsupported encoding {encoding!r}; supported: {sorted(_IMAGE_DTYPES)}")
    dtype, channels = _IMAGE_DTYPES[encoding]
    expected_ndim = 3 if channels > 1 else 2
    if image.ndim != expected_ndim or (channels > 1 and image.shape[2] != channels) or image.dtype != dtype:
        raise ConversionError(f"{encoding} needs {np.dtype(dtype)} with {channels} channel(s), "
                              f"got {image.dtype} {image.shape}")
    if encoding in ("bgr8", "bgra8"):
        image = image[..., [2, 1, 0, *range(3, channels)]]
    height, width = image.shape[:2]
    data = np.ascontiguousarray(image).astype(np.dtype(dtype).newbyteorder("<"), copy=False)
    return f.make("sensor_msgs/msg/Image", header=header_msg(f, stamp_s, frame_id), height=height, width=width,
                  encoding=encoding, is_bigendian=0, step=width * channels * np.dtype(dtype).itemsize,
                  data=f.sequence(data.view(np.uint8), np.uint8))


def depth_image_msg(f: MessageFactory, depth_m: np.ndarray, stamp_s: float, frame_id: str,
                    encoding: str = "16UC1", depth_scale_m: float = 0.001) -> Any:
    """Depth in metres as the driver publishes it: ``16UC1`` counts of ``depth_scale_m`` or ``32FC1`` metres.
    Non-finite, non-positive or out-of-range depths become 0 (invalid), as the RealSense driver writes them."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    valid = np.isfinite(depth_m) & (depth_m > 0)
    if encoding == "32FC1":
        return image_msg(f, np.where(valid, depth_m, 0.0).astype(np.float32), stamp_s, frame_id, "32FC1")
    if encoding != "16UC1":
        raise ConversionError(f"depth encoding must be one of {DEPTH_ENCODINGS}, got {encoding!r}")
    counts = np.where(valid, np.rint(depth_m / depth_scale_m), 0.0)
    counts[counts > np.iinfo(np.uint16).max] = 0
    return image_msg(f, counts.astype(np.uint16), stamp_s, frame_id, "16UC1")


def _image_array(msg: Any) -> np.ndarray:
    """The pixels of an Image as (H, W[, C]) in its own encoding, honouring ``step`` padding and byte order."""
    if msg.encoding not in _IMAGE_DTYPES:
        raise ConversionError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(_IMAGE_DTYPES)}")
    dtype, channels = _IMAGE_DTYPES[msg.encoding]
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    if step < row_bytes or raw.size < step * height:
        raise ConversionError(f"image {width}x{height} {msg.encoding}: step {step} and {raw.size} bytes are too few")
    rows = raw[: step * height].reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder("="), copy=False)
    return pixels.reshape((height, width, channels) if channels > 1 else (height, width))


def image_to_rgb(msg: Any) -> np.ndarray:
    """uint8 HxWx3 RGB from an ``rgb8``/``bgr8``/``rgba8``/``bgra8``/``mono8`` Image."""
    pixels = _image_array(msg)
    if msg.encoding in ("rgb8", "rgba8"):
        return np.ascontiguousarray(pixels[..., :3])
    if msg.encoding in ("bgr8", "bgra8"):
        return np.ascontiguousarray(pixels[..., 2::-1])
    if msg.encoding == "mono8":
        return np.repeat(pixels[..., None], 3, axis=2)
    raise ConversionError(f"image encoding {msg.encoding!r} is not a colour image")


def image_to_depth_m(msg: Any, depth_scale_m: float = 0.001) -> np.ndarray:
    """float32 HxW depth in metres from ``16UC1``/``mono16`` (counts of ``depth_scale_m``) or ``32FC1``; 0 = invalid."""
    pixels = _image_array(msg)
    if msg.encoding in ("16UC1", "mono16"):
        return pixels.astype(np.float32) * np.float32(depth_scale_m)
    if msg.encoding == "32FC1":
        return np.where(np.isfinite(pixels) & (pixels > 0), pixels, 0.0).astype(np.float32)
    raise ConversionError(f"image encoding {msg.encoding!r} is not a depth image; expected one of {DEPTH_ENCODINGS}")


# ------------------------------------------------------------------------------------------ camera info


def scale_intrinsics(intr: Intrinsics, width: int, height: int) -> Intrinsics:
    """The intrinsics of the same camera with its image resized to ``width`` x ``height``."""
    sx, sy = width / intr.width, height / intr.height
    return intr.model_copy(update={"width": width, "height": height, "fx": intr.fx * sx, "fy": intr.fy * sy,
                                   "cx": intr.cx * sx, "cy": intr.cy * sy})


def camera_info_msg(f: MessageFactory, intr: Intrinsics, stamp_s: float, frame_id: str) -> Any:
    """CameraInfo as realsense-ros fills it: K, identity R, P = [K | 0], and the distortion as ``plumb_bob``.

    realsense-ros reports the D400's (inverse) Brown-Conrady coefficients under ``plumb_bob`` (same five
    numbers); a cell without distortion gets ``plumb_bob`` with zeros, which every consumer reads.
    """
    K = intr.matrix()
    P = np.hstack([K, np.zeros((3, 1))])
    distortion = list(intr.distortion) if intr.distortion_model != "none" else [0.0] * 5
    roi = f.make("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return f.make("sensor_msgs/msg/CameraInfo", header=header_msg(f, stamp_s, frame_id), height=intr.height,
                  width=intr.width, distortion_model="plumb_bob", d=f.sequence(distortion, np.float64),
                  k=f.fixed(K, np.float64), r=f.fixed(np.eye(3), np.float64), p=f.fixed(P, np.float64),
                  binning_x=0, binning_y=0, roi=roi)


def camera_info_to_intrinsics(msg: Any) -> Intrinsics:
    K = np.asarray(msg.k, dtype=float).reshape(3, 3)
    d = [float(v) for v in msg.d]
    model = msg.distortion_model if msg.distortion_model in ("plumb_bob",) else "plumb_bob"
    return Intrinsics(width=int(msg.width), height=int(msg.height), fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2],
                      distortion_model=model, distortion=d or [0.0] * 5)


# ------------------------------------------------------------------------------------------ point clouds


def pointcloud_msg(f: MessageFactory, xyz: np.ndarray, stamp_s: float, frame_id: str,
                   rgb: np.ndarray | None = None) -> Any:
    """An unordered PointCloud2 (height 1) of float32 x, y, z [m] and, if given, PCL-packed rgb."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    n = xyz.shape[0]
    names = ["x", "y", "z"] + (["rgb"] if rgb is not None else [])
    record = np.zeros(n, dtype=np.dtype({"names": names, "formats": ["<f4"] * len(names),
                                         "offsets": [0, 4, 8, 12][: len(names)], "itemsize": 4 * len(names)}))
    record["x"], record["y"], record["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    if rgb is not None:
        rgb = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
        if rgb.shape[0] != n:
            raise ConversionError(f"rgb has {rgb.shape[0]} points, xyz {n}")
        packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
        record["rgb"] = packed.view(np.float32)
    fields = [f.make("sensor_msgs/msg/PointField", name=name, offset=4 * i, datatype=_FLOAT32, count=1)
              for i, name in enumerate(names)]
    return f.make("sensor_msgs/msg/PointCloud2", header=header_msg(f, stamp_s, frame_id), height=1, width=n,
                  fields=fields, is_bigendian=False, point_step=record.dtype.itemsize,
                  row_step=record.dtype.itemsize * n, data=f.sequence(record.view(np.uint8), np.uint8),
                  is_dense=bool(np.all(np.isfinite(xyz))))


def pointcloud_to_arrays(msg: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(xyz float32 (N, 3), rgb uint8 (N, 3) or None) of a PointCloud2 with float32 x, y, z (any layout)."""
    by_name = {field.name: field for field in msg.fields}
    missing = [name for name in "xyz" if name not in by_name]
    if missing:
        raise ConversionError(f"point cloud lacks fields {missing}; has {sorted(by_name)}")
    order = ">" if msg.is_bigendian else "<"
    names = [name for name in ("x", "y", "z", "rgb") if name in by_name]
    dtype = np.dtype({"names": names,
                      "formats": [np.dtype(_POINTFIELD_DTYPES[by_name[n].datatype]).newbyteorder(order) for n in names],
                      "offsets": [by_name[n].offset for n in names], "itemsize": int(msg.point_step)})
    n = int(msg.width) * int(msg.height)
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    if int(msg.row_step) * int(msg.height) > raw.size:
        raise ConversionError(f"point cloud of {n} points has only {raw.size} bytes")
    rows = raw[: int(msg.row_step) * int(msg.height)].reshape(int(msg.height), int(msg.row_step))
    points = np.ascontiguousarray(rows[:, : int(msg.point_step) * int(msg.width)]).view(dtype).reshape(-1)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float32)
    rgb = None
    if "rgb" in names:
        packed = np.ascontiguousarray(points["rgb"]).view(np.uint32)
        rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
    return xyz, rgb


# ------------------------------------------------------------------------------------------ robot


def joint_state_msg(f: MessageFactory, names: Sequence[str], positions: np.ndarray, stamp_s: float,
                    velocities: np.ndarray | None = None, efforts: np.ndarray | None = None) -> Any:
    names = list(names)
    for label, values in (("positions", positions), ("velocities", velocities), ("efforts", efforts)):
        if values is not None and len(values) != len(names):
            raise ConversionError(f"{len(names)} joint names but {len(values)} {label}")
    return f.make("sensor_msgs/msg/JointState", header=header_msg(f, stamp_s, ""), name=names,
                  position=f.sequence(positions, np.float64),
                  velocity=f.sequence([] if velocities is None else velocities, np.float64),
                  effort=f.sequence([] if efforts is None else efforts, np.float64))


@dataclass(frozen=True)
class JointReading:
    stamp_s: float
    positions: np.ndarray
    velocities: np.ndarray


def joint_state_to_arrays(msg: Any, names: Sequence[str]) -> JointReading:
    """Positions and velocities of ``names`` in that order (a driver may publish joints in any order)."""
    index = {name: i for i, name in enumerate(msg.name)}
    missing = [name for name in names if name not in index]
    if missing:
        raise ConversionError(f"joint_states lacks joints {missing}; it has {list(msg.name)}")
    position = np.asarray(msg.position, dtype=np.float64)
    velocity = np.asarray(msg.velocity, dtype=np.float64)
    rows = [index[name] for name in names]
    vel = velocity[rows] if velocity.size == len(msg.name) else np.zeros(len(rows))
    return JointReading(stamp_to_seconds(msg.header.stamp), position[rows], vel)


def gripper_width_m(msg: Any, gripper_joint: str, scale: float = 1.0) -> float | None:
    """The fingers' opening [m] from a joint_states message (``scale`` times the gripper joint's position), or
    None when the message does not carry that joint."""
    names = list(msg.name)
    return float(msg.position[names.index(gripper_joint)]) * scale if gripper_joint in names else None


def pose_msg(f: MessageFactory, position_m: np.ndarray, quaternion_xyzw: np.ndarray, stamp_s: float,
             frame_id: str) -> Any:
    """PoseStamped of ``frame_id``'s child: position [m], quaternion (x, y, z, w)."""
    x, y, z = (float(v) for v in position_m)
    qx, qy, qz, qw = (float(v) for v in quaternion_xyzw)
    pose = f.make("geometry_msgs/msg/Pose", position=f.make("geometry_msgs/msg/Point", x=x, y=y, z=z),
                  orientation=f.make("geometry_msgs/msg/Quaternion", x=qx, y=qy, z=qz, w=qw))
    return f.make("geometry_msgs/msg/PoseStamped", header=header_msg(f, stamp_s, frame_id), pose=pose)


@dataclass(frozen=True)
class PoseReading:
    stamp_s: float
    frame_id: str
    position_m: np.ndarray
    quaternion_xyzw: np.ndarray


def pose_to_arrays(msg: Any) -> PoseReading:
    p, q = msg.pose.position, msg.pose.orientation
    return PoseReading(stamp_to_seconds(msg.header.stamp), str(msg.header.frame_id),
                       np.array([p.x, p.y, p.z], dtype=float), np.array([q.x, q.y, q.z, q.w], dtype=float))


def joint_trajectory_msg(f: MessageFactory, names: Sequence[str], positions: np.ndarray,
                         times_from_start_s: Sequence[float], stamp_s: float, frame_id: str = "") -> Any:
    """JointTrajectory with one point per row of ``positions`` (K, n), each at its ``time_from_start``.

    A zero stamp means "start when received", as ros2_control's JointTrajectoryController reads it.
    """
    positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    names = list(names)
    if positions.shape[1] != len(names) or positions.shape[0] != len(times_from_start_s):
        raise ConversionError(f"trajectory of shape {positions.shape} for {len(names)} joints and "
                              f"{len(times_from_start_s)} times")
    empty = f.sequence([], np.float64)
    points = [f.make("trajectory_msgs/msg/JointTrajectoryPoint", positions=f.sequence(row, np.float64),
                     velocities=empty, accelerations=empty, effort=empty, time_from_start=duration_msg(f, t))
              for row, t in zip(positions, times_from_start_s, strict=True)]
    return f.make("trajectory_msgs/msg/JointTrajectory", header=header_msg(f, stamp_s, frame_id), joint_names=names,
                  points=points)


@dataclass(frozen=True)
class TrajectoryReading:
    stamp_s: float
    names: list[str]
    positions: np.ndarray  # (K, n)
    times_from_start_s: np.ndarray  # (K,)


def joint_trajectory_to_arrays(msg: Any) -> TrajectoryReading:
    names = list(msg.joint_names)
    rows = [np.asarray(p.positions, dtype=np.float64) for p in msg.points]
    for k, row in enumerate(rows):
        if row.shape != (len(names),):
            raise ConversionError(f"trajectory point {k} has {row.size} positions for {len(names)} joints")
    positions = np.stack(rows) if rows else np.zeros((0, len(names)))
    times = np.array([stamp_to_seconds(p.time_from_start) for p in msg.points], dtype=np.float64)
    return TrajectoryReading(stamp_to_seconds(msg.header.stamp), names, positions, times)


def float_array_msg(f: MessageFactory, values: Sequence[float]) -> Any:
    """std_msgs/Float64MultiArray with an empty layout (a ros2_control forward command controller's input)."""
    layout = f.make("std_msgs/msg/MultiArrayLayout", dim=[], data_offset=0)
    return f.make("std_msgs/msg/Float64MultiArray", layout=layout, data=f.sequence(values, np.float64))
