"""``finetune_policy_node``: base + residual with exploration noise on the graph, recording what PPO needs.

In: ``/joint_states``, the TCP pose, one ``std_msgs/Float64MultiArray`` per observation key that is not
proprioception (``<obs_topic_prefix><key>``: the twin's privileged state in sim, an estimator's output on the
robot), a person's delta actions on ``intervention_topic`` (any teleop device node), and the learner's new weights
on ``weights_topic``. Out: delta actions on ``/manip/action`` at the policy rate while an episode runs, and
``~/progress`` (std_msgs/String JSON: steps, horizon reached, interventions, weights version).

Services, called by ``finetune_session_node``: ``~/begin`` (Trigger; swaps in the newest weights first: weights
change between episodes only), ``~/end`` (SetBool, data = success: commits the episode), ``~/discard``
(Trigger) and ``~/hold`` (SetBool: stop commanding while paused; the controller's watchdog holds the arm).
A sim-only base or residual (privileged inputs) is refused unless ``allow_sim_only`` (the launch sets it with
``use_sim:=true`` only).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from controllers.actions import ACTION_NAMES
from controllers.observations import PROPRIOCEPTION
from hardware_configs import load_cell, load_task
from robot_learning.data.robot_steps import MissingStreamsError, StepBuilder
from robot_learning.sessions.online_actor import (
    STATE_NAME,
    EpisodeRecorder,
    FinetunePolicyParams,
    ResidualActor,
    load_finetune_config,
)
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, STATE_QOS, declare_parameters, run_node

SUMMARY = "Base + residual with exploration noise; records obs, action, log-prob, value and reward per step."
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class FinetunePolicyNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("finetune_policy_node", **kwargs)
        self.params = declare_parameters(self, FinetunePolicyParams)
        self.recorder: EpisodeRecorder | None = None
        self._lock = threading.Lock()
        self._extra: dict[str, np.ndarray] = {}
        self._teleop: tuple[float, np.ndarray] | None = None
        self._held = False
        self._horizon_reached = False
        self._last_obs_t: float | None = None
        self._begin_t = -np.inf  # node clock [s] and system clock [ns] when the running episode began: inputs
        self._begin_ns = 0  # from before it (the last scene's objects, the arm before the reset) are not its

    def configure(self) -> None:
        from robot_learning.rl.base_policy import load_frozen_base

        p = self.params
        torch.set_num_threads(p.torch_threads)
        self.cell, self.task = load_cell(p.cell), load_task(p.task)
        config = load_finetune_config(p.config)
        base = load_frozen_base(Path(p.checkpoint), config, device=p.device)
        if (config.sim_only or base.sim_only) and not p.allow_sim_only:
            raise ValueError(f"{p.checkpoint} / {p.config} read the twin's privileged state, which the robot does "
                             "not have; such a session runs on the twin only (finetune.launch.py use_sim:=true)")
        self.actor = ResidualActor(base, config)
        self.recorder = EpisodeRecorder(Path(p.out_dir), self.cell.name, self.task.name, self.actor.obs_keys)
        state = Path(p.out_dir) / STATE_NAME
        if state.exists():  # a restarted node serves what the learner last published
            self.actor.offer_weights(state)
        self.arm_joints = [p.joint_prefix + j.name for j in self.cell.robot.joints]
        self.builder = StepBuilder(self.cell, [], (96, 96), depth=False, tolerance_s=0.06)
        self.msgs = conv.RclpyFactory()
        self.create_subscription(JointState, p.joint_states_topic, self._on_joints, STATE_QOS)
        self.create_subscription(PoseStamped, p.tcp_pose_topic, self._on_tcp, STATE_QOS)
        self.extra_keys = [k for k in self.actor.obs_keys if k not in PROPRIOCEPTION]
        for key in self.extra_keys:
            self.create_subscription(Float64MultiArray, p.obs_topic_prefix + key,
                                     lambda m, info, k=key: self._on_extra(k, m, info), STATE_QOS)
        self.create_subscription(JointTrajectory, p.intervention_topic, self._on_teleop, COMMAND_QOS)
        self.device, self._intervening, self._last_action = None, False, np.zeros(len(ACTION_NAMES))
        self._label = self.create_publisher(Bool, p.operator_label_topic, COMMAND_QOS)
        if p.teleop_device:
            from teleop.devices import make_device

            self.device = make_device(p.teleop_device)  # raises with the known device names
            if p.teleop_device == "ros":
                from teleop.ros.twist_joy import attach_ros_teleop

                attach_ros_teleop(self, self.device)
            self.device.connect()
        self.create_subscription(String, p.weights_topic, self._on_weights, LATCHED_QOS)
        self._pub = self.create_publisher(JointTrajectory, p.action_topic, COMMAND_QOS)
        self._progress = self.create_publisher(String, "~/progress", COMMAND_QOS)
        self.create_service(Trigger, "~/begin", self._on_begin)
        self.create_service(SetBool, "~/end", self._on_end)
        self.create_service(Trigger, "~/discard", self._on_discard)
        self.create_service(SetBool, "~/hold", self._on_hold)
        self.create_timer(1.0 / self.cell.rates.policy_hz, self._tick)
        self.get_logger().info(f"base {p.checkpoint} + residual on {self.actor.keys}; recording into {p.out_dir} "
                               f"({self.recorder.n_episodes} episodes so far); extra inputs {self.extra_keys}")

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self.device is not None:
            self.device.disconnect()

    def _device_action(self) -> np.ndarray | None:
        """The teleop device's action while it intervenes (its gripper starts from the arm's); its accept and
        discard presses go out as the operator's label."""
        from teleop.config import Button

        command = self.device.poll(time.monotonic())
        for button, success in ((Button.accept, True), (Button.discard, False)):
            if button in command.pressed:
                self._label.publish(Bool(data=success))
        if command.intervening and not self._intervening:
            self.device.sync_gripper(float(self._last_action[-1]))
            command = self.device.poll(time.monotonic())
        self._intervening = command.intervening
        return np.asarray(command.action, dtype=np.float32) if command.intervening else None

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ inputs
    def _on_joints(self, msg: JointState) -> None:
        try:
            reading = conv.joint_state_to_arrays(msg, self.arm_joints)
        except conv.ConversionError:
            return
        width = conv.gripper_width_m(msg, self.params.gripper_joint, self.params.gripper_joint_scale) or 0.0
        self.builder.add_joints(reading.stamp_s, reading.positions, width)

    def _on_tcp(self, msg: PoseStamped) -> None:
        pose = conv.pose_to_arrays(msg)
        self.builder.add_tcp(pose.stamp_s, pose.position_m, pose.quaternion_xyzw)

    def _on_extra(self, key: str, msg: Float64MultiArray, info: dict[str, int] | None = None) -> None:
        """The latest value of an observation key. Float64MultiArray has no stamp: a message the middleware
        received before the running episode began (still queued when ``~/begin`` ran) describes the last scene and
        is dropped, or the first chunk is planned for objects that are no longer there."""
        received_ns = int((info or {}).get("received_timestamp", 0))
        if received_ns and received_ns < self._begin_ns:
            return
        values = np.asarray(msg.data, dtype=np.float32)
        if np.all(np.isfinite(values)):
            self._extra[key] = values

    def _on_teleop(self, msg: JointTrajectory) -> None:
        if tuple(msg.joint_names) != ACTION_NAMES or not msg.points:
            return
        action = np.asarray(msg.points[0].positions, dtype=np.float32)
        if action.shape == (len(ACTION_NAMES),) and np.all(np.isfinite(action)):
            self._teleop = (self._now(), action)

    def _on_weights(self, msg: String) -> None:
        try:
            note = json.loads(msg.data)
            version = self.actor.offer_weights(Path(note["path"]))
        except (ValueError, KeyError, OSError) as exc:
            self.get_logger().warning(f"ignored weights notification {msg.data!r}: {exc}")
            return
        self.get_logger().info(f"residual version {version} ready for the next episode")

    # ------------------------------------------------------------------ services
    def _on_begin(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            self.recorder.discard()
            version = self.actor.between_episodes()
            index = self.recorder.n_episodes
            self.recorder.begin({"operator": "online", "task": self.task.name, "weights_version": version})
            self._held, self._horizon_reached, self._last_obs_t, self._teleop = False, False, None, None
            self._extra, self._begin_t, self._begin_ns = {}, self._now(), time.time_ns()  # the new scene's only
        response.success, response.message = True, json.dumps({"episode": index, "weights_version": version})
        return response

    def _on_end(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        with self._lock:
            if not self.recorder.running:
                response.success, response.message = False, "no episode is running"
                return response
            index = self.recorder.end(bool(request.data))
        response.success = True
        response.message = json.dumps({"committed": index, "n_episodes": self.recorder.n_episodes})
        self.get_logger().info(f"episode {index} committed (success={bool(request.data)})")
        return response

    def _on_discard(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            dropped = self.recorder.discard()
        response.success, response.message = True, "discarded" if dropped else "no episode was running"
        return response

    def _on_hold(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._held = bool(request.data)
        response.success, response.message = True, "holding" if self._held else "acting"
        return response

    # ------------------------------------------------------------------ the policy step
    def _tick(self) -> None:
        with self._lock:
            if not self.recorder.running or self._held or self._horizon_reached:
                return
            now = self._now()
            t = self.builder.buffers["tcp"].latest_stamp()
            if t is None or now - t > self.params.max_observation_age_s or t < self._begin_t or \
                    (self._last_obs_t is not None and t <= self._last_obs_t):
                return
            missing = [k for k in self.extra_keys if k not in self._extra]
            if missing:
                return
            try:
                obs = {**self.builder.observation(t), **self._extra}
            except MissingStreamsError:
                return
            self._last_obs_t = t
            action, record = self.actor.act(obs)
            person = self._teleop[1] if self._teleop and now - self._teleop[0] <= \
                self.params.intervention_timeout_s else None
            if self.device is not None:
                person = self._device_action() if person is None else person
            if person is not None:
                action = person
            self._last_action = action
            self._pub.publish(conv.joint_trajectory_msg(self.msgs, ACTION_NAMES, [action.astype(np.float64)], [0.0],
                                                        t))
            self.recorder.add(obs, action, record, person is not None, t)
            self._horizon_reached = self.recorder.steps >= self.task.horizon_steps
            progress = {"running": True, "steps": self.recorder.steps, "horizon_reached": self._horizon_reached,
                        "interventions": self.recorder.interventions, "weights_version": self.actor.weights_version}
        self._progress.publish(String(data=json.dumps(progress)))


def main(args: list[str] | None = None) -> int:
    return run_node(FinetunePolicyNode, name="finetune_policy_node", summary=SUMMARY, params=FinetunePolicyParams,
                    args=args)


if __name__ == "__main__":
    raise SystemExit(main())
