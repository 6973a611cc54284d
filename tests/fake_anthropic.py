"""A fake Anthropic Messages API on 127.0.0.1 that records requests and injects faults on demand."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

#: words that say nothing about what a question asks for
_STOP = (
    "does do the a an this that these those with have has document notice policy say says "
    "give gives there their about which what from when where whether is are be it of to in "
    "on for and or any your you how who state states explain explains mention mentions"
)
STOPWORDS = frozenset(_STOP.split())
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


def keywords(question: str) -> list[str]:
    return [w for w in _WORD.findall(question.lower()) if len(w) >= 4 and w not in STOPWORDS]


def decide(question: str, document: str) -> dict[str, Any]:
    """The fake model's rule: yes when every keyword of the question occurs in the text (as a
    substring, case-insensitive), with the sentence that holds the most keywords as evidence."""
    words = keywords(question)
    low = document.lower()
    if words and all(w in low for w in words):
        best = max(
            _SENTENCE.finditer(document),
            key=lambda m: (sum(w in m.group().lower() for w in words), len(m.group())),
        )
        return {
            "verdict": "yes",
            "confidence": 0.9,
            "evidence": [best.group().strip()],
            "rationale": f"The text mentions {', '.join(words)}.",
        }
    missing = [w for w in words if w not in low]
    return {
        "verdict": "no",
        "confidence": 0.8,
        "evidence": [],
        "rationale": f"The text never mentions {', '.join(missing) or 'the subject'}.",
    }


MISSING = object()  # Fault(kind="bad_usage", usage=MISSING): a reply without a usage key


@dataclass
class Fault:
    """What the server does to one request instead of (or before) answering it properly.

    kinds: ``rate_limit`` (429 with Retry-After ``retry_after``), ``error`` (HTTP ``status``),
    ``slow`` (wait ``delay`` seconds, then answer), ``truncated`` (cut the JSON body in half),
    ``invalid_json`` (a body that is not JSON), ``wrong_schema`` (a tool call whose input lacks
    the required fields), ``no_tool`` (a plain text reply), ``bad_usage`` (a proper answer
    whose ``usage`` block is replaced by ``usage``; ``MISSING`` leaves the key out)."""

    kind: str
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    usage: Any = None


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    raw: str


@dataclass
class FakeAnthropic:
    """The running server: point the SDK at ``url``; read ``requests``; queue ``faults`` (used
    one per request, in order) or set ``always`` for a fault on every request."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    always: Fault | None = None
    seen_blocks: set[str] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests handled at once (to test concurrency limits)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.always = None
            self.seen_blocks.clear()
            self.in_flight = self.max_in_flight = 0

    def next_fault(self) -> Fault | None:
        with self.lock:
            if self.faults:
                return self.faults.pop(0)
            return self.always

    @property
    def bodies(self) -> list[str]:
        return [r.raw for r in self.requests]

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """A Messages API reply with a ``record_answers`` tool call decided by :func:`decide`."""
        content = body["messages"][-1]["content"]
        blocks = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
        document = blocks[0]["text"]
        listing = re.search(r"<questions>\s*(.*?)\s*</questions>", blocks[-1]["text"], re.S)
        questions = json.loads(listing.group(1)) if listing else []
        answers = [{"id": q["id"], **decide(q["question"], document)} for q in questions]
        # Token counts: about four characters a token; the cacheable block is "cached" the
        # second time the same text is seen, as the real API does after a cache write.
        cache_read = cache_write = 0
        for b in content:
            if isinstance(b, dict) and b.get("cache_control"):
                digest = hashlib.sha256(b["text"].encode()).hexdigest()
                with self.lock:
                    if digest in self.seen_blocks:
                        cache_read += len(b["text"]) // 4
                    else:
                        self.seen_blocks.add(digest)
                        cache_write += len(b["text"]) // 4
        total_in = len(json.dumps(body)) // 4
        tool_input = {"answers": answers}
        return {
            "id": f"msg_fake_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_fake",
                    "name": "record_answers",
                    "input": tool_input,
                }
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": max(1, total_in - cache_read - cache_write),
                "output_tokens": len(json.dumps(tool_input)) // 4,
                "cache_creation_input_tokens": cache_write,
                "cache_read_input_tokens": cache_read,
            },
        }


def _handler(state: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass  # keep test output clean

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            # the client may have given up already (a timeout test): nothing to do then
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

        def _error(self, status: int, kind: str, headers: dict[str, str] | None = None) -> None:
            body = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}
            self._send(status, json.dumps(body).encode(), headers)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                self._handle()
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = None
            with state.lock:
                state.requests.append(Recorded(self.path, dict(self.headers.items()), body, raw))
            if self.path.rstrip("/") != "/v1/messages" or body is None:
                self._error(404 if body is not None else 400, "invalid_request_error")
                return
            fault = state.next_fault()
            if fault is not None:
                if fault.kind == "rate_limit":
                    extra = (
                        {}
                        if fault.retry_after is None
                        else {"retry-after": f"{fault.retry_after:g}"}
                    )
                    self._error(429, "rate_limit_error", extra)
                    return
                if fault.kind == "error":
                    self._error(fault.status, "api_error")
                    return
                if fault.kind == "slow" and state.stop.wait(fault.delay):
                    return  # the server is shutting down
            reply = state.answer(body)
            if fault is not None and fault.kind == "wrong_schema":
                reply["content"][0]["input"] = {"results": [{"question": "Q1", "ok": True}]}
            if fault is not None and fault.kind == "bad_usage":
                if fault.usage is MISSING:
                    del reply["usage"]
                else:
                    reply["usage"] = fault.usage
            if fault is not None and fault.kind == "no_tool":
                reply["content"] = [{"type": "text", "text": "Yes, it does."}]
                reply["stop_reason"] = "end_turn"
            payload = json.dumps(reply).encode()
            if fault is not None and fault.kind == "truncated":
                payload = payload[: len(payload) // 2]
            if fault is not None and fault.kind == "invalid_json":
                payload = b"<html>upstream proxy error</html>"
            self._send(200, payload)

    return Handler


def start_server() -> tuple[FakeAnthropic, ThreadingHTTPServer]:
    state = FakeAnthropic()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="fake-anthropic", daemon=True).start()
    return state, server


@pytest.fixture(scope="module")
def fake_anthropic_server() -> Iterator[FakeAnthropic]:
    state, server = start_server()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_anthropic(fake_anthropic_server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    """A clean fake server for one test (requests, faults and cache forgotten)."""
    fake_anthropic_server.reset()
    yield fake_anthropic_server
    fake_anthropic_server.reset()
