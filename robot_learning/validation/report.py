"""What a person reads after ``manip-stack validate``: PNG plots (matplotlib, headless) and a Markdown report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from robot_learning.validation.diagnosis import Finding, Thresholds
from robot_learning.validation.metrics import EpisodeMetrics
from robot_learning.validation.twin_replay import ReplayResult


@dataclass
class EpisodeValidation:
    episode: int
    metrics: EpisodeMetrics
    findings: list[Finding]
    plot_png: Path | None = None

    @property
    def clean(self) -> bool:
        return not self.findings

    @property
    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]


def summary_ratios(validations: Sequence[EpisodeValidation], t: Thresholds) -> tuple[list[str], np.ndarray]:
    """Metric / threshold per episode (columns: named metrics); above 1 means beyond clean variation."""
    cameras = sorted({c for v in validations for c in v.metrics.cameras})
    names = ["lag", "TCP", "TCP rot", "gripper", "object"] + [f"{c} shift" for c in cameras] + \
        [f"{c} NCC" for c in cameras]
    rows = []
    for v in validations:
        m = v.metrics
        ref = m.delayed or m
        row = [abs(m.lag_s) / t.lag_s if m.lag_defined else 0.0, ref.tcp_rmse_m / t.tcp_rmse_m,
               ref.rot_rmse_deg / t.rot_rmse_deg, ref.gripper_rmse_m / t.gripper_rmse_m,
               (ref.object_rmse_m or 0.0) / t.object_rmse_m]
        row += [ref.cameras[c].initial_shift_norm_px / t.camera_shift_px(c) if c in ref.cameras else 0.0
                for c in cameras]
        row += [ref.cameras[c].ncc_drop / t.camera_ncc_drop(c) if c in ref.cameras else 0.0 for c in cameras]
        rows.append(row)
    return names, np.array(rows)


def plot_summary(validations: Sequence[EpisodeValidation], t: Thresholds, path: Path) -> Path:
    names, ratios = summary_ratios(validations, t)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(names), 1.2 + 0.45 * len(validations)))
    shown = np.log10(np.clip(ratios, 1e-2, 1e3))
    im = ax.imshow(shown, cmap="RdYlGn_r", vmin=-2, vmax=2, aspect="auto")
    for (i, j), r in np.ndenumerate(ratios):
        ax.text(j, i, f"{r:.2g}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(validations)),
                  [f"ep {v.episode}: {', '.join(v.kinds) or 'clean'}" for v in validations], fontsize=8)
    ax.set_title("metric / threshold (above 1: beyond clean-vs-clean variation)", fontsize=9)
    fig.colorbar(im, ax=ax, label="log10 ratio", shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_episode(result: ReplayResult, v: EpisodeValidation, t: Thresholds, path: Path) -> Path:
    """TCP trajectories, errors, gripper, per-camera NCC, and each camera's first frame: robot, twin, difference."""
    m, rec, sim = v.metrics, result.recorded, result.simulated
    time_s = m.series["time_s"]
    cams = result.camera_names
    fig = plt.figure(figsize=(13, 6.5 + 2.2 * bool(cams)))
    grid = fig.add_gridspec(2 + bool(cams), 3 * max(1, len(cams)))
    w = max(1, len(cams))
    ax = fig.add_subplot(grid[0, :w])
    for i, axis in enumerate("xyz"):
        line, = ax.plot(time_s, rec["tcp_position"][:, i], label=f"{axis} robot")
        ax.plot(time_s, sim["tcp_position"][:, i], "--", color=line.get_color(), label=f"{axis} twin")
    ax.set(title="TCP position [m]", xlabel="t [s]")
    ax.legend(fontsize=6, ncol=3)
    ax = fig.add_subplot(grid[0, w : 2 * w])
    ax.plot(time_s, m.series["tcp_error_m"] * 1e3, label="TCP error")
    if m.delayed is not None:
        ax.plot(time_s, m.delayed.series["tcp_error_m"] * 1e3, label=f"vs twin with {m.delay_steps}-step delay")
    ax.axhline(t.tcp_rmse_m * 1e3, color="r", ls=":", label="RMSE threshold")
    ax.set(title=f"TCP error [mm] (lag {m.lag_s * 1e3:.0f} ms)", xlabel="t [s]")
    ax.legend(fontsize=6)
    ax = fig.add_subplot(grid[0, 2 * w :])
    ax.plot(time_s, rec["gripper_width"][:, 0] * 1e3, label="robot")
    ax.plot(time_s, sim["gripper_width"][:, 0] * 1e3, "--", label="twin")
    ax.set(title=f"gripper width [mm] (success robot {m.recorded_success}, twin {m.simulated_success})",
           xlabel="t [s]")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6)
    ax = fig.add_subplot(grid[1, : 3 * w // 2])
    ax.plot(time_s, np.degrees(m.series["joint_error_rad"]), label="max joint error [deg]")
    ax.plot(time_s, m.series["rot_error_deg"], label="TCP orientation error [deg]")
    ax.set(title="orientation and joints", xlabel="t [s]")
    ax.legend(fontsize=6)
    ax = fig.add_subplot(grid[1, 3 * w // 2 :])
    for name, cam in m.cameras.items():
        ax.plot(cam.frame_ncc, label=f"{name} (initial shift {cam.initial_shift_norm_px:.1f} px)")
    ax.set(title="image NCC robot vs twin, per frame", xlabel="frame", ylim=(min(0.5, ax.get_ylim()[0]), 1.01))
    ax.legend(fontsize=6)
    for j, name in enumerate(cams):
        a, b = rec[f"{name}_rgb"][0], sim[f"{name}_rgb"][0]
        diff = np.abs(a.astype(int) - b.astype(int)).sum(-1)
        for k, (img, label) in enumerate([(a, "robot"), (b, "twin"), (diff, "|diff|")]):
            ax = fig.add_subplot(grid[2, 3 * j + k])
            ax.imshow(img, cmap="magma" if img.ndim == 2 else None)
            ax.set_title(f"{name} {label}", fontsize=7)
            ax.axis("off")
    fig.suptitle(f"episode {v.episode}: {'; '.join(v.kinds) or 'clean'}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _mm(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.2f}"


def write_markdown(store: str, validations: Sequence[EpisodeValidation], t: Thresholds, summary_png: Path | None,
                   path: Path) -> Path:
    n_clean = sum(v.clean for v in validations)
    lines = [
        "# Sim-to-real validation", "",
        f"Store `{store}`: {len(validations)} episode(s) replayed in the twin from their recorded initial state; "
        f"**{n_clean} clean**, {len(validations) - n_clean} with findings.", "",
        f"Thresholds: {t.margin:g} x the worst of {t.n_clean_episodes} clean-vs-clean episode(s) ({t.source}), "
        "never below the measurement floor.", "",
        "| metric | threshold |", "|---|---|",
        f"| TCP RMSE | {_mm(t.tcp_rmse_m)} mm |", f"| TCP orientation RMSE | {t.rot_rmse_deg:.2f} deg |",
        f"| joint RMSE (reported, not judged alone) | {t.joint_rmse_rad:.4f} rad |",
        f"| gripper width RMSE | {_mm(t.gripper_rmse_m)} mm |", f"| object position RMSE | {_mm(t.object_rmse_m)} mm |",
        f"| lag | {t.lag_s * 1e3:.0f} ms |",
    ]
    lines += [f"| {c} first-frame shift / NCC drop | {t.shift_px[c]:.2f} px / {t.ncc_drop[c]:.4f} |"
              for c in sorted(t.shift_px)]
    if summary_png is not None:
        lines += ["", f"![summary]({summary_png.name})"]
    lines += ["", "## Episodes", "",
              "| ep | steps | lag ms | TCP mm | joints rad | gripper mm | object mm | success robot/twin | findings |",
              "|---|---|---|---|---|---|---|---|---|"]
    for v in validations:
        m = v.metrics
        ref = m.delayed or m
        lines.append(f"| {v.episode} | {m.n_steps} | {m.lag_s * 1e3:.0f} | {_mm(ref.tcp_rmse_m)} | "
                     f"{ref.joint_rmse_rad:.4f} | {_mm(ref.gripper_rmse_m)} | {_mm(ref.object_rmse_m)} | "
                     f"{m.recorded_success}/{m.simulated_success} | {', '.join(v.kinds) or 'clean'} |")
    for v in validations:
        lines += ["", f"### Episode {v.episode}", ""]
        lines += [f"- **{f.kind}**: {f.message}" for f in v.findings] or ["- clean: every metric within thresholds"]
        cams = (v.metrics.delayed or v.metrics).cameras
        lines += [f"- {c}: NCC {cm.ncc_mean:.4f}, first-frame shift ({cm.initial_shift_px[0]:+.2f}, "
                  f"{cm.initial_shift_px[1]:+.2f}) px, mean-image shift ({cm.mean_image_shift_px[0]:+.2f}, "
                  f"{cm.mean_image_shift_px[1]:+.2f}) px" for c, cm in cams.items()]
        if v.plot_png is not None:
            lines += ["", f"![episode {v.episode}]({v.plot_png.name})"]
    path.write_text("\n".join(lines) + "\n")
    return path
