"""Argument helpers shared by the verb modules."""

from __future__ import annotations

import argparse

from hardware_configs.loader import ConfigError, load_cell, load_task
from hardware_configs.schema import CellConfig, TaskConfig


def image_size(text: str) -> tuple[int, int] | None:
    """Parse WIDTHxHEIGHT, or ``none`` for no cameras (low-dimensional state only)."""
    if text.lower() == "none":
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must look like 96x96, got {text!r}") from None
    return width, height


def cell_arg(text: str) -> CellConfig:
    """The cell loaded and validated while the arguments are parsed: a bad file stops the verb before it starts."""
    try:
        return load_cell(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def task_arg(text: str) -> TaskConfig:
    try:
        return load_task(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_cell_task(parser: argparse.ArgumentParser, task_default: str = "lift") -> None:
    """``--cell`` and ``--task``, parsed into typed models (``args.cell.name`` is the cell's name)."""
    parser.add_argument("--cell", type=cell_arg, default="franka_3cam",
                        help="cell name in hardware_configs/cells or a .yaml path")
    parser.add_argument("--task", type=task_arg, default=task_default,
                        help="task name in hardware_configs/tasks or a .yaml path")
