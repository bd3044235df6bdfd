"""The install of ``docs/on_the_robot.md``, rebuilt here: ROS from a system prefix, the project's Python
dependencies in a venv with ``--system-site-packages``, ``python -m colcon build`` from that venv, and a node
started from the install space joining the graph.

The layers are made by ``layered_install`` from this environment (the ROS 2 wheels stand in for
``/opt/ros/jazzy``); what goes into the venv is the closure of the doc's own ``pip install -e ".[...]"`` line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "on_the_robot.md"
NODES = ["sim_node", "controller_node", "session_node", "camera_node", "perception_node", "policy_node"]
SKIP_DIRS = {".git", ".venv", "outputs", "build", "install", "log", "__pycache__", ".pytest_cache", ".ruff_cache",
             ".hypothesis", ".mypy_cache"}
# What a fresh login shell on the robot has before anything is sourced, plus this test session's DDS isolation.
PASSED_ON = ("HOME", "LANG", "ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "RMW_IMPLEMENTATION", "MUJOCO_GL")


@dataclass
class RobotMachine:
    ros_prefix: Path  # /opt/ros/jazzy
    system_python: Path  # /usr/bin/python3
    venv: Path  # ~/manip_venv
    workspace: Path  # ~/manip_stack/ros2_ws
    build_output: str

    def shell(self, command: str, **kwargs) -> subprocess.CompletedProcess | subprocess.Popen:
        """``bash -c command`` in a fresh environment: nothing of the test's own venv (no PATH entry, no
        PYTHONPATH, no LD_LIBRARY_PATH), as a new terminal on the robot."""
        env = {k: os.environ[k] for k in PASSED_ON if k in os.environ}
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        if kwargs.pop("background", False):
            return subprocess.Popen(["bash", "-c", command], cwd=self.workspace, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
        return subprocess.run(["bash", "-c", command], cwd=self.workspace, env=env, capture_output=True, text=True,
                              timeout=kwargs.get("timeout", 120))


def doc_pip_installs() -> tuple[list[str], list[str], list[str]]:
    """What the doc tells pip to install: the extras of its ``pip install -e ".[...]"`` line and the quoted
    requirements after them, and the ``name==version`` of its ``pip install --no-deps`` lines (the test installs
    what the doc says)."""
    text = DOC.read_text()
    editable = re.findall(r'^pip install -e "\.\[([a-z,]+)\]"((?: "[^"]+")*)', text, flags=re.MULTILINE)
    assert len(editable) == 1, f"{DOC}: expected one `pip install -e \".[extras]\"` line, found {editable}"
    extras, more = editable[0]
    no_deps = re.findall(r"^pip install --no-deps ([A-Za-z0-9_.-]+==[A-Za-z0-9_.]+)", text, flags=re.MULTILINE)
    return extras.split(","), re.findall(r'"([^"]+)"', more), no_deps


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP_DIRS or n.endswith((".zarr", ".egg-info", ".pt", ".mp4"))}


@pytest.fixture(scope="module")
def robot(tmp_path_factory) -> RobotMachine:
    pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]'")
    pytest.importorskip("colcon_core", reason="colcon missing: pip install -e '.[ros]'")
    from layered_install import (
        BOOTSTRAPPER,
        apt_side_distributions,
        link_distributions,
        make_ros_prefix,
        make_system_python,
        requirement_closure,
        ros_distributions,
        setup_py_requirements,
        system_site_dir,
    )

    root = tmp_path_factory.mktemp("robot")
    site = Path(sysconfig.get_paths()["purelib"])
    ros = ros_distributions()
    ros_prefix = root / "opt" / "ros" / "jazzy"
    make_ros_prefix(ros_prefix, site)
    system_python = make_system_python(root / "usr")
    apt = apt_side_distributions(ros)
    link_distributions(apt, site, system_site_dir(system_python))

    venv = root / "home" / "manip_venv"  # python3 -m venv --system-site-packages ~/manip_venv
    subprocess.run([str(system_python), "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    # pip install -e ".[all]" and the --no-deps lines: what pip adds on top of the system (the project itself
    # comes from colcon's install space)
    extras, also, no_deps = doc_pip_installs()
    roots = setup_py_requirements(REPO / "setup.py", extras) + also
    pip_side = requirement_closure(roots, skip=ros | apt | {BOOTSTRAPPER}) | requirement_closure(no_deps, follow=False)
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    link_distributions(pip_side, site, venv / "lib" / py / "site-packages")

    checkout = root / "home" / "manip_stack"
    shutil.copytree(REPO, checkout, symlinks=True, ignore=_ignore)
    machine = RobotMachine(ros_prefix, system_python, venv, checkout / "ros2_ws", "")
    build = machine.shell(f"source {ros_prefix}/setup.bash && source {venv}/bin/activate && "
                          "python -m colcon build --symlink-install", timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    machine.build_output = build.stdout
    return machine


def test_the_venv_sees_ros_from_the_system_prefix_and_pydantic_2_from_pip(robot):
    probe = ("import pydantic, rclpy, std_srvs.srv; "
             "print(pydantic.VERSION); print(rclpy.__file__); print(pydantic.__file__)")
    result = robot.shell(f"source {robot.ros_prefix}/setup.bash && {robot.venv}/bin/python -c '{probe}'")
    assert result.returncode == 0, result.stderr[-2000:]
    version, rclpy_file, pydantic_file = result.stdout.split()
    assert version.startswith("2.")
    assert Path(rclpy_file).is_relative_to(robot.ros_prefix)
    assert Path(pydantic_file).is_relative_to(robot.venv)
    # the system interpreter alone has no pydantic 2: a node started with it (plain `colcon build`) would fail
    bare = robot.shell(f"source {robot.ros_prefix}/setup.bash && {robot.system_python} -c 'import pydantic'")
    assert bare.returncode != 0 and "No module named 'pydantic'" in bare.stderr


def test_python_m_colcon_from_the_venv_writes_executables_that_start_with_the_venv_interpreter(robot):
    lib = robot.workspace / "install" / "manip_stack" / "lib" / "manip_stack"
    for node in NODES:
        shebang = (lib / node).read_text().splitlines()[0]
        assert shebang.startswith("#!"), (node, shebang)
        assert Path(shebang[2:].split()[0]).parent == robot.venv / "bin", (node, shebang)
    # a real symlink install (setup.py develop): with setuptools >= 80 colcon falls back to copying the sources
    site = robot.workspace / "install" / "manip_stack" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert (site / "site-packages" / "manip-stack.egg-link").is_file(), "not a --symlink-install (setuptools >= 80?)"
    share = robot.workspace / "install" / "manip_stack" / "share" / "manip_stack"
    assert (share / "package.xml").is_file() and (share / "launch" / "robot.launch.py").is_file()


def test_the_doc_bounds_setuptools_where_torch_and_colcon_symlink_install_both_work():
    """torch wants setuptools >= 77.0.3, noble's apt has 68.1.2, and colcon's --symlink-install needs < 80: without
    a bound pip would put the newest setuptools into the venv."""
    from importlib.metadata import PackageNotFoundError, distribution, version

    from packaging.requirements import Requirement

    try:  # metadata only: importing torch would cost seconds
        distribution("torch"), distribution("colcon-core")
    except PackageNotFoundError as missing:
        pytest.skip(f"{missing} not installed: pip install -e '.[learning,ros]'")

    bounds = [Requirement(r) for r in doc_pip_installs()[1] if Requirement(r).name == "setuptools"]
    assert bounds and not any(b.specifier.contains("80.0") for b in bounds), "the pip line must bound setuptools < 80"
    wanted = [Requirement(r) for name in ("torch", "colcon-core") for r in distribution(name).requires or []
              if Requirement(r).name == "setuptools" and Requirement(r).marker is None]
    assert any(not w.specifier.contains("80.0") for w in wanted)  # colcon-core states the bound itself
    here = version("setuptools")  # what the layered test machine builds with
    assert all(r.specifier.contains(here) for r in bounds + wanted), (here, bounds, wanted)


def test_a_node_from_the_install_space_joins_the_graph_and_publishes(robot, ros_context):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import qos_profile_sensor_data
    from ros_harness import Graph, Probe, stop_process, wait_for

    # a new terminal: source ROS and the workspace, no venv activated; the executable's first line picks it
    proc = robot.shell(f"source {robot.ros_prefix}/setup.bash && source install/setup.bash && "
                       "exec install/manip_stack/lib/manip_stack/controller_node", background=True)
    probe = Probe(ros_context, name="robot_install_probe")
    probe.watch(DiagnosticArray, "/controller_node/status", qos_profile_sensor_data)
    output = ""
    try:
        with Graph(ros_context) as graph:
            graph.add(probe)
            joined = wait_for(lambda: ("controller_node", "/") in probe.get_node_names_and_namespaces()
                              or proc.poll() is not None, 40.0)
            assert joined and proc.poll() is None, "controller_node exited before joining the graph"
            assert wait_for(lambda: probe.counts["/controller_node/status"] >= 2 or proc.poll() is not None, 20.0)
            assert probe.counts["/controller_node/status"] >= 2
    finally:
        output = stop_process(proc)
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
