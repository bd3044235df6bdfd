"""The twin's physics in many worlds at once on MuJoCo Warp (GPU-batched), for privileged-state rollouts.

The CPU twin (:class:`sim.env.TwinEnv`, one ``mujoco.MjData`` per env) stays the default and the reference. This is
the physics layer of a batched path: the same compiled ``MjModel`` the twin builds, ``n_worlds`` copies of its state
on a Warp device, stepped together from a (n_worlds, nu) array of actuator inputs (the twin's joint-servo targets
and gripper command) with the twin's physics steps per control tick. Scenes are drawn and reset by the CPU twin and
copied in (:meth:`WarpTwinPhysics.load`), so both paths start from the same state; ``tests/sim/test_warp_twin.py``
compares a short rollout of both.

What it does not do yet: the twin's per-step Python (IK, the safety filter, interpolation, success checks) runs
per env on the CPU; a thousands-of-worlds residual PPO needs those batched as well (torch or Warp kernels over the
(n_worlds, ...) arrays this class exposes). On a CPU Warp compiles MuJoCo Warp's kernels with LLVM: about 4 min the
first time (then cached in ``~/.cache/warp``), and a step is far slower than MuJoCo's own: it is for checking, not
speed. Requires the ``warp`` extra (``mujoco-warp==4.0.0``, matching ``mujoco==4.0.0``).
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

# Per-world state copied between MjData and the Warp batch: enough to continue a rollout exactly.
STATE_FIELDS = ("qpos", "qvel", "act", "ctrl", "mocap_pos", "mocap_quat", "qacc_warmstart")


def warp_available() -> str | None:
    """None if MuJoCo Warp imports, else why not (one line)."""
    try:
        import mujoco_warp  # noqa: F401
        import warp  # noqa: F401
    except ImportError as exc:
        return f"MuJoCo Warp is not installed ({exc.name}): pip install -e '.[warp]'"
    return None


def _quiet(wp) -> None:
    """No banner and no line per loaded kernel module (Warp logs both at INFO)."""
    if hasattr(wp, "LOG_WARNING"):
        wp.config.log_level = wp.LOG_WARNING
    wp.config.quiet = True


def default_device() -> str:
    """``cuda:0`` where Warp sees a GPU, else ``cpu``."""
    import warp as wp

    _quiet(wp)
    wp.init()
    return "cuda:0" if wp.get_cuda_device_count() > 0 else "cpu"


class WarpTwinPhysics:
    """``n_worlds`` copies of ``model`` on a Warp ``device``; ``physics_steps_per_tick`` as the twin's robot uses
    (``TwinRobot.physics_steps_per_tick``: control period / model timestep)."""

    def __init__(self, model: mujoco.MjModel, n_worlds: int, physics_steps_per_tick: int = 1,
                 device: str | None = None, nconmax: int | None = None, njmax: int | None = None):
        reason = warp_available()
        if reason:
            raise RuntimeError(reason)
        import mujoco_warp as mjw
        import warp as wp

        if n_worlds < 1 or physics_steps_per_tick < 1:
            raise ValueError(f"n_worlds and physics_steps_per_tick must be positive, got {n_worlds}, "
                             f"{physics_steps_per_tick}")
        _quiet(wp)
        self.device = device or default_device()
        self.model, self.n_worlds, self.physics_steps_per_tick = model, n_worlds, physics_steps_per_tick
        self._mjw, self._wp = mjw, wp
        start = mujoco.MjData(model)
        mujoco.mj_forward(model, start)
        with wp.ScopedDevice(self.device):
            self.warp_model = mjw.put_model(model)
            self.warp_data = mjw.put_data(model, start, nworld=n_worlds, nconmax=nconmax, njmax=njmax)

    def load(self, datas: Sequence[mujoco.MjData]) -> None:
        """Every world's state from one CPU ``MjData`` each (e.g. scenes the CPU twin reset and settled)."""
        if len(datas) != self.n_worlds:
            raise ValueError(f"{len(datas)} states for {self.n_worlds} worlds")
        for name in STATE_FIELDS:
            stacked = np.stack([np.asarray(getattr(d, name)) for d in datas])
            if stacked.size:
                getattr(self.warp_data, name).assign(stacked.reshape(getattr(self.warp_data, name).shape))
        self.warp_data.time.assign(np.array([d.time for d in datas]))
        with self._wp.ScopedDevice(self.device):
            self._mjw.forward(self.warp_model, self.warp_data)

    def tick(self, ctrl: np.ndarray) -> None:
        """One control tick in every world: actuator inputs (n_worlds, nu) held for ``physics_steps_per_tick``."""
        ctrl = np.asarray(ctrl, dtype=np.float32)
        if ctrl.shape != (self.n_worlds, self.model.nu) or not np.all(np.isfinite(ctrl)):
            raise ValueError(f"ctrl must be finite with shape {(self.n_worlds, self.model.nu)}, got {ctrl.shape}")
        self.warp_data.ctrl.assign(ctrl)
        with self._wp.ScopedDevice(self.device):
            for _ in range(self.physics_steps_per_tick):
                self._mjw.step(self.warp_model, self.warp_data)

    def qpos(self) -> np.ndarray:
        """(n_worlds, nq) joint positions (free joints: position [m] then quaternion wxyz)."""
        return self.warp_data.qpos.numpy().copy()

    def qvel(self) -> np.ndarray:
        return self.warp_data.qvel.numpy().copy()

    def world(self, i: int) -> mujoco.MjData:
        """World ``i`` as a CPU ``MjData`` (positions, velocities, contacts), e.g. for the twin's readouts."""
        data = mujoco.MjData(self.model)
        self._mjw.get_data_into(data, self.model, self.warp_data, world_id=i)
        return data
