"""ROS tier set-up: an isolated DDS domain per test session, loopback only, and an rclpy context per test.

The domain id is drawn at random (with the pid) so parallel sessions on one machine don't hear each other;
discovery is limited to this host. Tests that need rclpy skip with a reason when the ROS 2 wheels are absent.
"""

from __future__ import annotations

import os
import random

os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid() ^ random.SystemRandom().getrandbits(32)).randint(1, 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in Jazzy, and it would override the range above
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("MUJOCO_GL", "egl")

import importlib.util

import pytest

HAVE_RCLPY = importlib.util.find_spec("rclpy") is not None


@pytest.fixture
def ros_context():
    """A fresh rclpy context (nodes and executors of one test share it); shut down afterwards."""
    if not HAVE_RCLPY:
        pytest.skip("rclpy missing: pip install -e '.[ros]' (ROS 2 Jazzy wheels)")
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def pytest_collection_modifyitems(config, items):
    """These tests time real DDS traffic between nodes; on a loaded machine one can miss a deadline, so each
    gets one rerun. A real fault fails both runs; reruns are reported in the summary, never hidden."""
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return
    for item in items:
        if "tests/ros/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.flaky(reruns=1))
