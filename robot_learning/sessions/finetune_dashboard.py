"""The operator's live view of an online fine-tuning session, headless: a PNG rewritten in place (atomically) and
one log line per refresh, so it works over ssh, in CI and on a robot PC without a display.

What it shows: a camera, the session's phase and episode, success so far (per episode and the running rate),
interventions, the current stage of a RoboHorizon plan if a node publishes one, and the controller's safety
events (counts since it started).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def summary_line(status: Mapping, safety: Mapping[str, int], stage: str | None) -> str:
    outcomes = [o for o in status.get("outcomes", []) if not o.get("aborted")]
    wins = sum(bool(o.get("success")) for o in outcomes)
    events = ", ".join(f"{k} {v}" for k, v in sorted(safety.items()) if v) or "none"
    rate = f"{wins}/{len(outcomes)}" if outcomes else "-"
    return (f"phase {status.get('phase', '?')} | episode {status.get('episode', -1)} step {status.get('step', 0)} | "
            f"success {rate} | weights v{status.get('weights_version', -1)} | stage {stage or '-'} | "
            f"safety events: {events}")


def render_dashboard(path: Path, image: np.ndarray | None, status: Mapping, safety: Mapping[str, int],
                     stage: str | None, title: str = "online fine-tuning") -> Path:
    """Write the dashboard PNG to ``path`` (via a temporary file and a rename: a viewer never sees half a file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outcomes = [o for o in status.get("outcomes", []) if not o.get("aborted")]
    fig, (ax_img, ax_curve) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    if image is not None:
        ax_img.imshow(image)
    else:
        ax_img.text(0.5, 0.5, "no camera image", ha="center", va="center")
    ax_img.set_axis_off()
    if outcomes:
        success = np.array([bool(o.get("success")) for o in outcomes], dtype=float)
        x = np.array([o["index"] for o in outcomes])
        ax_curve.plot(x, np.cumsum(success) / np.arange(1, len(success) + 1), "-", label="success so far")
        ax_curve.scatter(x, success, s=12, c=["tab:green" if s else "tab:red" for s in success], label="episode")
        ax_curve.legend(loc="lower right", fontsize=8)
    ax_curve.set(xlabel="episode", ylabel="success", ylim=(-0.05, 1.05))
    ax_curve.set_title(summary_line(status, safety, stage).replace(" | ", "\n", 2), fontsize=8, loc="left")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path
