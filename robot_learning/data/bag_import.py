"""``manip-stack import-bag``: ROS 2 bags (``.db3`` or ``.mcap``, from ``ros2 bag record``) → episodes, no ROS.

Each bag is read with ``rosbags`` in two passes: every camera, joint-state, TCP-pose and action message is
decoded into per-stream buffers (images resized to the stored size at once), then steps are assembled with
the same :class:`robot_learning.data.robot_steps.StepBuilder` as the live ``session_node``:

- with actions in the bag (``/manip/action``), one step per action at its stamp (the observation's stamp);
- without, steps at the cell's policy rate, the action being the motion that happened until the next step
  (TCP delta, rotation vector, and gripper closure from the measured opening).

Episodes: a bag with ``session_node`` events (``~/events``: start, accept, discard) is split into the episodes
the operator accepted, in the order they were accepted (bag receive times separate them); a bag without events
is one episode. Episodes are appended to the store one commit each, so an interrupted import keeps the bags it
finished.

Before anything is written, every bag is checked for the topics the import needs (the cell's camera topics, the
joint-state and TCP-pose topics; actions and session events are optional): a bag without them, or with one of
another message type, is refused with the topics it has, the topics needed and what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from controllers.actions import ACTION_NAMES, delta_action_between
from hardware_configs import load_cell, load_task
from hardware_configs.schema import CellConfig
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.robot_steps import MissingStreamsError, StepBuilder
from ros_support import conversions as conv

log = logging.getLogger(__name__)


@dataclass
class ImportOptions:
    cell: str = "franka_3cam"
    task: str = "lift"
    cameras: list[str] | None = None
    image_size: tuple[int, int] = (96, 96)
    depth: bool = False
    tolerance_s: float = 0.06
    depth_scale_m: float = 0.001
    joint_prefix: str = ""
    gripper_joint: str = "gripper_width"
    gripper_joint_scale: float = 1.0
    joint_states_topic: str = "/joint_states"
    tcp_pose_topic: str = "/tcp_pose"
    action_topic: str = "/manip/action"
    events_topic: str = "/session_node/events"
    success: bool = False  # for bags without session events


@dataclass
class ImportReport:
    out: Path
    bags: int = 0
    episodes: int = 0
    steps: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        skipped = f"; steps skipped for missing streams: {self.skipped}" if self.skipped else ""
        return f"imported {self.episodes} episodes ({self.steps} steps) from {self.bags} bags into {self.out}{skipped}"


IMAGE, JOINT_STATE, STRING = "sensor_msgs/msg/Image", "sensor_msgs/msg/JointState", "std_msgs/msg/String"
POSE_STAMPED, TRAJECTORY = "geometry_msgs/msg/PoseStamped", "trajectory_msgs/msg/JointTrajectory"


class BagTopicsError(ValueError):
    """A bag lacks topics the import needs, or holds one with another message type (a ``ValueError``: the CLI
    reports it in one line, exit 2)."""


def needed_topics(
    cell: CellConfig, cameras: Sequence[str], opts: ImportOptions
) -> tuple[dict[str, str], dict[str, str]]:
    """(required, optional) topic -> message type, from the cell's camera topics and the topic options."""
    required: dict[str, str] = {}
    for name in cameras:
        cam = cell.camera(name)
        required[cam.topic("color")] = IMAGE
        if opts.depth:
            required[cam.topic("depth")] = IMAGE
    required[opts.joint_states_topic] = JOINT_STATE
    required[opts.tcp_pose_topic] = POSE_STAMPED  # the stamp pairs it with images; motion-derived actions need it
    optional = {opts.action_topic: TRAJECTORY, opts.events_topic: STRING}
    return required, optional


def check_bag_topics(path: Path, cell: CellConfig, cameras: Sequence[str], opts: ImportOptions) -> None:
    """Raise :class:`BagTopicsError` unless ``path`` holds every required topic, with messages, of the right type.

    Checked from the bag's index (no message is read), for every bag before the store is touched.
    """
    from rosbags.rosbag2 import Reader

    with Reader(path) as reader:
        found: dict[str, tuple[set[str], int]] = {}
        for c in reader.connections:
            types, count = found.get(c.topic, (set(), 0))
            found[c.topic] = (types | {c.msgtype}, count + c.msgcount)
    required, optional = needed_topics(cell, cameras, opts)
    missing = [topic for topic in required if found.get(topic, (set(), 0))[1] == 0]
    wrong = [
        f"{topic} is {', '.join(sorted(found[topic][0]))}, import needs {msgtype}"
        for topic, msgtype in {**required, **optional}.items()
        if topic in found and found[topic][0] != {msgtype}
    ]
    if not missing and not wrong:
        return
    has = ", ".join(
        f"{topic} ({', '.join(sorted(types))}, {count} messages)" for topic, (types, count) in sorted(found.items())
    )
    needs = ", ".join(f"{topic} ({msgtype})" for topic, msgtype in required.items())
    problems = ([f"missing: [{', '.join(missing)}]"] if missing else []) + (
        [f"wrong type: [{'; '.join(wrong)}]"] if wrong else []
    )
    raise BagTopicsError(
        f"bag {path} has topics [{has or 'none'}]; import needs [{needs}] (cell {cell.name}, cameras "
        f"{list(cameras)}; optional: {', '.join(optional)}); {'; '.join(problems)}. Check the cell's camera names "
        f"and namespaces, or pass the bag's topics (--joint-states-topic, --tcp-pose-topic, --cameras)"
    )


def deserialize(typestore: Any, raw: bytes | memoryview, msgtype: str) -> Any:
    """CDR → message, tolerating Fast-CDR's padding after a trailing empty sequence (rosbags rejects it)."""
    from rosbags.serde import SerdeError

    try:
        return typestore.deserialize_cdr(raw, msgtype)
    except SerdeError:
        msgdef = typestore.get_msgdef(msgtype)
        little = bool(bytes(raw[1:2]) == b"\x01")
        func = msgdef.deserialize_cdr_le if little else msgdef.deserialize_cdr_be
        return func(raw[4:], 0, msgdef.cls, typestore)[0]


@dataclass
class _Bag:
    """Decoded content of one bag: filled buffers, action events and session events, in receive time."""

    builder: StepBuilder
    actions: list[tuple[int, float, np.ndarray]] = field(default_factory=list)  # (log ns, stamp s, action)
    tcp_times: list[tuple[int, float]] = field(default_factory=list)  # (log ns, stamp s)
    widths: list[tuple[float, float]] = field(default_factory=list)  # (stamp s, gripper width m)
    events: list[tuple[int, str]] = field(default_factory=list)


def _read_bag(path: Path, opts: ImportOptions, builder: StepBuilder, typestore: Any) -> _Bag:
    from rosbags.rosbag2 import Reader

    cell = builder.cell
    cam_topics = {}
    for name in builder.cameras:
        cam = cell.camera(name)
        cam_topics[cam.topic("color")] = ("rgb", name)
        if opts.depth:
            cam_topics[cam.topic("depth")] = ("depth", name)
    arm = [opts.joint_prefix + j.name for j in cell.robot.joints]
    bag = _Bag(builder)
    with Reader(path) as reader:
        wanted = [c for c in reader.connections if c.topic in cam_topics or c.topic in (
            opts.joint_states_topic, opts.tcp_pose_topic, opts.action_topic, opts.events_topic)]
        for connection, log_ns, raw in reader.messages(connections=wanted):
            msg = deserialize(typestore, raw, connection.msgtype)
            topic = connection.topic
            if topic in cam_topics:
                kind, name = cam_topics[topic]
                stamp = conv.stamp_to_seconds(msg.header.stamp)
                if kind == "rgb":
                    builder.add_rgb(name, stamp, conv.image_to_rgb(msg))
                else:
                    builder.add_depth(name, stamp, conv.image_to_depth_m(msg, opts.depth_scale_m))
            elif topic == opts.joint_states_topic:
                try:
                    reading = conv.joint_state_to_arrays(msg, arm)
                except conv.ConversionError:
                    continue
                names = list(msg.name)
                width = (float(msg.position[names.index(opts.gripper_joint)]) * opts.gripper_joint_scale
                         if opts.gripper_joint in names else 0.0)
                builder.add_joints(reading.stamp_s, reading.positions, width)
                bag.widths.append((reading.stamp_s, width))
            elif topic == opts.tcp_pose_topic:
                pose = conv.pose_to_arrays(msg)
                builder.add_tcp(pose.stamp_s, pose.position_m, pose.quaternion_xyzw)
                bag.tcp_times.append((log_ns, pose.stamp_s))
            elif topic == opts.action_topic:
                if tuple(msg.joint_names) == ACTION_NAMES and len(msg.points):
                    action = np.asarray(msg.points[0].positions, dtype=np.float64)
                    bag.actions.append((log_ns, conv.stamp_to_seconds(msg.header.stamp), action))
            else:
                bag.events.append((log_ns, str(msg.data)))
    return bag


def _segments(bag: _Bag, success: bool) -> list[tuple[int, int, bool]]:
    """(first log ns, last log ns, success) of each accepted episode; the whole bag without events."""
    if not bag.events:
        return [(-1, 2**63 - 1, success)]
    out, start = [], None
    for log_ns, event in sorted(bag.events):
        word, *rest = event.split()
        if word == "start":
            start = log_ns
        elif word == "accept" and start is not None:
            out.append((start, log_ns, len(rest) >= 2 and rest[1] == "True"))
            start = None
        elif word == "discard":
            start = None
    return out


def _steps_with_actions(bag: _Bag, lo: int, hi: int) -> list[tuple[float, np.ndarray]]:
    """One step per action, in stamp order; a repeated stamp (two actions from one observation) keeps the first."""
    steps: list[tuple[float, np.ndarray]] = []
    for _, stamp, action in sorted((a for a in bag.actions if lo <= a[0] <= hi), key=lambda a: (a[1], a[0])):
        if not steps or stamp > steps[-1][0]:
            steps.append((stamp, action))
    return steps


def _steps_from_motion(bag: _Bag, lo: int, hi: int, period_s: float, max_width_m: float) -> list[tuple[float,
                                                                                                          np.ndarray]]:
    stamps = [stamp for log_ns, stamp in bag.tcp_times if lo <= log_ns <= hi]
    if len(stamps) < 2:
        return []
    times = np.arange(min(stamps), max(stamps) - period_s + 1e-9, period_s)
    width_t = np.array([w[0] for w in bag.widths]) if bag.widths else np.zeros(1)
    width_v = np.array([w[1] for w in bag.widths]) if bag.widths else np.full(1, max_width_m)
    steps = []
    for t in times:
        a, b = bag.builder.tcp_at(t), bag.builder.tcp_at(t + period_s)
        if a is None or b is None:
            continue
        closure = 1.0 - float(np.interp(t + period_s, width_t, width_v)) / max_width_m
        steps.append((float(t), delta_action_between(a[0], a[1], b[0], b[1], float(np.clip(closure, 0.0, 1.0)))))
    return steps


def import_bags(bags: Sequence[str | Path], out: str | Path, opts: ImportOptions | None = None) -> ImportReport:
    """Append the episodes of ``bags`` to the store at ``out`` (created with the robot schema if absent)."""
    from rosbags.typesys import Stores, get_typestore

    opts = opts or ImportOptions()
    cell, task = load_cell(opts.cell), load_task(opts.task)
    cameras = opts.cameras or [c.name for c in cell.cameras]
    typestore = get_typestore(Stores.ROS2_JAZZY)
    probe = StepBuilder(cell, cameras, opts.image_size, opts.depth, opts.tolerance_s)
    attrs = {"cell": cell.name, "task": task.name, "instruction": task.instruction, "source": "ros2_bag",
             "policy_hz": cell.rates.policy_hz, "image_size": list(opts.image_size)}
    report = ImportReport(Path(out))
    for path in bags:
        if not Path(path).exists():
            raise FileNotFoundError(f"no bag at {path}")
    for path in bags:  # all of them before the store is touched: a bad bag leaves nothing half-imported
        check_bag_topics(Path(path), cell, cameras, opts)
    with EpisodeStore.open_or_create(out, probe.specs, attrs) as store:
        for path in map(Path, bags):
            builder = StepBuilder(cell, cameras, opts.image_size, opts.depth, opts.tolerance_s, buffer_len=None)
            bag = _read_bag(path, opts, builder, typestore)
            report.bags += 1
            for lo, hi, success in _segments(bag, opts.success):
                steps = (_steps_with_actions(bag, lo, hi) if bag.actions else
                         _steps_from_motion(bag, lo, hi, 1.0 / cell.rates.policy_hz, cell.robot.gripper.max_width_m))
                with store.begin_episode({"task": task.name, "operator": "import-bag", "bag": path.name}) as ep:
                    for stamp, action in steps:
                        try:
                            ep.add_step(**builder.step(stamp, action))
                        except MissingStreamsError as exc:
                            for name in exc.streams:
                                report.skipped[name] = report.skipped.get(name, 0) + 1
                    if len(ep) == 0:
                        log.warning("%s: an episode with no complete step was skipped", path)
                        continue
                    report.steps += len(ep)
                    ep.commit(success=success)
                    report.episodes += 1
    return report
