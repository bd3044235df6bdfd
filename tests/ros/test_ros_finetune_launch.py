"""finetune.launch.py evaluated with the launch stand-ins: which nodes start, with parameters every node's model
accepts, and the twin-only things tied to use_sim:=true."""

from __future__ import annotations

import importlib

import pytest
from launch_processes import console_scripts, evaluate_launch

from configs import config_dir
from hardware_configs.safe_yaml import read_yaml_mapping
from ros_support.params import validate

MODELS = {
    "sim_node": "sim.ros.sim_core:SimNodeParams",
    "controller_node": "controllers.ros.control_core:ControllerParams",
    "finetune_policy_node": "robot_learning.sessions.online_actor:FinetunePolicyParams",
    "learner_node": "robot_learning.sessions.online_learner:LearnerParams",
    "finetune_session_node": "robot_learning.sessions.online_episodes:FinetuneSessionParams",
    "live_view_node": "robot_learning.ros.live_view_node:LiveViewParams",
}


def values(spec) -> dict:
    out: dict = {}
    for file in spec.param_files:
        section = read_yaml_mapping(config_dir("ros") / file.rsplit("/", 1)[-1]).get(spec.name, {})
        out.update(section.get("ros__parameters", {}))
    return {**out, **spec.overrides}


def check(spec):
    module, name = MODELS[spec.executable].split(":")
    assert spec.executable in console_scripts()
    given = {k: v for k, v in values(spec).items() if k != "use_sim_time"}
    return validate(getattr(importlib.import_module(module), name), given, node=spec.name, allow_unknown=False)


def test_on_the_twin_every_node_starts_with_parameters_its_model_accepts():
    specs = evaluate_launch("finetune.launch.py", use_sim="true", success_source="twin", checkpoint="base.pt",
                            real_time_factor="0.5")
    assert [s.executable for s in specs] == ["sim_node", "controller_node", "finetune_policy_node", "learner_node",
                                             "finetune_session_node", "live_view_node"]
    typed = {s.executable: check(s) for s in specs}
    assert typed["sim_node"].publish_task_state and typed["finetune_policy_node"].allow_sim_only
    assert typed["sim_node"].real_time_factor == 0.5
    assert typed["finetune_session_node"].sim and typed["finetune_session_node"].auto_confirm_reset
    assert typed["finetune_session_node"].task == typed["finetune_policy_node"].task == "peg_insert"
    assert typed["finetune_policy_node"].out_dir == typed["learner_node"].out_dir


def test_on_the_robot_nothing_twin_only_is_switched_on():
    specs = evaluate_launch("finetune.launch.py", checkpoint="base.pt", success_source="topic")
    names = [s.executable for s in specs]
    assert "sim_node" not in names and names.count("realsense2_camera_node") == 3  # one driver per camera
    typed = {s.executable: check(s) for s in specs if s.executable in MODELS}
    assert not typed["finetune_policy_node"].allow_sim_only
    assert not typed["finetune_session_node"].sim and not typed["finetune_session_node"].auto_confirm_reset
    policy = next(s for s in specs if s.executable == "finetune_policy_node")
    assert ("/tcp_pose", "/franka_robot_state_broadcaster/current_pose") in policy.remappings


@pytest.mark.parametrize(("arguments", "message"), [
    ({"success_source": "twin", "checkpoint": "base.pt"}, "success_source:=twin .* needs use_sim:=true"),
    ({"use_sim": "true"}, "checkpoint:= is required"),
    ({"checkpoint": "b.pt", "real_time_factor": "0.5"}, "real_time_factor:= paces the twin: it needs use_sim"),
    ({"use_sim": "true", "checkpoint": "b.pt", "episodes": "0"}, "episodes:=0 must be at least 1"),
    ({"use_sim": "true", "checkpoint": "b.pt", "episodes_per_update": "two"}, "must be a whole number"),
])
def test_bad_arguments_are_refused_before_anything_starts(arguments, message):
    with pytest.raises(ValueError, match=message):
        evaluate_launch("finetune.launch.py", **arguments)


def test_success_source_choices_are_checked_by_launch():
    with pytest.raises(ValueError, match="'success_source' provided value 'vibes' is not valid"):
        evaluate_launch("finetune.launch.py", use_sim="true", checkpoint="b.pt", success_source="vibes")


def test_objects_true_adds_the_estimator_and_gives_the_twin_noisy_depth_at_the_estimators_size():
    specs = evaluate_launch("finetune.launch.py", use_sim="true", success_source="topic", checkpoint="base.pt",
                            objects="true")
    names = [s.executable for s in specs]
    assert names.index("perception_node") < names.index("object_state_node") < names.index("finetune_policy_node")
    sim = next(s for s in specs if s.executable == "sim_node")
    typed = validate(importlib.import_module("sim.ros.sim_core").SimNodeParams,
                     {k: v for k, v in values(sim).items() if k != "use_sim_time"}, node="sim_node",
                     allow_unknown=False)
    assert typed.publish_depth and typed.depth_model and (typed.image_width, typed.image_height) == (320, 240)
    objects = next(s for s in specs if s.executable == "object_state_node")
    assert objects.overrides["task"] == "peg_insert"
    session = next(s for s in specs if s.executable == "finetune_session_node")
    assert check(session).success_topic == "/manip/success"  # what object_state_node publishes its verdict on
    assert "object_state_node" not in [s.executable for s in evaluate_launch("finetune.launch.py", use_sim="true",
                                                                            checkpoint="base.pt")]
