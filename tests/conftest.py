"""Shared fixtures. MuJoCo renders offscreen with EGL unless the caller chose another backend."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest

from hardware_configs import load_cell, load_task


@pytest.fixture(scope="session")
def cell():
    return load_cell("franka_3cam")


@pytest.fixture(scope="session")
def lift_task():
    return load_task("lift")


@pytest.fixture(scope="session")
def peg_task():
    return load_task("peg_insert")
