"""The typed syntax tree of a gate file: plain dataclasses, each node carrying its source span."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from dsl.diagnostics import Loc


class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class OnIndeterminate(str, Enum):
    """What a gate does when a check it depends on could not be decided."""

    block = "block"  # fail-closed: the document may not be released
    pass_ = "pass"  # fail-open: reported, never blocks
    review = "review"  # reported for a person to review; does not block


#: document types a gate can apply to (``applies ...``) and ``--doc-type`` accepts.
DOC_TYPES: tuple[str, ...] = (
    "authorization_form",
    "breach_notification",
    "cookie_notice",
    "deidentified_extract",
    "discharge_summary",
    "email",
    "financial_promotion",
    "marketing",
    "memo",
    "notice_of_privacy_practices",
    "patient_letter",
    "privacy_notice",
    "release_note",
    "research_protocol",
)


# --- expressions -------------------------------------------------------------------------


@dataclass
class Expr:
    loc: Loc


@dataclass
class Text(Expr):
    value: str


@dataclass
class Ref(Expr):
    name: str


@dataclass
class Within(Expr):
    amount: float
    unit: str | None
    unit_loc: Loc | None


@dataclass
class Same(Expr):
    """``same sentence`` / ``same paragraph`` inside followed_by(...) or near(...)."""

    unit: str
    unit_loc: Loc


@dataclass
class Call(Expr):
    """``name(arg, ...)`` with an optional comparison: phrase, pii, secret, near, count, ..."""

    name: str
    name_loc: Loc
    args: list[Expr]
    comparison: tuple[str, float, Loc] | None = None


@dataclass
class RegexCheck(Expr):
    kind: str
    kind_loc: Loc
    pattern: str
    flags: str
    pattern_loc: Loc


@dataclass
class TextCheck(Expr):
    """``semantic "question" like [...] threshold 0.5 raw``."""

    kind: str
    kind_loc: Loc
    text: str
    text_loc: Loc
    like: list[str] = field(default_factory=list)
    threshold: float | None = None
    raw: bool = False


@dataclass
class Not(Expr):
    child: Expr


@dataclass
class All(Expr):
    children: list[Expr]


@dataclass
class Any_(Expr):
    children: list[Expr]


@dataclass
class InSection(Expr):
    headings: list[str]
    child: Expr


@dataclass
class Bound(Expr):
    """An argument of a parameterised definition, already compiled where it was written."""

    node: object


@dataclass
class Invalid(Expr):
    """An expression the parser reported and left out (nested too deep): compiles to nothing,
    without a second diagnostic."""


# --- declarations ------------------------------------------------------------------------


@dataclass
class Prop:
    name: str
    name_loc: Loc
    values: list[Text | Ref | float]
    value_locs: list[Loc]
    loc: Loc


@dataclass
class Example:
    expect: str  # "pass" | "fail" (validated by the compiler)
    expect_loc: Loc
    text: str
    expecting: list[tuple[str, Loc]]
    loc: Loc


@dataclass
class GateDecl:
    code: str
    code_loc: Loc
    name: str
    name_loc: Loc
    props: list[Prop]
    requires: list[Expr]
    forbids: list[Expr]
    whens: list[Expr]
    examples: list[Example]
    loc: Loc
    source: str  # the gate's own source text, kept for the audit log


@dataclass
class DefineDecl:
    name: str
    name_loc: Loc
    #: the body; None for a word list
    expr: Expr | None
    loc: Loc
    #: ``define name(x, y) = ...``: parameter names and where they are written
    params: list[tuple[str, Loc]] | None = None
    #: ``define name = ["a", other_list]``: quoted words and the names of other lists
    words: list[Text | Ref] | None = None


@dataclass
class DefaultsDecl:
    """``defaults { applies ... severity ... }``: what the gates of a file or module inherit."""

    props: list[Prop]
    loc: Loc


@dataclass
class ImportDecl:
    target: str
    is_path: bool
    loc: Loc


@dataclass
class ModuleDecl:
    id: str
    id_loc: Loc
    props: list[Prop]
    loc: Loc
    defaults: list[DefaultsDecl] = field(default_factory=list)


@dataclass
class GateFile:
    path: str
    source: str
    modules: list[ModuleDecl] = field(default_factory=list)
    imports: list[ImportDecl] = field(default_factory=list)
    defines: list[DefineDecl] = field(default_factory=list)
    gates: list[GateDecl] = field(default_factory=list)
    defaults: list[DefaultsDecl] = field(default_factory=list)
