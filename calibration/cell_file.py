"""Write calibrated extrinsics into a cell YAML file, keeping its comments and a dated backup of the old one.

The file is edited round-trip (``ruamel.yaml``), so comments and layout survive; only the ``extrinsics`` of
the calibrated cameras change. The new text must load as a valid :class:`CellConfig` before anything is
touched; then the old file is copied to ``<name>.<UTC time>.yaml.bak`` beside it (not ``*.yaml``, so it is
never listed as a cell) and the new file replaces it atomically.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq

from geometry.transforms import matrix_to_pose
from hardware_configs.loader import ConfigError, load_cell
from hardware_configs.safe_yaml import parse_yaml_text, read_yaml_text
from hardware_configs.schema import CellConfig

DECIMALS = 6  # 1 µm and ~1e-6 of a quaternion: far below what calibration resolves


class CellFileError(ValueError):
    pass


def _flow(values: np.ndarray) -> CommentedSeq:
    seq = CommentedSeq(round(float(v), DECIMALS) + 0.0 for v in values)
    seq.fa.set_flow_style()
    return seq


def backup_path(cell_path: Path, now: datetime) -> Path:
    """``<stem>.<UTC time>.yaml.bak`` beside the cell file; a counter is added rather than overwrite a backup."""
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = cell_path.with_name(f"{cell_path.stem}.{stamp}.yaml.bak")
    counter = 1
    while candidate.exists():
        candidate = cell_path.with_name(f"{cell_path.stem}.{stamp}-{counter}.yaml.bak")
        counter += 1
    return candidate


def write_extrinsics(cell_path: str | Path, extrinsics: Mapping[str, np.ndarray], note: str = "",
                     now: datetime | None = None) -> Path:
    """Replace the extrinsics of the named cameras (4x4, in each camera's own parent frame); returns the backup.

    ``note`` (one line, e.g. the residuals) is written as a comment above each updated pose.
    """
    path = Path(cell_path)
    now = now or datetime.now(timezone.utc)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)  # the shipped files' layout
    yaml.width = 4096  # never re-wrap flow mappings (ruamel would break them mid-entry)
    try:  # the file as it is must pass every bound and check before ruamel parses it
        load_cell(path)
    except ConfigError as exc:
        raise CellFileError(f"{path}: the cell file would not load as it is; nothing written:\n{exc}") from None
    document = yaml.load(read_yaml_text(path))
    entries = {entry["name"]: entry for entry in document.get("cameras", [])}
    unknown = sorted(set(extrinsics) - set(entries))
    if unknown:
        raise CellFileError(f"{path}: no camera(s) {unknown}; cameras are {sorted(entries)}")
    for name, T in extrinsics.items():
        _check_rigid(name, np.asarray(T, dtype=float))
        position, quaternion = matrix_to_pose(np.asarray(T))
        pose = entries[name]["extrinsics"]
        pose["position_m"] = _flow(position)
        pose["quaternion_xyzw"] = _flow(quaternion)
        comment = f"calibrated {now.astimezone(timezone.utc):%Y-%m-%d %H:%M UTC}" + (f": {note}" if note else "")
        entries[name].yaml_add_eol_comment(comment, "extrinsics")  # replaces the previous calibration's note
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    new_text = buffer.getvalue()
    _validate(path, new_text)
    backup = backup_path(path, now)
    shutil.copy2(path, backup)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(new_text)
    os.replace(temporary, path)
    return backup


def _check_rigid(camera: str, T: np.ndarray) -> None:
    rot = T[:3, :3] if T.shape == (4, 4) else None
    if rot is None or not np.all(np.isfinite(T)) or not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) \
            or np.linalg.det(rot) < 0 or not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0]):
        raise CellFileError(f"extrinsics of {camera} are not a finite rigid 4x4 transform; nothing written:\n{T}")


def _validate(path: Path, text: str) -> None:
    """Refuse to write a file the loader would reject."""
    try:
        CellConfig.model_validate(parse_yaml_text(text, str(path)))
    except ValidationError as exc:
        raise CellFileError(f"{path}: the calibrated file would not load, nothing written:\n{exc}") from None
