"""SIGKILL a real writer process at random moments; the store must reopen with exactly the committed episodes.

A writer (``_kill_writer.py``) appends deterministic episodes and prints a line after each ``commit()``
returns. Every round kills it either shortly after a ``committing`` line (so mostly mid-commit) or at a
random time since launch (during start-up, ``create``, ``add_step`` or a commit), then checks the store.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from robot_learning.data.episode_store import EpisodeStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WRITER = HERE / "_kill_writer.py"

_spec = importlib.util.spec_from_file_location("_kill_writer", WRITER)
kill_writer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kill_writer)


def _run_and_kill(path: Path, rng: random.Random, mid_commit: bool) -> list[str]:
    """Start the writer, SIGKILL it, and return every line it printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        if mid_commit:
            skip = rng.randrange(3)  # let a few commits go through first
            while True:
                line = proc.stdout.readline()
                assert line, f"writer exited early: {proc.stderr.read()}"
                lines.append(line.strip())
                if line.startswith("committing"):
                    if skip == 0:
                        break
                    skip -= 1
            time.sleep(rng.uniform(0.0, 0.3))  # a commit takes ~150 ms, then 30 ms until it is reported
        else:
            time.sleep(rng.uniform(0.1, 1.5))  # may land in start-up or create()
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"writer died on its own (rc={proc.returncode}): {err}"
    return lines + out.split()


def _assert_episode_intact(store: EpisodeStore, i: int) -> None:
    expected = kill_writer.make_episode(i)
    got = store.get_episode(i)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        np.testing.assert_array_equal(got[key], value, err_msg=f"episode {i} key {key}")
    info = store.episode_info(i)
    assert (info["seed"], info["success"], info["operator"]) == (i, i % 3 != 0, "kill_test")


def test_sigkill_at_random_moments_keeps_committed_episodes(tmp_path: Path) -> None:
    path = tmp_path / "kill.zarr"
    rng = random.Random(20240611)
    n_checked = 0
    extra_seen = 0
    for round_ in range(12):
        output = " ".join(_run_and_kill(path, rng, mid_commit=round_ % 3 != 2)).split()
        committed = {int(n) for word, n in itertools.pairwise(output) if word == "committed"}
        started = {int(n) for word, n in itertools.pairwise(output) if word == "committing"}
        if not path.exists():  # killed before create() renamed the new store into place
            assert not committed
            continue
        store = EpisodeStore.open(path, mode="r")
        n = len(store)
        n_promised = max(committed, default=n_checked - 1) + 1
        # Every returned commit is there; at most the one in flight is extra, and only if it had started.
        assert n in (n_promised, n_promised + 1), (round_, n, n_promised)
        if n == n_promised + 1:
            assert n - 1 in started
            extra_seen += 1
        assert store.n_steps == (int(store.episode_ends[-1]) if n else 0)
        for i in range(n_checked, n):
            _assert_episode_intact(store, i)
        n_checked = n
    assert n_checked >= 5, "the writer never got going; timings are off"

    # Appending after the crash: append-mode open cleans up, the next episode lands after the intact ones.
    with EpisodeStore.open(path, mode="a") as store:
        assert not list(path.rglob("*.partial"))
        assert all(store._data[k].shape[0] == store.n_steps for k in store.keys)
        data = kill_writer.make_episode(n_checked)
        with store.begin_episode({"seed": n_checked, "operator": "kill_test"}) as ep:
            for t in range(len(data["action"])):
                ep.add_step(**{k: v[t] for k, v in data.items()})
            ep.commit(success=n_checked % 3 != 0)
    store = EpisodeStore.open(path)
    assert len(store) == n_checked + 1
    for i in range(len(store)):
        _assert_episode_intact(store, i)
    store.verify()
    print(f"{len(store)} episodes, {extra_seen} rounds where the in-flight commit had landed")
