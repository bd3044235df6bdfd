"""Inference entry points ask OpenMP for sleeping (not spinning) idle threads, before torch loads it, and never
override a policy the user set."""

import os
import subprocess
import sys

CHECK = ("import os, sys; from robot_learning.runtime.threads import prefer_passive_omp_wait as p; "
         "{before}; print(p(), os.environ.get('OMP_WAIT_POLICY'))")


def _run(before: str = "pass", **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    return subprocess.run([sys.executable, "-c", CHECK.format(before=before)], capture_output=True, text=True,
                          env=environ, check=True).stdout.strip()


def test_passive_is_asked_for_before_torch_loads():
    assert _run() == "True PASSIVE"


def test_a_users_policy_is_kept():
    assert _run(OMP_WAIT_POLICY="ACTIVE") == "False ACTIVE"


def test_after_torch_is_imported_nothing_changes():
    assert _run("import torch") == "False None"
