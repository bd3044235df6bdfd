"""Calibrated extrinsics go into (a copy of) the cell file: comments survive, the old file is kept, bad results
never land."""

import hashlib
import shutil
from datetime import datetime, timezone

import numpy as np
import pytest

from calibration.cell_file import CellFileError, write_extrinsics
from hardware_configs import load_cell
from hardware_configs.loader import CONFIG_ROOT, available

SHIPPED = CONFIG_ROOT / "cells" / "franka_3cam.yaml"
NOW = datetime(2026, 11, 25, 20, 49, 21, tzinfo=timezone.utc)


@pytest.fixture
def cell_copy(tmp_path):
    path = tmp_path / "franka_3cam.yaml"
    shutil.copy(SHIPPED, path)
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_extrinsics_replace_the_old_and_the_old_file_is_kept_beside_it(cell_copy):
    shipped_digest, before = digest(SHIPPED), cell_copy.read_text()
    T = load_cell(cell_copy).camera("cam_front").extrinsics.matrix()
    T[:3, 3] += [0.0012, -0.0005, 0.0021]
    backup = write_extrinsics(cell_copy, {"cam_front": T}, note="reprojection RMS 0.07 px", now=NOW)

    assert backup.name == "franka_3cam.20261125T204921Z.yaml.bak"
    assert backup.read_text() == before
    after = load_cell(cell_copy)
    np.testing.assert_allclose(after.camera("cam_front").extrinsics.matrix(), T, atol=1e-6)
    assert after.camera("cam_side") == load_cell(SHIPPED).camera("cam_side")  # the others untouched
    text = cell_copy.read_text()
    assert "# Default cell: a Franka Panda" in text  # the header comment survives
    assert "# tool centre point must stay inside" in text
    assert "calibrated 2026-11-25 20:49 UTC: reprojection RMS 0.07 px" in text
    assert digest(SHIPPED) == shipped_digest


def test_a_second_calibration_in_the_same_second_keeps_both_backups_and_one_note(cell_copy):
    T = load_cell(cell_copy).camera("cam_wrist").extrinsics.matrix()
    first = write_extrinsics(cell_copy, {"cam_wrist": T}, note="first", now=NOW)
    second = write_extrinsics(cell_copy, {"cam_wrist": T}, note="second", now=NOW)
    assert first != second and first.exists() and second.exists()
    text = cell_copy.read_text()
    assert "second" in text and ": first" not in text


def test_backups_are_not_listed_as_cells(cell_copy, monkeypatch):
    write_extrinsics(cell_copy, {"cam_side": load_cell(cell_copy).camera("cam_side").extrinsics.matrix()}, now=NOW)
    monkeypatch.setattr("hardware_configs.loader.CONFIG_ROOT", cell_copy.parent.parent)
    (cell_copy.parent.parent / "cells").mkdir(exist_ok=True)
    for path in cell_copy.parent.iterdir():
        shutil.copy(path, cell_copy.parent.parent / "cells" / path.name)
    assert available("cells") == ["franka_3cam"]


def test_unknown_cameras_non_rigid_poses_and_files_that_would_not_load_write_nothing(cell_copy):
    before = cell_copy.read_text()
    with pytest.raises(CellFileError, match=r"no camera.*cam_top"):
        write_extrinsics(cell_copy, {"cam_top": np.eye(4)})
    for bad in (np.diag([3.0, 3.0, 3.0, 1.0]), np.full((4, 4), np.nan), np.diag([1.0, 1.0, -1.0, 1.0])):
        with pytest.raises(CellFileError, match="not a finite rigid"):
            write_extrinsics(cell_copy, {"cam_front": bad})
    assert cell_copy.read_text() == before

    typo = before.replace("fps: 30\n", "fsp: 30\n", 1)  # a problem elsewhere in the file: still never written
    cell_copy.write_text(typo)
    with pytest.raises(CellFileError, match="would not load"):
        write_extrinsics(cell_copy, {"cam_front": np.eye(4)})
    assert cell_copy.read_text() == typo
    assert list(cell_copy.parent.glob("*.bak")) == []
