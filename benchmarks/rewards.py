"""What the rewards buy and cost, measured in the twin on the lift task.

    python benchmarks/rewards.py cost                 # table: queries, tokens, USD, ms per episode and per step
    python benchmarks/rewards.py curves               # learning curves: sparse vs KAGI vs RoboHorizon (minutes)
    python benchmarks/rewards.py curves --quick       # a smoke run

Model answers come from the in-repo oracle over real HTTP (``oracle_local``: the fake OpenAI-compatible server
answering as a good model would); tokens are the fake server's estimates and dollars use GPT-4o list prices.

The learner (benchmark only; the residual PPO of issue 7 replaces it): the noisy cross-entropy method over a
6-parameter controller on privileged state -- grasp offset from the cube (3), approach height, closing
distance, lift height -- with the yaw aligned to the cube by a fixed rule and 2 mm action noise. Each candidate
is scored by the return of one 35-step episode (all candidates of an iteration on the same scene: common
random numbers) that does not end at success (so holding the cube up keeps
earning the success reward, as in Meta-World); when every return ties (sparse, nothing succeeded) the sampling
distribution is kept, not collapsed onto arbitrary elites. The same seeds, scenes and learner for all rewards.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import numpy as np

from controllers.observations import matrix_from_rot6d
from geometry.transforms import matrix_to_axis_angle
from robot_learning.rewards.base import PotentialShapedReward, RewardFunction, SparseSuccessReward
from robot_learning.rewards.kagi import KagiReward, TwinKeyframes
from robot_learning.rewards.session import model_client, plan_for_task
from robot_learning.rewards.stages import make_stage_reward
from sim.env import TwinEnv
from sim.experts import R_DOWN, quat_yaw, rot_z, tcp_yaw, wrap_quarter_turn

HORIZON = 35
OUT = Path("outputs/benchmarks/rewards")
THETA_NAMES = ("grasp_dx_m", "grasp_dy_m", "grasp_dz_m", "approach_height_m", "close_within_m", "lift_height_m")
THETA_MEAN0 = np.array([0.0, 0.0, 0.04, 0.0, 0.01, 0.0])
THETA_STD0 = np.array([0.03, 0.03, 0.03, 0.04, 0.01, 0.08])
GOOD_THETA = np.array([0.0, 0.0, -0.005, 0.05, 0.01, 0.15])  # a converged policy, for the cost table


class PickController:
    """A parametrised pick-and-lift controller (the learner's policy class); Markov in the observation
    except for remembering that it closed the gripper."""

    def __init__(self, theta: np.ndarray, rng: np.random.Generator, max_step_m: float = 0.025):
        self.theta, self.rng, self.max_step_m = theta, rng, max_step_m
        self.closed_steps = 0
        self.start_z: float | None = None

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        cube, tcp = obs["privileged"][:3].astype(float), obs["tcp_position"].astype(float)
        if self.start_z is None:
            self.start_z = float(cube[2])
        grasp = cube + self.theta[:3]
        gripper = 0.0
        if self.closed_steps == 0:
            far_xy = np.linalg.norm(tcp[:2] - grasp[:2]) > 0.01
            target = grasp + np.array([0.0, 0.0, max(self.theta[3], 0.0)]) if far_xy else grasp
            if np.linalg.norm(tcp - grasp) < abs(self.theta[4]):
                self.closed_steps = 1
        if self.closed_steps > 0:
            gripper = 1.0
            self.closed_steps += 1
            target = grasp if self.closed_steps < 6 else np.array([tcp[0], tcp[1], self.start_z + self.theta[5]])
        delta = target - tcp
        delta *= min(1.0, self.max_step_m / max(np.linalg.norm(delta), 1e-9))
        current = tcp_yaw(obs["tcp_rot6d"])
        yaw = current + wrap_quarter_turn(quat_yaw(obs["privileged"][3:7]) - current)
        rot = matrix_to_axis_angle(rot_z(yaw) @ R_DOWN @ matrix_from_rot6d(obs["tcp_rot6d"]).T)
        rot *= min(1.0, 0.06 / max(np.linalg.norm(rot), 1e-9))
        delta = delta + self.rng.normal(0.0, 0.002, 3)
        return np.concatenate([delta, rot, [gripper]]).astype(np.float32)


def rollout(env: TwinEnv, reward: RewardFunction, theta: np.ndarray, seed: int,
            timing: dict[str, float]) -> tuple[float, bool]:
    obs, info = env.reset(seed=seed)
    t0 = time.perf_counter()
    reward.reset(obs, info)
    timing["reset_ms"] += (time.perf_counter() - t0) * 1e3
    policy = PickController(theta, np.random.default_rng(seed))
    total, ever_success = 0.0, False
    for _ in range(HORIZON):
        action = policy.act(obs)
        next_obs, _, _, _, info = env.step(action)
        t0 = time.perf_counter()
        r, _ = reward(obs, action, next_obs, info)
        timing["step_ms"] += (time.perf_counter() - t0) * 1e3
        timing["steps"] += 1
        total += r
        ever_success |= bool(info["success"])
        obs = next_obs
    timing["episodes"] += 1
    return total, ever_success


def cem(env: TwinEnv, reward: RewardFunction, iterations: int, population: int, seed: int,
        timing: dict[str, float], args_std_floor: float = 0.2) -> list[dict[str, float]]:
    """Noisy CEM (Szita and Lorincz 2006): the sampling std is floored at a fraction of its start, so the search
    cannot collapse (onto whatever the first elites share) before the task is solved."""
    rng = np.random.default_rng(seed)
    mean, std = THETA_MEAN0.copy(), THETA_STD0.copy()
    n_elite = max(3, population // 4)
    curve, steps = [], 0
    for it in range(iterations):
        thetas = mean + std * rng.standard_normal((population, len(mean)))
        scene_seed = seed * 100_000 + it  # common random numbers: candidates are ranked on the same scene
        results = [rollout(env, reward, th, seed=scene_seed, timing=timing) for th in thetas]
        returns = np.array([r for r, _ in results])
        steps += population * HORIZON
        curve.append({"iteration": it, "env_steps": steps, "success_rate": float(np.mean([s for _, s in results])),
                      "mean_return": float(returns.mean())})
        if np.ptp(returns) > 1e-9:  # no signal, no update: ties would collapse onto arbitrary elites
            elite = thetas[np.argsort(returns)[-n_elite:]]
            mean = 0.8 * elite.mean(axis=0) + 0.2 * mean
            std = np.maximum(0.8 * elite.std(axis=0) + 0.2 * std, args_std_floor * THETA_STD0)
        print(f"  it {it:2d} steps {steps:6d} success {curve[-1]['success_rate']:.2f} return {returns.mean():.2f} "
              f"theta {np.round(mean, 3).tolist()}", flush=True)
    return curve


def make_reward(name: str, env: TwinEnv, client: object, plan: object) -> RewardFunction:
    if name.endswith("_pbrs"):
        return PotentialShapedReward(make_reward(name.removesuffix("_pbrs"), env, client, plan))
    if name == "sparse":
        return SparseSuccessReward()
    if name == "kagi":
        return KagiReward(env.task_config, client, TwinKeyframes(env))  # type: ignore[arg-type]
    return make_stage_reward(plan, env.task_config)  # type: ignore[arg-type]


def steps_to_rate(curve: list[dict[str, float]], rate: float) -> int | None:
    """Env steps when the success rate, averaged over two consecutive iterations, first reaches ``rate``."""
    for a, b in itertools.pairwise(curve):
        if (a["success_rate"] + b["success_rate"]) / 2 >= rate:
            return int(b["env_steps"])
    return None


def cmd_curves(args: argparse.Namespace) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    env = TwinEnv(task="lift", image_size=None)
    results: dict[str, list[list[dict[str, float]]]] = {}
    if args.resume and (OUT / "curves.json").is_file():  # keep finished seeds (runs are deterministic per seed)
        results = {k: v[: args.seeds] for k, v in json.loads((OUT / "curves.json").read_text()).items()
                   if k in args.rewards}
    with model_client("oracle_local", env.task_config, OUT / "fm_cache.sqlite") as client:
        plan = plan_for_task(client, env.task_config)
        print("RoboHorizon plan:", plan.check.summary() if plan.check else plan.reason)
        for name in args.rewards:
            for seed in range(len(results.get(name, [])), args.seeds):
                timing = {"reset_ms": 0.0, "step_ms": 0.0, "steps": 0, "episodes": 0}
                print(f"{name} seed {seed}", flush=True)
                curve = cem(env, make_reward(name, env, client, plan), args.iterations, args.population, seed, timing,
                            args.std_floor)
                results.setdefault(name, []).append(curve)
                (OUT / "curves.json").write_text(json.dumps(results))
    env.close()
    table = results_table(results, args.rate).splitlines()
    print("\n".join(table))
    (OUT / "curves.md").write_text("\n".join(table) + "\n")
    plot_curves(results, args.rate, OUT / "learning_curves.png")


def results_table(results: dict[str, list[list[dict[str, float]]]], rate: float) -> str:
    budget = max(c[-1]["env_steps"] for curves in results.values() for c in curves)
    table = [f"| reward | seeds reaching {rate:.0%} | env steps to {rate:.0%}, per seed (- = not within "
             f"{budget}) | mean success over training | final success (mean) |", "|---|---|---|---|---|"]
    for name, curves in results.items():
        reached = [steps_to_rate(c, rate) for c in curves]
        per_seed = ", ".join("-" if r is None else str(r) for r in reached)
        during = np.mean([[p["success_rate"] for p in c] for c in curves])
        final = np.mean([c[-1]["success_rate"] for c in curves])
        hits = sum(r is not None for r in reached)
        table.append(f"| {name} | {hits}/{len(curves)} | {per_seed} | {during:.2f} | {final:.2f} |")
    return "\n".join(table)


def plot_curves(results: dict[str, list[list[dict[str, float]]]], rate: float, path: Path) -> None:
    """Left: mean success rate over seeds (band: standard error). Right: the fraction of seeds that have
    reached ``rate`` by each step budget -- the criterion the comparison is about."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, curves in results.items():
        steps = np.array([p["env_steps"] for p in curves[0]])
        rates = np.array([[p["success_rate"] for p in c] for c in curves])
        mean, sem = rates.mean(axis=0), rates.std(axis=0) / np.sqrt(len(curves))
        (line,) = left.plot(steps, mean, marker=".", label=f"{name} ({len(curves)} seeds)")
        left.fill_between(steps, mean - sem, mean + sem, color=line.get_color(), alpha=0.12)
        reached = [steps_to_rate(c, rate) for c in curves]
        frac = [np.mean([r is not None and r <= n for r in reached]) for n in steps]
        right.step(steps, frac, where="post", color=line.get_color(), label=name)
    left.axhline(rate, color="grey", ls="--", lw=1)
    left.set_xlabel("env steps (10 Hz policy steps)")
    left.set_ylabel("success rate of the sampled policies")
    left.set_ylim(-0.02, 1.02)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.set_xlabel("env steps (10 Hz policy steps)")
    right.set_ylabel(f"fraction of seeds that reached {rate:.0%}")
    right.set_ylim(-0.02, 1.02)
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="upper left")
    fig.suptitle("Lift in the twin: noisy CEM over a 6-parameter pick controller; KAGI and RoboHorizon answers "
                 "from an oracle standing in for a good VLM/LLM", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def cmd_cost(args: argparse.Namespace) -> None:
    env = TwinEnv(task="lift", image_size=None)
    rows = []
    with model_client("oracle_local", env.task_config, None) as client:
        t0 = time.perf_counter()
        plan = plan_for_task(client, env.task_config)
        plan_s = time.perf_counter() - t0
        plan_usage = client.usage.snapshot()
        for name in ("sparse", "kagi", "robohorizon"):
            before = client.usage.snapshot()
            timing = {"reset_ms": 0.0, "step_ms": 0.0, "steps": 0, "episodes": 0}
            reward = make_reward(name, env, client, plan)
            for episode in range(args.episodes):
                rollout(env, reward, GOOD_THETA, 900 + episode, timing)
            after = client.usage.snapshot()
            n = timing["episodes"]
            queries = (after["http_attempts"] - before["http_attempts"]) / n
            tokens = (after["prompt_tokens"] - before["prompt_tokens"] + after["completion_tokens"]
                      - before["completion_tokens"]) / n
            usd = (after["cost_usd"] - before["cost_usd"]) / n
            rows.append(f"| {name} | {queries:.2f} | {tokens:.0f} | {usd * 1000:.2f} | {timing['reset_ms'] / n:.1f} | "
                        f"{timing['step_ms'] / timing['steps']:.3f} |")
    env.close()
    header = ["| reward | model queries / episode | tokens / episode | mUSD / episode (GPT-4o prices) | "
              "reset ms / episode | reward ms / step |", "|---|---|---|---|---|---|"]
    plan_tokens = plan_usage["prompt_tokens"] + plan_usage["completion_tokens"]
    note = (f"RoboHorizon planning, once per task: {plan_usage['http_attempts']:.0f} queries, "
            f"{plan_tokens:.0f} tokens, "
            f"{plan_usage['cost_usd'] * 1000:.2f} mUSD, {plan_s:.1f} s including the demo check "
            f"({plan.check.summary() if plan.check else plan.reason})")
    print("\n".join(header + rows))
    print(note)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cost.md").write_text("\n".join(header + rows) + "\n\n" + note + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("curves")
    p.add_argument("--rewards", nargs="+", default=["sparse", "kagi", "robohorizon", "kagi_pbrs", "robohorizon_pbrs"],
                   help="a _pbrs suffix: the same progress as a potential (pays for progress, not for staying)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--population", type=int, default=12)
    p.add_argument("--std-floor", type=float, default=0.2, help="CEM std floor, fraction of the initial std")
    p.add_argument("--rate", type=float, default=0.5, help="the fixed success rate to reach")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--resume", action="store_true", help="keep the seeds already in curves.json, run the rest")
    p = verbs.add_parser("plot", help="redraw learning_curves.png and curves.md from curves.json")
    p.add_argument("--rate", type=float, default=0.5)
    p = verbs.add_parser("cost")
    p.add_argument("--episodes", type=int, default=5)
    args = parser.parse_args()
    if args.verb == "plot":
        results = json.loads((OUT / "curves.json").read_text())
        print(results_table(results, args.rate))
        plot_curves(results, args.rate, OUT / "learning_curves.png")
        return
    if args.verb == "curves":
        if args.quick:
            args.seeds, args.iterations, args.population = 1, 3, 6
        cmd_curves(args)
    else:
        cmd_cost(args)


if __name__ == "__main__":
    main()
