"""``session_node``: records synchronised camera, robot and action topics into the zarr EpisodeStore.

Services (``~/`` is the node's name): ``~/start`` and ``~/stop`` (std_srvs/Trigger), ``~/accept``
(std_srvs/SetBool, ``data`` = success) which commits the episode whole, ``~/discard`` (Trigger). Events go
out on ``~/events`` (std_msgs/String: ``start``, ``stop``, ``accept <index> <success>``, ``discard``) so a
``ros2 bag record`` of the session can be split into the same episodes by ``manip-stack import-bag``.

A step is recorded per action message, at the action's stamp (the stamp of the observation the action was
computed from), from the camera, joint-state and TCP samples nearest that stamp within
``sync_tolerance_s``; a step missing a stream is skipped and counted, never stored half-filled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from controllers.actions import ACTION_NAMES
from robot_learning.data.episode_store import EpisodeStoreError
from robot_learning.sessions.recorder import SessionError, SessionParams, SessionRecorder
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, SENSOR_QOS, STATE_QOS, declare_parameters, run_node

SUMMARY = "Start/stop/accept/discard episodes; records synchronised topics into a crash-safe zarr EpisodeStore."


class SessionNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("session_node", **kwargs)
        self.params = declare_parameters(self, SessionParams)
        self.recorder: SessionRecorder | None = None

    def configure(self) -> None:
        p = self.params
        try:
            self.recorder = SessionRecorder(p)
        except EpisodeStoreError as exc:  # locked by another writer, or not a store: the operator's to fix
            raise ValueError(str(exc)) from exc
        cell = self.recorder.cell
        self.arm_joints = [p.joint_prefix + j.name for j in cell.robot.joints]
        for name in self.recorder.builder.cameras:
            cam = cell.camera(name)
            self.create_subscription(Image, cam.topic("color"), lambda m, n=name: self._on_rgb(n, m), SENSOR_QOS)
            if p.record_depth:
                self.create_subscription(Image, cam.topic("depth"), lambda m, n=name: self._on_depth(n, m),
                                         SENSOR_QOS)
        self.create_subscription(JointState, p.joint_states_topic, self._on_joints, STATE_QOS)
        self.create_subscription(PoseStamped, p.tcp_pose_topic, self._on_tcp, STATE_QOS)
        self.create_subscription(JointTrajectory, p.action_topic, self._on_action, COMMAND_QOS)
        if p.record_estimates:
            self.create_subscription(Float64MultiArray, p.estimated_topic, self._on_estimated, STATE_QOS)
        self._events = self.create_publisher(String, "~/events", COMMAND_QOS)
        self.create_service(Trigger, "~/start", self._trigger(lambda: self.recorder.start(), "start"))
        self.create_service(Trigger, "~/stop", self._trigger(lambda: self.recorder.stop(), "stop"))
        self.create_service(Trigger, "~/discard", self._trigger(lambda: self.recorder.discard(), "discard"))
        self.create_service(SetBool, "~/accept", self._on_accept)
        store = self.recorder.store
        self.get_logger().info(f"recording into {store.path} ({store.n_episodes} episodes so far), "
                               f"cameras {self.recorder.builder.cameras}")

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    # ------------------------------------------------------------------ streams
    def _on_rgb(self, camera: str, msg: Image) -> None:
        self.recorder.builder.add_rgb(camera, conv.stamp_to_seconds(msg.header.stamp), conv.image_to_rgb(msg))

    def _on_depth(self, camera: str, msg: Image) -> None:
        depth = conv.image_to_depth_m(msg, self.params.depth_scale_m)
        self.recorder.builder.add_depth(camera, conv.stamp_to_seconds(msg.header.stamp), depth)

    def _on_joints(self, msg: JointState) -> None:
        try:
            reading = conv.joint_state_to_arrays(msg, self.arm_joints)
        except conv.ConversionError:
            return
        names = list(msg.name)
        gripper = self.params.gripper_joint
        width = float(msg.position[names.index(gripper)]) * self.params.gripper_joint_scale if gripper in names \
            else 0.0
        self.recorder.builder.add_joints(reading.stamp_s, reading.positions, width)

    def _on_estimated(self, msg: Float64MultiArray) -> None:
        # The array has no header: stamped on arrival, it joins steps up to estimate_max_age_s later.
        stamp = self.get_clock().now().nanoseconds * 1e-9
        try:
            self.recorder.builder.add_estimated(stamp, np.asarray(msg.data))
        except ValueError as exc:
            self.get_logger().error(str(exc), throttle_duration_sec=5.0)

    def _on_tcp(self, msg: PoseStamped) -> None:
        pose = conv.pose_to_arrays(msg)
        self.recorder.builder.add_tcp(pose.stamp_s, pose.position_m, pose.quaternion_xyzw)

    def _on_action(self, msg: JointTrajectory) -> None:
        if tuple(msg.joint_names) != ACTION_NAMES or not msg.points:
            return
        self.recorder.on_action(conv.stamp_to_seconds(msg.header.stamp), np.asarray(msg.points[0].positions))

    # ------------------------------------------------------------------ services
    def _emit(self, event: str) -> None:
        self._events.publish(String(data=event))

    def _trigger(self, action, event: str):
        def callback(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            try:
                response.message = action()
                response.success = True
                self._emit(event)
            except SessionError as exc:
                response.success, response.message = False, str(exc)
            self.get_logger().info(f"{event}: {response.message}")
            return response

        return callback

    def _on_accept(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        try:
            index = self.recorder.accept(bool(request.data))
        except SessionError as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success = True
        response.message = f"committed episode {index} (success={bool(request.data)})"
        self._emit(f"accept {index} {bool(request.data)}")
        self.get_logger().info(response.message)
        return response


def main(args: list[str] | None = None) -> int:
    return run_node(SessionNode, name="session_node", summary=SUMMARY, params=SessionParams, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
