"""Recordings built from the twin's renders, written by a software device, read back through librealsense.

``sync_recordings``: three small (160x120) recordings of one session with deliberately different clocks:
cam_front at 30 fps, cam_side at 30 fps but 5 ms late, cam_wrist at 15 fps. ``scene_recordings``: one
640x480 frameset of a settled lift scene with its ground truth (cube pose, flange pose, the twin's frames).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from hardware_configs.schema import CellConfig, Intrinsics
from perception.cameras import Frame
from perception.cameras.twin import TwinCamera
from perception.recording import write_recording
from sim.robot import TwinRobot
from sim.scene import ImageSize, build_model
from sim.tasks import TwinTask

SYNC_SIZE = (160, 120)
SYNC_SECONDS = 3.0
# camera -> (fps, clock offset [ms]) of the sync recordings
SYNC_CLOCKS = {"cam_front": (30.0, 0.0), "cam_side": (30.0, 5.0), "cam_wrist": (15.0, 0.0)}


@dataclass
class SceneRecordings:
    directory: Path
    twin_frames: dict[str, Frame]
    intrinsics: dict[str, Intrinsics]
    T_base_flange: np.ndarray
    cube_position_m: np.ndarray
    cube_half_size_m: float


def settled_lift_scene(cell: CellConfig, task, size: ImageSize, seed: int = 0):
    model = build_model(cell, task, size, fast_render=True)
    data = mujoco.MjData(model)
    robot = TwinRobot(model, data, cell)
    robot.reset_to()
    TwinTask(model, data, task).reset(np.random.default_rng(seed))
    for _ in range(60):  # the cube settles on the table
        robot.wait_for_tick()
    return model, data


def render_frames(model, data, cell: CellConfig, size: ImageSize) -> tuple[dict[str, Frame], dict[str, Intrinsics]]:
    frames, intrinsics = {}, {}
    for camera in cell.cameras:
        twin = TwinCamera(model, data, camera.name, size.width, size.height)
        twin._open()  # render in this thread, without starting the reader
        try:
            frames[camera.name] = twin.render()
        finally:
            twin._close()
        intrinsics[camera.name] = twin.intrinsics
    return frames, intrinsics


def restamped(frame: Frame, device_time_ms: float, frame_number: int) -> Frame:
    return Frame(frame.camera, frame.color, frame.depth_m, device_time_ms, 0.0, frame_number)


def write_in_parallel(jobs: dict[Path, tuple[list[Frame], Intrinsics, str]]) -> None:
    """Paced writers run at once, so recordings of one session take their duration once, not three times."""
    errors: list[BaseException] = []

    def write(path: Path, frames: list[Frame], intr: Intrinsics, serial: str) -> None:
        try:
            write_recording(frames, intr, path, serial=serial, time_origin_ms=0.0, pace=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(path, *job)) for path, job in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class SimStepper:
    """Steps a twin in (roughly) real time in a thread, holding ``lock`` while stepping: the twin cameras' clock."""

    def __init__(self, model, data, cell: CellConfig) -> None:
        self.robot = TwinRobot(model, data, cell)
        self.robot.reset_to()
        self.lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import time

        next_s = time.monotonic()
        while not self._stop.is_set():
            with self.lock:
                self.robot.wait_for_tick()
            next_s += self.robot.control_period_s
            time.sleep(max(0.0, next_s - time.monotonic()))

    def __enter__(self) -> SimStepper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_until(predicate, timeout_s: float) -> bool:
    """Poll ``predicate`` every 10 ms until it holds or ``timeout_s`` passes; its final value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
