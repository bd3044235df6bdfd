"""What the estimator knows about a task object before it sees it: primitive shape, size, colour, symmetries.

Built from the task file (:class:`hardware_configs.schema.ObjectConfig`; :class:`HoleFixture` for fixtures). The
object frame is MuJoCo's: centred, a box's axes along its half sizes, a cylinder's axis along z; a hole block's
frame sits at the centre of its bottom face (``centre_m``: the geometric centre in the object frame).
A shape's rotational symmetries make some poses
indistinguishable: :meth:`ObjectModel.canonical` picks one representative (z up, yaw within the symmetry period
around 0) and :func:`symmetric_rotation_error_rad` compares rotations modulo them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hardware_configs.schema import HoleFixture, ObjectConfig

GREY_CHROMA = np.full(3, 1.0 / 3.0)
SIZE_TOLERANCE = 0.1  # relative: half sizes this close count as equal (a symmetry)


def chromaticity(colors: np.ndarray) -> np.ndarray:
    """(N, 3) rgb in [0, 1] to r, g, b over their sum: shading (a common factor) cancels."""
    colors = np.asarray(colors, dtype=np.float32)
    return colors / np.maximum(colors.sum(axis=-1, keepdims=True), 1e-6)


def _rot(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    rot = np.eye(3)
    rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    return rot


def _close_group(generators: list[np.ndarray]) -> list[np.ndarray]:
    group = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for a in frontier:
            for g in generators:
                m = np.round(a @ g, 9)
                if not any(np.allclose(m, h, atol=1e-6) for h in group):
                    group.append(m)
                    new.append(m)
        frontier = new
    return group


@dataclass(frozen=True, eq=False)
class ObjectModel:
    """A task object as the estimator sees it. ``symmetries``: the finite rotations (object frame) that map the
    shape onto itself; a cylinder also turns freely about its z axis (``continuous_yaw``)."""

    name: str
    shape: str
    half_size_m: tuple[float, ...]
    rgb: np.ndarray
    symmetries: list[np.ndarray] = field(repr=False)
    continuous_yaw: bool = False
    centre_m: np.ndarray = field(default_factory=lambda: np.zeros(3))  # geometric centre in the object frame
    static: bool = False  # a fixture: stays where it was found while the cameras cannot see it
    hole_half_width_m: float = 0.0  # hole_block: the square through-hole's half width

    @classmethod
    def from_config(cls, obj: ObjectConfig) -> ObjectModel:
        if obj.shape == "cylinder":
            symmetries = [np.eye(3), _rot(0, np.pi)]
            return cls(obj.name, obj.shape, tuple(obj.half_size_m), np.asarray(obj.rgba[:3], float), symmetries, True)
        h = obj.half_size_m
        generators = [_rot(0, np.pi), _rot(1, np.pi), _rot(2, np.pi)]
        for axis, (a, b) in enumerate(((h[1], h[2]), (h[2], h[0]), (h[0], h[1]))):
            if abs(a - b) <= SIZE_TOLERANCE * max(a, b):
                generators.append(_rot(axis, np.pi / 2))
        return cls(obj.name, obj.shape, tuple(h), np.asarray(obj.rgba[:3], float), _close_group(generators))

    @classmethod
    def from_fixture(cls, fixture: HoleFixture) -> ObjectModel:
        """A block with a square through-hole: square outside and in, so a quarter turn maps it onto itself."""
        outer = fixture.hole_half_width_m + fixture.wall_thickness_m
        half = (outer, outer, fixture.height_m / 2.0)
        symmetries = _close_group([_rot(2, np.pi / 2), _rot(0, np.pi)])  # upside down it looks the same
        return cls(fixture.name, "hole_block", half, np.asarray(fixture.rgba[:3], float), symmetries,
                   centre_m=np.array([0.0, 0.0, fixture.height_m / 2.0]), static=True,
                   hole_half_width_m=fixture.hole_half_width_m)

    # ------------------------------------------------------------------ geometry
    @property
    def extents_m(self) -> np.ndarray:
        """Full extents along the object's x, y, z [m]."""
        if self.shape == "cylinder":
            r, hz = self.half_size_m
            return np.array([2 * r, 2 * r, 2 * hz])
        return 2.0 * np.asarray(self.half_size_m)

    @property
    def radius_m(self) -> float:
        """Half the diagonal: every surface point is within this of the centre."""
        return float(np.linalg.norm(self.extents_m) / 2.0)

    @property
    def yaw_period_rad(self) -> float:
        """Yaw about the object's z axis repeats with this period (0: any yaw, a cylinder)."""
        if self.continuous_yaw:
            return 0.0
        return np.pi / 2 if any(np.allclose(s, _rot(2, np.pi / 2), atol=1e-6) for s in self.symmetries) else np.pi

    @property
    def chroma(self) -> np.ndarray:
        return chromaticity(self.rgb[None])[0]

    @property
    def is_coloured(self) -> bool:
        """False for grey/white/black objects, whose colour does not tell them from the robot or the table."""
        return float(np.linalg.norm(self.chroma - GREY_CHROMA)) > 0.05

    def sample_surface(self, spacing_m: float = 0.002) -> tuple[np.ndarray, np.ndarray]:
        """Points on the surface about ``spacing_m`` apart and their outward normals (object frame)."""
        if self.shape == "cylinder":
            r, hz = self.half_size_m
            n_ring = max(8, int(np.ceil(2 * np.pi * r / spacing_m)))
            theta = np.linspace(0, 2 * np.pi, n_ring, endpoint=False)
            zs = np.linspace(-hz, hz, max(2, int(np.ceil(2 * hz / spacing_m)) + 1))
            tt, zz = np.meshgrid(theta, zs)
            side = np.stack([r * np.cos(tt), r * np.sin(tt), zz], -1).reshape(-1, 3)
            side_n = np.stack([np.cos(tt), np.sin(tt), np.zeros_like(tt)], -1).reshape(-1, 3)
            g = np.arange(-r, r + 1e-9, spacing_m)
            xx, yy = np.meshgrid(g, g)
            disc = np.stack([xx.ravel(), yy.ravel()], -1)
            disc = disc[np.linalg.norm(disc, axis=1) <= r]
            caps, caps_n = [], []
            for sign in (-1.0, 1.0):
                caps.append(np.column_stack([disc, np.full(len(disc), sign * hz)]))
                caps_n.append(np.tile([0.0, 0.0, sign], (len(disc), 1)))
            return np.concatenate([side, *caps]), np.concatenate([side_n, *caps_n])
        if self.shape == "hole_block":
            return self._hole_block_surface(spacing_m)
        return _box_surface(np.asarray(self.half_size_m, float), spacing_m)

    def _hole_block_surface(self, spacing_m: float) -> tuple[np.ndarray, np.ndarray]:
        """The outer box without the hole's part of its top and bottom faces, plus the hole's four inner walls
        (normals into the hole); in the block's frame (bottom face at z = 0)."""
        half = np.asarray(self.half_size_m, float)
        points, normals = _box_surface(half, spacing_m)
        in_hole = (np.abs(points[:, 0]) < self.hole_half_width_m) & (np.abs(points[:, 1]) < self.hole_half_width_m)
        keep = ~(in_hole & (np.abs(normals[:, 2]) > 0.5))
        inner, inner_normals = _box_surface(np.array([self.hole_half_width_m, self.hole_half_width_m, half[2]]),
                                            spacing_m)
        sides = np.abs(inner_normals[:, 2]) < 0.5
        points = np.concatenate([points[keep], inner[sides]]) + self.centre_m
        return points, np.concatenate([normals[keep], -inner_normals[sides]])

    # ------------------------------------------------------------------ symmetry
    def canonical(self, rotation: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """The representative of ``rotation`` modulo the shape's symmetries closest to ``reference`` (default: the
        identity, i.e. z up and yaw within half a period of 0)."""
        ref = np.eye(3) if reference is None else np.asarray(reference)
        best, best_trace = rotation, -np.inf
        for s in self.symmetries:
            r = rotation @ s
            if self.continuous_yaw:  # turn about the own z axis to the twist closest to the reference
                m = ref.T @ r
                theta = np.arctan2(m[0, 1] - m[1, 0], m[0, 0] + m[1, 1])
                r = r @ _rot(2, theta)
            trace = np.trace(ref.T @ r)
            if trace > best_trace:
                best, best_trace = r, trace
        return best


def _box_surface(half: np.ndarray, spacing_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Points about ``spacing_m`` apart on a centred box of half sizes ``half`` and their outward normals."""
    points, normals = [], []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        gu = np.linspace(-half[u], half[u], max(2, int(np.ceil(2 * half[u] / spacing_m)) + 1))
        gv = np.linspace(-half[v], half[v], max(2, int(np.ceil(2 * half[v] / spacing_m)) + 1))
        uu, vv = np.meshgrid(gu, gv)
        for sign in (-1.0, 1.0):
            face = np.zeros((uu.size, 3))
            face[:, u], face[:, v], face[:, axis] = uu.ravel(), vv.ravel(), sign * half[axis]
            n = np.zeros((uu.size, 3))
            n[:, axis] = sign
            points.append(face)
            normals.append(n)
    return np.concatenate(points), np.concatenate(normals)


def symmetric_rotation_error_rad(model: ObjectModel, rot_estimate: np.ndarray, rot_true: np.ndarray) -> float:
    """Angle between two rotations of ``model`` modulo its symmetries [rad] (a cylinder: between its axes)."""
    if model.continuous_yaw:
        cos = abs(float(rot_estimate[:, 2] @ rot_true[:, 2]))
        return float(np.arccos(np.clip(cos, -1.0, 1.0)))
    best = np.pi
    for s in model.symmetries:
        cos = (np.trace(rot_true.T @ rot_estimate @ s) - 1.0) / 2.0
        best = min(best, float(np.arccos(np.clip(cos, -1.0, 1.0))))
    return best
