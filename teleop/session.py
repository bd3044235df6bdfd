"""Collect demonstrations by teleoperation, and serve human interventions during online fine-tuning.

A session is a small state machine ticked at the policy rate::

    reset -> ready --start--> countdown -> recording --stop/success/horizon--> review --accept/discard--> reset
                                              \\--device lost--> device_lost --device back--> reset

Every motion goes through ``env.step`` (so through the env's SafeRobot). When the device disconnects the
episode is discarded, the last step is a zero-delta hold, and the session stops commanding altogether, so the
SafeRobot watchdog holds the arm until the device returns. Steps are stored exactly like the expert collector's
(:func:`robot_learning.sessions.collect.dataset_specs`), with the operator, device and stop reason per episode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from controllers.actions import ACTION_DIM, hold_action
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.episode_writer import EpisodeWriter
from teleop.config import Button
from teleop.core import DeviceStatus, TeleopCommand, TeleopDevice
from teleop.intervention import intervention_action  # noqa: F401  (the same device serves RL sessions)
from teleop.live_view import FrameSink, LiveView, ViewStatus

log = logging.getLogger(__name__)


class SessionState(str, Enum):
    reset = "reset"
    ready = "ready"
    countdown = "countdown"
    recording = "recording"
    review = "review"
    device_lost = "device_lost"
    done = "done"


class StepClock:
    """Session time that advances one policy period per tick, as fast as the twin runs (replay, scripts)."""

    def __init__(self, policy_hz: float) -> None:
        self.period_s, self.ticks = 1.0 / policy_hz, 0

    def now_s(self) -> float:
        return self.ticks * self.period_s

    def advance(self) -> None:
        self.ticks += 1


class WallClock(StepClock):
    """Session time from the wall clock, paced to the policy rate (a person at a live device)."""

    def __init__(self, policy_hz: float) -> None:
        super().__init__(policy_hz)
        self._start = time.monotonic()

    def now_s(self) -> float:
        return time.monotonic() - self._start

    def advance(self) -> None:
        self.ticks += 1
        time.sleep(max(0.0, self.ticks * self.period_s - self.now_s()))


@dataclass
class EpisodeOutcome:
    attempt: int
    seed: int
    kept: bool
    success: bool
    n_steps: int
    stop_reason: str


@dataclass
class TeleopSessionConfig:
    operator: str = "operator"
    countdown_s: float = 3.0
    seed: int = 0
    label_source: str = "twin"  # "twin": success from the twin's judge; "operator": accept means success
    device_lost_timeout_s: float = 30.0
    extra_info: dict[str, Any] = field(default_factory=dict)


def _twin_time_s(env: Any, fallback_s: float) -> float:
    data = getattr(env, "data", None)
    return float(data.time) if data is not None else fallback_s


class TeleopCollectSession:
    """Ticks one device against one env and records accepted episodes into ``store``."""

    def __init__(self, env: Any, device: TeleopDevice, store: EpisodeStore, config: TeleopSessionConfig,
                 clock: StepClock, sinks: tuple[FrameSink, ...] = (), operator_script: Any = None,
                 rerun_view: Any = None) -> None:
        if config.label_source not in ("twin", "operator"):
            raise ValueError(f"label_source must be 'twin' or 'operator', got {config.label_source!r}")
        high = env.action_space.high
        device.config.check_against_limits(float(high[0]), float(high[3]))
        self.env, self.device, self.store, self.config, self.clock = env, device, store, config, clock
        self.sinks, self.operator_script = sinks, operator_script
        self.rerun_view = rerun_view  # a robot_learning.viz.rerun_view.RerunView: every recorded step, when given
        names = env.cameras.camera_names if getattr(env, "cameras", None) is not None else []
        self.view = LiveView(names)
        self.state = SessionState.reset
        self.obs: dict[str, np.ndarray] = {}
        self.outcomes: list[EpisodeOutcome] = []
        self.last_command = TeleopCommand(np.zeros(ACTION_DIM, np.float32))
        self.message = ""
        self._episode: EpisodeWriter | None = None
        self._attempt = -1
        self._countdown_end_s = 0.0
        self._success = False
        self._stop_reason = ""
        self._lost_since_s: float | None = None

    @property
    def accepted(self) -> int:
        return sum(o.kept for o in self.outcomes)

    # ------------------------------------------------------------------ the loop
    def run(self, n_episodes: int, max_ticks: int = 100_000) -> list[EpisodeOutcome]:
        """Tick until ``n_episodes`` are kept, the device is gone for good, or ``max_ticks``."""
        for _ in range(max_ticks):
            if self.state is SessionState.done or self.accepted >= n_episodes:
                break
            self.tick()
        self.finish()
        return self.outcomes

    def finish(self) -> None:
        """End the session: an episode still being recorded is discarded, never half-stored."""
        self._discard("session ended")
        self.state = SessionState.done

    @property
    def recording_steps(self) -> int:
        return len(self._episode) if self._episode is not None and self._episode.active else 0

    def tick(self) -> SessionState:
        now_s = self.clock.now_s()
        if self.operator_script is not None:
            self.operator_script.observe(self.obs, self.state.value, self._attempt, self._success)
        cmd = self.device.poll(now_s)
        self.last_command = cmd
        getattr(self, f"_on_{self.state.value}")(cmd, now_s)
        self._render(now_s)
        self.clock.advance()
        return self.state

    def _on_reset(self, cmd: TeleopCommand, now_s: float) -> None:
        seed = self.config.seed + len(self.outcomes)
        self.obs, _ = self.env.reset(seed=seed)
        self.device.sync_gripper(0.0)
        self._success, self.state = False, SessionState.ready
        self.message = "scene reset: press START to begin (on the robot: place the objects first)"

    def _on_ready(self, cmd: TeleopCommand, now_s: float) -> None:
        if self._lost(cmd, now_s):
            return
        if Button.start_stop in cmd.pressed:
            self._countdown_end_s = now_s + self.config.countdown_s
            self.state, self.message = SessionState.countdown, "get ready: recording starts at GO"

    def _on_countdown(self, cmd: TeleopCommand, now_s: float) -> None:
        if self._lost(cmd, now_s):
            return
        if now_s + 1e-9 >= self._countdown_end_s:
            self._attempt += 1
            info = {"seed": self.config.seed + len(self.outcomes), "task": self.env.task_config.name,
                    "operator": self.config.operator, "device": self.device.name, **self.config.extra_info}
            self._episode = self.store.begin_episode(info)
            if self.rerun_view is not None:
                self.rerun_view.start_episode(self._attempt, {"seed": info["seed"], "device": self.device.name})
            self.device.sync_gripper(0.0)
            self.state, self.message = SessionState.recording, "recording: START/STOP ends the episode"

    def _on_recording(self, cmd: TeleopCommand, now_s: float) -> None:
        if cmd.status is DeviceStatus.disconnected:
            self._hold_step()
            self._discard("device lost")
            self._lost(cmd, now_s)
            return
        if Button.start_stop in cmd.pressed:
            self._to_review("operator stopped")
            return
        action = cmd.action
        stamp = _twin_time_s(self.env, now_s)
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self._episode.add_step(**self.obs, action=action, reward=np.float32(reward), timestamp=np.float64(stamp))
        if self.rerun_view is not None:
            self.rerun_view.log_step(self.obs, action, float(reward), t_s=stamp,
                                     safety_counts=self.env.safe_robot.event_counts,
                                     events=["device silent: motion stopped"] if cmd.status is DeviceStatus.stale
                                     else ())
        self.obs, self._success = next_obs, bool(info.get("success", False))
        self.message = ("device silent: motion stopped" if cmd.status is DeviceStatus.stale
                        else "recording: START/STOP ends the episode")
        if terminated or truncated:
            self._to_review("success" if self._success else "horizon")

    def _on_review(self, cmd: TeleopCommand, now_s: float) -> None:
        if cmd.status is DeviceStatus.disconnected:  # nobody can judge the episode: drop it, keep the store clean
            self._discard("device lost before review")
            self._lost(cmd, now_s)
        elif Button.accept in cmd.pressed:
            success = self._success if self.config.label_source == "twin" else True
            n = len(self._episode)
            index = self._episode.commit(success=success)
            self._outcome(True, success, n)
            log.info("episode %d kept as #%d (%d steps, success=%s)", self._attempt, index, n, success)
            self.state = SessionState.reset
        elif Button.discard in cmd.pressed:
            self._discard("operator discarded")
            self.state = SessionState.reset

    def _on_device_lost(self, cmd: TeleopCommand, now_s: float) -> None:
        # No commands at all: the SafeRobot watchdog holds the arm (brakes to rest once commands are stale).
        for _ in range(getattr(self.env, "ticks_per_step", 1)):
            self.env.safe_robot.wait_for_tick()
        if cmd.status is not DeviceStatus.disconnected:
            self.state, self.message = SessionState.reset, "device back: resetting the scene"
            self._lost_since_s = None
        elif now_s - (self._lost_since_s or now_s) > self.config.device_lost_timeout_s:
            self.state, self.message = SessionState.done, "device did not come back: session ended"

    def _on_done(self, cmd: TeleopCommand, now_s: float) -> None:
        pass

    # ------------------------------------------------------------------ helpers
    def _lost(self, cmd: TeleopCommand, now_s: float) -> bool:
        if cmd.status is not DeviceStatus.disconnected:
            return False
        self._lost_since_s = now_s if self._lost_since_s is None else self._lost_since_s
        self.state, self.message = SessionState.device_lost, "device lost: arm held by the watchdog; reconnect it"
        return True

    def _hold_step(self) -> None:
        """One zero-delta step: the arm stops where the last command put it; the gripper keeps its state."""
        gripper = self.env.commanded_target.gripper_closure if hasattr(self.env, "commanded_target") else 0.0
        self.obs, *_ = self.env.step(hold_action(gripper))

    def _to_review(self, reason: str) -> None:
        self._stop_reason = reason
        if self._episode is not None and len(self._episode) == 0:
            self._discard("no steps")
            self.state = SessionState.reset
            return
        verdict = "" if self.config.label_source != "twin" else f" (twin: {'success' if self._success else 'failure'})"
        self.state, self.message = SessionState.review, f"{reason}{verdict}: ACCEPT to keep, DISCARD to drop"

    def _discard(self, reason: str) -> None:
        if self._episode is not None and self._episode.active:
            n = len(self._episode)
            self._episode.discard()
            self._stop_reason = self._stop_reason if reason == "operator discarded" else reason
            self._outcome(False, self._success, n)
            log.info("episode %d discarded (%s)", self._attempt, reason)

    def _outcome(self, kept: bool, success: bool, n_steps: int) -> None:
        self.outcomes.append(EpisodeOutcome(self._attempt, self.config.seed + len(self.outcomes), kept, success,
                                            n_steps, self._stop_reason))
        self._episode, self._stop_reason = None, ""

    def view_status(self, now_s: float) -> ViewStatus:
        high = self.env.action_space.high
        recording = self.state is SessionState.recording
        return ViewStatus(
            state=self.state.value, message=self.message, countdown_s=self._countdown_end_s - now_s,
            episode=max(self._attempt, 0) + int(recording), accepted=self.accepted,
            discarded=len(self.outcomes) - self.accepted, step=self.recording_steps,
            horizon=self.env.task_config.horizon_steps, action=self.last_command.action,
            action_scale=np.asarray(high[:6], float), device=self.device.name,
            device_status=self.last_command.status.value, moving=self.last_command.motion_active,
            operator=self.config.operator, task=self.env.task_config.name,
            success=self._success if self.state in (SessionState.recording, SessionState.review) else None,
        )

    def _render(self, now_s: float) -> None:
        if not self.sinks:
            return
        frame = self.view.render(self.obs, self.view_status(now_s))
        for sink in self.sinks:
            sink.show(frame)


# ---------------------------------------------------------------------------------------------- runner


@dataclass
class TeleopReport:
    path: str
    device: str
    outcomes: list[EpisodeOutcome]
    ticks: int
    wall_s: float
    summary: str

    def __str__(self) -> str:
        kept = [o for o in self.outcomes if o.kept]
        lines = [f"teleop session with {self.device}: {len(kept)} kept, {len(self.outcomes) - len(kept)} discarded "
                 f"({sum(o.success for o in kept)} kept successful); {self.ticks} ticks in {self.wall_s:.1f} s"]
        for o in self.outcomes:
            lines.append(f"  attempt {o.attempt}: {'kept' if o.kept else 'discarded'}  seed {o.seed}  "
                         f"{o.n_steps} steps  success={o.success}  ({o.stop_reason})")
        return "\n".join([*lines, self.summary])


def _device_for(device_spec: str, env: Any, teleop_config: str | None, record_input: str | None, seed: int,
                operator: str) -> tuple[TeleopDevice, Any, str]:
    """(device, scripted operator or None, operator name) for a device name, ``replay:`` or ``scripted``."""
    from sim.experts import make_expert
    from teleop.config import default_config, load_teleop_config
    from teleop.devices import make_device
    from teleop.scripted import ScriptedSpaceMouse

    config = load_teleop_config(teleop_config) if teleop_config else None
    if device_spec != "scripted":
        return make_device(device_spec, config=config, record_to=record_input), None, operator
    config = config or default_config("spacemouse")

    def intent(attempt: int):  # the "person" follows the task's scripted expert, with its noise
        return make_expert(env.cell, env.task_config, seed=seed + 7919 * (attempt + 1)).act

    script = ScriptedSpaceMouse(config, intent)
    device = make_device("spacemouse", config=config, record_to=record_input, source=script)
    return device, script, operator if operator != "operator" else "scripted_operator"


def run_teleop_collection(out: str, device_spec: str = "scripted", cell: str = "franka_3cam", task: str = "lift",
                          n_episodes: int = 1, operator: str = "operator", image_size: tuple[int, int] = (96, 96),
                          seed: int = 0, countdown_s: float = 3.0, view_mp4: str | None = None,
                          screenshot: str | None = None, screenshot_state: str = "recording",
                          record_input: str | None = None, teleop_config: str | None = None,
                          max_ticks: int = 20_000, window: bool | None = None,
                          device_feed: Callable[[TeleopDevice], Callable[[], None]] | None = None,
                          rerun_view: Any = None) -> TeleopReport:
    """Teleoperate the twin: ``device_spec`` is a device name, ``replay:<stream>``, or ``scripted`` (a scripted
    operator on a SpaceMouse). Writes accepted episodes to ``out``; optionally the live view as mp4 and a PNG.

    ``device_feed`` starts what feeds a device driven from outside this process (the ROS teleop subscriber:
    :func:`teleop.ros.twist_joy.start_ros_teleop`, which the CLI passes) and returns its stop; the session
    itself never imports ROS. ``rerun_view``: a :class:`robot_learning.viz.rerun_view.RerunView` that logs every
    recorded step (the caller closes it)."""
    from robot_learning.sessions.collect import dataset_specs
    from sim.env import TwinEnv
    from teleop.live_view import LatestFrame, VideoSink, WindowSink, display_available

    env = TwinEnv(cell=cell, task=task, image_size=image_size)
    try:
        device, operator_script, operator = _device_for(device_spec, env, teleop_config, record_input, seed, operator)
        attrs = {"cell": env.cell.name, "task": env.task_config.name, "instruction": env.task_config.instruction,
                 "source": f"teleop:{device.name}", "policy_hz": env.cell.rates.policy_hz,
                 "image_size": list(image_size)}
        store = EpisodeStore.open_or_create(out, dataset_specs(env), attrs)
    except BaseException:
        env.close()
        raise
    latest = LatestFrame()
    sinks: list[FrameSink] = [latest]
    if view_mp4:
        sinks.append(VideoSink(view_mp4, fps=env.cell.rates.policy_hz))
    if window if window is not None else display_available():
        sinks.append(WindowSink())
    live = not (device_spec == "scripted" or device_spec.startswith("replay:"))
    clock = (WallClock if live else StepClock)(env.cell.rates.policy_hz)
    # A replayed stream ends with a disconnect: that ends the session instead of waiting for a reconnect.
    session_config = TeleopSessionConfig(operator=operator, countdown_s=countdown_s, seed=seed,
                                         device_lost_timeout_s=0.0 if device_spec.startswith("replay:") else 30.0)
    session = TeleopCollectSession(env, device, store, session_config, clock, tuple(sinks), operator_script,
                                   rerun_view=rerun_view)
    start = time.monotonic()
    shot_taken = False
    stop_ros = None
    try:
        with device:
            if device.config.device.value == "ros" and not device_spec.startswith("replay:"):
                if device_feed is None:
                    raise ValueError("the ros teleop device is fed by ROS topics: run it through manip-stack teleop "
                                     "--device ros (which subscribes to them), or replay a recorded stream")
                stop_ros = device_feed(device)
            for _ in range(max_ticks):
                if session.state is SessionState.done or session.accepted >= n_episodes:
                    break
                session.tick()
                # The screenshot shows the first moment of the chosen state deep enough to be informative.
                if screenshot and not shot_taken and session.state.value == screenshot_state and (
                        screenshot_state != "recording" or session.recording_steps >= 12):
                    latest.save_png(screenshot)
                    shot_taken = True
            session.finish()
        summary = store.summary()
    finally:
        if stop_ros is not None:
            stop_ros()
        for sink in sinks:
            sink.close()
        store.close()
        env.close()
    if screenshot and not shot_taken and latest.frame is not None:
        latest.save_png(screenshot)
    return TeleopReport(str(out), device.name, session.outcomes, clock.ticks, time.monotonic() - start, summary)
