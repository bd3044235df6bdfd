"""Success against the number of DDIM denoising steps, sampled and from zero noise, per trained policy (#21).

Each (policy, steps, noise) runs ``manip-stack eval``'s rollout in-process (:func:`evaluate_policy`: synchronous
runners on sim time, the twin waiting while the policy thinks) on the same new scenes (one seed per policy, the
same for every setting), so rows differ only in how the chunk is sampled. ``sampled``: DDIM from a Gaussian
sample (the plain checkpoint's default); ``zero-noise``: DDIM from x_T = 0 (deterministic; what residual RL runs
its base with). Per row: successes k/n, rate, Wilson 95% CI, mean wall ms per chunk on this machine (the fast
sampler of :mod:`robot_learning.runtime.fast_inference`, 1 torch thread) and the wall time of the row.

Rows are appended to ``--json`` as they finish, and a rerun skips rows already there (same checkpoint, steps,
noise, episodes, seed), so a long run can be stopped and resumed. ``--png`` plots success (with its CI) against
steps, two lines per task, and ms per chunk beside it.

Run: ``nice -n 15 env OMP_NUM_THREADS=1 python benchmarks/denoising_steps.py
--policy lift=outputs/demo/policy/policy.pt:50 --policy peg_insert=outputs/peg_base/policy.pt:100
--json docs/denoising_steps.json --png docs/denoising_steps.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import product
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

NOISES = {"sampled": False, "zero-noise": True}


def parse_policy(spec: str) -> tuple[str, str, int]:
    """``TASK=CHECKPOINT[:EPISODES]`` -> (task, checkpoint, episodes); episodes default to 50."""
    task, sep, rest = spec.partition("=")
    if not sep or not task or not rest:
        raise argparse.ArgumentTypeError(f"--policy {spec!r}: expected TASK=CHECKPOINT[:EPISODES]")
    path, _, episodes = rest.rpartition(":") if rest.rsplit(":", 1)[-1].isdigit() else (rest, "", "50")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"--policy {spec!r}: no checkpoint at {path}")
    if int(episodes) < 1:
        raise argparse.ArgumentTypeError(f"--policy {spec!r}: episodes must be >= 1")
    return task, path, int(episodes)


def run_row(task: str, checkpoint: str, episodes: int, steps: int, noise: str, seed: int, envs: int,
            device: str, spacing: str = "leading") -> dict[str, Any]:
    """One eval at ``steps`` DDIM steps and the given noise; the figures the table and plot need."""
    from robot_learning.sessions.evaluate import evaluate_policy

    start = time.monotonic()
    # the spacing goes through the loader's override (DiffusionConfig.timestep_spacing): the model's scheduler, the
    # fast sampler and the chunk joiner all follow it
    report = evaluate_policy(checkpoint, task=task, n_episodes=episodes, n_envs=envs, seed=seed, n_videos=0,
                             device=device, progress=False, num_inference_steps=steps, zero_noise=NOISES[noise],
                             timestep_spacing=spacing)
    lo, hi = report.ci95
    return {"task": task, "checkpoint": checkpoint, "steps": steps, "noise": noise, "spacing": spacing,
            "episodes": episodes, "seed": seed, "successes": report.successes, "rate": report.success_rate,
            "ci95": [lo, hi],
            "ms_per_chunk": report.runner.get("inference_ms_mean"), "chunks": report.runner.get("chunks"),
            "mean_episode_steps": report.mean_steps, "failures": report.failures_by_outcome,
            "episode_successes": [bool(e["success"]) for e in sorted(report.episodes, key=lambda e: e["episode"])],
            "wall_s": time.monotonic() - start}


def same_row(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (all(a[k] == b[k] for k in ("task", "checkpoint", "steps", "noise", "episodes", "seed"))
            and a.get("spacing", "leading") == b.get("spacing", "leading"))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per (task, steps, noise)."""
    lines = ["| task | steps | noise | spacing | success | rate | 95% CI | ms/chunk | wall s |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ms = f"{r['ms_per_chunk']:.1f}" if r["ms_per_chunk"] is not None else "-"
        lines.append(f"| {r['task']} | {r['steps']} | {r['noise']} | {r.get('spacing', 'leading')} "
                     f"| {r['successes']}/{r['episodes']} "
                     f"| {r['rate']:.0%} | {r['ci95'][0]:.0%}-{r['ci95'][1]:.0%} | {ms} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], png: Path) -> Path:
    """Left: success rate with its Wilson 95% CI against steps (log2 axis), two lines per task; right: ms/chunk."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, task in enumerate(tasks):
        for noise, spacing, style, offset in (("sampled", "leading", "-o", -0.06),
                                              ("zero-noise", "leading", "--s", -0.02),
                                              ("sampled", "trailing", ":^", 0.02),
                                              ("zero-noise", "trailing", "-.v", 0.06)):
            most = {}  # per step count, the row with the most episodes (a setting rerun at more episodes)
            for r in rows:
                same = r["task"] == task and r["noise"] == noise and r.get("spacing", "leading") == spacing
                if same and (r["steps"] not in most or r["episodes"] > most[r["steps"]]["episodes"]):
                    most[r["steps"]] = r
            sel = [most[steps] for steps in sorted(most)]
            if not sel:
                continue
            name = noise if spacing == "leading" else f"{noise}, trailing"
            x = [r["steps"] * 2 ** offset for r in sel]  # nudged apart so the error bars do not overlap
            y = [r["rate"] for r in sel]
            err = [[r["rate"] - r["ci95"][0] for r in sel], [r["ci95"][1] - r["rate"] for r in sel]]
            ns = sorted({r["episodes"] for r in sel})
            label = f"{task} {name} (n={'/'.join(map(str, ns))})"
            ax_s.errorbar(x, y, yerr=err, fmt=style, color=colours[i], capsize=3, label=label)
            ms = [(r["steps"], r["ms_per_chunk"]) for r in sel if r["ms_per_chunk"] is not None]
            if ms:
                ax_t.plot([s for s, _ in ms], [t for _, t in ms], style, color=colours[i], label=f"{task} {name}")
    for ax in (ax_s, ax_t):
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8, 16], ["1", "2", "4", "8", "16"])
        ax.set_xlabel("DDIM denoising steps")
        ax.grid(alpha=0.3)
    ax_s.set_ylim(0, 1.02)
    ax_s.set_ylabel("success rate (95% Wilson CI)")
    ax_s.set_title("success vs denoising steps (same scenes per task)")
    ax_s.legend(fontsize=8, loc="lower right")
    ax_t.set_yscale("log")
    ax_t.set_ylabel("ms per chunk (this CPU, 1 thread)")
    ax_t.set_title("ms per chunk in the eval (load-dependent)")
    ax_t.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=parse_policy, action="append", required=True,
                        help="TASK=CHECKPOINT[:EPISODES], repeatable")
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 8, 4, 2, 1])
    parser.add_argument("--noises", nargs="+", choices=list(NOISES), default=list(NOISES))
    parser.add_argument("--spacings", nargs="+", choices=["leading", "trailing"], default=["leading"],
                        help="DDIM timestep spacing (leading: the library's; trailing: the candidate few-step sampler)")
    parser.add_argument("--seed", type=int, default=300_000, help="first scene seed (new scenes)")
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=Path("denoising_steps.json"))
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    if any(s < 1 for s in args.steps):
        parser.error(f"--steps must be >= 1, got {args.steps}")
    rows: list[dict[str, Any]] = json.loads(args.json.read_text())["rows"] if args.json.is_file() else []
    for task, checkpoint, episodes in args.policy:
        for steps in args.steps:
            for noise, spacing in product(args.noises, args.spacings):
                want = {"task": task, "checkpoint": checkpoint, "steps": steps, "noise": noise, "spacing": spacing,
                        "episodes": episodes, "seed": args.seed}
                if any(same_row(r, want) for r in rows):
                    continue
                rows.append(run_row(task, checkpoint, episodes, steps, noise, args.seed, args.envs, args.device,
                                    spacing))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps({"machine": os.uname().nodename, "rows": rows}, indent=2))
    order = {(t, c): i for i, (t, c, _) in enumerate(args.policy)}
    shown = sorted((r for r in rows if (r["task"], r["checkpoint"]) in order),
                   key=lambda r: (order[(r["task"], r["checkpoint"])], -r["steps"], r["noise"],
                                  r.get("spacing", "leading")))
    print(f"\nseed {args.seed}, {args.envs} env(s), {args.device}")
    print(table(shown))
    if args.png:
        print(f"plot: {plot(shown, args.png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
