"""Choosing MuJoCo's OpenGL backend before mujoco is imported: the user's choice, a display, or a headless
backend proven to render; never a silent fall-through to GLFW on a machine without a display."""

from __future__ import annotations

import pytest

from sim.gl_backend import GLBackendError, probe_backend, select_gl_backend


class FakeProbe:
    """Backends that render here (the rest fail with a reason); records what was tried."""

    def __init__(self, *working: str) -> None:
        self.working, self.tried = working, []

    def __call__(self, backend: str) -> str | None:
        self.tried.append(backend)
        return None if backend in self.working else f"{backend} cannot create a context"


def test_an_explicit_mujoco_gl_is_kept_and_pyopengl_follows_it():
    env = {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "egl"}  # the Makefile's default beside a user's choice
    probe = FakeProbe()
    assert select_gl_backend(env, probe) == "osmesa"
    assert env == {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"} and probe.tried == []


def test_a_windowed_choice_drops_a_headless_pyopengl_platform():
    env = {"MUJOCO_GL": "glfw", "PYOPENGL_PLATFORM": "egl", "DISPLAY": ":0"}
    assert select_gl_backend(env, FakeProbe()) == "glfw"
    assert "PYOPENGL_PLATFORM" not in env


def test_with_a_display_mujocos_default_is_left_alone():
    env = {"DISPLAY": ":1"}
    probe = FakeProbe()
    assert select_gl_backend(env, probe) == "glfw"
    assert env == {"DISPLAY": ":1"} and probe.tried == []


@pytest.mark.parametrize(("working", "expected"), [(("egl", "osmesa"), "egl"), (("osmesa",), "osmesa")])
def test_without_a_display_the_first_headless_backend_that_renders_is_chosen(working, expected):
    env: dict[str, str] = {}
    assert select_gl_backend(env, FakeProbe(*working)) == expected
    assert env == {"MUJOCO_GL": expected, "PYOPENGL_PLATFORM": expected}


def test_without_a_display_and_no_backend_that_renders_the_error_names_each_and_what_to_install():
    env: dict[str, str] = {}
    with pytest.raises(GLBackendError, match=r"MUJOCO_GL=egl: egl cannot.*MUJOCO_GL=osmesa: osmesa cannot.*libosmesa6"):
        select_gl_backend(env, FakeProbe())
    assert "MUJOCO_GL" not in env


def test_the_probe_renders_a_real_frame_or_says_why_not():
    assert probe_backend("egl") is None or probe_backend("osmesa") is None  # this machine renders headless
    reason = probe_backend("not_a_backend")
    assert reason is not None and "MUJOCO_GL" in reason


_RENDER_THEN_IMPORT_DIFFUSERS = """
import os, sys
os.environ["MUJOCO_GL"] = "egl"
os.environ["PYOPENGL_PLATFORM"] = "egl"
from sim.gl_backend import preload_llvm_users
preload_llvm_users()
import mujoco
model = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom type="sphere" size=".1"/></worldbody></mujoco>')
renderer = mujoco.Renderer(model, 8, 8)
renderer.update_scene(mujoco.MjData(model))
renderer.render()
import diffusers  # loads triton's LLVM when triton is installed
print("both loaded")
"""


def test_a_process_that_renders_and_then_loads_the_policy_libraries_survives():
    """Triton's LLVM loaded after Mesa's segfaults the process (demo, eval, tests do both); preloading avoids it."""
    import subprocess
    import sys

    pytest.importorskip("diffusers")
    done = subprocess.run([sys.executable, "-c", _RENDER_THEN_IMPORT_DIFFUSERS], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "both loaded" in done.stdout
