"""A SpaceMouse is read through hidapi; these are its report formats, replayed byte for byte through the parser.

Streams below are what the devices send (byte 0 = report id, int16 little-endian counts, about +-350 at full
deflection): report 1/2 = translation/rotation on older pucks, one 13-byte report 1 on newer ones, report 3 =
buttons. HID axes: x right, y toward the operator, z down. Default mapping: operator behind the robot.
"""

import numpy as np
import pytest

from teleop import Button, DeviceDisconnectedError, DeviceStatus, default_config, make_device
from teleop.spacemouse import SpaceMouseParser

CFG = default_config("spacemouse")
FULL_M = CFG.max_translation_m_per_step
FULL_RAD = CFG.max_rotation_rad_per_step

# SpaceMouse Compact (256f:c635): cap pushed fully away from the operator (ty = -350), then released.
COMPACT_PUSH_AWAY = [
    {"t": 0.00, "hid": "01 00 00 a2 fe 00 00"},  # translation (0, -350, 0)
    {"t": 0.00, "hid": "02 00 00 00 00 00 00"},  # rotation (0, 0, 0)
    {"t": 0.05, "hid": "01 00 00 a2 fe 00 00"},  # still pushed: the device keeps streaming
    {"t": 0.05, "hid": "02 00 00 00 00 00 00"},
    {"t": 0.30, "hid": "01 00 00 00 00 00 00"},  # released
    {"t": 0.30, "hid": "02 00 00 00 00 00 00"},
]
# SpaceMouse Wireless (256f:c62e) combined report: pushed down (tz = +350) and twisted (rz = +175).
WIRELESS_DOWN_TWIST = [{"t": 0.0, "hid": "01 00 00 00 00 5e 01 00 00 00 00 af 00"}]


def test_pushing_the_cap_away_moves_the_tcp_forward_at_full_scale(replay_device):
    device = replay_device("spacemouse", COMPACT_PUSH_AWAY)
    cmd = device.poll(0.1)
    np.testing.assert_allclose(cmd.action[:6], [FULL_M, 0, 0, 0, 0, 0], atol=1e-7)
    assert cmd.motion_active and cmd.intervening and cmd.status is DeviceStatus.ok
    released = device.poll(0.4)
    np.testing.assert_array_equal(released.action[:6], 0.0)
    assert not released.motion_active


def test_combined_13_byte_report_reads_translation_and_rotation_at_once(replay_device):
    cmd = replay_device("spacemouse", WIRELESS_DOWN_TWIST).poll(0.0)
    # down (HID +z) is base -z; a twist about HID +z (down) is a rotation about base -z, at half deflection
    # the deadband-rescaled magnitude is (0.5 - d) / (1 - d)
    half = (0.5 - CFG.deadband) / (1 - CFG.deadband)
    np.testing.assert_allclose(cmd.action[:6], [0, 0, -FULL_M, 0, 0, -half * FULL_RAD], atol=2e-6)


def test_split_and_combined_formats_give_the_same_channels():
    split, combined = SpaceMouseParser(), SpaceMouseParser()
    split.feed(bytes.fromhex("01 10 00 f0 ff 2c 01"))
    split.feed(bytes.fromhex("02 9c ff 64 00 00 00"))
    combined.feed(bytes.fromhex("01 10 00 f0 ff 2c 01 9c ff 64 00 00 00"))
    assert split.channels == combined.channels
    assert split.channels["tx"] == pytest.approx(16 / 350) and split.channels["rx"] == pytest.approx(-100 / 350)


def test_deflection_inside_the_deadband_does_not_move_the_arm(replay_device):
    just_inside = round(0.9 * CFG.deadband * 350)  # counts, along HID x
    records = [{"t": 0.0, "hid": "01 " + just_inside.to_bytes(2, "little", signed=True).hex(" ") + " 00 00 00 00"}]
    cmd = replay_device("spacemouse", records).poll(0.0)
    np.testing.assert_array_equal(cmd.action[:6], 0.0)
    assert not cmd.intervening


def test_a_button_tap_between_two_polls_still_toggles_the_gripper(replay_device):
    taps = [{"t": 0.01, "hid": "03 01"}, {"t": 0.02, "hid": "03 00"},  # left button, pressed and released
            {"t": 0.21, "hid": "03 01"}, {"t": 0.22, "hid": "03 00"}]
    device = replay_device("spacemouse", taps)
    first = device.poll(0.1)
    assert Button.gripper_toggle in first.pressed and first.action[6] == 1.0 and not first.held
    assert device.poll(0.15).action[6] == 1.0  # no new press: stays closed
    assert device.poll(0.3).action[6] == 0.0


def test_right_button_starts_and_stops_episodes(replay_device):
    cmd = replay_device("spacemouse", [{"t": 0.0, "hid": "03 02"}]).poll(0.0)
    assert {Button.start_stop, Button.accept} <= cmd.pressed and Button.start_stop in cmd.held


def test_reports_without_motion_are_ignored(replay_device):
    device = replay_device("spacemouse", [{"t": 0.0, "hid": "17 64 00"}, {"t": 0.0, "hid": "04 01"}])  # battery, LED
    cmd = device.poll(0.0)
    np.testing.assert_array_equal(cmd.action[:6], 0.0)
    assert device.parser.n_ignored == 2 and device.parser.n_reports == 0


def test_a_deflected_puck_that_stops_streaming_stops_the_arm(replay_device):
    # pushed, then nothing: the release report was lost (radio dropout); motion must not continue
    device = replay_device("spacemouse", COMPACT_PUSH_AWAY[:4])
    assert device.poll(0.1).action[0] == pytest.approx(FULL_M)
    stale = device.poll(0.05 + CFG.stale_after_s + 0.01)
    assert stale.status is DeviceStatus.stale and not stale.intervening
    np.testing.assert_array_equal(stale.action[:6], 0.0)


def test_unplugging_stops_the_arm_and_releases_everything_until_it_returns(replay_device):
    records = [*COMPACT_PUSH_AWAY[:2], {"t": 0.05, "hid": "03 01"}, {"t": 0.1, "disconnect": "unplugged"},
               {"t": 0.5, "hid": "02 00 00 00 00 00 00"}]
    device = replay_device("spacemouse", records)
    assert device.poll(0.0).action[0] > 0
    lost = device.poll(0.2)
    assert lost.status is DeviceStatus.disconnected and not lost.pressed and not lost.held
    np.testing.assert_array_equal(lost.action[:6], 0.0)
    assert device.poll(0.3).status is DeviceStatus.disconnected  # stays lost while nothing arrives
    back = device.poll(0.6)
    assert back.status is DeviceStatus.ok and not back.motion_active  # the push before unplugging is forgotten


def test_hidapi_without_a_spacemouse_says_what_to_check():
    pytest.importorskip("hid")
    from teleop.spacemouse import find_spacemice

    if find_spacemice():
        pytest.skip("a real SpaceMouse is attached")
    device = make_device("spacemouse")  # the live hidapi source
    with pytest.raises(DeviceDisconnectedError, match="no 3Dconnexion device found"):
        device.connect()
