"""KAGI in the twin: marks on real renders, 3-D lifting, tracking, the dense reward, fallback and replay."""

from __future__ import annotations

import numpy as np
import pytest

from robot_learning.rewards.base import RewardWrapper
from robot_learning.rewards.fm.cache import ResponseCache
from robot_learning.rewards.fm.client import CacheMode, FMClient
from robot_learning.rewards.fm.fake_server import Reply
from robot_learning.rewards.fm.profiles import load_profile
from robot_learning.rewards.kagi import KagiReward, TwinKeyframes, build_marks
from robot_learning.rewards.kagi.camera import CameraModel
from robot_learning.rewards.oracles import KagiOracle
from robot_learning.rewards.viz import kagi_explanation
from sim.env import TwinEnv
from sim.experts import make_expert
from sim.scene import ImageSize


@pytest.fixture(scope="module")
def env():
    twin = TwinEnv(task="lift", image_size=None)
    yield twin
    twin.close()


def run_expert(env, reward, seed: int) -> tuple[list[float], list[dict], bool]:
    wrapped = RewardWrapper(env, reward)
    obs, _ = wrapped.reset(seed=seed)
    expert = make_expert(env.cell, env.task_config, seed=seed)
    rewards, parts = [], []
    for _ in range(env.task_config.horizon_steps):
        obs, r, terminated, truncated, info = wrapped.step(expert.act(obs))
        rewards.append(r)
        parts.append(info["reward_breakdown"])
        if terminated or truncated:
            break
    return rewards, parts, bool(info["success"])


def test_projection_and_back_projection_are_inverse(cell):
    camera = CameraModel.from_cell(cell, "cam_front", ImageSize(640, 480))
    points = np.array([[0.5, 0.1, 0.02], [0.6, -0.1, 0.2]])
    uv, z = camera.project(points)
    np.testing.assert_allclose(camera.back_project(uv, z), points, atol=1e-9)


def test_a_real_lens_distortion_is_applied_both_ways_and_points_behind_are_never_inside(cell):
    front = cell.camera("cam_front")
    lens = front.intrinsics.model_copy(update={"distortion_model": "inverse_brown_conrady",
                                               "distortion": [0.12, -0.25, 0.001, -0.002, 0.1]})
    distorted_cell = cell.model_copy(update={"cameras": [front.model_copy(update={"intrinsics": lens}),
                                                         *cell.cameras[1:]]})
    pinhole = CameraModel.from_cell(cell, "cam_front", ImageSize(320, 240))
    camera = CameraModel.from_cell(distorted_cell, "cam_front", ImageSize(320, 240))
    corner = pinhole.back_project(np.array([[300.0, 20.0]]), np.array([0.8]))  # far from the principal point
    uv, z = camera.project(corner)
    assert np.linalg.norm(uv - [[300.0, 20.0]]) > 2.0  # the lens moves it by pixels
    np.testing.assert_allclose(camera.back_project(uv, z), corner, atol=1e-6)
    behind = pinhole.back_project(np.array([[160.0, 120.0]]), np.array([-0.5]))
    assert not camera.inside(camera.project(behind)[0]).any()


def test_marks_lie_on_the_object_and_in_free_space_with_unique_labels(env):
    obs, _ = env.reset(seed=3)
    frames = TwinKeyframes(env)(obs)
    marks = build_marks(frames)
    cube = obs["privileged"][:3]
    labels = [m.label for m in marks]
    assert len(labels) == len(set(labels))
    on_cube = [m for m in marks if m.kind == "object"]
    assert len(on_cube) == 4 and all(m.object == "cube" for m in on_cube)
    for m in on_cube:  # depth-lifted points sit on the 4 cm cube (within its half-diagonal + depth error)
        assert np.linalg.norm(np.array(m.point_base_m) - cube) < 0.036
    assert max(m.point_base_m[2] for m in on_cube) == pytest.approx(0.04, abs=0.005)  # the top face is a candidate
    assert any(m.kind == "free" and m.point_base_m[2] > cube[2] + 0.05 for m in marks)
    assert sum(m.kind == "tile" for m in marks) == 16


def test_expert_episode_reward_rises_through_the_waypoints_to_success(env, serve, client_for):
    server = serve(KagiOracle(env.task_config))
    reward = KagiReward(env.task_config, client_for(server), TwinKeyframes(env))
    rewards, parts, success = run_expert(env, reward, seed=4)
    assert success and rewards[-1] == 1.0
    dense = np.array(rewards[:-1])
    assert dense.max() <= reward.config.dense_scale
    assert parts[-2]["waypoints_reached"] >= 3  # came down from above, grasped, passed the via-point
    assert dense[-1] > dense[len(dense) // 2] > dense[0]
    assert len(server.requests) == 1 and server.requests[0].images[0].shape == (480, 640, 3)  # one query, at reset


def test_grasp_keypoint_moves_with_the_object(env, serve, client_for):
    reward = KagiReward(env.task_config, client_for(serve(KagiOracle(env.task_config))), TwinKeyframes(env))
    obs, _ = env.reset(seed=5)
    reward.reset(obs, {})
    moved = {**obs, "privileged": obs["privileged"].copy()}
    moved["privileged"][:3] += [0.0, 0.05, 0.1]
    np.testing.assert_allclose(reward.grasp_point_m(moved) - reward.grasp_point_m(obs), [0.0, 0.05, 0.1], atol=1e-9)


def test_unusable_answers_fall_back_to_sparse_and_the_episode_goes_on(env, serve, client_for, caplog):
    server = serve(lambda r: {"grasp": "Q1", "target": {"mark": "Z9"}})  # not an object point, unknown label
    reward = KagiReward(env.task_config, client_for(server), TwinKeyframes(env))
    rewards, parts, success = run_expert(env, reward, seed=6)
    assert len(server.requests) == 3  # question + 2 repairs, each told which labels exist
    assert "labels are" in server.requests[1].messages[-1]["content"] or "grasp must be" in \
        server.requests[1].messages[-1]["content"]
    assert success and rewards[-1] == 1.0 and set(rewards[:-1]) == {0.0}
    assert all(p["fallback"] == 1.0 for p in parts)
    assert "sparse reward" in caplog.text and reward.stats.fallbacks == 1


def test_a_server_that_never_answers_costs_one_bounded_wait(env, serve, client_for):
    server = serve(lambda r: "x")
    server.inject(*[Reply(delay_s=10.0)] * 3)  # two attempts would wait 20 s if the timeout did not cut them
    reward = KagiReward(env.task_config, client_for(server, timeout_s=0.2, max_retries=1), TwinKeyframes(env))
    obs, _ = env.reset(seed=7)
    reward.reset(obs, {})
    assert reward.plan is None and "no answer within" in reward.fallback_reason
    assert reward.stats.reset_ms < 8000  # rendering the keyframe included


def test_cached_run_replays_offline_with_identical_rewards(env, serve, client_for, tmp_path):
    cache_path = tmp_path / "kagi.sqlite"
    server = serve(KagiOracle(env.task_config))
    live = KagiReward(env.task_config, client_for(server, ResponseCache(cache_path)), TwinKeyframes(env))
    live_rewards, _, _ = run_expert(env, live, seed=8)
    server.stop()
    offline_client = FMClient(load_profile("oracle_local"), ResponseCache(cache_path), CacheMode.offline)
    replay = KagiReward(env.task_config, offline_client, TwinKeyframes(env))
    replay_rewards, _, _ = run_expert(env, replay, seed=8)
    assert replay_rewards == live_rewards and offline_client.usage.cache_hits == 1


def test_explanation_image_shows_the_keyframe_with_choices(env, serve, client_for):
    reward = KagiReward(env.task_config, client_for(serve(KagiOracle(env.task_config))), TwinKeyframes(env))
    obs, _ = env.reset(seed=9)
    reward.reset(obs, {})
    image = kagi_explanation(reward, [obs["tcp_position"], obs["privileged"][:3]])
    assert image.shape == (480, 1280, 3)  # keyframe and its magnified grasp region
    changed = np.abs(image[:, :640].astype(int) - reward.frames[0].rgb.astype(int)).sum(axis=2) > 0
    assert changed.mean() > 0.01
