"""Compare evaluation reports: success with its 95% interval and how the failures ended, as a table and a plot.

    python benchmarks/eval_outcomes.py base=outputs/base/eval/eval_report.json \
        residual=outputs/rl/eval/eval_report.json --out docs/outcomes.png

Each report is what ``manip-stack eval`` writes; evaluate every policy on the same scenes (``--seed``) so the
rows compare. Where a policy fails says where fine-tuning, data or reward has to act (``sim.tasks.OUTCOMES``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from robot_learning.sessions.evaluate import failures_by_outcome


def load_report(path: Path) -> dict:
    report = json.loads(path.read_text())
    missing = [k for k in ("successes", "n_episodes", "ci95", "episodes") if k not in report]
    if missing:
        raise SystemExit(f"{path}: not an eval_report.json of manip-stack eval (missing {missing})")
    episodes = report["episodes"]
    failures = failures_by_outcome([e["success"] for e in episodes], [e.get("outcome", "unknown") for e in episodes])
    return {**report, "failures": Counter(failures)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="label=path/to/eval_report.json")
    parser.add_argument("--out", type=Path, default=None, help="grouped bar plot (png)")
    args = parser.parse_args()
    runs = []
    for item in args.reports:
        label, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"expected label=path, got {item!r}")
        runs.append((label, load_report(Path(path))))
    total = Counter()
    for _, r in runs:
        total.update(r["failures"])
    outcomes = [o for o, _ in total.most_common()]  # the commonest failure first
    header = f"{'policy':<28} {'success':>16}" + "".join(f" {o:>17}" for o in outcomes)
    print(header)
    for label, r in runs:
        lo, hi = r["ci95"]
        rate = f"{r['successes']}/{r['n_episodes']} ({lo:.0%}-{hi:.0%})"
        print(f"{label:<28} {rate:>16}" + "".join(f" {r['failures'][o]:>17}" for o in outcomes))
    if args.out is not None:
        plot(runs, outcomes, args.out)
        print(f"plot: {args.out}")


def plot(runs: list[tuple[str, dict]], outcomes: list[str], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    categories = ["success", *outcomes]
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(categories) + 2), 3.6), dpi=110)
    x = np.arange(len(categories))
    for i, (label, r) in enumerate(runs):
        counts = [r["successes"], *(r["failures"][o] for o in outcomes)]
        shares = np.array(counts) / r["n_episodes"]
        bars = ax.bar(x + (i - (len(runs) - 1) / 2) * width, shares, width, label=label)
        lo, hi = r["ci95"]
        rate = shares[0]
        ax.errorbar(bars[0].get_x() + width / 2, rate, yerr=[[rate - lo], [hi - rate]], color="k", capsize=3)
    ax.set_xticks(x, categories, fontsize=8)
    ax.set(ylabel="share of episodes", title="how episodes ended (success with its 95% CI)")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)


if __name__ == "__main__":
    main()
