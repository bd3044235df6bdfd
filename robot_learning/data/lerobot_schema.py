"""The LeRobotDataset v3.0 format as LeRobot 0.4.4 writes it, and how our store's arrays map onto its features.

Layout (``codebase_version`` "v3.0")::

    meta/info.json                       fps, totals, path templates, features {name: dtype, shape, names, info}
    meta/stats.json                      per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
    meta/tasks.parquet                   task text (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: tasks, length, data and video file indices,
                                         dataset_from/to_index, videos/<key>/from/to_timestamp, stats/<feature>/<stat>
    data/chunk-XXX/file-XXX.parquet      one row per frame: non-video features + timestamp, frame_index,
                                         episode_index, index, task_index
    videos/<key>/chunk-XXX/file-XXX.mp4  the episodes of a camera one after another, frame k at k / fps

Column types, the ``huggingface`` schema metadata of data files, the pandas metadata of ``tasks.parquet`` and the
shapes of the statistics are copied from a dataset that LeRobot 0.4.4's own ``LeRobotDataset`` wrote
(``benchmarks/lerobot_check.py`` writes one and compares).

Mapping (store key -> feature): ``<camera>_rgb`` -> ``observation.images.<camera>`` (video); the proprioceptive
keys a policy reads (``controllers.observations.PROPRIOCEPTION``, ``policy_input``) -> one ``observation.state``
vector, element names like ``tcp_position.x``; ``action`` -> ``action``; ``reward`` -> ``next.reward``;
``<camera>_depth`` -> ``observation.depth.<camera>`` (float32 (H, W) metres in the data files: LeRobot videos are
8-bit, depth would lose its millimetres); everything LeRobot has no slot for (the quaternion, the sim-only
privileged keys, the store's own float64 timestamps) -> ``manip_stack.<key>``, a prefix LeRobot's policies ignore.
Every feature carries ``manip_stack``: the store keys, shapes, dtypes, units, frames and descriptions it came from,
so an import rebuilds the exact store schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from controllers.actions import ACTION_NAMES
from controllers.observations import PROPRIOCEPTION
from robot_learning.data.specs import ArraySpec

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
INDEX_FEATURES = {  # LeRobot's DEFAULT_FEATURES, in its order
    "timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64", "task_index": "int64",
}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STAT_NAMES = ("min", "max", "mean", "std", "count", *(f"q{round(q * 100):02d}" for q in QUANTILES))
META = "manip_stack"  # our metadata's key in info.json and in each feature
IMAGES, DEPTH, STATE = "observation.images.", "observation.depth.", "observation.state"

_COMPONENTS = {
    "tcp_position": ("x", "y", "z"),
    "tcp_rot6d": ("r00", "r10", "r20", "r01", "r11", "r21"),  # first two columns of the rotation matrix
    "tcp_quaternion": ("x", "y", "z", "w"),
    "action": ACTION_NAMES,
}


@dataclass
class Feature:
    """One LeRobot feature and the store arrays it holds (several for ``observation.state``, else one)."""

    name: str
    kind: str  # "video" | "value" (shape (1,)) | "list" (1-D) | "array" (2-D and up) | "image" (PNG, import only)
    dtype: np.dtype
    shape: tuple[int, ...]
    parts: list[tuple[str, ArraySpec]] = field(default_factory=list)

    def stack(self, data: dict[str, np.ndarray]) -> np.ndarray:
        """(T, *shape) values of this feature from an episode's store arrays."""
        cols = [data[key].reshape(len(data[key]), -1) if self.name == STATE else data[key] for key, _ in self.parts]
        out = np.concatenate(cols, axis=1) if self.name == STATE else cols[0]
        return out.reshape(len(out), *self.shape)

    def split(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """The store arrays back from (T, *shape) values."""
        out, start = {}, 0
        for key, spec in self.parts:
            n = int(np.prod(spec.shape, dtype=np.int64))
            flat = values.reshape(len(values), -1)
            out[key] = flat[:, start:start + n].reshape(len(values), *spec.shape).astype(spec.dtype, copy=False)
            start += n
        return out

    def names(self) -> list[str] | None:
        if self.kind == "video":
            return ["height", "width", "channels"]
        if self.kind == "array":
            return ["height", "width"] if len(self.shape) == 2 else None
        names = []
        for key, spec in self.parts:
            n = int(np.prod(spec.shape, dtype=np.int64))
            comps = _COMPONENTS.get(key) or (tuple(str(i + 1) for i in range(n)) if key == "joint_pos" else None)
            prefix = "" if self.name == "action" else f"{key}."
            if n == 1 and not comps:
                names.append(key)
            elif comps and len(comps) == n:
                names += [f"{prefix}{c}" for c in comps]
            else:
                names += [f"{key}.{i}" for i in range(n)]
        return names if self.kind == "list" else None

    def to_json(self) -> dict[str, Any]:
        """The feature's entry in info.json (``info`` of videos is added once the files exist)."""
        entry: dict[str, Any] = {"dtype": "video" if self.kind == "video" else self.dtype.name,
                                 "shape": list(self.shape), "names": self.names()}
        parts = [{"key": key, **spec.to_json()} for key, spec in self.parts]
        meta: dict[str, Any] = {"arrays": parts}
        if self.kind == "list":  # per element, for people and tools that read names
            meta["units"] = [u for _, s in self.parts for u in _per_element(s.unit, s)]
            meta["frames"] = [s.frame for _, s in self.parts for _ in range(int(np.prod(s.shape, dtype=np.int64)))]
        entry[META] = meta
        return entry


def _per_element(unit: str, spec: ArraySpec) -> list[str]:
    n = int(np.prod(spec.shape, dtype=np.int64))
    units = unit.split(",")
    return units if len(units) == n else [unit] * n


def camera_of(key: str, suffix: str) -> str:
    return key[: -len(suffix)] if key.endswith(suffix) else key


def plan_features(specs: dict[str, ArraySpec]) -> dict[str, Feature]:
    """The LeRobot features of a store with ``specs`` (see the module docstring), in a stable order."""
    features: dict[str, Feature] = {}
    state_parts = [(k, s) for k, s in specs.items() if k in PROPRIOCEPTION and PROPRIOCEPTION[k].policy_input
                   and len(s.shape) == 1 and s.dtype == np.float32]
    for key, spec in specs.items():
        if spec.is_image:
            features[IMAGES + camera_of(key, "_rgb")] = Feature(IMAGES + camera_of(key, "_rgb"), "video", spec.dtype,
                                                                spec.shape, [(key, spec)])
    if state_parts:
        n = sum(int(np.prod(s.shape)) for _, s in state_parts)
        features[STATE] = Feature(STATE, "list", np.dtype(np.float32), (n,), state_parts)
    for key, spec in specs.items():
        if spec.is_image or (key, spec) in state_parts:
            continue
        if key == "action":
            name = "action"
        elif key == "reward":
            name = "next.reward"
        elif key.endswith("_depth") and len(spec.shape) == 2:
            name = DEPTH + camera_of(key, "_depth")
        else:
            name = f"{META}.{key}"
        shape = spec.shape if spec.shape else (1,)
        kind = "value" if shape == (1,) and not spec.shape else ("list" if len(shape) == 1 else "array")
        features[name] = Feature(name, kind, spec.dtype, shape, [(key, spec)])
    return features


def features_from_info(info_features: dict[str, Any]) -> dict[str, Feature]:
    """Features of an exported dataset, rebuilt from the ``manip_stack`` metadata of info.json."""
    out = {}
    for name, ft in info_features.items():
        if META not in ft:
            continue
        parts = [(p["key"], ArraySpec.from_json(p)) for p in ft[META]["arrays"]]
        shape = tuple(ft["shape"])
        kind = "video" if ft["dtype"] == "video" else (
            "value" if shape == (1,) and not parts[0][1].shape else "list" if len(shape) == 1 else "array")
        out[name] = Feature(name, kind, np.dtype(parts[0][1].dtype if kind == "video" else ft["dtype"]), shape, parts)
    return out


# ------------------------------------------------------------------------------------------ arrow columns
def hf_feature(dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
    """The ``datasets.Features`` JSON of one column (what LeRobot's ``get_hf_features_from_features`` builds)."""
    if shape == (1,):
        return {"dtype": dtype, "_type": "Value"}
    if len(shape) == 1:
        return {"feature": {"dtype": dtype, "_type": "Value"}, "length": shape[0], "_type": "List"}
    return {"shape": list(shape), "dtype": dtype, "_type": f"Array{len(shape)}D"}


def arrow_field(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> pa.Field:
    """Column type as ``datasets`` stores it: a scalar, a fixed-size list, or nested lists tagged as ArrayND."""
    t = pa.from_numpy_dtype(dtype)
    if shape == (1,):
        return pa.field(name, t)
    if len(shape) == 1:
        return pa.field(name, pa.list_(t, shape[0]))
    for _ in shape:
        t = pa.list_(t)
    meta = {b"ARROW:extension:name": f"datasets.features.features.Array{len(shape)}DExtensionType".encode(),
            b"ARROW:extension:metadata": json.dumps([list(shape), dtype.name]).encode()}
    return pa.field(name, t, metadata=meta)


def arrow_column(values: np.ndarray, f: pa.Field) -> pa.Array:
    """(T, *shape) values as an arrow array of field ``f``'s type."""
    t = f.type
    if pa.types.is_fixed_size_list(t):
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), t.list_size)
    if not pa.types.is_list(t):
        return pa.array(values.reshape(-1))
    arr = pa.array(np.ascontiguousarray(values).reshape(-1))
    for size in reversed(values.shape[1:]):
        n = len(arr) // size
        arr = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * size), arr)
    return arr


def column_values(col: pa.ChunkedArray | pa.Array, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """(T, *shape) numpy values of a data column (any of the three column kinds; extension types unwrapped)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if isinstance(arr, pa.ExtensionArray):
        arr = arr.storage
    n = len(arr)
    while pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type) or pa.types.is_large_list(arr.type):
        arr = arr.flatten()
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype).reshape(n, *shape)


# ------------------------------------------------------------------------------------------ statistics
def _uint8_quantile(counts: np.ndarray, q: float) -> float:
    """``np.quantile(x, q)`` (linear) of uint8 values from their 256-bin histogram, without sorting them."""
    cum = np.cumsum(counts)
    k = q * (cum[-1] - 1)
    lo, hi = (np.searchsorted(cum, np.floor(k) + 1), np.searchsorted(cum, np.ceil(k) + 1))
    return float(lo + (hi - lo) * (k - np.floor(k)))


def _video_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of uint8 RGB frames (T, H, W, 3) in [0, 1], shaped (3, 1, 1) as LeRobot's."""
    pixels = frames.reshape(-1, 3)
    counts = [np.bincount(pixels[:, c], minlength=256) for c in range(3)]
    levels = np.arange(256, dtype=np.float64)
    n = float(len(pixels))
    mean = np.array([(levels * h).sum() / n for h in counts])
    std = np.sqrt(np.array([((levels - m) ** 2 * h).sum() / n for h, m in zip(counts, mean, strict=True)]))
    stats = {"min": pixels.min(axis=0) / 255.0, "max": pixels.max(axis=0) / 255.0, "mean": mean / 255.0,
             "std": std / 255.0}
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.array([_uint8_quantile(h, q) for h in counts]) / 255.0
    out = {k: v.reshape(3, 1, 1) for k, v in stats.items()}
    out["count"] = np.array([len(frames)], dtype=np.int64)
    return {k: out[k] for k in STAT_NAMES}


def feature_stats(values: np.ndarray, video: bool) -> dict[str, np.ndarray]:
    """LeRobot's per-episode statistics: videos per channel in [0, 1] with shape (3, 1, 1) (from every frame's
    histogram: exact, where LeRobot samples about 100 frames); vectors per element; arrays of 2+ dimensions over
    every axis but the last (as LeRobot's ``get_feature_stats`` reduces them)."""
    if video:
        return _video_stats(values)
    x = values if values.ndim > 1 else values.reshape(len(values), 1)  # (T, *shape): a value feature is (T, 1)
    axes = tuple(range(x.ndim - 1))
    shape = (x.shape[-1],)
    stats = {
        "min": np.min(x, axis=axes).reshape(shape), "max": np.max(x, axis=axes).reshape(shape),
        "mean": np.mean(x, axis=axes, dtype=np.float64).reshape(shape),
        "std": np.std(x, axis=axes, dtype=np.float64).reshape(shape),
        "count": np.array([len(x)], dtype=np.int64),
    }
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.quantile(x.astype(np.float64), q, axis=axes).reshape(shape)
    return stats


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset statistics from episodes' (LeRobot's ``aggregate_stats``: count-weighted means and variances)."""
    n = np.array([float(s["count"][0]) for s in per_episode])
    w = (n / n.sum()).reshape(-1, *[1] * per_episode[0]["mean"].ndim)
    means = np.stack([s["mean"] for s in per_episode])
    mean = (w * means).sum(axis=0)
    var = (w * (np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2)).sum(axis=0)
    out = {"min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
           "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
           "mean": mean, "std": np.sqrt(var), "count": np.array([int(n.sum())], dtype=np.int64)}
    for q in STAT_NAMES[5:]:
        out[q] = (w * np.stack([s[q] for s in per_episode])).sum(axis=0)
    return out


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as pandas writes LeRobot's DataFrame(index=task text, column task_index)."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "str",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "object", "numpy_type": "str",
             "metadata": None},
        ],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "3.1.1",
    }
    schema = pa.schema([("task_index", pa.int64()), ("__index_level_0__", pa.large_string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    return pa.table({"task_index": np.arange(len(tasks), dtype=np.int64), "__index_level_0__": tasks}, schema=schema)


def task_texts(table: pa.Table) -> list[str]:
    """Task text by task_index from meta/tasks.parquet (the pandas index column, or a 'task' column)."""
    meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
    index_cols = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    text_col = index_cols[0] if index_cols else ("task" if "task" in table.column_names else None)
    if text_col is None:
        raise ValueError(f"{TASKS_PATH}: no task text column (columns {table.column_names})")
    order = np.argsort(table.column("task_index").to_numpy())
    texts = table.column(text_col).to_pylist()
    return [str(texts[i]) for i in order]
