"""Specification of the policy-rate to control-rate interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.interface import CartesianTarget
from controllers.interpolation import interpolate_pose, slerp_xyzw, upsample

IDENTITY_XYZW = np.array([0.0, 0.0, 0.0, 1.0])


def yaw_xyzw(yaw_rad: float) -> np.ndarray:
    return np.array([0.0, 0.0, math.sin(yaw_rad / 2), math.cos(yaw_rad / 2)])


def angle_between_rad(q_a: np.ndarray, q_b: np.ndarray) -> float:
    dot = abs(float(np.dot(q_a, q_b)) / (np.linalg.norm(q_a) * np.linalg.norm(q_b)))
    return 2.0 * math.acos(min(1.0, dot))


def pose(x_m: float, yaw_rad: float = 0.0, gripper: float = 0.0) -> CartesianTarget:
    return CartesianTarget(np.array([x_m, 0.0, 0.3]), yaw_xyzw(yaw_rad), gripper)


def assert_same_pose(a: CartesianTarget, b: CartesianTarget, tol: float = 1e-12) -> None:
    np.testing.assert_allclose(a.position_m, b.position_m, atol=tol)
    assert angle_between_rad(a.quaternion_xyzw, b.quaternion_xyzw) <= max(tol, 1e-7)  # acos loses digits near 1
    assert a.gripper_closure == pytest.approx(b.gripper_closure, abs=tol)


# ------------------------------------------------------------------------------------ interpolate_pose


def test_interpolation_is_linear_in_position_and_gripper_and_slerp_in_orientation():
    a, b = pose(0.4, 0.0, 0.0), pose(0.6, 1.0, 1.0)
    mid = interpolate_pose(a, b, 0.25)
    np.testing.assert_allclose(mid.position_m, [0.45, 0.0, 0.3])
    assert mid.gripper_closure == pytest.approx(0.25)
    assert angle_between_rad(mid.quaternion_xyzw, yaw_xyzw(0.25)) < 1e-7


def test_interpolation_endpoints_are_the_waypoints():
    a, b = pose(0.4, 0.3, 0.2), pose(0.6, -1.2, 0.9)
    assert_same_pose(interpolate_pose(a, b, 0.0), a)
    assert_same_pose(interpolate_pose(a, b, 1.0), b)


def test_slerp_takes_the_short_way_whatever_the_quaternion_sign():
    q_a, q_b = yaw_xyzw(0.0), yaw_xyzw(math.radians(270))  # the short way is -90 degrees
    for q in (q_b, -q_b):
        halfway = slerp_xyzw(q_a, q, 0.5)
        assert angle_between_rad(halfway, yaw_xyzw(math.radians(-45))) < 1e-7


def test_fraction_is_clipped_so_there_is_no_extrapolation():
    a, b = pose(0.4), pose(0.6)
    assert_same_pose(interpolate_pose(a, b, -0.5), a)
    assert_same_pose(interpolate_pose(a, b, 7.0), b)
    with pytest.raises(ValueError, match="finite"):
        interpolate_pose(a, b, math.nan)


unit_quaternion = (
    st.tuples(*[st.floats(-1.0, 1.0)] * 4)
    .filter(lambda q: np.linalg.norm(q) > 0.1)
    .map(lambda q: np.array(q) / np.linalg.norm(q))
)


@settings(max_examples=200, deadline=None)
@given(q_a=unit_quaternion, q_b=unit_quaternion, fraction=st.floats(0.0, 1.0))
def test_slerp_moves_a_fraction_of_the_angle_along_the_geodesic(q_a, q_b, fraction):
    total_rad = angle_between_rad(q_a, q_b)
    if total_rad > math.pi - 1e-3:  # the short way is ambiguous at half a turn
        return
    q = slerp_xyzw(q_a, q_b, fraction)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-12)
    assert angle_between_rad(q_a, q) == pytest.approx(fraction * total_rad, abs=1e-6)
    assert angle_between_rad(q, q_b) == pytest.approx((1 - fraction) * total_rad, abs=1e-6)


# ------------------------------------------------------------------------------------------ upsample


def test_upsample_gives_evenly_spaced_steps_ending_at_the_goal():
    start, goal = pose(0.4, 0.0, 0.0), pose(0.5, 0.5, 1.0)
    steps = upsample(start, goal, 10)
    assert len(steps) == 10
    assert_same_pose(steps[-1], goal)
    xs = np.array([s.position_m[0] for s in steps])
    np.testing.assert_allclose(np.diff(np.concatenate([[0.4], xs])), 0.01)
    assert xs[0] != pytest.approx(0.4), "the start itself is not repeated"
    with pytest.raises(ValueError, match="at least one"):
        upsample(start, goal, 0)
