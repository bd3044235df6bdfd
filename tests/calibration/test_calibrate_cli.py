"""`manip-stack calibrate --sim`: a perturbed copy of the cell file is calibrated in the twin and rewritten."""

import hashlib

import numpy as np
import pytest

from calibration.multicam import pose_difference
from hardware_configs import load_cell
from hardware_configs.loader import CONFIG_ROOT
from robot_learning.cli.main import main

SHIPPED = CONFIG_ROOT / "cells" / "franka_3cam.yaml"


def test_calibrate_sim_prints_the_table_and_writes_only_the_copy(tmp_path, capsys):
    shipped = hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    out = tmp_path / "cell.yaml"
    code = main(["calibrate", "--sim", "--cell", "franka_3cam", "--out", str(out), "--static-poses", "12",
                 "--wrist-poses", "8", "--seed", "0"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "vs truth deg/mm" in printed and printed.count(" ok") == 3 and "thresholds: passed" in printed
    assert f"wrote {out}" in printed
    backups = list(tmp_path.glob("cell.*.yaml.bak"))
    assert len(backups) == 1 and "perturbed by 20.0 mm" in backups[0].read_text()
    truth, calibrated = load_cell(SHIPPED), load_cell(out)
    for camera in truth.cameras:
        rotation_deg, translation_mm = pose_difference(calibrated.camera(camera.name).extrinsics.matrix(),
                                                       camera.extrinsics.matrix())
        assert rotation_deg < 0.2 and translation_mm < 2.0
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == shipped


def test_calibrate_refuses_the_file_the_twin_is_built_from_and_live_mode(capsys):
    assert main(["calibrate", "--sim", "--out", str(SHIPPED)]) == 2
    assert "is the cell file the twin is built from" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="only --sim exists"):
        main(["calibrate"])


def test_cameras_lists_every_camera_of_the_cell_as_missing_without_hardware(capsys):
    assert main(["cameras", "--cell", "franka_3cam"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["cam_front", "cam_side", "cam_wrist"]
    assert all(line.split()[-1] == "MISSING" for line in lines)
    assert np.array([line.split()[1] for line in lines]).tolist() == ["215122253001", "215122253002", "215122253003"]
