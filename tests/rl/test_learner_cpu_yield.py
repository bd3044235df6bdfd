"""The online learner leaves the CPU to the control loop: an update is cut into bursts with sleeps between them
(CpuYield, after every optimiser step and episode read), and the learner's thread can drop to SCHED_IDLE."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from robot_learning.rl.config import FinetuneConfig, PPOConfig, ResidualConfig
from robot_learning.sessions.online_actor import EpisodeRecorder
from robot_learning.sessions.online_learner import CpuYield, OnlineLearner, lower_priority

KEYS = ["tcp_position", "gripper_width"]


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_burst_is_followed_by_a_sleep_of_ratio_times_its_length_capped():
    pause = CpuYield(ratio=2.0, max_sleep_s=0.5)
    pause.start()
    busy(0.02)
    t0 = time.monotonic()
    pause()
    assert pause.slept_s >= 0.04 and time.monotonic() - t0 >= pause.slept_s  # twice the 20 ms burst
    capped = CpuYield(ratio=10.0, max_sleep_s=0.03)
    busy(0.02)
    capped()
    assert capped.slept_s == pytest.approx(0.03)
    off = CpuYield(ratio=0.0)
    busy(0.01)
    off()
    assert off.slept_s == 0.0
    with pytest.raises(ValueError, match="ratio >= 0"):
        CpuYield(ratio=-1.0)


def test_an_update_sleeps_between_its_optimiser_steps(tmp_path):
    recorder = EpisodeRecorder(tmp_path, "franka_3cam", "lift", KEYS)
    for success in (True, False):
        recorder.begin({"operator": "online"})
        for t in range(50):
            obs = {"tcp_position": np.full(3, t, np.float32), "gripper_width": np.zeros(1, np.float32)}
            record = {"base_action": np.zeros(7, np.float32), "residual": np.zeros(7, np.float32),
                      "log_prob": np.float32(-1.0), "value": np.float32(0.5)}
            recorder.add(obs, np.zeros(7, np.float32), record, intervention=False, stamp_s=float(t))
        recorder.end(success)
    recorder.close()
    config = FinetuneConfig(task="lift", residual=ResidualConfig(hidden_sizes=[64, 64], obs_keys=KEYS),
                            ppo=PPOConfig(update_epochs=4, target_kl=None, critic_warmup_iterations=0))
    pause = CpuYield(ratio=1.0)
    learner = OnlineLearner(tmp_path, config, -np.ones(7), np.ones(7), episodes_per_update=2, cpu_yield=pause)
    report = learner.poll()
    assert report is not None and report.steps == 100
    # 4 epochs x (actor + critic step) + 2 episode reads: at least 10 sleeps, together about half the update
    assert 0.2 * report.update_s < report.yielded_s < 0.7 * report.update_s


@pytest.mark.skipif(not hasattr(os, "sched_setscheduler"), reason="SCHED_IDLE is Linux's")
def test_the_learner_thread_can_drop_to_sched_idle_without_privileges():
    seen = []

    def learner_thread() -> None:  # Linux sets the policy of the calling thread (and the threads it starts)
        seen.append(lower_priority(10, idle=True))
        seen.append(os.sched_getscheduler(0) == os.SCHED_IDLE)

    thread = threading.Thread(target=learner_thread)
    thread.start()
    thread.join()
    assert seen == ["SCHED_IDLE", True]
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # this thread is untouched
