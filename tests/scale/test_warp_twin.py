"""MuJoCo Warp physics of the twin against the CPU twin (the reference): two lift scenes reset by the CPU twin,
copied into two Warp worlds, driven by the same joint-servo targets for 12 control ticks, end in the same state."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from robot_learning.scale.warp_twin import WarpTwinPhysics, warp_available
from sim.env import TwinEnv

pytestmark = [
    pytest.mark.slow,  # on a CPU, Warp compiles MuJoCo Warp's kernels with LLVM: ~4 min once, cached after
    pytest.mark.skipif(warp_available() is not None, reason=str(warp_available())),
]

TICKS = 12


def _ctrl(start: np.ndarray, tick: int) -> np.ndarray:
    """The settled servo targets, the first two arm joints swinging 0.01 rad per tick, the gripper closing."""
    ctrl = start.copy()
    ctrl[:, :2] += 0.01 * (tick + 1)
    ctrl[:, -1] = start[:, -1] + (tick + 1) * 10.0
    return ctrl


def test_warp_worlds_follow_the_cpu_twin_for_the_same_controls():
    envs = [TwinEnv(task="lift", image_size=None) for _ in range(2)]
    for seed, env in enumerate(envs):
        env.reset(seed=seed)
    model, steps = envs[0].model, envs[0].robot.physics_steps_per_tick
    warp = WarpTwinPhysics(model, n_worlds=2, physics_steps_per_tick=steps, device="cpu")
    warp.load([env.data for env in envs])
    start = np.stack([env.data.ctrl.copy() for env in envs])
    q0 = np.stack([env.data.qpos.copy() for env in envs])
    for tick in range(TICKS):
        ctrl = _ctrl(start, tick)
        for i, env in enumerate(envs):
            env.data.ctrl[:] = ctrl[i]
            mujoco.mj_step(model, env.data, nstep=steps)
        warp.tick(ctrl)
    cpu = np.stack([env.data.qpos for env in envs])
    assert np.abs(cpu[:, :2] - q0[:, :2]).min() > 0.05  # the arm really swung
    # float32 (Warp) against float64 (MuJoCo): measured 7e-6 apart after 60 physics steps; the arm swung 0.12 rad
    np.testing.assert_allclose(warp.qpos(), cpu, atol=1e-3)
    cube = [env.task._free_qpos["cube"] for env in envs]
    assert np.linalg.norm(cpu[0, cube[0]:cube[0] + 3] - cpu[1, cube[1]:cube[1] + 3]) > 0.01  # two different scenes
    world1 = warp.world(1)
    np.testing.assert_allclose(world1.qpos, envs[1].data.qpos, atol=1e-3)
