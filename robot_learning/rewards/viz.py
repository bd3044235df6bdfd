"""Pictures a person checks a reward with: the KAGI keyframe with its choices, and reward over an episode."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from robot_learning.rewards.base import Breakdown
from robot_learning.rewards.kagi.marks import draw_marks, put_label
from robot_learning.rewards.kagi.reward import KagiReward

CHOSEN = (40, 255, 40)
WAYPOINT = (255, 60, 255)
TRAJECTORY = (255, 140, 0)


def kagi_explanation(reward: KagiReward, tcp_path_m: list[np.ndarray] | None = None) -> np.ndarray:
    """Keyframe(s) side by side, each with a magnified view of the grasp region: all marks, the chosen grasp
    point (green), waypoints and target (magenta, lifted to 3-D and projected back, so a wrong depth shows as a
    misplaced point), and the TCP's path (orange)."""
    if not reward.frames:
        raise ValueError("the reward has no keyframe yet: call reset() first")
    panels = []
    for frame in reward.frames:
        img = draw_marks(frame, reward.plan.marks if reward.plan else [])
        cam = frame.camera
        if tcp_path_m is not None and len(tcp_path_m) > 1:
            uv, _ = cam.project(np.array(tcp_path_m))
            cv2.polylines(img, [np.round(uv).astype(np.int32)], False, TRAJECTORY, 2, cv2.LINE_AA)
        if reward.plan is not None:
            grasp = next(m for m in reward.plan.marks if m.label == reward.plan.answer.grasp)
            pre = np.array(grasp.point_base_m) + np.array([0.0, 0.0, reward.plan.answer.pre_grasp_height_m])
            chain = [np.array(grasp.point_base_m), *reward.plan.waypoints_base_m]
            pre_uv = np.round(cam.project(pre[None])[0][0]).astype(int)
            cv2.arrowedLine(img, tuple(pre_uv), tuple(np.round(cam.project(chain[0][None])[0][0]).astype(int)),
                            CHOSEN, 1, cv2.LINE_AA, tipLength=0.3)
            put_label(img, "pre", (int(pre_uv[0]) + 6, int(pre_uv[1])), CHOSEN)
            uv, _ = cam.project(np.array(chain))
            pts = np.round(uv).astype(np.int32)
            cv2.polylines(img, [pts], False, WAYPOINT, 1, cv2.LINE_AA)
            cv2.circle(img, tuple(pts[0]), 7, CHOSEN, 2, cv2.LINE_AA)
            put_label(img, f"grasp {grasp.label}", (int(pts[0][0]) - 70, int(pts[0][1]) + 22), CHOSEN)
            for i, p in enumerate(pts[1:]):
                last = i == len(pts) - 2
                cv2.drawMarker(img, tuple(p), WAYPOINT, cv2.MARKER_TILTED_CROSS if last else cv2.MARKER_DIAMOND, 12, 2)
                put_label(img, "target" if last else f"W{i + 1}", (int(p[0]) - 60, int(p[1]) + 4), WAYPOINT)
        zoom = _zoom_panel(img, tuple(pts[0])) if reward.plan is not None else None
        put_label(img, f"{frame.camera.name}: {reward.task.instruction}", (8, img.shape[0] - 10), (255, 255, 255), 0.5)
        panels += [img] if zoom is None else [img, zoom]
    return np.concatenate(panels, axis=1)


def _zoom_panel(img: np.ndarray, centre: tuple[int, int], scale: int = 4) -> np.ndarray:
    """The region around the grasp point magnified to the full image size (objects are small at 640x480);
    its outline is drawn on ``img``."""
    h, w = img.shape[:2]
    cw, ch = w // scale, h // scale
    x0 = int(np.clip(centre[0] - cw // 2, 0, w - cw))
    y0 = int(np.clip(centre[1] - ch // 2, 0, h - ch))
    panel = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.rectangle(img, (x0, y0), (x0 + cw, y0 + ch), (255, 255, 255), 1)
    put_label(panel, f"x{scale} around the grasp point", (8, h - 10), (255, 255, 255), 0.5)
    return panel


def save_rgb(path: str | Path, rgb: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def plot_reward_trace(traces: dict[str, list[tuple[float, Breakdown]]], path: str | Path, title: str,
                      terms: tuple[str, ...] = ("progress", "waypoints_reached", "active_stage", "grasped")) -> Path:
    """Reward per step of one episode for each reward (top), and their named terms (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for name, trace in traces.items():
        top.plot([r for r, _ in trace], marker=".", label=name)
        for term in terms:
            values = [b.get(term) for _, b in trace]
            if any(v is not None for v in values):
                bottom.plot([np.nan if v is None else v for v in values], label=f"{name}: {term}")
    top.set_ylabel("reward per step")
    top.set_title(title, fontsize=10)
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    bottom.set_xlabel("policy step (10 Hz)")
    bottom.set_ylabel("terms")
    bottom.legend(fontsize=7, ncol=2)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
