"""``object_state_node``: the task's objects and fixtures from the fused cloud, for the policy, the recorder and
the rewards (the robot's replacement for the twin's privileged state).

In: ``/manip/points`` (the perception node's fused PointCloud2, base frame, x y z rgb), the TCP pose and the
gripper's opening (``/joint_states``) of the cloud's time. Out, per update:

- ``/manip/objects/<name>`` (geometry_msgs/PoseWithCovarianceStamped, base frame): each object's and fixture's
  pose; its covariance is ``(sigma_m / confidence)^2`` on position and ``(sigma_rad / confidence)^2`` on
  rotation, 1e6 when lost (never found, or unseen for several updates);
- ``/manip/estimated`` (std_msgs/Float64MultiArray): the observation keys ``estimated``, ``estimated_relative``
  and ``estimate_confidence`` concatenated in that order (lengths in ``layout.dim[0..2]``), what ``policy_node``
  feeds a policy that reads the estimate; and each key alone on ``/manip/obs/<key>``, where the fine-tuning
  policy node reads observation keys;
- ``/manip/success`` (std_msgs/Bool): the task's success condition on the estimate
  (:class:`perception.task_state.EstimateSuccessJudge`), published only where the estimator is sure of the objects
  the condition names; an online session with ``success_source:=topic`` ends its episode on True, and the operator
  decides where the estimate stays unsure. The episode's starting heights (lift) are taken from the first estimate
  after the session's ``~/status`` reports a new episode running, or from the first estimate at all.

The estimate is :class:`perception.scene_estimator.SceneEstimator`'s, the same code the twin runs in process.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from pydantic import Field
from rclpy.node import Node
from sensor_msgs.msg import JointState, PointCloud2
from std_msgs.msg import Bool, Float64MultiArray, MultiArrayDimension, String

from controllers.interface import RobotState
from hardware_configs import load_cell, load_task
from perception.streams import StreamBuffer
from perception.task_state import EstimateSuccessJudge
from ros_support import conversions as conv
from ros_support.node import SENSOR_QOS, STATE_QOS, declare_parameters, run_node
from ros_support.params import CELL_DESCRIPTION, TASK_DESCRIPTION, CellName, NodeParams, TaskName

SUMMARY = "Fused cloud + robot state -> task object and fixture poses (/manip/objects/*, /manip/estimated)."
LOST_VARIANCE = 1e6


class ObjectStateParams(NodeParams):
    """``object_state_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    task: TaskName = Field("lift", description=TASK_DESCRIPTION + ": the objects and fixtures to find")
    cloud_topic: str = Field("/manip/points", description="sensor_msgs/PointCloud2 in (base frame, x y z rgb)")
    tcp_pose_topic: str = Field("/tcp_pose", description="geometry_msgs/PoseStamped of the TCP in")
    joint_states_topic: str = Field("/joint_states", description="sensor_msgs/JointState in (the gripper)")
    gripper_joint: str = Field("gripper_width", description="joint_states entry of the gripper")
    gripper_joint_scale: float = Field(1.0, ge=1e-6, description="opening [m] = scale * that joint's position")
    robot_tolerance_s: float = Field(0.1, ge=0.0, le=1.0, description="TCP pose this close to the cloud's stamp")
    objects_topic_prefix: str = Field("/manip/objects/", description="one PoseWithCovarianceStamped per name")
    estimated_topic: str = Field("/manip/estimated", description="Float64MultiArray of the estimated keys")
    obs_topic_prefix: str = Field("/manip/obs/", description="and each key alone (Float64MultiArray) under this "
                                  "prefix, as the fine-tuning policy node reads observation keys")
    sigma_m: float = Field(0.002, gt=0.0, description="position std at confidence 1 [m] (the benchmark's error)")
    sigma_rad: float = Field(0.04, gt=0.0, description="rotation std at confidence 1 [rad]")
    success_topic: str = Field("/manip/success", description="std_msgs/Bool out: the task's success condition on "
                               "the estimate, only where the estimator is sure ('' : not published)")
    min_success_confidence: float = Field(0.5, ge=0.0, le=1.0, description="confidence below which the node does "
                                          "not judge success (the operator decides)")
    session_status_topic: str = Field("/finetune_session_node/status", description="std_msgs/String JSON in: a new "
                                      "episode running restarts the success judge ('' : never restarted)")


class ObjectStateNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("object_state_node", **kwargs)
        self.params = declare_parameters(self, ObjectStateParams)
        self.updates = 0

    def configure(self) -> None:
        from perception.scene_estimator import SceneEstimator  # open3d: loaded here, not at import

        p = self.params
        self.cell, self.task = load_cell(p.cell), load_task(p.task)
        self.estimator = SceneEstimator(self.cell, self.task)
        self.success_judge = EstimateSuccessJudge(self.task, p.min_success_confidence)
        self._episode: object = None  # the session's running episode, as its status names it
        self._tcp = StreamBuffer(256)
        self._gripper_width_m: float | None = None
        self.create_subscription(PointCloud2, p.cloud_topic, self._on_cloud, SENSOR_QOS)
        self.create_subscription(PoseStamped, p.tcp_pose_topic, self._on_tcp, STATE_QOS)
        self.create_subscription(JointState, p.joint_states_topic, self._on_joints, STATE_QOS)
        self._pub_poses = {name: self.create_publisher(PoseWithCovarianceStamped, p.objects_topic_prefix + name, 10)
                           for name in self.estimator.layout.names}
        self._pub_estimated = self.create_publisher(Float64MultiArray, p.estimated_topic, 10)
        self._pub_keys = {key: self.create_publisher(Float64MultiArray, p.obs_topic_prefix + key, 10)
                          for key in ("estimated", "estimated_relative", "estimate_confidence")}
        self._pub_success = self.create_publisher(Bool, p.success_topic, 10) if p.success_topic else None
        if p.session_status_topic:
            self.create_subscription(String, p.session_status_topic, self._on_session_status, 10)
        self.get_logger().info(f"estimating {list(self.estimator.layout.names)} of task {self.task.name} "
                               f"from {p.cloud_topic}")

    def _on_session_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        if not isinstance(status, dict) or status.get("phase") != "running":
            return
        if status.get("episode") != self._episode:  # a new episode: its starting heights come from the next estimate
            self._episode = status.get("episode")
            self.success_judge.initial_height_m = {}

    def _on_tcp(self, msg: PoseStamped) -> None:
        pose = conv.pose_to_arrays(msg)
        self._tcp.add(pose.stamp_s, (pose.position_m, pose.quaternion_xyzw))

    def _on_joints(self, msg: JointState) -> None:
        width = conv.gripper_width_m(msg, self.params.gripper_joint, self.params.gripper_joint_scale)
        if width is not None:
            self._gripper_width_m = width

    def _on_cloud(self, msg: PointCloud2) -> None:
        stamp = conv.stamp_to_seconds(msg.header.stamp)
        tcp = self._tcp.nearest(stamp, self.params.robot_tolerance_s)
        if tcp is None or self._gripper_width_m is None:
            return  # no robot state at the cloud's time: the hand could not be told from the objects
        points, rgb = conv.pointcloud_to_arrays(msg)
        colors = (np.full_like(points, 0.5, dtype=np.float32) if rgb is None
                  else np.asarray(rgb, dtype=np.float32) / 255.0)
        position, quaternion = tcp[1]
        robot = RobotState(stamp, np.zeros(7), np.zeros(7), np.asarray(position), np.asarray(quaternion),
                           self._gripper_width_m)
        estimate = self.estimator.update_cloud(points, colors, robot, stamp)
        self._publish(estimate, msg.header.stamp)
        self._judge_success(estimate)
        self.updates += 1

    def _judge_success(self, estimate) -> None:
        judge = self.success_judge
        if not judge.started and np.all(estimate.estimate_confidence[judge.named_indices] >= judge.min_confidence):
            judge.start(estimate.estimated)
        verdict = judge.judge(estimate.estimated, estimate.estimate_confidence)
        if verdict is not None and self._pub_success is not None:
            self._pub_success.publish(Bool(data=bool(verdict)))

    def _publish(self, estimate, stamp_msg) -> None:
        p, layout = self.params, self.estimator.layout
        for i, name in enumerate(layout.names):
            out = PoseWithCovarianceStamped()
            out.header.stamp, out.header.frame_id = stamp_msg, self.cell.robot.base_frame
            pose = estimate.estimated[7 * i : 7 * i + 7].astype(float)
            out.pose.pose.position.x, out.pose.pose.position.y, out.pose.pose.position.z = pose[:3]
            q = out.pose.pose.orientation
            q.x, q.y, q.z, q.w = pose[3:]
            confidence = float(estimate.estimate_confidence[i])
            covariance = np.zeros((6, 6))
            if confidence <= 0.0:
                covariance[np.diag_indices(6)] = LOST_VARIANCE
            else:
                sigmas = [p.sigma_m / confidence] * 3 + [p.sigma_rad / confidence] * 3
                covariance[np.diag_indices(6)] = np.square(sigmas)
            out.pose.covariance = covariance.reshape(-1).tolist()
            self._pub_poses[name].publish(out)
        parts = [estimate.estimated, estimate.estimated_relative, estimate.estimate_confidence]
        array = Float64MultiArray(data=np.concatenate(parts).astype(float).tolist())
        array.layout.dim = [MultiArrayDimension(label=k, size=len(v), stride=len(v))
                            for k, v in zip(("estimated", "estimated_relative", "estimate_confidence"), parts,
                                            strict=True)]
        self._pub_estimated.publish(array)
        for publisher, values in zip(self._pub_keys.values(), parts, strict=True):
            publisher.publish(Float64MultiArray(data=values.astype(float).tolist()))


def main(args: list[str] | None = None) -> int:
    return run_node(ObjectStateNode, name="object_state_node", summary=SUMMARY, params=ObjectStateParams, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
