"""ROS 2 Twist/Joy from a lab's own teleop node: the ROS-free core, then the rclpy adapter on real topics."""

import time
from types import SimpleNamespace

import numpy as np
import pytest

from teleop import Button, DeviceStatus, default_config, make_device
from teleop.ros_values import TwistJoyParser, TwistValues

ROS = default_config("ros")


def test_a_full_scale_twist_moves_the_full_step(replay_device):
    records = [{"t": 0.0, "twist": {"linear": [0.2, 0.0, -0.1], "angular": [0.0, 0.0, 0.5]}}]
    cmd = replay_device("ros", records).poll(0.05)
    half = (0.5 - ROS.deadband) / (1 - ROS.deadband)  # -0.1 m/s is half of the 0.2 m/s full scale
    full_m, full_rad = ROS.max_translation_m_per_step, ROS.max_rotation_rad_per_step
    np.testing.assert_allclose(cmd.action[:6], [full_m, 0, -half * full_m, 0, 0, full_rad], rtol=1e-5)


def test_messages_are_read_by_field_so_rclpy_rosbags_and_stamped_twists_all_work():
    vec = SimpleNamespace
    twist = SimpleNamespace(linear=vec(x=0.1, y=0, z=0), angular=vec(x=0, y=0, z=0))
    stamped = SimpleNamespace(header=None, twist=twist)
    assert TwistValues.from_msg(stamped).linear_m_s == (0.1, 0.0, 0.0)
    joy = SimpleNamespace(axes=[0.5], buttons=[0, 1])
    parser = TwistJoyParser()
    parser.feed(joy)
    assert parser.channels == {"joy_axis0": 0.5, "joy_btn0": 0.0, "joy_btn1": 1.0}


def test_non_finite_twists_never_move_the_arm():
    parser = TwistJoyParser()
    parser.feed(TwistValues((float("nan"), float("inf"), 0.0), (0.0, 0.0, 0.0)))
    assert all(v == 0.0 for v in parser.channels.values())


def test_joy_buttons_drive_the_session(replay_device):
    cmd = replay_device("ros", [{"t": 0.0, "joy": {"axes": [], "buttons": [1, 0, 0, 0, 0, 0, 0, 1]}}]).poll(0.0)
    assert cmd.pressed == {Button.gripper_toggle, Button.start_stop} and cmd.action[6] == 1.0


def test_a_teleop_node_that_stops_publishing_stops_the_arm(replay_device):
    device = replay_device("ros", [{"t": 0.0, "twist": {"linear": [0.2, 0, 0], "angular": [0, 0, 0]}}])
    assert device.poll(0.1).motion_active
    assert device.poll(ROS.stale_after_s + 0.01).status is DeviceStatus.stale


@pytest.mark.ros
def test_rclpy_adapter_feeds_published_twist_and_joy_into_the_device():
    rclpy = pytest.importorskip("rclpy")
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Joy

    from teleop.ros.twist_joy import start_ros_teleop

    device = make_device("ros").connect()
    rclpy.init()
    try:
        stop = start_ros_teleop(device, "/test_teleop/cmd_vel", "/test_teleop/joy", node_name="teleop_test_input")
        publisher_node = rclpy.create_node("teleop_test_publisher")
        twist_pub = publisher_node.create_publisher(Twist, "/test_teleop/cmd_vel", 10)
        joy_pub = publisher_node.create_publisher(Joy, "/test_teleop/joy", 10)
        msg = Twist()
        msg.linear.x = 0.2
        joy = Joy()
        joy.buttons = [1]
        cmd = None
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:  # discovery takes a moment on a fresh DDS participant
            twist_pub.publish(msg)
            joy_pub.publish(joy)
            time.sleep(0.05)
            cmd = device.poll(time.monotonic())
            if cmd.motion_active and cmd.action[6] == 1.0:
                break
        assert cmd is not None and cmd.action[0] == pytest.approx(ROS.max_translation_m_per_step)
        assert cmd.action[6] == 1.0
        publisher_node.destroy_node()
        stop()
    finally:
        if rclpy.ok():
            rclpy.shutdown()
