"""``controller_node``: policy/teleop commands → safety filter → the robot's low-level controller.

In: delta actions on ``/manip/action`` (trajectory_msgs/JointTrajectory whose "joints" are
``dx dy dz rx ry rz gripper``, one point, stamped with the observation), absolute TCP targets on
``/manip/target_pose`` (PoseStamped, base frame) with ``/manip/gripper_closure`` (Float64), robot state from
``/joint_states`` and the TCP pose topic. Out: JointTrajectory (IK here) or an equilibrium PoseStamped, the
gripper command, ``~/status`` (diagnostic_msgs/DiagnosticArray, 2 Hz) and ``~/safety_events`` (std_msgs/String,
2 Hz: JSON ``{"stamp_s": ..., "counts": {kind: n}}`` of the safety filter's event counters, see
:mod:`controllers.safety`; a command this node refuses before the filter counts as ``upstream_rejected``).
Services: ``~/estop`` latches the e-stop, ``~/reset_estop`` clears it (both std_srvs/Trigger).

Every tick (``cell.rates.control_hz`` on the node clock) goes through :class:`controllers.safe_robot.SafeRobot`:
the stale-command watchdog brakes to a hold when upstream goes silent for ``command_timeout_s``; a watched
camera topic that goes silent makes the arm hold at once, even while commands keep coming, because they are
then computed from old images; a robot state older than ``state_timeout_s`` stops all commanding.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from controllers.actions import ACTION_NAMES
from controllers.interface import CartesianTarget
from controllers.ros.control_core import CommandInput, ControllerParams
from controllers.ros.ros_robot import RosRobot
from controllers.safe_robot import SafeRobot
from controllers.safety import SENSOR_HOLD, UPSTREAM_REJECTED
from hardware_configs import load_cell
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, SENSOR_QOS, declare_parameters, run_node

SUMMARY = "Safety-filtered robot commands from policy/teleop topics, with watchdog, e-stop and camera-dropout hold."


class ControllerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("controller_node", **kwargs)
        self.params = declare_parameters(self, ControllerParams)
        self.holding: str | None = "no robot state yet"
        self.latencies_s: collections.deque[float] = collections.deque(maxlen=1000)
        self._sensor_rx: dict[str, float | None] = {}

    def configure(self) -> None:
        p = self.params
        self.cell = load_cell(p.cell)
        self.robot = RosRobot(self, self.cell, p)
        self.safe = SafeRobot(self.robot, self.cell)
        self.input = CommandInput(self.cell)
        self._last_source: float | None = None
        self.create_subscription(JointTrajectory, p.action_topic, self._on_action, COMMAND_QOS)
        self.create_subscription(PoseStamped, p.target_pose_topic, self._on_target, COMMAND_QOS)
        self.create_subscription(Float64, p.gripper_topic, self._on_gripper, COMMAND_QOS)
        # camera_info comes with every frame and is tiny; raw subscriptions skip deserialising even images
        watched = p.watched_topics or [c.topic("camera_info") for c in self.cell.cameras]
        for topic in watched if p.watch_cameras else []:
            self._sensor_rx[topic] = None
            msg_type = CameraInfo if topic.endswith("camera_info") else Image
            self.create_subscription(msg_type, topic, lambda _raw, topic=topic: self._on_sensor(topic), SENSOR_QOS,
                                     raw=True)
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset_estop", self._on_reset_estop)
        self._pub_status = self.create_publisher(DiagnosticArray, "~/status", 10)
        self._pub_events = self.create_publisher(String, "~/safety_events", 10)
        self.create_timer(1.0 / self.cell.rates.control_hz, self._tick)
        self.create_timer(0.5, self._publish_status)
        self.get_logger().info(f"{p.controller_type} control of {self.cell.name} at "
                               f"{self.cell.rates.control_hz} Hz; "
                               f"watching {list(self._sensor_rx)}")

    # ------------------------------------------------------------------ inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _commanded(self) -> CartesianTarget:
        if self.safe.last_result is not None:
            return self.safe.last_result.target
        return self.robot.read_state().tcp_target(gripper_closure=0.0)

    def _on_action(self, msg: JointTrajectory) -> None:
        if tuple(msg.joint_names) != ACTION_NAMES or not msg.points:
            self._reject(f"action needs joint_names {list(ACTION_NAMES)} and a point; got "
                         f"{list(msg.joint_names)} with {len(msg.points)} points")
            return
        self._accept(lambda now: self.input.on_action(np.asarray(msg.points[0].positions), self._commanded(), now,
                                                      conv.stamp_to_seconds(msg.header.stamp)))

    def _on_target(self, msg: PoseStamped) -> None:
        pose = conv.pose_to_arrays(msg)
        if pose.frame_id not in ("", self.cell.robot.base_frame):
            self._reject(f"target pose in frame {pose.frame_id!r}, expected {self.cell.robot.base_frame!r}: ignored")
            return
        self._accept(lambda now: self.input.on_target(pose.position_m, pose.quaternion_xyzw, self._commanded(), now,
                                                      pose.stamp_s))

    def _on_gripper(self, msg: Float64) -> None:
        self._accept(lambda now: self.input.on_gripper(float(msg.data), self._commanded(), now))

    def _accept(self, apply) -> None:
        if not self.robot.has_state():
            return  # nothing to start from yet
        try:
            apply(self._now())
        except ValueError as exc:
            self._reject(f"rejected command: {exc}")

    def _reject(self, why: str) -> None:
        """A command refused here never reaches the filter: count it with the filter's safety events."""
        self.safe.safety_filter.record_event(UPSTREAM_REJECTED, why)
        self.get_logger().warning(why, throttle_duration_sec=2.0)

    def _on_sensor(self, topic: str) -> None:
        self._sensor_rx[topic] = self._now()

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.safe.estop("~/estop service call")
        self.input.reset()
        response.success, response.message = True, "e-stop latched; call ~/reset_estop to resume"
        return response

    def _on_reset_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self.robot.has_state():
            response.success, response.message = False, "no robot state: cannot restart from the measured pose"
            return response
        self.safe.reset_estop()
        self.input.reset()
        response.success, response.message = True, "e-stop cleared; holding until new commands arrive"
        return response

    # ------------------------------------------------------------------ the control tick
    def _silent_sensor(self, now: float) -> str | None:
        timeout = self.params.sensor_timeout_s
        for topic, rx in self._sensor_rx.items():
            if rx is None or now - rx > timeout:
                return topic
        return None

    def _tick(self) -> None:
        now = self._now()
        if self.robot.state_age_s(now) > self.params.state_timeout_s:
            self.holding = "robot state stale: not commanding"
            return
        now = self.safe.wait_for_tick()  # holds by itself on a latched e-stop or a silent upstream
        f = self.safe.safety_filter
        if f.estop_latched:
            self.holding = f"e-stop: {f.estop_reason}"
            return
        silent = self._silent_sensor(now)
        if silent is not None:
            self.holding = f"no data on {silent}"
            if not f.is_stale(now):  # brake at the filter's limits now, not after command_timeout_s
                self.robot.send_target(f.hold(now, reason=SENSOR_HOLD).target)
            return
        target = self.input.next_target() if self.input.fresh(now, f.command_timeout_s) else None
        if target is None:
            self.holding = "no fresh command"
            return
        self.safe.send_target(target)
        self.holding = None
        source = self.input.source_stamp_s
        if source is not None and source != self._last_source:
            self._last_source = source
            self.latencies_s.append(now - source)

    def _publish_status(self) -> None:
        f = self.safe.safety_filter
        status = DiagnosticStatus(name=self.get_fully_qualified_name(), hardware_id=self.cell.name)
        if f.estop_latched:
            status.level, status.message = DiagnosticStatus.ERROR, f"e-stop latched: {f.estop_reason}"
        elif self.holding:
            status.level, status.message = DiagnosticStatus.WARN, f"holding: {self.holding}"
        else:
            status.level, status.message = DiagnosticStatus.OK, "following commands"
        values: dict[str, object] = {"commands_sent": self.robot.commands_sent}
        if self.latencies_s:  # observation stamp -> first command from that observation, on the node clock
            lat = np.array(self.latencies_s)
            values |= {"source_to_command_p50_ms": round(float(np.median(lat)) * 1e3, 2),
                       "source_to_command_p95_ms": round(float(np.percentile(lat, 95)) * 1e3, 2)}
        values |= {f"violations.{k}": v for k, v in self.safe.violation_counts.items() if v}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub_status.publish(msg)
        self._pub_events.publish(String(data=json.dumps({"stamp_s": self._now(), "counts": self.safe.event_counts})))


def main(args: list[str] | None = None) -> int:
    return run_node(ControllerNode, name="controller_node", summary=SUMMARY, params=ControllerParams, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
