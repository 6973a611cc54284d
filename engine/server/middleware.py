"""ASGI middleware of the HTTP API: the request-body limit, the last-resort 500, the worker header."""

from __future__ import annotations

import logging
import os

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.server.problems import INTERNAL_DETAIL, ApiProblem, log_disconnect, problem

log = logging.getLogger("clearance.server")


class _BodyTooLarge(ApiProblem):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            "Content too large",
            f"the request body is over the server's limit of {limit:,} bytes",
            kind="body-too-large",
        )


class BodyLimit:
    """Refuses request bodies over ``max_bytes``: by Content-Length up front, and by counting
    while streaming (chunked uploads have no Content-Length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    exc = _BodyTooLarge(self.max_bytes)
                    resp = problem(413, exc.title, str(exc.detail), kind=exc.kind)
                    await resp(scope, receive, send)
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return msg

        await self.app(scope, counted, send)


class CatchAll:
    """Answers any exception that escaped the handlers with a 500 problem, and does not
    re-raise it: Starlette's own last resort re-raises after responding, and uvicorn then
    resets the connection, so the client may never read the problem document."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            log_disconnect(scope.get("method"), scope.get("path"))
        except Exception as exc:
            log.error(
                "unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc
            )
            if started:
                raise  # too late for a problem document; the connection is dropped
            resp = problem(
                500,
                "Internal server error",
                INTERNAL_DETAIL,
                kind="internal",
                instance=scope.get("path"),
            )
            await resp(scope, receive, send)


class WorkerHeader:
    """Adds ``X-Clearance-Worker: <pid>`` to every response: with ``--workers N`` it tells
    which process answered (a load test or a support request can see the spread)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.value = str(os.getpid()).encode()  # a worker is forked before it builds its app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg["headers"] = [*msg.get("headers", ()), (b"x-clearance-worker", self.value)]
            await send(msg)

        await self.app(scope, receive, tagged)
