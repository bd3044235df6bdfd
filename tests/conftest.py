"""Shared fixtures. MuJoCo renders offscreen with EGL unless the caller chose another backend."""

import os

import pytest

from hardware_configs import load_cell, load_task
from sim.gl_backend import preload_llvm_users

os.environ.setdefault("MUJOCO_GL", "egl")
preload_llvm_users()  # before any test renders: triton loaded after a GL context segfaults the process


@pytest.fixture(scope="session")
def cell():
    return load_cell("franka_3cam")


@pytest.fixture(scope="session")
def lift_task():
    return load_task("lift")


@pytest.fixture(scope="session")
def peg_task():
    return load_task("peg_insert")
