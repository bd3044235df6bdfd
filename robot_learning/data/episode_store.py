"""Crash-safe episode store: one zarr v3 group per dataset, episodes committed whole or not at all.

Layout (time-major, as diffusion_policy's ReplayBuffer)::

    <path>/zarr.json             group attrs: schema_version, cell, task, created, specs, user attrs,
                                 commit = {n_episodes, n_steps, fingerprint, meta_sha256}  <- the record
    <path>/data/<key>            (n_steps, *spec.shape), all episodes concatenated; attrs: unit, frame
    <path>/meta/episode_ends     int64 cumulative end index of each episode
    <path>/meta/{success, seed, task, operator, duration_s, start_time_unix_s, info_json, episode_sha256}
    <path>/meta/array_sha256     (n_episodes, n_keys, 32) sha256 of each array's rows, keys sorted (0 = none)

Integrity (``robot_learning.data.integrity``): images are one frame per chunk and low-dimensional arrays 16
steps per chunk, so a damaged chunk touches one or two episodes, not the dataset. Reads check each
(episode, array) against ``meta/array_sha256`` once and raise ``CorruptEpisodeError`` naming both; the
commit record holds a hash of every ``meta/*`` column, checked on open, and unreadable metadata raises
``StoreMetadataError`` naming the file. Stores written before per-array checksums open and read unverified.

Commit protocol. The single source of truth is the ``commit`` record in the root ``zarr.json``; every
array may hold rows beyond it (garbage from a crashed commit) and readers never look past it.

1. ``commit()`` writes the episode's rows at ``[n_steps, n_steps + T)`` of every ``data/<key>`` and its
   row ``n_episodes`` of every ``meta/*`` array (resize, then write). Committed rows are never touched:
   chunks shared with them are rewritten whole by zarr and every file is replaced atomically (below).
2. With ``durable=True`` it calls ``os.sync()`` so that the rows are on disk before they are published.
3. Commit point: it rewrites the root ``zarr.json`` with the new ``commit`` record (counts + fingerprint).
   zarr 3's ``LocalStore`` writes every key to ``<key>.<uuid>.partial`` and then ``os.replace``s it, so a
   kill leaves either the old record or the new one, never a torn one. With ``durable=True`` the file and
   its directory are fsynced afterwards, so the commit also survives a power cut once ``commit()`` returns.

Opening in append mode takes an exclusive ``flock`` on the dataset directory (one writer at a time; the
kernel drops it when the writer dies), deletes left-over ``*.partial`` files and shrinks every array back
to the committed counts. A read-only open changes nothing on disk. ``create`` builds the group in a
hidden sibling directory and renames it into place, so a kill during creation leaves no half-made store.

The fingerprint is a hash chain: ``fp_0 = sha256(schema)``, ``fp_i = sha256(fp_{i-1} || sha256(episode_i))``
where the schema is keys, shapes, dtypes, units and frames and an episode hash covers its data arrays
(not its metadata). It costs one hash of the new episode per commit and is stable across reopening.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import LocalStore

from robot_learning.data.episode_writer import EpisodeWriter, episode_sha256
from robot_learning.data.integrity import (
    CorruptEpisodeError,
    EpisodeStoreError,
    StoreCorruptError,
    StoreMetadataError,
    array_sha256,
    column_file,
    column_sha256,
    first_undecodable_chunk,
    missing_chunks,
    open_array,
    read_column,
    scan,
    undecodable,
)
from robot_learning.data.specs import ArraySpec, describe_specs, schema_sha256

__all__ = [
    "ArraySpec",
    "CorruptEpisodeError",
    "EpisodeStore",
    "EpisodeStoreError",
    "StoreCorruptError",
    "StoreLockedError",
    "StoreMetadataError",
    "schema_sha256",
]

SCHEMA_VERSION = 1
_RESERVED_ATTRS = frozenset({"schema_version", "created", "specs", "commit"})
_META_CHUNK = 4096
_ARRAY_SHA = "array_sha256"  # optional meta column (absent in stores written before it)
# (name, dtype, per-episode shape) of the per-episode columns under meta/.
_META_COLUMNS: tuple[tuple[str, Any, tuple[int, ...]], ...] = (
    ("episode_ends", np.int64, ()),
    ("success", np.bool_, ()),
    ("seed", np.int64, ()),
    ("duration_s", np.float64, ()),
    ("start_time_unix_s", np.float64, ()),
    ("task", str, ()),
    ("operator", str, ()),
    ("info_json", str, ()),
    ("episode_sha256", np.uint8, (32,)),
)


class StoreLockedError(EpisodeStoreError):
    """Another process has the store open for appending."""


def _chain(fingerprint: str, episode_hash: bytes) -> str:
    return hashlib.sha256(fingerprint.encode() + episode_hash).hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EpisodeStore:
    """Episodes of one task on one cell; build with ``create``/``open``/``open_or_create``."""

    def __init__(self, path: Path, group: zarr.Group, mode: str, durable: bool, lock_fd: int | None) -> None:
        self.path = path
        self.mode = mode
        self.durable = durable
        self._group = group
        self._lock_fd = lock_fd
        self._writer: EpisodeWriter | None = None
        self._verified: set[tuple[int, str]] = set()  # (episode, key) whose checksum matched in this process
        root = path / "zarr.json"
        attrs = dict(group.attrs)
        if attrs.get("schema_version") != SCHEMA_VERSION or "commit" not in attrs:
            raise EpisodeStoreError(
                f"{root}: not an episode store of schema v{SCHEMA_VERSION} "
                f"(schema_version={attrs.get('schema_version')!r}, commit record {'commit' in attrs})"
            )
        try:
            self._specs = {k: ArraySpec.from_json(v) for k, v in attrs["specs"].items()}
            commit = attrs["commit"]
            self._n_episodes, self._n_steps = int(commit["n_episodes"]), int(commit["n_steps"])
            self._fingerprint: str = str(commit["fingerprint"])
            meta_sha: dict[str, str] = dict(commit.get("meta_sha256") or {})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreMetadataError(root, f"bad specs or commit record ({type(exc).__name__}: {exc})") from None
        self._sorted_keys = sorted(self._specs)
        self._data = {k: open_array(group, path, f"data/{k}", spec) for k, spec in self._specs.items()}
        self._meta = {name: open_array(group, path, f"meta/{name}") for name, _, _ in _META_COLUMNS}
        for name, arr in [*self._data.items(), *self._meta.items()]:
            expected = self._n_steps if name in self._data else self._n_episodes
            if arr.shape[0] < expected:
                kind = "data" if name in self._data else "meta"
                raise StoreCorruptError(
                    f"{path / kind / name / 'zarr.json'}: {arr.shape[0]} rows, the commit record says {expected}"
                )
        sha_arr = open_array(group, path, f"meta/{_ARRAY_SHA}", optional=True)
        if sha_arr is None and mode == "a":  # an older store: episodes appended from now on get checksums
            sha_arr = group.create_array(
                f"meta/{_ARRAY_SHA}", shape=(self._n_episodes, len(self._specs), 32),
                chunks=(_META_CHUNK, len(self._specs), 32), dtype=np.uint8,
            )  # fmt: skip
        if sha_arr is not None:
            self._meta[_ARRAY_SHA] = sha_arr
        if mode == "a":
            self._repair()
        # Per-episode columns are small: keep them in memory, updated on commit.
        self._cols = {name: read_column(path, name, arr, self._n_episodes) for name, arr in self._meta.items()}
        for name, expected_sha in meta_sha.items():
            if name in self._cols and column_sha256(self._cols[name]) != expected_sha:
                file = column_file(path, name, self._meta[name], self._n_episodes)
                problem = "does not match the commit record's hash (damaged on disk); the episodes' metadata is lost"
                raise StoreMetadataError(file, problem)
        if self._n_episodes and int(self._cols["episode_ends"][-1]) != self._n_steps:
            raise StoreCorruptError(f"{path}: episode_ends[-1]={self._cols['episode_ends'][-1]} != {self._n_steps}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def create(
        cls, path: str | Path, specs: Mapping[str, ArraySpec], attrs: Mapping[str, Any], *, durable: bool = True
    ) -> EpisodeStore:
        """New empty store opened for appending; ``attrs`` must name the ``cell`` and ``task``."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"{path} already exists; use EpisodeStore.open or open_or_create")
        if not specs:
            raise ValueError("an episode store needs at least one ArraySpec")
        for key, spec in specs.items():
            if not isinstance(spec, ArraySpec) or not key.isidentifier():
                raise ValueError(f"specs[{key!r}]: keys must be identifiers mapping to ArraySpec, got {spec!r}")
        missing = {"cell", "task"} - set(attrs)
        if missing:
            raise ValueError(f"attrs must name {sorted(missing)} (got keys {sorted(attrs)})")
        if _RESERVED_ATTRS & set(attrs):
            raise ValueError(f"attrs may not set reserved names {sorted(_RESERVED_ATTRS & set(attrs))}")
        root_attrs = {
            **json.loads(json.dumps(dict(attrs))),  # fails early on non-JSON values
            "schema_version": SCHEMA_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "specs": {k: s.to_json() for k, s in specs.items()},
            "commit": {"n_episodes": 0, "n_steps": 0, "fingerprint": schema_sha256(specs)},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.creating-{uuid.uuid4().hex[:8]}"
        try:
            group = zarr.create_group(LocalStore(tmp), attributes=root_attrs, zarr_format=3)
            for key, spec in specs.items():
                group.create_array(
                    f"data/{key}",
                    shape=(0, *spec.shape),
                    chunks=(spec.time_chunk, *spec.shape),
                    dtype=spec.dtype,
                    compressors=BloscCodec(cname="zstd", clevel=3),
                    fill_value=0,
                    dimension_names=["step", *[None] * len(spec.shape)],
                    attributes={"unit": spec.unit, "frame": spec.frame, "description": spec.description},
                )
            for name, dtype, shape in _META_COLUMNS:
                group.create_array(f"meta/{name}", shape=(0, *shape), chunks=(_META_CHUNK, *shape), dtype=dtype)
            n_keys = len(specs)
            group.create_array(f"meta/{_ARRAY_SHA}", shape=(0, n_keys, 32), chunks=(_META_CHUNK, n_keys, 32),
                               dtype=np.uint8)  # fmt: skip
            if durable:
                os.sync()
            os.rename(tmp, path)  # atomic; fails if someone created `path` meanwhile
            if durable:
                _fsync_path(path.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(path, mode="a", durable=durable)

    @classmethod
    def open(cls, path: str | Path, mode: Literal["r", "a"] = "r", *, durable: bool = True) -> EpisodeStore:
        """Open an existing store; ``"a"`` takes the writer lock and cleans up after a crashed writer."""
        path = Path(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if not (path / "zarr.json").is_file():
            raise FileNotFoundError(f"no episode store at {path}")
        lock_fd = None
        if mode == "a":
            lock_fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock_fd)
                raise StoreLockedError(f"{path} is open for appending by another process") from None
        try:
            try:
                group = zarr.open_group(LocalStore(path, read_only=mode == "r"), mode="r" if mode == "r" else "r+")
            except Exception as exc:  # a damaged zarr.json: JSON, validation or type errors from zarr
                raise StoreMetadataError(path / "zarr.json", f"unreadable ({type(exc).__name__}: {exc})") from None
            return cls(path, group, mode, durable, lock_fd)
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise

    @classmethod
    def open_or_create(
        cls, path: str | Path, specs: Mapping[str, ArraySpec], attrs: Mapping[str, Any], *, durable: bool = True
    ) -> EpisodeStore:
        """Append to the store at ``path`` (which must have exactly ``specs``' schema), creating it if absent."""
        if not Path(path).exists():
            return cls.create(path, specs, attrs, durable=durable)
        store = cls.open(path, mode="a", durable=durable)
        if schema_sha256(store.specs) != schema_sha256(specs):
            store.close()
            raise ValueError(f"{path} has schema {describe_specs(store.specs)}, asked for {describe_specs(specs)}")
        return store

    def close(self) -> None:
        """Release the writer lock; an open episode is discarded."""
        if self._writer is not None:
            self._writer.discard()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _repair(self) -> None:
        """Drop what a crashed commit left beyond the commit record (harmless to readers, but untidy)."""
        for tmp in self.path.rglob("*.partial"):
            tmp.unlink(missing_ok=True)
        for name, arr in [*self._data.items(), *self._meta.items()]:
            rows = self._n_steps if name in self._data else self._n_episodes
            if arr.shape[0] != rows:
                arr.resize((rows, *arr.shape[1:]))

    # ------------------------------------------------------------------ writing
    def begin_episode(self, info: Mapping[str, Any] | None = None) -> EpisodeWriter:
        """Start buffering an episode; use as ``with store.begin_episode(info) as ep: ...; ep.commit(...)``."""
        if self.mode != "a" or self._lock_fd is None:
            raise EpisodeStoreError(f"{self.path} is not open for appending (mode={self.mode!r})")
        if self._writer is not None:
            raise EpisodeStoreError("an episode is already being recorded; commit or discard it first")
        self._writer = EpisodeWriter(self, dict(info or {}))
        return self._writer

    def _end_writer(self, writer: EpisodeWriter) -> None:
        if self._writer is writer:
            self._writer = None

    def _commit(self, data: Mapping[str, np.ndarray], row: Mapping[str, Any]) -> int:
        """Append one validated episode (see the module docstring for the protocol); returns its index."""
        t0, n_steps = self._n_steps, len(next(iter(data.values())))
        t1, ep = t0 + n_steps, self._n_episodes
        ep_hash = episode_sha256(data)
        digests = np.stack([np.frombuffer(array_sha256(data[k]), np.uint8) for k in self._sorted_keys])
        row = {**row, "episode_ends": t1, "episode_sha256": np.frombuffer(ep_hash, np.uint8), _ARRAY_SHA: digests}
        for key, values in data.items():  # 1. rows beyond the committed end
            arr = self._data[key]
            arr.resize((t1, *arr.shape[1:]))
            try:
                arr[t0:t1] = values
            except Exception as exc:  # the chunk shared with the last episode could not be read back
                raise StoreCorruptError(
                    f"{self.path}: cannot append to array {key!r}: the chunk holding step {t0} is {undecodable(exc)}"
                    f"; run `manip-stack verify {self.path}`"
                ) from exc
        for name, arr in self._meta.items():
            arr.resize((ep + 1, *arr.shape[1:]))
            arr[ep] = row[name]
        if self.durable:  # 2. rows durable before they are published
            os.sync()
        fingerprint = _chain(self._fingerprint, ep_hash)
        cols = {name: np.concatenate([col, np.asarray(row[name])[None]]) for name, col in self._cols.items()}
        commit = {
            "n_episodes": ep + 1,
            "n_steps": t1,
            "fingerprint": fingerprint,
            "meta_sha256": {name: column_sha256(col) for name, col in cols.items()},
        }
        self._group.update_attributes({"commit": commit})  # 3. commit point: one atomic replace of zarr.json
        if self.durable:
            _fsync_path(self.path / "zarr.json")
            _fsync_path(self.path)
        self._n_episodes, self._n_steps, self._fingerprint, self._cols = ep + 1, t1, fingerprint, cols
        return ep

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._n_episodes

    @property
    def n_episodes(self) -> int:
        return self._n_episodes

    @property
    def n_steps(self) -> int:
        return self._n_steps

    @property
    def keys(self) -> list[str]:
        return list(self._specs)

    @property
    def specs(self) -> dict[str, ArraySpec]:
        return dict(self._specs)

    @property
    def attrs(self) -> dict[str, Any]:
        """Dataset attributes (cell, task, created, user attrs), without specs and the commit record."""
        return {k: v for k, v in self._group.attrs.items() if k not in ("specs", "commit")}

    @property
    def fingerprint(self) -> str:
        """Hash chain over the schema and every committed episode's data; record it in checkpoints."""
        return self._fingerprint

    @property
    def schema_fingerprint(self) -> str:
        """Hash of keys, shapes, dtypes, units and frames only: what a policy's inputs must match."""
        return schema_sha256(self._specs)

    @property
    def episode_ends(self) -> np.ndarray:
        return self._cols["episode_ends"].copy()

    def _check_index(self, i: int) -> int:
        if not -self._n_episodes <= i < self._n_episodes:
            raise IndexError(f"episode {i} out of range for {self._n_episodes} episodes")
        return i % self._n_episodes

    def episode_slice(self, i: int) -> slice:
        i = self._check_index(i)
        start = int(self._cols["episode_ends"][i - 1]) if i > 0 else 0
        return slice(start, int(self._cols["episode_ends"][i]))

    def get_episode(self, i: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays of episode ``i`` (time first) for ``keys`` (default: all), checked against their checksums.

        Raises ``CorruptEpisodeError`` naming the episode and array when a chunk is undecodable, missing or
        does not match; other episodes stay readable.
        """
        keys = list(self._specs) if keys is None else list(keys)
        unknown = [k for k in keys if k not in self._specs]
        if unknown:
            raise KeyError(f"unknown keys {unknown}; the store has {self.keys}")
        i = self._check_index(i)
        s = self.episode_slice(i)
        return {k: self._episode_rows(i, k, s) for k in keys}

    def read_rows(self, key: str, rows: slice) -> np.ndarray:
        """Rows of one array as zarr decodes them, unchecked; zarr's own error on an undecodable chunk."""
        return np.asarray(self._data[key][rows])

    def check_rows(self, i: int, key: str, values: np.ndarray) -> str | None:
        """What is wrong with ``values`` read as episode ``i``'s ``key``; None if they match their checksum
        (or the episode has none: a store written before per-array checksums)."""
        if (i, key) in self._verified or not self.has_array_checksums(i):
            return None
        if array_sha256(values) == self._cols[_ARRAY_SHA][i, self._sorted_keys.index(key)].tobytes():
            self._verified.add((i, key))
            return None
        missing = missing_chunks(self.path / "data" / key, self._data[key], self.episode_slice(i))
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            return f"missing chunk {missing[0].relative_to(self.path)}{more}"
        return "checksum mismatch (flipped bits or a truncated chunk)"

    def _episode_rows(self, i: int, key: str, s: slice) -> np.ndarray:
        try:
            values = self.read_rows(key, s)
        except Exception as exc:  # zarr/numcodecs raise many types on a damaged chunk
            chunk = first_undecodable_chunk(self.path / "data" / key, self._data[key], s)
            what = undecodable(exc, chunk.relative_to(self.path) if chunk else None)
            raise CorruptEpisodeError(self.path, i, key, what) from exc
        problem = self.check_rows(i, key, values)
        if problem:
            raise CorruptEpisodeError(self.path, i, key, problem)
        return values

    def has_array_checksums(self, i: int) -> bool:
        """Whether episode ``i`` recorded per-array checksums (stores written before them did not)."""
        return _ARRAY_SHA in self._cols and bool(self._cols[_ARRAY_SHA][i].any())

    @property
    def checksums(self) -> str:
        """'per-array' (reads verified), 'per-episode only' (older store: reads unverified) or a mix."""
        n = sum(self.has_array_checksums(i) for i in range(self._n_episodes))
        if n == self._n_episodes:
            return "per-array"
        if n == 0:
            return "per-episode only"
        return f"per-array for {n} of {self._n_episodes} episodes, per-episode only for the rest"

    def episode_hash(self, i: int) -> bytes:
        """The recorded sha256 of episode ``i``'s arrays together (what the fingerprint chains)."""
        return self._cols["episode_sha256"][self._check_index(i)].tobytes()

    def chained_fingerprint(self) -> str:
        """The fingerprint recomputed from the recorded episode hashes (equal to ``fingerprint`` if intact)."""
        fingerprint = schema_sha256(self._specs)
        for ep_hash in self._cols["episode_sha256"]:
            fingerprint = _chain(fingerprint, ep_hash.tobytes())
        return fingerprint

    def episode_info(self, i: int) -> dict[str, Any]:
        i = self._check_index(i)
        c = self._cols
        seed = int(c["seed"][i])
        return {
            **json.loads(str(c["info_json"][i]) or "{}"),
            "success": bool(c["success"][i]),
            "seed": None if seed < 0 else seed,
            "task": str(c["task"][i]),
            "operator": str(c["operator"][i]),
            "duration_s": float(c["duration_s"][i]),
            "start_time_unix_s": float(c["start_time_unix_s"][i]),
            "n_steps": self.episode_slice(i).stop - self.episode_slice(i).start,
        }

    def verify(self) -> None:
        """Re-read and check every committed episode; raises on the first damage (``integrity.scan`` lists all)."""
        report = scan(self)
        if report.damages:
            d = report.damages[0]
            raise CorruptEpisodeError(self.path, d.episode, d.key, d.what)
        if not report.fingerprint_ok:
            raise StoreCorruptError(f"{self.path}: fingerprint chain does not match the commit record")

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def summary(self) -> str:
        """A table for a person: counts, success rate, keys with shape/dtype/unit, size, fingerprint."""
        a = self.attrs
        n_ok = int(self._cols["success"].sum())
        rate = f"{100.0 * n_ok / self._n_episodes:.1f}%" if self._n_episodes else "n/a"
        lines = [
            f"EpisodeStore {self.path}",
            f"  cell={a.get('cell')}  task={a.get('task')}  created={a.get('created')}  schema v{SCHEMA_VERSION}",
            f"  episodes {self._n_episodes}  steps {self._n_steps}  success {n_ok}/{self._n_episodes} ({rate})",
            f"  disk {self.disk_bytes() / 2**20:.2f} MiB  fingerprint {self._fingerprint[:16]}",
            f"  checksums {self.checksums}: "
            + (
                "each episode's arrays are verified when read"
                if self.checksums == "per-array"
                else "reads are unverified; `manip-stack verify` checks whole episodes"
            ),
            f"  {'key':<24} {'shape':<16} {'dtype':<8} {'unit':<10} {'frame':<14} steps/chunk",
        ]
        for k, s in self._specs.items():
            lines.append(
                f"  {k:<24} {s.shape!s:<16} {s.dtype.name:<8} {s.unit:<10} {s.frame or '-':<14} "
                f"{self._data[k].chunks[0]}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.path)!r}, mode={self.mode!r}, episodes={self._n_episodes})"
