"""``camera_node``: the stack's own camera driver on realsense-ros topic names, for labs without realsense-ros
and for replaying RealSense recordings (``.db3`` from ``perception.recording`` or ``rs-record``) as live cameras.

Wraps the perception core's cameras (``perception.cameras``: one reader thread and ring buffer per camera,
stall detection and reconnection). Out per camera, sensor-data QoS: ``color/image_raw`` (rgb8),
``aligned_depth_to_color/image_raw`` (16UC1 mm or 32FC1 m) and both ``camera_info`` topics.

Stamps: a frame is stamped with this node's clock at the moment it reached the process (now minus the
frame's age in the reader's ring buffer), so frames of different cameras and the robot state share one
clock; the device's own time stays in the core for matching framesets.

Recordings: each plays as the camera its file is named after (``<recording_dir>/<camera>.db3``); one holding
another camera's serial number is refused at start, one without a serial (a software device's) plays with a
note. Without ``loop``, a recording's end is its camera's end, not a stall: the node stops publishing it and
says so, and the ``camera_node`` process exits once every camera has finished.
"""

from __future__ import annotations

import functools
from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from hardware_configs import load_cell
from perception.ros.sync_core import CameraParams
from ros_support import conversions as conv
from ros_support.node import SENSOR_QOS, declare_parameters, run_node

SUMMARY = "RealSense cameras (live or recordings) on realsense-ros topic names, via the perception camera core."


class CameraNode(Node):
    """``exit_when_finished``: shut the node's context down once every camera's source has ended (the process
    entry point sets it; a node sharing its context with others in one process leaves it off)."""

    def __init__(self, exit_when_finished: bool = False, **kwargs: Any) -> None:
        super().__init__("camera_node", **kwargs)
        self.params = declare_parameters(self, CameraParams)
        self.exit_when_finished = exit_when_finished
        self.cameras: list = []
        self.published: dict[str, int] = {}
        self.finished: set[str] = set()

    def configure(self) -> None:
        """Open the cameras (the hardware): a missing device or recording, or another camera's recording, is a
        clear start-up error (``ValueError``, after stopping the cameras already started)."""
        from perception.cameras.base import CameraError

        p = self.params
        self.cell = load_cell(p.cell)
        names = p.cameras or [c.name for c in self.cell.cameras]
        configs = [self.cell.camera(n) for n in names]
        if p.source == "playback":
            from perception.cameras import recording_path
            from perception.cameras.realsense import RealSensePlaybackCamera

            if not p.recording_dir:
                raise ValueError("camera_node: source playback needs recording_dir (a folder of <camera>.db3)")
            self.cameras = [
                RealSensePlaybackCamera(
                    recording_path(p.recording_dir, c.name), name=c.name, loop=p.loop, serial=c.serial
                )
                for c in configs
            ]
        else:
            from perception.cameras.realsense import RealSenseCamera

            self.cameras = [RealSenseCamera(c) for c in configs]
        self.msgs = conv.RclpyFactory()
        self._pubs = {}
        self._last_number: dict[str, int] = {}
        for cam in self.cameras:
            config = self.cell.camera(cam.name)
            try:
                cam.start()
            except CameraError as exc:
                self.close()
                raise ValueError(str(exc)) from exc
            depth_topic = config.topic("depth")
            self._pubs[cam.name] = {
                "frame": config.optical_frame,
                "color": self.create_publisher(Image, config.topic("color"), SENSOR_QOS),
                "info": self.create_publisher(CameraInfo, config.topic("camera_info"), SENSOR_QOS),
                "depth": self.create_publisher(Image, depth_topic, SENSOR_QOS) if p.publish_depth else None,
                "depth_info": self.create_publisher(
                    CameraInfo, depth_topic.rsplit("/", 1)[0] + "/camera_info", SENSOR_QOS
                )
                if p.publish_depth
                else None,
            }
            self.published[cam.name] = 0
        self._timer = self.create_timer(1.0 / p.poll_hz, self._poll)
        self.get_logger().info(f"{p.source} cameras {names} started")

    def close(self) -> None:
        for cam in self.cameras:
            cam.stop()

    def _poll(self) -> None:
        from perception.cameras.base import CameraFinishedError, StaleFrameError

        now = self.get_clock().now().nanoseconds * 1e-9
        for cam in self.cameras:
            if cam.name in self.finished:
                continue
            try:
                frame = cam.read_latest(self.params.max_age_s)
            except StaleFrameError:
                continue  # the core logs stalls once; the topic goes quiet and consumers see the dropout
            except CameraFinishedError:
                self._finish(cam.name)
                continue
            if self._last_number.get(cam.name) == frame.frame_number:
                continue
            self._last_number[cam.name] = frame.frame_number
            pubs = self._pubs[cam.name]
            stamp = max(now - frame.age_s(), 0.0)
            info = conv.camera_info_msg(self.msgs, cam.intrinsics, stamp, pubs["frame"])
            pubs["color"].publish(conv.image_msg(self.msgs, frame.color, stamp, pubs["frame"]))
            pubs["info"].publish(info)
            if pubs["depth"] is not None:
                pubs["depth"].publish(
                    conv.depth_image_msg(self.msgs, frame.depth_m, stamp, pubs["frame"], self.params.depth_encoding)
                )
                pubs["depth_info"].publish(info)
            self.published[cam.name] += 1

    def _finish(self, camera: str) -> None:
        """A recording ended: its topics stop for good (said once); with every camera done, the node ends."""
        self.finished.add(camera)
        self.get_logger().info(
            f"camera {camera}: recording finished after {self.published[camera]} published "
            f"frames; no longer publishing it"
        )
        if self.finished != {cam.name for cam in self.cameras}:
            return
        self._timer.cancel()
        self.get_logger().info("every camera's recording has finished; camera_node is done")
        if self.exit_when_finished:
            self.context.try_shutdown()  # spin() returns; run_node closes the cameras and exits with 0


def main(args: list[str] | None = None) -> int:
    return run_node(
        functools.partial(CameraNode, exit_when_finished=True),
        name="camera_node",
        summary=SUMMARY,
        params=CameraParams,
        args=args,
    )


if __name__ == "__main__":
    raise SystemExit(main())
