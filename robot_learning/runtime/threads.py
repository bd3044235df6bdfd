"""How inference processes wait between OpenMP parallel regions, set before torch loads its OpenMP runtime.

torch's CPU ops run in OpenMP regions; by default (GNU OpenMP) a thread that reaches the end of a region spins
before it sleeps. On a machine whose cores are shared (other jobs, camera drivers, perception), the spinning
thread burns the time slice its partner needs, and every region waits for a descheduled thread. Measured on the
2-core CPU under load, 16-step DDIM of the CPU-default policy with 2 threads: 10-48 s per chunk with
``OMP_WAIT_POLICY=ACTIVE``, 0.1-0.5 s with ``PASSIVE`` (waiting threads sleep at once). A sleeping thread costs a
wake-up (tens of microseconds) per region, little beside the GEMMs of a chunk, so inference entry points ask for
``PASSIVE`` unless the user set a policy. This module imports no torch: it must run before torch is imported.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"


def prefer_passive_omp_wait() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already; True if the policy in force is PASSIVE.

    OpenMP reads the variable once, when torch loads it: after ``import torch`` nothing changes, so this returns
    False then (unless the variable was already PASSIVE)."""
    if WAIT_POLICY_VARIABLE not in os.environ and "torch" not in sys.modules:
        os.environ[WAIT_POLICY_VARIABLE] = "PASSIVE"
    return os.environ.get(WAIT_POLICY_VARIABLE, "").upper() == "PASSIVE"


def omp_wait_policy() -> str:
    """The wait policy this process asked OpenMP for (``default`` if none), for benchmark headers and logs."""
    return os.environ.get(WAIT_POLICY_VARIABLE, "default")
