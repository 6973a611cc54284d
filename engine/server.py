"""HTTP API (FastAPI): validate documents, read gates and the audit log, with API keys and limits."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api import TOOL_VERSION, Engine
from engine.audit import AuditStore, open_audit_store, parse_when
from engine.budget import Deadline, DeadlineExceeded, deadline_scope
from engine.config import normalise_jurisdictions, parse_untyped, resolve_config
from engine.errors import ClearanceError, DocumentError, GateFileError, UserError
from engine.hooks import GateSource
from engine.ingest import document_from_bytes, media_type_for
from engine.keys import ApiKey, KeyStore
from engine.report import Report
from gates import scan

log = logging.getLogger("clearance.server")

DEFAULT_MAX_DOCUMENT = 5 * 1024 * 1024
DEFAULT_MAX_BODY = 8 * 1024 * 1024  # a document plus multipart/JSON overhead
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_INFLIGHT = 64
DEFAULT_THREADS = 4
DEFAULT_RETRY_AFTER_S = 2
PROBLEM = "application/problem+json"
_TYPES = "https://clearance.dev/problems/"
_FORMATS = {
    "json": "application/json",
    "sarif": "application/sarif+json",
    "junit": "application/xml",
    "html": "text/html; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}
_KNOWN_MEDIA = {
    m for m in (media_type_for(s) for s in (".txt", ".md", ".html", ".pdf", ".docx")) if m
}


# -- problems (RFC 9457) ---------------------------------------------------------------------


class Problem(BaseModel):
    """An RFC 9457 problem document: every error the API returns has this shape."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body = {
        "type": _TYPES + (kind or title.lower().replace(" ", "-")),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


class ApiProblem(HTTPException):
    """Raised anywhere in a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.title, self.kind = title, kind


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def _install_error_handlers(app: FastAPI) -> None:
    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        title = getattr(exc, "title", None) or _TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem(
            exc.status_code,
            title,
            detail,
            kind=getattr(exc, "kind", None),
            headers=getattr(exc, "headers", None),
            instance=request.url.path,
        )

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError | ValidationError)
        return problem(
            422,
            "Invalid request",
            _describe(exc.errors()),
            kind="invalid-request",
            instance=request.url.path,
        )

    async def on_crash(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ClientDisconnect):  # nobody to answer, and nothing went wrong
            _log_disconnect(request.method, request.url.path)
            return Response(status_code=499)
        # The traceback goes to the server log only; clients learn nothing of the internals.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(
            500,
            "Internal server error",
            "the server failed to handle the request; the error is in the server log",
            kind="internal",
            instance=request.url.path,
        )

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(ValidationError, on_invalid)
    app.add_exception_handler(Exception, on_crash)


def _log_disconnect(method: object, path: object) -> None:
    """A client that hangs up mid-request is routine: one line, no traceback."""
    log.info("client disconnected before the request was answered: %s %s", method, path)


def _describe(errors: Any) -> str:
    """Pydantic errors as one line, without echoing the input back."""
    parts = []
    for e in list(errors)[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


# -- limits ----------------------------------------------------------------------------------


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
            _log_disconnect(scope.get("method"), scope.get("path"))
        except Exception as exc:
            log.error(
                "unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc
            )
            if started:
                raise  # too late for a problem document; the connection is dropped
            resp = problem(
                500,
                "Internal server error",
                "the server failed to handle the request; the error is in the server log",
                kind="internal",
                instance=scope.get("path"),
            )
            await resp(scope, receive, send)


# -- group commit for the audit log ----------------------------------------------------------


class GroupCommitAudit:
    """An audit sink for a busy server: concurrent validations wait for one shared commit.

    Each caller still waits until its own row is durably written (or gets the error), so no
    validation is answered unrecorded; a writer thread commits whatever queued meanwhile in one
    transaction, so 100 concurrent requests cost one fsync, not 100.

    Inside :meth:`deferred`, :meth:`record` does not write at all: the row is held, and the
    request handler submits it (:meth:`submit`) and awaits the commit on the event loop, only once it
    knows the verdict will be answered. A validation that ran past its deadline (answered 504)
    is then never recorded: no row carries a verdict nobody received. A validation thread is
    free for the next request while the row is being committed, so a few threads keep many
    commits in flight (and batches grow with the load)."""

    MAX_BATCH = 256

    def __init__(self, audit: AuditStore) -> None:
        self.log = audit
        self._local = threading.local()
        self._closed = False
        self._lock = threading.Lock()
        self._q: queue.SimpleQueue[tuple[Report, str, list[GateSource], Future[int]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def record(self, report: Report, *, principal: str, gates: list[GateSource]) -> int:
        held = getattr(self._local, "held", None)
        if held is not None:
            held.append((report, principal, gates))
            return 0  # the id is not known yet: the caller submits the row, then awaits it
        return self.submit([(report, principal, gates)])[0].result()

    def submit(self, rows: list[tuple[Report, str, list[GateSource]]]) -> list[Future[int]]:
        """Queue rows for the next group commit; returns their futures (ids or errors)."""
        futures: list[Future[int]] = []
        with self._lock:  # nothing is queued behind the shutdown marker
            if self._closed:
                raise ClearanceError("the audit log was closed; the validation was not recorded")
            for report, principal, gates in rows:
                fut: Future[int] = Future()
                fut.set_running_or_notify_cancel()  # a waiter that gives up cannot cancel it
                self._q.put((report, principal, gates, fut))
                futures.append(fut)
        return futures

    @contextmanager
    def deferred(self) -> Iterator[list[tuple[Report, str, list[GateSource]]]]:
        """Records made by this thread inside the block are held, not written; the list
        yielded collects them, and the caller MUST :meth:`submit` them and wait for the
        futures before answering (or drop them: the verdict was not delivered)."""
        held: list[tuple[Report, str, list[GateSource]]] = []
        self._local.held = held
        try:
            yield held
        finally:
            self._local.held = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._q.put(None)
        self._thread.join(timeout=10)
        self.log.close()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            # Anything queued after shutdown gets an error, never an endless wait.
            while True:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[3].set_exception(
                        ClearanceError("the audit log was closed; the validation was not recorded")
                    )

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[tuple[Report, str, list[GateSource], Future[int]]]) -> None:
        try:
            ids = self.log.record_many([(r, p, g) for r, p, g, _ in batch])
        except Exception:
            # One bad record must not fail its neighbours: retry each alone.
            for r, p, g, fut in batch:
                try:
                    fut.set_result(self.log.record(r, principal=p, gates=g))
                except Exception as exc:
                    fut.set_exception(exc)
            return
        for (_, _, _, fut), rid in zip(batch, ids, strict=True):
            fut.set_result(rid)


# -- settings and state ----------------------------------------------------------------------


@dataclass
class Settings:
    auth: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT
    #: the deadline of one validation, from the moment its body is read: past it the client
    #: gets 504 and the work stops at its next check (engine.budget)
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: validations admitted and not yet finished (queued, running, or abandoned by a 504 and
    #: still winding down) before new ones get 503 with Retry-After
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    threads: int = DEFAULT_THREADS
    retry_after_s: int = DEFAULT_RETRY_AFTER_S

    @classmethod
    def from_env(cls) -> Settings:
        """What `clearance serve` hands each uvicorn worker (workers are separate processes)."""
        env = os.environ.get
        return cls(
            auth=env("CLEARANCE_SERVE_NO_AUTH", "") != "1",
            max_body_bytes=int(env("CLEARANCE_SERVE_MAX_BODY", DEFAULT_MAX_BODY)),
            max_document_bytes=int(env("CLEARANCE_SERVE_MAX_DOCUMENT", DEFAULT_MAX_DOCUMENT)),
            timeout_s=float(env("CLEARANCE_SERVE_TIMEOUT", DEFAULT_TIMEOUT_S)),
            max_inflight=int(env("CLEARANCE_SERVE_MAX_INFLIGHT", DEFAULT_MAX_INFLIGHT)),
            threads=int(env("CLEARANCE_SERVE_THREADS", DEFAULT_THREADS)),
            retry_after_s=int(env("CLEARANCE_SERVE_RETRY_AFTER", DEFAULT_RETRY_AFTER_S)),
        )


class _State:
    def __init__(
        self,
        engine: Engine | None,
        keys: KeyStore | None,
        settings: Settings,
        gate_paths: list[str],
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.settings = settings
        self.gate_paths = gate_paths
        #: validations admitted and not finished: counted down when their thread ends (or their
        #: queued job is cancelled), not when their request is answered, so work abandoned by a
        #: 504 still counts against max_inflight until it has really stopped
        self.running = 0
        self._count = threading.Lock()
        # CPU-bound work under the GIL: more threads than this only time-slice each other and
        # grow the tail latency; waiting validations queue in order instead. A thread whose
        # request was answered 504 keeps its worker until it reaches its next deadline check,
        # so abandoned work can never occupy more than `threads` threads.
        self.pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="validate")
        self.owned: list[Any] = []  # what this app opened and must close

    def start(self) -> None:
        if self.engine is None:
            from engine.audit import audit_disabled
            from engine.waivers import WaiverStore

            audit: Any = None
            waivers: WaiverStore | None = None
            if not audit_disabled():
                # CLEARANCE_AUDIT_URL (PostgreSQL) or the SQLite file; waivers beside it
                log = open_audit_store()
                audit = GroupCommitAudit(log)
                waivers = WaiverStore(log.db_)
                self.owned.append(audit)
            # the project settings: CLEARANCE_CONFIG, else the nearest clearance.toml
            named = os.environ.get("CLEARANCE_CONFIG")
            config = resolve_config(Path(named) if named else None)
            self.engine = Engine(
                gate_paths=[*self.gate_paths, *map(str, config.gates)],
                audit=audit,
                waivers=waivers,
                max_bytes=self.settings.max_document_bytes,
                config=config,
            )
        if self.keys is None and self.settings.auth:
            self.keys = KeyStore()
            self.owned.append(self.keys)
        # Compile the gates and build the provider now, not on the first request.
        self.engine.ruleset(None)
        _ = self.engine.provider

    def admit(self) -> bool:
        with self._count:
            if self.running >= self.settings.max_inflight:
                return False
            self.running += 1
            return True

    def finished(self, _: object = None) -> None:
        with self._count:
            self.running -= 1

    def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for thing in self.owned:
            thing.close()

    def audit_log(self) -> AuditStore:
        audit = self.engine.audit if self.engine else None
        audit = getattr(audit, "log", audit)
        if not isinstance(audit, AuditStore):
            raise ApiProblem(
                503,
                "Service unavailable",
                "the audit log is disabled on this server (CLEARANCE_NO_AUDIT)",
                kind="audit-disabled",
            )
        return audit


# -- request models --------------------------------------------------------------------------


class ValidateRequest(BaseModel):
    text: str = Field(description="the document's text (or HTML/Markdown source)")
    name: str | None = Field(None, description="document name; its suffix picks the parser")
    media_type: str | None = Field(None, description="text/plain, text/markdown or text/html")
    modules: list[str] | None = Field(None, description="module ids to apply (default: all)")
    doc_type: str | None = Field(None, description="document type (default: inferred)")
    jurisdictions: list[str] | None = Field(
        None,
        description="the document's jurisdictions, e.g. ['us-ca']: only modules declaring "
        "them apply (default: the server's settings, else every module)",
    )
    untyped: Literal["review", "fail", "universal"] | None = Field(
        None,
        description="when no type is given or inferred (default: the server's settings, "
        "else review)",
    )


class WaiverRequest(BaseModel):
    gate: str
    doc_sha256: str = Field(description="the document's sha256 (64 hex digits)")
    reason: str
    approver: str | None = Field(None, description="defaults to the API key's name")
    expires: str | None = Field(
        None, description="last day the waiver applies (YYYY-MM-DD); required unless no_expiry"
    )
    no_expiry: bool = Field(False, description="the waiver never expires (said explicitly)")


# -- the app ---------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer clr_...")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: clr_...")


def create_app(
    engine: Engine | None = None,
    *,
    keys: KeyStore | None = None,
    settings: Settings | None = None,
    gate_paths: list[str] | None = None,
) -> FastAPI:
    """The HTTP API over one :class:`Engine` (built at startup when not given)."""
    settings = settings or Settings()
    state = _State(engine, keys, settings, list(gate_paths or []))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(state.start)
        if not settings.auth:
            log.warning("!" * 72)
            log.warning(
                "AUTHENTICATION IS DISABLED (--no-auth): anyone who can reach this "
                "server may validate, read the audit log and record waivers. "
                "For local development only."
            )
            log.warning("!" * 72)
        yield
        await anyio.to_thread.run_sync(state.stop)

    # /docs and /redoc serve Swagger UI and ReDoc from the package, not from a CDN: they work
    # offline and behind a closed firewall
    app = FastAPIOffline(
        title="Clearance",
        version=TOOL_VERSION,
        lifespan=lifespan,
        description="Validate documents against compliance gates. Authenticate with "
        "`Authorization: Bearer <key>` or `X-API-Key: <key>` (`clearance keys "
        "create`). Errors are RFC 9457 problem documents.",
        responses={
            k: {"model": Problem, "content": {PROBLEM: {}}} for k in (401, 403, 413, 422, 500)
        },
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(CatchAll)  # added last: wraps everything but Starlette's last resort
    _install_error_handlers(app)

    def require(role: str) -> Callable[..., Awaitable[ApiKey]]:
        async def check(
            bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
            header: str | None = Depends(_header),
        ) -> ApiKey:
            if not settings.auth:
                return ApiKey(0, "no-auth", "admin", "", "")
            raw = bearer.credentials if bearer else header
            if not raw:
                raise ApiProblem(
                    401,
                    "Unauthorized",
                    "an API key is required: send "
                    "'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                    kind="unauthorized",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            assert state.keys is not None
            key = state.keys.authenticate(raw)
            if key is None:
                raise ApiProblem(
                    401,
                    "Unauthorized",
                    "the API key is not valid (unknown or revoked)",
                    kind="unauthorized",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not key.allows(role):
                raise ApiProblem(
                    403,
                    "Forbidden",
                    f"the key '{key.name}' has the role "
                    f"'{key.role}'; this needs '{role}' (or admin)",
                    kind="forbidden",
                )
            return key

        return check

    validator, auditor, admin = require("validator"), require("auditor"), require("admin")

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness: the engine is loaded and the gates compiled."""
        return {"status": "ok", "version": TOOL_VERSION}

    @app.post(
        "/v1/validate",
        tags=["validate"],
        responses={
            200: {
                "model": Report,
                "description": "the report (the CLI's `--format json` contract);"
                " other formats with ?format=",
            },
            415: {"model": Problem, "content": {PROBLEM: {}}},
            504: {"model": Problem, "content": {PROBLEM: {}}},
            503: {"model": Problem, "content": {PROBLEM: {}}},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ValidateRequest"}
                    },
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "modules": {"type": "array", "items": {"type": "string"}},
                                "doc_type": {"type": "string"},
                                "jurisdictions": {"type": "array", "items": {"type": "string"}},
                                "untyped": {
                                    "type": "string",
                                    "enum": ["review", "fail", "universal"],
                                },
                            },
                        }
                    },
                },
            }
        },
    )
    async def validate(
        request: Request,
        key: ApiKey = Depends(validator),
        fmt: str = Query("json", alias="format", description="json, sarif, junit, html or text"),
    ) -> Response:
        """Validate one document: JSON `{text, name?, media_type?, modules?, doc_type?,
        jurisdictions?, untyped?}` or a multipart upload (`file`, plus the same form fields)."""
        if fmt not in _FORMATS:
            raise ApiProblem(
                422,
                "Invalid request",
                f"unknown format '{fmt}' (expected one of: {', '.join(_FORMATS)})",
                kind="invalid-request",
            )
        data, name, media, opts = await _read_document(request, settings)
        deadline = Deadline.after(settings.timeout_s)
        if not state.admit():
            raise ApiProblem(
                503,
                "Service unavailable",
                f"too many validations in progress (limit {settings.max_inflight}); retry shortly",
                kind="overloaded",
                headers={"Retry-After": str(settings.retry_after_s)},
            )
        engine = state.engine
        assert engine is not None
        group = engine.audit if isinstance(engine.audit, GroupCommitAudit) else None
        Held = list[tuple[Report, str, list[GateSource]]]

        def work() -> tuple[Report, Held]:
            # In a pool thread: every step checks the deadline (engine.budget) and stops there.
            with deadline_scope(deadline):
                try:
                    deadline.check("before reading the document")  # queued past it
                    doc = _ingest(data, name, media, settings.max_document_bytes, deadline)
                    deadline.check("after reading the document")
                    held: Held = []
                    with group.deferred() if group else nullcontext(held) as held:
                        report = engine.validate(doc, principal=key.name, **opts)
                    return report, held
                finally:
                    scan.release()  # also when stopped midway: drop the document's bytes

        job = state.pool.submit(work)
        job.add_done_callback(state.finished)
        try:
            try:
                # cancelling a job still queued removes it; a running one stops at its next
                # deadline check and its held audit row is dropped with its result
                report, held = await asyncio.wait_for(
                    asyncio.wrap_future(job), deadline.remaining()
                )
            except (TimeoutError, DeadlineExceeded):
                raise ApiProblem(
                    504,
                    "Gateway timeout",
                    f"the validation took longer than {settings.timeout_s:g} s and was stopped",
                    kind="timeout",
                ) from None
            # The verdict will be answered: now its audit row is written, and awaited here, not
            # in the thread, which is already free for the next request. Nothing is answered
            # before its row is committed (a failure raises).
            if group is not None and held and await request.is_disconnected():
                _log_disconnect("POST", request.url.path)  # the verdict reaches no one:
                return Response(status_code=499)  # so no row claims it was given
            if group is not None and held:
                for fut in group.submit(held):
                    await asyncio.shield(asyncio.wrap_future(fut))
        except DocumentError as exc:
            raise _document_problem(exc) from None
        except GateFileError as exc:
            log.error("gate files have errors:\n%s", exc)
            raise ApiProblem(
                500,
                "Internal server error",
                "the server's gate files have errors; the operator must fix them",
                kind="gate-files",
            ) from None
        except UserError as exc:
            raise ApiProblem(422, "Invalid request", str(exc), kind="invalid-request") from None
        except ClearanceError as exc:
            log.error("validation failed: %s", exc)
            raise ApiProblem(
                503,
                "Service unavailable",
                "the validation could not be recorded in the audit log; nothing was released",
                kind="audit-unavailable",
            ) from None
        if fmt == "json":
            from engine.formatters.base import json_shown

            return Response(json_shown(report.model_dump_json()), media_type=_FORMATS[fmt])
        from engine.formatters.base import get_formatter

        return Response(get_formatter(fmt).render([report]), media_type=_FORMATS[fmt])

    @app.get("/v1/modules", tags=["gates"])
    def modules(key: ApiKey = Depends(validator)) -> list[dict[str, Any]]:
        """Modules and their gates: codes, titles, citations, severities, document types."""
        from engine.catalog import module_info

        return [module_info(m) for m in _engine(state).list_modules()]

    @app.get(
        "/v1/gates/{code}",
        tags=["gates"],
        responses={404: {"model": Problem, "content": {PROBLEM: {}}}},
    )
    def gate(code: str, key: ApiKey = Depends(validator)) -> dict[str, Any]:
        """One gate's metadata and DSL source."""
        from engine.catalog import gate_info

        engine = _engine(state)
        try:
            g = engine.gate(code)
        except GateFileError:
            raise
        except UserError as exc:
            raise ApiProblem(404, "Not found", str(exc), kind="unknown-gate") from None
        module = next((m for m in engine.list_modules() if m.id == g.module), None)
        return gate_info(g, source=True, module=module)

    @app.get("/v1/audit/recent", tags=["audit"])
    def audit_recent(
        limit: int = Query(20, ge=1, le=1000), key: ApiKey = Depends(auditor)
    ) -> list[dict[str, Any]]:
        """The latest validations, newest first."""
        return state.audit_log().recent(limit)

    @app.get("/v1/audit/history/{doc}", tags=["audit"])
    def audit_history(
        doc: str, limit: int = Query(100, ge=1, le=1000), key: ApiKey = Depends(auditor)
    ) -> list[dict[str, Any]]:
        """Every validation of one document (sha256 or a 4+ digit prefix), newest first."""
        audit = state.audit_log()
        rows = _user(lambda: audit.history(doc, limit))
        for row in rows:
            row["not_passed"] = [
                {
                    "gate": f["gate"],
                    "status": f["status"],
                    "severity": f["severity"],
                    "line": f["line"],
                    "waiver_reason": f["waiver_reason"],
                }
                for f in audit.findings(row["id"])
                if f["status"] not in ("pass", "not_applicable")
            ]
        return rows

    @app.get("/v1/audit/stats", tags=["audit"])
    def audit_stats(
        since: str | None = None, module: str | None = None, key: ApiKey = Depends(auditor)
    ) -> dict[str, Any]:
        """Totals, pass/fail rates and per-gate outcomes since a date."""
        audit = state.audit_log()
        return _user(lambda: audit.stats(since=_since(since), module=module))

    @app.get("/v1/audit/gates/top-failing", tags=["audit"])
    def audit_top_failing(
        limit: int = Query(10, ge=1, le=1000),
        since: str | None = None,
        key: ApiKey = Depends(auditor),
    ) -> list[dict[str, Any]]:
        """The gates that fail most often."""
        audit = state.audit_log()
        return _user(lambda: audit.top_failing(limit=limit, since=_since(since)))

    @app.get("/v1/audit/trends", tags=["audit"])
    def audit_trends(
        since: str | None = None, key: ApiKey = Depends(auditor)
    ) -> list[dict[str, Any]]:
        """Per-day validations, verdicts, cache hits and mean time."""
        audit = state.audit_log()
        return _user(lambda: audit.trends(since=_since(since)))

    @app.get("/v1/audit/verify", tags=["audit"])
    def audit_verify(key: ApiKey = Depends(auditor)) -> dict[str, Any]:
        """Walk the hash chains; `ok` false names every edited, deleted or inserted row."""
        r = state.audit_log().verify()
        return {
            "ok": r.ok,
            "validations": r.validations,
            "waivers": r.waivers,
            "checkpoints": r.checkpoints,
            "head_id": r.head_id,
            "head_hash": r.head_hash,
            "problems": r.problems,
        }

    @app.post("/v1/waivers", tags=["audit"], status_code=201)
    def waive(body: WaiverRequest, key: ApiKey = Depends(admin)) -> dict[str, Any]:
        """Waive one gate for one document (admin); later reports show it as `waived`."""
        from engine.waivers import WaiverStore

        waivers = WaiverStore(state.audit_log().db_)  # the audit log's database, its own chain
        approver = body.approver or key.name
        known = {g.code for g in _engine(state).ruleset(None).gates}  # the gate must exist
        wid = _user(
            lambda: waivers.waive(
                body.gate,
                body.doc_sha256,
                reason=body.reason,
                approver=approver,
                expires=body.expires,
                no_expiry=body.no_expiry,
                known_gates=known,
            )
        )
        return {
            "id": wid,
            "gate": body.gate,
            "doc_sha256": body.doc_sha256.lower(),
            "reason": body.reason,
            "approver": approver,
            "expires": body.expires,
            "no_expiry": body.no_expiry,
            "recorded_by": key.name,
        }

    app.state.clearance = state
    return app


def _engine(state: _State) -> Engine:
    assert state.engine is not None
    return state.engine


def _since(since: str | None) -> str | None:
    return parse_when(since) if since else None


def _user(fn: Callable[[], Any]) -> Any:
    """Run an audit query; a bad parameter (UserError) is the client's 422, not our 500."""
    try:
        return fn()
    except GateFileError:
        raise
    except UserError as exc:
        raise ApiProblem(422, "Invalid request", str(exc), kind="invalid-request") from None
    except ClearanceError as exc:
        log.error("audit query failed: %s", exc)
        raise ApiProblem(
            503,
            "Service unavailable",
            "the audit log cannot be read right now",
            kind="audit-unavailable",
        ) from None


def _document_problem(exc: DocumentError) -> ApiProblem:
    msg = str(exc)
    unsupported = any(
        s in msg
        for s in ("unsupported document type", "not a document", "binary file", "legacy Office")
    )
    if unsupported:
        return ApiProblem(415, "Unsupported media type", msg, kind="unsupported-document")
    return ApiProblem(422, "Unreadable document", msg, kind="bad-document")


async def _read_document(
    request: Request, settings: Settings
) -> tuple[bytes, str, str | None, dict[str, Any]]:
    """The document's bytes, name and claimed media type, and the validation options."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    untyped_given: str | None
    if ctype == "application/json":
        body = ValidateRequest.model_validate_json(await request.body())
        data = body.text.encode("utf-8")
        name = body.name or "document.txt"
        media = body.media_type
        if media is not None and media not in _KNOWN_MEDIA:
            raise ApiProblem(
                415,
                "Unsupported media type",
                f"media_type '{media}' is not "
                f"supported (expected one of: {', '.join(sorted(_KNOWN_MEDIA))})",
                kind="unsupported-document",
            )
        modules, doc_type = body.modules, body.doc_type
        jurisdictions, untyped_given = body.jurisdictions, body.untyped
    elif ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=32)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiProblem(
                422,
                "Invalid request",
                "multipart requests need a 'file' part",
                kind="invalid-request",
            )
        data = await upload.read()
        name = os.path.basename(upload.filename or "") or "document.txt"
        claimed = (upload.content_type or "").split(";")[0].strip().lower()
        media = claimed if claimed in _KNOWN_MEDIA else None
        modules = [
            m.strip()
            for v in form.getlist("modules")
            if isinstance(v, str)
            for m in v.split(",")
            if m.strip()
        ] or None
        dt = form.get("doc_type")
        doc_type = dt if isinstance(dt, str) and dt else None
        jurisdictions = [
            j
            for v in form.getlist("jurisdictions")
            if isinstance(v, str)
            for j in v.split(",")
            if j.strip()
        ] or None
        ut = form.get("untyped")
        untyped_given = ut if isinstance(ut, str) and ut else None
    else:
        raise ApiProblem(
            415,
            "Unsupported media type",
            "send application/json ({text, name?, ...}) or multipart/form-data with a 'file' part",
            kind="unsupported-request",
        )
    if len(data) > settings.max_document_bytes:
        raise ApiProblem(
            413,
            "Content too large",
            f"{name}: {len(data):,} bytes is over the "
            f"server's document limit of {settings.max_document_bytes:,} bytes",
            kind="document-too-large",
        )
    try:
        opts = {
            "modules": modules,
            "doc_type": doc_type,
            "untyped": untyped_given and parse_untyped(untyped_given, "untyped").value,
            "jurisdictions": jurisdictions
            and normalise_jurisdictions(jurisdictions, "jurisdictions"),
        }
    except UserError as exc:
        raise ApiProblem(422, "Invalid request", str(exc), kind="invalid-request") from None
    return data, name, media, opts


def _ingest(data: bytes, name: str, media: str | None, max_bytes: int, deadline: Deadline) -> Any:
    """Read the document; reading stops at the deadline, raising DeadlineExceeded."""
    return document_from_bytes(
        data, name, media_type=media, max_bytes=max_bytes, deadline=deadline.at
    )


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app and engine)."""
    gates = [p for p in os.environ.get("CLEARANCE_SERVE_GATES", "").split(os.pathsep) if p]
    return create_app(settings=Settings.from_env(), gate_paths=gates)


__all__ = ["GroupCommitAudit", "Settings", "app_from_env", "create_app"]
