"""One client for every OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama), built from a profile.

Why not the ``openai`` package's own retries: we need to count them, honour ``Retry-After`` up to a cap of our
choosing, stop at an overall deadline (a reward query must never hang a session), and keep every error message
free of credentials. So the package sends single attempts (``max_retries=0``) and this module retries.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

import openai

from robot_learning.rewards.fm.cache import ResponseCache
from robot_learning.rewards.fm.messages import canonicalize
from robot_learning.rewards.fm.profiles import JsonMode, ModelProfile

log = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class FMError(RuntimeError):
    """A model call that failed for good (after retries); the message is safe to log (no credentials)."""


class FMCacheMiss(FMError):  # noqa: N818 - reads better at the call site than FMCacheMissError
    """Offline mode and the answer is not in the cache."""


class CacheMode(str, Enum):
    read_write = "read_write"  # answer from the cache when possible, store new answers
    offline = "offline"  # cache only: a miss is an error, the network is never used
    refresh = "refresh"  # always ask the server, overwrite the cache
    off = "off"  # no cache


@dataclass
class ChatAnswer:
    content: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cached: bool
    attempts: int
    cache_key: str


@dataclass
class UsageMeter:
    """Counters over the life of a client (or several, when shared): what the rewards cost. Tokens and dollars
    count answers from the server only; a cache hit costs nothing and is counted in ``cache_hits``."""

    calls: int = 0
    http_attempts: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, value in deltas.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class _RedactSecrets(logging.Filter):
    """Defence in depth on third-party loggers: a record that would carry a key is rewritten."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = redact(message, sorted(self.secrets))
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_REDACTOR = _RedactSecrets()
# Logger filters do not apply to child loggers' records, so the loggers that actually emit are named.
for _name in ("openai", "openai._base_client", "httpx", "httpx2", "httpcore", "httpcore2.http11",
              "httpcore2.connection", __name__):
    logging.getLogger(_name).addFilter(_REDACTOR)

_SEMAPHORES: dict[tuple[str, str], threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


def _semaphore(profile: ModelProfile) -> threading.BoundedSemaphore:
    """One concurrency limit per server and model, shared by every client of that profile in the process."""
    with _SEMAPHORES_LOCK:
        key = (profile.base_url, profile.model)
        if key not in _SEMAPHORES:
            _SEMAPHORES[key] = threading.BoundedSemaphore(profile.max_concurrency)
        return _SEMAPHORES[key]


def retry_after_s(headers: Any) -> float | None:
    """Seconds a server asked us to wait: ``retry-after-ms``, ``retry-after`` in seconds or as an HTTP date."""
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return max(0.0, float(headers["retry-after-ms"]) / 1000.0)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class FMClient:
    """Chat completions against one profile, with cache, retries, a concurrency limit and usage accounting."""

    def __init__(self, profile: ModelProfile, cache: ResponseCache | None = None,
                 cache_mode: CacheMode = CacheMode.read_write, usage: UsageMeter | None = None,
                 rng_seed: int | None = None):
        self.profile = profile
        self.cache = cache if cache_mode is not CacheMode.off else None
        self.cache_mode = cache_mode
        self.usage = usage or UsageMeter()
        self._rng = random.Random(rng_seed)
        self._client: openai.OpenAI | None = None
        self._secrets: list[str] = []
        if cache_mode is CacheMode.offline and cache is None:
            raise ValueError("offline mode needs a cache to answer from")

    def __repr__(self) -> str:
        p = self.profile
        return f"FMClient(profile={p.name!r}, model={p.model!r}, cache_mode={self.cache_mode.value})"

    def _openai(self) -> openai.OpenAI:
        if self._client is None:  # lazily: an offline replay needs neither a key nor a server
            key = self.profile.api_key()
            if self.profile.api_key_env is not None:
                self._secrets = [key]
                _REDACTOR.secrets.add(key)
            timeout = openai.Timeout(self.profile.timeout_s, connect=self.profile.connect_timeout_s)
            self._client = openai.OpenAI(api_key=key, base_url=self.profile.base_url, timeout=timeout, max_retries=0)
        return self._client

    def response_format(self, schema: dict[str, Any] | None, name: str = "answer") -> dict[str, Any] | None:
        mode = self.profile.json_mode
        if schema is None or mode is JsonMode.none:
            return None
        if mode is JsonMode.json_schema:
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        if mode is JsonMode.json_object_schema:
            return {"type": "json_object", "schema": schema}
        return {"type": "json_object"}

    def complete(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None,
                 schema_name: str = "answer") -> ChatAnswer:
        """One answer for a conversation: from the cache, or from the server with retries. Raises FMError."""
        has_images = any(isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"])
                         for m in messages)
        if has_images and not self.profile.supports_images:
            raise FMError(f"profile {self.profile.name} ({self.profile.model}) does not take images")
        response_format = self.response_format(schema, schema_name)
        params: dict[str, Any] = {"temperature": self.profile.temperature, "max_tokens": self.profile.max_tokens,
                                  "seed": self.profile.seed, "response_format": response_format}
        request = canonicalize(self.profile.model, messages, params)
        key = request.key()
        self.usage.add(calls=1)
        if self.cache is not None and self.cache_mode in (CacheMode.read_write, CacheMode.offline):
            hit = self.cache.get(key)
            if hit is not None:
                self.usage.add(cache_hits=1)
                return ChatAnswer(hit.content, hit.finish_reason, hit.prompt_tokens, hit.completion_tokens,
                                  hit.latency_ms, cached=True, attempts=0, cache_key=key)
            if self.cache_mode is CacheMode.offline:
                self.usage.add(failures=1)
                raise FMCacheMiss(f"offline: no cached answer for request {key[:12]} (profile {self.profile.name})")
        kwargs = {k: v for k, v in params.items() if v is not None}
        answer = self._send_with_retries(messages, kwargs)
        answer.cache_key = key
        if self.cache is not None:
            self.cache.put(request, self.profile.name, answer.content, answer.finish_reason, answer.prompt_tokens,
                           answer.completion_tokens, answer.latency_ms)
        return answer

    def _send_with_retries(self, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> ChatAnswer:
        p = self.profile
        start = time.monotonic()
        last_error = "no attempt made"
        for attempt in range(p.max_retries + 1):
            wait_s: float | None = None
            try:
                with _semaphore(p):
                    self.usage.add(http_attempts=1)
                    t0 = time.perf_counter()
                    response = self._openai().chat.completions.create(model=p.model, messages=messages, **kwargs)
                    latency_ms = (time.perf_counter() - t0) * 1e3
                return self._answer(response, latency_ms, attempt + 1)
            except openai.APIStatusError as exc:
                last_error = f"HTTP {exc.status_code}: {self._safe_body(exc)}"
                if exc.status_code not in RETRYABLE_STATUS:
                    break
                wait_s = retry_after_s(getattr(exc.response, "headers", None))
            except openai.APITimeoutError:
                last_error = f"no answer within {p.timeout_s:g} s"
            except openai.APIConnectionError as exc:
                last_error = f"connection failed: {type(exc.__cause__ or exc).__name__}"
            except FMError as exc:  # malformed answer body: the server may do better next time
                last_error = str(exc)
            except Exception as exc:
                last_error = f"unreadable response ({type(exc).__name__})"
            if attempt == p.max_retries:
                break
            delay = self._delay_s(attempt, wait_s)
            if time.monotonic() - start + delay > p.deadline_s:
                last_error += f"; deadline of {p.deadline_s:g} s reached"
                break
            log.warning("%s: attempt %d failed (%s); retrying in %.2f s", p.name, attempt + 1,
                        redact(last_error, self._secrets), delay)
            self.usage.add(retries=1)
            time.sleep(delay)
        self.usage.add(failures=1)
        raise FMError(redact(f"{p.name} ({p.model} at {p.base_url}) failed: {last_error}", self._secrets))

    def _delay_s(self, attempt: int, retry_after: float | None) -> float:
        p = self.profile
        if retry_after is not None:
            return min(retry_after, p.max_retry_after_s)
        backoff = min(p.backoff_max_s, p.backoff_initial_s * 2**attempt)
        return backoff * (0.5 + 0.5 * self._rng.random())  # jitter: clients sharing a server spread out

    def _safe_body(self, exc: openai.APIStatusError) -> str:
        try:
            text = exc.response.text
        except Exception:
            text = ""
        return redact(text[:300], self._secrets)

    def _answer(self, response: Any, latency_ms: float, attempts: int) -> ChatAnswer:
        choices = getattr(response, "choices", None)
        if not choices or getattr(choices[0], "message", None) is None:
            raise FMError("response has no choices")
        content = choices[0].message.content
        if not isinstance(content, str):
            raise FMError("response message has no text content")
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        self.usage.add(prompt_tokens=prompt, completion_tokens=completion, latency_ms=latency_ms,
                       cost_usd=self.profile.cost_usd(prompt, completion))
        return ChatAnswer(content, choices[0].finish_reason, prompt, completion, latency_ms, cached=False,
                          attempts=attempts, cache_key="")
