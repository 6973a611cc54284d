"""Compiler-grade diagnostics: a stable code, file:line:col, the source line and a caret."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class Loc:
    """A source span: 1-based line/col of both ends, and 0-based character offsets."""

    line: int
    col: int
    end_line: int
    end_col: int
    start: int
    end: int

    @classmethod
    def from_meta(cls, meta) -> Loc:
        return cls(
            meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos
        )

    @classmethod
    def from_token(cls, tok) -> Loc:
        return cls(
            tok.line,
            tok.column,
            tok.end_line or tok.line,
            tok.end_column or tok.column + len(tok),
            tok.start_pos,
            tok.end_pos if tok.end_pos is not None else tok.start_pos + len(tok),
        )


NOWHERE = Loc(1, 1, 1, 2, 0, 1)


@dataclass
class Diagnostic:
    code: str
    message: str
    file: str
    loc: Loc | None = None
    help: str | None = None
    severity: Literal["error", "warning"] = "error"
    notes: list[str] = field(default_factory=list)

    def headline(self) -> str:
        where = self.file if self.loc is None else f"{self.file}:{self.loc.line}:{self.loc.col}"
        return f"{where}: {self.severity}[{self.code}]: {self.message}"

    def render(self, source: str | None = None) -> str:
        """Render like a compiler: header, location arrow, the source line and a caret."""
        out = [f"{self.severity}[{self.code}]: {self.message}"]
        if self.loc is None:
            out.append(f"  --> {self.file}")
        else:
            out.append(f"  --> {self.file}:{self.loc.line}:{self.loc.col}")
            lines = source.split("\n") if source is not None else []
            if 0 < self.loc.line <= len(lines):
                text = lines[self.loc.line - 1].replace("\t", " ")
                gutter = " " * len(str(self.loc.line))
                if self.loc.end_line == self.loc.line:
                    width = max(1, self.loc.end_col - self.loc.col)
                else:
                    width = max(1, len(text) - self.loc.col + 1)
                out.append(f" {gutter} |")
                out.append(f" {self.loc.line} | {text}")
                out.append(f" {gutter} | {' ' * (self.loc.col - 1)}{'^' * width}")
        for note in self.notes:
            out.append(f"   = note: {note}")
        if self.help:
            out.append(f"   = help: {self.help}")
        return "\n".join(out)


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """' Did you mean 'x'?' for the nearest choice, or '' when none is near."""
    pool = list(choices)
    near = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not near:
        folded = {c.casefold(): c for c in pool}
        near = [
            folded[m]
            for m in difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
        ]
    return f" Did you mean '{near[0]}'?" if near else ""


def one_of(choices, word: str | None = None) -> str:
    listed = ", ".join(sorted(choices))
    hint = did_you_mean(word, choices) if word else ""
    return f"expected one of: {listed}.{hint}"


class DiagnosticBag:
    """Collects every diagnostic of a compilation, so a file reports all its errors at once."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(
        self, code: str, message: str, file: str, loc: Loc | None = None, help: str | None = None
    ) -> Diagnostic:
        d = Diagnostic(code, message, file, loc, help)
        self.items.append(d)
        return d

    def warning(
        self, code: str, message: str, file: str, loc: Loc | None = None, help: str | None = None
    ) -> Diagnostic:
        d = Diagnostic(code, message, file, loc, help, severity="warning")
        self.items.append(d)
        return d

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.file, d.loc.start if d.loc else -1, d.code))


# --- codes added by the language work (defaults, proximity, parameterised definitions, word
# lists): one contiguous block, to be merged into the code table. Code -> one-line summary.
# DSL180-182, since main's table already holds DSL160-171.
LANG_CODES: dict[str, str] = {
    "DSL180": "Warning: a definition (expression, parameterised or word list) in the module's "
    "own files that nothing uses.",
    "DSL181": "Warning: a name that shadows another: a module's definition over a library's of "
    "the same name (the module's is used), or a parameter over a definition.",
    "DSL182": "Warning: a gate that restates a value it inherits from a `defaults` block.",
}
