"""Teleoperating the twin: collection sessions, device loss, interventions, and the live view, end to end.

Every motion here starts as raw SpaceMouse HID reports (hand-written or from the scripted operator) and goes
through the real parser, mapping and watchdog, then ``env.step`` and the env's SafeRobot.
"""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from controllers.safety import STALE_HOLD
from robot_learning.cli.main import main
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.sessions.collect import dataset_specs
from sim.env import TwinEnv
from sim.experts import make_expert
from teleop import DeviceStatus, default_config, make_device
from teleop.intervention import intervention_action
from teleop.live_view import LatestFrame, LiveView, ViewStatus, display_available
from teleop.replay import ReplaySource
from teleop.scripted import Faults, ScriptedSpaceMouse
from teleop.session import (
    SessionState,
    StepClock,
    TeleopCollectSession,
    TeleopSessionConfig,
    run_teleop_collection,
)

CFG = default_config("spacemouse")
SIZE = (64, 48)


@pytest.fixture(scope="module")
def env():
    twin = TwinEnv(task="lift", image_size=SIZE)
    yield twin
    twin.close()


def session_for(env: TwinEnv, source, tmp_path: Path, script=None, countdown_s: float = 0.3):
    device = make_device("spacemouse", source=source).connect()
    store = EpisodeStore.open_or_create(tmp_path / "teleop.zarr", dataset_specs(env), {"cell": "c", "task": "lift"},
                                        durable=False)
    config = TeleopSessionConfig(operator="tester", countdown_s=countdown_s, seed=3, device_lost_timeout_s=5.0)
    sinks = (LatestFrame(),)
    return TeleopCollectSession(env, device, store, config, StepClock(10.0), sinks, script), store, sinks[0]


def tcp_m(env: TwinEnv) -> np.ndarray:
    return env.robot.read_state().tcp_position_m.copy()


def test_scripted_operator_collects_a_lift_and_its_raw_stream_replays_bit_for_bit(tmp_path: Path):
    stream = tmp_path / "operator.jsonl"
    report = run_teleop_collection(str(tmp_path / "live.zarr"), "scripted", n_episodes=1, image_size=SIZE,
                                   countdown_s=0.5, record_input=str(stream), view_mp4=str(tmp_path / "view.mp4"),
                                   screenshot=str(tmp_path / "view.png"), window=False)
    assert [(o.kept, o.success, o.stop_reason) for o in report.outcomes] == [(True, True, "success")]
    with EpisodeStore.open(tmp_path / "live.zarr") as store:
        info = store.episode_info(0)
        assert (info["operator"], info["device"], info["success"]) == ("scripted_operator", "spacemouse", True)
        live_actions = store.get_episode(0, ["action"])["action"]
    assert np.abs(live_actions[:, :3]).max() <= CFG.max_translation_m_per_step + 1e-6
    assert iio.imread(tmp_path / "view.png").shape[2] == 3
    assert len(iio.imread(tmp_path / "view.mp4")) == report.ticks

    assert main(["teleop", "--device", f"replay:{stream}", "--task", "lift", "--episodes", "1", "--countdown", "0.5",
                 "--image-size", f"{SIZE[0]}x{SIZE[1]}", "--out", str(tmp_path / "replayed.zarr"), "--headless"]) == 0
    with EpisodeStore.open(tmp_path / "replayed.zarr") as store:
        np.testing.assert_array_equal(store.get_episode(0, ["action"])["action"], live_actions)
        assert store.episode_info(0)["device"] == "replay(spacemouse)"


def test_a_hand_written_stream_drives_forward_then_closes_the_gripper(env, tmp_path: Path):
    push_away = "01 00 00 a2 fe 00 00 00 00 00 00 00 00"  # combined report, ty = -350: full speed forward
    records = [{"t": 0.05, "hid": "03 02"}, {"t": 0.06, "hid": "03 00"}]  # START (right button)
    records += [{"t": 0.45 + 0.1 * k, "hid": push_away} for k in range(10)]  # recording from 0.4 s: 1 s of push
    records += [{"t": 1.45, "hid": "01" + " 00" * 12}, {"t": 1.55, "hid": "03 01"}, {"t": 1.56, "hid": "03 00"}]
    session, store, _ = session_for(env, ReplaySource(records, disconnect_at_end=False), tmp_path)
    for _ in range(5):  # reset (0 s), ready (START read at 0.1 s), countdown (0.3 s) until GO at 0.4 s
        session.tick()
    assert session.state is SessionState.recording
    start_m = tcp_m(env)
    while session.clock.now_s() < 2.5:
        session.tick()
    moved_m = tcp_m(env) - start_m
    # 10 steps of full deflection ask for 0.2 m along base +x; the safety filter's acceleration limit costs a little
    assert 0.17 < moved_m[0] < 0.205 and np.abs(moved_m[1:]).max() < 0.005
    assert session.last_command.action[6] == 1.0 and env.robot.read_state().gripper_width_m < 0.01
    session.finish()
    assert store.n_episodes == 0 and session.outcomes[0].stop_reason == "session ended"  # never half-stored
    store.close()


def lift_intent(env: TwinEnv):
    return lambda attempt: make_expert(env.cell, env.task_config, seed=attempt).act


def test_unplugging_mid_motion_stops_the_arm_drops_the_episode_and_the_watchdog_holds(env, tmp_path: Path):
    script = ScriptedSpaceMouse(CFG, lift_intent(env), faults=Faults(disconnect_at_s=1.2, reconnect_at_s=3.0))
    session, store, view = session_for(env, script, tmp_path, script)
    positions = []
    while session.clock.now_s() < 1.2:
        session.tick()
        positions.append(tcp_m(env))
    assert session.state is SessionState.recording
    assert np.linalg.norm(positions[-1] - positions[-2]) > 0.005  # moving at speed when the cable goes
    session.tick()
    assert session.state is SessionState.device_lost and session.last_command.status is DeviceStatus.disconnected
    assert store.n_episodes == 0 and session.outcomes[-1].stop_reason == "device lost"
    lost_at_m = tcp_m(env)
    for _ in range(8):  # 0.8 s without any command: past the 0.5 s command timeout
        session.tick()
    assert np.linalg.norm(tcp_m(env) - lost_at_m) < 0.02  # stopped within the motion already commanded
    still_m = tcp_m(env)
    session.tick()
    assert np.linalg.norm(tcp_m(env) - still_m) < 1e-4  # at rest
    assert STALE_HOLD in env.safe_robot.last_result.violations  # the SafeRobot watchdog is holding the arm
    while session.clock.now_s() < 3.2:
        session.tick()
    assert session.state in (SessionState.ready, SessionState.countdown)  # back: a fresh scene, a fresh start
    store.close()


def test_a_device_that_goes_silent_while_deflected_stops_the_arm(env, tmp_path: Path):
    script = ScriptedSpaceMouse(CFG, lift_intent(env), faults=Faults(silent_from_s=1.2))
    session, store, _ = session_for(env, script, tmp_path, script)
    while session.clock.now_s() < 1.2 + CFG.stale_after_s + 0.25:
        session.tick()
    assert session.state is SessionState.recording and session.last_command.status is DeviceStatus.stale
    before_m = tcp_m(env)
    session.tick()
    session.tick()
    assert np.linalg.norm(tcp_m(env) - before_m) < 1e-3
    np.testing.assert_array_equal(session.last_command.action[:6], 0.0)
    session.finish()
    store.close()


def test_interventions_override_the_policy_only_while_the_operator_acts():
    push = "01 00 00 a2 fe 00 00 00 00 00 00 00 00"
    records = [{"t": 0.15, "hid": push}, {"t": 0.25, "hid": push}, {"t": 0.35, "hid": "01" + " 00" * 12},
               {"t": 0.6, "disconnect": "unplugged"}]
    device = make_device("spacemouse", source=ReplaySource(records, disconnect_at_end=False)).connect()
    obs = {"gripper_width": np.array([0.085], np.float32)}
    policy = np.array([0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 1.0], np.float32)  # the policy holds the cube closed
    action, intervening = intervention_action(obs, device, 0.1, policy)
    assert not intervening and np.array_equal(action, policy)
    action, intervening = intervention_action(obs, device, 0.2, policy)
    assert intervening and action[0] == pytest.approx(CFG.max_translation_m_per_step) and action[1] == 0.0
    assert action[6] == 1.0  # taking over adopts the policy's closed gripper instead of snapping it open
    action, intervening = intervention_action(obs, device, 0.4, policy)
    assert not intervening and np.array_equal(action, policy)
    action, intervening = intervention_action(obs, device, 0.7, policy)
    assert not intervening and np.array_equal(action[:6], np.zeros(6)) and action[6] == 1.0  # device gone: hold


def test_the_live_view_renders_headless_with_state_countdown_and_device_health(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_available()
    view = LiveView(["cam_a", "cam_b"], tile_height_px=120, panel_height_px=130)
    images = {"cam_a_rgb": np.full((48, 64, 3), 120, np.uint8), "cam_b_rgb": np.full((48, 48, 3), 60, np.uint8)}
    ready = view.render(images, ViewStatus(state="ready"))
    assert ready.shape == (120 + 130, 160 + 120, 3)
    counting = view.render(images, ViewStatus(state="countdown", countdown_s=2.0))
    assert np.abs(counting[:120].astype(int) - ready[:120]).sum() > 0  # the big countdown digit is drawn
    recording = view.render(images, ViewStatus(state="recording", device_status="stale"))
    assert tuple(recording[1, 60]) == (230, 40, 40)  # the red "recording" frame
