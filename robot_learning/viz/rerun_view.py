"""One rerun recording of what a cell saw and did, on one timeline: the logger every view goes through.

``manip-stack view`` (episode stores and RealSense recordings) and live sessions (``collect``/``eval`` with
``--view`` or ``--rrd``) build a :class:`RerunView` and call :meth:`RerunView.log_step` once per policy step.
Headless machines write an ``.rrd`` file (``rerun out.rrd`` opens it); with ``spawn=True`` a viewer opens.

Entity tree (the robot base frame, z up, metres)::

    world/workspace                         the cell's workspace box (static)
    world/cameras/<cam>                     T_base_optical: static cameras once, wrist cameras per step
    world/cameras/<cam>/image               pinhole of the logged image size (optical frame: x right, y down,
                                            z forward), so images and depth sit in 3-D where the camera is
    world/cameras/<cam>/image/rgb, /depth   the frames (depth in metres)
    world/cloud                             the fused cloud (when the step has depth, or a cloud is given)
    world/objects/<name>/estimated          pose and shape from the object-state estimator (key ``estimated``)
    world/objects/<name>/ground_truth       the twin's exact pose (key ``privileged``: twin episodes only)
    world/tcp, world/tcp_path               the TCP pose (axes) and the episode's path so far
    world/actions/<kind>                    the translation of executed/base/residual actions, as arrows at the TCP
    actions/<kind>                          every action dimension as a time series
    reward, scalars/<key>, intervention     per-step values (scalars/estimate_confidence/<object> with ``estimated``)
    events                                  text log: episodes, interventions, safety events

Timelines: ``step`` (counts across episodes), ``time`` (seconds; episodes laid end to end, so one timeline
holds a whole store) and ``episode``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from controllers.actions import ACTION_NAMES
from geometry.transforms import invert, pose_to_matrix
from hardware_configs.schema import CameraMount, CellConfig, Intrinsics, TaskConfig

log = logging.getLogger(__name__)

ACTION_ARROW_SCALE = 5.0  # a 1 cm action translation is drawn as a 5 cm arrow
MAX_PATH_POINTS = 2000
POSE_DIM = 7  # position [m] + quaternion (x, y, z, w): the layout of ``privileged`` and ``estimated``
ARROW_COLOURS = {"executed": (40, 200, 40), "base": (60, 120, 255), "residual": (255, 140, 0)}
POSE_KINDS = {"estimated": "estimated", "privileged": "ground_truth"}


def scaled_intrinsics(intr: Intrinsics, width: int, height: int) -> Intrinsics:
    """The camera's intrinsics with its image resized to ``width`` x ``height`` (how stores keep images)."""
    sx, sy = width / intr.width, height / intr.height
    return intr.model_copy(update={"width": width, "height": height, "fx": intr.fx * sx, "fy": intr.fy * sy,
                                   "cx": intr.cx * sx, "cy": intr.cy * sy})


def _viewer_on_path() -> None:
    """rerun spawns the viewer found on PATH; the one rerun-sdk installs sits beside this interpreter, which is not
    on PATH when the venv's ``manip-stack`` runs without the venv activated."""
    import os
    import shutil
    import sys

    bundled = Path(sys.executable).with_name("rerun")
    if shutil.which("rerun") is None and bundled.exists():
        os.environ["PATH"] = f"{bundled.parent}{os.pathsep}{os.environ.get('PATH', '')}"


class RerunView:
    """Log a cell's cameras, cloud, objects, TCP, actions, rewards and events to one rerun recording.

    ``rrd_path``: write an ``.rrd`` file (headless); ``spawn``: open a viewer instead. ``cloud``: fuse the
    cameras' depth into a base-frame cloud when a step has depth (needs open3d, the ``camera`` extra).
    """

    def __init__(self, cell: CellConfig, task: TaskConfig | None = None, rrd_path: str | Path | None = None, *,
                 spawn: bool = False, application_id: str = "manip_stack", recording_id: str | None = None,
                 cloud: bool = True, voxel_m: float = 0.005) -> None:
        import rerun as rr

        if rrd_path is None and not spawn:
            raise ValueError("RerunView needs somewhere to log: an rrd_path (headless) or spawn=True (a viewer)")
        self.rr, self.cell, self.task = rr, cell, task
        self.viewer_lost = False
        self.rec = rr.RecordingStream(application_id, recording_id=recording_id)
        self.rrd_path = Path(rrd_path) if rrd_path is not None else None
        if self.rrd_path is not None:
            if self.rrd_path.suffix != ".rrd":
                raise ValueError(f"{self.rrd_path}: rerun files end in .rrd")
            self.rrd_path.parent.mkdir(parents=True, exist_ok=True)
            self.rec.save(str(self.rrd_path))
        else:
            _viewer_on_path()
            self.rec.spawn()
        self.cameras = {c.name: c for c in cell.cameras}
        T_flange_tcp = np.eye(4)
        T_flange_tcp[:3, 3] = cell.robot.tcp_offset_m
        self._T_tcp_flange = invert(T_flange_tcp)
        self.cloud_enabled, self.voxel_m = cloud, voxel_m
        self._fusers: dict[tuple, Any] = {}
        self._pinholes: dict[str, tuple[int, int]] = {}
        self._shapes_logged: set[str] = set()
        self._safety_counts: dict[str, int] = {}
        self._path: list[np.ndarray] = []
        self.steps_logged, self.episode = 0, -1
        self._offset_s = self._last_s = 0.0
        self._episode_start_s: float | None = None
        self._period_s = 1.0 / cell.rates.policy_hz
        self._steps_in_episode = 0
        self._warned: set[str] = set()
        self._log_static()

    # ------------------------------------------------------------------ static scene
    def _log_static(self) -> None:
        rr, rec = self.rr, self.rec
        rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        box = self.cell.workspace
        lo, hi = np.asarray(box.min_m), np.asarray(box.max_m)
        rec.log("world/workspace", rr.Boxes3D(centers=[(lo + hi) / 2], half_sizes=[(hi - lo) / 2],
                                              colors=[(160, 160, 160)], labels=["workspace"]), static=True)
        for name, camera in self.cameras.items():
            if camera.mount is CameraMount.static:
                self._log_transform(f"world/cameras/{name}", camera.extrinsics.matrix(), static=True)
        rec.log("world/tcp", rr.TransformAxes3D(0.05), static=True)
        for kind in ("executed", "base", "residual"):
            rec.log(f"actions/{kind}", rr.SeriesLines(names=[f"{kind} {n}" for n in ACTION_NAMES]), static=True)

    def _log_transform(self, entity: str, T: np.ndarray, static: bool = False) -> None:
        self.rec.log(entity, self.rr.Transform3D(translation=T[:3, 3], mat3x3=T[:3, :3]), static=static)

    def _log_pinhole(self, camera: str, width: int, height: int) -> None:
        if self._pinholes.get(camera) == (width, height):
            return
        intr = scaled_intrinsics(self.cameras[camera].intrinsics, width, height)
        self.rec.log(f"world/cameras/{camera}/image",
                     self.rr.Pinhole(image_from_camera=intr.matrix(), resolution=[width, height],
                                     camera_xyz=self.rr.ViewCoordinates.RDF, image_plane_distance=0.15),
                     static=True)
        self._pinholes[camera] = (width, height)

    # ------------------------------------------------------------------ episodes and time
    def start_episode(self, index: int, info: Mapping[str, Any] | None = None) -> None:
        """A new episode: its times follow the last step's, and the TCP path starts again."""
        if self.steps_logged:
            self._offset_s = self._last_s + self._period_s
        self.episode, self._episode_start_s, self._path = index, None, []
        self._set_time(self._offset_s)
        detail = ", ".join(f"{k} {v}" for k, v in (info or {}).items())
        self.rec.log("events", self.rr.TextLog(f"episode {index} starts" + (f" ({detail})" if detail else ""),
                                               level=self.rr.TextLogLevel.INFO))

    def _set_time(self, t_s: float) -> None:
        self.rec.set_time("step", sequence=self.steps_logged)
        self.rec.set_time("time", duration=t_s)
        self.rec.set_time("episode", sequence=max(self.episode, 0))

    # ------------------------------------------------------------------ one step
    def log_step(self, obs: Mapping[str, np.ndarray], action: np.ndarray | None = None,
                 reward: float | None = None, *, t_s: float | None = None,
                 base_action: np.ndarray | None = None, residual: np.ndarray | None = None,
                 intervention: bool | None = None, scalars: Mapping[str, float] | None = None,
                 events: Sequence[str] = (), safety_counts: Mapping[str, int] | None = None,
                 cloud: tuple[np.ndarray, np.ndarray] | None = None,
                 estimates: Mapping[str, np.ndarray | None] | None = None) -> None:
        """Log one step: an observation dict (the stack's keys), what was done and what came of it.

        ``t_s``: the step's time within its episode [s] (default: steps at the policy rate). ``cloud``: a fused
        (points [m], colours in [0, 1]) to log instead of fusing the step's depth. ``estimates``: object name ->
        4x4 ``T_base_object`` (None when not found), from the object-state estimator. ``safety_counts``: the
        safety filter's event counts so far; increases are logged as events.
        """
        rr, rec = self.rr, self.rec
        if self._episode_start_s is None:
            self._episode_start_s = 0.0 if t_s is None else float(t_s)
            self._steps_in_episode = 0
        rel_s = (float(t_s) - self._episode_start_s) if t_s is not None else self._steps_in_episode * self._period_s
        self._last_s = self._offset_s + rel_s
        self._set_time(self._last_s)
        T_base_tcp = self._log_tcp(obs)
        T_base_flange = None if T_base_tcp is None else T_base_tcp @ self._T_tcp_flange
        self._log_cameras(obs, T_base_flange)
        if cloud is None and self.cloud_enabled:
            cloud = self._fuse(obs, T_base_flange)
        if cloud is not None:
            points, colours = cloud
            rec.log("world/cloud", rr.Points3D(points, colors=colours, radii=0.002))
        self._log_objects(obs, estimates)
        tcp_position = None if T_base_tcp is None else T_base_tcp[:3, 3]
        for kind, values in (("executed", action), ("base", base_action), ("residual", residual)):
            if values is not None:
                self._log_action(kind, np.asarray(values, dtype=np.float64).reshape(-1), tcp_position)
        if reward is not None:
            rec.log("reward", rr.Scalars(float(reward)))
        for key, value in (scalars or {}).items():
            rec.log(f"scalars/{key}", rr.Scalars(float(value)))
        if intervention is not None:
            rec.log("intervention", rr.Scalars(float(bool(intervention))))
            if intervention:
                rec.log("events", rr.TextLog("intervention: a person's teleop action was executed",
                                             level=rr.TextLogLevel.WARN))
        if safety_counts is not None:
            self._log_safety(safety_counts)
        for text in events:
            rec.log("events", rr.TextLog(text, level=rr.TextLogLevel.INFO))
        self.steps_logged += 1
        self._steps_in_episode += 1

    def _log_tcp(self, obs: Mapping[str, np.ndarray]) -> np.ndarray | None:
        if "tcp_position" not in obs or "tcp_quaternion" not in obs:
            return None
        T = pose_to_matrix(np.asarray(obs["tcp_position"], float), np.asarray(obs["tcp_quaternion"], float))
        self._log_transform("world/tcp", T)
        self._path.append(T[:3, 3].copy())
        self._path = self._path[-MAX_PATH_POINTS:]
        self.rec.log("world/tcp_path", self.rr.LineStrips3D([np.asarray(self._path)], colors=[(255, 220, 0)],
                                                            radii=0.002))
        return T

    def _log_cameras(self, obs: Mapping[str, np.ndarray], T_base_flange: np.ndarray | None) -> None:
        rr, rec = self.rr, self.rec
        for name, camera in self.cameras.items():
            rgb, depth = obs.get(f"{name}_rgb"), obs.get(f"{name}_depth")
            if rgb is None and depth is None:
                continue
            height, width = (rgb if rgb is not None else depth).shape[:2]
            self._log_pinhole(name, width, height)
            if camera.mount is CameraMount.wrist:
                if T_base_flange is None:
                    self._warn_once(f"wrist-{name}", f"{name} is a wrist camera and the step has no TCP pose: "
                                                     "its image is logged without a place in 3-D")
                else:
                    self._log_transform(f"world/cameras/{name}", T_base_flange @ camera.extrinsics.matrix())
            if rgb is not None:
                rec.log(f"world/cameras/{name}/image/rgb", rr.Image(np.asarray(rgb, dtype=np.uint8)))
            if depth is not None:
                rec.log(f"world/cameras/{name}/image/depth", rr.DepthImage(np.asarray(depth, np.float32), meter=1.0))

    def fused_cloud(self, obs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
        """The step's depth images fused into a base-frame cloud (points [m], colours in [0, 1]), as
        :meth:`log_step` logs it; None without depth (or without open3d)."""
        T_base_tcp = None
        if "tcp_position" in obs and "tcp_quaternion" in obs:
            T_base_tcp = pose_to_matrix(np.asarray(obs["tcp_position"], float),
                                        np.asarray(obs["tcp_quaternion"], float))
        return self._fuse(obs, None if T_base_tcp is None else T_base_tcp @ self._T_tcp_flange)

    def _fuse(self, obs: Mapping[str, np.ndarray], T_base_flange: np.ndarray | None):
        """The step's depth images fused as perception fuses live frames (``PointCloudFuser``)."""
        names = [n for n in self.cameras if f"{n}_depth" in obs and f"{n}_rgb" in obs]
        if T_base_flange is None:
            names = [n for n in names if self.cameras[n].mount is CameraMount.static]
        if not names:
            return None
        try:
            from perception.cameras.base import Frame
            from perception.pointcloud import PointCloudFuser
        except ImportError as exc:  # open3d is in the camera extra
            self._warn_once("open3d", f"no fused cloud ({exc}); install the camera extra")
            return None
        sizes = tuple((n, obs[f"{n}_depth"].shape) for n in names)
        fuser = self._fusers.get(sizes)
        if fuser is None:
            intrinsics = {n: scaled_intrinsics(self.cameras[n].intrinsics, s[1], s[0]) for n, s in sizes}
            fuser = self._fusers[sizes] = PointCloudFuser(self.cell, intrinsics=intrinsics, voxel_m=self.voxel_m,
                                                          stride=1)
        frames = {n: Frame(n, np.asarray(obs[f"{n}_rgb"], np.uint8), np.asarray(obs[f"{n}_depth"], np.float32), 0.0)
                  for n in names}
        fused = fuser.fuse(frames, T_base_flange)
        return fused.points_m, fused.colors

    def _object_names(self) -> list[str]:
        if self.task is None:
            return []
        return [o.name for o in self.task.objects] + [f.name for f in self.task.fixtures]

    def _log_objects(self, obs: Mapping[str, np.ndarray], estimates: Mapping[str, np.ndarray | None] | None) -> None:
        poses: dict[str, dict[str, np.ndarray | None]] = {}
        names = self._object_names()
        for key, kind in POSE_KINDS.items():
            if key not in obs:
                continue
            flat = np.asarray(obs[key], dtype=np.float64).reshape(-1)
            if not names or flat.size != POSE_DIM * len(names):
                self._warn_once(key, f"'{key}' holds {flat.size} values; with the task's objects and fixtures "
                                     f"{names} it should hold {POSE_DIM * len(names)}: not shown")
                continue
            rows = flat.reshape(-1, POSE_DIM)
            poses[kind] = {n: pose_to_matrix(p[:3], p[3:]) for n, p in zip(names, rows, strict=True)}
        if estimates is not None:
            poses["estimated"] = dict(estimates)
        confidence = np.asarray(obs.get("estimate_confidence", []), dtype=np.float64).reshape(-1)
        if names and confidence.size == len(names):  # the estimator's confidence per object and fixture, 0 = lost
            for name, value in zip(names, confidence, strict=True):
                self.rec.log(f"scalars/estimate_confidence/{name}", self.rr.Scalars(float(value)))
        for kind, by_name in poses.items():
            for name, T in by_name.items():
                entity = f"world/objects/{name}/{kind}"
                if T is None:
                    self.rec.log(entity, self.rr.Clear(recursive=True))
                    self._shapes_logged.discard(entity)
                    continue
                self._log_transform(entity, np.asarray(T, dtype=np.float64))
                self._log_shape(entity, name, kind)

    def _log_shape(self, entity: str, name: str, kind: str) -> None:
        if entity in self._shapes_logged or self.task is None:
            return
        rr = self.rr
        colour = (0, 220, 255) if kind == "estimated" else (255, 60, 60)
        label = f"{name} ({kind.replace('_', ' ')})"
        obj = next((o for o in self.task.objects if o.name == name), None)
        if obj is None:  # a fixture: its frame only
            archetype = rr.TransformAxes3D(0.05)
        elif obj.shape == "box":
            archetype = rr.Boxes3D(half_sizes=[obj.half_size_m], colors=[colour], labels=[label])
        else:
            radius, half_length = obj.half_size_m
            archetype = rr.Cylinders3D(lengths=[2 * half_length], radii=[radius], colors=[colour], labels=[label])
        self.rec.log(f"{entity}/shape", archetype)
        self._shapes_logged.add(entity)

    def _log_action(self, kind: str, values: np.ndarray, tcp_position: np.ndarray | None) -> None:
        rr = self.rr
        self.rec.log(f"actions/{kind}", rr.Scalars(values))
        if tcp_position is not None and values.size >= 3:
            self.rec.log(f"world/actions/{kind}", rr.Arrows3D(
                origins=[tcp_position], vectors=[values[:3] * ACTION_ARROW_SCALE], colors=[ARROW_COLOURS[kind]],
                radii=0.002))

    def _log_safety(self, counts: Mapping[str, int]) -> None:
        for kind, count in counts.items():
            new = int(count) - self._safety_counts.get(kind, 0)
            if new > 0:
                self.rec.log("events", self.rr.TextLog(f"safety: {kind} x{new} (total {count})",
                                                       level=self.rr.TextLogLevel.WARN))
        self._safety_counts = {k: int(v) for k, v in counts.items()}

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)
            self.rec.log("events", self.rr.TextLog(message, level=self.rr.TextLogLevel.WARN))

    # ------------------------------------------------------------------ end
    def close(self) -> None:
        """Flush and close the file (or the viewer connection). A spawned viewer that went away (on a machine without
        a display it cannot open a window) is reported, not raised: the session's own work is done by then."""
        try:
            self.rec.flush()
        except RuntimeError as exc:
            if self.rrd_path is not None:
                raise
            self.viewer_lost = True
            log.error("the rerun viewer went away, so this view is lost (%s); on a machine without a display write a "
                      "file with --rrd PATH and open it elsewhere with `rerun PATH`", exc)
        self.rec.disconnect()

    def __enter__(self) -> RerunView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def session_view(cell: CellConfig, task: TaskConfig | None, rrd: str | Path | None, spawn: bool) -> RerunView | None:
    """The view a live session logs to (``--rrd PATH`` writes a file, ``--view`` opens a viewer), or None."""
    if rrd is None and not spawn:
        return None
    return RerunView(cell, task, rrd, spawn=spawn and rrd is None)
