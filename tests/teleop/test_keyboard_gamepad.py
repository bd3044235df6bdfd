"""Keyboard through evdev events and gamepads through pygame joystick events, replayed into the live parsers."""

import numpy as np
import pytest

from teleop import Button, DeviceStatus, default_config
from teleop.keyboard import EvdevParser

evdev = pytest.importorskip("evdev")
pytest.importorskip("pygame")

KEY = 1  # EV_KEY
KEY_W, KEY_S, KEY_A, KEY_SPACE, KEY_ENTER, KEY_TAB = 17, 31, 30, 57, 28, 15
KB = default_config("keyboard")
PAD = default_config("gamepad")


def key(t: float, code: int, value: int) -> dict:
    return {"t": t, "evdev": [KEY, code, value]}


def test_w_moves_forward_and_s_cancels_it(replay_device):
    device = replay_device("keyboard", [key(0.0, KEY_W, 1), key(0.2, KEY_S, 1), key(0.4, KEY_W, 0), key(0.4, KEY_S, 0)])
    np.testing.assert_allclose(device.poll(0.1).action[:6], [KB.max_translation_m_per_step, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(device.poll(0.3).action[:6], 0.0)
    assert not device.poll(0.5).motion_active


def test_kernel_auto_repeat_keeps_a_held_key_alive_and_its_absence_stops_the_arm(replay_device):
    held = [key(0.0, KEY_A, 1)] + [key(0.5 + 0.033 * i, KEY_A, 2) for i in range(40)]  # 250-600 ms, then ~30 Hz
    device = replay_device("keyboard", held)
    assert device.poll(1.5).action[1] == pytest.approx(KB.max_translation_m_per_step)  # +y: A is left
    last_repeat_s = held[-1]["t"]
    assert device.poll(last_repeat_s + KB.stale_after_s - 0.05).status is DeviceStatus.ok
    assert device.poll(last_repeat_s + KB.stale_after_s + 0.05).status is DeviceStatus.stale  # key-up was lost


def test_syn_dropped_releases_all_keys():
    parser = EvdevParser()
    parser.feed(evdev.InputEvent(0, 0, KEY, KEY_W, 1))
    parser.feed(evdev.InputEvent(0, 0, 0, 3, 0))  # SYN_DROPPED: the kernel buffer overran, key-ups may be lost
    assert parser.channels == {"KEY_W": 0.0}


def test_session_keys_and_held_tab_intervenes(replay_device):
    device = replay_device("keyboard", [key(0.0, KEY_ENTER, 1), key(0.01, KEY_ENTER, 0), key(0.0, KEY_TAB, 1),
                                        key(0.0, KEY_SPACE, 1), key(0.02, KEY_SPACE, 0)])
    cmd = device.poll(0.1)
    assert cmd.pressed == {Button.start_stop, Button.gripper_toggle, Button.intervene}
    assert cmd.intervening and cmd.held == {Button.intervene} and cmd.action[6] == 1.0


def test_evdev_absolute_axes_use_the_device_range():
    parser = EvdevParser({0: (0, 255)})  # ABS_X of a pad reporting 0..255
    parser.feed(evdev.InputEvent(0, 0, 3, 0, 255))
    assert parser.channels["ABS_X"] == pytest.approx(1.0)


def pad(t: float, kind: str, **fields) -> dict:
    return {"t": t, "pygame": {"type": kind, "instance_id": 0, **fields}}


def test_left_stick_forward_drives_the_arm_forward(replay_device):
    device = replay_device("gamepad", [pad(0.0, "JoyAxisMotion", axis=1, value=-1.0), {"t": 0.1, "alive": True}])
    np.testing.assert_allclose(device.poll(0.1).action[:6], [PAD.max_translation_m_per_step, 0, 0, 0, 0, 0])


def test_stick_noise_inside_the_deadband_is_ignored_and_response_is_progressive(replay_device):
    device = replay_device("gamepad", [pad(0.0, "JoyAxisMotion", axis=0, value=0.1),
                                       pad(0.1, "JoyAxisMotion", axis=0, value=-0.5)])
    np.testing.assert_array_equal(device.poll(0.05).action[:6], 0.0)
    half = device.poll(0.15).action[1]
    expected = ((0.5 - PAD.deadband) / (1 - PAD.deadband)) ** PAD.exponent * PAD.max_translation_m_per_step
    assert half == pytest.approx(expected, rel=1e-5)  # stick left (-axis0) is base +y


def test_dpad_rolls_and_pitches(replay_device):
    cmd = replay_device("gamepad", [pad(0.0, "JoyHatMotion", hat=0, value=[1, -1])]).poll(0.0)
    np.testing.assert_allclose(cmd.action[3:5], [PAD.max_rotation_rad_per_step, -PAD.max_rotation_rad_per_step])


def test_pad_removal_stops_the_arm_until_it_is_added_again(replay_device):
    device = replay_device("gamepad", [pad(0.0, "JoyAxisMotion", axis=1, value=-1.0),
                                       pad(0.1, "JoyDeviceRemoved"), pad(0.5, "JoyDeviceAdded", device_index=0)])
    assert device.poll(0.05).motion_active
    lost = device.poll(0.2)
    assert lost.status is DeviceStatus.disconnected
    np.testing.assert_array_equal(lost.action[:6], 0.0)
    back = device.poll(0.6)
    assert back.status is DeviceStatus.ok and not back.motion_active


def test_heartbeats_keep_a_steady_stick_alive_and_their_absence_stops_it(replay_device):
    beats = [pad(0.0, "JoyAxisMotion", axis=1, value=-1.0)] + [{"t": 0.1 * i, "alive": True} for i in range(1, 11)]
    device = replay_device("gamepad", beats)
    assert device.poll(1.0).motion_active  # no axis event for 1 s, but the pad answered every poll
    assert device.poll(1.0 + PAD.stale_after_s + 0.01).status is DeviceStatus.stale


def test_events_of_another_pad_are_ignored():
    from teleop.gamepad import PygameJoystickParser
    from teleop.replay import decode_payload

    parser = PygameJoystickParser(instance_id=0)
    parser.feed(decode_payload({"t": 0, "pygame": {"type": "JoyButtonDown", "button": 0, "instance_id": 3}}))
    assert parser.channels == {}


def test_buttons_map_to_session_roles(replay_device):
    device = replay_device("gamepad", [pad(0.0, "JoyButtonDown", button=7), pad(0.0, "JoyButtonDown", button=5)])
    cmd = device.poll(0.0)
    assert cmd.pressed == {Button.start_stop, Button.intervene} and cmd.intervening
