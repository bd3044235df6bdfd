"""KAGI's per-step arithmetic on hand-made states: lambda * (k + phi) / M, latched waypoints, no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from robot_learning.rewards.kagi import KagiConfig, KagiPlan, KagiReward
from robot_learning.rewards.kagi.prompt import KagiAnswer, PointChoice

START_CUBE = np.array([0.5, 0.0, 0.02])


def up(z_m: float) -> np.ndarray:
    return np.array([0.0, 0.0, z_m])


def obs(cube_m, tcp_m, width_m=0.085) -> dict[str, np.ndarray]:
    return {"privileged": np.array([*cube_m, 0.0, 0.0, 0.0, 1.0]), "tcp_position": np.array(tcp_m, float),
            "gripper_width": np.array([width_m])}


@pytest.fixture
def reward(lift_task) -> KagiReward:
    fn = KagiReward(lift_task, client=None, keyframes=lambda o: [], config=KagiConfig(dense_scale=0.5))
    answer = KagiAnswer(grasp="P1", pre_grasp_height_m=0.06, target=PointChoice(mark="P1", height_above_m=0.12),
                        waypoints=[PointChoice(mark="P1", height_above_m=0.05)])
    top = START_CUBE + up(0.02)
    fn.plan = KagiPlan("cube", np.array([0.0, 0.0, 0.02]), [top + up(0.05), top + up(0.12)], answer)
    fn._k, fn._segment_start_m = 0, 0.10  # as reset() leaves it with the TCP 10 cm from its grasp target
    return fn


def test_progress_follows_the_formula_through_every_waypoint(reward):
    step = lambda o, success=False: reward(o, np.zeros(7), o, {"success": success})  # noqa: E731
    pre = START_CUBE + up(0.06)  # pre-grasp point of the TCP: 6 cm above its grasp target
    r, parts = step(obs(START_CUBE, pre + up(0.05)))  # 5 cm from the pre-grasp point
    assert parts["waypoints_reached"] == 0 and r == pytest.approx(0.5 * (0 + 0.5) / 4)
    r, parts = step(obs(START_CUBE, pre))
    assert parts["waypoints_reached"] == 1
    r, parts = step(obs(START_CUBE, START_CUBE, width_m=0.0))  # at the grasp target but closed on nothing
    assert parts["waypoints_reached"] == 1 and parts["phi"] == 1.0
    r, parts = step(obs(START_CUBE, START_CUBE, width_m=0.035))  # holding the cube
    assert parts["waypoints_reached"] == 2 and parts["phi"] == 0.0 and r == pytest.approx(0.5 * 2 / 4)
    lifted = START_CUBE + up(0.05)
    r, parts = step(obs(lifted, lifted, width_m=0.035))  # grasp point on the via-point
    assert parts["waypoints_reached"] == 3
    top = START_CUBE + up(0.14)
    r, parts = step(obs(top, top, width_m=0.035))  # at the target: all M reached, no index past the end
    assert parts["waypoints_reached"] == 4 and r == pytest.approx(0.5)
    r, parts = step(obs(top, top, width_m=0.035), success=True)
    assert r == 1.0


def test_reached_waypoints_stay_reached_when_progress_is_lost(reward):
    for tcp, width in ((START_CUBE + up(0.06), 0.085), (START_CUBE, 0.035)):
        o = obs(START_CUBE, tcp, width)
        reward(o, np.zeros(7), o, {})
    dropped = obs(START_CUBE, START_CUBE + up(0.1))
    r, parts = reward(dropped, np.zeros(7), dropped, {})
    assert parts["waypoints_reached"] == 2 and parts["phi"] == 0.0
