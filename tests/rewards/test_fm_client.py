"""The model client over real HTTP: answers, retries, faults, limits, accounting, cache and replay."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from robot_learning.rewards.fm.cache import ResponseCache
from robot_learning.rewards.fm.client import CacheMode, FMCacheMiss, FMClient, FMError, retry_after_s
from robot_learning.rewards.fm.fake_server import Reply
from robot_learning.rewards.fm.messages import user_message
from robot_learning.rewards.fm.profiles import ProfileError, load_profile

HELLO = [{"role": "user", "content": "hello"}]


def test_answer_travels_over_http_with_images_decoded_by_the_server(serve, client_for):
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:20, 5:15] = (200, 30, 40)
    seen = {}

    def oracle(request):
        seen["image"] = request.images[0]
        return {"pixel": request.images[0][15, 10].tolist()}

    client = client_for(serve(oracle))
    answer = client.complete([user_message("what colour?", [image])])
    assert json.loads(answer.content) == {"pixel": [200, 30, 40]}
    np.testing.assert_array_equal(seen["image"], image)  # lossless PNG, decoded from the data URL
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0 and not answer.cached


def test_429_waits_as_long_as_retry_after_says(serve, client_for):
    server = serve(lambda r: "ok")
    server.inject(Reply(status=429, retry_after_s=0.3))
    client = client_for(server, backoff_initial_s=0.0, backoff_max_s=0.0)
    start = time.monotonic()
    assert client.complete(HELLO).content == "ok"
    assert 0.28 <= time.monotonic() - start < 1.5
    assert client.usage.retries == 1 and len(server.requests) == 2


def test_retry_after_is_capped_by_the_profile(serve, client_for):
    server = serve(lambda r: "ok")
    server.inject(Reply(status=429, retry_after_s=30))
    start = time.monotonic()
    assert client_for(server, max_retry_after_s=0.2).complete(HELLO).content == "ok"
    assert time.monotonic() - start < 2.0


def test_server_errors_and_malformed_bodies_are_retried(serve, client_for):
    server = serve(lambda r: "fine")
    server.inject(Reply(status=500), Reply(status=503), Reply(raw_body=b"{this is not json"))
    client = client_for(server, max_retries=3)
    answer = client.complete(HELLO)
    assert answer.content == "fine" and answer.attempts == 4


def test_timeouts_end_in_an_error_within_the_budget_not_a_hang(serve, client_for):
    server = serve(lambda r: "late")
    server.inject(*[Reply(content="late", delay_s=3.0)] * 3)
    client = client_for(server, timeout_s=0.3, max_retries=2)
    start = time.monotonic()
    with pytest.raises(FMError, match=r"no answer within 0\.3 s"):
        client.complete(HELLO)
    assert time.monotonic() - start < 2.5
    assert client.usage.failures == 1 and client.usage.http_attempts == 3


def test_client_errors_are_not_retried(serve, client_for):
    server = serve(lambda r: "never")
    server.inject(Reply(status=400, error_body='{"error": {"message": "bad request"}}'))
    client = client_for(server)
    with pytest.raises(FMError, match="HTTP 400"):
        client.complete(HELLO)
    assert len(server.requests) == 1


def test_unreachable_server_fails_fast(client_for, serve):
    server = serve(lambda r: "x")
    server.stop()
    with pytest.raises(FMError, match="connection failed"):
        client_for(server, max_retries=1).complete(HELLO)


def test_concurrency_limit_holds_across_threads(serve, client_for):
    server = serve(lambda r: Reply(content="ok", delay_s=0.15))
    client = client_for(server, max_concurrency=2)
    threads = [threading.Thread(target=client.complete, args=([{"role": "user", "content": f"q{i}"}],))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(server.requests) == 6
    assert server.log.max_in_flight == 2


def test_tokens_and_cost_are_accounted(serve, client_for):
    client = client_for(serve(lambda r: "x" * 40), usd_per_million_input_tokens=1e6, usd_per_million_output_tokens=0)
    client.complete([{"role": "user", "content": "y" * 400}])
    usage = client.usage.snapshot()
    assert usage["prompt_tokens"] == 100 and usage["completion_tokens"] == 10
    assert usage["cost_usd"] == pytest.approx(100.0)


def test_cache_answers_repeat_requests_without_http_and_replays_offline(serve, client_for, tmp_path):
    server = serve(lambda r: f"answer {len(r.text)}")
    cache = ResponseCache(tmp_path / "cache.sqlite")
    image = np.full((8, 8, 3), 7, np.uint8)
    messages = [user_message("describe", [image])]
    first = client_for(server, cache).complete(messages)
    second = client_for(server, cache).complete(messages)
    assert second.cached and second.content == first.content and len(server.requests) == 1
    server.stop()
    offline = FMClient(load_profile("oracle_local"), ResponseCache(tmp_path / "cache.sqlite"), CacheMode.offline)
    assert offline.complete(messages).content == first.content
    other_image = [user_message("describe", [np.full((8, 8, 3), 8, np.uint8)])]
    with pytest.raises(FMCacheMiss):
        offline.complete(other_image)  # keyed by image content, not just the text


def test_cache_stores_each_answer_with_its_request_for_inspection(serve, client_for, tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    client_for(serve(lambda r: "seen"), cache).complete([user_message("look", [np.zeros((4, 4, 3), np.uint8)])])
    (entry,) = cache.entries()
    assert entry.content == "seen" and entry.request["model"] == "oracle"
    part = entry.request["messages"][0]["content"][1]
    assert part["image_url"]["url"].startswith("sha256:")
    mime, data = cache.image(part["image_url"]["url"])
    assert mime == "image/png" and data[:4] == b"\x89PNG"


def test_text_only_profiles_refuse_images_before_sending(serve, client_for):
    server = serve(lambda r: "x")
    with pytest.raises(FMError, match="does not take images"):
        client_for(server, supports_images=False).complete([user_message("x", [np.zeros((4, 4, 3), np.uint8)])])
    assert server.requests == []


def test_retry_after_accepts_seconds_milliseconds_and_dates():
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert 0 <= retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) < 1  # in the past: now
    assert retry_after_s({}) is None


def test_profiles_reject_unknown_fields_and_name_missing_key_variables(tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_url: http://x/v1\nmodel: m\ntimeout: 3\n")
    with pytest.raises(ProfileError, match="timeout"):
        load_profile(bad)
    monkeypatch.delenv("MANIP_TEST_MISSING_KEY", raising=False)
    profile = load_profile("openai_gpt4o", api_key_env="MANIP_TEST_MISSING_KEY")
    with pytest.raises(ProfileError, match="MANIP_TEST_MISSING_KEY is not set"):
        profile.api_key()
    with pytest.raises(ProfileError, match="NAME of an environment variable"):
        load_profile("openai_gpt4o", api_key_env="sk-abc-123")


def test_a_long_running_server_keeps_only_its_newest_requests_but_counts_them_all(client_for):
    from robot_learning.rewards.fm.fake_server import FakeOpenAIServer

    with FakeOpenAIServer(lambda request: {"n": request.text}, keep_requests=2) as server:
        client = client_for(server)
        for i in range(5):
            client.complete([{"role": "user", "content": f"question {i}"}])
        assert server.log.served == 5
        assert [r.text for r in server.requests] == ["question 3", "question 4"]  # images of a long run not hoarded
