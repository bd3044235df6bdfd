"""``finetune_session_node``: runs the episodes of an online fine-tuning session on the graph.

Each episode (see :mod:`robot_learning.sessions.online_episodes`): homing to the cell's home TCP pose through
``controller_node`` and its safety filter (absolute targets on ``/manip/target_pose``, gripper open), the scene
reset (the twin's ``~/reset`` in sim; on the robot the operator resets the scene and calls ``~/confirm_reset``),
then ``finetune_policy_node`` runs and records the episode until a success signal, an operator's label or the
horizon, and commits it.

Services: ``~/label`` (SetBool, data = success: ends the running episode with that label), ``~/confirm_reset``,
``~/pause``, ``~/resume``, ``~/abort`` (Trigger; abort discards the running episode). In: the configured success
source (``success_topic`` or, in sim only, the twin's ``twin_success_topic``), ``operator_label_topic`` (a
teleop button's label). Out: ``~/status`` (std_msgs/String JSON, latched: phase, episode, step, outcomes).
Restarted, it discards whatever episode the policy node had open and goes on until the store holds ``episodes``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Bool, Float64, String
from std_srvs.srv import SetBool, Trigger

from controllers.kinematics import ArmKinematics
from hardware_configs import load_cell
from robot_learning.ros.finetune_policy_node import LATCHED_QOS
from robot_learning.sessions.online_episodes import EpisodeLoop, FinetuneSessionParams, Progress
from ros_support import conversions as conv
from ros_support.node import COMMAND_QOS, STATE_QOS, declare_parameters, run_node

SUMMARY = "Runs online fine-tuning episodes: homing, scene reset, run, success label, pause/resume/abort."


class FinetuneSessionNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("finetune_session_node", **kwargs)
        self.params = declare_parameters(self, FinetuneSessionParams)
        self.loop: EpisodeLoop | None = None
        self._tcp: np.ndarray | None = None
        self._progress = Progress()

    def configure(self) -> None:
        p = self.params
        self.cell = load_cell(p.cell)
        self.home_position_m, self.home_quaternion = ArmKinematics(self.cell).tcp_pose(
            np.array(self.cell.robot.home_joint_positions_rad))
        self.msgs = conv.RclpyFactory()
        self._target = self.create_publisher(PoseStamped, p.target_pose_topic, COMMAND_QOS)
        self._gripper = self.create_publisher(Float64, p.gripper_topic, COMMAND_QOS)
        self._status = self.create_publisher(String, "~/status", LATCHED_QOS)
        self.create_subscription(PoseStamped, p.tcp_pose_topic, self._on_tcp, STATE_QOS)
        policy = f"/{p.policy_node}"
        self.create_subscription(String, f"{policy}/progress", self._on_progress, COMMAND_QOS)
        self._policy_services = {name: self.create_client(kind, f"{policy}/{name}")
                         for name, kind in (("begin", Trigger), ("end", SetBool), ("discard", Trigger),
                                            ("hold", SetBool))}
        self._sim_reset = self.create_client(Trigger, p.sim_reset_service) if p.sim else None
        if p.success_source == "topic":
            self.create_subscription(Bool, p.success_topic, lambda m: self.loop.offer_success("topic", m.data), 10)
        elif p.success_source == "twin":
            self.create_subscription(Bool, p.twin_success_topic, lambda m: self.loop.offer_success("twin", m.data),
                                     10)
        self.create_subscription(Bool, p.operator_label_topic,
                                 lambda m: self.loop.offer_success("operator", m.data), 10)
        self.create_service(SetBool, "~/label", self._on_label)
        self.create_service(Trigger, "~/confirm_reset", self._trigger(lambda: self.loop.confirm_reset(),
                                                                     "scene reset confirmed", "not waiting for one"))
        self.create_service(Trigger, "~/pause", self._trigger(lambda: bool(self.loop.pause(True)), "paused", ""))
        self.create_service(Trigger, "~/resume", self._trigger(lambda: bool(self.loop.pause(False)), "resumed", ""))
        self.create_service(Trigger, "~/abort", self._trigger(lambda: self.loop.abort(), "episode aborted",
                                                              "no episode to abort"))
        self.loop = EpisodeLoop(p, self)
        self._thread = threading.Thread(target=self.loop.run, name="episode_loop", daemon=True)
        self._thread.start()
        self.get_logger().info(f"online session of {p.episodes} episodes, success from {p.success_source}, "
                               f"home TCP {np.round(self.home_position_m, 3).tolist()}")

    def close(self) -> None:
        if self.loop is not None:
            self.loop.stop.set()

    # ------------------------------------------------------------------ callbacks
    def _on_tcp(self, msg: PoseStamped) -> None:
        self._tcp = conv.pose_to_arrays(msg).position_m

    def _on_progress(self, msg: String) -> None:
        try:
            self._progress = Progress(**json.loads(msg.data))
        except (ValueError, TypeError):
            self.get_logger().warning(f"bad progress message {msg.data!r}")

    def _on_label(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        response.success = self.loop.offer_success("operator", bool(request.data))
        response.message = f"labelled {'success' if request.data else 'failure'}" if response.success else \
            f"no episode running (phase {self.loop.status.phase})"
        return response

    def _trigger(self, action, ok: str, refused: str):
        def callback(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            response.success = bool(action())
            response.message = ok if response.success else refused
            return response

        return callback

    # ------------------------------------------------------------------ SessionIO (the loop's thread)
    def _call(self, name: str, request, timeout_s: float = 30.0):
        client = self._policy_services[name] if isinstance(name, str) else name
        deadline = time.monotonic() + timeout_s
        while not client.wait_for_service(timeout_sec=1.0):
            if time.monotonic() > deadline or self.loop.stop.is_set():
                raise TimeoutError(f"service {client.srv_name} is not available")
            self.get_logger().info(f"waiting for {client.srv_name}", throttle_duration_sec=10.0)
        future = client.call_async(request)
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {client.srv_name} did not answer in {timeout_s} s")
            time.sleep(0.01)
        return future.result()

    def discard(self) -> None:
        self._call("discard", Trigger.Request(), timeout_s=120.0)  # the policy node may still be starting

    def home(self) -> bool:
        """Absolute home targets at 10 Hz through the controller (its filter limits speed) until within
        ``home_tolerance_m``; False after ``home_timeout_s`` (the episode goes on: the scene reset follows)."""
        p = self.params
        deadline = time.monotonic() + p.home_timeout_s
        frame = self.cell.robot.base_frame
        while time.monotonic() < deadline and not self.loop.stop.is_set():
            now = self.get_clock().now().nanoseconds * 1e-9
            self._gripper.publish(Float64(data=0.0))
            self._target.publish(conv.pose_msg(self.msgs, self.home_position_m, self.home_quaternion, now, frame))
            if self._tcp is not None and np.linalg.norm(self._tcp - self.home_position_m) < p.home_tolerance_m:
                return True
            time.sleep(0.1)
        self.get_logger().warning(f"homing did not reach {p.home_tolerance_m} m of home in {p.home_timeout_s} s")
        return False

    def reset_scene(self) -> None:
        if self._sim_reset is not None:
            response = self._call(self._sim_reset, Trigger.Request())
            if not response.success:
                raise RuntimeError(f"twin reset failed: {response.message}")

    def begin(self) -> tuple[int, int]:
        self._progress = Progress(running=True)
        response = self._call("begin", Trigger.Request())
        answer = json.loads(response.message)
        return int(answer["episode"]), int(answer["weights_version"])

    def end(self, success: bool) -> int | None:
        response = self._call("end", SetBool.Request(data=bool(success)))
        return json.loads(response.message)["committed"] if response.success else None

    def hold(self, on: bool) -> None:
        self._call("hold", SetBool.Request(data=bool(on)))

    def progress(self) -> Progress:
        return self._progress

    def publish(self, status: dict) -> None:
        self._status.publish(String(data=json.dumps(status)))
        if (status["phase"], status["episode"]) != getattr(self, "_logged", None):
            self._logged = (status["phase"], status["episode"])
            self.get_logger().info(f"{status['phase']}: episode {status['episode']}")


def main(args: list[str] | None = None) -> int:
    return run_node(FinetuneSessionNode, name="finetune_session_node", summary=SUMMARY, params=FinetuneSessionParams,
                    args=args)


if __name__ == "__main__":
    raise SystemExit(main())
