"""The one contract every runtime asks of a policy: a history of observations in, a chunk of raw actions out.

The policy runner (in process and inside ``policy_node``), the ROS policy core's check against the cell,
evaluation in the twin and the frozen base under residual RL all call a policy through :class:`Policy` and
nothing else, so a trained diffusion policy, a fine-tuned base+residual and a scripted expert are served alike.
What a runtime keeps itself: the observation history of each episode it runs, the queue of actions and their
timing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from controllers.actions import DELTA_DIMS


class ObservationMismatchError(ValueError):
    """Observations that differ from what the policy was trained on (keys, shapes, cameras)."""


def observation_shapes(obs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Shapes of observation arrays, gym spaces or shape tuples."""
    return {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in obs.items()}


class Policy(ABC):
    """Observation history {key: (n_obs_steps, ...)} in, (n, action_dim) raw actions out, the first for the newest
    observation's time. Actions mean what :mod:`controllers.actions` says (TCP deltas in the base frame, gripper
    closure)."""

    source: str = "<memory>"  # where it was loaded from, for messages
    dataset: Mapping[str, Any] = MappingProxyType({})  # what it was trained on: cell, task, fingerprint
    sim_only: bool = False  # reads state only the twin has (privileged): never runs on the robot
    delta_action_dims: Sequence[int] = DELTA_DIMS  # action dims that are deltas (a hold is zero there)

    # ------------------------------------------------------------------ what it reads
    @property
    @abstractmethod
    def n_obs_steps(self) -> int:
        """Observations per history (the newest last)."""

    @property
    @abstractmethod
    def obs_keys(self) -> list[str]:
        """The observation keys it reads; a runtime keeps only these in its history."""

    @property
    def camera_keys(self) -> list[str]:
        """The image keys among ``obs_keys`` (``<camera>_rgb``); none for a state-only policy."""
        return []

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) [px] of the images it reads, as TwinEnv's ``image_size`` takes it; None: no images."""
        return None

    def check_observation(self, obs: Mapping[str, Any]) -> None:
        """Raise :class:`ObservationMismatchError` if ``obs`` (one observation, a gym ``spaces.Dict`` or
        {key: shape}) cannot feed it; extra keys are ignored."""
        missing = [k for k in self.obs_keys if k not in observation_shapes(obs)]
        if missing:
            raise ObservationMismatchError(f"observation lacks keys {missing} that policy {self.source} reads")

    # ------------------------------------------------------------------ what it gives
    @property
    @abstractmethod
    def action_low(self) -> np.ndarray:
        """(action_dim,) lower end of the raw actions it was trained on (a residual normalises with it)."""

    @property
    @abstractmethod
    def action_high(self) -> np.ndarray:
        """(action_dim,) upper end of the raw actions it was trained on."""

    @property
    def device(self) -> torch.device:
        """Where inference runs (a runtime sets CPU threads when it is the CPU)."""
        return torch.device("cpu")

    def reset(self) -> None:
        """A new episode starts: forget what the policy keeps between chunks. A stateless policy (everything it
        knows is in the history it is given) keeps nothing and may serve many episodes at once."""
        return

    @abstractmethod
    def predict_chunks(self, histories: Mapping[str, np.ndarray]) -> np.ndarray:
        """(B, n, action_dim) raw actions for a batch of histories {key: (B, n_obs_steps, ...)}."""

    def predict_chunk(self, history: Mapping[str, np.ndarray]) -> np.ndarray:
        """(n, action_dim) raw actions for one history {key: (n_obs_steps, ...)}."""
        return self.predict_chunks({k: np.asarray(history[k])[None] for k in self.obs_keys})[0]

    def correct(self, obs: Mapping[str, np.ndarray], action: np.ndarray) -> np.ndarray:
        """The action actually executed for chunk action ``action`` given the newest observation ``obs``
        {key: array}, as it comes due: unchanged here; a fine-tuned residual corrects it every step."""
        return action
