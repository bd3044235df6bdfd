"""Jumps in the commanded TCP velocity and acceleration at chunk boundaries, and success, against inference delay and
the way a new chunk joins the executing one (``robot_learning/runtime/chunking.py``), in the twin.

Each (delay, join) runs the same scenes through ``manip-stack eval``'s rollout (synchronous runners on sim time,
the chunk landing ``delay`` after its observation while the previous chunk executes) and records every commanded
action. Commanded TCP velocity is the action's translation over the policy period [m/s]; acceleration its change
per period [m/s^2]. At a boundary step (the first action of a new chunk) the jump is ``|v_t - v_(t-1)|`` [m/s]
and ``|a_t - a_(t-1)|`` [m/s^2]; the same inside chunks is printed for scale. Holds (no chunk in time) count as
boundaries too: they are stops the arm makes.

Run: ``nice -n 15 python benchmarks/chunk_boundaries.py --checkpoint outputs/demo/policy/policy.pt --episodes 20
[--delays-ms 0 100 300] [--joins none blend rtc] [--task lift]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from robot_learning.runtime.chunking import ChunkingConfig, ChunkJoin
from robot_learning.runtime.policy_runner import PolicyRunner, TimedAction


@dataclass
class Trace:
    """The actions one runner handed out, per episode: (translation [m], chunk id, source) per step."""

    episodes: list[list[tuple[np.ndarray, int, str]]] = field(default_factory=lambda: [[]])

    def add(self, item: TimedAction) -> None:
        self.episodes[-1].append((np.asarray(item.action[:3], np.float64), item.chunk_id, item.source))

    def new_episode(self) -> None:
        if self.episodes[-1]:
            self.episodes.append([])


class RecordingRunner:
    """A :class:`PolicyRunner` that keeps every action it hands out (the benchmark's only addition)."""

    def __init__(self, runner: PolicyRunner) -> None:
        self.runner, self.trace = runner, Trace()

    def observe(self, obs, now_s: float) -> None:
        self.runner.observe(obs, now_s)

    def next_action(self, now_s: float) -> TimedAction:
        item = self.runner.next_action(now_s)
        self.trace.add(item)
        return item

    def reset(self) -> None:
        self.runner.reset()
        self.trace.new_episode()

    def close(self) -> None:
        self.runner.close()


def jumps(episode: list[tuple[np.ndarray, int, str]], period_s: float) -> tuple[list, list, list, list]:
    """(|dv| at boundaries, |dv| inside chunks, |da| at boundaries, |da| inside chunks) of one episode."""
    if len(episode) < 3:
        return [], [], [], []
    v = np.stack([a for a, _, _ in episode]) / period_s
    acc = np.diff(v, axis=0) / period_s  # acc[t - 1] = (v_t - v_(t-1)) / period
    chunk = [c if s == "policy" else -1 - t for t, (_, c, s) in enumerate(episode)]  # each hold its own chunk
    dv_b, dv_in, da_b, da_in = [], [], [], []
    for t in range(1, len(episode)):
        boundary = chunk[t] != chunk[t - 1]
        (dv_b if boundary else dv_in).append(float(np.linalg.norm(v[t] - v[t - 1])))
        if t >= 2:
            (da_b if boundary else da_in).append(float(np.linalg.norm(acc[t - 1] - acc[t - 2])))
    return dv_b, dv_in, da_b, da_in


def run(checkpoint: str, task: str | None, n_episodes: int, n_envs: int, seed: int, chunking: ChunkingConfig,
        device: str) -> dict:
    """One evaluation with recording runners: success and the jump statistics."""
    import torch

    from robot_learning.runtime.loading import load_policy
    from robot_learning.sessions import evaluate
    from sim.vector import make_vector_env

    policy = load_policy(checkpoint, device=device, seed=seed)
    if policy.device.type == "cpu":
        torch.set_num_threads(1)
    cell, task_config = evaluate._cell_and_task(policy, checkpoint, task, None)
    envs = make_vector_env(n_envs, cell=cell, task=task_config, image_size=policy.image_size,
                           asynchronous=n_envs > 1)
    period_s = 1.0 / cell.rates.policy_hz
    runners = [RecordingRunner(r) for r in evaluate._make_runners(
        policy, n_envs, int(envs.single_action_space.shape[0]), period_s, chunking)]
    start = time.monotonic()
    try:
        videos = evaluate._VideoKeeper(None, 0, n_envs, policy.camera_keys, period_s)
        results = evaluate._roll_out(envs, runners, policy, evaluate.episode_quotas(n_episodes, n_envs), seed,
                                     period_s, videos, desc="", progress=False)
    finally:
        envs.close()
        for runner in runners:
            runner.close()
    counted = {(r["env"], r["episode"]) for r in results}
    stats: dict[str, list[float]] = {"dv_b": [], "dv_in": [], "da_b": [], "da_in": []}
    for env, trace in enumerate(r.trace for r in runners):
        for episode, steps in enumerate(trace.episodes):
            if (env, episode) in counted:
                for key, values in zip(stats, jumps(steps, period_s), strict=True):
                    stats[key] += values
    holds = sum(r.runner.stats.holds for r in runners)
    return {"successes": sum(r["success"] for r in results), "n": len(results), "holds": holds,
            "wall_s": time.monotonic() - start, **stats}


def table(rows: list[tuple[float, str, dict]]) -> str:
    def q(values: list[float], p: float) -> str:
        return f"{np.percentile(values, p):.3f}" if values else "-"

    head = (f"{'delay ms':>8} {'join':>8} {'success':>9} {'holds':>6} {'boundaries':>10} {'max dv':>7} {'p95 dv':>7}"
            f" {'max dv in':>9} {'max da':>7} {'p95 da':>7} {'max da in':>9} {'wall s':>7}")
    lines = [head, "-" * len(head)]
    for delay_ms, join, r in rows:
        lines.append(f"{delay_ms:>8.0f} {join:>8} {r['successes']:>4}/{r['n']:<4} {r['holds']:>6} {len(r['dv_b']):>10}"
                     f" {q(r['dv_b'], 100):>7} {q(r['dv_b'], 95):>7} {q(r['dv_in'], 100):>9} {q(r['da_b'], 100):>7}"
                     f" {q(r['da_b'], 95):>7} {q(r['da_in'], 100):>9} {r['wall_s']:>7.0f}")
    lines.append("dv: |change of commanded TCP velocity| in one policy step [m/s]; da: |change of commanded TCP "
                 "acceleration| [m/s^2]; 'in': inside chunks, for scale; join/N: mask decaying over N steps after "
                 "the committed actions (plain: to the overlap's end, as in the RTC paper)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--task", default=None, help="default: the checkpoint's")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--envs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=100_000)
    parser.add_argument("--delays-ms", type=float, nargs="+", default=[0.0, 100.0, 300.0])
    parser.add_argument("--joins", nargs="+", choices=[j.value for j in ChunkJoin], default=["none", "blend", "rtc"])
    parser.add_argument("--decay-steps", type=int, nargs="+", default=[0],
                        help="decay windows of the join's mask to try (0: the RTC paper's, to the overlap's end)")
    parser.add_argument("--rows", nargs="+", default=None,
                        help="explicit rows DELAY_MS:JOIN[:DECAY] instead of the delays x joins x decays grid")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    grid = [(d, j, k) for d in args.delays_ms for j in args.joins for k in (args.decay_steps if j != "none" else [0])]
    if args.rows:
        grid = [(float(r.split(":")[0]), r.split(":")[1], int(r.split(":")[2]) if r.count(":") == 2 else 0)
                for r in args.rows]
    rows = []
    for delay_ms, join, decay in grid:
        chunking = ChunkingConfig(join=join, inference_delay_s=delay_ms / 1000.0, decay_steps=decay or None)
        result = run(args.checkpoint, args.task, args.episodes, args.envs, args.seed, chunking, args.device)
        rows.append((delay_ms, join + (f"/{decay}" if decay else ""), result))
        print(table(rows[-1:]).splitlines()[-2], flush=True)
    print(f"\n{args.checkpoint}, {args.episodes} episodes per row from seed {args.seed}, {args.device}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
