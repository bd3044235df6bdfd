"""Each task object's 6-DoF pose from the fused point cloud: what the robot knows without the simulator (#19).

Input: the calibrated, fused, workspace-cropped cloud of all cameras in the base frame with colours in [0, 1]
(:class:`perception.pointcloud.FusedCloud`). Per update, with open3d's classical pipeline:

1. *table removal*: RANSAC (``segment_plane``) finds the dominant near-horizontal plane; only points above it
   (by ``plane_margin_m``) are kept.
2. *candidates*: per object, the points whose chromaticity (rgb over its sum, so shading cancels) is near the
   task file's colour (every point for a grey object), clustered with DBSCAN; clusters too few or too big for
   the object are dropped.
3. *tracking*: with a previous pose, point-to-plane ICP of the points near it onto the model (the primitive's
   surface, sampled with normals) from that pose moved on by the last update's translation (constant velocity).
   Accepted when fitness, RMSE and visible points pass.
4. *detection* (no previous pose, tracking failed, or its fitness is below ``track_fitness``: ICP from a pose a
   fast-moving object left behind can settle a centimetre off with 75% of the points fitting): per candidate
   cluster, initial guesses from its shape
   (upright, centred and turned by the minimum-area rectangle of its xy footprint; and its oriented bounding
   box with axes matched to the model's), each refined by coarse-to-fine ICP; the best fit wins.

The cloud is registered onto the model (source: observed points, target: the full model surface), so ICP's
fitness is the share of *observed* points that lie on the model: a partial view still scores high. The
confidence multiplies fitness, an RMSE term and a visible-point term, in [0, 1]. An object whose update fails
keeps its last pose (confidence decaying) and is reported ``lost`` after ``lost_after_frames`` failures in a
row, or at once when it was never found. Poses of symmetric shapes are reported modulo their symmetry (z up,
yaw within half a period of 0; a cylinder's twist about its axis is set to face the base x axis).

Fixtures (the task file's hole block) are estimated like objects from the points no coloured object claims and
that are not the gripper's, and, being fixed to the table, are never lost once found: their last pose holds while
the arm hides them. An object in the gripper (fingers closed to its width, its centre between them) is tracked
relative to the TCP: the update starts from where the grasp carries it (``T_base_tcp @ T_tcp_object``) and, when
the cameras see too little of it for a fit, reports that pose (method ``in_gripper``) instead of coasting. While
it is held, its fits update the grasp (its pose in the TCP frame) as a running average, since the fingers carry it
rigidly and the fits' frame-to-frame scatter is the partial view's noise; a fit far from the grasp is a slip and is
taken at once (on the twin's peg: 2.4 deg mean rotation error during insertion without, 1.4 deg with).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np
import open3d as o3d

from geometry.transforms import invert
from hardware_configs.schema import HoleFixture, ObjectConfig, TaskConfig
from perception.object_models import ObjectModel, chromaticity

reg = o3d.pipelines.registration


class TrackState(str, enum.Enum):
    tracking = "tracking"
    lost = "lost"


@dataclass(frozen=True, eq=False)
class ObjectEstimate:
    """One object's estimate at ``stamp_s``. ``T_base_object``: 4x4 pose [m] (the last good one while coasting or
    lost; None when the object was never found). ``method``: how this update got it: ``tracked`` (ICP from the
    previous pose), ``detected`` (global detection), ``held`` (no fit this frame: last pose kept) or ``none``."""

    name: str
    T_base_object: np.ndarray | None
    confidence: float
    state: TrackState
    visible_points: int
    stamp_s: float
    fitness: float = 0.0
    rmse_m: float = 0.0
    method: str = "none"

    @property
    def position_m(self) -> np.ndarray | None:
        return None if self.T_base_object is None else self.T_base_object[:3, 3]


@dataclass(frozen=True)
class EstimatorParams:
    plane_distance_m: float = 0.004  # RANSAC inlier distance of the table plane
    plane_margin_m: float = 0.006  # points this little above the table are table
    plane_iterations: int = 100
    colour_tolerance: float = 0.5  # chromaticity distance allowed, as a share of the colour's distance from grey
    min_brightness: float = 0.08  # darker points have no reliable colour
    cluster_eps_m: float = 0.012
    cluster_min_points: int = 6
    size_margin_m: float = 0.04  # a cluster's bounding-box diagonal may exceed the object's by this (noise, edges)
    model_spacing_m: float = 0.002
    icp_coarse_m: float = 0.012  # correspondence distances of the coarse and fine ICP passes
    icp_fine_m: float = 0.004
    icp_iterations: int = 30
    track_margin_m: float = 0.03  # tracking looks this far beyond the object's radius around its last pose
    min_visible_points: int = 12
    min_fitness: float = 0.6
    track_fitness: float = 0.9  # a tracked fit below this is checked against global detection (the better wins)
    max_rmse_m: float = 0.004
    rmse_scale_m: float = 0.003  # confidence term exp(-(rmse / scale)^2)
    full_visibility_points: int = 40  # this many visible points or more: no visibility penalty
    min_confidence: float = 0.3
    lost_after_frames: int = 5
    global_registration: str = "shape"  # initial guesses for detection: "shape" (footprint, OBB) or "fpfh"
    fpfh_radius_m: float = 0.012  # FPFH feature radius (normals from half of it)
    confidence_decay: float = 0.7  # per failed update while coasting
    static_confidence_decay: float = 0.98  # per failed update of a fixture (it does not move: its pose holds)
    gripper_clearance_m: float = 0.05  # points this close to the TCP-flange segment are the gripper's
    grasp_width_margin_m: float = 0.006  # fingers this close to the object's width hold it
    grasp_centre_m: float = 0.02  # and its centre this close to the TCP (x, y in the TCP frame)
    held_confidence_decay: float = 0.97  # per update an in-gripper object is reported without a fit
    grasp_smoothing: float = 0.3  # weight of a new fit of a held object against the grasp tracked so far (1: none)
    grasp_slip_m: float = 0.006  # a held object's fit this far from the tracked grasp (or grasp_slip_deg away)
    grasp_slip_deg: float = 8.0  # has slipped in the fingers: the fit is taken as it is
    plane_refit_every: int = 30  # the table does not move: its plane is refitted every n-th update only
    static_refit_every: int = 10  # a fixture found with confidence is refitted every n-th update only
    static_lock_confidence: float = 0.5
    fixture_on_table_m: float = 0.01  # a detected fixture's bottom lies this close to the table plane


@dataclass
class _Track:
    T_base_object: np.ndarray | None = None
    confidence: float = 0.0
    misses: int = 0
    velocity_m: np.ndarray = field(default_factory=lambda: np.zeros(3))  # last update's translation
    T_tcp_object: np.ndarray | None = None  # while in the gripper: where the grasp holds it


@dataclass(frozen=True)
class _Fit:
    T_base_object: np.ndarray
    fitness: float
    rmse_m: float
    visible: int

    def score(self) -> float:
        return self.fitness - self.rmse_m / 0.01


@dataclass
class _ModelCloud:
    model: ObjectModel
    cloud: o3d.geometry.PointCloud = field(repr=False)


class ObjectStateEstimator:
    """Tracks the objects of a task (or a list of :class:`ObjectConfig`) in fused base-frame clouds."""

    def __init__(self, objects: TaskConfig | Iterable[ObjectConfig | HoleFixture],
                 params: EstimatorParams | None = None) -> None:
        configs = [*objects.objects, *objects.fixtures] if isinstance(objects, TaskConfig) else list(objects)
        self.params = params or EstimatorParams()
        self.models: dict[str, _ModelCloud] = {}
        for config in configs:
            model = (ObjectModel.from_fixture(config) if isinstance(config, HoleFixture)
                     else ObjectModel.from_config(config))
            points, normals = model.sample_surface(self.params.model_spacing_m)
            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
            cloud.normals = o3d.utility.Vector3dVector(normals)
            self.models[model.name] = _ModelCloud(model, cloud)
        self.reset()

    def reset(self) -> None:
        """Forget every previous pose and the table (a new scene)."""
        self._tracks = {name: _Track() for name in self.models}
        self._plane: np.ndarray | None = None  # unit normal (up) and offset of the table
        self._updates = 0

    # ------------------------------------------------------------------ the update
    def update(self, points_m: np.ndarray, colors: np.ndarray, stamp_s: float = 0.0,
               T_base_tcp: np.ndarray | None = None, T_base_flange: np.ndarray | None = None,
               gripper_width_m: float | None = None) -> dict[str, ObjectEstimate]:
        """One estimate per object and fixture from a base-frame cloud (N, 3) [m] with colours (N, 3) in [0, 1].

        With the TCP and flange poses (4x4, base frame) and the fingers' opening [m] of the cloud's time, the
        gripper's points are kept off grey shapes and a grasped object is tracked relative to the TCP."""
        points = np.asarray(points_m, dtype=np.float64).reshape(-1, 3)
        colors = np.asarray(colors, dtype=np.float32).reshape(-1, 3)
        points, colors = self.remove_table(points, colors)
        self._updates += 1
        colour_masks = {name: self._colour_mask(mc.model, colors) for name, mc in self.models.items()
                        if mc.model.is_coloured}  # once per update: each coloured object's points
        claimed = np.zeros(len(points), dtype=bool)  # points of a coloured object's colour, or the gripper's
        for mask in colour_masks.values():
            claimed |= mask
        if T_base_tcp is not None:
            claimed |= self._near_gripper(points, T_base_tcp, T_base_flange)
        grip = (T_base_tcp, gripper_width_m) if T_base_tcp is not None and gripper_width_m is not None else None
        return {name: self._update_object(mc, points, colour_masks.get(name, ~claimed), stamp_s, grip)
                for name, mc in self.models.items()}

    def update_cloud(self, cloud, stamp_s: float = 0.0, **robot) -> dict[str, ObjectEstimate]:
        """:meth:`update` from a :class:`perception.pointcloud.FusedCloud` (``robot``: TCP/flange/gripper)."""
        return self.update(cloud.points_m, cloud.colors, stamp_s, **robot)

    def _near_gripper(self, points: np.ndarray, T_base_tcp: np.ndarray, T_base_flange: np.ndarray | None) -> np.ndarray:
        """Points within ``gripper_clearance_m`` of the segment from the TCP to the flange (the fingers and hand)."""
        a = np.asarray(T_base_tcp)[:3, 3]
        b = np.asarray(T_base_flange)[:3, 3] if T_base_flange is not None else a + np.asarray(T_base_tcp)[:3, 2] * -0.1
        ab = b - a
        t = np.clip((points - a) @ ab / max(float(ab @ ab), 1e-9), 0.0, 1.0)
        return np.linalg.norm(points - (a + t[:, None] * ab), axis=1) < self.params.gripper_clearance_m

    def remove_table(self, points: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The points above the dominant near-horizontal plane (all of them when there is none)."""
        p = self.params
        if len(points) < 50:
            return points, colors
        if self._plane is None or self._updates % p.plane_refit_every == 0:
            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
            plane, inliers = cloud.segment_plane(p.plane_distance_m, 3, p.plane_iterations)
            plane = np.asarray(plane) / np.linalg.norm(plane[:3])
            if abs(plane[2]) >= 0.9 and len(inliers) >= 0.1 * len(points):
                self._plane = plane if plane[2] > 0 else -plane
        if self._plane is None:
            return points, colors
        keep = points @ self._plane[:3] + self._plane[3] > p.plane_margin_m
        return points[keep], colors[keep]

    def _colour_mask(self, model: ObjectModel, colors: np.ndarray) -> np.ndarray:
        p = self.params
        if not model.is_coloured:
            return np.ones(len(colors), dtype=bool)
        bright = colors.sum(axis=1) > 3 * p.min_brightness
        chroma = chromaticity(colors)
        radius = p.colour_tolerance * float(np.linalg.norm(model.chroma - 1.0 / 3.0))
        return bright & (np.linalg.norm(chroma - model.chroma, axis=1) < radius)

    def _update_object(self, mc: _ModelCloud, points: np.ndarray, mask: np.ndarray, stamp_s: float,
                       grip: tuple[np.ndarray, float] | None) -> ObjectEstimate:
        """``mask``: the points that may be this object (its colour; for a grey shape, what nothing else claims)."""
        p, model, track = self.params, mc.model, self._tracks[mc.model.name]
        if (model.static and track.T_base_object is not None and track.confidence >= p.static_lock_confidence
                and self._updates % p.static_refit_every != 0):  # fixed to the table: keep the locked pose
            return ObjectEstimate(model.name, track.T_base_object.copy(), track.confidence, TrackState.tracking, 0,
                                  stamp_s, method="static")
        candidates = points[mask]
        held_pose = None
        if grip is not None and track.T_tcp_object is not None:
            if self._holds(model, grip[1]):
                held_pose = grip[0] @ track.T_tcp_object
            else:
                track.T_tcp_object = None  # released
        fit, method = None, "none"
        if track.T_base_object is not None:
            predicted = track.T_base_object.copy()
            predicted[:3, 3] += track.velocity_m  # constant velocity between updates
            if held_pose is not None:
                predicted = held_pose  # the grasp carries it
            centre = predicted[:3, :3] @ model.centre_m + predicted[:3, 3]
            near = np.linalg.norm(candidates - centre, axis=1) < model.radius_m + p.track_margin_m
            fit = self._refine(mc, candidates[near], predicted)
            method = "tracked"
            if not self._good(fit):
                fit, method = None, "none"
        if held_pose is None and (fit is None or fit.fitness < p.track_fitness):
            detected = self._detect(mc, candidates)
            if self._good(detected) and (fit is None or detected.score() > fit.score()):
                fit, method = detected, "detected"
        if fit is not None:
            track.velocity_m = (fit.T_base_object[:3, 3] - track.T_base_object[:3, 3]
                                if track.T_base_object is not None and track.misses == 0 else np.zeros(3))
            track.T_base_object = fit.T_base_object
            track.confidence = self.confidence(fit)
            track.misses = 0
            if grip is not None and not model.static and self._in_grasp(model, fit.T_base_object, *grip):
                held = held_pose is not None
                track.T_tcp_object = self._smoothed_grasp(track.T_tcp_object if held else None,
                                                          invert(grip[0]) @ fit.T_base_object)
                if held:  # a rigid grasp: the smoothed grip, not this frame's fit, says where the object is
                    track.T_base_object = self._canonical(mc, grip[0] @ track.T_tcp_object)
            return ObjectEstimate(model.name, track.T_base_object.copy(), track.confidence, TrackState.tracking,
                                  fit.visible, stamp_s, fit.fitness, fit.rmse_m, method)
        if held_pose is not None:  # hidden in the hand: where the grasp holds it
            track.T_base_object, track.velocity_m = held_pose, np.zeros(3)
            track.confidence *= p.held_confidence_decay
            return ObjectEstimate(model.name, held_pose.copy(), track.confidence, TrackState.tracking, 0, stamp_s,
                                  method="in_gripper")
        track.misses += 1
        track.velocity_m = np.zeros(3)
        track.confidence *= p.static_confidence_decay if model.static else p.confidence_decay
        lost = track.T_base_object is None or (track.misses >= p.lost_after_frames and not model.static)
        if lost:
            track.confidence = 0.0
        return ObjectEstimate(model.name, None if track.T_base_object is None else track.T_base_object.copy(),
                              track.confidence, TrackState.lost if lost else TrackState.tracking, 0, stamp_s,
                              method="none" if track.T_base_object is None else "held")

    def _smoothed_grasp(self, T_tcp_held: np.ndarray | None, T_tcp_fit: np.ndarray) -> np.ndarray:
        """The grasp (object in the TCP frame) after one more fit: an object in closed fingers moves with them, so
        frame-to-frame differences of its fits are mostly the partial view's noise (1-2 deg per frame on the
        peg) and are averaged out; a fit far from the grasp is a slip and is taken as it is."""
        p = self.params
        if T_tcp_held is None:
            return T_tcp_fit
        step = invert(T_tcp_held) @ T_tcp_fit
        rotvec = cv2.Rodrigues(step[:3, :3])[0].ravel()
        shift_m = T_tcp_fit[:3, 3] - T_tcp_held[:3, 3]
        if np.linalg.norm(shift_m) > p.grasp_slip_m or np.degrees(np.linalg.norm(rotvec)) > p.grasp_slip_deg:
            return T_tcp_fit
        smoothed = T_tcp_held.copy()
        smoothed[:3, :3] = T_tcp_held[:3, :3] @ cv2.Rodrigues(p.grasp_smoothing * rotvec)[0]
        smoothed[:3, 3] += p.grasp_smoothing * shift_m
        return smoothed

    @staticmethod
    def _canonical(mc: _ModelCloud, T_base_object: np.ndarray) -> np.ndarray:
        """The pose modulo the shape's symmetries (about its centre), as every reported pose is."""
        T = T_base_object.copy()
        centre = T[:3, :3] @ mc.model.centre_m + T[:3, 3]
        T[:3, :3] = mc.model.canonical(T[:3, :3])
        T[:3, 3] = centre - T[:3, :3] @ mc.model.centre_m
        return T

    def _stands_on_table(self, T_base_object: np.ndarray) -> bool:
        """The frame's origin (a fixture's bottom face) on the table plane and its z axis up (within ~10 deg)."""
        if self._plane is None:
            return True
        height = float(T_base_object[:3, 3] @ self._plane[:3] + self._plane[3])
        return abs(height) < self.params.fixture_on_table_m and float(T_base_object[:3, 2] @ self._plane[:3]) > 0.985

    def _holds(self, model: ObjectModel, gripper_width_m: float) -> bool:
        """Fingers closed to (about) the object's narrowest horizontal width."""
        narrow = float(np.min(model.extents_m[:2]))
        return gripper_width_m <= narrow + self.params.grasp_width_margin_m

    def _in_grasp(self, model: ObjectModel, T_base_object: np.ndarray, T_base_tcp: np.ndarray,
                  gripper_width_m: float) -> bool:
        """The fingers hold the object: closed to its width, its centre between them (TCP frame x, y)."""
        centre = T_base_object[:3, :3] @ model.centre_m + T_base_object[:3, 3]
        in_tcp = invert(T_base_tcp) @ np.append(centre, 1.0)
        between_fingers = float(np.hypot(in_tcp[0], in_tcp[1])) < self.params.grasp_centre_m
        return self._holds(model, gripper_width_m) and between_fingers and abs(float(in_tcp[2])) < model.radius_m

    # ------------------------------------------------------------------ scoring
    def _good(self, fit: _Fit | None) -> bool:
        p = self.params
        return (fit is not None and fit.visible >= p.min_visible_points and fit.fitness >= p.min_fitness
                and fit.rmse_m <= p.max_rmse_m and self.confidence(fit) >= p.min_confidence)

    def confidence(self, fit: _Fit) -> float:
        """fitness x exp(-(rmse/scale)^2) x min(1, visible / full_visibility_points), in [0, 1]."""
        p = self.params
        return float(np.clip(fit.fitness, 0.0, 1.0) * np.exp(-(fit.rmse_m / p.rmse_scale_m) ** 2)
                     * min(1.0, fit.visible / p.full_visibility_points))

    # ------------------------------------------------------------------ registration
    def _refine(self, mc: _ModelCloud, observed: np.ndarray, T_base_object: np.ndarray) -> _Fit | None:
        """Coarse-to-fine point-to-plane ICP of ``observed`` onto the model from ``T_base_object``."""
        p = self.params
        if len(observed) < p.min_visible_points:
            return None
        source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(observed))
        T = invert(T_base_object)  # base -> object: the observed points move onto the model
        criteria = reg.ICPConvergenceCriteria(max_iteration=p.icp_iterations)
        method = reg.TransformationEstimationPointToPlane()
        for distance in (p.icp_coarse_m, p.icp_fine_m):
            result = reg.registration_icp(source, mc.cloud, distance, T, method, criteria)
            T = result.transformation
        T_base = self._canonical(mc, invert(np.asarray(T)))
        return _Fit(T_base, float(result.fitness), float(result.inlier_rmse), len(observed))

    def initial_guesses(self, model: ObjectModel, cluster: np.ndarray) -> list[np.ndarray]:
        """Poses to start ICP from, from a cluster's shape: upright on its footprint's minimum-area rectangle,
        and its oriented bounding box (axes matched to the model's by extent)."""
        guesses = []
        (cx, cy), _, angle_deg = cv2.minAreaRect(cluster[:, :2].astype(np.float32))
        upright = np.eye(4)
        c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
        upright[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
        upright[:3, 3] = [cx, cy, cluster[:, 2].max() - model.extents_m[2] / 2.0]
        upright[:3, 3] -= upright[:3, :3] @ model.centre_m  # the frame's origin from the shape's centre
        guesses.append(upright)
        if len(cluster) >= 10:
            try:
                obb = o3d.geometry.OrientedBoundingBox.create_from_points(o3d.utility.Vector3dVector(cluster))
            except RuntimeError:  # degenerate (flat) clusters
                return guesses
            order_obb = np.argsort(np.asarray(obb.extent))
            order_model = np.argsort(model.extents_m)
            rot = np.zeros((3, 3))
            rot[:, order_model] = np.asarray(obb.R)[:, order_obb]
            if np.linalg.det(rot) < 0:
                rot[:, order_model[0]] *= -1
            guess = np.eye(4)
            guess[:3, :3], guess[:3, 3] = rot, np.asarray(obb.center) - rot @ model.centre_m
            guesses.append(guess)
        return guesses

    def fpfh_guesses(self, mc: _ModelCloud, cluster: np.ndarray) -> list[np.ndarray]:
        """The generic alternative to :meth:`initial_guesses`: FPFH features matched by RANSAC (open3d)."""
        p = self.params
        radius = p.fpfh_radius_m
        source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cluster))
        source.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius / 2 + 0.004, 30))
        target = mc.cloud.voxel_down_sample(max(p.model_spacing_m, 0.004))
        search = o3d.geometry.KDTreeSearchParamHybrid(radius, 100)
        f_source = reg.compute_fpfh_feature(source, search)
        f_target = reg.compute_fpfh_feature(target, search)
        result = reg.registration_ransac_based_on_feature_matching(
            source, target, f_source, f_target, True, p.icp_coarse_m,
            reg.TransformationEstimationPointToPoint(False), 3,
            [reg.CorrespondenceCheckerBasedOnDistance(p.icp_coarse_m)],
            reg.RANSACConvergenceCriteria(20000, 0.999))
        return [invert(np.asarray(result.transformation))]

    def _detect(self, mc: _ModelCloud, candidates: np.ndarray) -> _Fit | None:
        """Global detection: the best ICP fit over the plausible clusters and their initial guesses."""
        p, model = self.params, mc.model
        if len(candidates) < p.min_visible_points:
            return None
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(candidates))
        labels = np.asarray(cloud.cluster_dbscan(p.cluster_eps_m, p.cluster_min_points))
        best: _Fit | None = None
        clusters = [candidates[labels == k] for k in range(labels.max() + 1)]
        clusters.sort(key=len, reverse=True)
        for cluster in clusters[:4]:
            if len(cluster) < p.min_visible_points:
                break
            span = float(np.linalg.norm(cluster.max(axis=0) - cluster.min(axis=0)))
            if span > 2.0 * model.radius_m + p.size_margin_m:
                continue  # bigger than the object could be
            guesses = (self.fpfh_guesses(mc, cluster) if p.global_registration == "fpfh"
                       else self.initial_guesses(model, cluster))
            for guess in guesses:
                fit = self._refine(mc, cluster, guess)
                if fit is not None and model.static and not self._stands_on_table(fit.T_base_object):
                    continue  # a fixture stands on the table, upright: anything else is the robot or clutter
                if fit is not None and (best is None or fit.score() > best.score()):
                    best = fit
        return best


def estimates_summary(estimates: Mapping[str, ObjectEstimate]) -> str:
    """One line per object: state, position [mm], confidence, visible points."""
    lines = []
    for e in estimates.values():
        pos = "-" if e.position_m is None else " ".join(f"{1e3 * v:7.1f}" for v in e.position_m)
        lines.append(f"{e.name}: {e.state.value} ({e.method}) at [{pos}] mm, confidence {e.confidence:.2f}, "
                     f"{e.visible_points} points")
    return "\n".join(lines)
