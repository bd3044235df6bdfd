"""The policy runner: actions go out in chunk order at their due times, late ones are dropped, and a
pending, failing or NaN-producing policy makes the arm hold (zero motion, gripper kept) instead of crashing.

The policies here are small real classes (a scripted chunk generator with simulated latency, one that
raises, one that returns NaN); unit tests run on a manual clock, the twin tests on wall-clock time.
"""

import threading
import time

import numpy as np
import pytest
from realtime_twin import run_realtime_episode

from robot_learning.policies.policy import Policy
from robot_learning.runtime.policy_runner import DeltaHold, PolicyRunner, RunnerConfig
from sim.env import TwinEnv

ACTION_DIM = 7
DELTA_DIMS = range(6)


class ManualClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class CountingPolicy(Policy):
    """Chunk ``c`` has actions whose dx encodes (chunk, index): 0.001 * (10 * c + i); gripper closed.

    ``latency_s`` advances a manual clock (simulated inference time); ``fail_on``/``nan_on`` name the
    calls (0-based) that raise or return NaN; ``gate`` (an Event) makes inference wait until it is set.
    """

    n_obs_steps = 2
    obs_keys = ["tcp_position"]
    action_low, action_high = -np.ones(ACTION_DIM, np.float32), np.ones(ACTION_DIM, np.float32)

    def __init__(self, n_actions=8, clock=None, latency_s=0.0, fail_on=(), nan_on=(), gate=None, sleep_s=0.0):
        self.n_actions, self.clock, self.latency_s = n_actions, clock, latency_s
        self.fail_on, self.nan_on, self.gate, self.sleep_s = set(fail_on), set(nan_on), gate, sleep_s
        self.calls, self.histories = 0, []

    def predict_chunks(self, histories):
        call = self.calls
        self.calls += 1
        self.histories.append({k: v[0].copy() for k, v in histories.items()})
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.clock is not None:
            self.clock.now_s += self.latency_s
        if call in self.fail_on:
            raise RuntimeError("camera frame decode failed")
        chunk = np.zeros((self.n_actions, ACTION_DIM), np.float32)
        chunk[:, 0] = 0.001 * (10 * call + np.arange(self.n_actions))
        chunk[:, 6] = 1.0
        if call in self.nan_on:
            chunk[3, 2] = np.nan
        return chunk[None]


def obs_at(t):
    return {"tcp_position": np.array([t, 0.0, 0.0], np.float32)}


def dx_code(item):
    return round(float(item.action[0]) * 1000)


def make_runner(policy, clock=None, **config):
    config = {"asynchronous": False, **config}
    hold = DeltaHold(ACTION_DIM, DELTA_DIMS)
    return PolicyRunner(policy, hold, RunnerConfig(**config), clock=clock or time.monotonic)


def test_sync_runner_hands_out_each_chunk_in_order_and_asks_again_when_it_runs_out():
    policy = CountingPolicy(n_actions=4)
    runner = make_runner(policy)
    codes = []
    for k in range(10):
        runner.observe(obs_at(k), k * 0.1)
        item = runner.next_action(k * 0.1)
        assert item.source == "policy" and item.due_s == pytest.approx(k * 0.1)
        codes.append(dx_code(item))
    assert codes == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21]
    assert policy.calls == 3 and runner.stats.holds == 0 and runner.stats.dropped_late == 0


def test_history_holds_the_last_n_observations_with_the_first_repeated_at_the_start():
    policy = CountingPolicy(n_actions=2)
    runner = make_runner(policy)
    for k in range(3):
        runner.observe(obs_at(k), k * 0.1)
        runner.next_action(k * 0.1)
    first, second = policy.histories
    np.testing.assert_array_equal(first["tcp_position"][:, 0], [0, 0])
    np.testing.assert_array_equal(second["tcp_position"][:, 0], [1, 2])


@pytest.mark.parametrize(("margin_s", "first_code"), [(0.0, 3), (0.1, 4)])
def test_actions_whose_due_time_passed_during_inference_are_dropped(margin_s, first_code):
    clock = ManualClock()
    policy = CountingPolicy(clock=clock, latency_s=0.33)  # inference takes 3.3 periods
    runner = make_runner(policy, clock=clock, latency_margin_s=margin_s)
    runner.observe(obs_at(0), clock())
    item = runner.next_action(clock())  # now = 0.33: actions due at 0.0, 0.1, 0.2 are gone
    assert item.source == "policy" and dx_code(item) == first_code
    assert item.due_s >= clock() + margin_s - 0.05
    assert runner.stats.dropped_late == first_code
    assert list(runner.stats.latencies_s) == [pytest.approx(0.33)]


class CorrectedPolicy(CountingPolicy):
    """A base+residual stand-in: each executed action gets dy = the newest observation's x (or NaN on step 2)."""

    def __init__(self, nan_at_x=None, **kwargs):
        super().__init__(**kwargs)
        self.nan_at_x = nan_at_x

    def correct(self, obs, action):
        corrected = action.copy()
        corrected[1] = np.nan if obs["tcp_position"][0] == self.nan_at_x else obs["tcp_position"][0]
        return corrected


def test_a_per_step_correction_is_applied_to_every_action_from_the_newest_observation():
    runner = make_runner(CorrectedPolicy(n_actions=4))
    items = []
    for k in range(6):
        runner.observe(obs_at(k), k * 0.1)
        items.append(runner.next_action(k * 0.1))
    assert [float(i.action[1]) for i in items] == [0, 1, 2, 3, 4, 5]  # not the chunk's observation, the newest
    assert [dx_code(i) for i in items] == [0, 1, 2, 3, 10, 11]  # the base's chunk order is kept


def test_a_correction_that_is_not_finite_sends_the_base_action_and_is_counted():
    runner = make_runner(CorrectedPolicy(n_actions=4, nan_at_x=2))
    items = []
    for k in range(4):
        runner.observe(obs_at(k), k * 0.1)
        items.append(runner.next_action(k * 0.1))
    assert float(items[2].action[1]) == 0.0 and dx_code(items[2]) == 2  # the base's own action
    assert [float(i.action[1]) for i in (items[1], items[3])] == [1, 3]
    assert runner.stats.residual_failures == 1 and runner.stats.holds == 0


def test_async_runner_holds_while_the_first_chunk_is_pending_then_acts():
    gate = threading.Event()
    runner = make_runner(CountingPolicy(gate=gate), asynchronous=True)
    try:
        runner.observe(obs_at(0), 0.0)
        item = runner.next_action(0.0)
        assert item.source == "hold"
        np.testing.assert_array_equal(item.action, np.zeros(ACTION_DIM))  # no motion, gripper open at start
        gate.set()
        assert runner.wait_idle(5.0)
        runner.observe(obs_at(1), 0.1)
        item = runner.next_action(0.1)
        assert item.source == "policy" and dx_code(item) == 1  # action 0 (due 0.0) was late by then
        assert runner.stats.holds == 1 and runner.stats.dropped_late == 1
    finally:
        runner.close()


def test_a_raising_policy_makes_the_runner_hold_keeping_the_gripper_then_recover():
    policy = CountingPolicy(n_actions=2, fail_on={1})
    runner = make_runner(policy)
    sources = []
    for k in range(6):
        runner.observe(obs_at(k), k * 0.1)
        item = runner.next_action(k * 0.1)
        sources.append(item.source)
        if item.source == "hold":
            np.testing.assert_array_equal(item.action[:6], 0.0)
            assert item.action[6] == 1.0  # the grasp is kept: last commanded gripper closure
    assert sources == ["policy", "policy", "hold", "policy", "policy", "policy"]
    assert runner.stats.failures == 1 and "camera frame decode failed" in runner.stats.last_error


def test_a_chunk_with_nan_is_discarded_whole_and_the_runner_holds():
    policy = CountingPolicy(n_actions=4, nan_on={0})
    runner = make_runner(policy)
    runner.observe(obs_at(0), 0.0)
    item = runner.next_action(0.0)
    assert item.source == "hold" and np.all(np.isfinite(item.action))
    assert runner.stats.invalid_chunks == 1 and runner.stats.actions == 0
    runner.observe(obs_at(1), 0.1)
    assert dx_code(runner.next_action(0.1)) == 10  # the next call's chunk, from its first action


def test_a_chunk_requested_before_reset_is_not_used_in_the_next_episode():
    gate = threading.Event()
    runner = make_runner(CountingPolicy(gate=gate), asynchronous=True)
    try:
        runner.observe(obs_at(0), 0.0)
        runner.reset()
        gate.set()
        assert runner.wait_idle(5.0)
        assert runner.stats.chunks == 0
        assert runner.next_action(0.0).source == "hold"
    finally:
        runner.close()


def test_hold_config_rejects_nonsense():
    with pytest.raises(ValueError, match="period_s"):
        RunnerConfig(period_s=0.0)


# ---------------------------------------------------------------------------------------------- the twin
@pytest.fixture(scope="module")
def twin():
    env = TwinEnv(task="lift", image_size=None)  # proprioception only: the runner, not vision, is under test
    yield env
    env.close()


class RisePolicy(CountingPolicy):
    """Chunks that raise the TCP 1 cm per step (gripper open), after ``sleep_s`` of thinking."""

    def predict_chunks(self, histories):
        chunk = super().predict_chunks(histories)
        chunk[..., 0], chunk[..., 2], chunk[..., 6] = 0.0, 0.01, 0.0
        return chunk


def test_in_the_twin_a_slow_policy_loses_late_actions_but_every_action_sent_is_on_time(twin):
    runner = PolicyRunner(RisePolicy(sleep_s=0.25), DeltaHold(ACTION_DIM, DELTA_DIMS),
                          RunnerConfig(period_s=0.1, replan_remaining=2))
    try:
        episode = run_realtime_episode(twin, runner, max_steps=25, seed=0)
    finally:
        runner.close()
    sent = [s for s in episode.steps if s.source == "policy"]
    assert runner.stats.chunks >= 2 and runner.stats.dropped_late >= 2  # >= 2 periods of latency per chunk
    assert all(s.due_s >= s.now_s - 0.05 for s in sent)  # nothing executed after its slot
    held = [s for s in episode.steps if s.source == "hold"]
    assert held and episode.steps[0].source == "hold"  # nothing to do until the first chunk lands
    z = np.array([s.tcp_position_m[2] for s in episode.steps])
    assert z[-1] - z[0] > 0.05  # the remaining actions did reach the arm


def test_in_the_twin_a_failing_policy_keeps_the_arm_still(twin):
    runner = PolicyRunner(RisePolicy(fail_on=range(1000), sleep_s=0.01), DeltaHold(ACTION_DIM, DELTA_DIMS),
                          RunnerConfig(period_s=0.1))
    try:
        episode = run_realtime_episode(twin, runner, max_steps=12, seed=0)
    finally:
        runner.close()
    assert {s.source for s in episode.steps} == {"hold"}
    assert runner.stats.failures >= 5
    tcp = np.array([s.tcp_position_m for s in episode.steps])
    assert np.abs(tcp - tcp[0]).max() < 2e-3  # held in place [m]
