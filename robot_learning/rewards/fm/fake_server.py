"""A small OpenAI-compatible HTTP server answering from an oracle, with fault injection.

Real HTTP on 127.0.0.1, real request bodies, images decoded from their data URLs, so tests and benchmarks
exercise the same path as a vLLM, llama.cpp or OpenAI endpoint. Faults (timeouts, 429 with Retry-After,
500, malformed bodies, truncated answers) are queued with :meth:`FakeOpenAIServer.inject` and served before
the oracle is asked. Token counts are estimates (4 characters a token, 85 + 170 per 512-px tile an image,
as OpenAI counts high-detail images): say so wherever they are reported.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from robot_learning.rewards.fm.messages import decode_image, message_text


@dataclass
class OracleRequest:
    """What the server received, decoded: the oracle answers from this."""

    model: str
    messages: list[dict[str, Any]]
    text: str
    images: list[np.ndarray]
    response_format: dict[str, Any] | None
    headers: dict[str, str]


@dataclass
class Reply:
    """One HTTP answer. ``content`` for a normal answer; the other fields make it a fault."""

    content: str = ""
    status: int = 200
    delay_s: float = 0.0
    retry_after_s: float | None = None
    finish_reason: str = "stop"
    raw_body: bytes | None = None  # sent as is (malformed JSON, say)
    error_body: str = '{"error": {"message": "injected fault"}}'


Oracle = Callable[[OracleRequest], "Reply | str | dict[str, Any]"]


def estimate_tokens(text: str, images: list[np.ndarray]) -> int:
    tiles = sum(math.ceil(img.shape[0] / 512) * math.ceil(img.shape[1] / 512) for img in images)
    return math.ceil(len(text) / 4) + 85 * len(images) + 170 * tiles


@dataclass
class ServerLog:
    """Requests as received (the newest ``keep`` when bounded: a long RL run sends thousands with images)."""

    requests: list[OracleRequest] = field(default_factory=list)
    served: int = 0
    keep: int | None = None
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeOpenAIServer:
    """``with FakeOpenAIServer(oracle) as server: ... server.base_url ...``; stops by itself on exit."""

    def __init__(self, oracle: Oracle, host: str = "127.0.0.1", port: int = 0, keep_requests: int | None = None):
        self.oracle = oracle
        self.log = ServerLog(keep=keep_requests)
        self._faults: deque[Reply] = deque()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def inject(self, *replies: Reply) -> None:
        """Serve these (in order) before asking the oracle again."""
        self._faults.extend(replies)

    @property
    def requests(self) -> list[OracleRequest]:
        return self.log.requests

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, request: OracleRequest) -> Reply:
        if self._faults:
            return self._faults.popleft()
        answer = self.oracle(request)
        if isinstance(answer, Reply):
            return answer
        return Reply(content=answer if isinstance(answer, str) else json.dumps(answer))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet: tests read server.log instead
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self._send(404, b'{"error": {"message": "unknown path"}}')
                    return
                messages = body.get("messages", [])
                images = [decode_image(part["image_url"]["url"]) for m in messages
                          if isinstance(m.get("content"), list) for part in m["content"]
                          if part.get("type") == "image_url"]
                request = OracleRequest(body.get("model", ""), messages, message_text(messages), images,
                                        body.get("response_format"), {k.lower(): v for k, v in self.headers.items()})
                with server.log.lock:
                    server.log.requests.append(request)
                    server.log.served += 1
                    if server.log.keep is not None and len(server.log.requests) > server.log.keep:
                        del server.log.requests[0]
                    server.log.in_flight += 1
                    server.log.max_in_flight = max(server.log.max_in_flight, server.log.in_flight)
                try:
                    reply = server._next_reply(request)
                    if reply.delay_s > 0 and server._stop.wait(reply.delay_s):
                        return
                    self._answer(reply, request, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer
                finally:
                    with server.log.lock:
                        server.log.in_flight -= 1

            def _answer(self, reply: Reply, request: OracleRequest, body: dict[str, Any]) -> None:
                if reply.raw_body is not None:
                    self._send(reply.status, reply.raw_body)
                    return
                if reply.status != 200:
                    headers = {} if reply.retry_after_s is None else {"retry-after": f"{reply.retry_after_s:g}"}
                    self._send(reply.status, reply.error_body.encode(), headers)
                    return
                prompt_tokens = estimate_tokens(request.text, request.images)
                completion_tokens = math.ceil(len(reply.content) / 4)
                payload = {
                    "id": f"chatcmpl-fake-{server.log.served}", "object": "chat.completion",
                    "created": int(time.time()), "model": request.model,
                    "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                                 "message": {"role": "assistant", "content": reply.content}}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                }
                self._send(200, json.dumps(payload).encode())

            def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
