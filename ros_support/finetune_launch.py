"""The nodes of ``finetune.launch.py``: an online fine-tuning session on the robot graph (issue #20).

The robot bring-up (camera drivers, controller_node; or, with ``use_sim:=true``, the twin as the robot) plus
``finetune_policy_node`` (base + residual, recording), ``learner_node`` (PPO in its own process),
``finetune_session_node`` (the episodes) and ``live_view_node`` (a headless PNG dashboard). Arguments follow
:mod:`ros_support.launch_graph` (one table, choices checked by launch); what only this launch has is here.

Twin-only things are tied to ``use_sim:=true``: the twin publishes its task success and privileged state only
then, the policy node may serve a sim-only base only then, and ``success_source:=twin`` is refused without it.
"""

from __future__ import annotations

from launch.actions import DeclareLaunchArgument, OpaqueFunction

from configs import config_dir
from ros_support.launch_graph import (
    ARGUMENTS,
    CHOICES,
    TCP_POSE_ON_ROBOT,
    _args,
    _node,
    _true,
    camera_drivers,
    check_camera_arguments,
    config_file,
)

FINETUNE_ARGUMENTS: dict[str, tuple[str, str]] = {
    "checkpoint": ("", "the frozen base policy checkpoint (policy.pt); required"),
    "config": (str(config_dir("rl") / "peg_insert_residual_cpu.yaml"),
               "FinetuneConfig YAML (residual, PPO, the base's DDIM settings)"),
    "out_dir": ("outputs/online_ros", "session folder: online_rollouts.zarr, online_state.pt, live_view.png"),
    "episodes": ("20", "run until the store holds this many episodes"),
    "episodes_per_update": ("4", "new committed episodes per PPO update"),
    "success_source": ("operator", "operator (service / teleop button), topic (a success or reward model on "
                       "/manip/success), twin (the simulator's task success: use_sim:=true only)"),
    "teleop_device": ("", "a teleop device the policy node reads for interventions and labels: '' (none), ros "
                      "(/teleop/cmd_vel + /joy), spacemouse, keyboard, gamepad"),
    "real_time_factor": ("1.0", "use_sim:=true: sim seconds per wall second; lower it on a loaded machine so "
                         "the graph keeps its rates in sim time (every node runs on the twin's clock)"),
    "live_view": ("true", "run live_view_node (a PNG dashboard in out_dir, refreshed every 2 s)"),
    "objects": ("false", "run perception_node and object_state_node: the scene as the robot estimates it "
                "(/manip/obs/estimated*, for a residual that reads it) and the task's success judged on it "
                "(/manip/success, read with success_source:=topic)"),
}
FINETUNE_CHOICES = {"success_source": ["operator", "topic", "twin"], "live_view": ["true", "false"],
                    "objects": ["true", "false"],
                    "teleop_device": ["", "ros", "spacemouse", "keyboard", "gamepad"]}
NAMES = ["cell", "task", "checkpoint", "config", "out_dir", "episodes", "episodes_per_update", "success_source",
         "use_sim", "camera_driver", "camera_source", "recording_dir", "controller_type", "teleop_device",
         "real_time_factor", "live_view", "objects", "params_file"]
DEFAULTS = {"task": "peg_insert"}
# The twin as a fine-tuning cell: small images (the live view and the controller's camera watch need them, the
# state policy does not), and the sim-only topics a twin-only session reads.
SIM_OVERRIDES = {"image_width": 128, "image_height": 96, "camera_fps": 10.0, "publish_depth": False,
                 "publish_task_state": True}
# With objects:=true the twin's cameras feed the estimator as the robot's do: depth, at the estimator's size.
SIM_OBJECTS_OVERRIDES = {"image_width": 320, "image_height": 240, "publish_depth": True}


def declare() -> list[DeclareLaunchArgument]:
    out = []
    for name in NAMES:
        default, description = FINETUNE_ARGUMENTS.get(name) or ARGUMENTS[name]
        default = DEFAULTS.get(name, default)
        choices = FINETUNE_CHOICES.get(name) or CHOICES.get(name)
        out.append(DeclareLaunchArgument(name, default_value=default, description=description,
                                         **({"choices": choices} if choices else {})))
    return out


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}:={text!r} must be a whole number") from None
    if value < 1:
        raise ValueError(f"{name}:={value} must be at least 1")
    return value


def bringup(context) -> list:
    a = _args(context, NAMES)
    use_sim = _true(a["use_sim"])
    if not a["checkpoint"]:
        raise ValueError("checkpoint:= is required: the frozen base policy (policy.pt) the residual corrects")
    if a["success_source"] == "twin" and not use_sim:
        raise ValueError("success_source:=twin reads the simulator's task success: it needs use_sim:=true; on the "
                         "robot use success_source:=operator or topic")
    episodes = _positive_int("episodes", a["episodes"])
    try:
        rtf = float(a["real_time_factor"])
    except ValueError:
        raise ValueError(f"real_time_factor:={a['real_time_factor']!r} must be a number") from None
    if not use_sim and rtf != 1.0:
        raise ValueError("real_time_factor:= paces the twin: it needs use_sim:=true")
    per_update = _positive_int("episodes_per_update", a["episodes_per_update"])
    files = [a["params_file"] or config_file("manip_stack.yaml")]
    if not use_sim:
        files.append(config_file("franka_fr3.yaml"))
    base = {"cell": a["cell"], "use_sim_time": use_sim}
    remap = [] if use_sim else [("/tcp_pose", TCP_POSE_ON_ROBOT)]
    nodes: list = []
    objects = _true(a["objects"])
    if use_sim:
        cameras = {**SIM_OVERRIDES, **(SIM_OBJECTS_OVERRIDES if objects else {})}
        nodes.append(_node("sim_node", files, {**base, "task": a["task"], **cameras, "real_time_factor": rtf}))
    else:
        check_camera_arguments(a)
        nodes += camera_drivers(a["cell"], a["camera_driver"], a["camera_source"], a["recording_dir"])
    nodes.append(_node("controller_node", files, {**base, "controller_type": a["controller_type"]}, remappings=remap))
    if objects:
        nodes.append(_node("perception_node", files, base, remappings=remap))
        nodes.append(_node("object_state_node", files, {**base, "task": a["task"]}, remappings=remap))
    learning = {"checkpoint": a["checkpoint"], "config": a["config"], "out_dir": a["out_dir"]}
    nodes.append(_node("finetune_policy_node", files, {**base, "task": a["task"], **learning,
                                                       "allow_sim_only": use_sim, "teleop_device": a["teleop_device"]},
                       remappings=remap))
    nodes.append(_node("learner_node", files, {"use_sim_time": use_sim, **learning,
                                               "episodes_per_update": per_update}))
    nodes.append(_node("finetune_session_node", files, {**base, "task": a["task"], "episodes": episodes,
                                                        "success_source": a["success_source"], "sim": use_sim,
                                                        "auto_confirm_reset": use_sim}, remappings=remap))
    if _true(a["live_view"]):
        nodes.append(_node("live_view_node", files, {**base, "out_path": f"{a['out_dir']}/live_view.png"}))
    return nodes


def launch_entities() -> list:
    return [*declare(), OpaqueFunction(function=bringup)]
