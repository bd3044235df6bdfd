"""``sim_node``: the MuJoCo twin on the ROS graph, looking like the real cell.

Out: each camera on realsense-ros topic names (``/<camera>/color/image_raw``, ``.../color/camera_info``,
``.../aligned_depth_to_color/image_raw`` and its ``camera_info``) with sensor-data QoS, ``/joint_states``,
the TCP pose, and ``/clock``. In (reliable QoS): a JointTrajectory as ros2_control's
JointTrajectoryController takes it, an equilibrium PoseStamped as franka's Cartesian impedance example
takes it, and a gripper closure. Service ``~/reset`` (std_srvs/Trigger) samples a new scene.

Why a thread of its own: the simulator owns time. It steps physics, publishes and renders in one loop,
paced by ``real_time_factor``; every stamp is sim time, so the graph runs with ``use_sim_time`` and stays
consistent even when rendering makes the twin slower than real time. Rendering stays on that one thread
(its GL context belongs to it); subscription callbacks only queue commands for it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from ros_support import conversions as conv
from ros_support.node import (
    CLOCK_QOS,
    COMMAND_QOS,
    SENSOR_QOS,
    STATE_QOS,
    declare_parameters,
    dynamic_parameter_guard,
    run_node,
)
from sim.gl_backend import GLBackendError, select_gl_backend

try:  # before sim_core imports mujoco, which reads MUJOCO_GL once; a failure is reported by configure()
    GL_BACKEND, GL_ERROR = select_gl_backend(), None
except GLBackendError as exc:
    GL_BACKEND, GL_ERROR = None, exc

from sim.ros.sim_core import SimCell, SimNodeParams

SUMMARY = "The MuJoCo twin of the cell as if it were the robot: cameras, joint states, TCP pose, /clock."


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim_node", **kwargs)
        self.params = declare_parameters(self, SimNodeParams)
        self.publish_cameras = self.params.publish_cameras
        self.add_on_set_parameters_callback(dynamic_parameter_guard(lambda: self.params, self._set_dynamic))
        self.msgs = conv.RclpyFactory()
        self.sim: SimCell | None = None
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_published = 0

    def _set_dynamic(self, params: SimNodeParams) -> None:
        self.params = params
        self.publish_cameras = params.publish_cameras

    # ------------------------------------------------------------------ configure: build the twin
    def configure(self) -> None:
        if GL_ERROR is not None:  # the cameras could not render: refuse now, not in the loop's first frame
            raise GL_ERROR
        p = self.params
        size = (p.image_width, p.image_height) if p.image_width and p.image_height else None
        self.sim = SimCell(p.cell, p.task, size, p.cameras or None, seed=p.seed, depth_model=p.depth_model)
        cell = self.sim.cell
        self.base_frame = cell.robot.base_frame
        self.joint_names = [p.joint_prefix + n for n in self.sim.joint_names]
        self._pub_joints = self.create_publisher(JointState, p.joint_states_topic, STATE_QOS)
        self._pub_tcp = self.create_publisher(PoseStamped, p.tcp_pose_topic, STATE_QOS)
        self._pub_clock = self.create_publisher(Clock, "/clock", CLOCK_QOS) if p.publish_clock else None
        self._pub_task = None
        if p.publish_task_state:  # sim-only inputs and the twin's success, for twin-only fine-tuning sessions
            self._pub_task = (self.create_publisher(Bool, "~/task_success", STATE_QOS),
                              self.create_publisher(Float64MultiArray, p.obs_topic_prefix + "privileged", STATE_QOS),
                              self.create_publisher(Float64MultiArray, p.obs_topic_prefix + "privileged_relative",
                                                    STATE_QOS))
        self._cameras = []
        for name in self.sim.camera_names:
            cam = cell.camera(name)
            intr = conv.scale_intrinsics(cam.intrinsics, self.sim.image_size.width, self.sim.image_size.height)
            fps = p.camera_fps or float(cam.fps)
            depth_topic = cam.topic("depth")
            pubs = {
                "color": self.create_publisher(Image, cam.topic("color"), SENSOR_QOS),
                "info": self.create_publisher(CameraInfo, cam.topic("camera_info"), SENSOR_QOS),
                "depth": self.create_publisher(Image, depth_topic, SENSOR_QOS) if p.publish_depth else None,
                "depth_info": self.create_publisher(
                    CameraInfo, depth_topic.rsplit("/", 1)[0] + "/camera_info", SENSOR_QOS
                )
                if p.publish_depth
                else None,
            }
            self._cameras.append(
                {"name": name, "frame": cam.optical_frame, "intr": intr, "period": 1.0 / fps, "next": 0.0, "pubs": pubs}
            )
        self.create_subscription(JointTrajectory, p.trajectory_topic, self._on_trajectory, COMMAND_QOS)
        self.create_subscription(PoseStamped, p.equilibrium_pose_topic, self._on_pose, COMMAND_QOS)
        self.create_subscription(Float64MultiArray, p.gripper_command_topic, self._on_gripper, COMMAND_QOS)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="sim_loop", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"twin of {cell.name} / {self.sim.task_config.name}: {len(self._cameras)} cameras at "
            f"{self.sim.image_size.width}x{self.sim.image_size.height} (MUJOCO_GL={GL_BACKEND}), "
            f"real_time_factor {p.real_time_factor}"
        )

    def close(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5.0)  # the loop frees the renderers itself: their GL context is its own

    # ------------------------------------------------------------------ inputs (executor threads)
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        prefix = self.params.joint_prefix
        try:
            traj = conv.joint_trajectory_to_arrays(msg)
        except conv.ConversionError as exc:
            self.get_logger().warning(f"rejected trajectory: {exc}")
            return
        names = [n.removeprefix(prefix) for n in traj.names]
        self._inbox.put(
            lambda: self.sim.command_trajectory(names, traj.positions, traj.times_from_start_s, traj.stamp_s)
        )

    def _on_pose(self, msg: PoseStamped) -> None:
        pose = conv.pose_to_arrays(msg)
        if pose.frame_id not in ("", self.base_frame):
            self.get_logger().warning(
                f"rejected equilibrium pose in frame {pose.frame_id!r}; expected {self.base_frame!r} (no tf here)"
            )
            return
        self._inbox.put(lambda: self.sim.command_pose(pose.position_m, pose.quaternion_xyzw))

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != 1:
            self.get_logger().warning(f"gripper command needs one value (closure 0..1), got {len(msg.data)}")
            return
        closure = float(msg.data[0])
        self._inbox.put(lambda: self.sim.command_gripper(closure))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        done = threading.Event()

        def reset() -> None:
            self.sim.reset()
            for cam in self._cameras:
                cam["next"] = self.sim.time_s
            done.set()

        self._inbox.put(reset)
        response.success = done.wait(timeout=30.0)
        response.message = f"new scene at sim time {self.sim.time_s:.3f} s" if response.success else "timed out"
        return response

    # ------------------------------------------------------------------ the simulator's own loop
    def _loop(self) -> None:
        try:
            self._run()
        finally:
            self.sim.close()

    def _run(self) -> None:
        rtf = self.params.real_time_factor
        wall0, sim0 = time.monotonic(), self.sim.time_s
        while self._running.is_set() and self.context.ok():
            while not self._inbox.empty():
                command = self._inbox.get_nowait()
                try:
                    command()
                except ValueError as exc:
                    self.get_logger().warning(f"rejected command: {exc}")
            now = self.sim.step()
            try:
                self._publish(now)
            except Exception:
                if not self.context.ok():  # Ctrl-C shut the context down under us: stop quietly
                    return
                raise
            if rtf > 0:
                lag = (wall0 + (now - sim0) / rtf) - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
                elif lag < -0.5:  # far behind (rendering): do not sprint to catch up
                    wall0, sim0 = time.monotonic(), now

    def _publish(self, now: float) -> None:
        self._publish_state(now)
        for cam in self._cameras:
            if now + 1e-9 >= cam["next"]:
                cam["next"] = max(cam["next"] + cam["period"], now)
                if self.publish_cameras:
                    self._publish_camera(cam)

    def _publish_state(self, now: float) -> None:
        state = self.sim.state()
        f = self.msgs
        if self._pub_clock is not None:
            self._pub_clock.publish(conv.clock_msg(f, now))
        names = [*self.joint_names, self.params.gripper_joint]
        positions = [*state.joint_positions_rad, state.gripper_width_m]
        velocities = [*state.joint_velocities_rad_s, 0.0]
        self._pub_joints.publish(conv.joint_state_msg(f, names, positions, now, velocities=velocities))
        self._pub_tcp.publish(conv.pose_msg(f, state.tcp_position_m, state.tcp_quaternion_xyzw, now, self.base_frame))
        if self._pub_task is not None:
            task = self.sim.task
            privileged = task.privileged_state()
            relative = task.relative_state(state.tcp_position_m, state.tcp_quaternion_xyzw, privileged=privileged)
            self._pub_task[0].publish(Bool(data=bool(self.sim.is_success())))
            self._pub_task[1].publish(Float64MultiArray(data=[float(v) for v in privileged]))
            self._pub_task[2].publish(Float64MultiArray(data=[float(v) for v in relative]))

    def _publish_camera(self, cam: dict) -> None:
        frame = self.sim.render(cam["name"], depth=cam["pubs"]["depth"] is not None)
        f, pubs, stamp = self.msgs, cam["pubs"], frame.stamp_s
        info = conv.camera_info_msg(f, cam["intr"], stamp, cam["frame"])
        pubs["color"].publish(conv.image_msg(f, frame.rgb, stamp, cam["frame"]))
        pubs["info"].publish(info)
        if pubs["depth"] is not None:
            pubs["depth"].publish(
                conv.depth_image_msg(f, frame.depth_m, stamp, cam["frame"], self.params.depth_encoding)
            )
            pubs["depth_info"].publish(info)
        self.frames_published += 1


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, name="sim_node", summary=SUMMARY, params=SimNodeParams, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
