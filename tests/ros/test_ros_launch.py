"""Launch files evaluated against stand-ins of launch/launch_ros (which PyPI does not have), no ROS needed.

For every launch file and the main argument combinations: the declared arguments, the nodes it would start;
that each executable is a setup.py entry point, each parameter file exists and validates against the node's
parameter model, each parameter a launch file sets is one the node declares, each remapped topic is one the
node uses, and realsense2_camera drivers come out one per camera with the topics the cell names.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from hardware_configs import load_cell
from hardware_configs.safe_yaml import read_yaml_mapping
from ros_support.params import NodeParams, validate

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).parent / "launch_standins"
LAUNCH_FILES = ["robot.launch.py", "sim.launch.py", "collect.launch.py", "calibrate.launch.py"]
CELL = load_cell("franka_3cam")


# Where each node executable's parameter model lives (imported lazily: the models are ROS-free, their modules
# may need mujoco or torch only when used).
NODE_PARAMETER_MODELS = {
    "sim_node": "sim.ros.sim_core:SimNodeParams",
    "controller_node": "controllers.ros.control_core:ControllerParams",
    "session_node": "robot_learning.sessions.recorder:SessionParams",
    "camera_node": "perception.ros.sync_core:CameraParams",
    "perception_node": "perception.ros.sync_core:PerceptionParams",
    "policy_node": "robot_learning.ros.policy_core:PolicyParams",
    "object_state_node": "perception.ros.object_state_node:ObjectStateParams",
}


def parameter_model(executable: str) -> type[NodeParams]:
    """The parameter model of one of the stack's node executables."""
    module, name = NODE_PARAMETER_MODELS[executable].split(":")
    return getattr(importlib.import_module(module), name)


def load_param_file(path: str | Path) -> dict[str, dict]:
    """``{node_name: {param: value}}`` of a ROS 2 parameter YAML (``node: {ros__parameters: {...}}``), read as the
    stack reads every YAML file (rcl parses them when a node starts)."""
    out = {}
    for node, body in read_yaml_mapping(Path(path)).items():
        assert isinstance(body, dict) and set(body) == {"ros__parameters"}, f"{path}: node {node!r}"
        out[str(node).strip("/")] = dict(body["ros__parameters"])
    return out


def console_scripts() -> dict[str, str]:
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+) = ([\w.]+:\w+)"', text))


@pytest.fixture
def launch_api(monkeypatch):
    """The stand-ins first on sys.path, and no real or cached launch modules, for this test only."""

    def purge() -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in ("launch", "launch_ros") or name == "ros_support.launch_graph":
                del sys.modules[name]

    purge()
    monkeypatch.syspath_prepend(str(STANDINS))
    yield
    purge()


def evaluate(file: str, **arguments: str):
    """(declared arguments by name, nodes) of a launch file with ``arguments`` over the declared defaults."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location(file.replace(".", "_"), REPO / "launch" / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    unknown = set(arguments) - set(declared)
    assert not unknown, f"{file} does not declare {unknown}"
    context = LaunchContext({**{n: d.default_value for n, d in declared.items()}, **arguments})
    nodes = []
    for entity in description.entities:
        if isinstance(entity, OpaqueFunction):
            nodes += entity.execute(context)
    return declared, nodes


def describe(nodes) -> list[tuple]:
    """Everything a launch would start, comparable: package, executable, name, parameters, remappings."""
    return [(n.package, n.executable, n.name, n.namespace, repr(n.parameters), n.remappings) for n in nodes]


def node_parameters(node) -> dict:
    """What the node would get: its sections of the parameter files, then the dicts, in order."""
    values: dict = {}
    for item in node.parameters:
        if isinstance(item, dict):
            values.update(item)
        else:
            assert Path(item).is_file(), f"{node.name}: parameter file {item} does not exist"
            values.update(load_param_file(item).get(node.name, {}))
    return values


def used_topics(executable: str, values: dict) -> set[str]:
    topics = {v for k, v in values.items() if k.endswith("_topic")} | {"/clock"}
    for cam in CELL.cameras:
        topics |= {cam.topic("color"), cam.topic("depth"), cam.topic("camera_info")}
    return topics


def check_manip_stack_node(node) -> None:
    scripts = console_scripts()
    assert node.executable in scripts, f"{node.executable} is no console_scripts entry point of setup.py"
    module, function = scripts[node.executable].split(":")
    source = importlib.util.find_spec(module)
    assert source is not None and f"def {function}(" in Path(source.origin).read_text()
    values = node_parameters(node)
    model = parameter_model(node.executable)
    validate(model, {k: v for k, v in values.items() if k != "use_sim_time"}, node=node.name, allow_unknown=False)
    for source_topic, _ in node.remappings:
        assert source_topic in used_topics(node.executable, validate(model, values, node=node.name).model_dump()), (
            f"{node.name} remaps {source_topic}, a topic it does not use"
        )


@pytest.mark.parametrize("file", LAUNCH_FILES)
def test_every_launch_file_declares_the_common_arguments_with_descriptions(launch_api, file):
    declared, _ = evaluate(file)
    assert {"cell", "task", "params_file"} <= set(declared)
    for argument in declared.values():
        assert argument.description and argument.default_value is not None, argument.name
    from ros_support.launch_graph import ARGUMENTS

    assert set(declared) <= set(ARGUMENTS)  # one table


@pytest.mark.parametrize(
    ("file", "arguments", "expected"),
    [
        ("sim.launch.py", {}, ["sim_node", "controller_node", "perception_node"]),
        (
            "sim.launch.py",
            {"checkpoint": "p.pt", "perception": "false"},
            ["sim_node", "controller_node", "policy_node"],
        ),
        ("robot.launch.py", {}, ["realsense2_camera_node"] * 3 + ["controller_node", "perception_node"]),
        (
            "robot.launch.py",
            {"objects": "true", "task": "peg_insert", "checkpoint": "p.pt"},
            ["realsense2_camera_node"] * 3 + ["controller_node", "perception_node", "object_state_node", "policy_node"],
        ),
        (
            "robot.launch.py",
            {"camera_driver": "manip_stack", "camera_source": "playback", "recording_dir": "rec", "checkpoint": "p.pt"},
            ["camera_node"] * 3 + ["controller_node", "perception_node", "policy_node"],
        ),
        ("collect.launch.py", {"use_sim": "true"}, ["sim_node", "controller_node", "perception_node", "session_node"]),
        (
            "collect.launch.py",
            {"use_sim": "false", "perception": "false"},
            ["realsense2_camera_node"] * 3 + ["controller_node", "session_node"],
        ),
        ("calibrate.launch.py", {"use_sim": "true"}, ["sim_node", "controller_node", "session_node"]),
        ("calibrate.launch.py", {}, ["realsense2_camera_node"] * 3 + ["controller_node", "session_node"]),
    ],
)
def test_nodes_executables_parameters_and_remappings(launch_api, file, arguments, expected):
    _, nodes = evaluate(file, **arguments)
    assert [n.executable for n in nodes] == expected
    use_sim = "sim_node" in expected
    for node in nodes:
        if node.package == "manip_stack":
            check_manip_stack_node(node)
            values = node_parameters(node)
            assert values["use_sim_time"] is use_sim
            assert values.get("cell") == "franka_3cam"
            if not use_sim and node.executable in ("controller_node", "session_node", "policy_node"):
                assert values["joint_prefix"] == "fr3_"  # the robot's parameter file is layered on top
                assert ("/tcp_pose", "/franka_robot_state_broadcaster/current_pose") in node.remappings
        else:
            assert node.package == "realsense2_camera"


def test_realsense_drivers_are_generated_per_camera_with_the_cells_topics(launch_api):
    _, nodes = evaluate("robot.launch.py")
    drivers = [n for n in nodes if n.package == "realsense2_camera"]
    assert [n.name for n in drivers] == [c.name for c in CELL.cameras]
    for node, cam in zip(drivers, CELL.cameras, strict=True):
        (params,) = node.parameters
        prefix = f"/{node.namespace}/{node.name}" if node.namespace else f"/{node.name}"
        assert f"{prefix}/color/image_raw" == cam.topic("color")
        assert f"{prefix}/aligned_depth_to_color/image_raw" == cam.topic("depth")
        assert params["serial_no"] == f"_{cam.serial}" and params["align_depth.enable"] is True
        assert params["rgb_camera.color_profile"] == f"{cam.intrinsics.width}x{cam.intrinsics.height}x{cam.fps}"
    _, nodes = evaluate("robot.launch.py", camera_driver="manip_stack")
    ours = [n for n in nodes if n.executable == "camera_node"]
    assert [n.parameters[0]["cameras"] for n in ours] == [[c.name] for c in CELL.cameras]


def test_collecting_with_objects_true_records_the_estimate_beside_each_step(launch_api):
    _, nodes = evaluate("collect.launch.py", use_sim="true", objects="true")
    assert [n.executable for n in nodes] == ["sim_node", "controller_node", "perception_node", "object_state_node",
                                             "session_node"]
    (session,) = [n for n in nodes if n.executable == "session_node"]
    assert node_parameters(session)["record_estimates"] is True
    _, nodes = evaluate("collect.launch.py", use_sim="true")
    (session,) = [n for n in nodes if n.executable == "session_node"]
    assert node_parameters(session)["record_estimates"] is False


def test_calibration_records_full_resolution_images(launch_api):
    _, nodes = evaluate("calibrate.launch.py", store_path="cal.zarr")
    (session,) = [n for n in nodes if n.executable == "session_node"]
    values = node_parameters(session)
    assert (values["image_width"], values["image_height"], values["store_path"]) == (640, 480, "cal.zarr")


def test_parameter_files_validate_against_the_node_models():
    for path in sorted((REPO / "configs" / "ros").glob("*.yaml")):
        for node, values in load_param_file(path).items():
            validate(parameter_model(node), values, node=f"{path.name}:{node}", allow_unknown=False, require=False)


def test_a_bad_parameter_file_is_reported_with_the_key(tmp_path):
    from ros_support.params import ParameterError

    path = tmp_path / "bad.yaml"
    path.write_text("sim_node:\n  ros__parameters:\n    real_time_factr: 1.0\n    camera_fps: -2.0\n")
    with pytest.raises(ParameterError, match=r"camera_fps: must be >= 0.0.*unknown parameters \['real_time_factr'\]"):
        (values,) = load_param_file(path).values()
        validate(parameter_model("sim_node"), values, node="sim_node", allow_unknown=False)


# Per argument: another value, the launch it is changed in, and what must come with the value (only what a
# file declares is passed). camera_source is camera_node's and playback needs its recordings; task on the
# robot reaches only the twin.
OTHER_VALUE: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "cell": (str(REPO / "hardware_configs" / "cells" / "franka_3cam.yaml"), {}, {}),
    "task": ("peg_insert", {"use_sim": "true"}, {}),
    "checkpoint": ("p.pt", {}, {}),
    "use_sim": ("<flip>", {}, {}),
    "camera_driver": ("manip_stack", {}, {}),
    "camera_source": ("playback", {"camera_driver": "manip_stack"}, {"recording_dir": "rec"}),
    "recording_dir": (
        "other_rec",
        {"camera_driver": "manip_stack", "camera_source": "playback", "recording_dir": "rec"},
        {},
    ),
    "controller_type": ("joint_trajectory", {}, {}),
    "perception": ("<flip>", {}, {}),
    "objects": ("<flip>", {}, {}),
    "store_path": ("other.zarr", {}, {}),
    "params_file": ("lab_params.yaml", {}, {}),
}


@pytest.mark.parametrize("file", LAUNCH_FILES)
def test_every_declared_argument_changes_what_is_launched(launch_api, file):
    declared, _ = evaluate(file)
    missing = set(declared) - set(OTHER_VALUE)
    assert not missing, f"{file}: add {sorted(missing)} to OTHER_VALUE"
    idle = []
    for argument, declaration in declared.items():
        value, base, companions = OTHER_VALUE[argument]
        if value == "<flip>":
            value = "false" if declaration.default_value == "true" else "true"
        base = {k: v for k, v in base.items() if k in declared}
        _, before = evaluate(file, **base)
        _, after = evaluate(file, **{**base, **companions, argument: value})
        if describe(after) == describe(before):
            idle.append(f"{argument}:={value}")
    assert not idle, f"{file}: {idle} change nothing it launches"


def test_robot_launch_with_use_sim_runs_the_twin_and_no_camera_driver(launch_api):
    _, nodes = evaluate("robot.launch.py", use_sim="true", checkpoint="p.pt")
    assert not [n for n in nodes if n.package == "realsense2_camera" or n.executable == "camera_node"]
    assert describe(nodes) == describe(evaluate("sim.launch.py", checkpoint="p.pt")[1])
    for node in nodes:
        check_manip_stack_node(node)
        assert node_parameters(node)["use_sim_time"] is True


@pytest.mark.parametrize(
    "arguments",
    [
        {"camera_source": "playback", "recording_dir": "rec"},  # realsense2_camera would ignore them: live cameras
        {"camera_driver": "manip_stack", "recording_dir": "rec"},  # live cameras would ignore the recordings
        {"camera_driver": "manip_stack", "camera_source": "playback"},  # playback of nothing
    ],
)
def test_camera_arguments_that_would_be_ignored_are_refused(launch_api, arguments):
    for file in ("robot.launch.py", "collect.launch.py", "calibrate.launch.py"):
        with pytest.raises(ValueError, match="camera_"):
            evaluate(file, **arguments)
