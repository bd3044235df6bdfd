"""The reward a fine-tuning run optimises, built inside each twin worker (the rewards of issue 8 plug in here).

``finetune_reward(config)`` is a context: for KAGI it keeps the model endpoint up for the run
(:func:`~robot_learning.rewards.session.model_endpoint`) and every worker gets its own client to it, a shared answer
cache, and its own keyframe renderer. The VLM is asked once per episode, at reset; per-step rewards are cheap.
For RoboHorizon the LLM is asked once per run for a stage plan, which must pass the check on twin
demonstrations before any worker uses it (or an accepted plan file is given).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import gymnasium as gym

from robot_learning.rl.config import FinetuneConfig

log = logging.getLogger(__name__)
Wrapper = Callable[[gym.Env], gym.Env]


def potential_gamma(reward: str, gamma: float) -> float | None:
    """The discount of the shaping potential: the learner's ``gamma`` for the ``*_pbrs`` rewards (so the shaping
    leaves the sparse task's optimal policy unchanged), None for rewards paid as they are."""
    return gamma if reward.endswith("_pbrs") else None


def _shaped(reward, potential_gamma: float | None):
    from robot_learning.rewards.base import PotentialShapedReward

    return reward if potential_gamma is None else PotentialShapedReward(reward, gamma=potential_gamma)


def wrap_with_stage_reward(env: gym.Env, plan_json: str, potential_gamma: float | None = None) -> gym.Env:
    """The plan's per-step reward, or with ``potential_gamma`` sparse success plus its progress as a potential
    (``gamma`` of the learner, so the shaping leaves the optimal policy of the sparse task unchanged)."""
    from robot_learning.rewards.base import RewardWrapper
    from robot_learning.rewards.stages.language import StagePlan
    from robot_learning.rewards.stages.reward import StagePlanReward

    task = env.unwrapped.task_config
    return RewardWrapper(env, _shaped(StagePlanReward(StagePlan.model_validate_json(plan_json), task), potential_gamma))


def wrap_with_kagi_reward(env: gym.Env, profile: str, base_url: str | None, cache_path: str | None,
                          offline: bool = False, potential_gamma: float | None = None) -> gym.Env:
    """KAGI keypoints from the VLM behind ``profile`` (at ``base_url`` when given), asked at each reset."""
    from robot_learning.rewards.base import RewardWrapper
    from robot_learning.rewards.fm.cache import ResponseCache
    from robot_learning.rewards.fm.client import CacheMode, FMClient
    from robot_learning.rewards.fm.profiles import load_profile
    from robot_learning.rewards.kagi.camera import TwinKeyframes
    from robot_learning.rewards.kagi.reward import KagiReward

    twin = env.unwrapped
    model = load_profile(profile, **({"base_url": base_url} if base_url else {}))
    cache = ResponseCache(cache_path) if cache_path else None
    mode = CacheMode.offline if offline else (CacheMode.off if cache is None else CacheMode.read_write)
    client = FMClient(model, cache, mode)
    reward = _shaped(KagiReward(twin.task_config, client, TwinKeyframes(twin)), potential_gamma)
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


def reward_wrapper(reward: str, plan_json: str | None, gamma: float = 1.0) -> Wrapper | None:
    """Sparse (None: the env's own success reward), sparse plus the upright potential, or a RoboHorizon stage
    reward from ``plan_json``, as a picklable wrapper for ``make_vector_env``. ``gamma`` is the learner's
    discount, used by the potential-shaped variants."""
    if reward == "upright_pbrs":
        return partial(wrap_with_upright_reward, potential_gamma=gamma)
    if reward != "sparse" and not reward.startswith("robohorizon"):
        raise ValueError(f"reward_wrapper builds sparse, upright and robohorizon rewards; use finetune_reward for "
                         f"{reward}")
    if reward == "sparse" or plan_json is None:
        return None
    return partial(wrap_with_stage_reward, plan_json=plan_json, potential_gamma=potential_gamma(reward, gamma))


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
    """The wrapper every twin worker applies for ``config.reward``, valid while the context is open."""
    if config.reward == "upright_pbrs":  # refused here, before any worker starts, on a task it cannot shape
        from hardware_configs import load_task
        from robot_learning.rewards.upright import check_upright_task

        check_upright_task(load_task(config.task))
    if not config.reward.startswith("kagi"):
        plan = stage_plan_json(config) if config.reward.startswith("robohorizon") else None
        yield reward_wrapper(config.reward, plan, config.ppo.gamma)
        return
    from hardware_configs import load_task
    from robot_learning.rewards.session import model_endpoint

    offline = config.answer_cache_mode == "offline"
    with model_endpoint(config.model_profile, load_task(config.task), offline, keep_requests=0) as base_url:
        yield partial(wrap_with_kagi_reward, profile=config.model_profile, base_url=base_url,
                      cache_path=config.answer_cache, offline=offline,
                      potential_gamma=potential_gamma(config.reward, config.ppo.gamma))
