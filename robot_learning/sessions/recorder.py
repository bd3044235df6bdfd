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
from perception.task_state import TaskStateLayout
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.data.episode_writer import EpisodeWriter, StepValidationError
from robot_learning.data.robot_steps import MissingStreamsError, StepBuilder
from ros_support.params import CELL_DESCRIPTION, TASK_DESCRIPTION, CellName, Field, NodeParams, TaskName


class SessionParams(NodeParams):
    """``session_node``'s parameters (what :class:`SessionRecorder` is built from)."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    task: TaskName = Field("lift", description=TASK_DESCRIPTION)
    store_path: str = Field(description="zarr episode store to append to (created if absent)")
    cameras: list[str] = Field([], description="cameras to record; empty = every camera of the cell")
    image_width: int = Field(96, ge=1, description="stored image width [px] (the policy's input size)")
    image_height: int = Field(96, ge=1, description="stored image height [px]")
    record_depth: bool = Field(False, description="also store aligned depth [m]")
    sync_tolerance_s: float = Field(0.06, ge=0.0, le=1.0,
                                    description="largest stamp difference between a step's streams [s]")
    depth_scale_m: float = Field(0.001, ge=1e-6, description="metres per count of 16UC1 depth")
    action_topic: str = Field("/manip/action", description="delta actions (a step is recorded per action)")
    joint_states_topic: str = Field("/joint_states", description="sensor_msgs/JointState in")
    tcp_pose_topic: str = Field("/tcp_pose", description="geometry_msgs/PoseStamped in")
    joint_prefix: str = Field("", description="prefix of the arm's joint names")
    gripper_joint: str = Field("gripper_width", description="joint_states entry of the gripper")
    gripper_joint_scale: float = Field(1.0, ge=1e-6, description="opening [m] = scale * position")
    operator: str = Field("", description="who records (stored with each episode)")
    durable: bool = Field(True, description="fsync each commit (survives power loss, not just a killed process)")
    record_estimates: bool = Field(False, description="also store the scene as the robot estimates it (estimated, "
                                   "estimated_relative, estimate_confidence from object_state_node): a step waits "
                                   "for an estimate at most estimate_max_age_s old")
    estimated_topic: str = Field("/manip/estimated", description="object_state_node's estimated keys in")
    estimate_max_age_s: float = Field(0.3, gt=0.0, le=2.0, description="oldest estimate a step may use [s] (the "
                                      "estimator runs slower than the cameras)")



class SessionError(RuntimeError):
    """A request that does not fit the session's state (start while recording, accept while idle...)."""


class SessionRecorder:
    def __init__(self, params: SessionParams) -> None:
        self.cell = load_cell(params.cell)
        self.task = load_task(params.task)
        cameras = params.cameras or [c.name for c in self.cell.cameras]
        estimated_dims = TaskStateLayout(self.task).estimated_dims if params.record_estimates else None
        self.builder = StepBuilder(self.cell, cameras, (params.image_width, params.image_height),
                                   params.record_depth, params.sync_tolerance_s, estimated_dims=estimated_dims,
                                   estimate_max_age_s=params.estimate_max_age_s)
        attrs = {"cell": self.cell.name, "task": self.task.name, "instruction": self.task.instruction,
                 "source": "ros2_session", "policy_hz": self.cell.rates.policy_hz,
                 "image_size": [params.image_width, params.image_height]}
        self.store = EpisodeStore.open_or_create(Path(params.store_path), self.builder.specs, attrs,
                                                 durable=params.durable)
        self.operator = params.operator
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
