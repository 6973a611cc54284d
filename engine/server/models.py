"""The request bodies of the HTTP API (the report itself is engine.report.Report)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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
