"""``live_view_node``: the operator's view of an online fine-tuning session, headless (see
:mod:`robot_learning.sessions.finetune_dashboard`): a PNG rewritten every ``period_s`` and a log line.

In: one camera's colour image, ``finetune_session_node``'s ``~/status``, ``controller_node``'s
``~/safety_events`` and a RoboHorizon stage (std_msgs/String) if any node publishes one.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from hardware_configs import load_cell
from robot_learning.ros.finetune_policy_node import LATCHED_QOS
from robot_learning.sessions.finetune_dashboard import render_dashboard, summary_line
from ros_support import conversions as conv
from ros_support.node import SENSOR_QOS, declare_parameters, run_node
from ros_support.params import CELL_DESCRIPTION, CellName, Field, NodeParams

SUMMARY = "Headless live view of an online fine-tuning session: a PNG dashboard and a log line."


class LiveViewParams(NodeParams):
    """``live_view_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    camera: str = Field("", description="camera to show; empty = the cell's first camera; 'none' = no camera")
    out_path: str = Field("outputs/online_ros/live_view.png", description="the dashboard PNG, rewritten in place")
    period_s: float = Field(2.0, gt=0.0, le=600.0, description="refresh period [s] (wall clock)")
    status_topic: str = Field("/finetune_session_node/status", description="session status in (String JSON)")
    safety_topic: str = Field("/controller_node/safety_events", description="safety event counts in (String JSON)")
    stage_topic: str = Field("/manip/stage", description="current RoboHorizon stage in (std_msgs/String), if any")


class LiveViewNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("live_view_node", **kwargs)
        self.params = declare_parameters(self, LiveViewParams)
        self.image: np.ndarray | None = None
        self.status: dict = {}
        self.safety: dict[str, int] = {}
        self.stage: str | None = None
        self.refreshes = 0

    def configure(self) -> None:
        p = self.params
        cell = load_cell(p.cell)
        if p.camera != "none":
            camera = cell.camera(p.camera or cell.cameras[0].name)  # raises with the valid names
            self.create_subscription(Image, camera.topic("color"), self._on_image, SENSOR_QOS)
        self.create_subscription(String, p.status_topic, self._on_status, LATCHED_QOS)
        self.create_subscription(String, p.safety_topic, self._on_safety, 10)
        self.create_subscription(String, p.stage_topic, lambda m: setattr(self, "stage", m.data), 10)
        from rclpy.clock import Clock, ClockType

        self.create_timer(p.period_s, self._refresh, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _on_image(self, msg: Image) -> None:
        self.image = conv.image_to_rgb(msg)

    def _on_status(self, msg: String) -> None:
        with contextlib.suppress(ValueError):
            self.status = json.loads(msg.data)

    def _on_safety(self, msg: String) -> None:
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            self.safety = {k: int(v) for k, v in json.loads(msg.data).get("counts", {}).items()}

    def _refresh(self) -> None:
        render_dashboard(Path(self.params.out_path), self.image, self.status, self.safety, self.stage)
        self.refreshes += 1
        self.get_logger().info(summary_line(self.status, self.safety, self.stage))


def main(args: list[str] | None = None) -> int:
    return run_node(LiveViewNode, name="live_view_node", summary=SUMMARY, params=LiveViewParams, args=args)


if __name__ == "__main__":
    raise SystemExit(main())
