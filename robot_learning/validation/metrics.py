"""Sim-vs-real comparison metrics of one replayed episode: tracking, time lag, object motion, camera views.

- Tracking: TCP position error [m], TCP orientation error [deg], joint error [rad], gripper width error [m].
- Lag: the time shift ``tau`` [s] minimising the TCP error between ``recorded(t)`` and ``simulated(t - tau)``
  (the twin trajectory linearly interpolated, so sub-step lags resolve); positive means the robot executed
  the commands later than the twin did (command latency). Errors are reported at zero lag and at ``tau``.
- Free space: the TCP errors before the gripper is first commanded closed, where only the arm's own
  dynamics act (after that, a different contact can push the arm too).
- Objects: object position error [m], only where the recording holds an object trajectory (a recording
  whose ``privileged`` never changes only had its initial poses measured).
- Cameras, per camera, frames aligned by the lag: zero-mean normalised cross-correlation (NCC) of grey
  images, and the image shift [px] of the recorded view against the twin's (template matching): over the
  first frames (``initial_shift_px``: the scene starts in the same state in both, so only the camera can
  differ there: a wrong extrinsic shifts the whole view), as the median over all frames, and on the
  episode's mean images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from controllers.observations import matrix_from_rot6d
from robot_learning.validation.twin_replay import ReplayResult

LAG_SEARCH_S = 0.5
LAG_RESOLUTION_S = 0.005
MIN_MOTION_FOR_LAG_M = 0.01  # below this the arm barely moved and the lag is undefined
MAX_SHIFT_PX = 8  # image shifts searched, each way
INITIAL_FRAMES = 3  # frames at the start where recorded and twin scenes agree (before any contact)


@dataclass
class CameraMetrics:
    name: str
    ncc_mean: float
    ncc_min: float
    initial_shift_px: tuple[float, float]  # (dx, dy) of the recorded view relative to the twin's, first frames
    shift_px: tuple[float, float]  # median over all frames
    mean_image_shift_px: tuple[float, float]
    frame_ncc: np.ndarray = field(repr=False)

    @property
    def ncc_drop(self) -> float:
        return 1.0 - self.ncc_mean

    @property
    def initial_shift_norm_px(self) -> float:
        return float(np.hypot(*self.initial_shift_px))


@dataclass
class EpisodeMetrics:
    episode: int
    n_steps: int
    tcp_rmse_m: float
    tcp_max_m: float
    rot_rmse_deg: float
    joint_rmse_rad: float
    gripper_rmse_m: float
    lag_s: float
    lag_defined: bool
    tcp_rmse_at_lag_m: float
    joint_rmse_at_lag_rad: float
    gripper_rmse_at_lag_m: float
    object_rmse_m: float | None
    free_space_steps: int  # steps before the gripper was first commanded closed: the arm alone, no grasp
    tcp_rmse_free_m: float
    rot_rmse_free_deg: float
    recorded_success: bool
    simulated_success: bool
    cameras: dict[str, CameraMetrics]
    series: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    delay_steps: int = 0  # > 0: ``delayed`` holds the metrics against a twin replayed with that command delay
    delayed: EpisodeMetrics | None = field(repr=False, default=None)


def _rmse(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(np.atleast_2d(err.T).T ** 2, axis=-1)))) if err.size else 0.0


def _shifted(sim: np.ndarray, lag_s: float, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices of recorded steps, sim values at t - lag) for the steps where t - lag lies inside the episode."""
    t = np.arange(len(sim)) * dt_s - lag_s
    valid = np.flatnonzero((t >= 0.0) & (t <= (len(sim) - 1) * dt_s))
    x = t[valid] / dt_s
    lo = np.clip(np.floor(x).astype(int), 0, len(sim) - 1)
    hi = np.clip(lo + 1, 0, len(sim) - 1)
    w = (x - lo).reshape(-1, *([1] * (sim.ndim - 1)))
    return valid, (1.0 - w) * sim[lo] + w * sim[hi]


def estimate_lag_s(recorded_m: np.ndarray, simulated_m: np.ndarray, dt_s: float) -> tuple[float, bool]:
    """Time shift of the recorded trajectory against the simulated one (see module docstring)."""
    if np.ptp(recorded_m, axis=0).max() < MIN_MOTION_FOR_LAG_M:
        return 0.0, False
    best, best_err = 0.0, np.inf
    min_overlap = max(3, len(recorded_m) // 2)
    for lag in np.arange(-LAG_SEARCH_S, LAG_SEARCH_S + 1e-9, LAG_RESOLUTION_S):
        idx, sim = _shifted(simulated_m, lag, dt_s)
        if len(idx) < min_overlap:
            continue
        err = _rmse(recorded_m[idx] - sim)
        if err < best_err - 1e-12 or (abs(err - best_err) <= 1e-12 and abs(lag) < abs(best)):
            best, best_err = round(float(lag), 6), err
    return best, True


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(img, dtype=np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Zero-mean normalised cross-correlation of two grey images (1: identical up to gain and offset)."""
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 1.0


def image_shift_px(recorded: np.ndarray, simulated: np.ndarray,
                   max_shift_px: int = MAX_SHIFT_PX) -> tuple[float, float]:
    """(dx, dy) [px] by which the recorded grey image is displaced relative to the simulated one.

    The twin's central crop is matched over the recorded image (normalised correlation, every integer shift up to
    ``max_shift_px``), and the peak refined to sub-pixel by a parabola through its neighbours on each axis.
    Larger displacements come out clipped near ``max_shift_px``: still far beyond any threshold.
    """
    r = int(min(max_shift_px, (min(recorded.shape) - 8) // 2))
    template = np.ascontiguousarray(simulated[r:-r, r:-r], dtype=np.float32)
    scores = cv2.matchTemplate(np.ascontiguousarray(recorded, dtype=np.float32), template, cv2.TM_CCOEFF_NORMED)
    y, x = np.unravel_index(int(np.argmax(scores)), scores.shape)

    def refine(minus: float, centre: float, plus: float) -> float:
        curvature = minus - 2.0 * centre + plus
        return 0.0 if curvature >= 0 else float(np.clip(0.5 * (minus - plus) / curvature, -0.5, 0.5))

    dx = x - r + (refine(scores[y, x - 1], scores[y, x], scores[y, x + 1]) if 0 < x < scores.shape[1] - 1 else 0.0)
    dy = y - r + (refine(scores[y - 1, x], scores[y, x], scores[y + 1, x]) if 0 < y < scores.shape[0] - 1 else 0.0)
    return float(dx), float(dy)


def camera_metrics(name: str, recorded: np.ndarray, simulated: np.ndarray, lag_steps: int) -> CameraMetrics:
    """Compare two (T, H, W, 3) uint8 videos, recorded frame k against simulated frame k - lag_steps."""
    ks = [k for k in range(len(recorded)) if 0 <= k - lag_steps < len(simulated)]
    rec = [_grey(recorded[k]) for k in ks]
    sim = [_grey(simulated[k - lag_steps]) for k in ks]
    frame_ncc = np.array([ncc(r, s) for r, s in zip(rec, sim, strict=True)])
    shifts = np.array([image_shift_px(r, s) for r, s in zip(rec, sim, strict=True)])
    mean_shift = image_shift_px(np.mean(rec, axis=0), np.mean(sim, axis=0))
    initial = np.median(shifts[:INITIAL_FRAMES], axis=0)
    median = np.median(shifts, axis=0)
    return CameraMetrics(name, float(frame_ncc.mean()), float(frame_ncc.min()), (float(initial[0]), float(initial[1])),
                         (float(median[0]), float(median[1])), mean_shift, frame_ncc)


def _object_positions(privileged: np.ndarray, n_objects: int) -> np.ndarray:
    return privileged.reshape(len(privileged), -1, 7)[:, :n_objects, :3]


def episode_metrics(result: ReplayResult, n_objects: int = 1) -> EpisodeMetrics:
    rec, sim = result.recorded, result.simulated
    dt_s = 1.0 / result.policy_hz
    tcp_err = np.linalg.norm(rec["tcp_position"] - sim["tcp_position"], axis=1)
    rot_err = np.array([
        np.degrees(np.arccos(np.clip((np.trace(matrix_from_rot6d(a).T @ matrix_from_rot6d(b)) - 1.0) / 2.0, -1.0, 1.0)))
        for a, b in zip(rec["tcp_rot6d"], sim["tcp_rot6d"], strict=True)
    ])
    joint_err = rec["joint_pos"] - sim["joint_pos"]
    grip_err = (rec["gripper_width"] - sim["gripper_width"])[:, 0]
    lag_s, lag_defined = estimate_lag_s(rec["tcp_position"], sim["tcp_position"], dt_s)

    def at_lag(key: str) -> float:
        idx, shifted = _shifted(sim[key].astype(float), lag_s, dt_s)
        return _rmse(rec[key][idx] - shifted)

    object_rmse = None
    if "privileged" in rec and np.ptp(rec["privileged"], axis=0).max() > 0.0:
        obj_rec = _object_positions(rec["privileged"], n_objects)
        obj_sim = _object_positions(sim["privileged"], n_objects)
        object_rmse = _rmse((obj_rec - obj_sim).reshape(len(obj_rec), -1))
    closing = np.flatnonzero(rec["action"][:, 6] >= 0.5)
    free = int(closing[0]) if len(closing) else result.n_steps
    free = free if free >= 3 else result.n_steps
    lag_steps = round(lag_s / dt_s)
    cameras = {n: camera_metrics(n, rec[f"{n}_rgb"], sim[f"{n}_rgb"], lag_steps) for n in result.camera_names}
    return EpisodeMetrics(
        episode=result.episode, n_steps=result.n_steps, tcp_rmse_m=_rmse(tcp_err), tcp_max_m=float(tcp_err.max()),
        rot_rmse_deg=_rmse(rot_err), joint_rmse_rad=_rmse(joint_err), gripper_rmse_m=_rmse(grip_err),
        lag_s=lag_s, lag_defined=lag_defined, tcp_rmse_at_lag_m=at_lag("tcp_position"),
        joint_rmse_at_lag_rad=at_lag("joint_pos"), gripper_rmse_at_lag_m=at_lag("gripper_width"),
        object_rmse_m=object_rmse, free_space_steps=free, tcp_rmse_free_m=_rmse(tcp_err[:free]),
        rot_rmse_free_deg=_rmse(rot_err[:free]), recorded_success=result.recorded_success,
        simulated_success=result.simulated_success, cameras=cameras,
        series={"time_s": np.arange(result.n_steps) * dt_s, "tcp_error_m": tcp_err, "rot_error_deg": rot_err,
                "joint_error_rad": np.abs(joint_err).max(axis=1), "gripper_error_m": np.abs(grip_err)},
    )
