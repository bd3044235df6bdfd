"""`manip-stack distill` (ResiP's deployment route): a teacher on privileged state rolled out in randomised twins, an
image student trained on what it did, evaluated from cameras. The student may read only what the robot has.

The teacher is the tiny state base of ``conftest.state_base`` (it reads ``privileged``) plus a residual on
``privileged_relative`` with random (non-zero) weights, so its executed actions differ from its base's. It fails its
tasks, so the smoke run records its failures (``keep_failures``); this checks the route, not success rates.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robot_learning.cli.main import main
from robot_learning.data.episode_store import EpisodeStore
from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig, TrainConfig
from robot_learning.sessions.distill import (
    ROBOT_LOW_DIM_KEYS,
    StudentConfigError,
    check_student_config,
    distill,
    load_student_config,
)
from sim.randomisation import RandomisationConfig

torch.set_num_threads(1)

TINY_STUDENT = dict(horizon=8, n_action_steps=4, down_dims=[16, 32], n_groups=4, diffusion_step_embed_dim=16,
                    kernel_size=3, small_conv_channels=[8, 8, 8], spatial_softmax_keypoints=8, image_feature_dim=16,
                    num_inference_steps=2)


def student(**policy) -> PolicyTrainingConfig:
    return PolicyTrainingConfig(policy=DiffusionConfig(**{**TINY_STUDENT, **policy}),
                                train=TrainConfig(batch_size=16, num_epochs=1, lr_warmup_steps=2, num_threads=1))


@pytest.fixture(scope="module")
def teacher(state_base, tmp_path_factory):
    """base_plus_residual.pt: the privileged state base and a residual on privileged_relative with random weights
    (a trained residual's are not zero either); the base runs from zero noise, so the teacher is deterministic."""
    from robot_learning.rl.combined import save_combined
    from robot_learning.rl.config import FinetuneConfig
    from robot_learning.rl.residual import ResidualPolicy
    from sim.env import TwinEnv

    config = FinetuneConfig.model_validate({
        "task": "lift", "sim_only": True, "base_inference_steps": 2, "base_zero_noise": True,
        "residual": {"hidden_sizes": [16, 16], "obs_keys": ["tcp_position", "gripper_width", "privileged_relative"]}})
    env = TwinEnv(task="lift", image_size=None)
    obs_dim = 4 + int(env.observation_space["privileged_relative"].shape[0])
    env.close()
    torch.manual_seed(0)
    residual = ResidualPolicy(obs_dim, 7, config.residual)
    with torch.no_grad():
        for p in residual.actor.net.parameters():
            p.normal_(0.0, 0.5)
    path = tmp_path_factory.mktemp("teacher") / "base_plus_residual.pt"
    return save_combined(path, state_base, residual, config, -np.ones(7), np.ones(7))


@pytest.fixture(scope="module")
def short_lift(tmp_path_factory):
    """The lift task with 10-step episodes: the smoke run's cost is rendering and inference per step."""
    from hardware_configs.loader import resolve

    text = resolve("tasks", "lift").read_text()
    path = tmp_path_factory.mktemp("task") / "lift_short.yaml"
    path.write_text(text.replace("horizon_steps: 80", "horizon_steps: 10"))
    assert "horizon_steps: 10" in path.read_text()
    return path


# ---------------------------------------------------------------------- the student reads what the robot has
@pytest.mark.parametrize("key", ["privileged", "privileged_relative"])
def test_a_student_reading_privileged_state_is_refused_naming_the_key_and_what_it_may_read(key):
    with pytest.raises(StudentConfigError, match=rf"\['{key}'\] are the twin's simulator state.*tcp_position"):
        check_student_config(student(low_dim_keys=["tcp_position", key]))


@pytest.mark.parametrize(("policy", "message"), [
    ({"sim_only": True, "low_dim_keys": ["tcp_position"]}, "sim_only is true"),
    ({"low_dim_keys": ["tcp_quaternion"]}, "not robot-measured policy inputs"),
    ({"low_dim_keys": ["object_pose"]}, "not robot-measured policy inputs"),
    ({"camera_keys": [], "low_dim_keys": ["tcp_position"]}, "camera_keys is empty"),
    ({"camera_keys": ["tcp_position_rgbx"], "low_dim_keys": ["gripper_width"]}, "are not camera images"),
])
def test_a_student_without_cameras_or_with_other_inputs_is_refused(policy, message):
    with pytest.raises(StudentConfigError, match=message):
        check_student_config(student(**policy))


def test_the_shipped_camera_configs_are_valid_students_and_an_unset_low_dim_list_takes_the_robot_default():
    for name in ("peg_insert_cpu", "peg_insert_student_cpu"):
        shipped = load_student_config(name)
        assert shipped.policy.low_dim_keys == ["tcp_position", "tcp_rot6d", "gripper_width"]
    assert check_student_config(student()).policy.low_dim_keys == ["tcp_position", "tcp_rot6d", "gripper_width"]
    assert set(ROBOT_LOW_DIM_KEYS) == {"tcp_position", "tcp_rot6d", "joint_pos", "gripper_width"}


def test_the_verb_refuses_a_privileged_student_before_any_rollout(tmp_path, capsys):
    config = tmp_path / "student.yaml"
    config.write_text("policy:\n  low_dim_keys: [tcp_position, privileged]\n")
    argv = ["distill", "--teacher", str(tmp_path / "never_read.pt"), "--config", str(config), "--episodes", "2",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "privileged" in err and "simulator state" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- end to end
def test_distill_records_the_teachers_executed_actions_in_randomised_twins_then_trains_and_evaluates_a_student(
        teacher, short_lift, tmp_path):
    from robot_learning.runtime.loading import load_policy
    from robot_learning.runtime.policy_runner import DeltaHold, PolicyRunner, RunnerConfig

    out = tmp_path / "distill"
    report = distill(teacher, student(low_dim_keys=["tcp_position", "tcp_rot6d", "gripper_width"]), out,
                     n_episodes=2, task=short_lift, image_size=(32, 32), keep_failures=True, eval_episodes=2,
                     eval_envs=1, n_videos=0, device="cpu", progress=False)

    # the store: both scenes, each flagged and with its own randomisation, images and the teacher's inputs
    with EpisodeStore.open(out / "teacher_rollouts.zarr") as store:
        assert store.n_episodes == 2 and store.attrs["source"] == "distill_teacher"
        infos = [store.episode_info(i) for i in range(2)]
        assert [i["seed"] for i in infos] == [0, 1]
        assert infos[0]["randomisation"]["camera"] != infos[1]["randomisation"]["camera"]
        assert {"cam_front_rgb", "cam_wrist_rgb", "tcp_position", "privileged_relative", "action"} <= set(store.keys)
        first = store.get_episode(0)
    # the recorded action is what the teacher executed: base chunk corrected by the residual, from that observation
    policy = load_policy(teacher, device="cpu")
    runner = PolicyRunner(policy, DeltaHold(7, policy.delta_action_dims), RunnerConfig(period_s=0.1,
                                                                                      asynchronous=False))
    runner.observe({k: first[k][0] for k in policy.obs_keys}, 0.0)
    executed = runner.next_action(0.0).action
    np.testing.assert_allclose(first["action"][0], executed, atol=1e-5)
    base_only = policy.base.predict_chunks({k: np.repeat(first[k][:1], 2, axis=0)[None]
                                            for k in policy.base.obs_keys})[0, 0]
    assert not np.allclose(first["action"][0], base_only, atol=1e-3)  # the residual did correct it
    runner.close()

    # the student and its report: cameras and robot proprioception only, evaluated on new randomised scenes
    saved = json.loads((out / "distill_report.json").read_text())
    assert saved["collection"]["attempted"] == 2 and saved["collection"]["committed"] == 2
    assert 0.0 <= saved["collection"]["ci95"][0] <= saved["collection"]["ci95"][1] <= 1.0
    assert saved["evaluation"]["n_episodes"] == 2 and saved["evaluation"]["randomised"]
    assert saved["evaluation"]["seed"] == 100_000
    student_policy = load_policy(out / "student" / "policy.pt", device="cpu")
    assert set(student_policy.obs_keys) == {"cam_front_rgb", "cam_side_rgb", "cam_wrist_rgb", "tcp_position",
                                            "tcp_rot6d", "gripper_width"}
    assert "student from cameras in 2 new randomised scenes" in str(report)

    # run again: the collection is done (nothing re-rolled), training is resumed, not restarted
    again = distill(teacher, student(low_dim_keys=["tcp_position", "tcp_rot6d", "gripper_width"]), out,
                    n_episodes=2, task=short_lift, image_size=(32, 32), keep_failures=True, eval_episodes=0,
                    device="cpu", progress=False)
    assert again.collection["episodes_run"] == 0 and again.collection["attempted"] == 2
    assert again.evaluation == {}


def test_a_teacher_that_never_succeeds_leaves_nothing_to_distil_and_says_so(teacher, short_lift, tmp_path):
    with pytest.raises(ValueError, match="succeeded in 0 of 1 randomised scenes: nothing to distil"):
        distill(teacher, student(), tmp_path / "out", n_episodes=1, task=short_lift, image_size=(32, 32),
                randomisation=RandomisationConfig(seed=3), eval_episodes=0, device="cpu", progress=False)
