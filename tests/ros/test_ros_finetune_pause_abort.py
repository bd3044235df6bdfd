"""finetune_session_node's ~/pause, ~/resume and ~/abort on the graph: the twin and controller_node as processes,
finetune_policy_node and finetune_session_node in this process (each on its own executor, as ``run_node`` spins
it), all with the parameters ``finetune.launch.py use_sim:=true success_source:=operator`` gives them, talking
over DDS. Paused, the policy sends no action and records no step while the twin's clock runs on; resumed, the same
episode goes on; aborted, the episode is discarded (never committed), the one committed before it is untouched,
and the session runs its next episode in its place."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from launch_processes import evaluate_launch, start_node, stop

from configs import config_dir
from hardware_configs.safe_yaml import read_yaml_mapping
from robot_learning.data.episode_store import EpisodeStore

# slow: the twin's and the controller's processes start (MuJoCo, torch imports) on a loaded 2-core machine
pytestmark = [pytest.mark.ros, pytest.mark.slow]
PAUSE_SIM_S = 1.0  # sim time the twin runs while paused: 10 policy steps if the pause did not hold


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A tiny state base trained for one epoch on a made-up store (the services are checked, not success) and a
    tiny residual on proprioception (no privileged inputs: nothing but the twin's robot topics is needed)."""
    import torch

    from hardware_configs import load_cell
    from robot_learning.data.robot_steps import robot_dataset_specs
    from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig, TrainConfig
    from robot_learning.sessions.train import train_policy

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("finetune_pause")
    specs = robot_dataset_specs(load_cell("franka_3cam"), [], (16, 16), depth=False)
    rng = np.random.default_rng(0)
    with EpisodeStore.create(root / "demos.zarr", specs, {"cell": "franka_3cam", "task": "lift"},
                             durable=False) as store:
        for _ in range(2):
            with store.begin_episode() as ep:
                for _ in range(12):
                    ep.add_step(**{k: rng.uniform(-0.01, 0.01, s.shape).astype(s.dtype) for k, s in specs.items()})
                ep.commit(success=True)
    keys = ["tcp_position", "tcp_rot6d", "gripper_width"]
    config = PolicyTrainingConfig(
        policy=DiffusionConfig(camera_keys=[], low_dim_keys=keys, horizon=8, n_action_steps=4, down_dims=[16, 32],
                               n_groups=4, diffusion_step_embed_dim=16, kernel_size=3, num_inference_steps=4),
        train=TrainConfig(batch_size=8, num_epochs=1, lr_warmup_steps=1, num_threads=1))
    base = train_policy(root / "demos.zarr", config, root / "base", device="cpu", progress=False).policy_path
    (root / "rl.yaml").write_text(f"task: lift\ncell: franka_3cam\nbase_inference_steps: 4\nresidual:\n"
                                  f"  hidden_sizes: [32, 32]\n  obs_keys: {keys}\n")
    return root, base


def in_process(spec, context, node_class):
    """``node_class`` built and configured in this process with the parameters the launch gives ``spec``."""
    from rclpy.parameter import Parameter

    values: dict = {}
    for file in spec.param_files:
        section = read_yaml_mapping(config_dir("ros") / Path(file).name).get(spec.name, {})
        values.update(section.get("ros__parameters", {}))
    values.update(spec.overrides)
    node = node_class(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    node.configure()
    return node


def stored(out: Path) -> list[dict]:
    """Every committed episode: its info and its actions."""
    try:
        with EpisodeStore.open(out / "online_rollouts.zarr") as store:
            return [{**store.episode_info(i), "action": store.get_episode(i)["action"]}
                    for i in range(store.n_episodes)]
    except (FileNotFoundError, OSError, ValueError):
        return []


def test_pause_holds_the_policy_resume_goes_on_and_abort_commits_nothing(ros_context, tiny_base, tmp_path):
    from geometry_msgs.msg import PoseStamped
    from ros_harness import Graph, Probe, call
    from std_msgs.msg import String
    from std_srvs.srv import SetBool, Trigger
    from trajectory_msgs.msg import JointTrajectory

    from robot_learning.ros.finetune_policy_node import LATCHED_QOS, FinetunePolicyNode
    from robot_learning.ros.finetune_session_node import FinetuneSessionNode
    from ros_support import conversions as conv
    from ros_support.node import COMMAND_QOS, STATE_QOS

    root, base = tiny_base
    out = tmp_path / "session"
    specs = evaluate_launch("finetune.launch.py", use_sim="true", success_source="operator", checkpoint=str(base),
                            config=str(root / "rl.yaml"), task="lift", out_dir=str(out), episodes="2",
                            episodes_per_update="1000", live_view="false")
    by_name = {s.name: s for s in specs}  # the learner is not needed to run and commit episodes
    procs = {n: start_node(by_name[n], tmp_path, log=tmp_path / f"{n}.log") for n in ("sim_node", "controller_node")}
    probe = Probe(ros_context, "pause_probe")
    probe.watch(String, "/finetune_policy_node/progress", COMMAND_QOS)
    probe.watch(String, "/finetune_session_node/status", LATCHED_QOS)
    probe.watch(JointTrajectory, "/manip/action", COMMAND_QOS)
    probe.watch(PoseStamped, "/tcp_pose", STATE_QOS)

    def wait(predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
            assert not dead, f"nodes died while waiting for {what}: {dead}; logs in {tmp_path}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}; logs in {tmp_path}"
            time.sleep(0.05)

    def steps() -> int:
        msg = probe.last.get("/finetune_policy_node/progress")
        return json.loads(msg.data)["steps"] if msg is not None else -1

    def status() -> dict:
        msg = probe.last.get("/finetune_session_node/status")
        return json.loads(msg.data) if msg is not None else {}

    def sim_now() -> float:
        return conv.stamp_to_seconds(probe.last["/tcp_pose"].header.stamp)

    def service(kind, name: str, request=None):
        return call(probe, kind, f"/finetune_session_node/{name}", request, timeout=30.0)

    def running(episode: int) -> bool:
        return status().get("phase") == "running" and status().get("episode") == episode

    try:
        policy = in_process(by_name["finetune_policy_node"], ros_context, FinetunePolicyNode)
        session = in_process(by_name["finetune_session_node"], ros_context, FinetuneSessionNode)
        with Graph(ros_context) as graph:
            for node in (policy, session, probe):
                graph.add(node)
            # episode 0 runs a few steps and the operator labels it: committed
            wait(lambda: running(0) and steps() >= 3, 150, "episode 0 to run")
            assert service(SetBool, "label", SetBool.Request(data=True)).success
            wait(lambda: len(stored(out)) == 1, 30, "episode 0 committed")
            first = stored(out)[0]
            assert first["success"] and first["n_steps"] >= 3

            # episode 1: a few steps, then paused
            wait(lambda: running(1), 60, "episode 1 to begin")
            probe.last.pop("/finetune_policy_node/progress", None)  # episode 0's progress is history
            wait(lambda: steps() >= 3, 30, "episode 1 to run")
            reply = service(Trigger, "pause")
            assert reply.success and reply.message == "paused"
            time.sleep(0.5)  # the session loop passes the hold on to the policy node within a poll and a call
            held_steps, held_actions, t0 = steps(), probe.counts["/manip/action"], sim_now()
            wait(lambda: sim_now() - t0 >= PAUSE_SIM_S, 60, f"{PAUSE_SIM_S} s of sim time while paused")
            assert steps() == held_steps, "the policy recorded steps while paused"
            assert probe.counts["/manip/action"] == held_actions, "the policy sent actions while paused"
            assert running(1)  # paused is not ended: the episode is still open, nothing committed
            assert len(stored(out)) == 1

            # resumed: the same episode goes on from where it stopped
            reply = service(Trigger, "resume")
            assert reply.success and reply.message == "resumed"
            wait(lambda: steps() >= held_steps + 3, 30, "episode 1 to go on after resume")
            assert probe.counts["/manip/action"] > held_actions and running(1)

            # aborted: discarded, never committed; episode 0 untouched; the next episode takes index 1
            aborted_at = time.time()
            reply = service(Trigger, "abort")
            assert reply.success and reply.message == "episode aborted"
            wait(lambda: any(o.get("aborted") for o in status().get("outcomes", [])), 30, "the abort in the status")
            assert len(stored(out)) == 1
            wait(lambda: running(1) and status().get("outcomes", [{}])[-1].get("aborted"), 60,
                 "the next episode to begin in the aborted one's place")
            probe.last.pop("/finetune_policy_node/progress", None)
            wait(lambda: steps() >= 2, 30, "the next episode to run")
            assert service(SetBool, "label", SetBool.Request(data=False)).success
            wait(lambda: status().get("phase") == "done", 30, "the session to finish its 2 episodes")
            reply = service(Trigger, "abort")
            assert not reply.success and reply.message == "no episode to abort"
    finally:
        for proc in procs.values():
            stop(proc)
    episodes = stored(out)
    assert len(episodes) == 2
    assert episodes[0]["start_time_unix_s"] == first["start_time_unix_s"]  # the committed episode, as it was
    assert np.array_equal(episodes[0]["action"], first["action"])
    second = episodes[1]
    assert second["start_time_unix_s"] > aborted_at and not second["success"]  # the new one, not the aborted one
    assert len(second["action"]) == second["n_steps"] >= 2
    outcomes = status()["outcomes"]
    assert [(o["committed"], o.get("aborted")) for o in outcomes] == [(0, False), (None, True), (1, False)]
