"""Teleop configs refuse bad values with the file and field; recorded streams round-trip every input type."""

from pathlib import Path

import numpy as np
import pytest

from hardware_configs.loader import ConfigError
from teleop import DeviceKind, TeleopConfig, default_config, make_device
from teleop.config import load_teleop_config
from teleop.replay import ReplaySource, encode_record, read_stream, write_stream
from teleop.ros_values import JoyValues, TwistValues


def test_every_device_kind_has_a_working_default():
    for kind in DeviceKind:
        assert default_config(kind).device is kind


def test_yaml_config_remaps_axes_and_rejects_typos(tmp_path: Path):
    good = tmp_path / "mouse.yaml"
    good.write_text("device: spacemouse\ndeadband: 0.2\naxes: {x: ['+tx'], z: ['-tz']}\n"
                    "buttons: {gripper_toggle: [btn0]}\n")
    config = load_teleop_config(str(good))
    device = make_device("spacemouse", config=config,
                         source=ReplaySource([{"t": 0, "hid": "01 5e 01 00 00 00 00"}], disconnect_at_end=False))
    with device:
        np.testing.assert_allclose(device.poll(0.0).action[:3], [config.max_translation_m_per_step, 0, 0])
    bad = tmp_path / "bad.yaml"
    bad.write_text("device: spacemouse\naxes: {x: ['tx']}\ndeadzone: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_teleop_config(str(bad))
    assert "bad.yaml" in str(err.value) and "axes.x" in str(err.value) and "deadzone" in str(err.value)


def test_a_config_that_moves_nothing_or_too_fast_is_refused():
    with pytest.raises(ValueError, match="never move"):
        TeleopConfig(device="keyboard", axes={})
    fast = default_config("spacemouse").model_copy(update={"max_translation_m_per_step": 0.04})
    with pytest.raises(ValueError, match="max_translation_m_per_step"):
        fast.check_against_limits(0.025, 0.06)


def test_a_config_for_another_device_is_refused():
    with pytest.raises(ValueError, match="config is for a keyboard"):
        make_device("spacemouse", config=default_config("keyboard"))


def test_streams_round_trip_every_raw_input_type(tmp_path: Path):
    evdev = pytest.importorskip("evdev")
    from teleop.gamepad import _pygame

    pg = _pygame()
    inputs = [bytes.fromhex("01 5e 01 00 00 00 00"), evdev.InputEvent(1, 500000, 1, 17, 1),
              pg.event.Event(pg.JOYHATMOTION, hat=0, value=(1, 0), instance_id=0),
              TwistValues((0.1, 0, 0), (0, 0, 0.2)), JoyValues((0.5,), (0, 1)), None]
    path = write_stream(tmp_path / "s.jsonl", "spacemouse", [encode_record(1.5, x) for x in inputs])
    header, records = read_stream(path)
    assert header["device"] == "spacemouse"
    replayed = [payload for _, payload in ReplaySource(records, disconnect_at_end=False).read(2.0)]
    assert replayed[0] == inputs[0] and replayed[3:] == inputs[3:]
    assert (replayed[1].type, replayed[1].code, replayed[1].value) == (1, 17, 1)
    assert replayed[2].type == pg.JOYHATMOTION and replayed[2].value == (1, 0)


def test_a_corrupt_stream_names_the_line(tmp_path: Path):
    path = write_stream(tmp_path / "s.jsonl", "keyboard", [{"t": 0.0, "alive": True}])
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ValueError, match="line 3"):
        read_stream(path)
