"""Everything between raw observations and the model's tensors: normalisation, history, device moves.

Kept outside the model (as LeRobot's processors are) so that the model stays pure torch and the same
statistics travel in the checkpoint as plain numbers. Low-dim arrays and actions are min-max scaled to
[-1, 1] with the dataset's statistics; images (uint8 HxWx3) go to float CHW in [-1, 1].
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

RANGE_EPS = 1e-4  # dims whose range is below this are only centred, not scaled (constant in the data)


class MinMaxNormalizer:
    """Per-dimension affine map of each key from its dataset [min, max] to [-1, 1]."""

    def __init__(self, stats: Mapping[str, Mapping[str, Sequence[float]]]):
        self.stats = {k: {"min": np.asarray(v["min"], np.float32), "max": np.asarray(v["max"], np.float32)}
                      for k, v in stats.items()}
        self._scale: dict[str, np.ndarray] = {}
        self._offset: dict[str, np.ndarray] = {}
        for key, s in self.stats.items():
            lo, hi = s["min"], s["max"]
            span = hi - lo
            constant = span < RANGE_EPS
            scale = np.where(constant, 1.0, 2.0 / np.where(constant, 1.0, span))
            offset = np.where(constant, -lo, -1.0 - scale * lo)
            self._scale[key], self._offset[key] = scale.astype(np.float32), offset.astype(np.float32)

    @classmethod
    def fit(cls, arrays: Mapping[str, np.ndarray]) -> MinMaxNormalizer:
        """Statistics over the first axis (all steps of all episodes) of each array."""
        stats = {}
        for key, arr in arrays.items():
            flat = np.asarray(arr, np.float64).reshape(len(arr), -1)
            if not np.all(np.isfinite(flat)):
                raise ValueError(f"{key!r} has non-finite values; cannot fit normalisation statistics")
            stats[key] = {"min": flat.min(0).tolist(), "max": flat.max(0).tolist()}
        return cls(stats)

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        scale, offset = self._tensors(key, x)
        return x * scale + offset

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        scale, offset = self._tensors(key, x)
        return (x - offset) / scale

    def _tensors(self, key: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if key not in self._scale:
            raise KeyError(f"no normalisation statistics for {key!r}; have {sorted(self._scale)}")
        return (torch.as_tensor(self._scale[key], dtype=like.dtype, device=like.device),
                torch.as_tensor(self._offset[key], dtype=like.dtype, device=like.device))

    def state_dict(self) -> dict[str, dict[str, list[float]]]:
        """JSON-able statistics (what the checkpoint stores)."""
        return {k: {"min": s["min"].tolist(), "max": s["max"].tolist()} for k, s in self.stats.items()}


def images_to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | str,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1] on ``device`` (moved as uint8: 4x less to copy)."""
    x = torch.as_tensor(images).to(device, non_blocking=True)
    return (x.movedim(-1, -3).to(dtype) / 127.5 - 1.0).contiguous()


class ObservationProcessor:
    """Raw (numpy) observation histories -> normalised model inputs on a device; model actions -> raw."""

    def __init__(self, camera_keys: Sequence[str], low_dim_keys: Sequence[str], action_key: str,
                 normalizer: MinMaxNormalizer, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.camera_keys, self.low_dim_keys, self.action_key = list(camera_keys), list(low_dim_keys), action_key
        self.normalizer, self.device, self.dtype = normalizer, torch.device(device), dtype

    def observations(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``batch[key]``: (B, T, ...) arrays or tensors -> dict of (B, T, ...) model inputs."""
        out = {k: images_to_tensor(batch[k], self.device, self.dtype) for k in self.camera_keys}
        for k in self.low_dim_keys:
            x = torch.as_tensor(batch[k]).to(self.device, self.dtype, non_blocking=True)
            out[k] = self.normalizer.normalize(k, x)
        return out

    def actions(self, action: Any) -> torch.Tensor:
        """Raw (B, horizon, A) actions -> normalised tensor (training targets)."""
        x = torch.as_tensor(action).to(self.device, self.dtype, non_blocking=True)
        return self.normalizer.normalize(self.action_key, x)

    def unnormalize_actions(self, action: torch.Tensor) -> np.ndarray:
        """Model output -> raw float32 numpy actions (on the CPU)."""
        return self.normalizer.unnormalize(self.action_key, action.float()).cpu().numpy().astype(np.float32)


class ObservationHistory:
    """The last ``n_steps`` observations of one episode; the first one repeated until there are enough.

    Repeating the first frame is what the training windows do at episode starts, so the policy sees the
    same thing at t=0 in training and at run time.
    """

    def __init__(self, n_steps: int, keys: Sequence[str]):
        if n_steps < 1:
            raise ValueError(f"history needs at least one step, got {n_steps}")
        self.n_steps, self.keys = n_steps, list(keys)
        self._frames: deque[dict[str, np.ndarray]] = deque(maxlen=n_steps)

    def reset(self) -> None:
        self._frames.clear()

    def push(self, obs: Mapping[str, np.ndarray]) -> None:
        frame = {k: np.array(obs[k], copy=True) for k in self.keys}
        if not self._frames:
            self._frames.extend(frame for _ in range(self.n_steps))
        else:
            self._frames.append(frame)

    def __len__(self) -> int:
        return len(self._frames)

    def latest(self) -> dict[str, np.ndarray]:
        """The newest observation {key: array}."""
        if not self._frames:
            raise RuntimeError("observation history is empty: push() an observation first")
        return self._frames[-1]

    def stacked(self) -> dict[str, np.ndarray]:
        """{key: (n_steps, ...)}, oldest first."""
        if not self._frames:
            raise RuntimeError("observation history is empty: push() an observation first")
        return {k: np.stack([f[k] for f in self._frames]) for k in self.keys}
