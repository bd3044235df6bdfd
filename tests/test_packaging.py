"""The repository root is the ROS 2 package `manip_stack` and a pip-installable distribution."""

import ast
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL_PACKAGES = [
    "robot_learning", "perception", "controllers", "calibration", "sim", "hardware_configs", "configs", "ros_support",
    "teleop", "geometry",
]


def test_package_xml_is_a_valid_format_3_ament_python_package():
    package = parse_package(str(ROOT / "package.xml"))
    package.validate()
    assert package.name == "manip_stack" and package.package_format == 3
    assert {e.content for e in package.exports if e.tagname == "build_type"} == {"ament_python"}
    depends = {d.name for d in package.exec_depends}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "std_srvs"} <= depends


def test_setup_py_versions_match_package_xml_and_install_the_resource_marker():
    setup_source = (ROOT / "setup.py").read_text()
    assert 'version="0.1.0"' in setup_source
    assert parse_package(str(ROOT / "package.xml")).version == "0.1.0"
    assert (ROOT / "resource" / "manip_stack").is_file()
    assert "share/ament_index/resource_index/packages" in setup_source


def test_setup_cfg_puts_node_executables_where_ros2_run_looks():
    cfg = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/manip_stack" in cfg and "install_scripts=$base/lib/manip_stack" in cfg


def test_every_top_level_folder_is_an_import_package_for_symlink_install():
    for name in TOP_LEVEL_PACKAGES:
        assert (ROOT / name / "__init__.py").is_file(), name


def test_colcon_workspace_links_to_the_root():
    link = ROOT / "ros2_ws" / "src" / "manip_stack"
    assert link.is_symlink() and link.resolve() == ROOT


def test_learning_extra_pins_the_torch_build_the_notes_require():
    tree = ast.parse((ROOT / "setup.py").read_text())
    extras = next(
        node.value for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXTRAS"
    )
    learning = ast.literal_eval(extras)["learning"]
    assert {"torch==2.14.1", "torchvision==0.29.1", "robomimic==0.3.0"} <= set(learning)
