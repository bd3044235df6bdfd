"""MOKA-style candidate marks on keyframe images, each with its 3-D point in the base frame.

Three kinds, numbered across all cameras so a label names one point: object points ``P1..`` sampled on each
object's mask (farthest-point sampling) and lifted with depth; free-space points ``Q1..`` placed in 3-D above
and around the objects (kept only where visible); a tile grid ``A1..D4`` whose points are the surface under
each tile's centre. Drawn with outlined labels so a person (and a VLM) can read them on any background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from robot_learning.rewards.kagi.camera import Keyframe, depth_at

MarkKind = Literal["object", "free", "tile"]
FREE_OFFSETS_M = np.array([[0, 0, 0.06], [0, 0, 0.12], [0, 0, 0.20], [0.08, 0, 0.10], [-0.08, 0, 0.10],
                           [0, 0.08, 0.10], [0, -0.08, 0.10]])
COLOURS = {"object": (255, 220, 0), "free": (0, 220, 255), "tile": (235, 235, 235)}


@dataclass(frozen=True)
class Mark:
    label: str
    kind: MarkKind
    camera: str
    pixel_uv: tuple[float, float]
    point_base_m: tuple[float, float, float]
    object: str | None = None

    def legend(self) -> str:
        where = f"on {self.object}" if self.object else {"free": "free space", "tile": "tile centre"}[self.kind]
        return f"{self.label} ({where}) at pixel ({self.pixel_uv[0]:.0f}, {self.pixel_uv[1]:.0f}) of {self.camera}"


def farthest_points(pixels: np.ndarray, n: int, start: np.ndarray) -> np.ndarray:
    """``n`` pixels spread over a mask, starting from the one nearest ``start`` (deterministic)."""
    chosen = [int(np.argmin(np.linalg.norm(pixels - start, axis=1)))]
    dist = np.linalg.norm(pixels - pixels[chosen[0]], axis=1)
    while len(chosen) < min(n, len(pixels)):
        chosen.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(pixels - pixels[chosen[-1]], axis=1))
    return pixels[chosen]


def _top_centre_pixel(frame: Keyframe, pixels: np.ndarray) -> np.ndarray:
    """Pixel of the centre of the object's highest visible surface: the natural first grasp candidate."""
    points = frame.camera.back_project(pixels, frame.depth_m[pixels[:, 1].astype(int), pixels[:, 0].astype(int)])
    top = pixels[points[:, 2] >= points[:, 2].max() - 0.005]
    return top.mean(axis=0)


def object_marks(frame: Keyframe, n_per_object: int, first_index: int) -> list[Mark]:
    marks: list[Mark] = []
    for name, mask in frame.masks.items():
        inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if inner.sum() < 4:
            inner = mask
        vs, us = np.nonzero(inner)
        if len(us) == 0:
            continue
        pixels = np.stack([us, vs], axis=1).astype(float)
        picked = farthest_points(pixels, n_per_object, _top_centre_pixel(frame, pixels))
        depth = depth_at(frame.depth_m, picked, window_px=1)
        points = frame.camera.back_project(picked, depth)
        for uv, point, z in zip(picked, points, depth, strict=True):
            if z > 0:
                label = f"P{first_index + len(marks)}"
                marks.append(Mark(label, "object", frame.camera.name, tuple(uv), tuple(point), name))
    return marks


def free_space_marks(frame: Keyframe, anchors_m: list[np.ndarray], existing: list[Mark], first_index: int,
                     min_separation_px: float = 18.0) -> list[Mark]:
    """3-D points above and around each anchor that the camera sees (nothing in front of them)."""
    marks: list[Mark] = []
    taken = [np.array(m.pixel_uv) for m in existing if m.camera == frame.camera.name]
    for anchor in anchors_m:
        candidates = anchor + FREE_OFFSETS_M
        uv, z = frame.camera.project(candidates)
        for point, pix, zc in zip(candidates, uv, z, strict=True):
            if zc <= 0 or not frame.camera.inside(pix[None], margin_px=12)[0]:
                continue
            seen = depth_at(frame.depth_m, pix[None])[0]
            if 0 < seen < zc - 0.01 or any(np.linalg.norm(pix - t) < min_separation_px for t in taken):
                continue
            taken.append(pix)
            marks.append(Mark(f"Q{first_index + len(marks)}", "free", frame.camera.name, tuple(pix), tuple(point)))
    return marks


def tile_marks(frame: Keyframe, rows: int, cols: int, prefix: str = "") -> list[Mark]:
    marks = []
    h, w = frame.depth_m.shape
    for r in range(rows):
        for c in range(cols):
            uv = np.array([(c + 0.5) * w / cols, (r + 0.5) * h / rows])
            z = depth_at(frame.depth_m, uv[None], window_px=3)[0]
            if z <= 0 or z > 5.0:
                continue
            point = frame.camera.back_project(uv[None], np.array([z]))[0]
            label = f"{prefix}{chr(ord('A') + r)}{c + 1}"
            marks.append(Mark(label, "tile", frame.camera.name, tuple(uv), tuple(point)))
    return marks


def build_marks(frames: list[Keyframe], n_object_points: int = 4, tile_grid: tuple[int, int] = (4, 4)) -> list[Mark]:
    """All candidate marks of a keyframe set; labels unique across cameras."""
    marks: list[Mark] = []
    for frame in frames:
        marks += object_marks(frame, n_object_points, 1 + sum(m.kind == "object" for m in marks))
    for frame in frames:
        anchors = [np.mean([m.point_base_m for m in marks if m.object == name], axis=0)
                   for name in frame.masks if any(m.object == name for m in marks)]
        marks += free_space_marks(frame, anchors, marks, 1 + sum(m.kind == "free" for m in marks))
    for i, frame in enumerate(frames):
        marks += tile_marks(frame, *tile_grid, prefix="" if len(frames) == 1 else f"{i + 1}")
    return marks


def put_label(img: np.ndarray, text: str, org: tuple[int, int], colour: tuple[int, int, int],
              scale: float = 0.45) -> None:
    """Text with a dark outline: readable on the table, the robot and the objects alike."""
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def draw_marks(frame: Keyframe, marks: list[Mark], tile_grid: tuple[int, int] = (4, 4)) -> np.ndarray:
    """The image the model is shown: faint tile grid with tile labels, then numbered object/free points."""
    img = frame.rgb.copy()
    h, w = img.shape[:2]
    rows, cols = tile_grid
    for r in range(1, rows):
        cv2.line(img, (0, r * h // rows), (w, r * h // rows), (255, 255, 255), 1, cv2.LINE_AA)
    for c in range(1, cols):
        cv2.line(img, (c * w // cols, 0), (c * w // cols, h), (255, 255, 255), 1, cv2.LINE_AA)
    points = [m for m in marks if m.camera == frame.camera.name and m.kind != "tile"]
    for mark in marks:
        if mark.camera == frame.camera.name and mark.kind == "tile":
            u, v = (round(x) for x in mark.pixel_uv)
            put_label(img, mark.label, (u - w // (2 * cols) + 4, v - h // (2 * rows) + 16), COLOURS["tile"], 0.5)
    dots = [tuple(round(x) for x in m.pixel_uv) for m in points]
    for u, v in dots:
        cv2.circle(img, (u, v), 4, (0, 0, 0), -1, cv2.LINE_AA)
    placed: list[tuple[int, int, int, int]] = []
    for mark, (u, v) in zip(points, dots, strict=True):
        cv2.circle(img, (u, v), 3, COLOURS[mark.kind], -1, cv2.LINE_AA)
        org = _label_position(mark.label, (u, v), placed, dots)
        put_label(img, mark.label, org, COLOURS[mark.kind])
    return img


def _label_position(text: str, dot: tuple[int, int], placed: list[tuple[int, int, int, int]],
                    dots: list[tuple[int, int]]) -> tuple[int, int]:
    """First of four spots around the dot whose box overlaps no placed label and no other dot."""
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    u, v = dot
    candidates = [(u + 6, v - 6), (u + 6, v + th + 6), (u - tw - 6, v - 6), (u - tw - 6, v + th + 6)]
    for x, y in candidates:
        box = (x - 1, y - th - 1, x + tw + 1, y + 2)
        clear = all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in placed)
        clear = clear and not any(box[0] - 2 <= du <= box[2] + 2 and box[1] - 2 <= dv <= box[3] + 2 for du, dv in dots)
        if clear:
            placed.append(box)
            return x, y
    x, y = candidates[0]
    placed.append((x, y - th, x + tw, y))
    return x, y
