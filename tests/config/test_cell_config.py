"""The cell and task files: shipped ones load, bad ones fail at load time naming file, field, value and fix."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from hardware_configs import ConfigError, load_cell, load_task
from hardware_configs.loader import available, dump_yaml
from hardware_configs.schema import CameraMount, CellConfig


def write_variant(tmp_path: Path, name: str, edit) -> Path:
    raw = yaml.safe_load(Path("hardware_configs/cells/franka_3cam.yaml").read_text())
    edit(raw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_default_cell_has_two_static_and_one_wrist_camera_at_640x480_30fps(cell: CellConfig):
    mounts = sorted(c.mount.value for c in cell.cameras)
    assert mounts == ["static", "static", "wrist"]
    assert {(c.intrinsics.width, c.intrinsics.height, c.fps) for c in cell.cameras} == {(640, 480, 30)}
    assert cell.robot.model.value == "panda" and len(cell.robot.joints) == 7


def test_shipped_configs_all_load():
    assert "franka_3cam" in available("cells")
    assert {"lift", "peg_insert"} <= set(available("tasks"))
    for name in available("cells"):
        load_cell(name)
    for name in available("tasks"):
        load_task(name)


def test_camera_topics_follow_realsense_ros(cell: CellConfig):
    cam = cell.camera("cam_front")
    assert cam.topic("color") == "/cam_front/color/image_raw"
    assert cam.topic("depth") == "/cam_front/aligned_depth_to_color/image_raw"
    assert cam.topic("camera_info") == "/cam_front/color/camera_info"


def test_extrinsics_are_proper_rigid_transforms(cell: CellConfig):
    for cam in cell.cameras:
        T = cam.extrinsics.matrix()
        np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)
        assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)
        expected_parent = "base" if cam.mount is CameraMount.static else "flange"
        assert cam.extrinsics.parent == expected_parent


def test_dump_and_reload_round_trips(cell: CellConfig, tmp_path: Path):
    path = tmp_path / "copy.yaml"
    path.write_text(dump_yaml(cell))
    assert load_cell(path) == cell


def test_unknown_key_is_an_error_naming_the_field(tmp_path: Path):
    path = write_variant(tmp_path, "typo", lambda raw: raw["cameras"][0].update(fsp=30))
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    message = str(err.value)
    assert str(path) in message and "cameras.0.fsp" in message and "unknown key" in message


@pytest.mark.parametrize(
    ("edit", "field", "hint"),
    [
        (lambda raw: raw["cameras"][1]["intrinsics"].update(fx=-600), "cameras.1.intrinsics.fx", "greater than 0"),
        (lambda raw: raw["workspace"].update(min_m=[0.9, -0.3, 0.0]), "workspace", "min_m 0.9 must be below"),
        (lambda raw: raw["cameras"][2]["extrinsics"].update(parent="base"), "cameras.2", "must be 'flange'"),
        (lambda raw: raw["cameras"][1].update(name="cam_front"), "cameras", "repeated: ['cam_front']"),
        (lambda raw: raw["robot"].update(model="ur5e"), "robot.model", "'panda'"),
        (lambda raw: raw["rates"].update(policy_hz=30.0), "rates", "integer multiple"),
        (lambda raw: raw["robot"].update(home_joint_positions_rad=[0, 0, 0, 0, 0, 0, 0]), "robot", "outside"),
        (lambda raw: raw["cameras"][0]["extrinsics"].update(quaternion_xyzw=[0, 0, 0, 2]), "quaternion", "unit"),
    ],
)
def test_bad_values_fail_at_load_with_the_field_and_the_fix(tmp_path: Path, edit, field, hint):
    path = write_variant(tmp_path, "bad", edit)
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    assert field in str(err.value) and hint in str(err.value)


def test_missing_config_lists_what_exists():
    with pytest.raises(ConfigError, match=r"available: \[.*'franka_3cam'"):
        load_cell("franka_9cam")


def test_malformed_yaml_is_reported(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cell(path)


def test_task_success_must_name_existing_objects(tmp_path: Path):
    raw = yaml.safe_load(Path("hardware_configs/tasks/peg_insert.yaml").read_text())
    raw["success"]["fixture"] = "socket"
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="fixture 'socket'; fixtures are \\['hole'\\]"):
        load_task(path)


def test_peg_task_has_millimetre_clearance(peg_task):
    peg_half_width = peg_task.objects[0].half_size_m[0]
    clearance_per_side = peg_task.fixtures[0].hole_half_width_m - peg_half_width
    assert 0.0005 <= clearance_per_side <= 0.003
