"""``manip-stack export-mcap``: episodes of a store as a ROS 2 MCAP bag, on the robot graph's own topics.

Foxglove (and rerun, and ``ros2 bag play``) read it as a recording of the robot: written with ``rosbags`` (CDR
messages with their ROS 2 Jazzy schemas, MCAP storage), no ROS needed. The topics are the ones ``import-bag`` and
``session_node`` use, so ``import-bag`` turns the file back into the same episodes (a round trip):

- per camera (the cell's realsense-ros names): ``color/image_raw`` (rgb8), ``aligned_depth_to_color/image_raw``
  (16UC1 millimetres, as the driver publishes) and ``color/camera_info`` (intrinsics of the stored image size);
- ``/joint_states`` (arm joints + ``gripper_width`` [m]), ``/tcp_pose`` (PoseStamped in the base frame);
- ``/manip/action`` (JointTrajectory with the action's names, stamped with its observation's stamp, as
  ``policy_node`` publishes), ``/manip/reward`` (Float32);
- ``/session_node/events``: ``start`` and ``accept <i> <success>`` around each episode, as ``session_node`` says;
- ``/tf_static`` (camera optical frames in base or flange) and ``/tf`` (base -> flange per step), so a 3-D panel
  places the cameras; ``/twin/<object>/pose`` (privileged: the twin's truth) and ``/perception/<object>/pose``
  (``estimated``) when the store has them.

Time: episodes are laid end to end from the first episode's start time (their own clocks restart at 0), one
policy period apart. Log time = stamp + a few milliseconds, as a recorder receives messages.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from controllers.actions import ACTION_NAMES
from geometry.transforms import matrix_to_quat_xyzw, pose_to_matrix
from hardware_configs import load_cell, load_task
from hardware_configs.schema import CameraMount, CellConfig
from robot_learning.data.episode_store import EpisodeStore
from ros_support import conversions as conv

RECEIVE_DELAY_S = 0.005  # log time after the stamp
ACTION_DELAY_S = 0.02  # an action is received after the observation it was computed from
POSE_DIM = 7


@dataclass
class McapExportReport:
    out: Path
    episodes: int
    steps: int
    messages: int
    topics: list[str]

    def __str__(self) -> str:
        return (f"wrote {self.out} ({self.out.stat().st_size / 2**20:.1f} MiB): {self.episodes} episodes, "
                f"{self.steps} steps, {self.messages} messages on {len(self.topics)} topics")


class _BagWriter:
    """rosbags' Writer with connections made on first use and a message count."""

    def __init__(self, writer: Any, factory: conv.RosbagsFactory) -> None:
        self.writer, self.f, self.connections, self.messages = writer, factory, {}, 0

    def put(self, topic: str, msg: Any, log_s: float) -> None:
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msg.__msgtype__, typestore=self.f.typestore)
        self.writer.write(self.connections[topic], round(log_s * 1e9),
                          self.f.typestore.serialize_cdr(msg, msg.__msgtype__))
        self.messages += 1


def _transform(f: conv.RosbagsFactory, T: np.ndarray, stamp_s: float, parent: str, child: str) -> Any:
    q = matrix_to_quat_xyzw(T[:3, :3])
    x, y, z = (float(v) for v in T[:3, 3])
    transform = f.make("geometry_msgs/msg/Transform",
                       translation=f.make("geometry_msgs/msg/Vector3", x=x, y=y, z=z),
                       rotation=f.make("geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                       w=float(q[3])))
    return f.make("geometry_msgs/msg/TransformStamped", header=conv.header_msg(f, stamp_s, parent),
                  child_frame_id=child, transform=transform)


def _tf(f: conv.RosbagsFactory, transforms: list[Any]) -> Any:
    return f.make("tf2_msgs/msg/TFMessage", transforms=transforms)


def export_mcap(store_path: str | Path, out: str | Path, episodes: Sequence[int] | None = None,
                events_topic: str = "/session_node/events", action_topic: str = "/manip/action",
                joint_states_topic: str = "/joint_states", tcp_pose_topic: str = "/tcp_pose",
                gripper_joint: str = "gripper_width") -> McapExportReport:
    """Write ``episodes`` (default all) of the store at ``store_path`` to ``out``: an ``.mcap`` file, or a ROS 2 bag
    directory (``metadata.yaml`` + ``.mcap``) for any other name. An existing ``out`` is refused."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; exports never overwrite")
    with EpisodeStore.open(store_path) as store:
        cell = load_cell(store.attrs.get("cell") or "franka_3cam")
        task = load_task(store.attrs.get("task") or "lift")
        chosen = list(range(store.n_episodes)) if episodes is None else list(episodes)
        bad = [i for i in chosen if not 0 <= i < store.n_episodes]
        if bad:
            raise ValueError(f"episode(s) {bad} are not in {store_path}, which has {store.n_episodes}")
        missing = [k for k in ("tcp_position", "tcp_quaternion", "joint_pos", "gripper_width", "action", "timestamp")
                   if k not in store.specs]
        if missing:
            raise ValueError(f"{store_path} lacks {missing}: the robot graph's topics need them")
        names = [o.name for o in task.objects] + [x.name for x in task.fixtures]
        f = conv.RosbagsFactory()
        bag_dir = Path(tempfile.mkdtemp(prefix=".export_", dir=out.parent)) / out.stem if out.suffix == ".mcap" \
            else out
        out.parent.mkdir(parents=True, exist_ok=True)
        steps = 0
        with Writer(bag_dir, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            bag = _BagWriter(writer, f)
            t0 = float(store.episode_info(chosen[0]).get("start_time_unix_s", 0.0) or 0.0) if chosen else 0.0
            offset = t0 if t0 > 0 else 1.0
            _static_tf(bag, cell, offset)
            for index in chosen:
                episode, info = store.get_episode(index), store.episode_info(index)
                stamps = offset + episode["timestamp"] - episode["timestamp"][0]
                bag.put(events_topic, f.make("std_msgs/msg/String", data="start"), stamps[0] - 0.01)
                for k, t in enumerate(stamps):
                    _step(bag, cell, names, {key: v[k] for key, v in episode.items()}, float(t), joint_states_topic,
                          tcp_pose_topic, action_topic, gripper_joint)
                    steps += 1
                bag.put(events_topic, f.make("std_msgs/msg/String", data=f"accept {index} {bool(info['success'])}"),
                        stamps[-1] + 0.05)
                offset = float(stamps[-1]) + 1.0 / cell.rates.policy_hz
            topics = sorted(bag.connections)
            messages = bag.messages
    if bag_dir != out:
        shutil.move(str(next(bag_dir.glob("*.mcap"))), out)
        shutil.rmtree(bag_dir.parent)
    return McapExportReport(out, len(chosen), steps, messages, topics)


def _static_tf(bag: _BagWriter, cell: CellConfig, stamp_s: float) -> None:
    transforms = [_transform(bag.f, c.extrinsics.matrix(), stamp_s, c.extrinsics.parent, c.optical_frame)
                  for c in cell.cameras]
    bag.put("/tf_static", _tf(bag.f, transforms), stamp_s)


def _step(bag: _BagWriter, cell: CellConfig, names: list[str], row: dict[str, np.ndarray], t: float,
          joint_states_topic: str, tcp_pose_topic: str, action_topic: str, gripper_joint: str) -> None:
    f, log_s = bag.f, t + RECEIVE_DELAY_S
    for camera in cell.cameras:
        rgb, depth = row.get(f"{camera.name}_rgb"), row.get(f"{camera.name}_depth")
        if rgb is not None:
            bag.put(camera.topic("color"), conv.image_msg(f, np.asarray(rgb, np.uint8), t, camera.optical_frame),
                    log_s)
        if depth is not None:
            bag.put(camera.topic("depth"), conv.depth_image_msg(f, depth, t, camera.optical_frame), log_s)
        image = rgb if rgb is not None else depth
        if image is not None:
            intr = conv.scale_intrinsics(camera.intrinsics, image.shape[1], image.shape[0])
            bag.put(camera.topic("camera_info"), conv.camera_info_msg(f, intr, t, camera.optical_frame), log_s)
    joints = [j.name for j in cell.robot.joints] + [gripper_joint]
    positions = [*np.asarray(row["joint_pos"], float), float(np.asarray(row["gripper_width"]).reshape(-1)[0])]
    bag.put(joint_states_topic, conv.joint_state_msg(f, joints, positions, t), log_s)
    position, quaternion = np.asarray(row["tcp_position"], float), np.asarray(row["tcp_quaternion"], float)
    bag.put(tcp_pose_topic, conv.pose_msg(f, position, quaternion, t, cell.robot.base_frame), log_s)
    T_flange_tcp = np.eye(4)
    T_flange_tcp[:3, 3] = cell.robot.tcp_offset_m
    T_base_flange = pose_to_matrix(position, quaternion) @ np.linalg.inv(T_flange_tcp)
    if any(c.mount is CameraMount.wrist for c in cell.cameras):
        bag.put("/tf", _tf(f, [_transform(f, T_base_flange, t, cell.robot.base_frame, cell.robot.flange_frame)]),
                log_s)
    for key, prefix in (("privileged", "/twin"), ("estimated", "/perception")):
        flat = np.asarray(row[key], float).reshape(-1) if key in row else np.zeros(0)
        if names and flat.size == POSE_DIM * len(names):
            for name, pose in zip(names, flat.reshape(-1, POSE_DIM), strict=True):
                bag.put(f"{prefix}/{name}/pose", conv.pose_msg(f, pose[:3], pose[3:], t, cell.robot.base_frame),
                        log_s)
    action = np.asarray(row["action"], float)
    bag.put(action_topic, conv.joint_trajectory_msg(f, ACTION_NAMES, [action], [0.0], t), t + ACTION_DELAY_S)
    if "reward" in row:
        bag.put("/manip/reward", f.make("std_msgs/msg/Float32", data=float(row["reward"])), log_s)
