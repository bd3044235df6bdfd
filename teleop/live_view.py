"""The operator's live view: every camera, the episode state, countdown, commanded motion and device health.

Rendering is pure numpy + OpenCV drawing into an RGB frame, so it works headless: frames go to sinks (the
latest frame for a screenshot, an mp4 through imageio, and an OpenCV window only where a display exists and
the OpenCV build has a GUI). The session decides what to show; this module only draws it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

STATE_COLOURS_RGB = {
    "reset": (150, 150, 150), "ready": (60, 160, 255), "countdown": (255, 190, 40), "recording": (230, 40, 40),
    "review": (170, 90, 255), "device_lost": (255, 0, 255), "done": (90, 200, 90),
}
_BG_RGB = (22, 22, 26)
_FG_RGB = (235, 235, 235)
_DIM_RGB = (150, 150, 150)
AXIS_LABELS = ("x", "y", "z", "roll", "pitch", "yaw")


@dataclass
class ViewStatus:
    """What the operator needs to see this tick (all plain values, so the view is easy to test)."""

    state: str
    message: str = ""
    countdown_s: float | None = None
    episode: int = 0
    accepted: int = 0
    discarded: int = 0
    step: int = 0
    horizon: int = 0
    action: np.ndarray = field(default_factory=lambda: np.zeros(7))
    action_scale: np.ndarray = field(default_factory=lambda: np.ones(6))  # full-scale per axis (m, rad)
    device: str = ""
    device_status: str = "ok"
    moving: bool = False  # the device asks for motion this tick
    intervening: bool = False  # online fine-tuning: the operator has taken over from the policy
    operator: str = ""
    task: str = ""
    success: bool | None = None


def _text(img: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.45,
          colour: Sequence[int] = _FG_RGB, thickness: int = 1) -> None:
    cv2.putText(img, text, xy, cv2.FONT_HERSHEY_SIMPLEX, scale, tuple(int(c) for c in colour), thickness, cv2.LINE_AA)


class LiveView:
    """Composes camera images and a status panel into one RGB frame of fixed size."""

    def __init__(self, camera_names: Sequence[str], tile_height_px: int = 240, panel_height_px: int = 130):
        self.camera_names = list(camera_names)
        self.tile_height_px = tile_height_px
        self.panel_height_px = panel_height_px

    def render(self, images: dict[str, np.ndarray], status: ViewStatus) -> np.ndarray:
        h = self.tile_height_px
        tiles = []
        for name in self.camera_names:
            img = images.get(f"{name}_rgb")
            if img is None:
                tile = np.zeros((h, h * 4 // 3, 3), np.uint8)
                _text(tile, "no image", (10, h // 2), colour=_DIM_RGB)
            else:
                w = max(1, round(img.shape[1] * h / img.shape[0]))
                tile = cv2.resize(np.ascontiguousarray(img, dtype=np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
            cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, 18), (0, 0, 0), -1)
            _text(tile, name, (5, 13))
            tiles.append(tile)
        body = np.concatenate(tiles, axis=1)
        colour = STATE_COLOURS_RGB.get(status.state, _FG_RGB)
        if status.state == "recording":  # a red frame: nobody misses that the arm is live and recording
            cv2.rectangle(body, (0, 0), (body.shape[1] - 1, body.shape[0] - 1), colour, 4)
        if status.state == "countdown" and status.countdown_s is not None:
            label = f"{max(status.countdown_s, 0.0):.0f}" if status.countdown_s >= 0.5 else "GO"
            size = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 4.0, 8)[0]
            _text(body, label, ((body.shape[1] - size[0]) // 2, (h + size[1]) // 2), 4.0, colour, 8)
        return np.concatenate([body, self._panel(body.shape[1], status, colour)], axis=0)

    def _panel(self, width: int, s: ViewStatus, colour: Sequence[int]) -> np.ndarray:
        panel = np.empty((self.panel_height_px, width, 3), np.uint8)
        panel[:] = _BG_RGB
        title = s.state.upper().replace("_", " ")
        cv2.circle(panel, (16, 22), 8, tuple(int(c) for c in colour), -1)
        _text(panel, title, (32, 30), 0.8, colour, 2)
        _text(panel, s.message, (12, 56), 0.45)
        _text(panel, f"episode {s.episode}   kept {s.accepted}   discarded {s.discarded}", (12, 80), 0.45, _DIM_RGB)
        step = f"step {s.step}/{s.horizon}" if s.horizon else ""
        success = "" if s.success is None else f"   twin success: {'yes' if s.success else 'no'}"
        _text(panel, step + success, (12, 102), 0.45, _DIM_RGB)
        _text(panel, f"operator {s.operator}   task {s.task}", (12, 122), 0.4, _DIM_RGB)
        self._bars(panel, max(width // 2 - 40, 330), s)
        return panel

    def _bars(self, panel: np.ndarray, x0: int, s: ViewStatus) -> None:
        """One centred bar per action axis (fraction of full scale), the gripper, and the device's health."""
        bar_w, y = 110, 14
        for i, label in enumerate(AXIS_LABELS):
            frac = float(np.clip(s.action[i] / max(s.action_scale[i], 1e-9), -1, 1))
            yy = y + i * 16
            _text(panel, label, (x0, yy + 9), 0.4, _DIM_RGB)
            cx = x0 + 45 + bar_w // 2
            cv2.rectangle(panel, (x0 + 45, yy), (x0 + 45 + bar_w, yy + 10), (60, 60, 60), -1)
            end = cx + int(frac * bar_w / 2)
            if end != cx:
                cv2.rectangle(panel, (min(cx, end), yy), (max(cx, end), yy + 10), (80, 200, 255), -1)
            cv2.line(panel, (cx, yy - 1), (cx, yy + 11), (200, 200, 200), 1)
        closed = s.action[6] >= 0.5
        _text(panel, f"gripper {'CLOSED' if closed else 'open'}", (x0, y + 6 * 16 + 10), 0.45,
              (255, 160, 60) if closed else _FG_RGB)
        xr = x0 + 45 + bar_w + 25
        health = {"ok": (90, 200, 90), "stale": (255, 190, 40), "disconnected": (255, 60, 60)}
        _text(panel, f"device {s.device}", (xr, 24), 0.45)
        _text(panel, s.device_status.upper(), (xr, 46), 0.55, health.get(s.device_status, _FG_RGB), 2)
        if s.intervening:
            _text(panel, "OPERATOR IN CONTROL", (xr, 70), 0.45, (255, 160, 60))
        elif s.moving:
            _text(panel, "input: moving", (xr, 70), 0.45, (80, 200, 255))


class FrameSink(Protocol):
    def show(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...


class LatestFrame:
    """Keeps the newest frame (headless screenshots, tests)."""

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None
        self.n_frames = 0

    def show(self, frame: np.ndarray) -> None:
        self.frame = frame
        self.n_frames += 1

    def save_png(self, path: str | Path) -> Path:
        if self.frame is None:
            raise RuntimeError("no live-view frame was rendered yet")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(self.frame, cv2.COLOR_RGB2BGR))
        return path

    def close(self) -> None:
        pass


class VideoSink:
    """An mp4 of the live view (H.264 via imageio-ffmpeg); frames padded to even sizes."""

    def __init__(self, path: str | Path, fps: float = 10.0) -> None:
        import imageio.v2 as imageio

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer: Any = imageio.get_writer(self.path, fps=fps, codec="libx264", quality=7, macro_block_size=1,
                                               ffmpeg_log_level="error")

    def show(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        self._writer.append_data(np.pad(frame, ((0, -h % 16), (0, -w % 16), (0, 0))))

    def close(self) -> None:
        self._writer.close()


def display_available() -> bool:
    """A display server is reachable and this OpenCV build can open windows (headless wheels cannot)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("manip-stack probe", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("manip-stack probe")
    except cv2.error:
        return False
    return True


class WindowSink:
    """An OpenCV window; ``last_key`` holds the key pressed in it (or -1)."""

    def __init__(self, title: str = "manip-stack teleop") -> None:
        self.title = title
        self.last_key = -1

    def show(self, frame: np.ndarray) -> None:
        cv2.imshow(self.title, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.last_key = cv2.waitKey(1)

    def close(self) -> None:
        cv2.destroyWindow(self.title)
