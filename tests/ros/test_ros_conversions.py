"""Message conversions against rosbags' typestore (no ROS) and against rclpy's own classes (ROS tier).

The no-ROS half checks values through a CDR round trip; the ROS half builds the same message with rclpy's
classes, serialises it with rclpy and reads it back with rosbags (and the other way), field by field.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags missing: pip install -e '.[ros]'")

from hardware_configs.schema import Intrinsics
from robot_learning.data.bag_import import deserialize
from ros_support import conversions as conv

NEEDS_RCLPY = pytest.mark.skipif(importlib.util.find_spec("rclpy") is None,
                                 reason="rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")

RB = conv.RosbagsFactory()
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
DEPTH_M = RNG.uniform(0.2, 3.0, (6, 8)).astype(np.float32)
XYZ = RNG.normal(size=(10, 3))
XYZ_RGB = RNG.integers(0, 256, (10, 3))
INTR = Intrinsics(width=640, height=480, fx=615.2, fy=615.4, cx=321.5, cy=243.2,
                  distortion_model="inverse_brown_conrady", distortion=[0.1, -0.2, 0.001, 0.002, 0.05])


def cdr_roundtrip(msg):
    raw = RB.typestore.serialize_cdr(msg, msg.__msgtype__)
    return RB.typestore.deserialize_cdr(raw, msg.__msgtype__)


BUILDERS = {
    "rgb8": lambda f: conv.image_msg(f, RGB, 12.5, "cam_front_color_optical_frame"),
    "bgr8": lambda f: conv.image_msg(f, RGB, 12.5, "cam_front_color_optical_frame", encoding="bgr8"),
    "depth16": lambda f: conv.depth_image_msg(f, DEPTH_M, 1.25, "cam_front_color_optical_frame"),
    "depth32": lambda f: conv.depth_image_msg(f, DEPTH_M, 1.25, "cam_front_color_optical_frame", "32FC1"),
    "camera_info": lambda f: conv.camera_info_msg(f, INTR, 3.0, "cam_front_color_optical_frame"),
    "cloud": lambda f: conv.pointcloud_msg(f, XYZ, 3.0, "base", rgb=XYZ_RGB),
    "joint_state": lambda f: conv.joint_state_msg(f, ["j1", "j2"], np.array([0.5, -1.0]), 4.0,
                                                  velocities=np.array([0.1, 0.2])),
    "pose": lambda f: conv.pose_msg(f, [0.5, 0.1, 0.3], [0.0, 1.0, 0.0, 0.0], 4.0, "base"),
    "trajectory": lambda f: conv.joint_trajectory_msg(f, ["j1", "j2"], [[1.0, 2.0], [3.0, 4.0]], [0.1, 0.25], 0.0),
    "clock": lambda f: conv.clock_msg(f, 5.000000001),
    "float_array": lambda f: conv.float_array_msg(f, [0.75]),
}


def test_stamps_split_exactly_and_reject_bad_times():
    assert conv.split_stamp(12.5) == (12, 500_000_000)
    assert conv.split_stamp(1.999999999999) == (2, 0)  # rounds to the nanosecond, carries into sec
    msg = conv.header_msg(RB, 1700000000.123456789, "base")
    stamp_ns = msg.stamp.sec * 1_000_000_000 + msg.stamp.nanosec
    assert abs(stamp_ns - 1700000000_123456789) < 1000  # float64 seconds: sub-microsecond
    assert 0 <= msg.stamp.nanosec < 1_000_000_000
    with pytest.raises(conv.ConversionError, match="non-negative"):
        conv.split_stamp(-1.0)
    with pytest.raises(conv.ConversionError):
        conv.split_stamp(float("nan"))


def test_images_round_trip_through_cdr():
    rgb = cdr_roundtrip(BUILDERS["rgb8"](RB))
    assert (rgb.encoding, rgb.width, rgb.height, rgb.step) == ("rgb8", 8, 6, 24)
    assert rgb.header.frame_id == "cam_front_color_optical_frame"
    assert conv.stamp_to_seconds(rgb.header.stamp) == 12.5
    np.testing.assert_array_equal(conv.image_to_rgb(rgb), RGB)
    bgr = cdr_roundtrip(BUILDERS["bgr8"](RB))
    np.testing.assert_array_equal(np.frombuffer(bgr.data, np.uint8).reshape(6, 8, 3), RGB[..., ::-1])
    np.testing.assert_array_equal(conv.image_to_rgb(bgr), RGB)
    d16 = cdr_roundtrip(BUILDERS["depth16"](RB))
    assert d16.encoding == "16UC1"
    np.testing.assert_allclose(conv.image_to_depth_m(d16), DEPTH_M, atol=0.0005 + 1e-6)  # 1 mm counts
    d32 = cdr_roundtrip(BUILDERS["depth32"](RB))
    np.testing.assert_array_equal(conv.image_to_depth_m(d32), DEPTH_M)


def test_depth_invalid_values_become_zero_and_padding_is_honoured():
    depth = np.array([[np.nan, -1.0, 0.0, 70.0, 1.0]], np.float32)
    np.testing.assert_array_equal(conv.image_to_depth_m(conv.depth_image_msg(RB, depth, 0.0, "f")),
                                  [[0, 0, 0, 0, 1.0]])
    np.testing.assert_array_equal(conv.image_to_depth_m(conv.depth_image_msg(RB, depth, 0.0, "f", "32FC1")),
                                  [[0, 0, 0, 70.0, 1.0]])
    msg = conv.image_msg(RB, RGB, 0.0, "f")  # re-pack with 8 bytes of padding per row, as some drivers send
    padded = np.zeros((6, 32), np.uint8)
    padded[:, :24] = RGB.reshape(6, 24)
    msg = RB.cls("sensor_msgs/msg/Image")(header=msg.header, height=6, width=8, encoding="rgb8", is_bigendian=0,
                                          step=32, data=padded.reshape(-1))
    np.testing.assert_array_equal(conv.image_to_rgb(msg), RGB)
    with pytest.raises(conv.ConversionError, match="not a depth image"):
        conv.image_to_depth_m(msg)
    with pytest.raises(conv.ConversionError, match="needs uint8"):
        conv.image_msg(RB, RGB.astype(np.float32), 0.0, "f", "rgb8")


def test_camera_info_carries_k_d_p_and_scales_with_the_image():
    info = cdr_roundtrip(BUILDERS["camera_info"](RB))
    assert info.distortion_model == "plumb_bob" and (info.width, info.height) == (640, 480)
    np.testing.assert_allclose(info.k.reshape(3, 3), INTR.matrix())
    np.testing.assert_allclose(info.p.reshape(3, 4)[:, :3], INTR.matrix())
    np.testing.assert_allclose(info.p.reshape(3, 4)[:, 3], 0.0)
    np.testing.assert_allclose(info.r.reshape(3, 3), np.eye(3))
    np.testing.assert_allclose(info.d, INTR.distortion)
    back = conv.camera_info_to_intrinsics(info)
    assert (back.fx, back.fy, back.cx, back.cy) == pytest.approx((INTR.fx, INTR.fy, INTR.cx, INTR.cy))
    small = conv.scale_intrinsics(INTR, 96, 72)
    assert (small.fx, small.cx, small.fy, small.cy) == pytest.approx((615.2 * 0.15, 321.5 * 0.15, 615.4 * 0.15,
                                                                      243.2 * 0.15))


def test_point_cloud_round_trip_with_packed_rgb():
    xyz = RNG.normal(size=(50, 3)).astype(np.float32)
    rgb = RNG.integers(0, 256, (50, 3), dtype=np.uint8)
    msg = cdr_roundtrip(conv.pointcloud_msg(RB, xyz, 1.0, "base", rgb=rgb))
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"] and msg.point_step == 16
    assert msg.header.frame_id == "base" and msg.is_dense
    xyz2, rgb2 = conv.pointcloud_to_arrays(msg)
    np.testing.assert_array_equal(xyz2, xyz)
    np.testing.assert_array_equal(rgb2, rgb)
    xyz3, rgb3 = conv.pointcloud_to_arrays(cdr_roundtrip(conv.pointcloud_msg(RB, xyz, 1.0, "base")))
    assert rgb3 is None and np.array_equal(xyz3, xyz)


def test_robot_messages_round_trip():
    js = cdr_roundtrip(conv.joint_state_msg(RB, ["b", "a", "g"], np.array([2.0, 1.0, 0.04]), 4.0))
    reading = conv.joint_state_to_arrays(js, ["a", "b"])  # reordered by name
    np.testing.assert_array_equal(reading.positions, [1.0, 2.0])
    np.testing.assert_array_equal(reading.velocities, [0.0, 0.0])  # no velocities published
    assert js.header.frame_id == "" and reading.stamp_s == 4.0
    with pytest.raises(conv.ConversionError, match="lacks joints"):
        conv.joint_state_to_arrays(js, ["a", "c"])
    pose = conv.pose_to_arrays(cdr_roundtrip(BUILDERS["pose"](RB)))
    assert pose.frame_id == "base" and pose.stamp_s == 4.0
    np.testing.assert_array_equal(pose.position_m, [0.5, 0.1, 0.3])
    np.testing.assert_array_equal(pose.quaternion_xyzw, [0.0, 1.0, 0.0, 0.0])
    traj = conv.joint_trajectory_to_arrays(cdr_roundtrip(BUILDERS["trajectory"](RB)))
    assert traj.names == ["j1", "j2"] and traj.stamp_s == 0.0
    np.testing.assert_array_equal(traj.positions, [[1, 2], [3, 4]])
    np.testing.assert_allclose(traj.times_from_start_s, [0.1, 0.25])
    assert conv.stamp_to_seconds(cdr_roundtrip(BUILDERS["clock"](RB)).clock) == pytest.approx(5.000000001)


# ---------------------------------------------------------------------------------------------- ROS tier


def assert_same_fields(a, b, path="msg"):
    """Field-by-field equality of a rosbags message and an rclpy message (numbers, strings, arrays, nesting)."""
    names = [n for n in getattr(a, "__dataclass_fields__", {}) if n != "__msgtype__"]
    if not names:
        if isinstance(a, (str, bytes)) or np.isscalar(a):
            assert a == b, path
            return
        a_list, b_list = list(a), list(b)  # numpy (rosbags) vs array.array / list / numpy (rclpy)
        assert len(a_list) == len(b_list), path
        if all(np.isscalar(x) for x in a_list):
            np.testing.assert_array_equal(np.asarray(a_list), np.asarray(b_list), err_msg=path)
        else:
            for i, (x, y) in enumerate(zip(a_list, b_list, strict=True)):
                assert_same_fields(x, y, f"{path}[{i}]")
        return
    for name in names:
        assert_same_fields(getattr(a, name), getattr(b, name), f"{path}.{name}")


@pytest.mark.ros
@NEEDS_RCLPY
@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_rclpy_and_rosbags_messages_agree_on_the_wire(kind):
    from rclpy.serialization import deserialize_message, serialize_message

    rc = conv.RclpyFactory()
    ours_rb, ours_rc = BUILDERS[kind](RB), BUILDERS[kind](rc)
    # rclpy → wire → rosbags
    from_rclpy = deserialize(RB.typestore, serialize_message(ours_rc), ours_rb.__msgtype__)
    assert_same_fields(from_rclpy, ours_rb)
    # rosbags → wire → rclpy
    raw = bytes(RB.typestore.serialize_cdr(ours_rb, ours_rb.__msgtype__))
    from_rosbags = deserialize_message(raw, type(ours_rc))
    assert_same_fields(ours_rb, from_rosbags)


@pytest.mark.ros
@NEEDS_RCLPY
def test_decoders_read_rclpy_messages():
    rc = conv.RclpyFactory()
    np.testing.assert_array_equal(conv.image_to_rgb(BUILDERS["bgr8"](rc)), RGB)
    np.testing.assert_allclose(conv.image_to_depth_m(BUILDERS["depth16"](rc)), DEPTH_M, atol=0.0006)
    xyz, rgb = conv.pointcloud_to_arrays(BUILDERS["cloud"](rc))
    assert xyz.shape == (10, 3) and rgb.shape == (10, 3)
    assert conv.joint_state_to_arrays(BUILDERS["joint_state"](rc), ["j2"]).positions.tolist() == [-1.0]


@pytest.mark.ros
@NEEDS_RCLPY
def test_use_sim_time_follows_clock_messages(ros_context):
    """A node with use_sim_time reads its time from /clock, as every node of the sim graph does."""
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from ros_harness import Graph, ros_time_s, wait_for
    from rosgraph_msgs.msg import Clock

    rc = conv.RclpyFactory()
    follower = Node("follower", context=ros_context, parameter_overrides=[Parameter("use_sim_time", value=True)])
    clock_node = Node("clock_src", context=ros_context)
    pub = clock_node.create_publisher(Clock, "/clock", 10)
    with Graph(ros_context) as graph:
        graph.add(follower)
        graph.add(clock_node)

        def published_and_followed() -> bool:
            pub.publish(conv.clock_msg(rc, 42.5))
            return abs(ros_time_s(follower) - 42.5) < 1e-9

        assert wait_for(published_and_followed, 10.0)
