"""The reward a fine-tuning run optimises: a registry of rewards by name, built inside each twin worker.

A config picks one by name (``reward: kagi``) and says separately how it is paid (``reward_shaping: none`` pays
it per step as it is; ``potential`` pays sparse task success plus the reward's progress as a potential, with the
learner's discount, so the shaping leaves the sparse task's optimal policy unchanged and lingering short of
success earns nothing). Each entry declares what it needs before any worker starts (:class:`Need`), and
``finetune_reward(config)`` prepares exactly that: for KAGI the model endpoint, up for the run
(:func:`~robot_learning.rewards.session.model_endpoint`), with every worker its own client, a shared answer cache
and its own keyframe renderer (the VLM is asked once per episode, at reset); for RoboHorizon a stage plan, asked
of the LLM once per run and checked on twin demonstrations before any worker uses it (or an accepted plan file);
for the upright potential an insertion task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import gymnasium as gym

    from robot_learning.rl.config import FinetuneConfig

log = logging.getLogger(__name__)
Wrapper = Callable[["gym.Env"], "gym.Env"]
Shaping = Literal["none", "potential"]


class Need(Enum):
    """What a reward needs prepared once per run, before the twins start."""

    insertion_task = "an insertion task (an object inserted into a fixture)"
    stage_plan = "a stage plan (plan_path, or one asked of model_profile and checked on twin demonstrations)"
    model_endpoint = "a model endpoint up for the whole run (model_profile), asked from every worker"


@dataclass(frozen=True)
class RewardInputs:
    """What a builder gets: the run's prepared needs and its settings."""

    potential_gamma: float | None  # the learner's discount when shaped as a potential; None: paid as it is
    plan_json: str | None = None  # stage_plan
    base_url: str | None = None  # model_endpoint (None: the profile's own)
    profile: str = "oracle_local"
    cache_path: str | None = None
    offline: bool = False
    pose_key: str = "estimated"  # the observation key the reward reads the scene's poses from


@dataclass(frozen=True)
class RewardKind:
    """One registered reward: what it pays, the shapings it takes, what it needs, and its (picklable) wrapper."""

    pays: str
    shapings: tuple[Shaping, ...]
    needs: frozenset[Need]
    wrapper: Callable[[RewardInputs], Wrapper | None]  # None: the env's own sparse success reward


def _shaped(reward, potential_gamma: float | None):
    from robot_learning.rewards.base import PotentialShapedReward

    return reward if potential_gamma is None else PotentialShapedReward(reward, gamma=potential_gamma)


def wrap_with_stage_reward(env: gym.Env, plan_json: str, potential_gamma: float | None = None,
                           pose_key: str = "estimated") -> gym.Env:
    """The plan's per-step reward, or with ``potential_gamma`` sparse success plus its progress as a potential;
    its predicates read the poses of ``obs[pose_key]``."""
    from robot_learning.rewards.base import RewardWrapper
    from robot_learning.rewards.scene import ObservedPoses, SceneReader
    from robot_learning.rewards.stages.language import StagePlan
    from robot_learning.rewards.stages.reward import StagePlanReward

    task = env.unwrapped.task_config
    reward = StagePlanReward(StagePlan.model_validate_json(plan_json), task,
                             scene=SceneReader(task, ObservedPoses(task, pose_key)))
    return RewardWrapper(env, _shaped(reward, potential_gamma))


def wrap_with_kagi_reward(env: gym.Env, profile: str, base_url: str | None, cache_path: str | None,
                          offline: bool = False, potential_gamma: float | None = None,
                          pose_key: str = "estimated") -> gym.Env:
    """KAGI keypoints from the VLM behind ``profile`` (at ``base_url`` when given), asked at each reset; the
    keypoints ride on the objects' poses in ``obs[pose_key]``."""
    from robot_learning.rewards.base import RewardWrapper
    from robot_learning.rewards.fm.cache import ResponseCache
    from robot_learning.rewards.fm.client import CacheMode, FMClient
    from robot_learning.rewards.fm.profiles import load_profile
    from robot_learning.rewards.kagi.camera import TwinKeyframes
    from robot_learning.rewards.kagi.reward import KagiReward
    from robot_learning.rewards.scene import ObservedPoses

    twin = env.unwrapped
    model = load_profile(profile, **({"base_url": base_url} if base_url else {}))
    cache = ResponseCache(cache_path) if cache_path else None
    mode = CacheMode.offline if offline else (CacheMode.off if cache is None else CacheMode.read_write)
    client = FMClient(model, cache, mode)
    reward = _shaped(KagiReward(twin.task_config, client, TwinKeyframes(twin),
                                poses=ObservedPoses(twin.task_config, pose_key)), potential_gamma)
    return RewardWrapper(env, reward, owned=(cache,) if cache is not None else ())


# The upright potential is in [-1, 0]: a peg tipped past the success bound costs as much as success pays.
UPRIGHT_SHAPING_SCALE = 1.0


def wrap_with_upright_reward(env: gym.Env, potential_gamma: float) -> gym.Env:
    """Sparse success plus the inserted object's tilt as a potential (:mod:`robot_learning.rewards.upright`)."""
    from robot_learning.rewards.base import PotentialShapedReward, RewardWrapper
    from robot_learning.rewards.upright import UprightProgress

    twin = env.unwrapped
    upright = UprightProgress(twin.task_config, twin.task.insertion_tilt_rad)
    return RewardWrapper(env, PotentialShapedReward(upright, scale=UPRIGHT_SHAPING_SCALE, gamma=potential_gamma))


def _sparse(inputs: RewardInputs) -> Wrapper | None:
    return None


def _upright(inputs: RewardInputs) -> Wrapper | None:
    return partial(wrap_with_upright_reward, potential_gamma=inputs.potential_gamma)


def _stage_plan(inputs: RewardInputs) -> Wrapper | None:
    return partial(wrap_with_stage_reward, plan_json=inputs.plan_json, potential_gamma=inputs.potential_gamma,
                   pose_key=inputs.pose_key)


def _kagi(inputs: RewardInputs) -> Wrapper | None:
    return partial(wrap_with_kagi_reward, profile=inputs.profile, base_url=inputs.base_url,
                   cache_path=inputs.cache_path, offline=inputs.offline, potential_gamma=inputs.potential_gamma,
                   pose_key=inputs.pose_key)


REWARDS: dict[str, RewardKind] = {
    "sparse": RewardKind("task success (ResiP)", ("none",), frozenset(), _sparse),
    "upright": RewardKind("the inserted object's tilt (sim only; a knocked-over peg costs when it tips)",
                          ("potential",), frozenset({Need.insertion_task}), _upright),
    "robohorizon": RewardKind("a RoboHorizon stage plan's progress", ("none", "potential"),
                              frozenset({Need.stage_plan}), _stage_plan),
    "kagi": RewardKind("KAGI's VLM keypoint progress (one model query per episode)", ("none", "potential"),
                       frozenset({Need.model_endpoint}), _kagi),
}

# Names of the time before the registry, when a "_pbrs" suffix meant reward_shaping: potential.
OLD_REWARD_NAMES = {"upright_pbrs": "upright", "robohorizon_pbrs": "robohorizon", "kagi_pbrs": "kagi"}


def registered_reward(name: str) -> str:
    """``name`` if it is registered; else refused, listing those that are (an old name gets its new spelling)."""
    if name in OLD_REWARD_NAMES:
        raise ValueError(f"reward {name!r} is the old spelling: write reward: {OLD_REWARD_NAMES[name]} and "
                         "reward_shaping: potential")
    if name not in REWARDS:
        raise ValueError(f"no reward named {name!r}; registered: {', '.join(REWARDS)}")
    return name


def check_shaping(name: str, shaping: Shaping) -> None:
    """Refuse a shaping the registered reward ``name`` does not take."""
    if shaping not in REWARDS[name].shapings:
        raise ValueError(f"reward {name} takes reward_shaping {' or '.join(REWARDS[name].shapings)}, not {shaping}")


def stage_plan_json(config: FinetuneConfig) -> str | None:
    """The plan file when given; else the model is asked (over HTTP) and its plan vetted on twin demonstrations.
    A plan that fails the check is not used: the run goes on with the sparse reward, with a warning."""
    if config.plan_path:
        return Path(config.plan_path).read_text()
    from hardware_configs import load_task
    from robot_learning.rewards.fm.client import CacheMode
    from robot_learning.rewards.session import model_client, plan_for_task

    task = load_task(config.task)
    cache = Path(config.answer_cache) if config.answer_cache else None  # offline without one: refused by config
    with model_client(config.model_profile, task, cache, CacheMode(config.answer_cache_mode)) as client:
        result = plan_for_task(client, task, seed=config.seed)
    if not result.accepted:
        log.warning("the stage plan from %s was rejected (%s): this run uses the sparse reward",
                    config.model_profile, result.check.summary() if result.check else "; ".join(result.errors))
        return None
    log.info("stage plan from %s accepted: %s", config.model_profile, result.check.summary())
    return result.plan.model_dump_json()


@contextmanager
def finetune_reward(config: FinetuneConfig) -> Iterator[Wrapper | None]:
    """The wrapper every twin worker applies for ``config.reward`` (None: the env's own sparse success), valid
    while the context is open; the reward's needs are prepared here, before any worker starts."""
    from hardware_configs import load_task

    kind = REWARDS[config.reward]
    offline = config.answer_cache_mode == "offline"
    inputs = RewardInputs(config.ppo.gamma if config.reward_shaping == "potential" else None,
                          profile=config.model_profile, cache_path=config.answer_cache, offline=offline,
                          pose_key=config.reward_poses)
    if Need.insertion_task in kind.needs:  # refused here, on a task it cannot shape
        from robot_learning.rewards.upright import check_upright_task

        check_upright_task(load_task(config.task))
    if Need.stage_plan in kind.needs:
        inputs = replace(inputs, plan_json=stage_plan_json(config))
        if inputs.plan_json is None:  # rejected: the run goes on sparse
            yield None
            return
    with ExitStack() as stack:
        if Need.model_endpoint in kind.needs:
            from robot_learning.rewards.session import model_endpoint

            endpoint = model_endpoint(config.model_profile, load_task(config.task), offline, keep_requests=0)
            inputs = replace(inputs, base_url=stack.enter_context(endpoint))
        yield kind.wrapper(inputs)
