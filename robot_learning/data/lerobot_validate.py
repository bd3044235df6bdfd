"""Check a folder against the LeRobotDataset v3.0 format without LeRobot: the rules its reader relies on.

Why: LeRobot cannot be installed beside this stack's pins (see ``lerobot_format``), so CI checks exports with
these rules instead, and the same rules accept the small dataset LeRobot 0.4.4 itself wrote
(``tests/data/lerobot_v3_reference``). ``import-lerobot`` runs them before it creates a store.

Rules: info.json fields and types, path templates, feature entries (dtype, shape, names; ``info`` of videos);
the task table; episode rows (contiguous indices, frame ranges that tile the data, video time ranges of
``length / fps`` that fit inside their files); data files (the columns and arrow types ``datasets`` reads, the
``huggingface`` schema metadata, global ``index`` 0..N-1 in order, ``frame_index`` 0..length-1 and
``timestamp = frame_index / fps`` within each episode); stats.json (every numeric feature, the ten statistics,
LeRobot's shapes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_learning.data.lerobot_schema import (
    CODEBASE_VERSION,
    DATA_PATH,
    INDEX_FEATURES,
    STAT_NAMES,
    TASKS_PATH,
    VIDEO_PATH,
    arrow_field,
    hf_feature,
    task_texts,
)
from robot_learning.data.lerobot_video import VideoError, video_frame_count

_INFO_TYPES: dict[str, type | tuple[type, ...]] = {
    "codebase_version": str, "robot_type": (str, type(None)), "total_episodes": int, "total_frames": int,
    "total_tasks": int, "chunks_size": int, "data_files_size_in_mb": int, "video_files_size_in_mb": int, "fps": int,
    "splits": dict, "data_path": str, "video_path": (str, type(None)), "features": dict,
}
_DTYPES = {"video", "image", "string", "float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool"}
_VIDEO_INFO = ("video.height", "video.width", "video.codec", "video.pix_fmt", "video.is_depth_map", "video.fps",
               "video.channels", "has_audio")
_TS_TOLERANCE_S = 1e-4  # LeRobotDataset's default tolerance_s


def _check_info(info: Any) -> list[str]:
    if not isinstance(info, dict):
        return ["meta/info.json: not a JSON object"]
    problems = [f"meta/info.json: {k!r} missing or not {t}" for k, t in _INFO_TYPES.items()
                if not isinstance(info.get(k), t) or (t is int and isinstance(info.get(k), bool))]
    if problems:
        return problems
    if info["codebase_version"] != CODEBASE_VERSION:
        problems.append(f"meta/info.json: codebase_version {info['codebase_version']!r}, not {CODEBASE_VERSION!r}")
    if info["data_path"] != DATA_PATH:
        problems.append(f"meta/info.json: data_path {info['data_path']!r}, not {DATA_PATH!r}")
    videos = [n for n, f in info["features"].items() if isinstance(f, dict) and f.get("dtype") == "video"]
    if videos and info["video_path"] != VIDEO_PATH:
        problems.append(f"meta/info.json: video_path {info['video_path']!r}, not {VIDEO_PATH!r}")
    if info["splits"] != {"train": f"0:{info['total_episodes']}"}:
        problems.append(f"meta/info.json: splits {info['splits']} do not cover the {info['total_episodes']} episodes")
    for name, ft in info["features"].items():
        where = f"meta/info.json: feature {name!r}"
        if "/" in name:
            problems.append(f"{where}: names may not contain '/'")
        if not isinstance(ft, dict) or ft.get("dtype") not in _DTYPES:
            problems.append(f"{where}: dtype {ft.get('dtype') if isinstance(ft, dict) else ft!r} is not one of "
                            f"{sorted(_DTYPES)}")
            continue
        shape = ft.get("shape")
        if not isinstance(shape, list) or not shape or not all(isinstance(s, int) and s > 0 for s in shape):
            problems.append(f"{where}: shape {shape!r} is not a list of positive ints")
        if "names" not in ft or not isinstance(ft["names"], (list, dict, type(None))):
            problems.append(f"{where}: names must be a list, a dict or null")
        elif isinstance(ft["names"], list) and isinstance(shape, list) and len(shape) == 1 and shape[0] > 1 \
                and len(ft["names"]) != shape[0]:
            problems.append(f"{where}: {len(ft['names'])} names for shape {shape}")
        if ft["dtype"] == "video":
            missing = [k for k in _VIDEO_INFO if k not in (ft.get("info") or {})]
            if missing or len(shape or []) != 3:
                problems.append(f"{where}: a video needs shape (H, W, C) and info {list(_VIDEO_INFO)}; missing "
                                f"{missing}")
    for name, dtype in INDEX_FEATURES.items():
        ft = info["features"].get(name)
        if not ft or ft.get("dtype") != dtype or list(ft.get("shape", [])) != [1]:
            problems.append(f"meta/info.json: default feature {name!r} must be {dtype} of shape [1], got {ft}")
    return problems


def _expected_field(name: str, ft: dict[str, Any]) -> pa.Field:
    return arrow_field(name, np.dtype(ft["dtype"]), tuple(ft["shape"]))


def _check_data(root: Path, info: dict[str, Any], episodes: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    columns = {n: ft for n, ft in info["features"].items() if ft["dtype"] not in ("video", "image", "string")}
    files = sorted({(e["data/chunk_index"], e["data/file_index"]) for e in episodes})
    index, fps = [], info["fps"]
    for chunk, file in files:
        path = root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        rel = path.relative_to(root)
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        table = pq.read_table(path)
        schema = table.schema
        for name, ft in columns.items():
            if name not in schema.names:
                problems.append(f"{rel}: no column {name!r}")
                continue
            want, got = _expected_field(name, ft), schema.field(name)
            storage = got.type.storage_type if isinstance(got.type, pa.ExtensionType) else got.type
            if storage != want.type:
                problems.append(f"{rel}: column {name!r} is {got.type}, LeRobot reads {want.type}")
        extra = sorted(set(schema.names) - {n for n, ft in info["features"].items() if ft["dtype"] != "video"})
        if extra:
            problems.append(f"{rel}: columns {extra} are not features in info.json")
        hf = json.loads((schema.metadata or {}).get(b"huggingface", b"{}")).get("info", {}).get("features", {})
        for name, ft in columns.items():
            if name in hf and hf[name] != hf_feature(ft["dtype"], tuple(ft["shape"])):
                problems.append(f"{rel}: huggingface metadata of {name!r} is {hf[name]}")
        if problems:
            continue
        index.append(table.column("index").to_numpy())
        ep_col = table.column("episode_index").to_numpy()
        frame_col, ts_col = table.column("frame_index").to_numpy(), table.column("timestamp").to_numpy()
        for e in (e for e in episodes if (e["data/chunk_index"], e["data/file_index"]) == (chunk, file)):
            rows = np.flatnonzero(ep_col == e["episode_index"])
            if not np.array_equal(frame_col[rows], np.arange(e["length"])):
                problems.append(f"{rel}: episode {e['episode_index']}'s frame_index is not 0..{e['length'] - 1}")
            elif not np.allclose(ts_col[rows], np.arange(e["length"]) / fps, atol=_TS_TOLERANCE_S, rtol=0):
                problems.append(f"{rel}: episode {e['episode_index']}'s timestamps are not frame_index / fps")
    if not problems and not np.array_equal(np.concatenate(index or [np.array([], np.int64)]),
                                           np.arange(info["total_frames"])):
        problems.append(f"data: index is not 0..{info['total_frames'] - 1} in file order")
    return problems


def _check_episodes(root: Path, info: dict[str, Any], episodes: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    videos = [n for n, ft in info["features"].items() if ft["dtype"] == "video"]
    numeric = [n for n, ft in info["features"].items() if ft["dtype"] != "string"]
    need = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
            "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index"]
    need += [f"videos/{v}/{c}" for v in videos for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    need += [f"stats/{n}/{s}" for n in numeric for s in STAT_NAMES]
    missing = [c for c in need if c not in episodes[0]]
    if missing:
        return [f"meta/episodes: missing columns {missing[:6]}{' ...' if len(missing) > 6 else ''}"]
    if [e["episode_index"] for e in episodes] != list(range(info["total_episodes"])):
        problems.append(f"meta/episodes: episode_index is not 0..{info['total_episodes'] - 1}")
    end, frames_in = 0, {}
    for e in episodes:
        if e["dataset_from_index"] != end or e["dataset_to_index"] - e["dataset_from_index"] != e["length"]:
            problems.append(f"meta/episodes: episode {e['episode_index']} covers [{e['dataset_from_index']}, "
                            f"{e['dataset_to_index']}) for length {e['length']} after frame {end}")
        end = e["dataset_to_index"]
        for v in videos:
            t0, t1 = e[f"videos/{v}/from_timestamp"], e[f"videos/{v}/to_timestamp"]
            if abs((t1 - t0) * info["fps"] - e["length"]) > 0.5:
                problems.append(f"meta/episodes: episode {e['episode_index']}'s {v} spans {t1 - t0:.4f} s for "
                                f"{e['length']} frames at {info['fps']} fps")
            key = (v, e[f"videos/{v}/chunk_index"], e[f"videos/{v}/file_index"])
            frames_in[key] = max(frames_in.get(key, 0), round(t1 * info["fps"]))
    if end != info["total_frames"]:
        problems.append(f"meta/episodes: episodes hold {end} frames, info.json says {info['total_frames']}")
    for (v, chunk, file), n in frames_in.items():
        path = root / VIDEO_PATH.format(video_key=v, chunk_index=chunk, file_index=file)
        try:
            have = video_frame_count(path) if path.is_file() else None
        except VideoError as exc:
            problems.append(str(exc))
            continue
        if have is None or have < n:
            problems.append(f"{path.relative_to(root)}: {'missing' if have is None else f'{have} frames'}, "
                            f"the episodes need {n}")
    return problems


def _check_stats(root: Path, info: dict[str, Any]) -> list[str]:
    path = root / "meta" / "stats.json"
    if not path.is_file():
        return ["meta/stats.json: missing"]
    stats = json.loads(path.read_text())
    problems = []
    for name, ft in info["features"].items():
        if ft["dtype"] == "string":
            continue
        s = stats.get(name)
        if not isinstance(s, dict) or sorted(s) != sorted(STAT_NAMES):
            problems.append(f"meta/stats.json: {name!r} needs {list(STAT_NAMES)}")
            continue
        want = (3, 1, 1) if ft["dtype"] in ("video", "image") else (ft["shape"][-1],)
        bad = [k for k, v in s.items() if np.shape(v) != ((1,) if k == "count" else want)]
        if bad:
            problems.append(f"meta/stats.json: {name!r} statistics {bad} are not of shape {want}")
    return problems


def check_dataset(root: str | Path) -> list[str]:
    """Every rule ``root`` breaks, one line each (empty: LeRobot's reader finds what it expects)."""
    root = Path(root)
    path = root / "meta" / "info.json"
    if not path.is_file():
        return [f"{root}: no meta/info.json"]
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [f"meta/info.json: not JSON ({exc})"]
    problems = _check_info(info)
    if problems:
        return problems
    try:
        texts = task_texts(pq.read_table(root / TASKS_PATH))
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        return [f"{TASKS_PATH}: unreadable ({exc})"]
    if len(set(texts)) != len(texts) or len(texts) != info["total_tasks"]:
        problems.append(f"{TASKS_PATH}: {len(texts)} tasks ({len(set(texts))} distinct), info says "
                        f"{info['total_tasks']}")
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        return [*problems, "meta/episodes: no parquet files"]
    episodes = sorted(pa.concat_tables([pq.read_table(f) for f in files]).to_pylist(), key=lambda e: e["episode_index"])
    problems += _check_episodes(root, info, episodes)
    if not problems:
        problems += _check_data(root, info, episodes)
    return problems + _check_stats(root, info)
