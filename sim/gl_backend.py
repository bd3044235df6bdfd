"""Which OpenGL backend MuJoCo renders with, chosen before ``mujoco`` is imported (it reads ``MUJOCO_GL`` once).

Why this exists: without a display, MuJoCo's default (GLFW) cannot create a context, and the first render fails
in whatever thread does it, often long after start-up (a twin's render loop died while its node stayed up). So:

- ``MUJOCO_GL`` set: the user's choice is kept; only ``PYOPENGL_PLATFORM`` is made to match it (``MUJOCO_GL=osmesa``
  with the Makefile's ``PYOPENGL_PLATFORM=egl`` would not import).
- a display (``DISPLAY`` or ``WAYLAND_DISPLAY``): MuJoCo's default is left alone.
- neither: ``egl``, else ``osmesa``, each proven by rendering a lit frame in a child process (a backend cannot be
  tried in-process: the first import fixes it); if neither renders, :class:`GLBackendError` says what each said.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, MutableMapping

HEADLESS = ("egl", "osmesa")
PROBE_TIMEOUT_S = 60.0

# A red box filling an 8x8 view under a light: a backend that "renders" black frames fails this too.
_PROBE = """
import mujoco
model = mujoco.MjModel.from_xml_string(
    '<mujoco><worldbody><light pos="0 0 2"/><camera name="c" pos="0 0 1"/>'
    '<geom type="box" size="1 1 .1" rgba="1 0 0 1"/></worldbody></mujoco>')
data = mujoco.MjData(model)
mujoco.mj_forward(model, data)
renderer = mujoco.Renderer(model, 8, 8)
renderer.update_scene(data, "c")
image = renderer.render()
renderer.close()
assert image[..., 0].mean() > 20, f"a black frame (mean red {image[..., 0].mean():.1f})"
"""


class GLBackendError(OSError):
    """No OpenGL backend can render here; the message says what each one tried reported and what to install."""


def has_display(environ: MutableMapping[str, str]) -> bool:
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def probe_backend(backend: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None if MuJoCo renders a lit frame with ``backend`` in a fresh process, else the reason it did not."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return f"no frame within {timeout_s:.0f} s"
    if result.returncode == 0:
        return None
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def _match_pyopengl(environ: MutableMapping[str, str], backend: str) -> None:
    """PyOpenGL must load the same platform library as MuJoCo's context, or its calls go nowhere."""
    if backend in HEADLESS:
        environ["PYOPENGL_PLATFORM"] = backend
    elif environ.get("PYOPENGL_PLATFORM", "").lower() in HEADLESS:
        del environ["PYOPENGL_PLATFORM"]  # a windowed context: PyOpenGL picks glx/wayland itself


def preload_llvm_users() -> None:
    """Load triton (torch's compiler, which bundles its own LLVM) before any GL context exists.

    Mesa's software renderers (llvmpipe behind EGL, OSMesa) link the system's LLVM; once a context has loaded
    it, loading triton's LLVM segfaults the process (measured: render a frame, then ``import diffusers``). In
    the other order both work, so every process that may do both (the CLI, nodes, the tests) calls this first.
    A no-op where triton is not installed; about 0.15 s where it is.
    """
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def select_gl_backend(
    environ: MutableMapping[str, str] | None = None, probe: Callable[[str], str | None] = probe_backend
) -> str:
    """Set ``MUJOCO_GL`` (and a matching ``PYOPENGL_PLATFORM``) in ``environ`` (default ``os.environ``) and return
    it; ``"glfw"`` when a display is left to MuJoCo's default. Raises :class:`GLBackendError` if there is no
    display and no headless backend renders. Call it before anything imports ``mujoco``."""
    env = os.environ if environ is None else environ
    if environ is None:
        preload_llvm_users()
    chosen = env.get("MUJOCO_GL", "").strip().lower()
    if chosen:
        _match_pyopengl(env, chosen)
        return chosen
    if has_display(env):
        _match_pyopengl(env, "glfw")
        return "glfw"
    if environ is None and "mujoco" in sys.modules:
        raise GLBackendError(
            "mujoco was imported before an OpenGL backend was chosen (no display, MUJOCO_GL "
            "unset): it would try GLFW and fail; set MUJOCO_GL=egl or osmesa"
        )
    reasons = {}
    for backend in HEADLESS:
        reason = probe(backend)
        if reason is None:
            env["MUJOCO_GL"] = backend
            _match_pyopengl(env, backend)
            return backend
        reasons[backend] = reason
    tried = "; ".join(f"MUJOCO_GL={b}: {r}" for b, r in reasons.items())
    raise GLBackendError(
        f"no display and no headless OpenGL backend renders ({tried}). Install EGL (libegl1 and a "
        "GPU or Mesa driver) or OSMesa (libosmesa6), or set MUJOCO_GL to a backend that works."
    )
