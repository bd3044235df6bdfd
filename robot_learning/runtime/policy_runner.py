"""The policy runner every runtime shares: twin evaluation and the demo in process, ``policy_node`` on ROS 2.

It keeps the observation history, asks the policy for action chunks in a worker thread so control never
waits for inference, stamps every action of a chunk with the time it is due (``obs_stamp + i * period``),
drops actions whose due time has passed (plus a latency margin, as Diffusion Policy's real-robot loop
does) and hands the rest on, to be interpolated and filtered by :class:`controllers.safe_robot.SafeRobot`.

When there is no valid action for the current slot (inference late, raised, or returned NaN/Inf or the
wrong shape) it degrades to a *hold* action (zero motion in the delta dimensions, the last commanded
gripper), counts it, and keeps going: a failed chunk is discarded with whatever remained of the old
one, and the next observation asks again. Time is whatever clock the caller uses (wall time on the
robot, sim time in the twin); with ``asynchronous=False`` inference runs inline, which is how the twin's
batch evaluation runs (sim time stops while the policy thinks), and ``simulated_delay_s`` then installs each chunk
that long after its observation, in the caller's time, as a real inference delay would.

With a :class:`~robot_learning.runtime.chunking.ChunkJoiner`, a new chunk is joined to the one still executing
(real-time chunking) instead of replacing it as it is: the actions still queued when a chunk is requested are
the committed prefix it must continue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from robot_learning.policies.diffusion.processor import ObservationHistory
from robot_learning.policies.policy import Policy
from robot_learning.runtime.chunking import ChunkJoiner

LATENCY_WINDOW = 10_000  # chunks (about 2 h at 10 Hz with 8-action chunks)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    period_s: float = 0.1  # one action per period (1 / policy_hz)
    latency_margin_s: float = 0.0  # actions due before now + margin count as late
    replan_remaining: int = 0  # ask for the next chunk when at most this many actions remain queued
    asynchronous: bool = True  # inference in a worker thread (False: inline, for sim-time loops)
    simulated_delay_s: float = 0.0  # inline inference only: a chunk is installed this long after its observation

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError(f"period_s must be positive, got {self.period_s}")
        if self.latency_margin_s < 0 or self.replan_remaining < 0:
            raise ValueError("latency_margin_s and replan_remaining must be >= 0")
        if not 0.0 <= self.simulated_delay_s <= 10.0:
            raise ValueError(f"simulated_delay_s must be in [0, 10] s, got {self.simulated_delay_s}")
        if self.simulated_delay_s and self.asynchronous:
            raise ValueError("simulated_delay_s is for inline inference on sim time (asynchronous=False); "
                             "asynchronous inference has its real delay")


@dataclass(frozen=True)
class TimedAction:
    action: np.ndarray
    due_s: float
    source: Literal["policy", "hold"]
    chunk_id: int = -1  # -1 for holds


@dataclass
class RunnerStats:
    chunks: int = 0  # chunks accepted
    actions: int = 0  # policy actions handed on
    dropped_late: int = 0  # policy actions whose due time had passed
    holds: int = 0  # hold actions handed on instead
    failures: int = 0  # inference raised
    invalid_chunks: int = 0  # NaN/Inf or wrong shape
    residual_failures: int = 0  # per-step corrections that raised or were not finite (the base action went out)
    # request -> chunk installed, the newest LATENCY_WINDOW only: a robot session runs for hours
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    last_error: str | None = None


class DeltaHold:
    """Hold for delta actions: zeros in ``delta_dims``, the last commanded value in the others (gripper)."""

    def __init__(self, action_dim: int, delta_dims: Sequence[int], initial: Sequence[float] | None = None):
        self.delta_mask = np.zeros(action_dim, bool)
        self.delta_mask[list(delta_dims)] = True
        self.initial = np.zeros(action_dim, np.float32) if initial is None else np.asarray(initial, np.float32)
        self.last = self.initial.copy()

    def reset(self) -> None:
        self.last = self.initial.copy()

    def remember(self, action: np.ndarray) -> None:
        self.last = np.asarray(action, np.float32).copy()

    def __call__(self) -> np.ndarray:
        return np.where(self.delta_mask, 0.0, self.last).astype(np.float32)


class PolicyRunner:
    """Observation history + asynchronous chunk inference + due-time scheduling + safe holds."""

    def __init__(self, policy: Policy, hold: DeltaHold, config: RunnerConfig | None = None,
                 clock: Callable[[], float] = time.monotonic, joiner: ChunkJoiner | None = None):
        self.policy, self.hold, self.config, self.clock = policy, hold, config or RunnerConfig(), clock
        self.joiner = joiner
        self._pending: tuple[float, np.ndarray, float, float] | None = None  # (install at, chunk, stamp, latency)
        self.history = ObservationHistory(policy.n_obs_steps, policy.obs_keys)
        self.stats = RunnerStats()
        self._queue: deque[TimedAction] = deque()
        self._lock = threading.Lock()
        self._request: tuple[dict[str, np.ndarray], float, float, int, int] | None = None
        self._in_flight = False
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._generation = 0  # bumped by reset(): chunks requested before belong to another episode
        self._worker: threading.Thread | None = None
        if self.config.asynchronous:
            self._worker = threading.Thread(target=self._work, name="policy-inference", daemon=True)
            self._worker.start()

    # ------------------------------------------------------------------ control-side API
    def reset(self) -> None:
        """New episode: forget history and queued actions (an in-flight chunk is discarded when it lands), and
        tell the policy."""
        with self._lock:
            self.history.reset()
            self._queue.clear()
            self._generation += 1
            if self._request is not None or self._pending is not None:  # not started, or not landed: forget it
                self._request, self._pending, self._in_flight = None, None, False
            self.hold.reset()
            self.policy.reset()
            if self.joiner is not None:
                self.joiner.reset()

    def observe(self, obs: Mapping[str, np.ndarray], now_s: float) -> None:
        """Add the observation taken at ``now_s``; request a chunk if the queue is running out."""
        with self._lock:
            self.history.push(obs)
            self._land_pending(now_s)
            self._drop_late(now_s)
            if self._in_flight or len(self._queue) > self.config.replan_remaining:
                return
            request = (self.history.stacked(), now_s, self.clock(), self._generation, len(self._queue))
            self._in_flight = True
            if self.config.asynchronous:
                self._request = request
                self._wake.notify()
                return
        self._infer(*request)

    def next_action(self, now_s: float) -> TimedAction:
        """The action for the slot at ``now_s`` (late ones dropped); a hold if there is none."""
        with self._lock:
            self._land_pending(now_s)
            self._drop_late(now_s)
            if self._queue and self._queue[0].due_s < now_s + self.config.latency_margin_s + self.config.period_s / 2:
                item = self._corrected(self._queue.popleft())
                self.stats.actions += 1
                self.hold.remember(item.action)
                return item
            self.stats.holds += 1
            return TimedAction(self.hold(), now_s, "hold")

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until no inference is in flight (tests, shutdown); True if it got there in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._in_flight:
                    return True
            time.sleep(0.001)
        return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        if self._worker is not None:
            self._worker.join(timeout=5.0)

    def __enter__(self) -> PolicyRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _corrected(self, item: TimedAction) -> TimedAction:
        """The policy's per-step correction from the newest observation (a fine-tuned base+residual's; a plain
        policy's leaves the action as it is). If it raises or is not finite, the chunk's own action goes out and it
        is counted."""
        if not len(self.history):
            return item
        try:
            action = np.asarray(self.policy.correct(self.history.latest(), item.action), dtype=np.float32)
            if action.shape != item.action.shape or not np.all(np.isfinite(action)):
                raise ValueError(f"correction of shape {action.shape}, finite={bool(np.all(np.isfinite(action)))}")
        except Exception as exc:
            self.stats.residual_failures += 1
            if self.stats.residual_failures <= 3:
                log.warning("residual correction failed (%s: %s); the base action goes out", type(exc).__name__, exc)
            return item
        return TimedAction(action, item.due_s, item.source, item.chunk_id)

    def _land_pending(self, now_s: float) -> None:
        """Install the chunk of a simulated delay once its time has come (caller holds the lock)."""
        if self._pending is not None and now_s >= self._pending[0] - 1e-9:
            _, chunk, obs_stamp_s, latency_s = self._pending
            self._pending, self._in_flight = None, False
            self._install(chunk, obs_stamp_s, latency_s)

    def _drop_late(self, now_s: float) -> None:
        """Pop actions due before the current slot (caller holds the lock)."""
        cutoff = now_s + self.config.latency_margin_s - self.config.period_s / 2
        while self._queue and self._queue[0].due_s < cutoff:
            self._queue.popleft()
            self.stats.dropped_late += 1

    def _work(self) -> None:
        while True:
            with self._lock:
                while self._request is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                request, self._request = self._request, None
            self._infer(*request)

    def _infer(self, history: dict[str, np.ndarray], obs_stamp_s: float, requested_s: float, generation: int,
               committed: int) -> None:
        chunk, error = None, None
        try:
            if self.joiner is not None:
                chunk = np.asarray(self.joiner.predict(history, obs_stamp_s, committed), dtype=np.float32)
            else:
                chunk = np.asarray(self.policy.predict_chunk(history), dtype=np.float32)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._in_flight = False
            if generation != self._generation:
                return  # reset() since the request: the chunk belongs to another episode
            if error is not None:
                self.stats.failures += 1
                self._fail(error)
            elif chunk.ndim != 2 or chunk.shape[1] != self.hold.delta_mask.size or not np.all(np.isfinite(chunk)):
                self.stats.invalid_chunks += 1
                self._fail(f"invalid chunk: shape {chunk.shape}, finite={bool(np.all(np.isfinite(chunk)))}")
            elif self.config.simulated_delay_s:
                self._pending = (obs_stamp_s + self.config.simulated_delay_s, chunk, obs_stamp_s,
                                 self.config.simulated_delay_s)
                self._in_flight = True  # until it lands
            else:
                self._install(chunk, obs_stamp_s, self.clock() - requested_s)

    def _install(self, chunk: np.ndarray, obs_stamp_s: float, latency_s: float) -> None:
        """Replace the queue by ``chunk``, action ``i`` due at ``obs_stamp_s + i * period`` (caller holds the lock)."""
        self.stats.chunks += 1
        self.stats.latencies_s.append(latency_s)
        period, chunk_id = self.config.period_s, self.stats.chunks
        self._queue = deque(TimedAction(a, obs_stamp_s + i * period, "policy", chunk_id) for i, a in enumerate(chunk))

    def _fail(self, error: str) -> None:
        """Discard everything queued (caller holds the lock): after a failure the arm holds, not coasts."""
        if self.stats.last_error is None or self.stats.failures + self.stats.invalid_chunks <= 3:
            log.warning("policy inference failed (%s); holding", error)
        self.stats.last_error = error
        self._queue.clear()
