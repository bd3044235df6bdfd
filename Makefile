# Two commands for a fresh machine (see README):
#   make demo   set up, then run the main job on the embedded default cell (the MuJoCo twin)
#   make test   set up, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py Makefile scripts/install_lerobot_check.sh | sha1sum | cut -c1-12)
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): setup.py Makefile scripts/install_lerobot_check.sh
	bash scripts/install_system_deps.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all,ros,dev]"
	# Panda + Robotiq 2F-85 meshes for the twin; --no-deps because its metadata pins an older mujoco.
	$(PY) -m pip install -q --no-deps gym-hil==0.1.14
	# LeRobot 0.4.4 in its own folder (it pins below our stack), for the LeRobot-load test; exit 2 = FFmpeg's
	# libraries missing and not installable without root: said clearly, that test then skips. Other failures stop.
	PY=$(PY) bash scripts/install_lerobot_check.sh $(VENV)/lerobot-site || test $$? -eq 2
	touch $@

demo: setup
	$(VENV)/bin/manip-stack demo --cell franka_3cam --task lift --episodes 100 --out outputs/demo

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q tests || test $$? -eq 5

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/twin.py
	$(PY) benchmarks/perception_throughput.py

clean:
	rm -rf $(VENV) ros2_ws/build ros2_ws/install ros2_ws/log
