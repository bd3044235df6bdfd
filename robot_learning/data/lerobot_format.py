"""Episode stores to LeRobotDataset v3.0 folders and back (``manip-stack export-lerobot`` / ``import-lerobot``).

Why our own writer: LeRobot 0.4.4 (the newest for Python 3.11) pins torch<2.11, torchvision<0.26,
diffusers<0.36, opencv<4.13, packaging<26, rerun-sdk<0.27 and draccus 0.10, all below this stack's pins, so it
cannot be a dependency; and LeRobot's writer needs numpy<2.4 for scalar features. The format is written here
with pyarrow and ffmpeg exactly as LeRobot writes it (``lerobot_schema``), and LeRobot's own ``LeRobotDataset``
reads the result (``benchmarks/lerobot_check.py`` loads an export and trains a LeRobot policy on it).

What a round trip keeps: with the default ``lossless`` video codec every array of every episode (the store's
fingerprint is the same after export and import), the per-episode success, seed, task, operator, duration, start
time and extra info, and the store's attributes. With a lossy codec (``h264``, ``av1``) images come back within
a few grey levels and everything else exactly. Camera intrinsics (scaled to the stored image size) and extrinsics
(``T_parent_optical``, parent ``base`` or ``flange``) come from the cell file the store names and go into each video
feature's ``info`` (``camera.*``); depth stays float32 metres in the data files.

Writes go to a hidden sibling folder renamed into place at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.lerobot_schema import (
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILE_MB,
    DATA_PATH,
    EPISODES_PATH,
    INDEX_FEATURES,
    META,
    TASKS_PATH,
    VIDEO_FILE_MB,
    VIDEO_PATH,
    Feature,
    aggregate_stats,
    arrow_column,
    arrow_field,
    column_values,
    feature_stats,
    features_from_info,
    hf_feature,
    plan_features,
    task_texts,
    tasks_table,
)
from robot_learning.data.lerobot_validate import check_dataset
from robot_learning.data.lerobot_video import VIDEO_CODECS, VideoReader, VideoWriter

log = logging.getLogger(__name__)

_EPISODE_COLUMNS = ("success", "seed", "task", "operator", "duration_s", "start_time_unix_s")


def _episode_columns(info: dict[str, Any]) -> dict[str, Any]:
    """An episode's store metadata as ``manip_stack/*`` columns of meta/episodes (the rest of its info as JSON)."""
    cols = {f"{META}/{c}": info[c] for c in _EPISODE_COLUMNS}
    cols[f"{META}/seed"] = -1 if info["seed"] is None else int(info["seed"])
    extra = {k: v for k, v in info.items() if k not in (*_EPISODE_COLUMNS, "n_steps")}
    cols[f"{META}/info_json"] = json.dumps(extra, sort_keys=True)
    return cols


@dataclass(frozen=True)
class TransferReport:
    """What an export or import did, for the command line."""

    source: Path
    target: Path
    episodes: int
    frames: int
    seconds: float
    target_bytes: int
    source_bytes: int
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [f"{self.source} -> {self.target}: {self.episodes} episodes, {self.frames} frames in "
                 f"{self.seconds:.1f} s; {self.source_bytes / 2**20:.1f} MiB -> {self.target_bytes / 2**20:.1f} MiB"]
        return "\n".join(lines + [f"  {n}" for n in self.notes])


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _fps(store: EpisodeStore) -> int:
    """The dataset's frame rate: the store's policy_hz, else its timestamps' median step; LeRobot needs an integer."""
    hz = store.attrs.get("policy_hz")
    if hz is None and store.n_episodes:
        t = store.get_episode(0, ["timestamp"])["timestamp"] if "timestamp" in store.specs else np.array([])
        hz = 1.0 / float(np.median(np.diff(t))) if len(t) > 1 else None
    if hz is None or not math.isfinite(hz) or hz <= 0 or abs(hz - round(hz)) > 1e-3 * hz:
        raise ValueError(f"{store.path}: LeRobot datasets need an integer frame rate; this store's is {hz!r} "
                         "(its policy_hz attribute or timestamp steps)")
    return round(hz)


def _camera_info(cell_name: str | None, camera: str, height: int, width: int) -> dict[str, Any]:
    """Intrinsics (scaled to the stored size) and extrinsics of a camera from the cell file, or {} if unknown."""
    if not cell_name:
        return {}
    try:
        from hardware_configs.loader import load_cell

        cam = load_cell(cell_name).camera(camera)
    except Exception as exc:  # an unknown cell or camera is a note, not a failure: the images still export
        log.warning("no calibration for camera %r of cell %r (%s); exporting without it", camera, cell_name, exc)
        return {}
    intr = cam.intrinsics
    sx, sy = width / intr.width, height / intr.height
    pose = cam.extrinsics
    return {
        "camera.intrinsics": {"width": width, "height": height, "fx": intr.fx * sx, "fy": intr.fy * sy,
                              "cx": intr.cx * sx, "cy": intr.cy * sy, "distortion_model": intr.distortion_model,
                              "distortion": list(intr.distortion), "native_width": intr.width,
                              "native_height": intr.height},
        "camera.extrinsics": {"parent": pose.parent, "child": cam.optical_frame, "position_m": list(pose.position_m),
                              "quaternion_xyzw": list(pose.quaternion_xyzw),
                              "T_parent_optical": pose.matrix().tolist()},
        "camera.mount": cam.mount.value, "camera.serial": cam.serial,
    }


class _ParquetFiles:
    """Data files of one dataset: a new file once the current one holds ``DATA_FILE_MB`` of raw rows."""

    def __init__(self, root: Path, schema: pa.Schema) -> None:
        self.root, self.schema = root, schema
        self.chunk, self.file, self.bytes = 0, 0, 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> tuple[int, int]:
        if self._writer is not None and self.bytes + table.nbytes > DATA_FILE_MB * 2**20:
            self.close()
            self.chunk, self.file = (self.chunk + 1, 0) if self.file == CHUNKS_SIZE - 1 else (self.chunk, self.file + 1)
            self.bytes = 0
        if self._writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(path, self.schema, compression="snappy", use_dictionary=True)
        self._writer.write_table(table)
        self.bytes += table.nbytes
        return self.chunk, self.file

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _CameraFiles:
    """Video files of one camera: a new file once the current one holds ``VIDEO_FILE_MB`` of raw frames."""

    def __init__(self, root: Path, key: str, shape: tuple[int, ...], fps: int, codec: str) -> None:
        self.root, self.key, self.shape, self.fps, self.codec = root, key, shape, fps, codec
        self.chunk, self.file = 0, 0
        self.writer: VideoWriter | None = None

    def write(self, frames: np.ndarray) -> dict[str, Any]:
        if self.writer is not None and (self.writer.n_frames + len(frames)) * frames[0].nbytes > VIDEO_FILE_MB * 2**20:
            self.writer.close()
            self.writer = None
            self.chunk, self.file = (self.chunk + 1, 0) if self.file == CHUNKS_SIZE - 1 else (self.chunk, self.file + 1)
        if self.writer is None:
            path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)
            self.writer = VideoWriter(path, self.shape[1], self.shape[0], self.fps, self.codec)
        start = self.writer.n_frames
        self.writer.write(frames)
        return {f"videos/{self.key}/chunk_index": self.chunk, f"videos/{self.key}/file_index": self.file,
                f"videos/{self.key}/from_timestamp": start / self.fps,
                f"videos/{self.key}/to_timestamp": (start + len(frames)) / self.fps}


def _new_target(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; choose a new --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent / f".{out.name}.writing-{uuid.uuid4().hex[:8]}"


def _publish(tmp: Path, out: Path) -> None:
    if out.exists():
        out.rmdir()  # empty (checked before writing)
    tmp.rename(out)


def export_lerobot(store_path: str | Path, out: str | Path, *, codec: str = "lossless",
                   episodes: list[int] | None = None) -> TransferReport:
    """Write the store at ``store_path`` as a LeRobotDataset v3.0 folder ``out`` (which must not exist or be empty)."""
    if codec not in VIDEO_CODECS:
        raise ValueError(f"video codec {codec!r} is not one of {sorted(VIDEO_CODECS)}")
    t0, out = time.monotonic(), Path(out)
    with EpisodeStore.open(store_path) as store:
        if store.n_episodes == 0:
            raise ValueError(f"{store.path} has no episodes to export")
        chosen = list(range(store.n_episodes)) if episodes is None else list(episodes)
        bad = [i for i in chosen if not 0 <= i < store.n_episodes]
        if bad:
            raise ValueError(f"episodes {bad} are not in {store.path} (0 to {store.n_episodes - 1})")
        tmp = _new_target(out)
        try:
            report = _export(store, tmp, out, codec, chosen, t0)
            _publish(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _export(store: EpisodeStore, root: Path, out: Path, codec: str, chosen: list[int], t0: float) -> TransferReport:
    fps, attrs = _fps(store), store.attrs
    features = plan_features(store.specs)
    videos = {n: f for n, f in features.items() if f.kind == "video"}
    columns = [n for n in features if n not in videos]
    fields = [arrow_field(n, features[n].dtype, features[n].shape) for n in columns]
    fields += [pa.field(n, pa.from_numpy_dtype(np.dtype(d))) for n, d in INDEX_FEATURES.items()]
    hf = {n: hf_feature(features[n].dtype.name, features[n].shape) for n in columns}
    hf.update({n: hf_feature(d, (1,)) for n, d in INDEX_FEATURES.items()})
    schema = pa.schema(fields, metadata={b"huggingface": json.dumps({"info": {"features": hf}}).encode()})
    data_files = _ParquetFiles(root, schema)
    cameras = {n: _CameraFiles(root, n, f.shape, fps, codec) for n, f in videos.items()}
    tasks: list[str] = []
    rows: list[dict[str, Any]] = []
    ep_stats: list[dict[str, dict[str, np.ndarray]]] = []
    index = 0
    try:
        for new_index, i in enumerate(chosen):
            data, info = store.get_episode(i), store.episode_info(i)
            n = info["n_steps"]
            text = str(attrs.get("instruction") or info["task"])
            if text not in tasks:
                tasks.append(text)
            cols = {name: arrow_column(features[name].stack(data), f) for name, f in zip(columns, fields, strict=False)}
            cols["timestamp"] = pa.array(np.arange(n, dtype=np.float32) / np.float32(fps))
            cols["frame_index"] = pa.array(np.arange(n, dtype=np.int64))
            cols["episode_index"] = pa.array(np.full(n, new_index, dtype=np.int64))
            cols["index"] = pa.array(np.arange(index, index + n, dtype=np.int64))
            cols["task_index"] = pa.array(np.full(n, tasks.index(text), dtype=np.int64))
            chunk, file = data_files.write(pa.table(cols, schema=schema))
            row: dict[str, Any] = {"episode_index": new_index, "tasks": [text], "length": n,
                                   "data/chunk_index": chunk, "data/file_index": file,
                                   "dataset_from_index": index, "dataset_to_index": index + n}
            for name, cam in cameras.items():
                row.update(cam.write(data[features[name].parts[0][0]]))
            stats = {name: feature_stats(f.stack(data), f.kind == "video") for name, f in features.items()}
            for name in INDEX_FEATURES:
                stats[name] = feature_stats(cols[name].to_numpy(), False)
            ep_stats.append(stats)
            row.update({f"stats/{name}/{k}": v.tolist() for name, s in stats.items() for k, v in s.items()})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            row.update(_episode_columns(info))
            rows.append(row)
            index += n
    finally:
        data_files.close()
        for cam in cameras.values():
            if cam.writer is not None:
                cam.writer.close()
    episodes_path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), episodes_path, compression="snappy")
    pq.write_table(tasks_table(tasks), root / TASKS_PATH)
    info_features = {n: f.to_json() for n, f in features.items()}
    cell = attrs.get("cell")
    for name, f in videos.items():
        spec = VIDEO_CODECS[codec]
        height, width = f.shape[:2]
        info_features[name]["info"] = {
            "video.height": height, "video.width": width, "video.codec": spec["codec"],
            "video.pix_fmt": spec["pix_fmt"], "video.is_depth_map": False, "video.fps": fps, "video.channels": 3,
            "has_audio": False, "video.lossless": spec["lossless"],
            "camera.optical_frame": f.parts[0][1].frame,
            **_camera_info(cell, name.removeprefix("observation.images."), height, width),
        }
    info_features.update({n: {"dtype": d, "shape": [1], "names": None} for n, d in INDEX_FEATURES.items()})
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": cell, "total_episodes": len(rows),
        "total_frames": index, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB, "fps": fps,
        "splits": {"train": f"0:{len(rows)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH if videos else None,
        "features": info_features,
        META: {"attrs": attrs, "key_order": list(store.specs), "fingerprint": store.fingerprint,
               "schema_sha256": store.schema_fingerprint, "episodes": chosen, "video_codec": codec},
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4, ensure_ascii=False))
    stats = {name: {k: v.tolist() for k, v in aggregate_stats([s[name] for s in ep_stats]).items()}
             for name in ep_stats[0]}
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    notes = [f"video: {codec} ({'bit-exact' if VIDEO_CODECS[codec]['lossless'] else 'lossy'}), {fps} fps",
             f"features: {', '.join(features)}"]
    if videos and not any("camera.intrinsics" in info_features[n]["info"] for n in videos):
        notes.append(f"no camera calibration: cell {cell!r} could not be loaded")
    return TransferReport(store.path, out, len(rows), index, time.monotonic() - t0, _dir_bytes(root),
                          store.disk_bytes(), tuple(notes))


# ------------------------------------------------------------------------------------------ import
def _read_info(root: Path) -> dict[str, Any]:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{root} is not a LeRobot dataset: no meta/info.json")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    version = info.get("codebase_version") if isinstance(info, dict) else None
    if version != CODEBASE_VERSION:
        raise ValueError(f"{path}: codebase_version {version!r}; only LeRobotDataset {CODEBASE_VERSION} is read "
                         "(convert older datasets with LeRobot's convert_dataset_v21_to_v30 first)")
    missing = [k for k in ("fps", "features", "data_path", "total_episodes") if k not in info]
    if missing:
        raise ValueError(f"{path}: missing {missing}")
    return info


def _foreign_features(info: dict[str, Any]) -> dict[str, Feature]:
    """Features of a dataset not written by us: cameras, vectors and arrays under identifier keys, unit unknown."""
    from robot_learning.data.specs import ArraySpec

    out = {}
    for name, ft in info["features"].items():
        if name in INDEX_FEATURES or ft.get("dtype") == "string":
            continue
        shape = tuple(ft["shape"])
        short = name.removeprefix("observation.").removeprefix("images.").replace(".", "_").replace("-", "_")
        if name.startswith("observation.depth."):
            short = f"{name.removeprefix('observation.depth.')}_depth".replace(".", "_").replace("-", "_")
        if ft["dtype"] in ("video", "image"):  # videos, or PNG files inside the data files
            key = f"{short}_rgb"
            out[name] = Feature(name, ft["dtype"], np.dtype(np.uint8), shape,
                                [(key, ArraySpec(shape, np.uint8, "rgb8"))])
            continue
        key = {"action": "action", "next_reward": "reward"}.get(short, short)
        key = re.sub(r"\W", "_", key)
        key = key if key.isidentifier() else f"f_{key}"
        names = ft.get("names")
        desc = f"LeRobot feature {name}" + (f", names {names}" if names else "")
        spec_shape = () if shape == (1,) else shape
        kind = "value" if shape == (1,) else "list" if len(shape) == 1 else "array"
        out[name] = Feature(name, kind, np.dtype(ft["dtype"]), shape,
                            [(key, ArraySpec(spec_shape, ft["dtype"], "unspecified", description=desc))])
    return out


def import_lerobot(dataset: str | Path, out: str | Path) -> TransferReport:
    """Build an episode store at ``out`` (must not exist) from the LeRobotDataset v3.0 folder ``dataset``."""
    t0, root, out = time.monotonic(), Path(dataset), Path(out)
    info = _read_info(root)
    if out.exists():
        raise FileExistsError(f"{out} already exists; import into a new store")
    problems = check_dataset(root)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"{root} is not a valid LeRobotDataset {CODEBASE_VERSION}: {'; '.join(problems[:5])}{more}")
    ours = META in info
    features = features_from_info(info["features"]) if ours else _foreign_features(info)
    if not features:
        raise ValueError(f"{root}: no numeric or video features to import")
    specs = {key: spec for f in features.values() for key, spec in f.parts}
    fps = int(info["fps"])
    if "timestamp" not in specs:
        from robot_learning.data.specs import ArraySpec

        specs["timestamp"] = ArraySpec((), np.float64, "s", description="LeRobot timestamp (from episode start)")
    if ours:
        order = info[META].get("key_order", list(specs))
        specs = {k: specs[k] for k in order if k in specs} | specs
        attrs = {k: v for k, v in info[META]["attrs"].items() if k not in ("created", "schema_version")}
    else:
        attrs = {"cell": info.get("robot_type") or "unknown", "task": root.name, "source": "lerobot",
                 "policy_hz": float(fps), "lerobot_dataset": str(root)}
    episode_files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not episode_files:
        raise ValueError(f"{root}: no meta/episodes/*/*.parquet")
    episodes = pa.concat_tables([pq.read_table(p) for p in episode_files]).to_pylist()
    episodes.sort(key=lambda e: e["episode_index"])
    texts = task_texts(pq.read_table(root / TASKS_PATH)) if (root / TASKS_PATH).is_file() else []
    if not ours and texts:
        attrs["instruction"] = texts[0]
    readers = {n: VideoReader(f.shape[1], f.shape[0]) for n, f in features.items() if f.kind == "video"}
    table_path, table, frames = None, None, 0
    store = EpisodeStore.create(out, specs, attrs)
    try:
        for ep in episodes:
            path = root / info["data_path"].format(chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])
            if path != table_path:
                if not path.is_file():
                    raise ValueError(f"{root}: episode {ep['episode_index']}'s data file {path} is missing")
                table_path, table = path, pq.read_table(path)
            rows = np.flatnonzero(table.column("episode_index").to_numpy() == ep["episode_index"])
            n = len(rows)
            if n != ep["length"]:
                raise ValueError(f"{path}: episode {ep['episode_index']} has {n} rows, "
                                 f"its metadata says {ep['length']}")
            part = table.take(pa.array(rows))
            data: dict[str, np.ndarray] = {}
            for name, f in features.items():
                if f.kind == "video":
                    key = f"videos/{name}"
                    vpath = root / info["video_path"].format(video_key=name, chunk_index=ep[f"{key}/chunk_index"],
                                                             file_index=ep[f"{key}/file_index"])
                    values = readers[name].read(vpath, round(ep[f"{key}/from_timestamp"] * fps), n)
                elif f.kind == "image":
                    values = _png_frames(name, part.column(name), f.shape)
                else:
                    values = column_values(part.column(name), f.shape, f.dtype)
                data.update(f.split(values))
            if "timestamp" not in data:
                data["timestamp"] = part.column("timestamp").to_numpy().astype(np.float64)
            _commit(store, data, ep, texts)
            frames += n
    finally:
        store.close()
        for r in readers.values():
            r.close()
    notes = [] if ours else ["not written by manip-stack: units are 'unspecified', success unknown (False)"]
    skipped = [n for n, ft in info["features"].items() if n not in features and n not in INDEX_FEATURES]
    if skipped:
        notes.append(f"not imported (text): {', '.join(skipped)}")
    return TransferReport(root, out, len(episodes), frames, time.monotonic() - t0, _dir_bytes(out),
                          _dir_bytes(root), tuple(notes))


def _png_frames(name: str, column: pa.ChunkedArray, shape: tuple[int, ...]) -> np.ndarray:
    """RGB frames of an ``image`` feature: PNG bytes in a {bytes, path} struct column, as ``datasets.Image``."""
    import imageio.v3 as iio

    frames = [iio.imread(cell["bytes"], extension=".png") for cell in column.to_pylist()]
    frames = [np.repeat(f[..., None], 3, axis=-1) if f.ndim == 2 else f[..., :3] for f in frames]
    out = np.stack(frames).astype(np.uint8)
    if out.shape[1:] != shape:
        raise ValueError(f"image feature {name!r}: frames are {out.shape[1:]}, info.json says {shape}")
    return out


def _commit(store: EpisodeStore, data: dict[str, np.ndarray], ep: dict[str, Any], texts: list[str]) -> None:
    if f"{META}/success" in ep:
        seed = int(ep[f"{META}/seed"])
        info = {**json.loads(ep[f"{META}/info_json"] or "{}"), "seed": None if seed < 0 else seed,
                "task": ep[f"{META}/task"], "operator": ep[f"{META}/operator"], "duration_s": ep[f"{META}/duration_s"]}
        success, start = bool(ep[f"{META}/success"]), float(ep[f"{META}/start_time_unix_s"])
    else:
        tasks = ep.get("tasks") or texts[:1]
        info = {"task": str(tasks[0]) if tasks else "", "lerobot_episode_index": int(ep["episode_index"])}
        success, start = False, None
    with store.begin_episode(info) as writer:
        if start is not None:
            writer._start_unix_s = start  # the recorded start time, not the import's
        n = len(next(iter(data.values())))
        for t in range(n):
            writer.add_step(**{k: v[t] for k, v in data.items()})
        writer.commit(success)
