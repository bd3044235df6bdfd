"""Fixtures for reward tests: a real local OpenAI-compatible server answering from a test oracle.

Every server binds 127.0.0.1 on a free port and is stopped when its test ends; clients get tight timeouts
so a fault can never hang the suite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from robot_learning.rewards.fm.client import CacheMode, FMClient
from robot_learning.rewards.fm.fake_server import FakeOpenAIServer, Oracle
from robot_learning.rewards.fm.profiles import ModelProfile, load_profile

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fm_local: needs llama-cpp-python's server and the SmolLM2 GGUF (optional tier)")
    config.addinivalue_line("markers", "fm_live: a real model endpoint named by MANIP_FM_LIVE_PROFILE (opt-in)")


@pytest.fixture
def serve() -> Iterator[Callable[[Oracle], FakeOpenAIServer]]:
    """``server = serve(oracle)``: a started fake server, stopped after the test."""
    servers: list[FakeOpenAIServer] = []

    def start(oracle: Oracle) -> FakeOpenAIServer:
        servers.append(FakeOpenAIServer(oracle).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def fast_profile(server: FakeOpenAIServer, **overrides: object) -> ModelProfile:
    """The oracle profile pointed at ``server`` with tight timeouts and short backoffs."""
    fields = {"base_url": server.base_url, "timeout_s": 0.5, "connect_timeout_s": 0.5, "max_retries": 3,
              "backoff_initial_s": 0.01, "backoff_max_s": 0.05, "max_retry_after_s": 1.0, "deadline_s": 5.0}
    fields.update(overrides)
    return load_profile("oracle_local", **fields)


@pytest.fixture
def client_for() -> Callable[..., FMClient]:
    """``client_for(server, cache=None, cache_mode=..., **profile_overrides)``: a fast-failing client."""

    def make(server: FakeOpenAIServer, cache=None, cache_mode: CacheMode = CacheMode.read_write,
             **overrides: object) -> FMClient:
        return FMClient(fast_profile(server, **overrides), cache, cache_mode, rng_seed=0)

    return make
