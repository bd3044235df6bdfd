"""ROS 2 ``geometry_msgs/Twist`` and ``sensor_msgs/Joy`` as a teleop device, for labs with their own teleop node.

ROS-free: the parser takes :class:`TwistValues`/:class:`JoyValues`, or any object with a Twist's or Joy's
fields (rclpy messages, ``rosbags`` messages, ``TwistStamped``), read by attribute. The thin rclpy adapter
lives in :mod:`teleop.ros.twist_joy`.

A Twist is a velocity: channels ``linear_x`` ... ``angular_z`` are it divided by the full-scale speeds, so
with the default mapping a twist at full scale moves ``max_translation_m_per_step`` per policy step. Joy axes
become ``joy_axis{i}``, buttons ``joy_btn{i}``. Teleop nodes publish continuously while in use, so silence
past ``stale_after_s`` drops motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from teleop.core import ChannelParser

LINEAR_CHANNELS = ("linear_x", "linear_y", "linear_z")
ANGULAR_CHANNELS = ("angular_x", "angular_y", "angular_z")


@dataclass(frozen=True)
class TwistValues:
    """A Twist's content: linear [m/s] and angular [rad/s] velocity in the base frame."""

    linear_m_s: tuple[float, float, float]
    angular_rad_s: tuple[float, float, float]

    @classmethod
    def from_msg(cls, msg: Any) -> TwistValues:
        twist = getattr(msg, "twist", msg)  # TwistStamped carries the Twist in .twist
        lin, ang = twist.linear, twist.angular
        return cls((float(lin.x), float(lin.y), float(lin.z)), (float(ang.x), float(ang.y), float(ang.z)))


@dataclass(frozen=True)
class JoyValues:
    """A Joy's content: axes in [-1, 1], buttons 0/1."""

    axes: tuple[float, ...]
    buttons: tuple[int, ...]

    @classmethod
    def from_msg(cls, msg: Any) -> JoyValues:
        return cls(tuple(float(a) for a in msg.axes), tuple(int(b) for b in msg.buttons))


class TwistJoyParser(ChannelParser):
    """Twist and Joy values -> channels; non-finite values are treated as zero (never forwarded)."""

    def __init__(self, linear_full_scale_m_s: float = 0.2, angular_full_scale_rad_s: float = 0.5) -> None:
        super().__init__()
        if linear_full_scale_m_s <= 0 or angular_full_scale_rad_s <= 0:
            raise ValueError("full-scale speeds must be positive")
        self.linear_full_scale_m_s = linear_full_scale_m_s
        self.angular_full_scale_rad_s = angular_full_scale_rad_s

    def feed(self, payload: Any) -> None:
        if not isinstance(payload, (TwistValues, JoyValues)):
            payload = JoyValues.from_msg(payload) if hasattr(payload, "buttons") else TwistValues.from_msg(payload)
        if isinstance(payload, TwistValues):
            self._set_all(LINEAR_CHANNELS, payload.linear_m_s, self.linear_full_scale_m_s)
            self._set_all(ANGULAR_CHANNELS, payload.angular_rad_s, self.angular_full_scale_rad_s)
        else:
            self._set_all([f"joy_axis{i}" for i in range(len(payload.axes))], payload.axes, 1.0)
            self._set_all([f"joy_btn{i}" for i in range(len(payload.buttons))], payload.buttons, 1.0)

    def _set_all(self, names: Sequence[str], values: Sequence[float], full_scale: float) -> None:
        for name, value in zip(names, values, strict=True):
            self.set_channel(name, value / full_scale if np.isfinite(value) else 0.0)


class QueueSource:
    """Inputs pushed from another thread (ROS callbacks), stamped with the session's clock when read."""

    def __init__(self, max_items: int = 1000) -> None:
        import collections
        import threading

        self._items: collections.deque[Any] = collections.deque(maxlen=max_items)
        self._lock = threading.Lock()
        self.closed = False

    def push(self, payload: Any) -> None:
        with self._lock:
            self._items.append(payload)

    def open(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def read(self, now_s: float) -> list[tuple[float, Any]]:
        with self._lock:
            items, self._items = list(self._items), type(self._items)(maxlen=self._items.maxlen)
        return [(now_s, item) for item in items]
