"""``package.xml``'s rosdep keys, as ``docs/on_the_robot.md`` relies on them on Ubuntu 24.04 with ROS 2 Jazzy:
every ROS package the code imports is declared, every key is one that resolves there, and no key installs an
apt Python library at a version the code's requirements reject (those come from pip into the venv)."""

from __future__ import annotations

import ast
import importlib.metadata as md
import runpy
from pathlib import Path

import pytest
import setuptools
from catkin_pkg.package import parse_package
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CODE = ["robot_learning", "perception", "controllers", "calibration", "sim", "hardware_configs", "configs",
        "ros_support", "teleop", "geometry", "launch"]

# `rosdep resolve <key> --os=ubuntu:noble --rosdistro=jazzy` with rosdep 0.27.0 against ros/rosdistro at commit
# 8468e88 (2026-08-22): each gives the apt package ros-jazzy-<key with - for _>. A key not listed here must be
# checked the same way before it is added.
RESOLVES_ON_JAZZY_NOBLE = {
    "rclpy", "rcl_interfaces", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "std_msgs", "std_srvs",
    "diagnostic_msgs", "rosgraph_msgs", "launch", "launch_ros", "ros2launch", "ament_index_python",
    "realsense2_camera",
}
# rosdep python.yaml maps these keys to the apt package of the same name on Ubuntu; the versions are noble's
# (packages.ubuntu.com): key -> (PyPI name, noble version).
NOBLE_PYTHON3 = {
    "python3-pydantic": ("pydantic", "1.10.14"),
    "python3-numpy": ("numpy", "1.26.4"),
    "python3-yaml": ("pyyaml", "6.0.1"),
    "python3-pytest": ("pytest", "7.4.4"),
}
ROS_IMPORT_NAMES = {"rclpy", "launch", "launch_ros", "ament_index_python", "tf2_ros", "cv_bridge", "message_filters",
                    "rosbag2_py", "sensor_msgs_py"}


def _declared() -> set[str]:
    package = parse_package(str(ROOT / "package.xml"))
    return {d.name for d in package.exec_depends + package.build_depends + package.test_depends}


def _ros_imports() -> dict[str, str]:
    """Top-level ROS package names imported anywhere in the code, each with one file that imports it."""
    found: dict[str, str] = {}
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in ROS_IMPORT_NAMES or top.endswith(("_msgs", "_srvs", "_interfaces")):
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _requirements_on(pypi_name: str) -> list[tuple[str, Requirement]]:
    """Every requirement on ``pypi_name`` in setup.py (install_requires and every extra) and in the installed
    metadata of what setup.py names directly (zarr's own numpy requirement, say), with who states it."""
    captured: dict = {}
    real_setup = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = real_setup
    direct = [Requirement(r) for r in captured["install_requires"]]
    direct += [Requirement(r) for reqs in captured["extras_require"].values() for r in reqs]
    want = canonicalize_name(pypi_name)
    out = [("setup.py", r) for r in direct if canonicalize_name(r.name) == want]
    for req in direct:
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        for sub in dist.requires or []:
            sub_req = Requirement(sub)
            if canonicalize_name(sub_req.name) == want and (sub_req.marker is None or sub_req.marker.evaluate()):
                out.append((f"{dist.metadata['Name']} {dist.version}", sub_req))
    return out


def _rejected_by(key: str) -> list[str]:
    pypi_name, noble_version = NOBLE_PYTHON3[key]
    return [f"{who}: {req}" for who, req in _requirements_on(pypi_name)
            if not req.specifier.contains(noble_version, prereleases=True)]


def test_every_ros_package_the_code_imports_is_declared():
    missing = {name: where for name, where in _ros_imports().items() if name not in _declared()}
    assert not missing, f"package.xml lacks <exec_depend> for {missing} (imported there)"


def test_every_key_resolves_on_jazzy_noble_and_no_python3_key_that_noble_cannot_satisfy():
    declared = _declared()
    python3 = {k for k in declared if k.startswith("python3-")}
    unchecked = declared - RESOLVES_ON_JAZZY_NOBLE - python3
    assert not unchecked, (f"{sorted(unchecked)}: check `rosdep resolve KEY --os=ubuntu:noble --rosdistro=jazzy` "
                           "and add the key to RESOLVES_ON_JAZZY_NOBLE")
    for key in python3:
        assert key in NOBLE_PYTHON3, f"{key}: record noble's apt version in NOBLE_PYTHON3 first"
        assert not _rejected_by(key), f"{key}: noble's {NOBLE_PYTHON3[key][1]} is rejected by {_rejected_by(key)}"


@pytest.mark.parametrize("key", sorted(NOBLE_PYTHON3))
def test_noble_apt_versions_are_too_old_for_the_code_so_pip_provides_them(key):
    """Why docs/on_the_robot.md installs these with pip: each noble version fails a requirement of the code."""
    assert _rejected_by(key), f"{key}: noble's version now satisfies the code; rosdep could provide it"
