"""Contracts between the engine and its persistence: the disk cache, the audit log and waivers.

The engine calls these; :mod:`engine.cache`, :mod:`engine.audit` and :mod:`engine.waivers`
implement them. They must degrade rather than fail a validation where the issue says so (a
corrupt cache = no cache)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.providers.base import Answer
from engine.report import Report, Waiver


@dataclass(frozen=True)
class GateSource:
    """Exactly which rule judged a document: code, version hash, module and source text."""

    code: str
    version: str
    module: str
    source: str


class ResultCache(Protocol):
    def get_report(self, key: str) -> Report | None: ...
    def put_report(self, key: str, report: Report) -> None: ...
    def get_answer(self, key: str) -> Answer | None: ...
    def put_answer(self, key: str, answer: Answer) -> None: ...


class AuditSink(Protocol):
    def record(self, report: Report, *, principal: str, gates: list[GateSource]) -> int:
        """Write one validation (and its findings) durably; return its row id. Raise
        :class:`engine.errors.ClearanceError` if it cannot be written: never lose it silently."""
        ...


class WaiverSource(Protocol):
    """Approved exceptions, read before a verdict is settled (not the audit sink's job: the
    sink only records)."""

    def waivers_for(self, doc_sha256: str) -> dict[str, Waiver]:
        """Active (unexpired) waivers for a document, by gate code."""
        ...
