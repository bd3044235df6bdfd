"""Rigid-transform helpers shared by every layer (numpy only, no ROS, no MuJoCo).

Quaternions are (x, y, z, w) everywhere in this stack (ROS order); MuJoCo's (w, x, y, z) is converted
only at the sim boundary. Matrices are 4x4 homogeneous ``T_parent_child``.
"""

from __future__ import annotations

import numpy as np


def quat_xyzw_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix from a (normalised here) quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(q_xyzw, dtype=float) / np.linalg.norm(q_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat_xyzw(rot: np.ndarray) -> np.ndarray:
    """Quaternion (x, y, z, w) with w >= 0 from a 3x3 rotation matrix (Shepperd's method)."""
    m = np.asarray(rot, dtype=float)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s])
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def pose_to_matrix(position_m: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quat_xyzw_to_matrix(q_xyzw)
    T[:3, 3] = position_m
    return T


def matrix_to_pose(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position [m], quaternion xyzw) of a 4x4 transform."""
    return np.asarray(T[:3, 3], dtype=float).copy(), matrix_to_quat_xyzw(T[:3, :3])


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform without a general matrix inverse."""
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def axis_angle_to_matrix(rotvec_rad: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vector (axis * angle [rad]) to a 3x3 matrix."""
    rotvec = np.asarray(rotvec_rad, dtype=float)
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def matrix_to_axis_angle(rot: np.ndarray) -> np.ndarray:
    """Inverse of :func:`axis_angle_to_matrix`, angle in [0, pi]."""
    q = matrix_to_quat_xyzw(rot)
    sin_half = np.linalg.norm(q[:3])
    if sin_half < 1e-12:
        return np.zeros(3)
    angle = 2.0 * np.arctan2(sin_half, q[3])
    return q[:3] / sin_half * angle


def rotation_angle_between(rot_a: np.ndarray, rot_b: np.ndarray) -> float:
    """Geodesic angle [rad] between two rotation matrices."""
    cos = (np.trace(rot_a.T @ rot_b) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def yaw_to_quat_xyzw(yaw_rad: float) -> np.ndarray:
    return np.array([0.0, 0.0, np.sin(yaw_rad / 2), np.cos(yaw_rad / 2)])


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return np.array([q[3], q[0], q[1], q[2]])


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.array([q[1], q[2], q[3], q[0]])
