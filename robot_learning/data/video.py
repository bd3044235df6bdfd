"""Look at recorded episodes: every camera of an episode side by side, as an mp4 or a PNG contact sheet.

Meant for people (reviewing demonstrations, READMEs), so frames carry a caption: key names above each
image, episode and step below.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from robot_learning.data.episode_store import EpisodeStore

try:
    import cv2
except ImportError:  # pragma: no cover - cv2 is a dependency, but captions are optional
    cv2 = None

BAND_PX = 14  # height of each caption band
_GAP_PX = 4  # spacing between contact-sheet tiles
_BAND_RGB = (24, 24, 24)
_GAP_RGB = (128, 128, 128)


def image_keys(store: EpisodeStore) -> list[str]:
    """Keys holding uint8 HxWx3 images, in declaration order."""
    return [k for k, s in store.specs.items() if s.is_image]


def _resize_to_height(img: np.ndarray, height: int) -> np.ndarray:
    if img.shape[0] == height:
        return img
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    if cv2 is not None:
        interp = cv2.INTER_AREA if height < img.shape[0] else cv2.INTER_LINEAR
        return cv2.resize(img, (width, height), interpolation=interp)
    rows = np.arange(height) * img.shape[0] // height
    cols = np.arange(width) * img.shape[1] // width
    return img[rows][:, cols]


def _put_text(band: np.ndarray, text: str, x: int) -> None:
    """Write ``text`` into a caption band in place, clipped to the band (no-op without cv2)."""
    if cv2 is None:
        return
    cv2.putText(band, text, (x + 2, band.shape[0] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)


def _fit(text: str, width_px: int) -> str:
    """Truncate so the text fits ``width_px`` at the caption font (~6 px per character)."""
    n = max(1, (width_px - 4) // 6)
    return text if len(text) <= n else text[: max(1, n - 1)] + "~"


def compose_frame(images: Sequence[np.ndarray], names: Sequence[str], caption: str, height: int) -> np.ndarray:
    """Images side by side at a common ``height``, names in a band above, ``caption`` in a band below."""
    tiles = [_resize_to_height(np.asarray(img, dtype=np.uint8), height) for img in images]
    body = np.concatenate(tiles, axis=1)
    top = np.empty((BAND_PX, body.shape[1], 3), np.uint8)
    top[:] = _BAND_RGB
    x = 0
    for tile, name in zip(tiles, names, strict=True):
        _put_text(top, _fit(name, tile.shape[1]), x)
        x += tile.shape[1]
    bottom = np.empty_like(top)
    bottom[:] = _BAND_RGB
    _put_text(bottom, _fit(caption, body.shape[1]), 0)
    return np.concatenate([top, body, bottom], axis=0)


def _episode_frames(
    store: EpisodeStore, episode: int, keys: Sequence[str] | None
) -> tuple[list[str], dict[str, np.ndarray]]:
    keys = image_keys(store) if keys is None else list(keys)
    not_images = [k for k in keys if k not in store.specs or not store.specs[k].is_image]
    if not keys or not_images:
        raise ValueError(f"need uint8 HxWx3 image keys; bad: {not_images}, image keys: {image_keys(store)}")
    return keys, store.get_episode(episode, keys)


def _frame(data: dict[str, np.ndarray], keys: Sequence[str], episode: int, step: int, height: int | None) -> np.ndarray:
    n_steps = len(data[keys[0]])
    height = height or max(data[k].shape[1] for k in keys)  # (T, H, W, 3)
    return compose_frame([data[k][step] for k in keys], keys, f"ep {episode}  step {step}/{n_steps - 1}", height)


def _pad_to_multiple(frame: np.ndarray, m: int) -> np.ndarray:
    """Pad bottom/right to a multiple of ``m`` px, as H.264 with yuv420p wants (and imageio would resize)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, -h % m), (0, -w % m), (0, 0)))


def render_episode_video(
    store: EpisodeStore, episode: int, out_path: str | Path, fps: float = 10, keys: Sequence[str] | None = None
) -> Path:
    """Write an mp4 (H.264) with one captioned frame per step of ``episode``; returns the path."""
    keys, data = _episode_frames(store, episode, keys)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(
        out_path, fps=fps, codec="libx264", quality=8, macro_block_size=1, ffmpeg_log_level="error"
    ) as writer:
        for step in range(len(data[keys[0]])):
            writer.append_data(_pad_to_multiple(_frame(data, keys, episode, step, None), 16))
    return out_path


def contact_sheet(
    store: EpisodeStore, episode: int, n_frames: int = 6, keys: Sequence[str] | None = None, n_cols: int = 3
) -> np.ndarray:
    """Grid of ``n_frames`` evenly spaced captioned frames (fewer if the episode is shorter)."""
    keys, data = _episode_frames(store, episode, keys)
    n_steps = len(data[keys[0]])
    steps = np.unique(np.linspace(0, n_steps - 1, min(n_frames, n_steps)).round().astype(int))
    tiles = [_frame(data, keys, episode, int(s), None) for s in steps]
    th, tw = tiles[0].shape[:2]
    n_cols = min(n_cols, len(tiles))
    n_rows = -(-len(tiles) // n_cols)
    sheet = np.empty((n_rows * (th + _GAP_PX) + _GAP_PX, n_cols * (tw + _GAP_PX) + _GAP_PX, 3), np.uint8)
    sheet[:] = _GAP_RGB
    for i, tile in enumerate(tiles):
        y, x = _GAP_PX + (i // n_cols) * (th + _GAP_PX), _GAP_PX + (i % n_cols) * (tw + _GAP_PX)
        sheet[y : y + th, x : x + tw] = tile
    return sheet


def write_contact_sheet(
    store: EpisodeStore, episode: int, out_png: str | Path, n_frames: int = 6, keys: Sequence[str] | None = None
) -> Path:
    """Save ``contact_sheet`` as a PNG; returns the path."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    imageio.imwrite(out_png, contact_sheet(store, episode, n_frames, keys))
    return out_png
