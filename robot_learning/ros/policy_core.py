"""What ``policy_node`` does without ROS: check a checkpoint against the cell, assemble observations from the
streams, and run :class:`robot_learning.runtime.policy_runner.PolicyRunner` at the policy rate.

Refusing to start is the point of :func:`check_policy_against_cell`: a checkpoint trained on other cameras,
another image size, sim-only inputs (``privileged``) or another cell would otherwise produce actions from the
wrong inputs. Each problem is named, with what the cell has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np

from controllers.actions import ACTION_DIM, DELTA_DIMS
from controllers.observations import observation_schema, rgb_key
from hardware_configs.schema import CellConfig
from robot_learning.data.robot_steps import MissingStreamsError, StepBuilder
from ros_support.params import CELL_DESCRIPTION, CellName, Field, NodeParams

if TYPE_CHECKING:
    from robot_learning.policies.policy import Policy

class PolicyParams(NodeParams):
    """``policy_node``'s parameters."""

    cell: CellName = Field("franka_3cam", description=CELL_DESCRIPTION)
    checkpoint: str = Field(description="policy checkpoint (.pt) written by manip-stack train")
    device: str = Field("auto", description="cpu, cuda[:N] or auto")
    seed: int = Field(0, ge=0, description="sampling seed of the diffusion policy")
    runtime: Literal["auto", "fast", "eager"] = Field(
        "auto", description="diffusion sampling: auto (fast where supported, else eager), fast or eager")
    latency_margin_s: float = Field(0.0, ge=0.0, le=1.0,
                                    description="actions due before now + margin are dropped as late [s]")
    replan_remaining: int = Field(0, ge=0, description="ask for the next chunk when this many actions remain")
    chunk_join: Literal["none", "blend", "rtc"] = Field(
        "none", description="how a new chunk joins the executing one (robot_learning/runtime/chunking.py): rtc "
        "(inpainting towards the actions still queued; set replan_remaining to the inference delay in policy "
        "steps), blend (crossfade) or none (replace)")
    chunk_decay_steps: int = Field(4, ge=0, le=64, description="steps after the committed actions over which the old "
                                   "chunk's pull decays (0: to the end of the overlap, the RTC paper's mask)")
    sync_tolerance_s: float = Field(0.06, ge=0.0, le=1.0,
                                    description="largest stamp difference within an observation [s]")
    max_observation_age_s: float = Field(0.3, ge=0.001, description="an observation older than this is not acted "
                                         "on [s] (the controller's watchdog then holds)")
    action_topic: str = Field("/manip/action",
                              description="delta actions out (JointTrajectory over the action names)")
    joint_states_topic: str = Field("/joint_states", description="sensor_msgs/JointState in")
    tcp_pose_topic: str = Field("/tcp_pose", description="geometry_msgs/PoseStamped in")
    joint_prefix: str = Field("", description="prefix of the arm's joint names")
    gripper_joint: str = Field("gripper_width", description="joint_states entry of the gripper")
    gripper_joint_scale: float = Field(1.0, ge=1e-6, description="opening [m] = scale * position")
    task: str = Field("", description="task name or .yaml whose scene a policy reading the estimate sees "
                      "(default: the task it was trained on)")
    estimated_topic: str = Field("/manip/estimated", description="object_state_node's estimated keys in "
                                 "(std_msgs/Float64MultiArray), for a policy that reads them")
    estimate_max_age_s: float = Field(0.3, ge=0.01, le=2.0, description="the newest estimate up to this old "
                                      "joins an observation [s] (the estimator is slower than the cameras)")



class PolicyMismatchError(ValueError):
    """The checkpoint cannot run on this cell; the message names every mismatch."""


def estimated_dims_for(policy: Policy, task: str = "") -> dict[str, int] | None:
    """The estimated keys' lengths for the task's scene when ``policy`` reads any (None when it reads none)."""
    from controllers.observations import ESTIMATED_KEYS

    if not any(k in ESTIMATED_KEYS for k in policy.obs_keys):
        return None
    from hardware_configs import load_task
    from perception.task_state import TaskStateLayout

    name = task or policy.dataset.get("task")
    if not name:
        raise PolicyMismatchError(f"checkpoint {policy.source} reads the estimated scene but names no task: "
                                  "set the task parameter")
    return TaskStateLayout(load_task(name)).estimated_dims


def check_policy_against_cell(policy: Policy, cell: CellConfig, task: str = "") -> list[str]:
    """The cameras the policy needs; raises :class:`PolicyMismatchError` if the cell cannot feed it."""
    problems = []
    if policy.sim_only:
        problems.append("it is sim-only (trained on the twin's privileged state, which the robot cannot observe)")
    trained_cell = policy.dataset.get("cell")
    if trained_cell is not None and trained_cell != cell.name:
        problems.append(f"trained on cell {trained_cell!r}, this is cell {cell.name!r}")
    cell_cameras = [c.name for c in cell.cameras]
    cameras = [k.removesuffix("_rgb") for k in policy.camera_keys]
    unknown = [c for c in cameras if c not in cell_cameras]
    if unknown:
        problems.append(f"cameras {unknown} are not in the cell, which has {cell_cameras}")
    if problems:
        raise PolicyMismatchError(f"checkpoint {policy.source} does not fit: " + "; ".join(problems))
    size = policy.image_size or (96, 96)
    schema = observation_schema(cell, cameras, size, depth=False, estimated_dims=estimated_dims_for(policy, task))
    try:
        policy.check_observation({k: key.shape for k, key in schema.items()})
    except ValueError as exc:  # ObservationMismatchError: keys the robot cannot observe (e.g. privileged)
        raise PolicyMismatchError(str(exc)) from None
    return cameras


class PolicyLoop:
    """Streams → observation at the newest reference frame → runner → the action due now, stamped."""

    def __init__(self, policy: Policy, cell: CellConfig, params: PolicyParams, clock: Callable[[], float]) -> None:
        from robot_learning.runtime.policy_runner import DeltaHold, PolicyRunner, RunnerConfig

        self.cameras = check_policy_against_cell(policy, cell, params.task)
        self.policy, self.cell, self.params = policy, cell, params
        size = policy.image_size or (96, 96)
        self.estimated_dims = estimated_dims_for(policy, params.task)
        self.builder = StepBuilder(cell, self.cameras, size, depth=False, tolerance_s=params.sync_tolerance_s,
                                   estimated_dims=self.estimated_dims, estimate_max_age_s=params.estimate_max_age_s)
        config = RunnerConfig(period_s=1.0 / cell.rates.policy_hz, latency_margin_s=params.latency_margin_s,
                              replan_remaining=params.replan_remaining)
        joiner = None
        if params.chunk_join != "none":
            from robot_learning.runtime.chunking import ChunkJoiner, horizon_sampler

            joiner = ChunkJoiner(horizon_sampler(policy), params.chunk_join, config.period_s, params.replan_remaining,
                                 params.chunk_decay_steps or None)
        self.runner = PolicyRunner(policy, DeltaHold(ACTION_DIM, DELTA_DIMS), config, clock=clock, joiner=joiner)
        self.reference = self.cameras[0] if self.cameras else None
        self._last_obs_t: float | None = None
        self.skipped: dict[str, int] = {}

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def tick(self, now_s: float) -> tuple[float, np.ndarray, str] | None:
        """(observation stamp, action, source) for this policy period, or None when there is no fresh observation
        (nothing is sent then: the controller's watchdog holds the arm)."""
        if self.reference is not None:
            t = self.builder.buffers[rgb_key(self.reference)].latest_stamp()
        else:
            t = self.builder.buffers["tcp"].latest_stamp()
        if t is None:
            self._skip("no_observation")
            return None
        if now_s - t > self.params.max_observation_age_s:
            self._skip("stale_observation")
            return None
        if self._last_obs_t is not None and t <= self._last_obs_t:
            self._skip("no_new_frame")
            return None
        try:
            obs = self.builder.observation(t)
        except MissingStreamsError as exc:
            self._skip("missing:" + ",".join(exc.streams))
            return None
        self._last_obs_t = t
        self.runner.observe({k: obs[k] for k in self.policy.obs_keys}, t)  # due times count from the frame
        item = self.runner.next_action(now_s)
        return t, np.asarray(item.action, dtype=np.float64), item.source

    def close(self) -> None:
        self.runner.close()
