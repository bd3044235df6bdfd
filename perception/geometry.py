"""Pinhole geometry between pixels, depth and 3-D points, with RealSense's distortion models (numpy only).

Conventions: pixel centres at integer coordinates (OpenCV, librealsense); points in a camera's optical
frame (x right, y down, z forward) in metres; depth is the z coordinate (what an aligned RealSense depth
image holds), not the distance along the ray. Distortion coefficients are (k1, k2, p1, p2, k3).
``plumb_bob`` distorts on projection (OpenCV); ``inverse_brown_conrady`` distorts on deprojection
(librealsense's colour model); the other direction inverts the polynomial by Newton's method.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hardware_configs.schema import Intrinsics

_UNDISTORT_ITERATIONS = 10


def _has_distortion(intr: Intrinsics) -> bool:
    return intr.distortion_model != "none" and any(abs(c) > 0.0 for c in intr.distortion)


def _coefficients(intr: Intrinsics) -> tuple[float, float, float, float, float]:
    k1, k2, p1, p2, k3 = (list(intr.distortion) + [0.0] * 5)[:5]
    return k1, k2, p1, p2, k3


def _apply_polynomial(x: np.ndarray, y: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Brown-Conrady radial + tangential polynomial on normalised coordinates."""
    k1, k2, p1, p2, k3 = _coefficients(intr)
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    return (x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
            y * radial + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y))


def _invert_polynomial(xd: np.ndarray, yd: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``_apply_polynomial(x, y) = (xd, yd)`` by Newton's method with the analytic Jacobian.

    Converges in a few steps wherever the lens model is invertible (monotonic in the radius), including the
    corners of wide lenses where a plain fixed-point iteration diverges.
    """
    k1, k2, p1, p2, k3 = _coefficients(intr)
    x, y = np.array(xd, dtype=np.float64), np.array(yd, dtype=np.float64)
    for _ in range(_UNDISTORT_ITERATIONS):
        fx, fy = _apply_polynomial(x, y, intr)
        ex, ey = fx - xd, fy - yd
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        d_radial = 2.0 * (k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2))  # d(radial)/d(r2) times 2
        j11 = radial + x * x * d_radial + 2.0 * p1 * y + 6.0 * p2 * x
        j12 = x * y * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
        j21 = x * y * d_radial + 2.0 * p2 * y + 2.0 * p1 * x
        j22 = radial + y * y * d_radial + 2.0 * p2 * x + 6.0 * p1 * y
        det = j11 * j22 - j12 * j21
        x, y = x - (j22 * ex - j12 * ey) / det, y - (j11 * ey - j21 * ex) / det
        if np.all(np.abs(ex) + np.abs(ey) < 1e-12):
            break
    return x, y


def normalised_rays(uv_px: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """(N, 2) pixels to (N, 2) normalised image coordinates (x/z, y/z) of the rays through them."""
    uv = np.asarray(uv_px, dtype=np.float64).reshape(-1, 2)
    x = (uv[:, 0] - intr.cx) / intr.fx
    y = (uv[:, 1] - intr.cy) / intr.fy
    if _has_distortion(intr):
        if intr.distortion_model == "inverse_brown_conrady":
            x, y = _apply_polynomial(x, y, intr)
        else:
            x, y = _invert_polynomial(x, y, intr)
    return np.stack([x, y], axis=1)


def deproject_pixels(uv_px: np.ndarray, depth_m: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """(N, 2) pixels with (N,) depths [m] to (N, 3) points [m] in the camera's optical frame."""
    rays = normalised_rays(uv_px, intr)
    z = np.asarray(depth_m, dtype=np.float64).reshape(-1)
    return np.column_stack([rays[:, 0] * z, rays[:, 1] * z, z])


def project_points(points_cam_m: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) optical-frame points to (N, 2) pixels and (N,) depths [m]; points behind the camera give NaN pixels."""
    p = np.asarray(points_cam_m, dtype=np.float64).reshape(-1, 3)
    z = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = p[:, 0] / z, p[:, 1] / z
    if _has_distortion(intr):
        if intr.distortion_model == "inverse_brown_conrady":
            x, y = _invert_polynomial(x, y, intr)
        else:
            x, y = _apply_polynomial(x, y, intr)
    uv = np.column_stack([x * intr.fx + intr.cx, y * intr.fy + intr.cy])
    uv[z <= 0] = np.nan
    return uv, z


def transform_points(T_a_b: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Points given in frame b, expressed in frame a."""
    p = np.asarray(points_b)
    return p @ T_a_b[:3, :3].T + T_a_b[:3, 3]


def pixel_to_base(uv_px: np.ndarray, depth_m: np.ndarray, intr: Intrinsics, T_base_cam: np.ndarray) -> np.ndarray:
    """Pixels with depth to points in the robot base frame (lifting 2-D keypoints to 3-D)."""
    return transform_points(T_base_cam, deproject_pixels(uv_px, depth_m, intr))


def base_to_pixel(points_base_m: np.ndarray, intr: Intrinsics, T_base_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Base-frame points to pixels and depths in a camera (the inverse of :func:`pixel_to_base`)."""
    T_cam_base = np.linalg.inv(T_base_cam)
    return project_points(transform_points(T_cam_base, points_base_m), intr)


def intrinsics_key(intr: Intrinsics) -> tuple:
    """A hashable key of an intrinsics model (for caches)."""
    return (intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy, intr.distortion_model, tuple(intr.distortion))


@lru_cache(maxsize=16)
def _cached_ray_grid(key: tuple, stride: int) -> np.ndarray:
    width, height, fx, fy, cx, cy, model, distortion = key
    intr = Intrinsics(width=width, height=height, fx=fx, fy=fy, cx=cx, cy=cy, distortion_model=model,
                      distortion=list(distortion))
    v, u = np.mgrid[0:height:stride, 0:width:stride]
    rays = normalised_rays(np.column_stack([u.ravel(), v.ravel()]), intr)
    return rays.reshape((*v.shape, 2)).astype(np.float32)


def ray_grid(intr: Intrinsics, stride: int) -> np.ndarray:
    """Normalised rays of every ``stride``-th pixel, cached (pydantic models with lists are not hashable)."""
    return _cached_ray_grid(intrinsics_key(intr), stride)
