"""Helpers for tests that run real nodes on loopback: a background executor, probes, service calls, processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Graph:
    """Nodes of one test, each spun by its own SingleThreadedExecutor in a background thread.

    That is how they run in production (one process per node, ``run_node`` spins a single-threaded executor),
    and it is fast: rclpy's MultiThreadedExecutor serving several nodes managed ~6 control ticks/s instead
    of 100 on a 2-core machine, which starved the 100 Hz controller.
    """

    def __init__(self, context) -> None:
        self.context = context
        self.nodes: list[Node] = []
        self._executors: list[SingleThreadedExecutor] = []
        self._threads: list[threading.Thread] = []
        self._running = False

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        self._executors.append(executor)
        if self._running:
            self._start(executor)
        return node

    def _start(self, executor: SingleThreadedExecutor) -> None:
        thread = threading.Thread(target=self._spin, args=(executor,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def __enter__(self) -> Graph:
        self._running = True
        for executor in self._executors:
            self._start(executor)
        return self

    @staticmethod
    def _spin(executor: SingleThreadedExecutor) -> None:
        with contextlib.suppress(Exception):  # shutdown races end the spin; the test's asserts say what went wrong
            executor.spin()

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            close = getattr(node, "close", None)
            if close is not None:
                close()
        for executor in self._executors:
            executor.shutdown(timeout_sec=2.0)
        for thread in self._threads:  # every spin has ended before any node goes away
            thread.join(timeout=5.0)
        for node in self.nodes:
            node.destroy_node()


class Probe(Node):
    """Subscribes to topics and keeps the last message and a count per topic."""

    def __init__(self, context, name: str = "probe", **kwargs) -> None:
        super().__init__(name, context=context, **kwargs)
        self.last: dict[str, object] = {}
        self.counts: Counter[str] = Counter()
        self.history: dict[str, list] = {}
        self._lock = threading.Lock()

    def watch(self, msg_type, topic: str, qos, keep: bool = False) -> None:
        def callback(msg, topic=topic):
            with self._lock:
                self.last[topic] = msg
                self.counts[topic] += 1
                if keep:
                    self.history.setdefault(topic, []).append(msg)

        self.create_subscription(msg_type, topic, callback, qos)


def call(node: Node, srv_type, name: str, request=None, timeout: float = 10.0):
    """Call a service from a test thread (the node must be spun elsewhere); returns the response."""
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=timeout):
        raise TimeoutError(f"service {name} not available")
    future = client.call_async(request if request is not None else srv_type.Request())
    if not wait_for(future.done, timeout):
        raise TimeoutError(f"service {name} did not answer")
    return future.result()


def node_process(module: str, params: dict[str, object], name: str | None = None) -> subprocess.Popen:
    """``python -m <module> --ros-args -p k:=v ...`` as a separate process in the test's domain."""
    args = [sys.executable, "-m", module, "--ros-args"]
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, list):
            text = "[" + ",".join(f"'{v}'" if isinstance(v, str) else str(v) for v in value) + "]"
        args += ["-p", f"{key}:={text}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 10.0) -> str:
    """Stop one process we started (by its pid) and return its output."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.stdout.read() if proc.stdout else ""


def ros_time_s(node: Node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


__all__ = ["REPO", "Graph", "Probe", "call", "node_process", "rclpy", "ros_time_s", "stop_process", "wait_for"]


class FakeCell(Node):
    """Publishes what a cell publishes, on wall time: every camera (small images), joint states, TCP pose; and,
    when ``act`` is set, a delta action per policy step stamped with the newest image stamp (as a policy would)."""

    def __init__(self, context, cell, size=(16, 12), camera_hz=30.0, act=False, depth_m: float | None = None) -> None:
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import CameraInfo, Image, JointState
        from trajectory_msgs.msg import JointTrajectory

        from controllers.actions import ACTION_NAMES
        from ros_support import conversions as conv
        from ros_support.node import COMMAND_QOS, SENSOR_QOS, STATE_QOS

        super().__init__("fake_cell", context=context)
        self.cell, self.size, self.conv, self.f = cell, size, conv, conv.RclpyFactory()
        self.action_names = ACTION_NAMES
        self.cameras_on = {c.name: True for c in cell.cameras}
        self.frame_index = 0
        self.last_image_stamp: float | None = None
        self.actions_sent: list[float] = []
        self.acting = act
        self._img = {c.name: self.create_publisher(Image, c.topic("color"), SENSOR_QOS) for c in cell.cameras}
        self.depth_m = depth_m
        if depth_m is not None:  # aligned depth and camera info too, as a RealSense driver publishes them
            self._depth = {c.name: self.create_publisher(Image, c.topic("depth"), SENSOR_QOS) for c in cell.cameras}
            self._info = {c.name: self.create_publisher(CameraInfo, c.topic("camera_info"), SENSOR_QOS)
                          for c in cell.cameras}
        self._js = self.create_publisher(JointState, "/joint_states", STATE_QOS)
        self._tcp = self.create_publisher(PoseStamped, "/tcp_pose", STATE_QOS)
        self._act = self.create_publisher(JointTrajectory, "/manip/action", COMMAND_QOS)
        self.create_timer(1.0 / camera_hz, self._cameras)
        self.create_timer(0.01, self._state)
        self.create_timer(1.0 / cell.rates.policy_hz, self._action)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _cameras(self) -> None:
        import numpy as np

        stamp = self.now()
        self.frame_index += 1
        for i, cam in enumerate(self.cell.cameras):
            if self.cameras_on[cam.name]:
                image = np.full((self.size[1], self.size[0], 3), (self.frame_index + 40 * i) % 256, np.uint8)
                self._img[cam.name].publish(self.conv.image_msg(self.f, image, stamp, cam.optical_frame))
                if self.depth_m is not None:
                    depth = np.full((self.size[1], self.size[0]), self.depth_m, np.float32)
                    intr = self.conv.scale_intrinsics(cam.intrinsics, *self.size)
                    self._depth[cam.name].publish(self.conv.depth_image_msg(self.f, depth, stamp, cam.optical_frame))
                    self._info[cam.name].publish(self.conv.camera_info_msg(self.f, intr, stamp, cam.optical_frame))
        self.last_image_stamp = stamp

    def _state(self) -> None:
        now = self.now()
        names = [j.name for j in self.cell.robot.joints] + ["gripper_width"]
        self._js.publish(self.conv.joint_state_msg(self.f, names, [*self.cell.robot.home_joint_positions_rad, 0.08],
                                                   now))
        self._tcp.publish(self.conv.pose_msg(self.f, [0.5, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0], now, "base"))

    def _action(self) -> None:
        if self.acting and self.last_image_stamp is not None:
            action = [0.001, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
            self._act.publish(self.conv.joint_trajectory_msg(self.f, self.action_names, [action], [0.0],
                                                             self.last_image_stamp))
            self.actions_sent.append(self.last_image_stamp)
