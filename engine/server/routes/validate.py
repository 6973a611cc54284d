"""`POST /v1/validate`: validate one document (JSON or multipart), answered in any report format."""

from __future__ import annotations

import asyncio
import os
from contextlib import nullcontext
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from engine.budget import Deadline, DeadlineExceeded, deadline_scope
from engine.config import normalise_jurisdictions, parse_untyped
from engine.errors import ClearanceError, UserError
from engine.hooks import GateSource
from engine.ingest import document_from_bytes, media_type_for
from engine.report import Report
from engine.server.deps import StateDep, Validator
from engine.server.group_commit import GroupCommitAudit
from engine.server.models import ValidateRequest
from engine.server.problems import (
    ApiProblem,
    invalid_request,
    log_disconnect,
    problem_for,
    problem_response,
)
from engine.server.state import Settings

router = APIRouter(tags=["validate"])

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


@router.post(
    "/v1/validate",
    responses={
        200: {
            "model": Report,
            "description": "the report (the CLI's `--format json` contract);"
            " other formats with ?format=",
        },
        415: problem_response(),
        504: problem_response(),
        503: problem_response(),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ValidateRequest"}},
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
    key: Validator,
    state: StateDep,
    fmt: str = Query("json", alias="format", description="json, sarif, junit, html or text"),
) -> Response:
    """Validate one document: JSON `{text, name?, media_type?, modules?, doc_type?,
    jurisdictions?, untyped?}` or a multipart upload (`file`, plus the same form fields)."""
    settings = state.settings
    if fmt not in _FORMATS:
        raise invalid_request(f"unknown format '{fmt}' (expected one of: {', '.join(_FORMATS)})")
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
    engine = state.running_engine()
    group = engine.audit if isinstance(engine.audit, GroupCommitAudit) else None
    Held = list[tuple[Report, str, list[GateSource]]]

    def work() -> tuple[Report, Held]:
        # In a pool thread: every step checks the deadline (engine.budget) and stops there.
        # The document's encoded bytes live in its validation's own context (gates.scan.ScanText),
        # so nothing is left on this pool thread when the work stops, midway or not.
        with deadline_scope(deadline):
            deadline.check("before reading the document")  # queued past it
            doc = _ingest(data, name, media, settings.max_document_bytes, deadline)
            deadline.check("after reading the document")
            held: Held = []
            with group.deferred() if group else nullcontext(held) as held:
                report = engine.validate(doc, principal=key.name, **opts)
            return report, held

    job = state.pool.submit(work)
    job.add_done_callback(state.finished)
    try:
        try:
            # cancelling a job still queued removes it; a running one stops at its next
            # deadline check and its held audit row is dropped with its result
            report, held = await asyncio.wait_for(asyncio.wrap_future(job), deadline.remaining())
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
            log_disconnect("POST", request.url.path)  # the verdict reaches no one:
            return Response(status_code=499)  # so no row claims it was given
        if group is not None and held:
            for fut in group.submit(held):
                await asyncio.shield(asyncio.wrap_future(fut))
    except ClearanceError as exc:
        raise problem_for(
            exc,
            failed="the validation could not be recorded in the audit log; nothing was released",
            kind="audit-unavailable",
        ) from None
    if fmt == "json":
        from engine.formatters.base import json_shown

        return Response(json_shown(report.model_dump_json()), media_type=_FORMATS[fmt])
    from engine.formatters.base import get_formatter

    return Response(get_formatter(fmt).render([report]), media_type=_FORMATS[fmt])


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
            raise invalid_request("multipart requests need a 'file' part")
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
        raise invalid_request(str(exc)) from None
    return data, name, media, opts


def _ingest(data: bytes, name: str, media: str | None, max_bytes: int, deadline: Deadline) -> Any:
    """Read the document; reading stops at the deadline, raising DeadlineExceeded."""
    return document_from_bytes(
        data, name, media_type=media, max_bytes=max_bytes, deadline=deadline.at
    )
