"""How much a PPO update of ``learner_node`` takes from the control loop on this machine, per way of running the
learner: the twin and ``controller_node`` run over ROS 2 (as ``finetune.launch.py use_sim:=true`` starts them), a
scripted policy in this process sends a hold action every policy tick (so the controller commands every tick),
and learner processes, one per setting, take turns running the same PPO update (``--episodes-per-update``
committed episodes of a session's store, the session's config) with pauses between updates. Prints, per setting,
the controller's commands per sim second and per wall second inside its updates, and outside any update, with the
largest gaps. Settings alternate update by update, so a changing machine load falls on all of them alike.

    nice -n 15 python benchmarks/ros/learner_interference.py --session outputs/h20_peg28/session \\
        --checkpoint outputs/peg_base/policy.pt --updates 12 --settings nice/0 idle/0 idle/1

A setting is ``PRIORITY/RATIO``: PRIORITY ``nice`` (+10 on the nice value, as learner_node did before) or
``idle`` (SCHED_IDLE), RATIO the ``yield_ratio`` (sleep that many times each optimiser step's compute).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from finetune_session import REPO, rate_stats  # noqa: E402 - sets an isolated ROS_DOMAIN_ID on import

os.environ.setdefault("MUJOCO_GL", "egl")


def worker(args: argparse.Namespace) -> int:
    """One learner setting: an update on the last ``episodes_per_update`` episodes each time a line arrives."""
    import torch

    from robot_learning.rl.base_policy import load_frozen_base
    from robot_learning.sessions.online_actor import STORE_NAME, load_finetune_config
    from robot_learning.sessions.online_learner import CpuYield, OnlineLearner, lower_priority

    priority, ratio = args.worker.split("/")
    done = lower_priority(10, idle=priority == "idle")
    torch.set_num_threads(1)
    config = load_finetune_config(args.config)
    base = load_frozen_base(Path(args.checkpoint), config, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:  # its own online_state.pt; the store read-only through a link
        (Path(tmp) / STORE_NAME).symlink_to(Path(args.session).resolve() / STORE_NAME)
        learner = OnlineLearner(Path(tmp), config, base.action_low, base.action_high, args.episodes_per_update,
                                CpuYield(float(ratio)))
        with learner._open() as store:
            first = store.n_episodes - args.episodes_per_update
        learner.episodes_consumed = first
        learner.poll()  # builds the residual and PPO, and trains the critic once (the warm-up update)
        snapshot = copy.deepcopy((learner.policy.state_dict(), learner.updater.state_dict()))
        print(json.dumps({"ready": done}), flush=True)
        for _ in sys.stdin:  # every update from the same weights: the same update each time
            learner.policy.load_state_dict(snapshot[0])
            learner.updater.load_state_dict(copy.deepcopy(snapshot[1]))
            learner.episodes_consumed = first
            report = learner.poll()
            print(json.dumps({"started_unix_s": report.started_unix_s, "update_s": report.update_s,
                              "yielded_s": report.yielded_s, "steps": report.steps}), flush=True)
    return 0


class Graph:
    """This process's node: the controller's commands (wall receive time, sim stamp) and a hold action per
    policy tick on the twin's clock."""

    def __init__(self) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from trajectory_msgs.msg import JointTrajectory

        from controllers.actions import ACTION_NAMES
        from hardware_configs import load_cell
        from ros_support import conversions as conv
        from ros_support.node import COMMAND_QOS, STATE_QOS

        rclpy.init()
        self.node = rclpy.create_node("learner_interference", parameter_overrides=[Parameter("use_sim_time",
                                                                                             value=True)])
        self.commands: list[tuple[float, float]] = []
        self.tcp_stamp: float | None = None
        f, hold = conv.RclpyFactory(), np.zeros(len(ACTION_NAMES))

        def act() -> None:
            if self.tcp_stamp is not None:
                self._act.publish(conv.joint_trajectory_msg(f, ACTION_NAMES, [hold], [0.0], self.tcp_stamp))

        self._act = self.node.create_publisher(JointTrajectory, "/manip/action", COMMAND_QOS)
        self.node.create_subscription(PoseStamped, "/tcp_pose", lambda m: setattr(
            self, "tcp_stamp", conv.stamp_to_seconds(m.header.stamp)), STATE_QOS)
        self.node.create_subscription(
            PoseStamped, "/cartesian_impedance_controller/equilibrium_pose",
            lambda m: self.commands.append((time.time(), conv.stamp_to_seconds(m.header.stamp))), COMMAND_QOS)
        self.node.create_timer(1.0 / load_cell("franka_3cam").rates.policy_hz, act)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--session", required=True, help="a session folder with online_rollouts.zarr")
    parser.add_argument("--checkpoint", required=True, help="the session's base (its action bounds)")
    parser.add_argument("--config", default=str(REPO / "configs/rl/peg_insert_residual_cpu.yaml"))
    parser.add_argument("--episodes-per-update", type=int, default=4)
    parser.add_argument("--updates", type=int, default=10, help="updates per setting")
    parser.add_argument("--pause-s", type=float, default=3.0, help="wall seconds between updates")
    parser.add_argument("--settings", nargs="+", default=["nice/0", "idle/0", "idle/1"])
    parser.add_argument("--real-time-factor", default="0.25")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    for setting in args.settings:
        priority, _, ratio = setting.partition("/")
        if priority not in ("nice", "idle") or not ratio.replace(".", "", 1).isdigit():
            raise SystemExit(f"setting {setting!r}: PRIORITY/RATIO, PRIORITY nice or idle, RATIO a number >= 0")
    sys.path.insert(0, str(REPO / "tests" / "ros"))
    from launch_processes import evaluate_launch, start_node, stop

    out = Path(tempfile.mkdtemp(prefix="learner_interference_"))
    specs = [s for s in evaluate_launch("finetune.launch.py", use_sim="true", success_source="twin",
                                        checkpoint=args.checkpoint, real_time_factor=args.real_time_factor)
             if s.name in ("sim_node", "controller_node")]
    graph = Graph()
    procs = {s.name: start_node(s, out, log=out / f"{s.name}.log") for s in specs}
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    workers = {s: subprocess.Popen([sys.executable, __file__, "--worker", s, "--session", args.session,
                                    "--checkpoint", args.checkpoint, "--config", args.config,
                                    "--episodes-per-update", str(args.episodes_per_update)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
               for s in args.settings}
    updates: dict[str, list[dict]] = {s: [] for s in args.settings}
    started = time.time()
    try:
        for s, proc in workers.items():
            print(f"{s}: {json.loads(proc.stdout.readline())['ready']}", flush=True)
        deadline = time.monotonic() + 300
        while len(graph.commands) < 50:  # the controller commanding
            dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"no controller commands (dead: {dead}); logs in {out}")
            time.sleep(0.5)
        for i in range(args.updates):
            for s, proc in workers.items():
                time.sleep(args.pause_s)
                proc.stdin.write("update\n")
                proc.stdin.flush()
                updates[s].append(json.loads(proc.stdout.readline()))
            print(f"round {i + 1}/{args.updates}: load {os.getloadavg()[0]:.1f}", flush=True)
        time.sleep(args.pause_s)
    finally:
        for proc in workers.values():
            proc.stdin.close()
            proc.wait(timeout=30)
        for proc in procs.values():
            stop(proc)
        graph.close()
    commands = np.array(graph.commands)
    every = [(u["started_unix_s"], u["started_unix_s"] + u["update_s"]) for s in updates for u in updates[s]]
    ends = sorted(every)
    outside = [(a[1] + 0.2, b[0] - 0.2) for a, b in itertools.pairwise(ends) if b[0] - a[1] > 0.5]
    print(f"\nlearner updates vs the control loop over ROS 2 in the twin (real_time_factor {args.real_time_factor}): "
          f"{args.updates} updates per setting of {args.episodes_per_update} episodes "
          f"({updates[args.settings[0]][0]['steps']} steps); load average at the end {os.getloadavg()}; "
          f"{time.time() - started:.0f} s")
    print("| setting | update s (median; of it asleep) | commands per sim s | per wall s | largest gap sim ms | "
          "largest gap wall ms (p99) | commands |")
    print("|---|---|---|---|---|---|---|")
    rows = [(s, [(u["started_unix_s"], u["started_unix_s"] + u["update_s"]) for u in updates[s]]) for s in updates]
    for name, windows in [*rows, ("outside updates", outside)]:
        r = rate_stats(commands, windows)
        took = f"{np.median([u['update_s'] for u in updates[name]]):.2f}; " \
               f"{np.median([u['yielded_s'] for u in updates[name]]):.2f}" if name in updates else "-"
        if r["n"]:
            print(f"| {name} | {took} | {r['per_sim_s']:.1f} | {r['per_wall_s']:.1f} | {r['max_sim_gap_ms']:.0f} | "
                  f"{r['max_wall_gap_ms']:.0f} ({r['p99_wall_gap_ms']:.0f}) | {r['n']} in {r['wall_s']:.1f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
