"""Start a residual from one trained before: a sim-trained residual continued online on the robot, or a long
exploration run continued with a larger batch and less noise.

What carries over: the actor's and critic's weights and the observation statistics. What does not: the
exploration std (``residual.init_log_std`` of the new config decides it) and the optimisers' state (they start
fresh with the new config's learning rates).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_learning.rl.config import ResidualConfig
from robot_learning.rl.residual import ResidualPolicy, per_dimension
from robot_learning.runtime.safe_load import load_plain

log = logging.getLogger(__name__)


class IncompatibleResidualError(ValueError):
    """The trained residual cannot start this run (other inputs, other sizes, not a residual at all)."""


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"init_residual {path} does not exist (a run's residual_last.pt, a "
                                "base_plus_residual.pt or an online session's online_state.pt)")
    state = load_plain(path, "init_residual")  # a file holding pickled objects is refused, never unpickled
    if not isinstance(state, dict) or not isinstance(state.get("residual"), dict):
        raise IncompatibleResidualError(f"{path} holds no residual weights (expected a run's residual_last.pt, a "
                                        "base_plus_residual.pt or an online session's online_state.pt)")
    return state


@dataclass(frozen=True)
class PriorTraining:
    """What the source residual had cost (zeros where its file does not say, e.g. a combined checkpoint)."""

    env_steps: int
    wall_s: float


def load_trained_residual(path: Path, policy: ResidualPolicy, config: ResidualConfig) -> PriorTraining:
    """Load the weights and observation statistics of the residual in ``path`` into ``policy``; set its
    exploration std from ``config``. Returns what the source had trained for, so a continued run's curve and
    budget count it."""
    path = Path(path)
    state = _read(path)
    source_config = (state.get("config") or {}).get("residual")  # online_state.pt records none
    if source_config is not None:
        theirs, ours = list(source_config.get("obs_keys", [])), list(config.obs_keys)
        if theirs != ours:
            raise IncompatibleResidualError(f"{path} was trained on observation keys {theirs}; this run's residual "
                                            f"sees {ours}: the same keys, in the same order, are needed")
    weights = dict(state["residual"])
    log_std = policy.actor.log_std
    weights["actor.log_std"] = per_dimension(config.init_log_std, log_std.numel(), "init_log_std")
    try:
        policy.load_state_dict(weights)
    except RuntimeError as error:  # size mismatches: other hidden sizes, observation or action dimensions
        raise IncompatibleResidualError(f"{path} does not fit this run's residual: {error}") from error
    prior = PriorTraining(int(state.get("env_steps", 0)), float(state.get("wall_s", 0.0)))
    log.info("residual initialised from %s (%d env steps of training); exploration log-std %s from this config",
             path, prior.env_steps, config.init_log_std)
    return prior
