"""Buffers one episode in memory, validating every step as it arrives, and hands it to the store on commit.

Validation happens in ``add_step`` so that a bad value (wrong shape, NaN from a dropped sensor message) is
reported at the step that produced it and never reaches disk.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from robot_learning.data.episode_store import ArraySpec, EpisodeStore

# Keys of `info` stored in their own columns; everything else goes to a JSON column.
_COLUMN_INFO = ("seed", "task", "operator", "duration_s")
_DERIVED_INFO = ("success", "start_time_unix_s", "n_steps")


class StepValidationError(ValueError):
    """A step (or episode info) does not match the store's declared specs."""


def episode_sha256(data: Mapping[str, np.ndarray]) -> bytes:
    """Hash of an episode's arrays (sorted keys, little-endian bytes), independent of chunking/compression."""
    h = hashlib.sha256()
    for key in sorted(data):
        arr = np.ascontiguousarray(data[key])
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        h.update(key.encode() + b"\0" + repr(arr.shape).encode() + b"\0")
        h.update(arr.tobytes())
    return h.digest()


def _check_value(key: str, spec: ArraySpec, value: Any) -> np.ndarray:
    """Copy of ``value`` as ``spec.dtype``; raises naming the key on bad shape, unsafe dtype or non-finite."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise StepValidationError(f"key {key!r}: expected numeric {spec.dtype}, got dtype {arr.dtype}")
    if arr.shape != spec.shape:
        raise StepValidationError(f"key {key!r}: expected per-step shape {spec.shape}, got {arr.shape}")
    # Safe casts, plus any int/float -> float (float64 sensor readings into float32 arrays).
    if not (np.can_cast(arr.dtype, spec.dtype, "safe") or (arr.dtype.kind in "iuf" and spec.dtype.kind == "f")):
        raise StepValidationError(f"key {key!r}: cannot safely cast {arr.dtype} to {spec.dtype}")
    out = np.array(arr, dtype=spec.dtype, copy=True)  # copy: callers reuse their camera/state buffers
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        n_nan, n_inf = int(np.isnan(out).sum()), int(np.isinf(out).sum())
        raise StepValidationError(f"key {key!r}: {n_nan} NaN and {n_inf} inf values; refusing to record them")
    return out


class EpisodeWriter:
    """One episode being recorded; get it from ``EpisodeStore.begin_episode``.

    Leaving the ``with`` block without ``commit`` (or through an exception) discards the episode.
    """

    def __init__(self, store: EpisodeStore, info: dict[str, Any]) -> None:
        bad = [k for k in _DERIVED_INFO if k in info]
        if bad:
            raise StepValidationError(f"info may not set {bad}: success goes to commit(), the rest is derived")
        seed = info.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise StepValidationError(f"info['seed'] must be a non-negative int or None, got {seed!r}")
        for k in ("task", "operator"):
            if not isinstance(info.get(k, ""), str):
                raise StepValidationError(f"info[{k!r}] must be a string, got {info[k]!r}")
        extra = {k: v for k, v in info.items() if k not in _COLUMN_INFO}
        try:
            self._extra_json = json.dumps(extra, sort_keys=True)
        except TypeError as e:
            raise StepValidationError(f"episode info must be JSON-serialisable: {e}") from None
        self._store = store
        self._info = info
        self._steps: dict[str, list[np.ndarray]] = {k: [] for k in store.specs}
        self._specs = store.specs
        self._start_unix_s = time.time()
        self._start_mono_s = time.monotonic()
        self._done = False

    def __len__(self) -> int:
        return len(next(iter(self._steps.values())))

    @property
    def active(self) -> bool:
        return not self._done

    def add_step(self, **values: Any) -> None:
        """Buffer one time step; every declared key must be present, with its declared shape."""
        if self._done:
            raise RuntimeError("this episode was already committed or discarded")
        missing = [k for k in self._specs if k not in values]
        unknown = [k for k in values if k not in self._specs]
        if missing or unknown:
            raise StepValidationError(
                f"step {len(self)}: missing keys {missing}, unknown keys {unknown}; declared: {list(self._specs)}"
            )
        checked = {k: _check_value(k, spec, values[k]) for k, spec in self._specs.items()}
        for k, v in checked.items():  # only after every key passed, so a bad step leaves no partial row
            self._steps[k].append(v)

    def commit(self, success: bool) -> int:
        """Write the episode to the store, all or nothing; returns its episode index."""
        if self._done:
            raise RuntimeError("this episode was already committed or discarded")
        if len(self) == 0:
            raise StepValidationError("cannot commit an episode with no steps")
        data = {k: np.stack(v) for k, v in self._steps.items()}
        info = self._info
        row = {
            "success": bool(success),
            "seed": -1 if info.get("seed") is None else int(info["seed"]),
            "task": info.get("task", str(self._store.attrs.get("task", ""))),
            "operator": info.get("operator", ""),
            "duration_s": float(info.get("duration_s", time.monotonic() - self._start_mono_s)),
            "start_time_unix_s": self._start_unix_s,
            "info_json": self._extra_json,
        }
        index = self._store._commit(data, row)
        self._finish()
        return index

    def discard(self) -> None:
        """Drop the buffered steps; nothing of this episode reaches the store."""
        if not self._done:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        self._steps = {k: [] for k in self._specs}
        self._store._end_writer(self)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
