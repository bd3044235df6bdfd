"""How an episode ended, judged on the twin's final state: success, and which way a failure went."""

import numpy as np
import pytest

from sim.env import TwinEnv
from sim.tasks import OUTCOMES

UPRIGHT = np.array([0.0, 0.0, 0.0, 1.0])
LYING = np.array([np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)])  # 90 degrees about x: the peg on its side


@pytest.fixture(scope="module")
def peg_env():
    env = TwinEnv(task="peg_insert", image_size=None)
    yield env
    env.close()


def place_peg(env: TwinEnv, offset_from_hole_m, quaternion_xyzw=UPRIGHT) -> None:
    """Put the peg at ``offset_from_hole_m`` from the hole's base centre (as placed: a free peg in the hole would
    drop to its bottom, a held or jammed one would not)."""
    obs, _ = env.reset(seed=1)
    privileged = obs["privileged"].copy()
    privileged[:3] = privileged[7:10] + np.asarray(offset_from_hole_m)
    privileged[3:7] = quaternion_xyzw
    env.task.set_poses(privileged)


def test_a_peg_lying_flat_across_the_hole_is_not_inserted(peg_env):
    """Its centre is low enough to read as 2.7 cm deep; the tilt check is what refuses it."""
    place_peg(peg_env, [0.0, 0.0, 0.04 + 0.0125 + 0.002], LYING)
    peg_env.step(np.zeros(7, np.float32))  # it rests there, on the walls
    task = peg_env.task
    assert task.insertion_depth_m() >= task.config.success.depth_m
    assert task.insertion_lateral_error_m() <= task.config.success.max_lateral_error_m
    assert not task.is_success()
    assert task.outcome() == "tipped"


def test_an_upright_peg_in_the_hole_is_a_success(peg_env):
    place_peg(peg_env, [0.0, 0.0, 0.04 + 0.005])  # centre 5 mm above the hole's base: 35 mm deep
    assert peg_env.task.insertion_tilt_rad() < 0.05
    assert peg_env.task.is_success() and peg_env.task.outcome() == "success"


@pytest.mark.parametrize(("offset_m", "expected"), [
    ([0.0, 0.0, 0.04 + 0.03], "short_of_depth"),  # upright in the hole, 10 mm deep
    ([0.02, 0.0, 0.04 + 0.04 + 0.001], "on_rim"),  # standing on the wall, 2 cm off the axis
    ([0.0, -0.2, 0.04], "away_from_fixture"),  # standing on the table beside the block
])
def test_failures_are_told_apart_by_where_the_peg_ended(peg_env, offset_m, expected):
    place_peg(peg_env, offset_m)
    assert not peg_env.task.is_success()
    assert peg_env.task.outcome() == expected


def test_lift_tells_a_missed_grasp_from_a_success():
    env = TwinEnv(task="lift", image_size=None)
    env.reset(seed=0)
    assert env.task.outcome() == "not_lifted"
    env.close()


def test_the_last_step_of_an_episode_reports_its_outcome_and_the_others_do_not():
    env = TwinEnv(task="lift", image_size=None)
    env.reset(seed=0)
    infos = []
    truncated = False
    while not truncated:
        _, _, _, truncated, info = env.step(np.zeros(7))
        infos.append(info)
    env.close()
    assert infos[-1]["outcome"] == "not_lifted" and infos[-1]["outcome"] in OUTCOMES
    assert all("outcome" not in info for info in infos[:-1])


def yaw_quat(yaw_rad: float) -> np.ndarray:
    return np.array([0.0, 0.0, np.sin(yaw_rad / 2), np.cos(yaw_rad / 2)])


def test_relative_state_gives_the_peg_s_errors_in_millimetres_of_the_hole(peg_env):
    """[peg - tcp (3), peg yaw vs tcp, hole-frame x y error (2), tanh(error / 5 mm) (2), bottom above top face,
    yaw error, tilt]."""
    place_peg(peg_env, [0.003, -0.001, 0.04 + 0.03], yaw_quat(np.pi / 2 + 0.05))  # 10 mm deep, a quarter turn on
    task = peg_env.task
    tcp = np.array([0.4, 0.0, 0.3])
    rel = task.relative_state(tcp, yaw_quat(-0.02))
    assert rel.shape == (task.relative_dim,) == (11,)
    np.testing.assert_allclose(rel[:3], task.object_pose("peg").position_m - tcp, atol=1e-6)
    assert rel[3] == pytest.approx(0.07, abs=1e-5)  # a square peg: yaw counts modulo a quarter turn
    np.testing.assert_allclose(rel[4:6], [0.003, -0.001], atol=1e-6)
    np.testing.assert_allclose(rel[6:8], np.tanh(np.array([0.003, -0.001]) / 0.005), atol=1e-5)
    assert rel[8] == pytest.approx(-0.010, abs=1e-6)  # the bottom is 10 mm below the top face
    assert rel[9] == pytest.approx(0.05, abs=1e-5)
    assert rel[10] == pytest.approx(0.0, abs=1e-6)


def test_the_twin_observes_relative_state_for_lift_too():
    env = TwinEnv(task="lift", image_size=None)
    obs, _ = env.reset(seed=0)
    env.close()
    rel = obs["privileged_relative"]
    assert rel.shape == (5,) == env.observation_space["privileged_relative"].shape
    np.testing.assert_allclose(rel[:3], obs["privileged"][:3] - obs["tcp_position"], atol=1e-5)
    assert abs(rel[3]) <= np.pi / 4 + 1e-6  # the cube's yaw against the fingers, modulo a quarter turn
    assert rel[4] == pytest.approx(0.0, abs=2e-3)  # the cube has not been lifted


def test_relative_state_is_a_function_of_the_poses_it_is_given(peg_env):
    """A pose estimate (noisy, recorded) gives the errors the twin would show with the scene at those poses."""
    place_peg(peg_env, [0.004, 0.002, 0.06], yaw_quat(0.1))
    task = peg_env.task
    tcp, tcp_quat = np.array([0.45, 0.05, 0.25]), yaw_quat(0.3)
    estimate = task.privileged_state()
    exact = task.relative_state(tcp, tcp_quat)
    estimate[:3] += [0.002, -0.003, 0.001]
    from_estimate = task.relative_state(tcp, tcp_quat, privileged=estimate)
    task.set_poses(estimate)
    np.testing.assert_allclose(from_estimate, task.relative_state(tcp, tcp_quat), atol=1e-6)
    assert not np.allclose(from_estimate, exact, atol=1e-4)
    with pytest.raises(ValueError, match="7 per object"):
        task.relative_state(tcp, tcp_quat, privileged=estimate[:-1])
