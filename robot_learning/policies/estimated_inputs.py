"""A policy trained on the twin's exact scene state, fed the robot's estimate of it instead.

ResiP's state-based base (and a residual trained beside it) learn from the twin's privileged poses; on the robot
the same vector comes from the cameras (``estimated``: same layout, units and frames, see
:mod:`controllers.observations`). :class:`EstimatedInputs` renames the keys a policy reads, nothing else: the
policy sees its own key names, the runtime hands it the estimate. Only the pairs of
:data:`controllers.observations.ESTIMATE_OF` may be renamed, so no other meaning can be swapped in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from controllers.observations import ESTIMATE_OF, SIM_ONLY_KEYS
from robot_learning.policies.policy import ObservationMismatchError, Policy, observation_shapes


def check_estimate_map(inputs: Mapping[str, str]) -> dict[str, str]:
    """``inputs`` {key the policy was trained on: key fed instead}, each a sim-only key and its estimate."""
    wrong = {k: v for k, v in inputs.items() if ESTIMATE_OF.get(k) != v}
    if wrong:
        raise ValueError(f"base_inputs {wrong}: only a sim-only key may be fed its estimate "
                         f"({', '.join(f'{k}: {v}' for k, v in ESTIMATE_OF.items())})")
    return dict(inputs)


class EstimatedInputs(Policy):
    """``policy`` reading ``inputs[key]`` wherever it was trained on ``key``."""

    def __init__(self, policy: Policy, inputs: Mapping[str, str]):
        self.policy, self.inputs = policy, check_estimate_map(inputs)
        self.source, self.dataset = policy.source, policy.dataset
        self.delta_action_dims = policy.delta_action_dims

    @property
    def sim_only(self) -> bool:  # type: ignore[override]
        return any(k in SIM_ONLY_KEYS for k in self.obs_keys)

    @property
    def n_obs_steps(self) -> int:
        return self.policy.n_obs_steps

    @property
    def obs_keys(self) -> list[str]:
        return [self.inputs.get(k, k) for k in self.policy.obs_keys]

    @property
    def camera_keys(self) -> list[str]:
        return self.policy.camera_keys

    @property
    def image_size(self) -> tuple[int, int] | None:
        return self.policy.image_size

    @property
    def action_low(self) -> np.ndarray:
        return self.policy.action_low

    @property
    def action_high(self) -> np.ndarray:
        return self.policy.action_high

    @property
    def device(self):
        return self.policy.device

    def __getattr__(self, name: str) -> Any:  # the wrapped policy's own extras (e.g. a diffusion config)
        return getattr(self.__dict__["policy"], name)

    def reset(self) -> None:
        self.policy.reset()

    def check_observation(self, obs: Mapping[str, Any]) -> None:
        missing = [k for k in self.obs_keys if k not in observation_shapes(obs)]
        if missing:
            raise ObservationMismatchError(f"observation lacks keys {missing} that policy {self.source} reads "
                                           f"(fed {self.inputs})")

    def _renamed(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {trained: arrays[fed] for trained, fed in zip(self.policy.obs_keys, self.obs_keys, strict=True)}

    def predict_chunks(self, histories: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.policy.predict_chunks(self._renamed(histories))

    def correct(self, obs: Mapping[str, np.ndarray], action: np.ndarray) -> np.ndarray:
        return self.policy.correct(obs, action)
