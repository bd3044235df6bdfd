"""Every torch file this stack reads or writes: tensors and plain data only, never pickled Python objects.

Unpickling a file can run any code its author chose, and checkpoints, residuals and session states arrive from
other machines and other people. So every loader reads with ``weights_only=True`` through :func:`load_plain`,
which refuses a file holding anything else with :class:`UnsafeFileError` before a byte of it runs, and every
writer goes through :func:`save_plain`, which refuses to write what such a loader would refuse, so a run never
saves a state it cannot resume from.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

# Opcodes that fetch or build an arbitrary Python object, which torch's weights-only reader may report as an
# "Unsupported operand" rather than an unsupported global (how a hand-made malicious pickle would run code).
_OBJECT_OPCODES = {
    ord(op.code)
    for op in pickletools.opcodes
    if op.name in {"STACK_GLOBAL", "INST", "OBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"}
}
# What save_plain writes: a subset of what torch's weights_only unpickler accepts, so anything saved loads back.
_SCALARS = (bool, int, float, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


class UnreadableFileError(ValueError):
    """Not a torch file of tensors and plain data: truncated, corrupted or another format."""


class UnsafeFileError(UnreadableFileError):
    """A torch file that holds pickled Python objects: refused unread, since unpickling it could run code."""


def load_plain(path: str | Path, what: str = "torch file", map_location: Any = "cpu") -> Any:
    """The contents of ``path`` (a ``what``, for messages), read with ``torch.load(..., weights_only=True)``.

    Raises :class:`UnsafeFileError` for a file holding pickled objects and :class:`UnreadableFileError` for one
    that is not a torch file; ``FileNotFoundError`` and other OS errors pass through for the caller to word.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except pickle.UnpicklingError as error:
        reason = _refused_object(str(error))
        if reason is None:
            found = re.search(r"Unsupported operand \d+", str(error))
            detail = found[0] if found else "refused by the weights-only reader"
            raise UnreadableFileError(
                f"{path} is not a readable {what}: not a torch file of tensors and plain data ({detail})"
            ) from None
        raise UnsafeFileError(
            f"{path} is refused: this {what} contains pickled Python objects ({reason}), and loading those could "
            "run arbitrary code, so they are never unpickled. Every version of this stack writes only tensors and "
            "plain data, so this file was written or altered elsewhere: re-create it from a source you trust."
        ) from None
    except Exception as error:  # zip/record errors, truncated files, text files: torch raises all sorts
        raise UnreadableFileError(f"{path} is not a readable {what}: {type(error).__name__}: {error}") from None


def _refused_object(message: str) -> str | None:
    """What torch's weights-only reader refused, when it was a reference to a Python object; None otherwise."""
    found = re.search(r"GLOBAL ([\w.]+)", message)  # "Unsupported global: GLOBAL x", "unsupported GLOBAL x whose.."
    if found:
        return f"it refers to {found[1]}"
    found = re.search(r"Unsupported operand (\d+)", message)
    if found and int(found[1]) in _OBJECT_OPCODES:
        return f"pickle opcode {pickletools.code2op[chr(int(found[1]))].name}"
    return None


def check_plain(obj: Any, where: str = "") -> None:
    """Raise ``TypeError`` naming the first value in ``obj`` that :func:`load_plain` would refuse (its key path),
    e.g. a numpy array or a pydantic model: convert those to tensors, lists or ``model_dump(mode="json")``."""
    if isinstance(obj, torch.Tensor):
        if type(obj) not in (torch.Tensor, torch.nn.Parameter):
            raise TypeError(f"{where or 'the object'} is a {type(obj).__qualname__}; save a plain torch.Tensor")
        return
    if type(obj) in _SCALARS:  # exactly: not a subclass such as an IntEnum or numpy.float64
        return
    if type(obj) in (list, tuple, set):  # exactly: not a namedtuple
        for i, item in enumerate(obj):
            check_plain(item, f"{where}[{i}]")
        return
    if type(obj) in (dict, OrderedDict):
        for key, value in obj.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where or 'the object'} has a key {key!r} of type {type(key).__qualname__}")
            check_plain(value, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where or 'the object'} is a {type(obj).__module__}.{type(obj).__qualname__}, which a "
        "weights_only load refuses; save tensors, numbers, strings, lists and dicts only"
    )


def save_plain(obj: Mapping[str, Any], path: str | Path) -> None:
    """Check ``obj`` (:func:`check_plain`), then ``torch.save`` it to a temporary file and rename it over
    ``path``: a kill leaves the old file or the new one, never half of one."""
    obj = dict(obj)
    check_plain(obj)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
