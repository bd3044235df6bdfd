"""What one per-step array of an episode store holds (shape, dtype, unit, frame) and how it is chunked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from controllers.actions import ACTION_DESCRIPTION, ACTION_DIM, ACTION_DTYPE, ACTION_FRAME, ACTION_UNITS
from controllers.observations import ObservationKey

LOW_DIM_CHUNK_STEPS = 16  # shorter than any real episode: a damaged chunk touches at most two of them


@dataclass(frozen=True)
class ArraySpec:
    """One per-step array: its shape excluding time, dtype, physical unit and (for poses) its frame.

    ``chunk_steps`` overrides the chunking along time; by default image-like arrays (H, W >= 16) and steps
    over 64 KiB get one step per chunk, low-dimensional ones 16 steps (fewer if that passes 256 KiB), so that
    one damaged chunk takes at most the one or two episodes it overlaps with it.
    """

    shape: tuple[int, ...]
    dtype: Any
    unit: str
    frame: str | None = None
    description: str = ""
    chunk_steps: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        dtype = np.dtype(self.dtype)
        if dtype.kind not in "biuf":
            raise ValueError(f"ArraySpec dtype must be bool/int/uint/float, got {dtype}")
        object.__setattr__(self, "dtype", dtype)
        if any(s <= 0 for s in self.shape):
            raise ValueError(f"ArraySpec shape must be positive, got {self.shape}")
        if not isinstance(self.unit, str) or not self.unit:
            raise ValueError(f"ArraySpec needs a unit (use '1' for dimensionless), got {self.unit!r}")
        if self.chunk_steps is not None and self.chunk_steps < 1:
            raise ValueError(f"chunk_steps must be >= 1, got {self.chunk_steps}")

    @property
    def is_image(self) -> bool:
        """uint8 HxWx3 colour image."""
        return self.dtype == np.uint8 and len(self.shape) == 3 and self.shape[2] == 3

    @property
    def step_nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def time_chunk(self) -> int:
        """Steps per chunk: one frame for images/depth, so a reader decodes only the frames it asks for."""
        if self.chunk_steps is not None:
            return self.chunk_steps
        image_like = len(self.shape) >= 2 and self.shape[0] >= 16 and self.shape[1] >= 16
        if image_like or self.step_nbytes >= 64 * 1024:
            return 1
        return int(np.clip((256 * 1024) // self.step_nbytes, 1, LOW_DIM_CHUNK_STEPS))

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype.str,
            "unit": self.unit,
            "frame": self.frame,
            "description": self.description,
            "chunk_steps": self.chunk_steps,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ArraySpec:
        return cls(
            tuple(d["shape"]), d["dtype"], d["unit"], d.get("frame"), d.get("description", ""), d.get("chunk_steps")
        )


def observation_spec(key: ObservationKey) -> ArraySpec:
    """The stored array of one observation key (which must have its shape: sim-only keys get theirs from the task)."""
    if key.shape is None:
        raise ValueError(f"observation key {key.name!r} has no shape yet (sim-only: its length comes from the task)")
    return ArraySpec(key.shape, key.dtype, key.unit, frame=key.frame, description=key.description)


ACTION_SPEC = ArraySpec((ACTION_DIM,), ACTION_DTYPE, ",".join(ACTION_UNITS), frame=ACTION_FRAME,
                        description=ACTION_DESCRIPTION)


def episode_specs(observation: Mapping[str, ObservationKey]) -> dict[str, ArraySpec]:
    """Array specs of an episode: every key of ``observation`` (in its order; see
    :func:`controllers.observations.observation_schema`), then action, reward and time."""
    specs = {name: observation_spec(key) for name, key in observation.items()}
    specs["action"] = ACTION_SPEC
    specs["reward"] = ArraySpec((), np.float32, "1", description="task reward after the action")
    specs["timestamp"] = ArraySpec((), np.float64, "s", description="observation time (sim clock)")
    return specs


def schema_sha256(specs: Mapping[str, ArraySpec]) -> str:
    """Hash of what a consumer depends on: keys, shapes, dtypes, units, frames (not chunking or prose)."""
    schema = {k: [list(s.shape), s.dtype.newbyteorder("<").str, s.unit, s.frame] for k, s in sorted(specs.items())}
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


def describe_specs(specs: Mapping[str, ArraySpec]) -> str:
    return ", ".join(f"{k}{s.shape}:{s.dtype.name}[{s.unit}]" for k, s in specs.items())
