"""The episodes of an online fine-tuning session on the robot graph (``finetune_session_node``), without ROS.

One episode: a scripted reset to the cell's home through the controller and its safety filter; the scene reset
(the operator's confirmation on the robot, the twin's own reset in sim); the policy node runs base + residual
and records every step; the episode ends on a success signal, an operator's label, or the task's horizon; the
policy node commits it with its label. A person can pause (the policy stops commanding: the controller's
watchdog holds the arm), resume, or abort the episode (discarded, never committed).

Where success comes from is pluggable and named: ``operator`` (a service or a teleop button), ``topic`` (any
node publishing a Bool: a reward or success model, the object-state estimator), or ``twin`` (the simulator's
own task success: sim only, refused unless the session runs on the twin). An operator's label is taken in every
mode: a person's word wins. The loop talks to the graph only through :class:`SessionIO`, which the node
implements with topics and services and a test can implement with plain Python.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

from pydantic import ValidationInfo, field_validator

from ros_support.params import CELL_DESCRIPTION, TASK_DESCRIPTION, CellName, Field, NodeParams, TaskName

SuccessSource = Literal["operator", "topic", "twin"]


class FinetuneSessionParams(NodeParams):
    """``finetune_session_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    task: TaskName = Field("peg_insert", description=TASK_DESCRIPTION)
    sim: bool = Field(False, description="the graph runs on the twin (use_sim:=true): allows success_source twin "
                      "and auto_confirm_reset")
    auto_confirm_reset: bool = Field(False, description="sim only: the twin's ~/reset is the scene reset, no operator")
    episodes: int = Field(20, ge=1, description="run until the store holds this many episodes (a restart runs the "
                          "rest)")
    success_source: SuccessSource = Field("operator", description=(
        "operator: ~/label service or a teleop button; topic: std_msgs/Bool on success_topic (a reward/success "
        "model or the object-state estimator); twin: the simulator's task success (sim only)"))
    success_topic: str = Field("/manip/success", description="std_msgs/Bool in (success_source topic)")
    twin_success_topic: str = Field("/sim_node/task_success", description="std_msgs/Bool in (success_source twin)")
    operator_label_topic: str = Field("/manip/operator_label",
                                      description="std_msgs/Bool in: an operator's label from a teleop button")
    label_timeout_s: float = Field(30.0, ge=0.0, le=3600.0, description=(
        "success_source operator: how long to wait for a label once the horizon is reached [s]; then failure"))
    policy_node: str = Field("finetune_policy_node", description="name of the policy node whose services run episodes")
    sim_reset_service: str = Field("/sim_node/reset", description="std_srvs/Trigger that resets the twin's scene")
    tcp_pose_topic: str = Field("/tcp_pose", description="geometry_msgs/PoseStamped in (base frame)")
    target_pose_topic: str = Field("/manip/target_pose", description="absolute TCP targets out to the controller")
    gripper_topic: str = Field("/manip/gripper_closure", description="std_msgs/Float64 closure out to the controller")
    home_tolerance_m: float = Field(0.01, gt=0.0, le=0.2, description="homing ends within this distance [m]")
    home_timeout_s: float = Field(20.0, gt=0.0, le=300.0, description="homing gives up after this long [s]")

    @field_validator("success_source")
    @classmethod
    def _twin_only_in_sim(cls, value: str, info: ValidationInfo) -> str:
        if value == "twin" and not info.data.get("sim", False):
            raise ValueError("success_source twin reads the simulator's task success, which the robot does not "
                             "have: use operator or topic on the robot (twin only with use_sim:=true)")
        return value

    @field_validator("auto_confirm_reset")
    @classmethod
    def _auto_confirm_only_in_sim(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("sim", False):
            raise ValueError("auto_confirm_reset skips the operator's confirmation that the scene is reset: sim only")
        return value


@dataclass
class Progress:
    """What the policy node reports about the running episode."""

    running: bool = False
    steps: int = 0
    horizon_reached: bool = False
    interventions: int = 0
    weights_version: int = -1


class SessionIO(Protocol):
    def discard(self) -> None: ...
    def home(self) -> bool: ...
    def reset_scene(self) -> None: ...
    def begin(self) -> tuple[int, int]: ...  # (episode index, weights version)
    def end(self, success: bool) -> int | None: ...
    def hold(self, on: bool) -> None: ...
    def progress(self) -> Progress: ...
    def publish(self, status: dict) -> None: ...


@dataclass
class SessionStatus:
    phase: str = "starting"
    episode: int = -1
    step: int = 0
    weights_version: int = -1
    paused: bool = False
    outcomes: list[dict] = field(default_factory=list)  # per episode of this run: index, success, steps, ...
    success_source: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class EpisodeLoop:
    """The session's control flow; labels, confirmations and pause/resume/abort arrive from other threads."""

    def __init__(self, params: FinetuneSessionParams, io: SessionIO, poll_s: float = 0.05) -> None:
        self.params, self.io, self.poll_s = params, io, poll_s
        self.status = SessionStatus(success_source=params.success_source)
        self._lock = threading.Lock()
        self._label: bool | None = None
        self._confirmed = threading.Event()
        self._paused = False
        self._abort = False
        self._running_since = 0.0
        self.stop = threading.Event()

    # ------------------------------------------------------------------ inputs (any thread)
    def offer_success(self, source: str, value: bool) -> bool:
        """A success signal from ``source`` (``operator`` always counts; others only if configured); True if
        taken. An automatic source only ever ends an episode as a success: its silence is not a failure."""
        with self._lock:
            if self.status.phase != "running":
                return False
            if source == "operator":
                self._label = bool(value)
                return True
            if time.monotonic() - self._running_since < 0.3:  # a signal still in flight from the last scene
                return False
            if source == self.params.success_source and value:
                self._label = True
                return True
            return False

    def confirm_reset(self) -> bool:
        if self.status.phase != "awaiting_reset_confirmation":
            return False
        self._confirmed.set()
        return True

    def pause(self, on: bool) -> str:
        """Pause or resume: a running episode holds at once; between episodes, the next one waits (a homing
        already under way finishes: it is the controller's scripted, speed-limited move home)."""
        with self._lock:
            self._paused = on
        self.status.paused = on
        self.io.publish(json.loads(self.status.to_json()))  # the live view shows it now, not with the next change
        return "paused: the policy stops commanding, the controller holds" if on else "resumed"

    def abort(self) -> bool:
        with self._lock:
            if self.status.phase not in ("running", "awaiting_reset_confirmation"):
                return False
            self._abort = True
            self._confirmed.set()
            return True

    # ------------------------------------------------------------------ the loop (its own thread)
    def _set_phase(self, phase: str) -> None:
        self.status.phase = phase
        self.io.publish(json.loads(self.status.to_json()))

    def _wait_while_paused(self) -> bool:
        """Between episodes: hold here while paused; False if the session stops meanwhile."""
        while self._paused:
            if self.stop.wait(0.05):
                return False
        return not self.stop.is_set()

    def run(self) -> None:
        self.io.discard()  # a restarted session never continues an episode it did not start
        while not self.stop.is_set():
            if not self._wait_while_paused():
                return
            self._set_phase("homing")
            self.io.home()
            self.io.reset_scene()
            self._confirmed.clear()
            self._abort = False
            if not self.params.auto_confirm_reset:
                self._set_phase("awaiting_reset_confirmation")
                while not self._confirmed.wait(0.2):
                    if self.stop.is_set():
                        return
            if self._abort or not self._wait_while_paused():
                continue
            with self._lock:
                self._label = None
                self.status.phase = "running"
                self._running_since = time.monotonic()
            index, version = self.io.begin()
            if index >= self.params.episodes:
                self.io.discard()
                self._set_phase("done")
                return
            self.status.episode, self.status.weights_version, self.status.step = index, version, 0
            self._set_phase("running")
            outcome = self._run_episode(index)
            if outcome is not None:
                self.status.outcomes.append(outcome)
            if outcome is not None and outcome["committed"] is not None and outcome["committed"] + 1 >= \
                    self.params.episodes:
                self._set_phase("done")
                return

    def _run_episode(self, index: int) -> dict | None:
        started, held, published = time.monotonic(), False, time.monotonic()
        horizon_at: float | None = None
        while not self.stop.is_set():
            if self._abort:
                self.io.discard()
                with self._lock:
                    self.status.phase = "aborted"
                return {"index": index, "committed": None, "aborted": True}
            if self._paused != held:
                held = self._paused
                self.io.hold(held)
            progress = self.io.progress()
            if progress.steps != self.status.step and time.monotonic() - published >= 1.0:  # the live view's step
                self.status.step, published = progress.steps, time.monotonic()
                self.io.publish(json.loads(self.status.to_json()))
            self.status.step = progress.steps
            with self._lock:
                label = self._label
            if label is not None:
                break
            if progress.horizon_reached:
                horizon_at = horizon_at or time.monotonic()
                waiting = self.params.success_source == "operator" and \
                    time.monotonic() - horizon_at < self.params.label_timeout_s
                if not waiting:
                    break
            time.sleep(self.poll_s)
        else:
            return None
        with self._lock:
            success, self.status.phase = bool(self._label), "committing"
        progress = self.io.progress()
        committed = self.io.end(success)
        return {"index": index, "committed": committed, "success": success, "steps": progress.steps,
                "interventions": progress.interventions, "weights_version": self.status.weights_version,
                "wall_s": round(time.monotonic() - started, 2), "aborted": False}
