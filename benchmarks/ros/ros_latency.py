"""ROS 2 graph latency and camera transport cost, beside the same chain called in process. Prints a table.

    python benchmarks/ros/ros_latency.py [--seconds 10] [--width 640 --height 480 --fps 30]

Three processes on loopback (an isolated ROS_DOMAIN_ID, localhost discovery):
- this one: three cameras at WIDTHxHEIGHTxFPS (rgb8 + 16UC1 aligned depth + camera_info, sensor-data QoS,
  stamped with wall time) and a stand-in robot (joint states + TCP pose at 100 Hz);
- a relay "policy" (this file with ``--relay``): subscribes to all six image streams and the joint states,
  decodes them to numpy, and for every new cam_front frame publishes a delta action stamped with that frame's
  stamp;
- the real ``controller_node`` (cartesian_pose), forwarding through the safety filter at 100 Hz.

Measured: camera transport (stamp -> decoded in the relay, per stream; achieved rate; CPU of publisher and
subscriber); image stamp -> command published by the controller (transport, decode, relay, controller tick
wait, filter: the controller's own count from the action's stamp, reported on ~/status); and one hop of a
small message (joint states, stamp -> received), which is what the command's last hop to the robot costs.
In process: the same decode + CommandInput + SafeRobot step as plain function calls. Numbers depend on the
machine's load: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _cpu_s() -> float:
    return time.process_time()


def relay(seconds: float) -> None:
    """The relay policy process; prints its transport statistics as one JSON line at the end."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory

    from controllers.actions import ACTION_NAMES
    from hardware_configs import load_cell
    from ros_support import conversions as conv
    from ros_support.node import COMMAND_QOS, SENSOR_QOS, STATE_QOS

    rclpy.init()
    node = Node("relay_policy")
    cell, f = load_cell("franka_3cam"), conv.RclpyFactory()
    pub = node.create_publisher(JointTrajectory, "/manip/action", COMMAND_QOS)
    latencies: dict[str, list[float]] = {}
    span: dict[str, list[float]] = {}  # first and last receipt [wall s]

    def on_image(topic: str, msg: Image) -> None:
        arrays = conv.image_to_depth_m(msg) if "depth" in topic else conv.image_to_rgb(msg)
        stamp = conv.stamp_to_seconds(msg.header.stamp)
        latencies.setdefault(topic, []).append(time.time() - stamp)
        span.setdefault(topic, [time.time(), 0.0])[1] = time.time()
        if topic == cell.cameras[0].topic("color") and arrays.size:
            pub.publish(conv.joint_trajectory_msg(f, ACTION_NAMES, [[0.0] * 7], [0.0], stamp))

    def on_joints(msg: JointState) -> None:
        latencies.setdefault("/joint_states", []).append(time.time() - conv.stamp_to_seconds(msg.header.stamp))
        span.setdefault("/joint_states", [time.time(), 0.0])[1] = time.time()

    for cam in cell.cameras:
        for stream in ("color", "depth"):
            topic = cam.topic(stream)
            node.create_subscription(Image, topic, lambda m, t=topic: on_image(t, m), SENSOR_QOS)
    node.create_subscription(JointState, "/joint_states", on_joints, STATE_QOS)
    cpu0, end = _cpu_s(), time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    rates = {t: (len(latencies[t]) - 1) / max(last - first, 1e-9) for t, (first, last) in span.items()}
    print(json.dumps({"latencies": latencies, "rates": rates, "cpu_s": _cpu_s() - cpu0, "seconds": seconds}),
          flush=True)
    node.destroy_node()
    rclpy.shutdown()


def in_process(width: int, height: int, n: int = 200) -> dict[str, float]:
    """The same chain without ROS: the relay's decode, then CommandInput + SafeRobot for one control tick."""
    from controllers.interface import CartesianTarget, RobotState
    from controllers.ros.control_core import CommandInput
    from controllers.safe_robot import SafeRobot
    from hardware_configs import load_cell
    from ros_support import conversions as conv

    cell = load_cell("franka_3cam")

    class Robot:
        t = 0.0

        def read_state(self) -> RobotState:
            return RobotState(self.t, np.zeros(7), np.zeros(7), np.array([0.5, 0.0, 0.3]),
                              np.array([1.0, 0.0, 0.0, 0.0]), 0.08)

        def send_target(self, target: CartesianTarget) -> None:
            self.last = target

        def wait_for_tick(self) -> float:
            self.t += 0.01
            return self.t

        def stop(self) -> None:
            pass

    robot = Robot()
    safe, commands = SafeRobot(robot, cell), CommandInput(cell)
    f = conv.RosbagsFactory()
    rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    depth = np.full((height, width), 0.8, np.float32)
    msgs = [conv.image_msg(f, rgb, 0.0, "c"), conv.depth_image_msg(f, depth, 0.0, "c")] * 3
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        for i, msg in enumerate(msgs):
            conv.image_to_depth_m(msg) if i % 2 else conv.image_to_rgb(msg)
        now = safe.wait_for_tick()
        commanded = safe.last_result.target if safe.last_result else robot.read_state().tcp_target()
        commands.on_action(np.zeros(7), commanded, now, now)
        safe.send_target(commands.next_target())
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--relay", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.relay:
        relay(args.seconds)
        return 0
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(110, 200)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image, JointState

    from hardware_configs import load_cell
    from ros_support import conversions as conv
    from ros_support.node import SENSOR_QOS, STATE_QOS

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    settle_s = 4.0
    controller = subprocess.Popen([sys.executable, "-m", "controllers.ros.controller_node"], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    relay_proc = subprocess.Popen([sys.executable, __file__, "--relay", "--seconds", str(args.seconds + settle_s)],
                                  cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    rclpy.init()
    node = Node("bench_cell")
    cell, f = load_cell("franka_3cam"), conv.RclpyFactory()
    pubs = {cam.name: (node.create_publisher(Image, cam.topic("color"), SENSOR_QOS),
                       node.create_publisher(Image, cam.topic("depth"), SENSOR_QOS),
                       node.create_publisher(CameraInfo, cam.topic("camera_info"), SENSOR_QOS)) for cam in cell.cameras}
    js = node.create_publisher(JointState, "/joint_states", STATE_QOS)
    tcp = node.create_publisher(PoseStamped, "/tcp_pose", STATE_QOS)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 2.0, (args.height, args.width)).astype(np.float32)
    status: dict[str, str] = {}

    def on_status(msg: DiagnosticArray) -> None:
        status.update({kv.key: kv.value for kv in msg.status[0].values})

    node.create_subscription(DiagnosticArray, "/controller_node/status", on_status, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)  # receiving never waits behind publishing
    spinner.start()
    names = [j.name for j in cell.robot.joints] + ["gripper_width"]
    frame_period, state_period = 1.0 / args.fps, 0.01
    start = time.monotonic()
    next_frame = next_state = start
    frame_count, frames0, cpu0 = 0, 0, None
    while time.monotonic() < start + settle_s + args.seconds:
        now = time.monotonic()
        if now >= next_state:
            wall = time.time()
            js.publish(conv.joint_state_msg(f, names, [*cell.robot.home_joint_positions_rad, 0.08], wall))
            tcp.publish(conv.pose_msg(f, [0.5, 0.0, 0.3], [1.0, 0.0, 0.0, 0.0], wall, "base"))
            next_state += state_period
        if now >= next_frame:
            if cpu0 is None and now >= start + settle_s:
                cpu0, frames0 = _cpu_s(), frame_count
            wall = time.time()
            frame_count += 1
            for cam in cell.cameras:
                color_pub, depth_pub, info_pub = pubs[cam.name]
                color_pub.publish(conv.image_msg(f, rgb, wall, cam.optical_frame))
                depth_pub.publish(conv.depth_image_msg(f, depth, wall, cam.optical_frame))
                info_pub.publish(conv.camera_info_msg(f, cam.intrinsics, wall, cam.optical_frame))
            next_frame += frame_period
        time.sleep(max(0.0, min(next_frame, next_state) - time.monotonic()))
    pub_cpu_s = _cpu_s() - cpu0  # this process: publishing plus the (light) receiving thread
    published = frame_count - frames0
    stats = json.loads(relay_proc.communicate(timeout=60)[0].strip().splitlines()[-1])
    controller.terminate()
    controller.wait(timeout=10)
    executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    rclpy.shutdown()

    print(f"\nROS 2 Jazzy rclpy, Fast DDS, loopback; {args.width}x{args.height} at {args.fps:g} fps x 3 cameras "
          f"(rgb8 + 16UC1 + camera_info), {args.seconds:g} s measured; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} "
          "cores\n")
    rows = [("what", "p50 ms", "p95 ms", "n / rate")]
    stream_bytes = args.width * args.height * (3 + 2) * 3 * args.fps
    for topic, values in sorted(stats["latencies"].items(), key=lambda kv: (kv[0] == "/joint_states", kv[0])):
        lat = np.array(values[len(values) // 5:]) * 1e3  # skip the warm-up fifth
        label = "one small-message hop (/joint_states)" if topic == "/joint_states" else f"transport {topic}"
        rows.append((label, f"{np.median(lat):.2f}", f"{np.percentile(lat, 95):.2f}",
                     f"{stats['rates'][topic]:.1f} Hz received"))
    if "source_to_command_p50_ms" in status:
        rows.append(("image stamp -> command published (graph, 3 processes)", status["source_to_command_p50_ms"],
                     status["source_to_command_p95_ms"], "controller's count"))
    local = in_process(args.width, args.height)
    rows.append(("same chain in process (decode 6 + filter)", f"{local['p50_ms']:.2f}", f"{local['p95_ms']:.2f}",
                 "200 ticks"))
    for row in rows:
        print(f"  {row[0]:<58} {row[1]:>8} {row[2]:>8}   {row[3]}")
    print(f"\n  publisher: {published / args.seconds:.1f} framesets/s of {args.fps:g}, "
          f"{stream_bytes / 1e6:.0f} MB/s offered, CPU {100 * pub_cpu_s / args.seconds:.0f}% of a core "
          "(build + publish, robot state included)")
    relay_cpu = 100 * stats["cpu_s"] / stats["seconds"]
    print(f"  relay subscriber: CPU {relay_cpu:.0f}% of a core (receive + decode 6 streams)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
