"""Writer process for test_episode_store_kill: appends deterministic episodes until it is killed.

Usage: ``python _kill_writer.py STORE_PATH MAX_EPISODES``. Prints ``committing <i>`` before and ``committed <i>``
after each ``commit()`` (30 ms later), flushed, so the test knows which commits returned before its SIGKILL.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from robot_learning.data.episode_store import ArraySpec, EpisodeStore

SPECS = {
    "cam0_rgb": ArraySpec((64, 64, 3), np.uint8, "1", description="colour image"),
    "wrist_rgb": ArraySpec((64, 64, 3), np.uint8, "1", description="colour image"),
    "depth_m": ArraySpec((64, 64), np.float32, "m", frame="cam0"),
    "joint_pos_rad": ArraySpec((7,), np.float32, "rad"),
    "action": ArraySpec((7,), np.float32, "rad"),
}
ATTRS = {"cell": "test_cell", "task": "kill_test"}


def make_episode(i: int) -> dict[str, np.ndarray]:
    """Content of episode ``i``, a pure function of ``i`` (random images, so chunks don't compress away)."""
    rng = np.random.default_rng(i)
    n = 24 + 8 * (i % 4)
    return {
        "cam0_rgb": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
        "wrist_rgb": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
        "depth_m": rng.uniform(0.2, 2.0, (n, 64, 64)).astype(np.float32),
        "joint_pos_rad": rng.standard_normal((n, 7)).astype(np.float32),
        "action": np.full((n, 7), i, np.float32),
    }


def main(path: Path, max_episodes: int) -> None:
    store = EpisodeStore.open_or_create(path, SPECS, ATTRS)
    print(f"opened {len(store)}", flush=True)
    for i in range(len(store), max_episodes):
        data = make_episode(i)
        with store.begin_episode({"seed": i, "operator": "kill_test"}) as ep:
            for t in range(len(data["action"])):
                ep.add_step(**{k: v[t] for k, v in data.items()})
            print(f"committing {i}", flush=True)
            ep.commit(success=i % 3 != 0)
        time.sleep(0.03)  # widens the window where the store holds one more episode than was reported
        print(f"committed {i}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
