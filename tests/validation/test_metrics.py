"""The measurements validation rests on: lag, image shift, NCC, threshold calibration, and the replay's start."""

import cv2
import numpy as np
import pytest

from robot_learning.validation.diagnosis import FLOORS, calibrate
from robot_learning.validation.metrics import CameraMetrics, EpisodeMetrics, estimate_lag_s, image_shift_px, ncc
from robot_learning.validation.twin_replay import ReplayTwinEnv


def trajectory_m(t_s: np.ndarray) -> np.ndarray:
    return np.stack([0.5 + 0.1 * np.sin(1.3 * t_s), 0.05 * np.cos(0.7 * t_s), 0.2 + 0.03 * t_s], axis=1)


def test_lag_is_recovered_between_samples():
    t = np.arange(40) * 0.1
    sim = trajectory_m(t)
    recorded = trajectory_m(t - 0.07)  # the robot is 70 ms late, less than one 100 ms sample
    lag_s, defined = estimate_lag_s(recorded, sim, 0.1)
    assert defined and lag_s == pytest.approx(0.07, abs=0.006)
    assert estimate_lag_s(sim, sim, 0.1) == (0.0, True)
    assert estimate_lag_s(np.zeros((20, 3)), np.zeros((20, 3)), 0.1) == (0.0, False)  # no motion: undefined


def textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.uniform(0, 255, (96, 96)).astype(np.float32), (0, 0), 2.0)


def test_image_shift_sign_and_size():
    sim = textured()
    recorded = cv2.warpAffine(sim, np.float32([[1, 0, 2.5], [0, 1, -1.0]]), (96, 96), borderMode=cv2.BORDER_REFLECT)
    dx, dy = image_shift_px(recorded, sim)
    assert dx == pytest.approx(2.5, abs=0.1) and dy == pytest.approx(-1.0, abs=0.1)
    assert np.hypot(*image_shift_px(sim, sim)) < 0.01


def test_ncc_ignores_gain_and_offset_but_not_content():
    a = textured(0)
    assert ncc(a, 0.5 * a + 40) == pytest.approx(1.0)
    assert ncc(a, textured(1)) < 0.3


def metrics(tcp_m: float, shift_px: float, lag_s: float = 0.0) -> EpisodeMetrics:
    cam = CameraMetrics("cam", 0.999, 0.99, (shift_px, 0.0), (0.0, 0.0), (0.0, 0.0), np.ones(3))
    return EpisodeMetrics(
        episode=0, n_steps=10, tcp_rmse_m=tcp_m, tcp_max_m=tcp_m, rot_rmse_deg=0.01, joint_rmse_rad=1e-4,
        gripper_rmse_m=1e-4, lag_s=lag_s, lag_defined=True, tcp_rmse_at_lag_m=tcp_m, joint_rmse_at_lag_rad=1e-4,
        gripper_rmse_at_lag_m=1e-4, object_rmse_m=None, free_space_steps=10, tcp_rmse_free_m=tcp_m,
        rot_rmse_free_deg=0.01, recorded_success=True, simulated_success=True, cameras={"cam": cam})


def test_thresholds_are_three_times_the_worst_clean_value_never_below_the_floor():
    t = calibrate([metrics(0.0004, 0.2), metrics(0.0007, 0.05)])
    assert t.tcp_rmse_m == pytest.approx(0.0021)
    assert t.shift_px["cam"] == pytest.approx(0.6)
    assert t.lag_s == FLOORS["lag_s"] and t.object_rmse_m == FLOORS["object_rmse_m"]
    with pytest.raises(ValueError):
        calibrate([])


def test_replay_starts_from_the_recorded_arm_and_object_poses():
    import mujoco

    env = ReplayTwinEnv(task="lift", image_size=None)
    try:
        joints = np.array(env.cell.robot.home_joint_positions_rad) + np.array([0.1, -0.1, 0.05, 0.1, -0.05, 0.1, 0.1])
        cube = np.array([0.52, -0.07, 0.0201, 0.0, 0.0, np.sin(0.2), np.cos(0.2)])
        obs = env.reset_to_recorded(joints, cube)
        # the TCP is where the recorded joints put it (the twin's IK may re-balance the redundant elbow a little)
        fk = mujoco.MjData(env.model)
        fk.qpos[[env.model.joint(f"joint{i}").qposadr[0] for i in range(1, 8)]] = joints
        mujoco.mj_kinematics(env.model, fk)
        np.testing.assert_allclose(obs["tcp_position"], fk.site("tcp").xpos, atol=1e-3)
        np.testing.assert_allclose(obs["joint_pos"], joints, atol=0.02)
        np.testing.assert_allclose(obs["privileged"][:2], cube[:2], atol=1e-3)
        assert abs(abs(np.dot(obs["privileged"][3:], cube[3:])) - 1.0) < 1e-4
        with pytest.raises(ValueError, match="7 per object"):
            env.reset_to_recorded(joints, cube[:6])
    finally:
        env.close()
