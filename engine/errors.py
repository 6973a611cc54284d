"""Errors that reach users: 'your input is wrong' (UserError) apart from 'Clearance failed'
(ServiceError). The CLI maps them to exit codes in ``engine.cli.main``, the HTTP API to problem
documents in ``engine.server.problems.problem_for``; docs/design/errors.md has the table."""

from __future__ import annotations

from typing import Any


class ClearanceError(Exception):
    """The root of every error Clearance reports without a traceback. Raise one of its two
    branches: :class:`UserError` or :class:`ServiceError`. One raised bare (older code) is
    treated as a ServiceError: exit code 4, HTTP 503."""

    exit_code = 4


class UserError(ClearanceError):
    """The input is wrong: bad document, bad gate file, bad option, bad request. The user can
    fix it. Exit code 2; HTTP 4xx (422 unless a narrower status fits)."""

    exit_code = 2


class DocumentError(UserError):
    """A document that cannot be read as text (binary, undecodable, too large, unsupported).
    HTTP 415 when the type is unsupported, else 422."""


class GateFileError(UserError):
    """Gate files with errors; carries the rendered diagnostics. The CLI's user wrote them
    (exit 2); to an HTTP client they are the server's own files (500: the operator fixes them)."""

    def __init__(self, message: str, diagnostics: list[Any] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []


class ServiceError(ClearanceError):
    """Clearance failed, not the input: the audit log, key store or cache cannot be written or
    read, a provider is down. Retrying later may work. Exit code 4; HTTP 503."""

    exit_code = 4


class DeadlineExceeded(ServiceError):
    """The work did not finish before its deadline and was stopped. The CLI counts the document
    as undecided (exit 3); the server answers 504."""
