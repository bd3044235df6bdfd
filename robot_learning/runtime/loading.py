"""Load whatever policy checkpoint a runtime is given: a trained diffusion policy or a fine-tuned base+residual."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robot_learning.policies.diffusion.checkpoint import CHECKPOINT_FORMAT, DiffusionPolicy, validate_checkpoint
from robot_learning.policies.policy import Policy
from robot_learning.runtime.safe_load import load_plain


def load_policy(path: str | Path, device: str = "auto", seed: int = 0, num_inference_steps: int | None = None,
                observation_space: Any = None, **kwargs: Any) -> Policy:
    """A :class:`DiffusionPolicy` or a :class:`~robot_learning.rl.combined.ResidualDiffusionPolicy`, by the
    file's format, read once; anything else is refused naming both formats. ``kwargs``: ``half``,
    ``compile_unet``, ``n_action_steps``, ``runtime``, ``precision`` (:mod:`.fast_inference`);
    ``observation_space`` is checked before returning."""
    from robot_learning.rl.combined import COMBINED_FORMAT, ResidualDiffusionPolicy

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = load_plain(path, "policy checkpoint")  # a file holding pickled objects is refused, never unpickled
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if fmt == COMBINED_FORMAT:
        policy = ResidualDiffusionPolicy.from_checkpoint_dict(ckpt, str(path), device=device, seed=seed,
                                                              num_inference_steps=num_inference_steps, **kwargs)
    elif fmt == CHECKPOINT_FORMAT:
        policy = DiffusionPolicy.from_checkpoint_dict(validate_checkpoint(ckpt, path), str(path), device=device,
                                                      seed=seed, num_inference_steps=num_inference_steps, **kwargs)
    else:
        raise ValueError(f"{path} is neither a {CHECKPOINT_FORMAT} nor a {COMBINED_FORMAT} checkpoint")
    if observation_space is not None:
        policy.check_observation(observation_space)
    return policy
