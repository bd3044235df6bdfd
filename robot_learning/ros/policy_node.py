"""``policy_node``: loads a diffusion-policy checkpoint and publishes delta actions at the cell's policy rate.

In: the cameras the checkpoint was trained on (``color/image_raw``), ``/joint_states``, the TCP pose. Out:
``/manip/action`` (trajectory_msgs/JointTrajectory over ``dx dy dz rx ry rz gripper``, one point), stamped with
the stamp of the observation it was computed from, which ``controller_node`` and ``session_node`` rely on.

Start-up refuses a checkpoint whose cameras, image size or inputs the cell cannot provide (for example one
trained with the twin's privileged state), naming each mismatch. At run time, an observation that is missing a
stream or older than ``max_observation_age_s`` is not acted on: nothing is sent and the controller's watchdog
brings the arm to a hold. Inference runs in the policy runner's worker thread, so a slow policy shows up as
dropped late actions and holds, never as a blocked executor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from controllers.actions import ACTION_NAMES
from hardware_configs import load_cell
from robot_learning.ros.policy_core import PolicyLoop, PolicyParams
from robot_learning.runtime.threads import prefer_passive_omp_wait
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, SENSOR_QOS, STATE_QOS, declare_parameters, run_node

SUMMARY = "A trained diffusion policy on the graph: observations in, delta actions out at the policy rate."


class PolicyNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("policy_node", **kwargs)
        self.params = declare_parameters(self, PolicyParams)
        self.loop: PolicyLoop | None = None
        self.actions_sent = 0

    def configure(self) -> None:
        """Load the checkpoint (the node's 'hardware') and check it against the cell before anything runs."""
        from robot_learning.runtime.loading import load_policy

        p = self.params
        self.cell = load_cell(p.cell)
        policy = load_policy(p.checkpoint, device=p.device, seed=p.seed,  # plain or base+residual
                             runtime=p.runtime)
        self.loop = PolicyLoop(policy, self.cell, p, clock=self._now)
        self.arm_joints = [p.joint_prefix + j.name for j in self.cell.robot.joints]
        self.msgs = conv.RclpyFactory()
        for name in self.loop.cameras:
            topic = self.cell.camera(name).topic("color")
            self.create_subscription(Image, topic, lambda m, n=name: self._on_rgb(n, m), SENSOR_QOS)
        self.create_subscription(JointState, p.joint_states_topic, self._on_joints, STATE_QOS)
        self.create_subscription(PoseStamped, p.tcp_pose_topic, self._on_tcp, STATE_QOS)
        if self.loop.estimated_dims:  # the policy reads the robot's estimate of the scene (object_state_node)
            self.create_subscription(Float64MultiArray, p.estimated_topic, self._on_estimated, STATE_QOS)
        self._pub = self.create_publisher(JointTrajectory, p.action_topic, COMMAND_QOS)
        self.create_timer(1.0 / self.cell.rates.policy_hz, self._tick)
        self.get_logger().info(f"policy {p.checkpoint} on cameras {self.loop.cameras} at "
                               f"{self.cell.rates.policy_hz} Hz, images {policy.image_size}")

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_rgb(self, camera: str, msg: Image) -> None:
        self.loop.builder.add_rgb(camera, conv.stamp_to_seconds(msg.header.stamp), conv.image_to_rgb(msg))

    def _on_joints(self, msg: JointState) -> None:
        try:
            reading = conv.joint_state_to_arrays(msg, self.arm_joints)
        except conv.ConversionError:
            return
        width = conv.gripper_width_m(msg, self.params.gripper_joint, self.params.gripper_joint_scale) or 0.0
        self.loop.builder.add_joints(reading.stamp_s, reading.positions, width)

    def _on_tcp(self, msg: PoseStamped) -> None:
        pose = conv.pose_to_arrays(msg)
        self.loop.builder.add_tcp(pose.stamp_s, pose.position_m, pose.quaternion_xyzw)

    def _on_estimated(self, msg: Float64MultiArray) -> None:
        # The array has no header: stamped on arrival, it joins observations up to estimate_max_age_s later.
        try:
            self.loop.builder.add_estimated(self._now(), np.asarray(msg.data))
        except ValueError as exc:
            self.get_logger().error(str(exc), throttle_duration_sec=5.0)

    def _tick(self) -> None:
        result = self.loop.tick(self._now())
        if result is None:
            return
        stamp, action, _source = result
        if not np.all(np.isfinite(action)):
            return  # the runner replaces bad chunks with holds; this is the last line of defence
        self._pub.publish(conv.joint_trajectory_msg(self.msgs, ACTION_NAMES, [action], [0.0], stamp))
        self.actions_sent += 1


def main(args: list[str] | None = None) -> int:
    prefer_passive_omp_wait()  # before the checkpoint loads torch: idle OpenMP threads sleep instead of spinning
    return run_node(PolicyNode, name="policy_node", summary=SUMMARY, params=PolicyParams, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
