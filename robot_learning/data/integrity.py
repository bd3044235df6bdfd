"""Integrity of an episode store: typed errors, per-(episode, array) checksums, a whole-store scan, and loading
only the healthy episodes of a damaged store.

Why checksums: zarr with blosc decodes a bit-flipped or truncated chunk into garbage without complaint and
fills a deleted chunk with its fill value, so neither training nor a person watching a video would notice.
Every committed episode records a sha256 of each array's rows (``meta/array_sha256``, keys in sorted order);
the store hashes what it decoded once per (episode, array) and raises ``CorruptEpisodeError`` naming the
store, the episode and the array. The per-episode metadata columns are covered by hashes in the commit record,
so a damaged ``meta/*`` file is named when the store is opened.

Stores written before per-array checksums only have the per-episode hash: reads are unverified and ``scan``
checks each episode as a whole (it can then name the episode but not the array).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from robot_learning.data.episode_writer import episode_sha256

if TYPE_CHECKING:
    from robot_learning.data.episode_store import EpisodeStore
    from robot_learning.data.specs import ArraySpec

log = logging.getLogger(__name__)

ANY_ARRAY = "(any)"  # the array column of a damage found by a store without per-array checksums


class EpisodeStoreError(RuntimeError):
    """Base class of the store's own errors (bad files, lock held); bad inputs raise ValueError."""


class StoreCorruptError(EpisodeStoreError, ValueError):
    """Stored content does not match its recorded hashes or counts.

    Also a ValueError: like a bad config file, a damaged dataset is the user's to fix, so every verb of the
    command line reports it in one line (exit code 2) rather than a traceback.
    """


class StoreMetadataError(StoreCorruptError):
    """A metadata file (``zarr.json``, a ``meta/*`` column) is missing, unreadable or does not match the record."""

    def __init__(self, file: Path, problem: str) -> None:
        self.file, self.problem = Path(file), problem
        super().__init__(f"{file}: {problem}")


class CorruptEpisodeError(StoreCorruptError):
    """One array of one episode cannot be decoded or does not match its checksum; other episodes may be fine."""

    def __init__(self, path: Path, episode: int, key: str, what: str) -> None:
        self.path, self.episode, self.key, self.what = Path(path), episode, key, what
        super().__init__(f"{path}: episode {episode}, array {key!r}: {what} (run `manip-stack verify {path}`)")


@dataclass(frozen=True)
class Damage:
    """What is wrong with one (episode, array)."""

    episode: int
    key: str
    what: str

    def __str__(self) -> str:
        return f"episode {self.episode}, array {self.key!r}: {self.what}"


def array_sha256(values: np.ndarray) -> bytes:
    """Hash of one array's rows (little-endian bytes), independent of chunking and compression."""
    arr = np.ascontiguousarray(values)
    return hashlib.sha256(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()).digest()


def column_sha256(values: np.ndarray) -> str:
    """Hash of a committed per-episode column (numeric or string) for the commit record."""
    h = hashlib.sha256(f"{len(values)}\0".encode())
    if values.dtype.kind in "biuf":
        arr = np.ascontiguousarray(values)
        h.update(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    else:
        h.update("\0".join(str(v) for v in values.tolist()).encode())
    return h.hexdigest()


def chunk_files(array_dir: Path, arr: zarr.Array, rows: slice) -> list[Path]:
    """The chunk files holding rows ``[rows.start, rows.stop)`` of an array chunked whole beyond time."""
    step = arr.chunks[0]
    first, last = rows.start // step, max(rows.start, rows.stop - 1) // step
    rest = (0,) * (arr.ndim - 1)
    return [array_dir / arr.metadata.encode_chunk_key((t, *rest)) for t in range(first, last + 1)]


def missing_chunks(array_dir: Path, arr: zarr.Array, rows: slice) -> list[Path]:
    """Chunk files of ``rows`` that are absent (zarr would silently read them as the fill value)."""
    return [f for f in chunk_files(array_dir, arr, rows) if not f.is_file()]


def undecodable(exc: BaseException, chunk: Path | None = None) -> str:
    """The ``what`` of a chunk that zarr could not decode (named when it was found)."""
    return f"undecodable chunk{f' {chunk}' if chunk else ''} ({type(exc).__name__}: {exc})"


def first_undecodable_chunk(array_dir: Path, arr: zarr.Array, rows: slice) -> Path | None:
    """The first chunk file of ``rows`` that zarr cannot decode: read chunk by chunk, only after a failure."""
    step = arr.chunks[0]
    for t, f in zip(range(rows.start // step, rows.stop), chunk_files(array_dir, arr, rows), strict=False):
        try:
            arr[t * step : (t + 1) * step]
        except Exception:
            return f
    return None


def open_array(
    group: zarr.Group, store_path: Path, name: str, spec: ArraySpec | None = None, optional: bool = False
) -> zarr.Array | None:
    """One array of the store's group; a missing, unreadable or inconsistent ``zarr.json`` is named."""
    file = store_path / name / "zarr.json"
    try:
        arr = group[name]
    except KeyError:
        if optional and not file.exists():
            return None
        raise StoreMetadataError(file, "missing" if not file.exists() else "unreadable") from None
    except Exception as exc:  # zarr raises JSON, validation and codec errors on a damaged zarr.json
        raise StoreMetadataError(file, f"unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, zarr.Array):
        raise StoreMetadataError(file, "describes a group, expected an array")
    if spec is not None and (arr.dtype != spec.dtype or tuple(arr.shape[1:]) != spec.shape):
        got = f"{arr.dtype}{tuple(arr.shape[1:])}"
        raise StoreMetadataError(file, f"array is {got}, the store's specs say {spec.dtype}{spec.shape}")
    return arr


def column_file(store_path: Path, name: str, arr: zarr.Array, n_episodes: int) -> Path:
    """The chunk file of a per-episode column (one file up to 4096 episodes), or its folder."""
    files = chunk_files(store_path / "meta" / name, arr, slice(0, max(n_episodes, 1)))
    return files[0] if len(files) == 1 else store_path / "meta" / name


def read_column(store_path: Path, name: str, arr: zarr.Array, n_episodes: int) -> np.ndarray:
    """Committed rows of a per-episode column, naming its file if undecodable; rows an older writer did not
    add (``array_sha256`` only) read as 0."""
    rows = min(arr.shape[0], n_episodes)
    try:
        col = np.asarray(arr[:rows])
    except Exception as exc:
        raise StoreMetadataError(column_file(store_path, name, arr, n_episodes), undecodable(exc)) from None
    if rows < n_episodes:
        col = np.concatenate([col, np.zeros((n_episodes - rows, *col.shape[1:]), col.dtype)])
    return col


@dataclass
class IntegrityReport:
    """Outcome of ``scan``: every damaged (episode, array), and whether the episode hashes chain to the record."""

    path: Path
    n_episodes: int
    checksums: str
    damages: list[Damage] = field(default_factory=list)
    fingerprint_ok: bool = True

    @property
    def ok(self) -> bool:
        return not self.damages and self.fingerprint_ok

    @property
    def damaged_episodes(self) -> list[int]:
        return sorted({d.episode for d in self.damages})

    def table(self) -> str:
        """A table for a person: one row per damage, then a one-line verdict."""
        lines = [f"verify {self.path}: {self.n_episodes} episodes, checksums {self.checksums}"]
        if self.damages:
            lines.append(f"  {'episode':>7}  {'array':<24} problem")
            lines += [f"  {d.episode:>7}  {d.key:<24} {d.what}" for d in self.damages]
        if not self.fingerprint_ok:
            lines.append("  the stored episode hashes do not chain to the commit record's fingerprint")
        n_bad = len(self.damaged_episodes)
        verdict = "OK" if self.ok else f"DAMAGED: {n_bad} of {self.n_episodes} episodes"
        lines.append(f"  {verdict}" + ("" if self.ok else "; the others are usable (training skips damaged ones)"))
        return "\n".join(lines)


def scan(store: EpisodeStore) -> IntegrityReport:
    """Decode and check every array of every committed episode; never raises for damaged data."""
    report = IntegrityReport(store.path, store.n_episodes, store.checksums)
    for i in range(store.n_episodes):
        values: dict[str, np.ndarray] = {}
        for key in store.keys:
            try:
                values[key] = store.get_episode(i, [key])[key]
            except CorruptEpisodeError as exc:
                report.damages.append(Damage(i, key, exc.what))
        whole = len(values) == len(store.keys)
        if whole and not store.has_array_checksums(i) and episode_sha256(values) != store.episode_hash(i):
            report.damages.append(Damage(i, ANY_ARRAY, "content does not match the episode hash"))
    report.fingerprint_ok = store.chained_fingerprint() == store.fingerprint
    return report


@dataclass
class HealthyEpisodes:
    """Rows of the episodes that passed their checks, concatenated, and the episodes left out."""

    arrays: dict[str, np.ndarray]
    episode_ends: np.ndarray  # cumulative ends of the kept episodes, from 0
    episodes: np.ndarray  # store index of each kept episode
    damages: list[Damage]


def load_healthy(store: EpisodeStore, keys: Sequence[str], n_episodes: int | None = None) -> HealthyEpisodes:
    """``keys`` of the first ``n_episodes`` episodes, leaving out (not raising on) damaged ones.

    Each key is read in one go (the fast path); only when that fails to decode is it read episode by episode
    to find which ones are damaged.
    """
    n = store.n_episodes if n_episodes is None else min(n_episodes, store.n_episodes)
    ends = store.episode_ends[:n]
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    total = int(ends[-1]) if n else 0
    damages: list[Damage] = []
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        spec = store.specs[key]
        try:
            whole = store.read_rows(key, slice(0, total))
        except Exception:  # zarr/numcodecs raise many types on an undecodable chunk: go episode by episode
            whole = np.zeros((total, *spec.shape), spec.dtype)
            for i in range(n):
                try:
                    whole[starts[i] : ends[i]] = store.get_episode(i, [key])[key]
                except CorruptEpisodeError as exc:
                    damages.append(Damage(i, key, exc.what))
        else:
            for i in range(n):
                problem = store.check_rows(i, key, whole[starts[i] : ends[i]])
                if problem:
                    damages.append(Damage(i, key, problem))
        arrays[key] = whole
    bad = {d.episode for d in damages}
    keep = np.array([i for i in range(n) if i not in bad], np.int64)
    lengths = (ends - starts)[keep]
    if bad:
        rows = _rows_of(starts[keep], lengths)
        arrays = {k: v[rows] for k, v in arrays.items()}
    return HealthyEpisodes(arrays, np.cumsum(lengths).astype(np.int64), keep, sorted(damages, key=_order))


def _rows_of(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    if not len(starts):
        return np.zeros(0, np.int64)
    return np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)])


def _order(d: Damage) -> tuple[int, str]:
    return d.episode, d.key


def describe_skipped(path: Path, damages: Iterable[Damage], n_kept: int, n_total: int) -> str:
    """The warning a consumer logs when it leaves damaged episodes out."""
    by_episode: dict[int, list[Any]] = {}
    for d in damages:
        by_episode.setdefault(d.episode, []).append(f"{d.key!r}: {d.what}")
    detail = "; ".join(f"episode {i} ({', '.join(w)})" for i, w in sorted(by_episode.items()))
    return (
        f"{path}: skipping {len(by_episode)} damaged of {n_total} episodes, using {n_kept}: {detail}. "
        f"Run `manip-stack verify {path}` for the full list"
    )
