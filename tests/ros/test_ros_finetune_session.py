"""finetune.launch.py use_sim:=true end to end with real processes: episodes run, a person's teleop steps are
marked, the learner publishes weights; then the learner and the session node are killed (SIGKILL) mid-episode and
restarted: nothing committed is lost, the killed episode is never committed half, and learning resumes from the
store until every episode is learned from."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from launch_processes import evaluate_launch, start_node, stop

from robot_learning.data.episode_store import EpisodeStore

# slow: 165 s on a 2-core machine under a load of ~16 (node start-up dominates)
pytestmark = [pytest.mark.ros, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
EPISODES = 5
HORIZON = 12


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A state-only lift base trained for seconds (the plumbing is checked, not success), a short lift task and
    a tiny residual config."""
    from robot_learning.policies.diffusion.configuration import DiffusionConfig, PolicyTrainingConfig, TrainConfig
    from robot_learning.sessions.collect import collect_expert_episodes
    from robot_learning.sessions.train import train_policy

    root = tmp_path_factory.mktemp("finetune_ros")
    collect_expert_episodes(root / "demos.zarr", task="lift", n_episodes=2, image_size=None, seed=0, progress=False)
    config = PolicyTrainingConfig(
        policy=DiffusionConfig(sim_only=True, camera_keys=[], horizon=8, n_action_steps=4, down_dims=[16, 32],
                               n_groups=4, diffusion_step_embed_dim=16, kernel_size=3, num_inference_steps=4,
                               low_dim_keys=["tcp_position", "tcp_rot6d", "gripper_width", "privileged"]),
        train=TrainConfig(batch_size=16, num_epochs=1, lr_warmup_steps=2, num_threads=1))
    base = train_policy(root / "demos.zarr", config, root / "base", device="cpu", progress=False).policy_path
    task = (REPO / "hardware_configs/tasks/lift.yaml").read_text()
    assert "horizon_steps: 80" in task
    (root / "lift_short.yaml").write_text(task.replace("horizon_steps: 80", f"horizon_steps: {HORIZON}"))
    (root / "rl.yaml").write_text(
        "task: lift\ncell: franka_3cam\nsim_only: true\nbase_inference_steps: 4\nresidual:\n  hidden_sizes: [32, 32]\n"
        "  obs_keys: [tcp_position, tcp_rot6d, gripper_width, privileged]\nppo:\n  update_epochs: 2\n")
    return root, base


def committed(out: Path) -> int:
    try:
        with EpisodeStore.open(out / "online_rollouts.zarr") as store:
            return store.n_episodes
    except (FileNotFoundError, OSError, ValueError):
        return 0


def wait(predicate, timeout: float, what: str, procs: dict) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
        assert not dead, f"nodes died while waiting for {what}: {dead}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_killed_learner_and_session_lose_nothing_committed_and_learning_resumes(ros_context, tiny_base, tmp_path):
    from geometry_msgs.msg import Twist, Vector3
    from ros_harness import Graph, Probe
    from std_msgs.msg import String

    from ros_support.node import COMMAND_QOS

    root, base = tiny_base
    out = tmp_path / "session"
    specs = evaluate_launch("finetune.launch.py", use_sim="true", success_source="twin", checkpoint=str(base),
                            config=str(root / "rl.yaml"), task=str(root / "lift_short.yaml"), out_dir=str(out),
                            episodes=str(EPISODES), episodes_per_update="1", live_view="false", teleop_device="ros")
    assert [s.name for s in specs] == ["sim_node", "controller_node", "finetune_policy_node", "learner_node",
                                       "finetune_session_node"]
    by_name = {s.name: s for s in specs}
    procs = {s.name: start_node(s, tmp_path, log=tmp_path / f"{s.name}.log") for s in specs}
    probe = Probe(ros_context, "finetune_probe")
    probe.watch(String, "/finetune_policy_node/progress", COMMAND_QOS)
    teleop = probe.create_publisher(Twist, "/teleop/cmd_vel", COMMAND_QOS)
    try:
        with Graph(ros_context) as graph:
            graph.add(probe)

            def progress() -> dict:
                msg = probe.last.get("/finetune_policy_node/progress")
                return json.loads(msg.data) if msg is not None else {}

            wait(lambda: progress().get("steps", 0) >= 2, 150, "the first episode to run", procs)
            for _ in range(8):  # a person moves the teleop device for a moment: those steps are marked
                teleop.publish(Twist(linear=Vector3(x=0.05)))
                time.sleep(0.05)
            teleop.publish(Twist())
            wait(lambda: committed(out) >= 2, 60, "two committed episodes", procs)
            wait(lambda: 2 <= progress().get("steps", 0) < HORIZON - 2, 30, "the middle of an episode", procs)
            for name in ("learner_node", "finetune_session_node"):
                procs[name].send_signal(signal.SIGKILL)
                procs[name].wait(timeout=10)
            at_kill = committed(out)
            with EpisodeStore.open(out / "online_rollouts.zarr") as store:
                for i in range(store.n_episodes):
                    assert len(store.get_episode(i)["action"]) == store.episode_info(i)["n_steps"] <= HORIZON
            for name in ("learner_node", "finetune_session_node"):
                procs[name] = start_node(by_name[name], tmp_path, log=tmp_path / f"{name}.restarted.log")

            def learned_all() -> bool:
                state = out / "online_state.pt"
                return state.exists() and torch.load(state, weights_only=True)["episodes_consumed"] == EPISODES

            wait(lambda: committed(out) >= EPISODES and learned_all(), 150, "every episode learned from", procs)
    finally:
        for proc in procs.values():
            stop(proc)
    assert at_kill >= 2
    with EpisodeStore.open(out / "online_rollouts.zarr") as store:
        assert store.n_episodes == EPISODES  # the killed episode was discarded, not committed half
        episodes = [store.get_episode(i) for i in range(EPISODES)]
        info = [store.episode_info(i) for i in range(EPISODES)]
    assert all(len(e["action"]) <= HORIZON and np.isfinite(e["log_prob"]).all() for e in episodes)
    assert sum(int(e["intervention"].sum()) for e in episodes) >= 1  # the teleop steps, marked
    for e in episodes:  # each first observation is of the scene the twin reset to, not the last one's objects
        np.testing.assert_allclose(e["privileged"][0][:3], e["privileged"][1][:3], atol=0.002)
    for e, i in zip(episodes, info, strict=True):  # sparse reward: only the last step can pay, and only on success
        assert e["reward"][:-1].sum() == 0 and e["reward"][-1] == float(i["success"])
    state = torch.load(out / "online_state.pt", weights_only=True)
    assert state["version"] >= 2  # updates before and after the restart
    versions = [i["weights_version"] for i in info]
    # weights only ever move forward, swapped between episodes
    assert versions[0] == -1 and versions == sorted(versions) and versions[-1] >= 1
