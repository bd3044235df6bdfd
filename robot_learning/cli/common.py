"""Argument helpers shared by the verb modules."""

from __future__ import annotations

import argparse


def image_size(text: str) -> tuple[int, int] | None:
    """Parse WIDTHxHEIGHT, or ``none`` for no cameras (low-dimensional state only)."""
    if text.lower() == "none":
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must look like 96x96, got {text!r}") from None
    return width, height


def add_cell_task(parser: argparse.ArgumentParser, task_default: str = "lift") -> None:
    parser.add_argument("--cell", default="franka_3cam", help="cell name in hardware_configs/cells or a .yaml path")
    parser.add_argument("--task", default=task_default, help="task name in hardware_configs/tasks or a .yaml path")
