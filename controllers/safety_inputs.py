"""Reading the safety filter's inputs without trusting their types.

``np.asarray(x, dtype=float)`` would quietly drop imaginary parts, parse strings and turn bools into 0 and 1.
Here only Python or numpy ints and floats in the right shapes are real numbers; everything else is refused
(``malformed_rejected``), non-finite values and a zero quaternion as ``nonfinite_rejected``.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass

import numpy as np

from controllers.safety_events import MALFORMED_REJECTED, NONFINITE_REJECTED


@dataclass(frozen=True)
class Goal:
    position_m: np.ndarray
    quaternion_xyzw: np.ndarray
    gripper_closure: float



def unit_quaternion(q: np.ndarray) -> np.ndarray | None:
    """Normalised copy of a finite quaternion, scaled first so huge or tiny inputs survive; None if zero."""
    scale = float(np.max(np.abs(q)))
    if scale == 0.0:
        return None
    q = q / scale
    return q / np.linalg.norm(q)




def is_real(x: object) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


def real_scalar(value: object) -> float | None:
    """``value`` as a float when it is one real number (a 0-d int/float array too); None otherwise."""
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
        value = value[()]
    if not is_real(value):
        return None
    try:
        with np.errstate(over="ignore"):  # a longdouble beyond float64 becomes inf: refused as non-finite
            return float(value)
    except OverflowError:  # a Python int beyond float range
        return None


def real_vector(value: object, size: int) -> np.ndarray | None:
    """A float64 copy of ``value`` when it is a list, tuple or int/float array of ``size`` real numbers."""
    if isinstance(value, list | tuple):
        if len(value) != size or not all(is_real(x) for x in value):
            return None
        value = np.asarray(value)  # object dtype when an int exceeds int64: refused below
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf" or value.shape != (size,):
        return None
    with np.errstate(over="ignore"):
        return value.astype(np.float64)


def finite_time(value: object) -> float | None:
    stamp_s = real_scalar(value)
    return stamp_s if stamp_s is not None and math.isfinite(stamp_s) else None


def describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return f"{type(value).__name__} {reprlib.repr(value)}"


def parse_target(target: object) -> tuple[Goal | None, str | None, str]:
    """The command as finite float arrays with a unit quaternion; or the refusal flag and why."""
    fields = {name: getattr(target, name, None) for name in ("position_m", "quaternion_xyzw", "gripper_closure")}
    position_m = real_vector(fields["position_m"], 3)
    quat = real_vector(fields["quaternion_xyzw"], 4)
    gripper = real_scalar(fields["gripper_closure"])
    parsed = {"position_m": position_m, "quaternion_xyzw": quat, "gripper_closure": gripper}
    bad = [f"{name} is {describe(fields[name])}" for name, value in parsed.items() if value is None]
    if bad:
        return None, MALFORMED_REJECTED, "; ".join(bad)
    if not (np.all(np.isfinite(position_m)) and np.all(np.isfinite(quat)) and math.isfinite(gripper)):
        return None, NONFINITE_REJECTED, "non-finite values"
    unit = unit_quaternion(quat)
    if unit is None:
        return None, NONFINITE_REJECTED, "zero quaternion"
    return Goal(position_m, unit, gripper), None, ""


def parse_state(measured: object) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Position, unit quaternion, closure and stamp of a measured state; ValueError when it has none."""
    names = ("tcp_position_m", "tcp_quaternion_xyzw", "gripper_closure", "stamp_s")
    fields = {name: getattr(measured, name, None) for name in names}
    parsed = (
        real_vector(fields["tcp_position_m"], 3),
        real_vector(fields["tcp_quaternion_xyzw"], 4),
        real_scalar(fields["gripper_closure"]),
        real_scalar(fields["stamp_s"]),
    )
    bad = [f"{name} is {describe(fields[name])}" for name, value in zip(names, parsed, strict=True) if value is None]
    if bad:
        raise ValueError(
            f"cannot reset the safety filter from a malformed state ({'; '.join(bad)}): real numbers of the "
            "right shapes are needed; fix the backend's read_state()"
        )
    position_m, quat, gripper, stamp_s = parsed
    finite = np.all(np.isfinite(position_m)) and np.all(np.isfinite(quat))
    if not (finite and math.isfinite(gripper) and math.isfinite(stamp_s)):
        raise ValueError(
            f"cannot reset the safety filter from a non-finite state: position {position_m}, quaternion {quat}, "
            f"gripper {gripper}, stamp {stamp_s}; fix the backend's read_state()"
        )
    unit = unit_quaternion(quat)
    if unit is None:
        raise ValueError("cannot reset the safety filter: the measured TCP quaternion is zero")
    return position_m, unit, gripper, stamp_s
