"""Behaviour cloning in several processes (GPUs, or CPU processes with gloo) through ``accelerate`` DDP.

The run means the same thing on 1 and on N processes: the config's ``batch_size`` stays the *global* batch, every
process takes its contiguous block of each global batch (``batch_size / N`` windows; the batches themselves come
from the seeded shuffle every process repeats), and DDP averages the gradients, which for equal blocks is the
gradient of the global batch's mean loss. The random draws of the loss (crop offsets, diffusion noise, time steps)
are made at global-batch size on every process from the same seeded stream, each keeping its own block
(:class:`ShardedRandomness`), so N processes see exactly the noise one process would: their weights match one
process's up to floating-point summation order (``tests/policies/test_train_processes.py`` states the tolerance).
Only rank 0 writes the run directory; the checkpoint format is the single-process one.

Launch: ``manip-stack train --processes N`` starts N local processes (``torch.distributed.run --standalone``);
on several machines, start the same verb on each through ``accelerate launch`` or ``torchrun`` (``--nnodes``,
``--node-rank``, ``--master-addr``): a process that finds ``WORLD_SIZE`` > 1 in its environment joins that group.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

# Draws whose dim 0 is the batch (or batch x time steps): drawn at global size, this process's block kept.
_SHARDED_DRAWS = {torch.rand, torch.randn, torch.randint, torch.rand_like, torch.randn_like, torch.randint_like}
# Draws that cannot be split that way (their shape or count is not batch-major): refused, never silently different.
_REFUSED_DRAWS = {torch.bernoulli, torch.multinomial, torch.normal, torch.randperm, torch.poisson,
                  nn.functional.dropout, nn.functional.dropout1d, nn.functional.dropout2d, nn.functional.dropout3d,
                  nn.functional.alpha_dropout, nn.functional.feature_alpha_dropout, torch.Tensor.bernoulli_,
                  torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.random_, torch.Tensor.exponential_}


def in_launched_group() -> bool:
    """True inside a process that ``torchrun``/``accelerate launch`` started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class ShardedRandomness(TorchFunctionMode):
    """Inside it, every batch-major random draw of local size ``n`` is drawn at size ``n * world_size`` and the
    ``rank``-th block returned: process r sees rows ``[r*n, (r+1)*n)`` of what one process draws for the whole
    batch, and the generator advances as it does there."""

    def __init__(self, rank: int, world_size: int, local_batch: int):
        super().__init__()
        self.rank, self.world_size, self.local_batch = rank, world_size, local_batch

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _REFUSED_DRAWS:
            raise RuntimeError(f"{getattr(func, '__name__', func)} cannot be split across processes batch by batch "
                               "(only batch-major rand/randn/randint draws are); train this model in one process")
        if func not in _SHARDED_DRAWS:
            return func(*args, **kwargs)
        if func in (torch.rand_like, torch.randn_like, torch.randint_like):
            like, rest = args[0], args[1:]
            n = self._rows(like.shape)
            out = func(like.new_empty((n * self.world_size, *like.shape[1:])), *rest, **kwargs)
        else:
            args, size = self._split_size(func, args, kwargs)
            n = self._rows(size)
            out = func(*args, **{**kwargs, "size": (n * self.world_size, *size[1:])})
        return out.narrow(0, self.rank * n, n).clone()

    def _rows(self, shape: Sequence[int]) -> int:
        if not len(shape) or shape[0] % self.local_batch:
            raise RuntimeError(f"a random draw of shape {tuple(shape)} is not batch-major (dim 0 a multiple of the "
                               f"per-process batch {self.local_batch}); it cannot be split across processes")
        return int(shape[0])

    @staticmethod
    def _split_size(func, args: tuple, kwargs: dict) -> tuple[tuple, tuple[int, ...]]:
        """(the other positional arguments, the size) of a rand/randn/randint call, however the size was given."""
        if "size" in kwargs:
            return args, tuple(kwargs.pop("size"))
        if func is torch.randint:  # randint(high, size) or randint(low, high, size)
            return args[:-1], tuple(args[-1])
        if len(args) == 1 and isinstance(args[0], Sequence):
            return (), tuple(args[0])
        return (), tuple(int(a) for a in args)


class _LossForward(nn.Module):
    """The policy's loss as ``forward``: DDP synchronises gradients of what runs through its own forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, obs: Mapping[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        return self.model.compute_loss(obs, action)


class Partition:
    """This process's place in the training group: rank, group size, device, and what differs from one process.

    ``Partition()`` is one process; :meth:`from_environment` joins a launched group through ``accelerate``."""

    def __init__(self, accelerator: Any = None):
        self.accelerator = accelerator
        self.rank = accelerator.process_index if accelerator else 0
        self.world_size = accelerator.num_processes if accelerator else 1

    @classmethod
    def from_environment(cls, device: str = "auto") -> Partition:
        """The launched group (``WORLD_SIZE`` > 1: gloo on CPUs, NCCL on GPUs), else one process."""
        if not in_launched_group():
            return cls()
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but torch sees no CUDA device; use --device cpu or auto")
        from accelerate import Accelerator

        return cls(Accelerator(cpu=device == "cpu" or not torch.cuda.is_available()))

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run directory, logs and shows progress."""
        return self.rank == 0

    @property
    def device(self) -> torch.device | None:
        """The group's device for this process (``cuda:<local rank>`` on GPUs); None for one process."""
        return self.accelerator.device if self.accelerator else None

    def check(self, batch_size: int, model: nn.Module) -> None:
        """Refuse what would make N processes train differently from one."""
        if batch_size % self.world_size:
            raise ValueError(f"batch_size {batch_size} (the global batch) does not split over {self.world_size} "
                             f"processes; give a multiple of {self.world_size}")
        if self.world_size > 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ValueError("the model has BatchNorm layers, whose statistics depend on the per-process batch; "
                             "set policy.use_group_norm: true to train it in several processes")

    def shard(self, indices: np.ndarray) -> np.ndarray:
        """This process's contiguous block of a global batch of window indices."""
        n = len(indices) // self.world_size
        return indices[self.rank * n : (self.rank + 1) * n]

    def loss_function(self, model: nn.Module) -> Callable[[Mapping[str, torch.Tensor], torch.Tensor], torch.Tensor]:
        """``loss(obs, action)`` on this process's block: through DDP (gradients averaged over the group in
        ``backward``) with the global batch's random draws, or the model's own loss in one process."""
        if self.accelerator is None:
            return model.compute_loss
        ddp = self.accelerator.prepare_model(_LossForward(model))

        def loss(obs: Mapping[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
            with ShardedRandomness(self.rank, self.world_size, int(action.shape[0])):
                return ddp(obs, action)

        return loss

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the group (a batch's loss: the global batch's mean loss)."""
        if self.accelerator is None:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.accelerator.device)
        return float(self.accelerator.reduce(tensor, reduction="mean").item())

    def close(self) -> None:
        """Wait for the whole group, then leave it (rank 0 has written everything by then)."""
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
            self.accelerator.end_training()


def launch_local(n_processes: int, argv: Sequence[str]) -> int:
    """Run ``manip-stack <argv>`` as ``n_processes`` processes of one group on this machine; their exit code.

    ``torch.distributed.run --standalone`` picks a free rendezvous port, so several runs can share a machine."""
    if n_processes < 1:
        raise ValueError(f"--processes must be at least 1, got {n_processes}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_processes}",
           "-m", "robot_learning.cli.main", *argv]
    return subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
