"""ResiP's deployment route: distil a teacher that reads privileged state into an image student the robot can run.

The teacher (usually ``base_plus_residual.pt`` from ``manip-stack finetune``, whose residual read the twin's
privileged state; any policy checkpoint is accepted) is rolled out in randomised twins (:mod:`sim.randomisation`:
camera pose, lighting, colours, sensor grain, object dynamics drawn anew per scene) and reads whatever keys it was
trained on, since the twin gives them all (the ``estimated*`` keys, when it reads them, from the randomised cameras
through the robot's estimator, or from its error model: :mod:`sim.estimation`). Its successful episodes (with
``keep_failures`` all of them, flagged) go into a zarr episode store as demonstrations: every camera image, the
proprioception and the action the teacher executed (the base's action corrected by the residual). The student is the
diffusion policy trained on that store (:func:`robot_learning.sessions.train.train_policy`) from a config whose
inputs are cameras plus robot-measured proprioception only (:func:`check_student_config` refuses anything else,
before any rollout), and it is evaluated from rendered cameras in new randomised scenes by ``manip-stack eval``'s
core.

``out/`` receives ``teacher_rollouts.zarr``, ``collection.json`` (progress, so a killed run resumes with the next
scene), ``student/`` (the training run, ``policy.pt``), ``student_eval/`` (as ``manip-stack eval`` writes it) and
``distill_report.json``: teacher success during collection and student success, each with its 95% Wilson
interval. Collection scenes start at ``seed``, evaluation scenes at ``eval_seed`` (100,000 by default), so the
student is evaluated on scenes it never saw. No DAgger relabelling: the student learns from the teacher's own
states only.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from controllers.observations import ESTIMATED_KEYS, PROPRIOCEPTION, SIM_ONLY_KEYS
from hardware_configs.schema import CellConfig, TaskConfig
from robot_learning.policies.diffusion.configuration import PolicyTrainingConfig, load_training_config
from robot_learning.sessions.evaluate import EVAL_SEED, wilson_interval
from sim.randomisation import RandomisationConfig

log = logging.getLogger(__name__)

# What the robot measures itself, usable as a student's low-dimensional input (the quaternion is measured too but
# is not a policy input: controllers.observations).
ROBOT_LOW_DIM_KEYS: tuple[str, ...] = tuple(k for k, v in PROPRIOCEPTION.items() if v.policy_input)
DEFAULT_STUDENT_LOW_DIM_KEYS = ["tcp_position", "tcp_rot6d", "gripper_width"]
STORE_NAME, STATE_NAME, REPORT_NAME = "teacher_rollouts.zarr", "collection.json", "distill_report.json"


class StudentConfigError(ValueError):
    """A student config that would read something the robot does not have."""


def check_student_config(config: PolicyTrainingConfig, source: str = "student config") -> PolicyTrainingConfig:
    """The config, checked to read cameras plus robot-measured proprioception only (``low_dim_keys`` left out:
    :data:`DEFAULT_STUDENT_LOW_DIM_KEYS`). Refused: ``sim_only: true``, privileged or unknown low-dim keys, no
    cameras (``camera_keys: []``), camera keys that are not ``<camera>_rgb``/``<camera>_depth``."""
    policy = config.policy
    if policy.sim_only:
        raise StudentConfigError(f"{source}: policy.sim_only is true, but the student runs on the robot: it may read "
                                 "cameras and proprioception only; remove sim_only")
    low_dim = DEFAULT_STUDENT_LOW_DIM_KEYS if policy.low_dim_keys is None else list(policy.low_dim_keys)
    privileged = [k for k in low_dim if k in SIM_ONLY_KEYS]
    if privileged:
        raise StudentConfigError(f"{source}: policy.low_dim_keys {privileged} are the twin's simulator state, which "
                                 f"the robot cannot observe; the student may read {list(ROBOT_LOW_DIM_KEYS)} beside "
                                 "its cameras (the teacher keeps its privileged inputs)")
    other = [k for k in low_dim if k not in ROBOT_LOW_DIM_KEYS]
    if other:
        raise StudentConfigError(f"{source}: policy.low_dim_keys {other} are not robot-measured policy inputs "
                                 f"(proprioception); the student reads its cameras plus {list(ROBOT_LOW_DIM_KEYS)}")
    if policy.camera_keys is not None:
        if not policy.camera_keys:
            raise StudentConfigError(f"{source}: policy.camera_keys is empty: the student sees the scene through "
                                     "cameras only; list them (e.g. cam_front_rgb) or leave the key out for all")
        bad = [k for k in policy.camera_keys if not k.endswith(("_rgb", "_depth"))]
        if bad:
            raise StudentConfigError(f"{source}: policy.camera_keys {bad} are not camera images "
                                     "(<camera>_rgb or <camera>_depth)")
    return config.model_copy(update={"policy": policy.model_copy(update={"low_dim_keys": low_dim})})


def load_student_config(path: str | Path) -> PolicyTrainingConfig:
    """A policy YAML (path or name in ``configs/policy/``), validated and checked by :func:`check_student_config`."""
    return check_student_config(load_training_config(path), str(path))


@dataclass
class CollectionResult:
    attempted: int
    successes: int
    committed: int
    steps: int  # steps of the episodes run in this session
    episodes_run: int  # in this session (a resumed collection ran the others before)
    wall_s: float  # this session's collection time

    @property
    def s_per_episode(self) -> float | None:
        return self.wall_s / self.episodes_run if self.episodes_run else None

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempted if self.attempted else 0.0


@dataclass
class DistillReport:
    teacher: str
    cell: str
    task: str
    image_size: list[int]
    randomisation: dict[str, Any]
    collection: dict[str, Any]
    student: dict[str, Any]
    evaluation: dict[str, Any]

    def __str__(self) -> str:
        c, e = self.collection, self.evaluation
        lines = [f"teacher {self.teacher} in randomised twins: {c['successes']}/{c['attempted']} successes = "
                 f"{c['success_rate']:.0%} (95% CI {c['ci95'][0]:.0%}-{c['ci95'][1]:.0%}); {c['committed']} episodes "
                 f"recorded" + (f", {c['s_per_episode']:.1f} s per episode" if c["s_per_episode"] else "")]
        lines.append(f"student {self.student['checkpoint']}: {self.student['summary']}")
        if e:
            lines.append(f"student from cameras in {e['n_episodes']} new {'randomised ' if e['randomised'] else ''}"
                         f"scenes: {e['successes']}/{e['n_episodes']} = {e['success_rate']:.0%} "
                         f"(95% CI {e['ci95'][0]:.0%}-{e['ci95'][1]:.0%}); teacher minus student "
                         f"{100 * (c['success_rate'] - e['success_rate']):+.0f} points")
        return "\n".join(lines)


def collect_teacher_episodes(teacher: str | Path, store_path: Path, cell: CellConfig, task: TaskConfig,
                             n_episodes: int, image_size: tuple[int, int], randomisation: RandomisationConfig,
                             seed: int = 0, keep_failures: bool = False, device: str = "cpu",
                             progress: bool = True, teacher_estimation: str = "cameras") -> CollectionResult:
    """Roll ``teacher`` out for ``n_episodes`` scenes (seeds ``seed``...) in randomised twins; commit its
    successful episodes (all, flagged, with ``keep_failures``) to ``store_path``. Resumes after the scenes
    ``collection.json`` (beside the store) counts as done. A teacher on the estimate gets it from the randomised
    cameras through the estimator (``teacher_estimation="cameras"``, as the robot would) or from the estimator's
    error model (``"error_model"``: what it was trained on, without rendering and fusing 3 cameras per step; the
    teacher only makes the demonstrations, the student always sees rendered images)."""
    from robot_learning.data.episode_store import EpisodeStore
    from robot_learning.runtime.loading import load_policy
    from robot_learning.runtime.policy_runner import DeltaHold, PolicyRunner, RunnerConfig
    from robot_learning.sessions.collect import dataset_specs
    from sim.env import TwinEnv
    from sim.estimation_config import StateEstimationConfig
    from sim.randomisation import RandomisedTwin

    policy = load_policy(teacher, device=device)
    if policy.camera_keys and tuple(policy.image_size or ()) != tuple(image_size):
        raise ValueError(f"teacher {teacher} sees {policy.image_size} images; the student's are {image_size}: "
                         "give --image-size the teacher's size")
    # a teacher on the robot's estimate of the scene gets it as the robot would (the randomised cameras), or from the
    # estimator's error model it trained on
    estimation = (StateEstimationConfig(source=teacher_estimation)
                  if any(k in ESTIMATED_KEYS for k in policy.obs_keys) else None)
    env = RandomisedTwin(TwinEnv(cell=cell, task=task, image_size=image_size, state_estimation=estimation),
                         randomisation)
    twin = env.unwrapped
    policy.check_observation(env.observation_space)
    state_path = store_path.parent / STATE_NAME
    state = _read_state(state_path, seed)
    attrs = {"cell": cell.name, "task": task.name, "instruction": task.instruction, "source": "distill_teacher",
             "teacher": str(teacher), "teacher_estimation": estimation.source if estimation else "none",
             "policy_hz": cell.rates.policy_hz, "image_size": list(image_size),
             "randomisation": randomisation.model_dump(mode="json")}
    store = EpisodeStore.open_or_create(store_path, dataset_specs(twin), attrs)
    state["attempted"] = max(state["attempted"], _scenes_in_store(store, seed))
    period_s = 1.0 / cell.rates.policy_hz
    runner = PolicyRunner(policy, DeltaHold(int(env.action_space.shape[0]), policy.delta_action_dims),
                          RunnerConfig(period_s=period_s, asynchronous=False))
    start, steps, run = time.monotonic(), 0, 0
    bar = tqdm(total=n_episodes, initial=min(state["attempted"], n_episodes), desc=f"teacher {task.name}",
               unit="ep", disable=not progress)
    try:
        while state["attempted"] < n_episodes:
            scene = seed + state["attempted"]
            success, n = _teacher_episode(env, runner, store, scene, period_s, str(teacher), keep_failures)
            state["attempted"] += 1
            state["successes"] += success
            state["committed"] += success or keep_failures
            steps, run = steps + n, run + 1
            _write_state(state_path, state)
            bar.update(1)
            bar.set_postfix(success=f"{state['successes']}/{state['attempted']}")
    finally:
        bar.close()
        runner.close()
        store.close()
        env.close()
    return CollectionResult(state["attempted"], state["successes"], state["committed"], steps, run,
                            time.monotonic() - start)


def _teacher_episode(env, runner, store, scene: int, period_s: float, teacher: str,
                     keep_failures: bool) -> tuple[bool, int]:
    """One teacher episode in a freshly randomised twin; every step's observation and executed action buffered,
    committed when it succeeded (or ``keep_failures``)."""
    obs, _ = env.reset(seed=scene)
    runner.reset()
    keys = runner.policy.obs_keys
    success, twin = False, env.unwrapped
    info = {"seed": scene, "task": twin.task_config.name, "operator": "distill_teacher", "teacher": teacher,
            "randomisation": env.last_drawn}
    with store.begin_episode(info) as episode:
        for step in range(twin.task_config.horizon_steps):
            now_s = step * period_s
            runner.observe({k: obs[k] for k in keys}, now_s)
            action = runner.next_action(now_s).action
            stamp = twin.data.time
            next_obs, reward, terminated, truncated, step_info = env.step(action)
            episode.add_step(**obs, action=action, reward=np.float32(reward), timestamp=np.float64(stamp))
            obs = next_obs
            if terminated or truncated:
                success = bool(step_info["success"])
                break
        n = len(episode)
        if success or keep_failures:
            episode.commit(success=success)
        else:
            episode.discard()
    return success, n


def distill(teacher: str | Path, student_config: PolicyTrainingConfig, out: str | Path, n_episodes: int,
            cell: CellConfig | str | None = None, task: TaskConfig | str | None = None,
            image_size: tuple[int, int] = (96, 96), randomisation: RandomisationConfig | None = None,
            seed: int = 0, keep_failures: bool = False, eval_episodes: int = 50, eval_envs: int = 2,
            eval_seed: int = EVAL_SEED, eval_randomised: bool = True, n_videos: int = 2, device: str = "auto",
            torch_threads: int = 1, progress: bool = True, teacher_estimation: str = "cameras") -> DistillReport:
    """Collect from the teacher, train the student, evaluate it; ``out/distill_report.json``. ``cell``/``task``
    default to the teacher's; ``eval_episodes`` 0 skips the evaluation."""
    import torch

    from hardware_configs import load_cell, load_task
    from robot_learning.runtime.loading import load_policy
    from robot_learning.sessions.evaluate import evaluate_policy, failures_by_outcome, plot_eval_summary
    from robot_learning.sessions.train import train_policy
    from sim.randomisation import randomised_wrapper

    student_config = check_student_config(student_config)
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    torch.set_num_threads(torch_threads)
    randomisation = randomisation or RandomisationConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    teacher_policy = load_policy(teacher, device="cpu")  # read once up front: a bad file stops the run here
    dataset = teacher_policy.dataset or {}
    task = load_task(task or dataset.get("task") or _missing_task(teacher))
    cell = load_cell(cell or dataset.get("cell") or "franka_3cam")
    del teacher_policy

    collected = collect_teacher_episodes(teacher, out / STORE_NAME, cell, task, n_episodes, image_size,
                                         randomisation, seed=seed, keep_failures=keep_failures, progress=progress,
                                         teacher_estimation=teacher_estimation)
    log.info("teacher: %d/%d successes, %d episodes recorded", collected.successes, collected.attempted,
             collected.committed)
    if collected.committed == 0:
        raise ValueError(f"the teacher succeeded in 0 of {collected.attempted} randomised scenes: nothing to distil "
                         f"({out / STORE_NAME} is empty); check the teacher with manip-stack eval, or record its "
                         "failures too with --keep-failures (a smoke run)")
    trained = train_policy(out / STORE_NAME, student_config, out / "student", device=device, progress=progress)
    student = load_policy(trained.policy_path, device="cpu")
    _check_student_inputs(student.obs_keys, student.camera_keys, trained.policy_path)
    evaluation: dict[str, Any] = {}
    if eval_episodes > 0:
        report = evaluate_policy(trained.policy_path, task=task, cell=cell, n_episodes=eval_episodes,
                                 n_envs=eval_envs, seed=eval_seed, out=out / "student_eval", n_videos=n_videos,
                                 device=device, progress=progress,
                                 env_wrapper=randomised_wrapper(randomisation) if eval_randomised else None)
        plot_eval_summary(report, out / "student_eval" / "eval_summary.png")
        evaluation = {"n_episodes": report.n_episodes, "successes": report.successes,
                      "success_rate": report.success_rate, "ci95": list(report.ci95), "seed": eval_seed,
                      "randomised": eval_randomised, "wall_s": report.wall_s,
                      "failures_by_outcome": failures_by_outcome([e["success"] for e in report.episodes],
                                                                 [e["outcome"] for e in report.episodes]),
                      "report": str(out / "student_eval" / "eval_report.json")}
    k, n = collected.successes, collected.attempted
    result = DistillReport(
        teacher=str(teacher), cell=cell.name, task=task.name, image_size=list(image_size),
        randomisation=randomisation.model_dump(mode="json"),
        collection={"attempted": n, "successes": k, "success_rate": collected.success_rate,
                    "ci95": list(wilson_interval(k, n)), "committed": collected.committed, "steps": collected.steps,
                    "seed": seed, "wall_s": collected.wall_s, "episodes_run": collected.episodes_run,
                    "s_per_episode": collected.s_per_episode,
                    "store": str(out / STORE_NAME), "keep_failures": keep_failures},
        student={"checkpoint": str(trained.policy_path), "summary": str(trained), "epochs": trained.epochs,
                 "wall_s": trained.wall_s, "final_epoch_loss": trained.final_epoch_loss,
                 "samples_per_s": trained.samples_per_s,
                 "obs_keys": list(student.obs_keys)},
        evaluation=evaluation)
    (out / REPORT_NAME).write_text(json.dumps(asdict(result), indent=2))
    return result


def _check_student_inputs(obs_keys: list[str], camera_keys: list[str], path: Path) -> None:
    """The trained student reads cameras and robot-measured proprioception, nothing else (defence in depth)."""
    extra = [k for k in obs_keys if k not in camera_keys and k not in ROBOT_LOW_DIM_KEYS]
    if extra or not camera_keys:
        raise StudentConfigError(f"{path} reads {extra or 'no camera'}: a student must read cameras and "
                                 f"{list(ROBOT_LOW_DIM_KEYS)} only")


def _missing_task(teacher: str | Path) -> str:
    raise ValueError(f"{teacher} does not record its task; pass --task")


def _read_state(path: Path, seed: int) -> dict[str, int]:
    if not path.is_file():
        return {"seed": seed, "attempted": 0, "successes": 0, "committed": 0}
    try:
        state = json.loads(path.read_text())
        counts = {k: int(state[k]) for k in ("seed", "attempted", "successes", "committed")}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a distill collection state ({exc}); remove it to start the collection "
                         "again (the store beside it too)") from None
    if counts["seed"] != seed:
        raise ValueError(f"{path} collected from seed {counts['seed']}, not {seed}: use that seed or a new --out")
    return counts


def _write_state(path: Path, state: dict[str, int]) -> None:
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _scenes_in_store(store, seed: int) -> int:
    """Scenes done according to the store: one past the last committed seed (a kill between a commit and the
    state file must not record that scene twice)."""
    seeds = [store.episode_info(i)["seed"] for i in range(store.n_episodes)]
    seeds = [s for s in seeds if s is not None]
    return max(seeds) - seed + 1 if seeds else 0
