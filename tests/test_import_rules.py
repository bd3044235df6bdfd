"""The layering, checked on the source: every import statement, lazy ones inside functions included.

- Cores never touch ROS: no ``rclpy``, ``launch``, message packages, ``*/ros/`` node modules or the node runtime.
  ROS adapters are the ``ros/`` folders, ``ros_support/`` and ``launch/``; the CLI is an edge too (it may start
  a ROS teleop feed). The rclpy-free parts of ``ros_support`` (message conversions, parameter tables) serve
  the bag importer and the session recorder, so cores may use those two.
- ``controllers/`` stands alone: no twin (``sim/``), no learning code, no teleop.
- ``perception/`` imports no learning code.
- ``geometry/`` imports nothing of the stack; ``hardware_configs/`` only ``geometry``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["controllers", "perception", "calibration", "sim", "robot_learning", "hardware_configs", "geometry",
            "teleop", "configs", "ros_support", "benchmarks"]
ROS_TOP_LEVEL = {"rclpy", "launch", "launch_ros", "ament_index_python", "rosgraph_msgs"}
RCLPY_FREE_ROS_SUPPORT = {"ros_support.conversions", "ros_support.params"}
EDGES = ("robot_learning/cli/",)


def imports_of(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
            modules.extend(f"{node.module}.{alias.name}" for alias in node.names if node.module == "ros_support")
    return modules


def is_adapter(rel: str) -> bool:
    return "/ros/" in f"/{rel}" or rel.startswith("ros_support/") or rel.startswith("launch/")


def is_ros_import(module: str) -> bool:
    top = module.split(".")[0]
    if top in ROS_TOP_LEVEL or top.endswith("_msgs") or top.endswith("_srvs"):
        return True
    if ".ros." in f".{module}." and top != "ros_support":
        return True
    return top == "ros_support" and module != "ros_support" and module not in RCLPY_FREE_ROS_SUPPORT


def python_files(package: str) -> list[tuple[str, Path]]:
    return [(str(p.relative_to(ROOT)), p) for p in sorted((ROOT / package).rglob("*.py"))]


def offenders(packages: list[str], forbidden) -> list[str]:
    found = []
    for package in packages:
        for rel, path in python_files(package):
            found += [f"{rel}: {m}" for m in imports_of(path) if forbidden(rel, m)]
    return found


def test_no_core_module_imports_ros():
    def forbidden(rel: str, module: str) -> bool:
        return not is_adapter(rel) and not rel.startswith(EDGES) and is_ros_import(module)

    assert offenders(PACKAGES, forbidden) == []


def test_the_ros_support_used_by_cores_imports_no_rclpy():
    for module in RCLPY_FREE_ROS_SUPPORT:
        path = ROOT / (module.replace(".", "/") + ".py")
        assert not [m for m in imports_of(path) if m.split(".")[0] in ROS_TOP_LEVEL], module


@pytest.mark.parametrize(
    ("package", "forbidden_tops"),
    [
        ("controllers", {"sim", "robot_learning", "teleop", "perception", "calibration"}),
        ("perception", {"robot_learning", "teleop"}),
        ("geometry", {"controllers", "perception", "calibration", "sim", "robot_learning", "hardware_configs",
                      "teleop", "ros_support"}),
        ("hardware_configs", {"controllers", "perception", "calibration", "sim", "robot_learning", "teleop",
                              "ros_support"}),
    ],
)
def test_lower_layers_do_not_import_higher_ones(package, forbidden_tops):
    assert offenders([package], lambda rel, module: module.split(".")[0] in forbidden_tops) == []


def test_the_rules_would_catch_a_violation(tmp_path):
    """The checker itself: a core importing rclpy lazily, or a */ros/ module, is found."""
    sample = tmp_path / "core.py"
    sample.write_text("def f():\n    import rclpy\n    from perception.ros.camera_node import main\n")
    assert [m for m in imports_of(sample) if is_ros_import(m)] == ["rclpy", "perception.ros.camera_node"]
    assert is_ros_import("ros_support.node") and not is_ros_import("ros_support.conversions")
