"""Errors that reach users: 'your input is wrong' (UserError) apart from 'we failed'."""

from __future__ import annotations


class ClearanceError(Exception):
    """Something on our side failed (disk full, database locked...). Exit code 4 by default."""

    exit_code = 4


class UserError(ClearanceError):
    """The input is wrong: bad document, bad gate file, bad option. Exit code 2."""

    exit_code = 2


class DocumentError(UserError):
    """A document that cannot be read as text (binary, undecodable, too large, unsupported)."""


class DeadlineExceeded(ClearanceError):
    """The work did not finish before its deadline and was stopped (the server answers 504)."""


class GateFileError(UserError):
    """Gate files with errors; carries the rendered diagnostics."""

    def __init__(self, message: str, diagnostics: list | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []
