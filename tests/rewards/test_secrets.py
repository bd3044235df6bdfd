"""API keys reach the server's Authorization header and nowhere else: not logs, errors, caches or reprs."""

from __future__ import annotations

import logging

import pytest

from robot_learning.rewards.fm.cache import ResponseCache
from robot_learning.rewards.fm.client import FMError
from robot_learning.rewards.fm.fake_server import Reply
from robot_learning.rewards.fm.structured import ask_structured

SECRET = "sk-test-DO-NOT-LEAK-0123456789"


def test_key_is_sent_but_never_logged_raised_or_stored(serve, client_for, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MANIP_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    server = serve(lambda r: "not json at all")
    cache = ResponseCache(tmp_path / "cache.sqlite")
    client = client_for(server, cache, api_key_env="MANIP_TEST_KEY", max_retries=1)

    # a server that echoes the key in its error body (some do) and a retried failure
    server.inject(Reply(status=500, error_body=f'{{"error": "key {SECRET} rejected"}}'),
                  Reply(status=401, error_body=f'{{"error": "invalid key {SECRET}"}}'))
    with pytest.raises(FMError) as error:
        client.complete([{"role": "user", "content": "hi"}])
    # then answers that fail validation, are repaired, and get cached
    from pydantic import BaseModel

    class Answer(BaseModel):
        value: int

    result = ask_structured(client, [{"role": "user", "content": "give a number"}], Answer, max_repairs=1)

    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert not result.ok
    assert SECRET not in str(error.value) and "***" in str(error.value)
    assert SECRET not in repr(client) and SECRET not in repr(client.profile)
    assert SECRET not in str(client.usage.snapshot()) and SECRET not in " ".join(result.errors)
    assert SECRET not in caplog.text
    cache.close()
    for path in tmp_path.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
