"""The recording session behind ``session_node``: an episode state machine over the crash-safe EpisodeStore.

``idle --start--> recording --stop--> stopped --accept(success)/discard--> idle`` (accept or discard also end a
recording directly). Steps live in memory until ``accept`` commits the episode whole; the store's commit
protocol makes a commit durable when ``accept`` returns, so killing the process loses only the episode being
recorded, never a committed one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hardware_configs import load_cell, load_task
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.episode_writer import EpisodeWriter, StepValidationError
from robot_learning.data.robot_steps import MissingStreamsError, StepBuilder
from ros_support.params import CELL, REQUIRED, TASK, ParamSpec

SESSION_PARAMETERS: tuple[ParamSpec, ...] = (
    CELL,
    TASK,
    ParamSpec("store_path", "string", REQUIRED, "zarr episode store to append to (created if absent)"),
    ParamSpec("cameras", "string_array", [], "cameras to record; empty = every camera of the cell"),
    ParamSpec("image_width", "int", 96, "stored image width [px] (the policy's input size)", minimum=1),
    ParamSpec("image_height", "int", 96, "stored image height [px]", minimum=1),
    ParamSpec("record_depth", "bool", False, "also store aligned depth [m]"),
    ParamSpec("sync_tolerance_s", "double", 0.06, "largest stamp difference between a step's streams [s]",
              minimum=0.0, maximum=1.0),
    ParamSpec("depth_scale_m", "double", 0.001, "metres per count of 16UC1 depth", minimum=1e-6),
    ParamSpec("action_topic", "string", "/manip/action", "delta actions (a step is recorded per action)"),
    ParamSpec("joint_states_topic", "string", "/joint_states", "sensor_msgs/JointState in"),
    ParamSpec("tcp_pose_topic", "string", "/tcp_pose", "geometry_msgs/PoseStamped in"),
    ParamSpec("joint_prefix", "string", "", "prefix of the arm's joint names"),
    ParamSpec("gripper_joint", "string", "gripper_width", "joint_states entry of the gripper"),
    ParamSpec("gripper_joint_scale", "double", 1.0, "opening [m] = scale * position", minimum=1e-6),
    ParamSpec("operator", "string", "", "who records (stored with each episode)"),
    ParamSpec("durable", "bool", True, "fsync each commit (survives power loss, not just a killed process)"),
)


class SessionError(RuntimeError):
    """A request that does not fit the session's state (start while recording, accept while idle...)."""


class SessionRecorder:
    def __init__(self, params: dict[str, Any]) -> None:
        self.cell = load_cell(params["cell"])
        self.task = load_task(params["task"])
        cameras = params["cameras"] or [c.name for c in self.cell.cameras]
        self.builder = StepBuilder(self.cell, cameras, (params["image_width"], params["image_height"]),
                                   params["record_depth"], params["sync_tolerance_s"])
        attrs = {"cell": self.cell.name, "task": self.task.name, "instruction": self.task.instruction,
                 "source": "ros2_session", "policy_hz": self.cell.rates.policy_hz,
                 "image_size": [params["image_width"], params["image_height"]]}
        self.store = EpisodeStore.open_or_create(Path(params["store_path"]), self.builder.specs, attrs,
                                                 durable=params["durable"])
        self.operator = params["operator"]
        self.state = "idle"
        self._episode: EpisodeWriter | None = None
        self.skipped: dict[str, int] = {}
        self._last_stamp: float | None = None

    @property
    def steps(self) -> int:
        return len(self._episode) if self._episode is not None else 0

    def start(self, info: dict[str, Any] | None = None) -> str:
        if self.state != "idle":
            raise SessionError(f"cannot start: an episode is {self.state}; accept or discard it first")
        self._episode = self.store.begin_episode({"task": self.task.name, "operator": self.operator, **(info or {})})
        self.state, self.skipped, self._last_stamp = "recording", {}, None
        return f"recording episode {self.store.n_episodes}"

    def stop(self) -> str:
        if self.state != "recording":
            raise SessionError(f"cannot stop: the session is {self.state}")
        self.state = "stopped"
        return f"stopped after {self.steps} steps; accept or discard"

    def accept(self, success: bool) -> int:
        if self.state == "idle" or self._episode is None:
            raise SessionError("nothing to accept: no episode was started")
        if self.steps == 0:
            raise SessionError(f"the episode has no steps (skipped for missing streams: {self.skipped})")
        index = self._episode.commit(success=success)
        self._episode, self.state = None, "idle"
        return index

    def discard(self) -> str:
        if self._episode is None:
            raise SessionError("nothing to discard")
        steps = self.steps
        self._episode.discard()
        self._episode, self.state = None, "idle"
        return f"discarded {steps} steps"

    def on_action(self, stamp_s: float, action: np.ndarray) -> bool:
        """Record the step at the action's stamp if recording; False (and counted) when streams are missing."""
        if self.state != "recording" or self._episode is None:
            return False
        if self._last_stamp is not None and stamp_s <= self._last_stamp:  # same observation again: one step each
            self.skipped["repeated_stamp"] = self.skipped.get("repeated_stamp", 0) + 1
            return False
        try:
            self._episode.add_step(**self.builder.step(stamp_s, action))
        except MissingStreamsError as exc:
            for name in exc.streams:
                self.skipped[name] = self.skipped.get(name, 0) + 1
            return False
        except StepValidationError:
            self.skipped["invalid"] = self.skipped.get("invalid", 0) + 1
            return False
        self._last_stamp = stamp_s
        return True

    def close(self) -> None:
        self.store.close()  # an episode still open is discarded: only accept() commits
