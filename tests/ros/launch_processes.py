"""Run what a launch file would start, as separate processes, where ``ros2 launch`` is absent (PyPI's ROS 2 wheels
have no launch): the file is evaluated with the launch stand-ins (``launch_standins/``, equal in behaviour to the
real ``launch``/``launch_ros`` where the stack uses them) and each node is started as ``python -m <module>`` of its
console script, with the node's parameter files and its launch overrides as a parameter file, as launch_ros
passes them. Used by the ROS tier and by ``benchmarks/ros/finetune_session.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).with_name("launch_standins")


@dataclass
class NodeSpec:
    executable: str
    name: str
    param_files: list[str]
    overrides: dict
    remappings: list[tuple[str, str]]


def console_scripts() -> dict[str, str]:
    return dict(re.findall(r'"([\w-]+) = ([\w.]+:\w+)"', (REPO / "setup.py").read_text()))


@contextlib.contextmanager
def standins():
    """The launch stand-ins importable, and no cached launch modules, inside the block."""

    def purge() -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in ("launch", "launch_ros") or (name.startswith("ros_support.") and "launch" in name):
                del sys.modules[name]

    purge()
    sys.path.insert(0, str(STANDINS))
    try:
        yield
    finally:
        sys.path.remove(str(STANDINS))
        purge()


def evaluate_launch(file: str, **arguments: str) -> list[NodeSpec]:
    """The nodes ``launch/<file>`` starts with ``arguments`` over its declared defaults."""
    with standins():
        from launch.actions import DeclareLaunchArgument, OpaqueFunction

        from launch import LaunchContext

        spec = importlib.util.spec_from_file_location(file.replace(".", "_"), REPO / "launch" / file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
        for name, value in arguments.items():  # as real launch checks them, before anything runs
            choices = getattr(declared.get(name), "choices", None)
            if choices and value not in choices:
                raise ValueError(f"Argument '{name}' provided value '{value}' is not valid. Valid options are: "
                                 f"{choices}")
        context = LaunchContext({**{n: d.default_value for n, d in declared.items()}, **arguments})
        nodes = [n for e in description.entities if isinstance(e, OpaqueFunction) for n in e.execute(context)]
    out = []
    for node in nodes:
        files = [str(p) for p in node.parameters if not isinstance(p, dict)]
        overrides = {k: v for p in node.parameters if isinstance(p, dict) for k, v in p.items()}
        out.append(NodeSpec(node.executable, node.name, files, overrides, list(node.remappings)))
    return out


def start_node(spec: NodeSpec, workdir: Path, env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    """One node as its own process (a new session: our pid is its group, so it can be stopped alone)."""
    module = console_scripts()[spec.executable].split(":")[0]
    overrides = workdir / f"{spec.name}.params.yaml"
    overrides.write_text(yaml.safe_dump({spec.name: {"ros__parameters": spec.overrides}}))
    args = [sys.executable, "-m", module, "--ros-args", "-r", f"__node:={spec.name}"]
    for file in [*spec.param_files, str(overrides)]:
        args += ["--params-file", file]
    for source, target in spec.remappings:
        args += ["-r", f"{source}:={target}"]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), **(env or {})}
    out = open(log, "a") if log is not None else subprocess.PIPE  # noqa: SIM115 - the process owns it
    return subprocess.Popen(args, cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 10.0) -> None:
    """Stop one process we started, by its pid."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
