"""Subscribe a ROS 2 node to a lab's teleop topics (``geometry_msgs/Twist``, ``sensor_msgs/Joy``) for a device.

Thin by design: callbacks turn messages into :class:`teleop.ros_values.TwistValues` /
``JoyValues`` and push them into the device's :class:`teleop.ros_values.QueueSource`; parsing,
mapping and the silence rule are the ROS-free core's. rclpy is imported when this module is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from teleop.core import TeleopDevice
from teleop.ros_values import JoyValues, QueueSource, TwistValues


def attach_ros_teleop(node: Any, device: TeleopDevice, twist_topic: str = "/teleop/cmd_vel",
                      joy_topic: str = "/joy", stamped: bool = False) -> list[Any]:
    """Create the subscriptions feeding ``device`` (built with ``make_device("ros")``); returns them."""
    from geometry_msgs.msg import Twist, TwistStamped
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Joy

    source = device.source
    while not isinstance(source, QueueSource) and hasattr(source, "inner"):  # unwrap a RecordingSource
        source = source.inner
    if not isinstance(source, QueueSource):
        raise TypeError(f"device {device.name} does not take ROS input (source {type(device.source).__name__})")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
    twist_type = TwistStamped if stamped else Twist
    return [
        node.create_subscription(twist_type, twist_topic, lambda msg: source.push(TwistValues.from_msg(msg)), qos),
        node.create_subscription(Joy, joy_topic, lambda msg: source.push(JoyValues.from_msg(msg)), qos),
    ]


def start_ros_teleop(device: TeleopDevice, twist_topic: str = "/teleop/cmd_vel", joy_topic: str = "/joy",
                     node_name: str = "teleop_input") -> Callable[[], None]:
    """Spin a small node feeding ``device`` in a background thread (for sessions run outside ``ros2 launch``);
    returns the function that stops it."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    owns_context = not rclpy.ok()
    if owns_context:
        rclpy.init()
    node = rclpy.create_node(node_name)
    attach_ros_teleop(node, device, twist_topic, joy_topic)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, name=node_name, daemon=True)
    thread.start()

    def stop() -> None:
        executor.shutdown()
        thread.join(timeout=2.0)
        node.destroy_node()
        if owns_context and rclpy.ok():
            rclpy.shutdown()

    return stop
