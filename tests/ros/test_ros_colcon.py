"""``colcon build --symlink-install`` of ``ros2_ws/`` (in a copy, so build/install/log stay out of the tree), then
the node executables run from the install space as ``ros2 run`` would find them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[2]
NODES = ["sim_node", "controller_node", "session_node", "camera_node", "perception_node", "policy_node"]
SKIP_DIRS = {".git", ".venv", "outputs", "build", "install", "log", "__pycache__", ".pytest_cache", ".ruff_cache",
             ".hypothesis", ".mypy_cache"}


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in SKIP_DIRS or n.endswith((".zarr", ".egg-info", ".pt", ".mp4"))}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if colcon is None:
        pytest.skip("colcon missing: pip install colcon-common-extensions")
    pytest.importorskip("rclpy", reason="rclpy missing: pip install -e '.[ros]'")
    root = tmp_path_factory.mktemp("colcon") / "repo"
    shutil.copytree(REPO, root, symlinks=True, ignore=_ignore)
    assert (root / "ros2_ws" / "src" / "manip_stack").resolve() == root.resolve()  # the package is the repo root
    result = subprocess.run([colcon, "build", "--symlink-install"], cwd=root / "ros2_ws", capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root / "ros2_ws"


def in_install_space(ws: Path, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"source install/setup.bash && {command}"], cwd=ws, capture_output=True,
                          text=True, timeout=120)


def test_executables_land_where_ros2_run_looks_and_print_their_parameters(workspace):
    lib = workspace / "install" / "manip_stack" / "lib" / "manip_stack"
    assert sorted(p.name for p in lib.iterdir() if p.name in NODES) == sorted(NODES)
    share = workspace / "install" / "manip_stack" / "share" / "manip_stack"
    assert (share / "package.xml").is_file()
    assert {p.name for p in (share / "launch").iterdir()} >= {"robot.launch.py", "sim.launch.py", "collect.launch.py",
                                                             "calibrate.launch.py"}
    commands = " && ".join(f"install/manip_stack/lib/manip_stack/{node} --help" for node in NODES)
    result = in_install_space(workspace, commands)
    assert result.returncode == 0, result.stderr[-3000:]
    for node in NODES:
        assert f"usage: ros2 run manip_stack {node}" in result.stdout


def test_a_node_starts_from_the_install_space_and_rejects_a_bad_cell(workspace):
    result = in_install_space(workspace, "install/manip_stack/lib/manip_stack/controller_node --ros-args -p cell:=nope")
    assert result.returncode == 2
    assert "no cell named 'nope'" in result.stderr and "Traceback" not in result.stderr
