"""``perception_node``: approximate-time sync of the cell's cameras → one fused PointCloud2 in the base frame,
plus dropout diagnostics.

In: per camera ``color/image_raw``, ``aligned_depth_to_color/image_raw`` and ``color/camera_info`` (the
intrinsics of the stream as published, which may be resized), the TCP pose (for the wrist camera's pose at the
frame's time). Out: ``/manip/points`` (sensor_msgs/PointCloud2, x y z + rgb, frame = the robot base) at up to
``rate_hz``, stamped with the frameset's time; ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, 1 Hz): per
camera OK, WARN (missing from framesets: out of sync) or ERROR (silent for ``dropout_timeout_s``).

The fusion is ``perception.pointcloud.PointCloudFuser`` (deprojection, crop to the workspace, voxel
downsampling); this node only matches streams, converts messages and reports.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from geometry.transforms import invert, pose_to_matrix
from hardware_configs import load_cell
from perception.ros.sync_core import FramesetMatcher, PerceptionParams
from perception.streams import StreamBuffer
from ros_support import conversions as conv
from ros_support.node import SENSOR_QOS, STATE_QOS, declare_parameters, run_node

SUMMARY = "Synchronised cameras -> fused point cloud in the base frame (/manip/points), with dropout diagnostics."


class PerceptionNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception_node", **kwargs)
        self.params = declare_parameters(self, PerceptionParams)
        self.clouds_published = 0

    def configure(self) -> None:
        from perception.pointcloud import CropBox, PointCloudFuser  # open3d: loaded here, not at import

        p = self.params
        self.cell = load_cell(p.cell)
        names = p.cameras or [c.name for c in self.cell.cameras]
        for name in names:
            self.cell.camera(name)
        self.matcher = FramesetMatcher(names, p.sync_tolerance_s)
        self._fuser_args = {"crop": CropBox.from_workspace(self.cell.workspace), "voxel_m": p.voxel_m,
                            "stride": p.stride}
        self._fuser_cls = PointCloudFuser
        self.intrinsics: dict[str, Any] = {}
        self._fuser = None
        self._tcp = StreamBuffer(256)
        T_flange_tcp = np.eye(4)
        T_flange_tcp[:3, 3] = self.cell.robot.tcp_offset_m
        self._T_tcp_flange = invert(T_flange_tcp)
        self.msgs = conv.RclpyFactory()
        for name in names:
            cam = self.cell.camera(name)
            self.create_subscription(Image, cam.topic("color"), lambda m, n=name: self._on_rgb(n, m), SENSOR_QOS)
            self.create_subscription(Image, cam.topic("depth"), lambda m, n=name: self._on_depth(n, m), SENSOR_QOS)
            self.create_subscription(CameraInfo, cam.topic("camera_info"), lambda m, n=name: self._on_info(n, m),
                                     SENSOR_QOS)
        self.create_subscription(PoseStamped, p.tcp_pose_topic, self._on_tcp, STATE_QOS)
        self._pub_cloud = self.create_publisher(PointCloud2, p.cloud_topic, SENSOR_QOS)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0 / p.rate_hz, self._fuse)
        self.create_timer(1.0, self._diagnostics)
        self.get_logger().info(f"fusing {names} within {p.sync_tolerance_s * 1e3:.0f} ms into {p.cloud_topic}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ streams
    def _on_rgb(self, camera: str, msg: Image) -> None:
        self.matcher.add_rgb(camera, conv.stamp_to_seconds(msg.header.stamp), conv.image_to_rgb(msg), self._now())

    def _on_depth(self, camera: str, msg: Image) -> None:
        depth = conv.image_to_depth_m(msg, self.params.depth_scale_m)
        self.matcher.add_depth(camera, conv.stamp_to_seconds(msg.header.stamp), depth)

    def _on_info(self, camera: str, msg: CameraInfo) -> None:
        intr = conv.camera_info_to_intrinsics(msg)
        if self.intrinsics.get(camera) != intr:
            self.intrinsics[camera] = intr
            self._fuser = None  # rebuilt with the stream's intrinsics

    def _on_tcp(self, msg: PoseStamped) -> None:
        pose = conv.pose_to_arrays(msg)
        self._tcp.add(pose.stamp_s, pose_to_matrix(pose.position_m, pose.quaternion_xyzw))

    # ------------------------------------------------------------------ fusion
    def _fuse(self) -> None:

        if any(c not in self.intrinsics for c in self.matcher.cameras):
            return  # no camera_info yet for some camera
        matched = self.matcher.match()
        if matched is None:
            return
        t, frames = matched
        T_base_flange = None
        if any(self.cell.camera(c).mount.value == "wrist" for c in frames):
            tcp = self._tcp.nearest(t, max(self.params.sync_tolerance_s, 0.02))
            if tcp is None:
                return  # no TCP pose at the frame's time: the wrist view cannot be placed
            T_base_flange = tcp[1] @ self._T_tcp_flange
        if self._fuser is None:
            self._fuser = self._fuser_cls(self.cell, intrinsics=self.intrinsics, **self._fuser_args)
        now = time.monotonic()
        core_frames = {name: dataclasses.replace(f, host_time_s=now) for name, f in frames.items()}
        cloud = self._fuser.fuse(core_frames, T_base_flange)
        rgb = np.clip(np.rint(cloud.colors * 255.0), 0, 255).astype(np.uint8)
        self._pub_cloud.publish(conv.pointcloud_msg(self.msgs, cloud.points_m, t, self.cell.robot.base_frame, rgb=rgb))
        self.clouds_published += 1

    def _diagnostics(self) -> None:
        now, timeout = self._now(), self.params.dropout_timeout_s
        dropped = set(self.matcher.dropped(now, timeout))
        statuses = []
        for camera, health in self.matcher.health.items():
            status = DiagnosticStatus(name=f"perception_node: {camera}", hardware_id=self.cell.camera(camera).serial)
            if camera in dropped:
                status.level, status.message = DiagnosticStatus.ERROR, f"no frame for {health.age_s(now):.2f} s"
            elif health.missing:
                status.level, status.message = DiagnosticStatus.WARN, f"missing from {health.missing} framesets"
            else:
                status.level, status.message = DiagnosticStatus.OK, "streaming"
            status.values = [KeyValue(key="frames", value=str(health.frames)),
                             KeyValue(key="missing_from_framesets", value=str(health.missing)),
                             KeyValue(key="framesets", value=str(self.matcher.framesets))]
            statuses.append(status)
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub_diag.publish(msg)


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, name="perception_node", summary=SUMMARY, params=PerceptionParams, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
