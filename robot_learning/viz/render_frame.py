"""Draw one step of a rerun view from what its ``.rrd`` file holds (read back with rerun's reader), with matplotlib.

rerun's viewer cannot take a screenshot without a display, so ``manip-stack view --png`` and ``docs/`` show this
instead: every camera's colour (and depth) image at the step, a 3-D panel with the cameras' frusta (from the logged
extrinsics and pinholes), the fused cloud, the TCP and its path, object poses and action arrows, and the logged
time series (actions, reward) up to the step. Everything drawn comes from the file, so it also checks the file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from robot_learning.viz.rrd_read import RrdContents, image_at, transform_at

CAMERA_PREFIX = "/world/cameras/"
MAX_SHOWN_DEPTH_M = 3.0  # farther depth (the twin's background) is left blank, so the cell keeps the colour scale


def _camera_names(contents: RrdContents) -> list[str]:
    return sorted({e[len(CAMERA_PREFIX):].split("/")[0] for e in contents.entities if e.startswith(CAMERA_PREFIX)})


def _frustum(T_base_cam: np.ndarray, K: np.ndarray, resolution: tuple[float, float], depth_m: float) -> np.ndarray:
    """The 4 image corners at ``depth_m`` and the camera centre, in the base frame, as a closed line set."""
    w, h = resolution
    Kinv = np.linalg.inv(K)
    corners = [Kinv @ np.array([u, v, 1.0]) * depth_m for u, v in ((0, 0), (w, 0), (w, h), (0, h))]
    pts = [T_base_cam[:3, :3] @ c + T_base_cam[:3, 3] for c in corners]
    centre = T_base_cam[:3, 3]
    lines = []
    for i in range(4):
        lines += [centre, pts[i], pts[(i + 1) % 4], centre]
    return np.asarray(lines)


def _series(contents: RrdContents, entity: str, step: int) -> tuple[np.ndarray, np.ndarray] | None:
    rows = [(s, v) for s, v in contents.values(entity, "Scalars:scalars") if s is not None and s <= step]
    if not rows:
        return None
    return np.array([s for s, _ in rows]), np.array([np.asarray(v, float).reshape(-1) for _, v in rows])


def render_frame(contents: RrdContents, step: int, out: str | Path, title: str = "") -> Path:
    """Write a PNG of ``step`` as the view holds it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cameras = _camera_names(contents)
    images = {c: image_at(contents, f"{CAMERA_PREFIX}{c}/image/rgb", step) for c in cameras}
    depths = {c: image_at(contents, f"{CAMERA_PREFIX}{c}/image/depth", step, "DepthImage") for c in cameras}
    has_depth = any(d is not None for d in depths.values())
    n_cols = max(len(cameras), 1)
    rows = 2 if has_depth else 1
    fig = plt.figure(figsize=(4.2 * n_cols + 7, 3.6 * (rows + 1.3)))
    grid = fig.add_gridspec(rows + 2, n_cols + 2)
    for i, camera in enumerate(cameras):
        ax = fig.add_subplot(grid[0, i])
        if images[camera] is not None:
            ax.imshow(images[camera])
        ax.set_title(f"{camera} colour")
        ax.axis("off")
        if has_depth:
            ax = fig.add_subplot(grid[1, i])
            if depths[camera] is not None:
                depth = depths[camera].astype(float)
                shown = ax.imshow(np.where((depth > 0) & (depth < MAX_SHOWN_DEPTH_M), depth, np.nan), cmap="viridis")
                fig.colorbar(shown, ax=ax, fraction=0.046, label="depth [m]")
            ax.set_title(f"{camera} depth")
            ax.axis("off")
    ax3 = fig.add_subplot(grid[:, n_cols:], projection="3d", computed_zorder=False)  # the cloud stays behind
    _draw_scene(ax3, contents, cameras, step)
    ax_t = fig.add_subplot(grid[rows:, :n_cols])
    _draw_series(ax_t, contents, step)
    fig.suptitle(title or f"{contents.path.name}, step {step}")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _draw_scene(ax, contents: RrdContents, cameras: list[str], step: int) -> None:
    positions = contents.at_step("/world/cloud", "Points3D:positions", step)
    if positions:
        points = np.asarray(positions, dtype=float)
        colours = contents.at_step("/world/cloud", "Points3D:colors", step)
        rgba = None
        if colours:  # packed 0xRRGGBBAA
            c = np.asarray(colours, dtype=np.uint32)
            rgba = np.stack([(c >> 24) & 255, (c >> 16) & 255, (c >> 8) & 255], axis=1) / 255.0
        keep = slice(None, None, max(1, len(points) // 15000))
        ax.scatter(points[keep, 0], points[keep, 1], points[keep, 2], s=1, c=None if rgba is None else rgba[keep],
                   depthshade=False, alpha=0.5, zorder=1)
    for camera in cameras:
        T = transform_at(contents, f"{CAMERA_PREFIX}{camera}", step)
        K = contents.at_step(f"{CAMERA_PREFIX}{camera}/image", "Pinhole:image_from_camera", step)
        res = contents.at_step(f"{CAMERA_PREFIX}{camera}/image", "Pinhole:resolution", step)
        if T is None or K is None or res is None:
            continue
        K = np.asarray(K, dtype=float).reshape(3, 3).T  # stored column-major
        lines = _frustum(T, K, tuple(np.asarray(res, float).reshape(-1)), 0.12)
        ax.plot(lines[:, 0], lines[:, 1], lines[:, 2], color="tab:blue", lw=1)
        ax.text(*T[:3, 3], camera, fontsize=8, color="tab:blue")
    path = contents.at_step("/world/tcp_path", "LineStrips3D:strips", step)
    if path:
        strip = np.asarray(path[0], dtype=float)
        ax.plot(strip[:, 0], strip[:, 1], strip[:, 2], color="goldenrod", lw=2.5, label="TCP path", zorder=5)
    tcp = transform_at(contents, "/world/tcp", step)
    if tcp is not None:
        for axis, colour in zip(range(3), ("r", "g", "b"), strict=True):
            end = tcp[:3, 3] + 0.05 * tcp[:3, axis]
            ax.plot(*np.stack([tcp[:3, 3], end], axis=1), color=colour, lw=2, zorder=6)
    for entity in sorted(e for e in contents.entities if e.startswith("/world/objects/") and e.count("/") == 4):
        T = transform_at(contents, entity, step)
        if T is not None:
            truth = entity.endswith("/ground_truth")
            style = {"marker": "s", "s": 70, "edgecolors": "red", "facecolors": "none"} if truth else \
                {"marker": "x", "s": 110, "color": "cyan"}
            ax.scatter(*T[:3, 3], label=entity.split("/", 3)[-1], zorder=7, linewidths=2.5, **style)
    for kind, colour in (("executed", "green"), ("base", "blue"), ("residual", "orange")):
        origins = contents.at_step(f"/world/actions/{kind}", "Arrows3D:origins", step)
        vectors = contents.at_step(f"/world/actions/{kind}", "Arrows3D:vectors", step)
        if origins and vectors:
            o, v = np.asarray(origins[0], float), np.asarray(vectors[0], float)
            ax.quiver(*o, *v, color=colour, label=f"{kind} action (x5)", zorder=8, lw=2)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_zlabel("z [m]")
    ax.set_title("base frame (z up)")
    ax.legend(loc="upper left", fontsize=7)
    with contextlib.suppress(NotImplementedError):  # older matplotlib: no equal aspect in 3-D
        ax.set_aspect("equal")


def _draw_series(ax, contents: RrdContents, step: int) -> None:
    drawn = False
    for entity, label in (("/actions/executed", "action"), ("/actions/base", "base"), ("/actions/residual", "res.")):
        series = _series(contents, entity, step)
        if series is not None:
            steps, values = series
            for d in range(min(values.shape[1], 3)):
                ax.plot(steps, values[:, d], lw=1, label=f"{label} d{'xyz'[d]} [m]")
            drawn = True
    if not drawn:  # no actions (recordings): the other per-step values, each scaled to its largest
        for entity in sorted(e for e in contents.entities if e.startswith("/scalars/")):
            series = _series(contents, entity, step)
            if series is not None:
                scale = float(np.max(np.abs(series[1]))) or 1.0
                ax.plot(series[0], series[1][:, 0] / scale, lw=1.2, label=f"{entity[9:]} / {scale:.4g}")
                drawn = True
    reward = _series(contents, "/reward", step)
    if reward is not None:
        ax2 = ax.twinx()
        ax2.plot(reward[0], reward[1][:, 0], color="black", lw=1.5, label="reward")
        ax2.set_ylabel("reward")
        ax2.legend(loc="upper right", fontsize=7)
        drawn = True
    ax.axvline(step, color="grey", lw=0.8)
    ax.set_xlabel("step")
    ax.set_title("time series up to this step (action translations, or other values scaled; rerun has them all)")
    if drawn:
        ax.legend(loc="upper left", fontsize=7, ncol=2)
