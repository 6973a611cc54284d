"""Compiler-grade diagnostics: one table of every code (severity, title, explanation), and
diagnostics that render with file:line:col, the source line and a caret."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum, unique
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # only for annotations: the parser builds these, this module reads them
    from lark import Token
    from lark.tree import Meta

Severity = Literal["error", "warning"]


@unique
class Code(StrEnum):
    """Every diagnostic code, defined once: the code, its severity, a one-line summary and a longer
    explanation with an example. Emit sites name a member (``Code.UNKNOWN_FIELD``), never the
    bare string, so `scripts/gen_docs.py` can generate the diagnostics reference from this
    table. A code is never reused: a retired one stays listed, with "retired" in its summary.
    Members compare and serialise as their code string (``Code.SYNTAX == "DSL100"``)."""

    severity: Severity
    summary: str
    explanation: str

    def __new__(cls, code: str, severity: Severity, summary: str, explanation: str) -> Code:
        obj = str.__new__(cls, code)
        obj._value_ = code
        obj.severity = severity
        obj.summary = summary
        obj.explanation = explanation
        return obj

    # --- the file itself ------------------------------------------------------------------
    FILE_NOT_TEXT = (
        "DSL001",
        "error",
        "The gate file is not UTF-8 text.",
        "The file has a byte sequence that is not UTF-8, or NUL bytes (a binary file). Save it "
        "as UTF-8.",
    )
    FILE_EMPTY = ("DSL002", "error", "The gate file is empty.", "Add gates, or delete the file.")
    FILE_TOO_LARGE = (
        "DSL003",
        "error",
        "The gate file is over the 2 MB limit.",
        "A gate file is a checklist, not a corpus: split it into several files in the module "
        "folder.",
    )
    FILE_UNREADABLE = (
        "DSL004",
        "error",
        "The gate file cannot be read.",
        "The operating system refused to read it (permissions, a folder named like a file).",
    )

    # --- syntax -----------------------------------------------------------------------------
    SYNTAX = (
        "DSL100",
        "error",
        "Syntax error: something else was expected here.",
        "The help line lists what the parser could take at that point. The parser resumes inside "
        "the same gate (at its next field) or at the next declaration, so later mistakes are "
        'still reported. Example: `require phrase("a" "b")` needs a comma between the phrases.',
    )
    UNEXPECTED_CHARACTER = (
        "DSL101",
        "error",
        "A character that cannot start anything in the language.",
        'Example: `require phrase("a") ;` (there are no semicolons). Comments start with `#`.',
    )
    UNTERMINATED = (
        "DSL102",
        "error",
        "An unterminated string or regex, or a file that ends inside a declaration.",
        'A string closes with `"` on the same line (use `"""..."""` for text spanning lines); '
        "a regex closes with `/` on the same line (escape a literal slash as `\\/`); a gate "
        "closes with `}`.",
    )
    UNKNOWN_KIND = (
        "DSL103",
        "error",
        "Unknown check kind or function.",
        "The check kinds are regex, phrase, pii, secret and semantic; the functions are near "
        "and count. Example: `require regexp /x/` (did you mean `regex`?).",
    )
    UNKNOWN_DETECTOR = (
        "DSL104",
        "error",
        "Unknown or missing detector in `pii(...)` or `secret(...)`.",
        "Name detectors bare (`pii(EMAIL_ADDRESS, US_SSN)`) or write `pii(any)`; the help line "
        "lists every detector and suggests the nearest.",
    )
    UNDEFINED_NAME = (
        "DSL105",
        "error",
        "Undefined name.",
        "No `define` of that name in the module's files or the libraries they import. Example: "
        "`require contcat` where `define contact = ...` exists (did you mean `contact`?).",
    )
    DUPLICATE_DEFINE = (
        "DSL106",
        "error",
        "A name defined twice, or a built-in name redefined.",
        "Definitions share one namespace across a module's files and imported libraries; "
        "`phrase`, `regex`, `near` and the other kinds and functions cannot be redefined.",
    )
    DUPLICATE_GATE_CODE = (
        "DSL107",
        "error",
        "Duplicate gate code.",
        "Gate codes are unique within a module and across every loaded module, and never "
        "reused: give the new gate a new code.",
    )
    UNKNOWN_FIELD = (
        "DSL108",
        "error",
        "Unknown gate or module field.",
        "The help line lists every field a gate takes (metadata such as `title` and `cite`, and "
        "the `require`, `forbid`, `when` and `example` clauses) and suggests the nearest. "
        'Example: `requrie phrase("x")` (did you mean `require`?).',
    )
    DUPLICATE_FIELD = (
        "DSL109",
        "error",
        "A gate field given twice.",
        "Keep one. (`require`, `forbid`, `when` and `example` may repeat; metadata fields may "
        "not.)",
    )
    BAD_REGEX = (
        "DSL110",
        "error",
        "Invalid regex, or a feature RE2 cannot run.",
        "Patterns run on RE2 (linear time): no lookaround and no backreferences. The message "
        "names the construct to use instead, e.g. `near(a, b, within N chars)` for a lookbehind.",
    )
    UNKNOWN_REGEX_FLAG = (
        "DSL111",
        "error",
        "Unknown regex flag.",
        "The flags are `i` (ignore case), `s` (dot matches newline) and `m` (multi-line).",
    )
    BAD_PHRASES = (
        "DSL112",
        "error",
        "A bad phrase list.",
        "`phrase(...)` takes one or more non-empty quoted strings; a list too large for RE2 to "
        "compile is refused here too (use fewer or shorter phrases, or split the check).",
    )
    BAD_SEMANTIC = (
        "DSL113",
        "error",
        "A bad semantic check.",
        'A semantic check needs a question (`semantic "Does it name the controller?"`); its '
        "`threshold` is a similarity score from 0 to 1.",
    )
    BAD_ARGUMENTS = (
        "DSL114",
        "error",
        "A function called with the wrong arguments.",
        '`near` takes two checks and a distance: `near(phrase("a"), regex /b/, within 300 '
        'chars)`; `count` takes one check and a comparison: `count(phrase("a")) >= 2`.',
    )
    BAD_FIELD_VALUE = (
        "DSL115",
        "error",
        "A field's value has the wrong shape.",
        'Example: `title high` (a title is a quoted string: `title "..."`), `severity "high"` '
        "(a severity is a bare word), or several values for a field that takes one.",
    )

    # --- gate metadata and examples ---------------------------------------------------------
    NO_CITATION = (
        "DSL120",
        "error",
        "A gate without a citation.",
        'Every gate cites its regulation: `cite "GDPR Art. 13(1)(a)"`.',
    )
    NO_TITLE = ("DSL121", "error", "A gate without a title.", 'Add `title "..."`, one line.')
    NO_EXAMPLES = (
        "DSL122",
        "error",
        "A gate without both a passing and a failing example.",
        'Prove the gate: `example pass "..."` and `example fail "..."`; `clearance test` and '
        "`clearance lint` run them.",
    )
    EXAMPLE_MISBEHAVES = (
        "DSL123",
        "error",
        "An inline example that does not behave as declared.",
        "`clearance lint` and `clearance test` run every example: the message says what the gate "
        "decided, and for `expecting NAME` which checks fired instead.",
    )
    UNKNOWN_SEVERITY = (
        "DSL124",
        "error",
        "Unknown severity.",
        "The severities are info, low, medium, high and critical.",
    )
    UNKNOWN_DOC_TYPE = (
        "DSL125",
        "error",
        "Unknown document type in `applies`.",
        "The help line lists the document types and suggests the nearest; `applies any` means "
        "every type.",
    )
    UNKNOWN_POLICY = (
        "DSL126",
        "error",
        "Unknown `on_indeterminate` policy.",
        "The policies are block, pass and review.",
    )
    CHECKS_NOTHING = (
        "DSL127",
        "error",
        "A gate that checks nothing.",
        "A gate needs `require EXPR` (fails when EXPR is false) or `forbid EXPR` (fails when "
        "EXPR matches).",
    )
    BAD_EXAMPLE = (
        "DSL128",
        "error",
        "A malformed example.",
        'An example is `example pass "..."` or `example fail "..."` with non-empty text.',
    )
    UNKNOWN_EXPECTING = (
        "DSL129",
        "error",
        "Unknown name in an example's `expecting` list.",
        "Name what should fire: a check kind, a detector or a definition.",
    )

    # --- modules, imports, definitions ------------------------------------------------------
    IMPORT_NOT_FOUND = (
        "DSL130",
        "error",
        "An import that cannot be found.",
        "`import NAME` searches the library path (`--lib`, `CLEARANCE_LIB_PATH`, `lib_path` in "
        "clearance.toml, a `lib/` folder beside the module folders, then the built-in library); "
        '`import "path.gates"` is relative to the importing file.',
    )
    DEFINE_CYCLE = (
        "DSL131",
        "error",
        "A definition that refers to itself.",
        "Example: `define a = any { b }` with `define b = all { a }`.",
    )
    TOO_DEEP = (
        "DSL132",
        "error",
        "Nesting too deep.",
        "An expression over 64 levels once its definitions are expanded, or a chain of over 64 "
        "definitions referring to one another: flatten with `all { ... }` / `any { ... }`.",
    )
    TOO_LARGE = (
        "DSL133",
        "error",
        "An expression or gate over 10,000 checks and operators once expanded.",
        "A definition used twice counts twice: definitions that use each other several times "
        "grow exponentially.",
    )
    NO_MODULE_HEADER = (
        "DSL140",
        "error",
        "No module header in a module's gate files.",
        'Add `module ID { title "..." version "1.0" }` to one file of the module.',
    )
    MODULE_CONFLICT = (
        "DSL141",
        "error",
        "A conflicting module header.",
        "One folder holds one module; a library file (imported) cannot declare a module.",
    )
    GATES_IN_LIBRARY = (
        "DSL142",
        "error",
        "A library file that holds gates.",
        "Libraries hold definitions only; put gates in a module folder.",
    )
    BAD_GATE_CODE = (
        "DSL150",
        "error",
        "A malformed gate code.",
        "A gate code starts with a capital letter and has at least two parts, e.g. "
        "`GDPR-13-1A`, `PCI-3.4`, `CCPA-1798.120`, `HIPAA-164.514(b)`: capitals, digits, "
        "`-`, `.`, `_`, `/`, `:` and balanced `(...)`; no spaces, lower-case letters only "
        "inside parentheses.",
    )

    # --- split out of DSL114 and DSL101 (issue 18: one code per distinct error) --------------
    NEEDS_ARGUMENTS = (
        "DSL160",
        "error",
        "A check kind or function written without its arguments.",
        'Example: `require phrase` (write `phrase("...")`) or `forbid pii` (write `pii(any)`).',
    )
    NO_PARENTHESES = (
        "DSL161",
        "error",
        "`regex` or `semantic` written with parentheses.",
        'Write `regex /pattern/i` and `semantic "Question?"`, not `regex(...)`.',
    )
    STRING_NOT_A_CHECK = (
        "DSL162",
        "error",
        "A quoted string where a check is expected.",
        'Use `phrase("...")` to find wording, or `semantic "question?"` to ask one.',
    )
    WITHIN_OUTSIDE_NEAR = (
        "DSL163",
        "error",
        "`within` outside `near(...)`.",
        "A distance belongs inside near: `near(a, b, within 300 chars)`.",
    )
    UNKNOWN_UNIT = (
        "DSL164",
        "error",
        "Unknown distance unit.",
        "Distances are in `chars` (or `characters`): `within 300 chars`.",
    )
    AMOUNT_OUT_OF_RANGE = (
        "DSL165",
        "error",
        "A distance or count bound outside 0 to 1,000,000,000.",
        "`within N chars` and `count(...) >= N` take a whole number from 0 to 1,000,000,000.",
    )
    NEEDS_SPANS = (
        "DSL166",
        "error",
        "`near` or `count` given a check that finds no text.",
        "They measure matched text: use regex, phrase, pii or secret inside them; combine a "
        "semantic question with `all { ... }` instead.",
    )
    NOT_COMPARABLE = (
        "DSL167",
        "error",
        "A comparison after something other than `count(...)`.",
        'Only a count can be compared: `count(phrase("a")) >= 2`.',
    )
    EMPTY_HEADING = (
        "DSL168",
        "error",
        "An empty section heading in `in section(...)`.",
        'Name the heading: `in section("Your rights") phrase("erasure")`.',
    )
    CHECK_NOT_COMPILABLE = (
        "DSL169",
        "error",
        "A check RE2 cannot compile (other than a regex or a phrase list).",
        "RE2 caps the size of a compiled pattern: split the check.",
    )
    LONE_SURROGATE = (
        "DSL170",
        "error",
        "A string escape that is not a character (a lone surrogate).",
        'Example: `phrase("\\ud800")`. Write the character itself, or escape a whole code '
        "point (`\\U0001F600`, not a pair of `\\u` escapes).",
    )
    UNCLOSED = (
        "DSL171",
        "error",
        "An unclosed `(`, `{` or `[`.",
        "Reported at the bracket left open, with where its partner was expected; the parser "
        "then goes on inside the same gate, so later mistakes are still reported.",
    )

    # --- the language's warnings (defaults, parameterised definitions, word lists) ----------
    UNUSED_DEFINE = (
        "DSL180",
        "warning",
        "A definition in the module's own files that nothing uses.",
        "An expression, parameterised definition or word list never referred to. Library "
        "definitions are not reported (other modules may use them), nor is anything while the "
        "module has errors (a gate that failed to compile may be the user).",
    )
    SHADOWED_NAME = (
        "DSL181",
        "warning",
        "A name that shadows another.",
        "A module's definition with the name of a library's (the module's is used, everywhere "
        "in the module), or a parameter with the name of a definition (inside the body, the "
        "name is the argument).",
    )
    RESTATED_DEFAULT = (
        "DSL182",
        "warning",
        "A gate that restates a value it inherits from a `defaults` block.",
        "Example: `defaults { applies privacy_notice }` and a gate with `applies "
        "privacy_notice`. Delete the gate's line.",
    )


#: every code by its string, for tools and the docs generator: ``CODES["DSL114"].summary``.
CODES: dict[str, Code] = {c.value: c for c in Code}


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
    def from_meta(cls, meta: Meta) -> Loc:
        """The span of a parse-tree node (Lark's ``propagate_positions`` meta)."""
        return cls(
            meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos
        )

    @classmethod
    def from_token(cls, tok: Token) -> Loc:
        """The span of a token; a token the parser made up (no position) sits at the start."""
        line, col, start = tok.line or 1, tok.column or 1, tok.start_pos or 0
        return cls(
            line,
            col,
            tok.end_line or line,
            tok.end_column or col + len(tok),
            start,
            tok.end_pos if tok.end_pos is not None else start + len(tok),
        )


NOWHERE = Loc(1, 1, 1, 2, 0, 1)


@dataclass
class Diagnostic:
    code: str
    message: str
    file: str
    loc: Loc | None = None
    help: str | None = None
    severity: Severity = "error"
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


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the nearest choice, or '' when none is near."""
    pool = list(choices)
    near = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not near:
        folded = {c.casefold(): c for c in pool}
        near = [
            folded[m]
            for m in difflib.get_close_matches(word.casefold(), list(folded), n=1, cutoff=0.6)
        ]
    if not near:  # a longer form of a short name (citation for cite): the longest shared prefix
        shared = {c: len(os.path.commonprefix([word.casefold(), c.casefold()])) for c in pool}
        best = max(shared.values(), default=0)
        tied = [c for c, n in shared.items() if n == best]
        if best >= 3 and len(tied) == 1:
            near = tied
    return f" Did you mean '{near[0]}'?" if near else ""


def one_of(choices: Iterable[str], word: str | None = None) -> str:
    """'expected one of: a, b, c.' with a did-you-mean for ``word`` when one is near."""
    pool = list(choices)
    listed = ", ".join(sorted(pool))
    hint = did_you_mean(word, pool) if word else ""
    return f"expected one of: {listed}.{hint}"


class DiagnosticBag:
    """Collects every diagnostic of a compilation, so a file reports all its errors at once."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []
        self._seen: dict[tuple[str, str, Loc | None, str], Diagnostic] = {}

    def _add(self, d: Diagnostic) -> Diagnostic:
        # The error-recovering parser may meet one mistake on more than one pass over a file:
        # it is reported once.
        key = (d.code, d.file, d.loc, d.message)
        if key in self._seen:
            return self._seen[key]
        self._seen[key] = d
        self.items.append(d)
        return d

    def report(
        self, code: Code, message: str, file: str, loc: Loc | None = None, help: str | None = None
    ) -> Diagnostic:
        """Record a diagnostic with the severity the table gives its code."""
        return self._add(Diagnostic(code, message, file, loc, help, severity=code.severity))

    def error(
        self, code: Code, message: str, file: str, loc: Loc | None = None, help: str | None = None
    ) -> Diagnostic:
        return self._add(Diagnostic(code, message, file, loc, help))

    def warning(
        self, code: Code, message: str, file: str, loc: Loc | None = None, help: str | None = None
    ) -> Diagnostic:
        return self._add(Diagnostic(code, message, file, loc, help, severity="warning"))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=lambda d: (d.file, d.loc.start if d.loc else -1, d.code))
