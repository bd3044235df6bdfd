"""Chat messages with images, in the OpenAI wire format, and their content-addressed canonical form.

Images travel as PNG data URLs (lossless, so a cached request and its replay see the same pixels). The
canonical form replaces every data URL by ``sha256:<hex>`` of its decoded bytes: that is what the cache
keys on and what it stores for inspection (the image bytes go into a table of their own).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

_DATA_URL = re.compile(r"^data:(?P<mime>image/[a-z0-9.+-]+);base64,(?P<data>.*)$", re.DOTALL)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Lossless PNG of an (H, W, 3) uint8 RGB image."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot PNG-encode an image of shape {rgb.shape}")
    return buf.tobytes()


def image_data_url(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def decode_data_url(url: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a base64 data URL; ValueError for anything else."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ValueError("not a base64 image data URL")
    return match["mime"], base64.b64decode(match["data"], validate=True)


def decode_image(url: str) -> np.ndarray:
    """RGB uint8 pixels of an image data URL (what a server does with it)."""
    _, data = decode_data_url(url)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("image data URL does not decode to an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def user_message(text: str, images: list[np.ndarray] | None = None) -> dict[str, Any]:
    """A user turn: text first, then images (each as a PNG data URL)."""
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": image_data_url(img)}} for img in images]
    return {"role": "user", "content": parts}


@dataclass
class CanonicalRequest:
    """A request with images replaced by content hashes; ``images`` maps each hash to (mime, bytes)."""

    body: dict[str, Any]
    images: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def key(self) -> str:
        return hashlib.sha256(canonical_json(self.body).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonicalize(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> CanonicalRequest:
    """The cache identity of a request: model, messages (images by hash) and answer-shaping parameters."""
    images: dict[str, tuple[str, bytes]] = {}

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("type") == "image_url":
                mime, data = decode_data_url(value["image_url"]["url"])
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                images[digest] = (mime, data)
                return {"type": "image_url", "image_url": {"url": digest}}
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return CanonicalRequest({"model": model, "messages": strip(messages), "params": params}, images)


def message_text(messages: list[dict[str, Any]]) -> str:
    """All text of a conversation (for token estimates and oracles)."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [p.get("text", "") for p in content if p.get("type") == "text"]
    return "\n".join(out)
