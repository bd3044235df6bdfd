"""Cell and task files a person wrote are not trusted: non-finite numbers, limits beyond the hardware, duplicate
keys, alias bombs, deep nesting, huge and non-UTF-8 files are all refused at load, naming the file, and no
message repeats the whole input."""

from pathlib import Path

import pytest
import yaml

from hardware_configs import ConfigError, load_cell, load_task
from hardware_configs.safe_yaml import MAX_FILE_BYTES, UnsafeYamlError, parse_yaml_text, read_yaml_mapping

CELL = Path("hardware_configs/cells/franka_3cam.yaml")
TASK = Path("hardware_configs/tasks/peg_insert.yaml")


def write_variant(tmp_path: Path, edit, source: Path = CELL) -> Path:
    raw = yaml.safe_load(source.read_text())
    edit(raw)
    path = tmp_path / f"variant_{source.stem}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


NON_FINITE = [
    (lambda r: r["workspace"].update(max_m=[0.8, float("nan"), 0.55]), "workspace.max_m.1", "nan"),
    (lambda r: r["motion_limits"].update(max_linear_speed_m_s=float("inf")), "max_linear_speed_m_s", "inf"),
    (lambda r: r["rates"].update(control_hz=float("nan")), "rates.control_hz", "nan"),
    (lambda r: r["cameras"][0]["extrinsics"].update(position_m=[1.2, float("-inf"), 0.5]), "position_m.1", "-inf"),
    (lambda r: r["cameras"][1]["intrinsics"].update(fx=float("nan")), "intrinsics.fx", "nan"),
    (lambda r: r["cameras"][2]["intrinsics"].update(distortion=[0, 0, float("nan"), 0, 0]), "distortion.2", "nan"),
    (lambda r: r["robot"]["joints"][3].update(max_velocity_rad_s=float("inf")), "joints.3.max_velocity", "inf"),
]


@pytest.mark.parametrize(("edit", "field", "value"), NON_FINITE)
def test_a_non_finite_number_in_the_cell_is_refused_naming_file_field_and_value(tmp_path, edit, field, value):
    path = write_variant(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    message = str(err.value)
    assert str(path) in message and field in message and value in message and "finite" in message


def test_a_non_finite_task_range_is_refused(tmp_path):
    path = write_variant(tmp_path, lambda r: r["objects"][0]["initial_pose"]["x_m"].update(high=float("nan")), TASK)
    with pytest.raises(ConfigError, match=r"objects\.0\.initial_pose\.x_m\.high: .*finite"):
        load_task(path)


HUGE_LIMITS = [
    (lambda r: r["motion_limits"].update(max_linear_speed_m_s=1e9), "max_linear_speed_m_s", "1.7"),
    (lambda r: r["motion_limits"].update(max_angular_accel_rad_s2=1e6), "max_angular_accel_rad_s2", "25.0"),
    (lambda r: r["motion_limits"].update(command_timeout_s=3600), "command_timeout_s", "less than or equal to 1"),
    (lambda r: r["rates"].update(control_hz=1e6, policy_hz=1e5), "control_hz", "1000.0"),
    (lambda r: r["robot"]["joints"][0].update(max_velocity_rad_s=100.0), "joint1 max_velocity_rad_s", "2.175"),
    (lambda r: r["robot"]["joints"][5].update(upper_rad=10.0), "joint joint6", "3.7525"),
    (lambda r: r["robot"]["gripper"].update(max_speed_m_s=5.0), "max_speed_m_s", "0.15"),
    (lambda r: r["workspace"].update(min_m=[-1e6, -1e6, -1e6], max_m=[1e6, 1e6, 1e6]), "workspace box", "shrink"),
    (lambda r: r["cameras"][0]["intrinsics"].update(width=100_000), "intrinsics.width", "1920"),
    (lambda r: r["cameras"][2]["extrinsics"].update(position_m=[0.0, 0.0, 3.0]), "cam_wrist: distance", "0.5"),
]


@pytest.mark.parametrize(("edit", "field", "ceiling"), HUGE_LIMITS)
def test_no_limit_can_be_switched_off_by_making_it_huge(tmp_path, edit, field, ceiling):
    path = write_variant(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    assert field in str(err.value) and ceiling in str(err.value)


def test_stricter_limits_than_the_hardware_are_welcome(tmp_path):
    path = write_variant(tmp_path, lambda r: r["motion_limits"].update(max_linear_speed_m_s=0.05,
                                                                       command_timeout_s=0.1))
    assert load_cell(path).motion_limits.max_linear_speed_m_s == 0.05


def test_a_static_camera_looking_away_from_the_workspace_is_refused(tmp_path):
    # Turned half a turn about its optical y axis: it now looks out of the cell, and would record empty frames.
    path = write_variant(tmp_path, lambda r: r["cameras"][0]["extrinsics"].update(quaternion_xyzw=[0, 0, 0, 1]))
    with pytest.raises(ConfigError, match="camera cam_front does not see the workspace centre"):
        load_cell(path)


def test_a_wrist_camera_that_cannot_see_the_gripper_is_refused(tmp_path):
    path = write_variant(tmp_path, lambda r: r["cameras"][2]["extrinsics"].update(quaternion_xyzw=[1, 0, 0, 0]))
    with pytest.raises(ConfigError, match="camera cam_wrist does not see the tool centre point"):
        load_cell(path)


def test_a_key_written_twice_is_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(CELL.read_text().replace("  command_timeout_s: 0.5\n", "  command_timeout_s: 0.5\n"
                                             "  max_linear_speed_m_s: 1.5\n"))
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    message = str(err.value)
    assert str(path) in message and "'max_linear_speed_m_s' is written twice" in message
    assert "at line 28 and line 33" in message


def test_merge_keys_may_still_be_overridden():
    data = parse_yaml_text("base: &b {fx: 1, fy: 2}\ncam: {<<: *b, fy: 3}\n", "inline")
    assert data["cam"] == {"fx": 1, "fy": 3}


def billion_laughs(levels: int = 10) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE_TEXTS = {
    "an alias bomb": (billion_laughs(), "alias bomb"),
    "an alias cycle": ("a: &a [1, *a]\n", "cycle"),
    "deep flow nesting": ("a: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested more than 64 levels"),
    "deep block nesting": ("".join(" " * i + "k:\n" for i in range(300)), "nested more than 64 levels"),
}


@pytest.mark.parametrize("case", HOSTILE_TEXTS)
def test_hostile_yaml_is_refused_before_anything_expands(tmp_path, case):
    text, reason = HOSTILE_TEXTS[case]
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    assert str(path) in str(err.value) and reason in str(err.value)
    assert len(str(err.value)) < 500


def test_a_file_larger_than_the_bound_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: x\n# " + "padding " * (MAX_FILE_BYTES // 8))
    with pytest.raises(ConfigError, match=r"huge\.yaml: larger than 64 KiB"):
        load_cell(path)


def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text \(byte 0xe9 at offset 9\)"):
        load_cell(path)


@pytest.mark.parametrize(
    "text",
    [
        "name: " + "x" * 200_000 + "\nrobot: 1\n",  # one huge value
        "\n".join(f"key_{i}: {i}" for i in range(3000)),  # thousands of unknown keys
        "name: [" + "1, " * 60_000 + "\n",  # a huge syntax error
    ],
)
def test_error_messages_never_repeat_the_whole_input(tmp_path, text):
    path = tmp_path / "long.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_cell(path)
    assert len(str(err.value)) < 2500 < len(text)


def test_every_yaml_reader_of_the_stack_goes_through_the_bounded_loader(tmp_path):
    from robot_learning.rewards.fm.profiles import ProfileError, load_profile

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    with pytest.raises(ProfileError, match="alias bomb"):
        load_profile(bomb)
    with pytest.raises(UnsafeYamlError, match="alias bomb"):
        read_yaml_mapping(bomb)


def test_a_bad_cell_stops_a_verb_while_its_arguments_are_parsed(tmp_path, capsys):
    from robot_learning.cli.main import main

    path = write_variant(tmp_path, lambda r: r["motion_limits"].update(max_linear_speed_m_s=float("nan")))
    out = tmp_path / "never.zarr"
    with pytest.raises(SystemExit) as exit_:
        main(["collect", "--cell", str(path), "--expert", "--episodes", "1", "--out", str(out)])
    assert exit_.value.code == 2
    assert "max_linear_speed_m_s" in capsys.readouterr().err
    assert not out.exists()  # nothing recorded


def test_a_fine_tuning_config_naming_a_bad_cell_is_refused_with_the_config(tmp_path):
    from pydantic import ValidationError

    from robot_learning.rl.config import FinetuneConfig

    path = write_variant(tmp_path, lambda r: r["workspace"].update(min_m=[0.25, -0.35, float("nan")]))
    with pytest.raises(ValidationError, match=r"workspace\.min_m\.2: .*finite"):
        FinetuneConfig(cell=str(path))
