"""How fast hostile cell files are refused, and with what message: a table, one row per attack.

    .venv/bin/python benchmarks/hostile_inputs.py [--repeats 5]

Each case is written to a temporary file and loaded with ``load_cell``; the table gives the slowest of the
repeats (the loader's goal: every refusal well under a second) and the first line of the error.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hardware_configs import ConfigError, load_cell
from hardware_configs.safe_yaml import MAX_FILE_BYTES

CELL_TEXT = Path(__file__).resolve().parents[1].joinpath("hardware_configs/cells/franka_3cam.yaml").read_text()


def billion_laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def just_under_the_size_bound(make_line: Callable[[int], str]) -> str:
    lines, size, i = [], 0, 0
    while size < MAX_FILE_BYTES - 200:
        line = make_line(i)
        lines.append(line)
        size += len(line) + 1
        i += 1
    return "\n".join(lines) + "\n"


CASES: dict[str, bytes] = {
    "alias bomb, 9^10 nodes": billion_laughs(10).encode(),
    "alias cycle": b"a: &a [1, *a]\n",
    "flow nesting, 30k levels": ("a: " + "[" * 30_000 + "]" * 30_000).encode(),
    "block nesting, 300 levels": "".join(" " * i + "k:\n" for i in range(300)).encode(),
    "64 KiB of unknown keys": just_under_the_size_bound(lambda i: f"key_{i}: [{i}, {i}, {i}]").encode(),
    "64 KiB single value": ("name: " + "x" * (MAX_FILE_BYTES - 100) + "\n").encode(),
    "1 MiB file": b"# " + b"x" * (1 << 20),
    "not UTF-8": "name: caf\xe9\n".encode("latin-1"),
    "duplicate key": (CELL_TEXT + "name: other\n").encode(),
    "NaN speed limit": CELL_TEXT.replace("max_linear_speed_m_s: 0.25", "max_linear_speed_m_s: .nan").encode(),
    "speed limit 1e9 m/s": CELL_TEXT.replace("max_linear_speed_m_s: 0.25", "max_linear_speed_m_s: 1e9").encode(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'case':<28} {'file':>9} {'refused in':>11}  message (first line, cut at 70)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in CASES.items():
            path = Path(tmp) / "cell.yaml"
            path.write_bytes(content)
            worst, message = 0.0, "LOADED (not refused!)"
            for _ in range(args.repeats):
                start = time.perf_counter()
                try:
                    load_cell(path)
                except ConfigError as exc:
                    message = str(exc).replace(str(path), "<file>")
                worst = max(worst, time.perf_counter() - start)
            first = message.splitlines()[-1 if message.count("\n") else 0].strip()
            print(f"{name:<28} {len(content) / 1024:>7.0f}Ki {worst * 1000:>9.1f}ms  {first[:70]}")


if __name__ == "__main__":
    main()
