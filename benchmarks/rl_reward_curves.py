"""Compare residual-PPO runs that differ in their reward: one plot, and env steps to reach a success rate.

Each run is a ``manip-stack finetune --out`` directory (its ``finetune_log.csv``). Training success is smoothed
over ``--window`` iterations (each iteration holds only a handful of episodes); evaluations are the runs' own
(same scenes for every point since the base row at iteration 0). Seeds of one reward share a colour: label
them ``reward/seed``. Example, after runs from one base:

    python benchmarks/rl_reward_curves.py sparse/0=outputs/rl_dev/cmp_sparse sparse/1=outputs/rl_dev/s1_sparse \\
        robohorizon_pbrs/0=outputs/rl_dev/cmp_pbrs --out docs/rl_rewards.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def load(run: Path) -> dict[str, np.ndarray]:
    with (run / "finetune_log.csv").open() as f:
        rows = list(csv.DictReader(f))
    trained = [r for r in rows if r["train_success"] != ""]
    evals = [r for r in rows if r["eval_success"] != ""]
    return {"steps": np.array([float(r["env_steps"]) for r in trained]),
            "success": np.array([float(r["train_success"]) for r in trained]),
            "episodes": np.array([float(r["episodes"]) for r in trained]),
            "eval_steps": np.array([float(r["env_steps"]) for r in evals]),
            "eval": np.array([float(r["eval_success"]) for r in evals])}


def smoothed(curve: dict[str, np.ndarray], window: int) -> np.ndarray:
    """Episode-weighted success over the last ``window`` iterations (NaN until the window is full)."""
    wins = curve["success"] * curve["episodes"]
    out = np.full(len(wins), np.nan)
    for i in range(window - 1, len(wins)):
        out[i] = wins[i - window + 1 : i + 1].sum() / max(curve["episodes"][i - window + 1 : i + 1].sum(), 1)
    return out


def steps_to(curve: dict[str, np.ndarray], values: np.ndarray, rate: float) -> float | None:
    hit = np.flatnonzero(values >= rate)
    return float(curve["steps"][hit[0]]) if hit.size else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="label=run_dir")
    parser.add_argument("--rate", type=float, default=0.5, help="success rate to reach")
    parser.add_argument("--window", type=int, default=10, help="iterations in the training-success average")
    parser.add_argument("--out", type=Path, default=Path("outputs/rl_reward_curves.png"))
    parser.add_argument("--title", default="residual PPO on one base, rewards compared (KAGI keypoints and stage plan "
                        "from oracles: what a good model answers, not a measured model)")
    args = parser.parse_args()
    runs = {label: load(Path(path)) for label, path in (item.split("=", 1) for item in args.runs)}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    colours = {}
    reached_by_reward: dict[str, list[float | None]] = {}
    print(f"env steps to reach {args.rate:.0%} success (training, {args.window}-iteration average)")
    print(f"{'run':<22} {'steps':>8} {'final avg':>10} {'final eval':>11} {'budget':>8}")
    for label, curve in runs.items():
        reward, _, seed = label.partition("/")
        colour = colours.setdefault(reward, f"C{len(colours)}")
        style = ["-", "--", ":", "-."][int(seed) % 4 if seed.isdigit() else 0]
        values = smoothed(curve, args.window)
        reached = steps_to(curve, values, args.rate)
        reached_by_reward.setdefault(reward, []).append(reached)
        ax_t.plot(curve["steps"], values, color=colour, ls=style, label=label)
        ax_e.plot(curve["eval_steps"], curve["eval"], "o", color=colour, ls=style, ms=3, label=label)
        print(f"{label:<22} {'not' if reached is None else f'{reached:.0f}':>8} {values[-1]:>10.2f} "
              f"{curve['eval'][-1]:>11.2f} {curve['steps'][-1]:>8.0f}")
    print("\nper reward: median over seeds (a seed that never reached counts as its whole budget, a lower bound)")
    for reward, reached in reached_by_reward.items():
        budgets = [runs[label]["steps"][-1] for label in runs if label.partition("/")[0] == reward]
        as_steps = [r if r is not None else b for r, b in zip(reached, budgets, strict=True)]
        censored = sum(r is None for r in reached)
        print(f"{reward:<22} {np.median(as_steps):>8.0f}  ({len(reached)} seeds, {censored} not reached)")
    for ax, title in ((ax_t, f"training success ({args.window}-iteration average)"),
                      (ax_e, "evaluation (deterministic, same scenes)")):
        ax.axhline(args.rate, color="grey", ls="--", lw=0.8)
        ax.set(xlabel="env steps", title=title, ylim=(0, 1.02))
        ax.legend(loc="upper left", fontsize=8)
    ax_t.set_ylabel("success rate")
    fig.suptitle(args.title)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
