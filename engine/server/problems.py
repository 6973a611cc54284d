"""RFC 9457 problem documents: every error the API answers, and the one place where Clearance's
errors (engine.errors) become HTTP statuses."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from engine.errors import ClearanceError, DeadlineExceeded, DocumentError, GateFileError, UserError

log = logging.getLogger("clearance.server")

PROBLEM = "application/problem+json"
_TYPES = "https://clearance.dev/problems/"
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
#: the answer to anything the server did not expect; the traceback goes to the server log only
INTERNAL_DETAIL = "the server failed to handle the request; the error is in the server log"


class Problem(BaseModel):
    """An RFC 9457 problem document: every error the API returns has this shape."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem_response() -> dict[str, Any]:
    """The OpenAPI `responses` entry of a status answered with a problem document."""
    return {"model": Problem, "content": {PROBLEM: {}}}


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    """A problem document response."""
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


def invalid_request(detail: str) -> ApiProblem:
    """422: the request is well-formed HTTP but its content is wrong."""
    return ApiProblem(422, "Invalid request", detail, kind="invalid-request")


# -- Clearance's errors as HTTP answers --------------------------------------------------------


def problem_for(
    exc: ClearanceError,
    *,
    failed: str,
    kind: str = "unavailable",
    not_found: str | None = None,
) -> ApiProblem:
    """The HTTP answer to one of Clearance's errors. "Your input is wrong" (UserError) is the
    client's 4xx, with the message (it names what to fix); "Clearance failed" (ServiceError, or
    a bare ClearanceError) is a 503 whose detail is ``failed``, never the internal message
    (paths, database errors), which goes to the server log.

    ``not_found``: the request named something that does not exist (a UserError from a
    lookup); answer 404 with this problem kind instead of 422."""
    if isinstance(exc, GateFileError):
        # The server's own gate files, not the client's input: the operator must fix them.
        log.error("gate files have errors:\n%s", exc)
        return ApiProblem(
            500,
            "Internal server error",
            "the server's gate files have errors; the operator must fix them",
            kind="gate-files",
        )
    if isinstance(exc, DocumentError):
        msg = str(exc)
        unsupported = any(
            s in msg
            for s in ("unsupported document type", "not a document", "binary file", "legacy Office")
        )
        if unsupported:
            return ApiProblem(415, "Unsupported media type", msg, kind="unsupported-document")
        return ApiProblem(422, "Unreadable document", msg, kind="bad-document")
    if isinstance(exc, UserError):
        if not_found is not None:
            return ApiProblem(404, "Not found", str(exc), kind=not_found)
        return invalid_request(str(exc))
    if isinstance(exc, DeadlineExceeded):
        return ApiProblem(504, "Gateway timeout", str(exc), kind="timeout")
    log.error("%s: %s", failed, exc)
    return ApiProblem(503, "Service unavailable", failed, kind=kind)


@contextmanager
def problems(
    *, failed: str, kind: str = "unavailable", not_found: str | None = None
) -> Iterator[None]:
    """Inside the block, Clearance's errors are answered by :func:`problem_for`."""
    try:
        yield
    except ClearanceError as exc:
        raise problem_for(exc, failed=failed, kind=kind, not_found=not_found) from None


# -- exception handlers ------------------------------------------------------------------------


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as a problem document: HTTP errors, invalid requests, Clearance's
    errors that no route answered itself, and crashes (500, details in the log only)."""

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
            describe(exc.errors()),
            kind="invalid-request",
            instance=request.url.path,
        )

    async def on_clearance(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClearanceError)
        return await on_http(
            request, problem_for(exc, failed="the server cannot complete the request right now")
        )

    async def on_crash(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ClientDisconnect):  # nobody to answer, and nothing went wrong
            log_disconnect(request.method, request.url.path)
            return Response(status_code=499)
        # The traceback goes to the server log only; clients learn nothing of the internals.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(
            500,
            "Internal server error",
            INTERNAL_DETAIL,
            kind="internal",
            instance=request.url.path,
        )

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(ValidationError, on_invalid)
    app.add_exception_handler(ClearanceError, on_clearance)
    app.add_exception_handler(Exception, on_crash)


def log_disconnect(method: object, path: object) -> None:
    """A client that hangs up mid-request is routine: one line, no traceback."""
    log.info("client disconnected before the request was answered: %s %s", method, path)


def describe(errors: Any) -> str:
    """Pydantic errors as one line, without echoing the input back."""
    parts = []
    for e in list(errors)[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"
