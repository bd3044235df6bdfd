"""`manip-stack finetune` end to end in parallel twins: base evaluation, iterations, curves, resume, combined
checkpoint. A tiny state base trained for seconds: this checks the session, not success rates."""

from __future__ import annotations

import csv

import pytest
import torch

from robot_learning.cli.main import main
from robot_learning.rl.config import FinetuneConfig
from robot_learning.sessions.finetune import finetune, first_episodes_per_env

torch.set_num_threads(1)


def tiny_finetune(iterations: int) -> FinetuneConfig:
    return FinetuneConfig.model_validate({
        "task": "lift", "iterations": iterations, "eval_every": 2, "eval_episodes": 2, "base_inference_steps": 2,
        "ppo": {"n_envs": 2, "steps_per_iteration": 8, "update_epochs": 2, "n_minibatches": 2}})


def rows(out):
    with (out / "finetune_log.csv").open() as f:
        return list(csv.DictReader(f))


def test_finetune_logs_the_base_then_each_iteration_and_resumes_where_it_stopped(state_base, tmp_path, caplog):
    import re

    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="robot_learning.sessions.finetune"):
        first = finetune(state_base, out, tiny_finetune(2), progress=False)
    evaluations = [r.getMessage() for r in caplog.records if "evaluation successes" in r.getMessage()]
    assert len(evaluations) == 2  # the base alone, then iteration 2 (eval_every 2)
    for message in evaluations:  # and how the failed episodes ended, e.g. "failures: not_lifted 2"
        k = int(re.search(r"(\d+)/2 evaluation", message)[1])
        counts = re.findall(r"(\w+) (\d+)", message.split("failures: ")[1])
        assert sum(int(n) for _, n in counts) == 2 - k
    log = rows(out)
    assert [r["iteration"] for r in log] == ["0", "1", "2"]
    assert log[0]["env_steps"] == "0" and log[0]["train_success"] == "" and log[0]["eval_success"] != ""
    assert [r["env_steps"] for r in log[1:]] == ["16", "32"]
    assert log[2]["eval_success"] != ""  # eval_every 2
    assert (out / "finetune_curves.png").stat().st_size > 0 and first.env_steps == 32

    resumed = finetune(state_base, out, tiny_finetune(3), progress=False)
    log = rows(out)
    assert [r["iteration"] for r in log] == ["0", "1", "2", "3"]  # no second base row, no repeated iterations
    assert log[3]["env_steps"] == "48" and resumed.env_steps == 48

    combined = torch.load(resumed.checkpoint, weights_only=True)  # plain tensors and JSON-able metadata only
    assert combined["format"] == "manip_stack.residual_diffusion" and combined["base_source"] == str(state_base)
    assert combined["base"]["model"].keys() == torch.load(state_base, weights_only=True)["model"].keys()  # embedded
    last = torch.load(out / "residual_last.pt", weights_only=True)
    assert last["iteration"] == 3
    for name, tensor in last["residual"].items():
        assert torch.equal(tensor, combined["residual"][name])


def test_a_run_started_from_a_trained_residual_begins_with_it_and_counts_its_env_steps(state_base, tmp_path, caplog):
    first = finetune(state_base, tmp_path / "explore", tiny_finetune(1), progress=False)
    config = tiny_finetune(1).model_copy(update={"init_residual": str(tmp_path / "explore" / "residual_last.pt")})
    with caplog.at_level("INFO", logger="robot_learning.sessions.finetune"):
        second = finetune(state_base, tmp_path / "polish", config, progress=False)
    assert any("starting residual" in r.getMessage() for r in caplog.records)
    assert [r["env_steps"] for r in rows(tmp_path / "polish")] == ["16", "32"]  # its curve goes on from the first
    assert first.env_steps == 16 and second.env_steps == 32


def test_the_combined_checkpoint_is_served_like_a_plain_policy_with_the_residual_applied_each_step(
        state_base, tmp_path):
    import numpy as np

    from robot_learning.rl.combined import ResidualDiffusionPolicy
    from robot_learning.runtime.loading import load_policy
    from robot_learning.sessions.evaluate import evaluate_policy
    from sim.env import TwinEnv

    result = finetune(state_base, tmp_path / "run", tiny_finetune(1), progress=False)
    policy = load_policy(result.checkpoint, device="cpu")
    assert isinstance(policy, ResidualDiffusionPolicy)
    assert policy.base.num_inference_steps == 2  # the base runs as it ran during fine-tuning

    last = policy.residual.actor.net[-1]
    with torch.no_grad():  # a residual whose mean is 0.5 everywhere
        last.weight.zero_()
        last.bias.fill_(0.5)
    env = TwinEnv(task="lift", image_size=None)
    obs, _ = env.reset(seed=0)
    env.close()
    base_action = (policy.normalizer.low + policy.normalizer.high) / 2  # normalised 0
    expected = policy.normalizer.unnormalize(np.full(7, 0.1 * 0.5, np.float32))  # action_scale 0.1
    np.testing.assert_allclose(policy.correct(obs, base_action), expected, rtol=1e-5, atol=1e-6)

    # a state-only policy has no frames to film: asking for videos writes the report without them
    report = evaluate_policy(result.checkpoint, n_episodes=2, n_envs=1, device="cpu", progress=False,
                             out=tmp_path / "eval", n_videos=1)
    assert report.n_episodes == 2 and report.runner["actions"] > 0 and report.runner["residual_failures"] == 0
    assert report.videos == [] and (tmp_path / "eval" / "eval_report.json").exists()


def test_a_combined_checkpoint_written_before_the_reward_registry_still_loads(state_base, tmp_path):
    import numpy as np

    from robot_learning.rl.combined import save_combined
    from robot_learning.rl.residual import ResidualPolicy
    from robot_learning.runtime.loading import load_policy
    from robot_learning.runtime.safe_load import load_plain, save_plain

    config = tiny_finetune(1)
    residual = ResidualPolicy(8, 7, config.residual)  # sizes as recorded in the file
    path = save_combined(tmp_path / "old.pt", state_base, residual, config, -np.ones(7), np.ones(7))
    old = load_plain(path, "test")
    old["config"]["reward"] = "kagi_pbrs"  # as the runs before reward_shaping wrote it
    old["config"].pop("reward_shaping")
    save_plain(old, path)
    config = load_policy(path, device="cpu").finetune_config
    assert (config.reward, config.reward_shaping) == ("kagi", "potential")


def test_curves_plot_a_perfect_evaluation_even_from_a_log_whose_bound_rounded_below_it(tmp_path):
    from robot_learning.sessions.finetune import CSV_FIELDS, plot_curves

    csv_path = tmp_path / "finetune_log.csv"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        writer.writeheader()
        writer.writerow({**dict.fromkeys(CSV_FIELDS, ""), "iteration": 0, "env_steps": 0, "eval_success": 0.5,
                         "eval_ci_low": 0.31, "eval_ci_high": 0.69})
        writer.writerow({**dict.fromkeys(CSV_FIELDS, ""), "iteration": 1, "env_steps": 16, "train_success": 1.0,
                         "train_return": 1.0, "eval_success": 1.0, "eval_ci_low": 0.862,
                         "eval_ci_high": 0.9999999999999999})  # 24/24, as an earlier wilson_interval wrote it
    assert plot_curves(csv_path, tmp_path / "curves.png", "t").stat().st_size > 0


def test_a_base_fine_tuned_from_zero_noise_is_served_from_zero_noise(state_base, tmp_path):
    from robot_learning.runtime.loading import load_policy

    config = tiny_finetune(1).model_copy(update={"base_zero_noise": True})
    result = finetune(state_base, tmp_path / "run", config, progress=False)
    assert load_policy(result.checkpoint, device="cpu").base.zero_noise  # as the residual learned on it
    assert not load_policy(result.checkpoint, device="cpu", zero_noise=False).base.zero_noise  # unless asked
    assert not load_policy(state_base, device="cpu").zero_noise  # a plain base samples by default


def test_evaluation_counts_each_env_s_first_episodes_not_the_first_to_end():
    """Successes end early and failures run to the horizon: the first n to end would flatter the residual."""
    ended = [(0, True), (0, True), (1, True), (0, True)]  # env 1's second episode (a failure) still running
    assert first_episodes_per_env(ended, n_episodes=4, n_envs=2) is None
    ended.append((1, False))
    assert first_episodes_per_env(ended, n_episodes=4, n_envs=2) == [(0, True), (0, True), (1, True), (1, False)]
    assert first_episodes_per_env(ended, n_episodes=3, n_envs=2) == [(0, True), (0, True), (1, True)]


def test_a_file_that_is_no_policy_is_refused_naming_both_formats(tmp_path):
    from robot_learning.runtime.loading import load_policy

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    both = r"neither a manip_stack\.diffusion_policy nor a manip_stack\.residual_diffusion"
    with pytest.raises(ValueError, match=both):
        load_policy(tmp_path / "other.pt")


def test_finetune_cli_refuses_a_residual_key_the_env_does_not_have(state_base, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("task: lift\nresidual:\n  obs_keys: [tcp_position, joint_torques]\nppo:\n  n_envs: 2\n"
                      "  steps_per_iteration: 4\n  n_minibatches: 1\n")
    code = main(["finetune", "--checkpoint", str(state_base), "--config", str(config), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "joint_torques" in capsys.readouterr().err


def test_a_sim_only_base_is_refused_by_the_robot_policy_loop_by_name(state_base):
    from hardware_configs import load_cell
    from robot_learning.policies.diffusion.checkpoint import DiffusionPolicy
    from robot_learning.ros.policy_core import PolicyMismatchError, check_policy_against_cell

    policy = DiffusionPolicy.from_checkpoint(state_base, device="cpu")
    with pytest.raises(PolicyMismatchError, match="sim-only"):
        check_policy_against_cell(policy, load_cell("franka_3cam"))


def test_finetune_with_kagi_asks_the_model_from_every_worker_and_keeps_the_answers(state_base, tmp_path):
    from robot_learning.rewards.fm.cache import ResponseCache

    cache = tmp_path / "answers.sqlite"
    from sim.estimation_config import StateEstimationConfig

    config = tiny_finetune(1).model_copy(update={"reward": "kagi", "reward_shaping": "potential",
                                                    "answer_cache": str(cache), "reward_poses": "estimated",
                                                    "state_estimation": StateEstimationConfig(source="error_model")})
    result = finetune(state_base, tmp_path / "run", config, progress=False)
    assert result.env_steps == 16 and [r["iteration"] for r in rows(tmp_path / "run")] == ["0", "1"]
    stored = ResponseCache(cache)
    try:  # one query per episode start: both workers' first scenes at least, each a different scene
        assert len(stored) >= 2 and len({e.request["messages"][-1]["content"][-1]["image_url"]["url"]
                                         for e in stored.entries()}) == len(stored)
    finally:
        stored.close()


def test_a_residual_on_the_robots_estimate_over_a_base_fed_the_estimate_runs_on_what_the_robot_has(state_base,
                                                                                                   tmp_path):
    """The robot-ready route: a state base trained on the twin's poses, fed their estimate; the residual reads only
    proprioception and the estimate. The result is no longer twin-only and never asks for privileged keys."""
    import numpy as np

    from robot_learning.runtime.loading import load_policy
    from sim.env import TwinEnv
    from sim.estimation_config import StateEstimationConfig

    keys = ["tcp_position", "tcp_rot6d", "gripper_width", "estimated", "estimated_relative"]
    config = FinetuneConfig.model_validate({
        **tiny_finetune(1).model_dump(mode="json"), "residual": {"obs_keys": keys},
        "state_estimation": {"source": "error_model"}, "base_inputs": {"privileged": "estimated"}})
    result = finetune(state_base, tmp_path / "run", config, progress=False)
    policy = load_policy(result.checkpoint, device="cpu")
    assert "privileged" not in policy.obs_keys and "estimated" in policy.obs_keys and not policy.sim_only
    env = TwinEnv(task="lift", image_size=None, state_estimation=StateEstimationConfig(source="error_model"))
    try:
        obs, _ = env.reset(seed=3)
        robot_view = {k: v for k, v in obs.items() if not k.startswith("privileged")}
        policy.check_observation(robot_view)  # everything it reads, the robot has
        chunk = policy.predict_chunk({k: np.stack([robot_view[k]] * policy.n_obs_steps) for k in policy.obs_keys})
        action = policy.correct(robot_view, chunk[0])
        assert np.all(np.isfinite(action))
    finally:
        env.close()


def test_every_path_loads_the_base_on_the_estimate_when_the_config_says_so(state_base):
    """load_frozen_base is what the twins, the in-process online session and the ROS fine-tuning policy node all
    call: with base_inputs it hands back the base reading the estimate, so none of them needs the twin's state."""
    from robot_learning.rl.base_policy import load_frozen_base

    plain = load_frozen_base(state_base, FinetuneConfig(task="lift"), device="cpu")
    assert plain.sim_only and "privileged" in plain.obs_keys
    config = FinetuneConfig(task="lift", state_estimation={"source": "error_model"},
                            base_inputs={"privileged": "estimated"})
    fed = load_frozen_base(state_base, config, device="cpu")
    assert not fed.sim_only and "estimated" in fed.obs_keys and "privileged" not in fed.obs_keys
