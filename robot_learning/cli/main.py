"""`manip-stack <verb>`: the command line of the stack.

Each group of verbs lives in its own module with a ``register(verbs)`` function; every verb is a thin
wrapper over a ROS-free session core, importing heavy libraries only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sim.gl_backend import GLBackendError, select_gl_backend

log = logging.getLogger("manip_stack")

# One module per group of verbs; add a module here to add its verbs.
COMMAND_MODULES = (
    "robot_learning.cli.data_commands",
    "robot_learning.cli.perception_commands",
    "robot_learning.cli.reward_commands",
    "robot_learning.cli.policy_commands",
    "robot_learning.cli.ros_commands",
    "robot_learning.cli.rl_commands",
    "robot_learning.cli.teleop_commands",
    "robot_learning.cli.view_commands",
    "robot_learning.cli.distill_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manip-stack", description="Real-robot manipulation stack.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(verbs)
    return parser


def _users_to_fix(exc: Exception) -> bool:
    """Config and data problems (a bad file, a damaged or locked store): one clear line, no traceback."""
    kinds: tuple[type[Exception], ...] = (ValueError, KeyError, FileNotFoundError, FileExistsError)
    store = sys.modules.get("robot_learning.data.integrity")  # loaded whenever one of its errors was raised
    return isinstance(exc, kinds + ((store.EpisodeStoreError,) if store else ()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    try:  # before any verb imports mujoco: on a machine without a display, a headless backend that renders
        select_gl_backend()
    except GLBackendError as exc:  # verbs that do not render still work
        log.warning("%s Verbs that render will fail.", exc)
    try:
        return args.func(args)
    except Exception as exc:
        if not _users_to_fix(exc):
            raise
        # Config and data problems are the user's to fix: one clear line, no traceback.
        print(f"manip-stack {args.verb}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
