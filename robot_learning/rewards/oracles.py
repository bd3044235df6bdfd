"""Oracles that answer KAGI and RoboHorizon queries as a good model would (tests, benchmarks, demos).

They read what a model would read: the KAGI oracle finds the task's object in the *decoded* image by its
colour and picks the candidate mark on it from the legend, then reads the lift height from the instruction;
the planning oracle answers with the plan a careful engineer would write for the task. They are stand-ins
for a capable VLM/LLM, not measurements of one: results obtained with them must say so.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from hardware_configs.schema import TaskConfig
from robot_learning.rewards.fm.fake_server import OracleRequest, Reply

_LEGEND = re.compile(r"^(?P<label>[PQ]\d+) \((?:on (?P<object>[\w-]+)|free space)\) "
                     r"at pixel \((?P<u>\d+), (?P<v>\d+)\) "
                     r"of (?P<camera>\w+)$", re.MULTILINE)


def colour_mask(rgb: np.ndarray, rgba: tuple[float, ...], max_chroma_distance: float = 0.08) -> np.ndarray:
    """Pixels whose chromaticity (brightness-free colour) matches the object's: shading does not change it."""
    img = rgb.astype(float) + 1e-6
    chroma = img / img.sum(axis=2, keepdims=True)
    target = np.array(rgba[:3], dtype=float) + 1e-6
    target /= target.sum()
    return (np.linalg.norm(chroma - target, axis=2) < max_chroma_distance) & (img.sum(axis=2) > 60)


def parse_legend(text: str) -> list[dict[str, Any]]:
    return [{"label": m["label"], "object": m["object"], "uv": np.array([float(m["u"]), float(m["v"])]),
             "camera": m["camera"]} for m in _LEGEND.finditer(text)]


class KagiOracle:
    """Picks the object point nearest the object's colour blob; target: that point lifted by the asked height."""

    def __init__(self, task: TaskConfig):
        self.task = task

    def __call__(self, request: OracleRequest) -> dict[str, Any]:
        legend = parse_legend(request.text)
        obj = self.task.objects[0]
        blob = colour_mask(request.images[0], obj.rgba)
        vs, us = np.nonzero(blob)
        upper = vs <= np.median(vs) if len(vs) else vs.astype(bool)  # the top face, seen from above the table
        centre = np.array([us[upper].mean(), vs[upper].mean()]) if len(us) else np.array([0.0, 0.0])
        on_object = [m for m in legend if m["object"] == obj.name]
        grasp = min(on_object, key=lambda m: np.linalg.norm(m["uv"] - centre))["label"] if on_object else "P1"
        if self.task.fixtures:
            fixture = self.task.fixtures[0]
            fix_mask = colour_mask(request.images[0], fixture.rgba, 0.02)
            fv, fu = np.nonzero(fix_mask)
            fcentre = np.array([fu.mean(), fv.mean()]) if len(fu) else centre
            on_fixture = [m for m in legend if m["object"] == fixture.name] or on_object
            target = min(on_fixture, key=lambda m: np.linalg.norm(m["uv"] - fcentre))["label"]
            return {"grasp": grasp, "pre_grasp_height_m": 0.06, "target": {"mark": target, "height_above_m": 0.06},
                    "waypoints": [{"mark": grasp, "height_above_m": 0.05}, {"mark": target, "height_above_m": 0.11}],
                    "reasoning": f"grasp the {obj.name} and bring it over the {fixture.name}"}
        match = re.search(r"(\d+(?:\.\d+)?) ?cm", request.text)
        lift_m = float(match[1]) / 100.0 if match else 0.10
        return {"grasp": grasp, "pre_grasp_height_m": 0.06,
                "target": {"mark": grasp, "height_above_m": round(lift_m + 0.03, 3)},
                "waypoints": [{"mark": grasp, "height_above_m": round(lift_m / 2, 3)}],
                "reasoning": f"grasp the {obj.name} and lift it straight up"}


def good_plan(task: TaskConfig) -> dict[str, Any]:
    """The stage plan a careful engineer writes for the shipped tasks (lift, peg_insert)."""
    obj = task.objects[0].name
    approach = {"name": "approach", "success": {"op": "near", "a": "tcp", "b": obj, "max_m": 0.025,
                                                "offset_m": [0.0, 0.0, 0.07]},
                "progress": {"distance": {"a": "tcp", "b": obj, "offset_m": [0.0, 0.0, 0.07]}, "grasp": None}}
    reach = {"name": "reach", "success": {"op": "near", "a": "tcp", "b": obj, "max_m": 0.02},
             "progress": {"distance": {"a": "tcp", "b": obj}, "grasp": None}}
    grasp = {"name": "grasp", "success": {"op": "grasped", "object": obj},
             "progress": {"distance": {"a": "tcp", "b": obj}, "grasp": obj}}
    if not task.fixtures:
        lift = {"name": "lift",
                "success": {"op": "and", "args": [{"op": "grasped", "object": obj},
                                                  {"op": "above", "a": obj, "b": f"{obj}@start", "min_m": 0.10}]},
                "progress": {"distance": {"a": obj, "b": f"{obj}@start", "offset_m": [0, 0, 0.12]}, "grasp": obj}}
        return {"stages": [approach, reach, grasp, lift]}
    hole = task.fixtures[0].name
    carry = {"name": "carry",
             "success": {"op": "and", "args": [{"op": "grasped", "object": obj},
                                               {"op": "above", "a": f"{obj}.bottom", "b": f"{hole}.top", "min_m": 0.0,
                                                "max_lateral_m": 0.004},
                                               {"op": "aligned", "a": obj, "b": hole, "max_angle_rad": 0.05}]},
             "progress": {"distance": {"a": f"{obj}.bottom", "b": f"{hole}.top", "offset_m": [0, 0, 0.01]},
                          "grasp": obj}}
    insert = {"name": "insert",
              "success": {"op": "inside", "a": f"{obj}.bottom", "b": f"{hole}.top", "min_depth_m": 0.02,
                          "max_lateral_m": 0.004},
              "progress": {"distance": {"a": f"{obj}.bottom", "b": f"{hole}.top", "offset_m": [0, 0, -0.025]},
                           "grasp": obj}}
    return {"stages": [approach, reach, grasp, carry, insert]}


class PlanOracle:
    def __init__(self, task: TaskConfig):
        self.task = task

    def __call__(self, request: OracleRequest) -> dict[str, Any]:
        return good_plan(self.task)


class TaskOracle:
    """Routes a request to the KAGI or the planning oracle by its system prompt."""

    def __init__(self, task: TaskConfig):
        self.kagi, self.plan = KagiOracle(task), PlanOracle(task)

    def __call__(self, request: OracleRequest) -> Reply | str:
        if "candidate points" in request.text:
            return json.dumps(self.kagi(request))
        if '{"ok": true}' in request.text:  # `manip-stack reward ping`
            return json.dumps({"ok": True})
        return json.dumps(self.plan(request))
