"""What the launch files in ``launch/`` share: one table of arguments, and the nodes of each bring-up.

Like realsense-ros' ``rs_launch.py``: one table of arguments with defaults and descriptions, values resolved
at launch time in an ``OpaqueFunction`` (the cell file must be read to know the cameras), and camera drivers
generated from the cell's list of cameras, one per camera, never from name suffixes.

Parameters: every node gets ``configs/ros/manip_stack.yaml`` (plus ``franka_fr3.yaml`` on the robot) and then
a dict of the launch arguments that concern it. The files are looked up in the package's share directory and,
for a ``--symlink-install`` or a source checkout, next to the sources.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from configs import config_dir

PACKAGE = "manip_stack"

# name: (default, description). Each launch file declares the ones it uses; defaults can differ per file.
ARGUMENTS: dict[str, tuple[str, str]] = {
    "cell": ("franka_3cam", "cell name in hardware_configs/cells or a .yaml path"),
    "task": ("lift", "task name in hardware_configs/tasks or a .yaml path"),
    "checkpoint": ("", "policy checkpoint (.pt); empty = no policy_node"),
    "use_sim": ("false", "true: the MuJoCo twin (sim_node) instead of the robot and its cameras"),
    "camera_driver": ("realsense_ros", "realsense_ros (realsense2_camera per camera) or manip_stack (camera_node)"),
    "camera_source": ("realsense", "camera_node source: realsense (live) or playback (recordings)"),
    "recording_dir": ("", "directory of <camera>.db3 recordings for camera_source:=playback"),
    "controller_type": ("cartesian_pose", "cartesian_pose (impedance equilibrium pose) or joint_trajectory (JTC)"),
    "perception": ("true", "run perception_node (fused point cloud in the base frame)"),
    "objects": ("false", "run object_state_node (the task's object and fixture poses from the fused cloud, for a "
                "policy or reward that reads the estimate; needs perception:=true)"),
    "store_path": ("outputs/episodes.zarr", "episode store that session_node appends to"),
    "params_file": ("", "parameter YAML for every manip_stack node; empty = configs/ros/manip_stack.yaml"),
}
CHOICES = {
    "use_sim": ["true", "false"],
    "camera_driver": ["realsense_ros", "manip_stack"],
    "camera_source": ["realsense", "playback"],
    "controller_type": ["cartesian_pose", "joint_trajectory"],
    "perception": ["true", "false"],
    "objects": ["true", "false"],
}
TCP_POSE_ON_ROBOT = "/franka_robot_state_broadcaster/current_pose"


def declare_arguments(names: list[str], defaults: dict[str, str] | None = None) -> list[DeclareLaunchArgument]:
    out = []
    for name in names:
        default, description = ARGUMENTS[name]
        default = (defaults or {}).get(name, default)
        kwargs = {"choices": CHOICES[name]} if name in CHOICES else {}
        out.append(DeclareLaunchArgument(name, default_value=default, description=description, **kwargs))
    return out


def config_file(name: str) -> str:
    """A ROS parameter file of ``configs/ros`` (installed with the ``configs`` package, so no share lookup)."""
    path = config_dir("ros") / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ROS parameter file; shipped: "
                                f"{sorted(p.name for p in config_dir('ros').glob('*.yaml'))}")
    return str(path)


def _args(context, names: list[str]) -> dict[str, str]:
    return {name: LaunchConfiguration(name).perform(context) for name in names}


def _true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def _node(
    executable: str,
    param_files: list[str],
    overrides: dict,
    name: str | None = None,
    remappings: list[tuple[str, str]] | None = None,
) -> Node:
    return Node(
        package=PACKAGE,
        executable=executable,
        name=name or executable,
        output="screen",
        parameters=[*param_files, overrides],
        remappings=remappings or [],
    )


def camera_drivers(cell_name: str, driver: str, source: str, recording_dir: str) -> list[Node]:
    """One camera driver per camera of the cell, publishing on the topics ``CameraConfig.topic`` names."""
    from hardware_configs import load_cell

    cell = load_cell(cell_name)
    nodes = []
    for cam in cell.cameras:
        intr = cam.intrinsics
        if driver == "realsense_ros":
            profile = f"{intr.width}x{intr.height}x{cam.fps}"
            nodes.append(
                Node(
                    package="realsense2_camera",
                    executable="realsense2_camera_node",
                    name=cam.name,
                    namespace=cam.namespace,
                    output="screen",
                    parameters=[
                        {
                            "camera_name": cam.name,
                            "camera_namespace": cam.namespace,
                            "serial_no": f"_{cam.serial}",  # the driver strips '_': keeps it a string
                            "rgb_camera.color_profile": profile,
                            "depth_module.depth_profile": profile,
                            "align_depth.enable": True,
                            "enable_sync": True,
                            "pointcloud.enable": False,
                        }
                    ],
                )
            )
        else:
            nodes.append(
                Node(
                    package=PACKAGE,
                    executable="camera_node",
                    name=f"{cam.name}_driver",
                    output="screen",
                    parameters=[
                        {
                            "cell": cell_name,
                            "cameras": [cam.name],
                            "source": source,
                            "recording_dir": recording_dir,
                            "use_sim_time": False,
                        }
                    ],
                )
            )
    return nodes


def check_camera_arguments(a: dict[str, str]) -> None:
    """Refuse camera arguments the chosen driver would ignore: a launch that silently runs live cameras when
    recordings were asked for (or the reverse) is worse than one that does not start."""
    driver = a.get("camera_driver", "realsense_ros")
    source = a.get("camera_source", "realsense")
    recording_dir = a.get("recording_dir", "")
    if driver != "manip_stack" and (source != "realsense" or recording_dir):
        raise ValueError(
            f"camera_source:={source} recording_dir:={recording_dir!r} are camera_node's; "
            f"camera_driver:={driver} runs live cameras: add camera_driver:=manip_stack"
        )
    if source == "playback" and not recording_dir:
        raise ValueError("camera_source:=playback needs recording_dir:= (a folder of <camera>.db3)")
    if source != "playback" and recording_dir:
        raise ValueError(
            f"recording_dir:= is read with camera_source:=playback only (camera_source:={source} runs live cameras)"
        )


def bringup(context, mode: str, names: list[str]) -> list:
    """The nodes of ``mode``: ``sim``, ``robot``, ``collect`` (either plus session_node) or ``calibrate``.

    Only the file's declared ``names`` are read: real launch also hands over undeclared ``name:=value`` pairs,
    which must not switch anything on.
    """
    a = _args(context, names)
    use_sim = mode == "sim" or _true(a.get("use_sim", "false"))
    files = [a.get("params_file") or config_file("manip_stack.yaml")]
    if not use_sim:
        files.append(config_file("franka_fr3.yaml"))
    base = {"cell": a["cell"], "use_sim_time": use_sim}
    remap = [] if use_sim else [("/tcp_pose", TCP_POSE_ON_ROBOT)]
    nodes: list = []
    if use_sim:
        nodes.append(_node("sim_node", files, {**base, "task": a.get("task", "lift")}))
    else:
        check_camera_arguments(a)
        nodes += camera_drivers(
            a["cell"],
            a.get("camera_driver", "realsense_ros"),
            a.get("camera_source", "realsense"),
            a.get("recording_dir", ""),
        )
    controller = {**base, "controller_type": a.get("controller_type", "cartesian_pose")}
    nodes.append(_node("controller_node", files, controller, remappings=remap))
    if mode == "calibrate":  # ChArUco views with the TCP pose at full resolution, for hand-eye calibration
        from hardware_configs import load_cell

        first = load_cell(a["cell"]).cameras[0].intrinsics
        nodes.append(
            _node(
                "session_node",
                files,
                {
                    **base,
                    "task": a.get("task", "lift"),
                    "store_path": a["store_path"],
                    "image_width": first.width,
                    "image_height": first.height,
                },
                remappings=remap,
            )
        )
        return nodes
    if _true(a.get("perception", "false")):
        nodes.append(_node("perception_node", files, base, remappings=remap))
        if _true(a.get("objects", "false")):
            nodes.append(_node("object_state_node", files, {**base, "task": a.get("task", "lift")}, remappings=remap))
    if a.get("checkpoint"):
        policy = {**base, "checkpoint": a["checkpoint"], **({"task": a["task"]} if "task" in a else {})}
        nodes.append(_node("policy_node", files, policy, remappings=remap))
    if mode == "collect":
        nodes.append(
            _node("session_node", files, {**base, "task": a["task"], "store_path": a["store_path"],
                                          # the estimator runs: each step stores its estimate of the scene too
                                          "record_estimates": _true(a.get("perception", "false"))
                                          and _true(a.get("objects", "false"))}, remappings=remap)
        )
    return nodes


def launch_entities(mode: str, names: list[str], defaults: dict[str, str] | None = None) -> list:
    """Declared arguments, then the bring-up resolved at launch time."""
    return [
        *declare_arguments(names, defaults),
        OpaqueFunction(function=bringup, kwargs={"mode": mode, "names": list(names)}),
    ]
