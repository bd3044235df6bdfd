"""An online fine-tuning session over ROS 2 in the twin, measured: success per episode, time per episode, the
control rate while the learner updates, and a kill and resume. Prints a table, writes a plot.

    python benchmarks/ros/finetune_session.py --checkpoint outputs/peg_base/policy.pt --episodes 20 \\
        --kill-after 10 --plot docs/finetune_ros_peg.png

Runs what ``ros2 launch manip_stack finetune.launch.py use_sim:=true success_source:=twin`` starts, each node its
own process (tests/ros/launch_processes.py: the launch file evaluated, each node started from its console
script), on an isolated ROS_DOMAIN_ID. This process listens to the controller's output (the equilibrium poses
``controller_node`` sends the twin: one per control tick), the learner's weights notifications (when each PPO
update ran) and the policy node's progress. With ``--kill-after N``, once N episodes are committed and the next
one is under way, the learner and the session node get SIGKILL and are started again.

Success comes from the store (what was committed), the control rate from the commands received: per wall second
and per second of sim time (their header stamps), inside PPO updates and outside, with the largest gaps.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "ros"))
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(101, 200))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")


class Monitor:
    """Commands the controller sends (wall receive time, sim stamp), learner updates, policy progress."""

    def __init__(self, pose_topic: str) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        from ros_support import conversions as conv
        from ros_support.node import COMMAND_QOS

        rclpy.init()
        self.node = rclpy.create_node("finetune_benchmark")
        self.commands: list[tuple[float, float]] = []
        self.updates: list[dict] = []
        self.progress: dict = {}
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(
            PoseStamped, pose_topic,
            lambda m: self.commands.append((time.time(), conv.stamp_to_seconds(m.header.stamp))), COMMAND_QOS)
        self.node.create_subscription(String, "/finetune/weights", self._on_weights, latched)
        self.node.create_subscription(String, "/finetune_policy_node/progress",
                                      lambda m: setattr(self, "progress", json.loads(m.data)), COMMAND_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_weights(self, msg) -> None:
        note = json.loads(msg.data)
        if "update_s" in note and note not in self.updates:
            self.updates.append(note)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def committed(out: Path) -> list[dict]:
    from robot_learning.data.episode_store import EpisodeStore

    try:
        with EpisodeStore.open(out / "online_rollouts.zarr") as store:
            return [store.episode_info(i) for i in range(store.n_episodes)]
    except (FileNotFoundError, OSError, ValueError):
        return []


def rate_stats(commands: np.ndarray, windows: list[tuple[float, float]]) -> dict:
    """Commands per wall second and per sim second, and the largest wall/sim gaps, inside ``windows``."""
    if len(windows) == 0 or len(commands) < 2:
        return {"n": 0}
    inside = np.zeros(len(commands), bool)
    for start, end in windows:
        inside |= (commands[:, 0] >= start) & (commands[:, 0] <= end)
    wall_s = sum(end - start for start, end in windows)
    picked = np.flatnonzero(inside)
    pairs = picked[picked > 0]
    pairs = pairs[inside[pairs - 1]]  # consecutive commands both inside
    wall_gaps = commands[pairs, 0] - commands[pairs - 1, 0]
    sim_gaps = commands[pairs, 1] - commands[pairs - 1, 1]
    sim_s = float(sim_gaps.sum()) if len(sim_gaps) else float("nan")
    return {"n": int(inside.sum()), "wall_s": wall_s, "per_wall_s": inside.sum() / wall_s,
            "per_sim_s": len(pairs) / sim_s if sim_s > 0 else float("nan"),
            "max_wall_gap_ms": 1e3 * float(wall_gaps.max()) if len(wall_gaps) else float("nan"),
            "p99_wall_gap_ms": 1e3 * float(np.percentile(wall_gaps, 99)) if len(wall_gaps) else float("nan"),
            "max_sim_gap_ms": 1e3 * float(sim_gaps.max()) if len(sim_gaps) else float("nan")}


def plot(infos: list[dict], kill_at: int | None, updates: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    success = np.array([i["success"] for i in infos], float)
    x = np.arange(len(success))
    fig, (ax, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
    ax.scatter(x, success, c=["tab:green" if s else "tab:red" for s in success], s=18, label="episode (1 = success)")
    ax.plot(x, np.cumsum(success) / (x + 1), label="success so far")
    window = 5
    if len(success) >= window:
        ax.plot(x[window - 1:], np.convolve(success, np.ones(window) / window, "valid"), "--",
                label=f"last {window} episodes")
    for u in updates:
        ax.axvline(u["episodes_consumed"] - 0.5, color="grey", lw=0.5)
    if kill_at is not None:
        ax.axvline(kill_at - 0.5, color="black", lw=1.5, ls=":", label="learner + session SIGKILL, restart")
    ax.set(xlabel="episode (grey: a PPO update after it)", ylabel="success", ylim=(-0.05, 1.05),
           title="success")
    ax.legend(fontsize=7, loc="center right")
    ax_t.bar(x, [i["duration_s"] for i in infos], color="tab:blue")
    ax_t.set(xlabel="episode", ylabel="s (begin to commit, wall)", title="time per episode")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--config", default=str(REPO / "configs/rl/peg_insert_residual_cpu.yaml"))
    parser.add_argument("--task", default="peg_insert")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--episodes-per-update", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=None, help="SIGKILL learner + session mid-episode after "
                        "this many committed episodes, then restart them")
    parser.add_argument("--kill-at-step", type=int, default=20, help="... at this step of the running episode")
    parser.add_argument("--real-time-factor", default="1.0", help="the twin's pace (sim s per wall s)")
    parser.add_argument("--out", default="outputs/finetune_ros_bench")
    parser.add_argument("--plot", default=None)
    parser.add_argument("--timeout-s", type=float, default=3600)
    args = parser.parse_args()
    from launch_processes import evaluate_launch, start_node, stop

    out = Path(args.out).resolve()
    if out.exists():
        raise SystemExit(f"{out} exists: give a new --out")
    out.mkdir(parents=True)
    specs = evaluate_launch("finetune.launch.py", use_sim="true", success_source="twin", checkpoint=args.checkpoint,
                            config=args.config, task=args.task, out_dir=str(out / "session"),
                            episodes=str(args.episodes), episodes_per_update=str(args.episodes_per_update),
                            real_time_factor=args.real_time_factor)
    by_name = {s.name: s for s in specs}
    monitor = Monitor("/cartesian_impedance_controller/equilibrium_pose")
    started = time.time()
    procs = {s.name: start_node(s, out, log=out / f"{s.name}.log") for s in specs}
    kill_at = restart_s = None
    try:
        while len(committed(out / "session")) < args.episodes:
            dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
            if dead:
                raise RuntimeError(f"nodes died: {dead}; logs in {out}")
            if time.time() - started > args.timeout_s:
                raise TimeoutError(f"{len(committed(out / 'session'))} episodes after {args.timeout_s} s")
            n = len(committed(out / "session"))
            if args.kill_after is not None and kill_at is None and n >= args.kill_after and \
                    monitor.progress.get("steps", 0) >= args.kill_at_step and \
                    not monitor.progress.get("horizon_reached"):
                kill_at = n
                for name in ("learner_node", "finetune_session_node"):
                    procs[name].send_signal(signal.SIGKILL)
                    procs[name].wait(timeout=120)  # a killed process still has to be scheduled to exit
                print(f"SIGKILL learner_node and finetune_session_node at step {monitor.progress['steps']} of "
                      f"episode {n}; {n} episodes committed", flush=True)
                t_kill = time.time()
                for name in ("learner_node", "finetune_session_node"):
                    procs[name] = start_node(by_name[name], out, log=out / f"{name}.restarted.log")
                restart_s = t_kill
            time.sleep(0.5)
        deadline = time.time() + 60  # the last update, when the episodes fill one
        while args.episodes % args.episodes_per_update == 0 and time.time() < deadline and \
                not any(u.get("episodes_consumed") == args.episodes for u in monitor.updates):
            time.sleep(0.5)
    finally:
        for name, proc in procs.items():  # every one, even if one is slow to go on a saturated machine
            try:
                stop(proc, timeout=30.0)
            except subprocess.TimeoutExpired:
                print(f"{name} (pid {proc.pid}) did not exit in 30 s after SIGKILL", file=sys.stderr)
        monitor.close()
    infos = committed(out / "session")
    commands = np.array(monitor.commands)
    updates = [u for u in monitor.updates if "update_s" in u]
    in_updates = [(u["started_unix_s"], u["started_unix_s"] + u["update_s"]) for u in updates]
    episodes = [(i["start_time_unix_s"], i["start_time_unix_s"] + i["duration_s"]) for i in infos]
    outside = [w for w in episodes if not any(s < w[1] and e > w[0] for s, e in in_updates)]
    success = np.array([i["success"] for i in infos])
    starts = np.array([i["start_time_unix_s"] for i in infos])
    print(f"\nfinetune over ROS 2 in the twin: {args.task}, base {args.checkpoint}, config {args.config}, "
          f"real_time_factor {args.real_time_factor}")
    print(f"load average at the end {os.getloadavg()}; wall {time.time() - started:.0f} s in all")
    print(f"episodes {len(infos)}: success {int(success.sum())}/{len(infos)} ({success.mean():.0%}); first half "
          f"{success[:len(success) // 2].mean():.0%}, second half {success[len(success) // 2:].mean():.0%}")
    durations = np.array([i["duration_s"] for i in infos])
    steps = np.array([i["n_steps"] for i in infos])
    cycle = np.diff(starts)
    print(f"time per episode (begin to commit): median {np.median(durations):.1f} s (min {durations.min():.1f}, "
          f"max {durations.max():.1f}); steps median {int(np.median(steps))}; episode start to next start "
          f"(with homing and reset) median {np.median(cycle):.1f} s")
    print(f"PPO updates {len(updates)}: median {np.median([u['update_s'] for u in updates]):.2f} s each"
          if updates else "PPO updates: none")
    for label, windows in (("during PPO updates", in_updates), ("episodes without an update", outside)):
        r = rate_stats(commands, windows)
        if r["n"]:
            print(f"controller commands {label}: {r['per_wall_s']:.1f}/s wall, {r['per_sim_s']:.1f}/s sim time, "
                  f"max gap {r['max_wall_gap_ms']:.0f} ms wall (p99 {r['p99_wall_gap_ms']:.0f}), "
                  f"{r['max_sim_gap_ms']:.0f} ms sim ({r['n']} commands in {r['wall_s']:.1f} s)")
    if kill_at is not None:
        after = [i for i in infos if i["start_time_unix_s"] > restart_s]
        print(f"kill and resume: SIGKILL at episode {kill_at} ({kill_at} committed, all {len(infos)} intact and "
              f"readable); after the restart {len(after)} episodes, success {sum(i['success'] for i in after)}/"
              f"{len(after)}; learner updates after the restart: "
              f"{[u['version'] for u in updates if u['started_unix_s'] > restart_s]}")
    state = out / "session" / "online_state.pt"
    if state.exists():
        import torch

        print(f"online_state.pt: episodes_consumed {torch.load(state, weights_only=True)['episodes_consumed']}")
    if args.plot:
        plot(infos, kill_at, updates, Path(args.plot), f"online residual fine-tuning over ROS 2 in the twin: "
             f"{args.task} ({len(infos)} episodes)")
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
