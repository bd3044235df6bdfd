"""RoboHorizon stage plans: a validated language, a compiled reward of the paper's shape, vetted by demos."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from robot_learning.rewards.base import SparseSuccessReward
from robot_learning.rewards.fm.fake_server import Reply
from robot_learning.rewards.oracles import good_plan
from robot_learning.rewards.scene import Frame, SceneState
from robot_learning.rewards.stages import (
    StagePlan,
    StagePlanReward,
    check_plan,
    make_stage_reward,
    propose_plan,
    twin_trajectories,
)
from robot_learning.rewards.stages.check import spearman
from robot_learning.rewards.stages.reward import compile_predicate


@pytest.fixture(scope="module")
def lift_rollouts():
    demos = twin_trajectories("lift", 3, "expert", seed=500)
    random = twin_trajectories("lift", 2, "random", seed=600)
    return demos, random


def validate(data: dict, task) -> StagePlan:
    return StagePlan.model_validate(data, context={"task": task})


def test_unknown_operators_frames_and_fields_are_errors_that_list_what_is_valid(lift_task):
    plan = good_plan(lift_task)
    bad_op = copy.deepcopy(plan)
    bad_op["stages"][0]["success"] = {"op": "hover_over", "a": "tcp", "b": "cube"}
    with pytest.raises(ValidationError, match="'near', 'above'"):
        validate(bad_op, lift_task)
    bad_name = copy.deepcopy(plan)
    bad_name["stages"][0]["progress"]["distance"]["b"] = "red_cube"
    with pytest.raises(ValidationError, match=r"unknown frame\(s\) \['red_cube'\]; frames are .*'cube.top'"):
        validate(bad_name, lift_task)
    extra = copy.deepcopy(plan)
    extra["stages"][0]["success"]["code"] = "__import__('os').system('rm -rf /')"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        validate(extra, lift_task)


def scene(tcp, cube, width=0.085, grasped=False) -> SceneState:
    q = np.array([0.0, 0.0, 0.0, 1.0])
    frames = {"tcp": Frame(np.array(tcp, float), q), "cube": Frame(np.array(cube, float), q),
              "table": Frame(np.zeros(3), q)}
    return SceneState(frames, width, {"cube": grasped})


def test_predicates_compose(lift_task):
    near = {"op": "near", "a": "tcp", "b": "cube", "max_m": 0.02}
    pred = validate({"stages": [{"name": "s", "success": {"op": "and", "args": [
        near, {"op": "not", "arg": {"op": "gripper_open"}}]}, "progress": {"distance": {"a": "tcp", "b": "cube"}}}]},
        lift_task).stages[0].success
    check = compile_predicate(pred)
    assert check(scene([0, 0, 0.01], [0, 0, 0], width=0.03))
    assert not check(scene([0, 0, 0.01], [0, 0, 0], width=0.085))  # gripper open
    assert not check(scene([0, 0, 0.05], [0, 0, 0], width=0.03))  # too far


def test_reward_has_the_papers_shape_for_the_active_stage(lift_task):
    reward = StagePlanReward(validate(good_plan(lift_task), lift_task), lift_task)
    cfg = reward.config
    reward.completed = [True, True, False, False]  # approach and reach done, grasp active
    value, parts = reward.progress(scene([0, 0, 0.03], [0, 0, 0], grasped=True))
    dense = cfg.grasp_weight * 1 + math.exp(-0.03 / cfg.distance_scale_m)
    assert value == pytest.approx((2 * cfg.stage_bonus + dense) / (4 * cfg.stage_bonus))
    assert parts["stage1_reach"] == 1.0 and parts["stage2_grasp"] == 0.0 and parts["active_stage"] == 2.0


def test_good_plan_is_accepted_along_expert_demos(lift_task, lift_rollouts):
    demos, random = lift_rollouts
    check = check_plan(validate(good_plan(lift_task), lift_task), lift_task, demos, random)
    assert check.accepted, check.reasons
    assert min(check.spearman) > 0.8
    assert max(check.negative_final_progress) < min(check.demo_final_progress)


def test_plan_whose_progress_falls_along_demos_is_rejected_with_the_reason(lift_task, lift_rollouts):
    demos, random = lift_rollouts
    backwards = good_plan(lift_task)
    never = {"op": "near", "a": "tcp", "b": "cube", "max_m": 0.001}
    backwards["stages"] = [backwards["stages"][0] | {"success": never}]
    backwards["stages"][0]["progress"]["distance"] = {"a": "tcp", "b": "cube@start", "offset_m": [0.0, 0.0, 0.5]}
    check = check_plan(validate(backwards, lift_task), lift_task, demos, random)
    assert not check.accepted
    assert any("never complete" in r for r in check.reasons)


def test_plan_in_the_wrong_order_is_rejected(lift_task, lift_rollouts):
    demos, random = lift_rollouts
    plan = good_plan(lift_task)
    plan["stages"] = [plan["stages"][3], plan["stages"][1]]  # lift before reach
    check = check_plan(validate(plan, lift_task), lift_task, demos, random)
    assert not check.accepted and check.reasons


def test_planner_repairs_a_bad_name_then_gets_the_plan_accepted(serve, client_for, lift_task, lift_rollouts):
    demos, random = lift_rollouts
    bad = good_plan(lift_task)
    bad["stages"][0]["success"]["b"] = "the_cube"
    server = serve(lambda r: good_plan(lift_task))
    server.inject(Reply(content=json.dumps(bad)))
    result = propose_plan(client_for(server), lift_task, demos, random)
    assert result.accepted and len(server.requests) == 2
    assert "the_cube" in server.requests[1].messages[-1]["content"]
    assert isinstance(make_stage_reward(result, lift_task), StagePlanReward)


def test_planner_feeds_a_rejection_back_and_falls_back_to_sparse(serve, client_for, lift_task, lift_rollouts, caplog):
    demos, random = lift_rollouts
    wrong = good_plan(lift_task)
    wrong["stages"] = [wrong["stages"][3], wrong["stages"][1]]
    server = serve(lambda r: wrong)
    result = propose_plan(client_for(server), lift_task, demos, random, max_rounds=2)
    assert not result.accepted and result.rounds == 2
    assert "rejected" in server.requests[1].messages[-1]["content"]
    assert isinstance(make_stage_reward(result, lift_task), SparseSuccessReward)
    assert "falling back to the sparse" in caplog.text


def test_spearman_matches_the_textbook_values():
    assert spearman(np.arange(5), np.arange(5)) == pytest.approx(1.0)
    assert spearman(np.arange(5), -np.arange(5)) == pytest.approx(-1.0)
    assert spearman(np.array([1, 2, 2, 3.0]), np.arange(4)) == pytest.approx(0.9486833)
