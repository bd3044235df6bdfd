"""A robot machine's Python layout, rebuilt from this environment, for the "On the robot" install test.

On Ubuntu 24.04 with ROS 2 Jazzy from apt there are three layers, and ``docs/on_the_robot.md`` relies on each:

- the system interpreter ``/usr/bin/python3`` and its ``dist-packages`` (apt's numpy, yaml, colcon, ...),
- ``/opt/ros/jazzy``, which ``setup.bash`` puts on ``PYTHONPATH`` / ``LD_LIBRARY_PATH`` / ``AMENT_PREFIX_PATH``,
- a venv made with ``--system-site-packages`` holding what pip installed for the project (pydantic 2, zarr, ...).

Here the ROS 2 wheels in the test's own venv stand in for ``/opt/ros/jazzy``. A venv made from a venv is not
layered on it (``python -m venv`` takes the base interpreter, so the middle venv's packages vanish), so the
system interpreter is rebuilt instead: a copy of the base interpreter's binary in a new prefix whose stdlib
links to the real one and whose site-packages holds only what apt would provide. A venv created from that
binary with ``--system-site-packages`` then sees exactly those packages, as on the robot. Everything is
symlinks into the test's venv, so nothing is downloaded and building the layers takes well under a second.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Distributions of the ROS 2 wheels (the stand-in for /opt/ros/jazzy). The PyPI build ships each ROS package as
# ``ros-<name>`` plus ``ros-jazzy-<name>`` meta packages and a few legacy egg-infos; its bootstrapper (a .pth
# that re-executes Python with LD_LIBRARY_PATH set) is replaced by the prefix's setup script.
ROS_DIST = re.compile(r"^(ros-.*|rosidl-.*|rosgraph-msgs|rclpy)$")
BOOTSTRAPPER = "ros-wheels-bootstrapper"
# What apt installs beside ROS on the robot and the system interpreter therefore provides: colcon (ros-dev-tools)
# and the Python libraries the ROS packages themselves depend on.
APT_SIDE = ["colcon-common-extensions", "setuptools"]


def _dist(name: str) -> md.Distribution | None:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        return None


def requirement_closure(roots: Iterable[str], skip: set[str] = frozenset(), follow: bool = True) -> set[str]:
    """Canonical names of the installed distributions that ``roots`` (requirement strings with extras) pull in,
    following markers as pip would on this interpreter; names in ``skip`` are neither kept nor followed.
    ``follow=False`` is ``pip install --no-deps``: the roots only. Each must be installed at a version its
    requirement allows, else LookupError (this environment is older than setup.py)."""
    seen: set[str] = set()
    todo = [(Requirement(r), None) for r in roots]
    while todo:
        req, extra = todo.pop()
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": extra or ""}):
            continue
        if name in skip:
            continue
        dist = _dist(name)
        if dist is None:
            raise LookupError(f"{req} is needed but not installed in {sys.prefix}")
        if not req.specifier.contains(dist.version, prereleases=True):
            raise LookupError(f"{req} is needed but {name} {dist.version} is installed in {sys.prefix}")
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        for sub in (dist.requires or []) if follow else []:
            sub_req = Requirement(sub)
            if sub_req.marker is None:
                todo.append((sub_req, None))
            else:  # a requirement of one of the extras asked for, or a platform marker
                for want in [*sorted(req.extras), None]:
                    if sub_req.marker.evaluate({"extra": want or ""}):
                        todo.append((Requirement(str(sub_req).split(";")[0]), None))
                        break
    return {k.split("[")[0] for k in seen}


def setup_py_requirements(setup_py: Path, extras: Iterable[str]) -> list[str]:
    """``install_requires`` plus the named extras, read from ``setup.py`` as it is now (the installed metadata of
    an editable install is only as new as its last ``pip install``)."""
    import runpy

    import setuptools

    captured: dict = {}
    real_setup = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        runpy.run_path(str(setup_py), run_name="__main__")
    finally:
        setuptools.setup = real_setup
    out = list(captured["install_requires"])
    for extra in extras:
        out += captured["extras_require"][extra]
    return out


def ros_distributions() -> set[str]:
    names = {canonicalize_name(d.metadata["Name"]) for d in md.distributions()}
    return {n for n in names if ROS_DIST.match(n) and n != BOOTSTRAPPER}


def apt_side_distributions(ros: set[str]) -> set[str]:
    """What the system interpreter gets: colcon and setuptools, and the non-ROS Python libraries the ROS packages
    depend on (numpy, yaml, lark, empy: apt's python3-* packages on the robot), with their dependencies."""
    needs = [r for name in sorted(ros) for r in (md.distribution(name).requires or [])
             if canonicalize_name(Requirement(r).name) not in ros]
    return requirement_closure(APT_SIDE + needs, skip=ros | {BOOTSTRAPPER})


def _top_level_entries(dist_name: str, site: Path) -> set[Path]:
    """The entries of ``site`` a distribution installed: its import packages/modules and its metadata folder.
    Read from RECORD's first path components (``dist.files`` parses every line and is slow for torch)."""
    dist = md.distribution(dist_name)
    meta = Path(str(dist._path))  # the .dist-info / .egg-info folder importlib read
    names: set[str] = set()
    record = dist.read_text("RECORD")
    if record is not None:
        names = {line.split(",", 1)[0].split("/", 1)[0] for line in record.splitlines() if line}
    else:  # legacy egg-info: top_level.txt names modules or packages
        for name in (dist.read_text("top_level.txt") or "").split():
            names |= {p.name for p in site.glob(name + "*") if p.name == name or p.suffix in (".py", ".so")}
    out = {site / n for n in names if n and n not in ("..", "__pycache__") and not n.endswith(".pth")}
    out = {p for p in out if p.exists() or p.is_symlink()}
    if meta.parent == site:
        out.add(meta)
    return out


def link_distributions(names: Iterable[str], source_site: Path, dest_site: Path) -> None:
    dest_site.mkdir(parents=True, exist_ok=True)
    for name in sorted(names):
        for entry in _top_level_entries(name, source_site):
            target = dest_site / entry.name
            if not target.exists():
                target.symlink_to(entry)


def make_system_python(root: Path) -> Path:
    """A stand-in for ``/usr/bin/python3``: the base interpreter's binary copied into ``root/bin`` with the real
    stdlib linked under ``root/lib``, and an empty site-packages (filled by the caller, as apt would)."""
    base_exe = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "installed_base": sys.base_prefix})["stdlib"])
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "python3"
    shutil.copy2(base_exe, exe)
    lib = root / "lib" / stdlib.name
    lib.mkdir(parents=True)
    for entry in stdlib.iterdir():
        if entry.name not in ("site-packages", "dist-packages"):
            (lib / entry.name).symlink_to(entry)
    libdir = Path(sysconfig.get_config_var("LIBDIR") or Path(sys.base_prefix) / "lib")
    for shared in libdir.glob("libpython*"):  # a binary that finds libpython next to itself ($ORIGIN/../lib)
        (root / "lib" / shared.name).symlink_to(shared)
    return exe


def system_site_dir(python: Path) -> Path:
    """Where ``python``'s own site-packages is (Debian builds call it dist-packages); created if missing."""
    out = subprocess.run([str(python), "-S", "-c", "import site, sys; print(site.getsitepackages()[0])"],
                         capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    site = Path(out.stdout.strip())
    site.mkdir(parents=True, exist_ok=True)
    return site


def make_ros_prefix(root: Path, source_site: Path) -> Path:
    """A stand-in for ``/opt/ros/jazzy``: the ROS wheels' packages under ``lib/pythonX.Y/site-packages``, their
    shared libraries under ``lib``, and ``setup.bash``/``local_setup.bash`` exporting what the real ones export
    for Python nodes. Returns the site-packages folder."""
    py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = root / "lib" / py / "site-packages"
    link_distributions(ros_distributions(), source_site, site)
    venv_lib = Path(sys.prefix) / "lib"
    for shared in venv_lib.glob("lib*.so*"):  # the wheels install their C libraries into <prefix>/lib
        (root / "lib" / shared.name).symlink_to(shared)
    wheel_libs = sorted(str(p) for p in site.glob("ros_*.libs"))
    ld_path = os.pathsep.join([str(root / "lib"), *wheel_libs])
    script = (
        "# generated: what /opt/ros/jazzy/local_setup.bash exports for Python nodes\n"
        f'export AMENT_PREFIX_PATH="{root}${{AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}}"\n'
        f'export PYTHONPATH="{site}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
        f'export LD_LIBRARY_PATH="{ld_path}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"\n'
        f'export PATH="{root}/bin${{PATH:+:$PATH}}"\n'
        "export ROS_DISTRO=jazzy ROS_VERSION=2 ROS_PYTHON_VERSION=3\n"
    )
    (root / "bin").mkdir(exist_ok=True)
    for name in ("local_setup.bash", "setup.bash", "local_setup.sh", "setup.sh"):
        (root / name).write_text(script)
    return site


__all__ = [
    "APT_SIDE",
    "BOOTSTRAPPER",
    "apt_side_distributions",
    "link_distributions",
    "make_ros_prefix",
    "make_system_python",
    "requirement_closure",
    "ros_distributions",
    "setup_py_requirements",
    "system_site_dir",
]
