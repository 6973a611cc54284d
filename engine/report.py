"""The report contract (versioned): what a validation returns to the CLI, HTTP clients and the
audit log. Changing a field's meaning bumps ``SCHEMA_VERSION``; the JSON Schema is exported to
``engine/schema/report.schema.json`` and checked in tests."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, Field

from dsl.ast import OnIndeterminate, Severity

SCHEMA_VERSION = "1.1"


class Status(str, Enum):
    pass_ = "pass"
    fail = "fail"
    indeterminate = "indeterminate"
    not_applicable = "not_applicable"
    waived = "waived"


class Span(BaseModel):
    start: int = Field(description="character offset (inclusive) into the document text")
    end: int = Field(description="character offset (exclusive)")
    line: int = Field(description="1-based line of start")
    col: int = Field(description="1-based column (characters) of start")
    page: int | None = Field(default=None, description="1-based page, for paged formats")
    check: str = Field(description="which check produced the span, e.g. 'regex /foo/i'")
    kind: str = Field(description="check kind: regex, phrase, pii, secret, proximity, semantic")
    detail: str | None = Field(default=None, description="entity type or masked/short match")


class SemanticAnswer(BaseModel):
    question: str
    verdict: Literal["yes", "no", "unclear"]
    confidence: float
    rationale: str
    provider: str
    model: str
    prompt_version: str
    evidence: list[Span] = Field(default_factory=list)
    cached: bool = False
    score: float | None = Field(default=None, description="score-based providers: the score")
    decided_above: float | None = Field(
        default=None, description="score-based providers: scores at or above this answer yes"
    )
    decided_below: float | None = Field(
        default=None,
        description="score-based providers: scores below this answer no; in "
        "between the answer is unclear",
    )


class Waiver(BaseModel):
    reason: str
    approver: str
    expires: str | None = None
    created: str | None = None


class CheckTiming(BaseModel):
    check: str
    kind: str
    ms: float


class GateResult(BaseModel):
    gate: str = Field(description="stable gate code, e.g. GDPR-13-1A")
    name: str
    module: str
    version: str = Field(description="hash of the gate's compiled form")
    title: str
    status: Status
    blocking: bool = Field(description="whether this result stops the release")
    severity: Severity
    cite: str
    message: str
    fix: str | None = None
    on_indeterminate: OnIndeterminate
    spans: list[Span] = Field(default_factory=list)
    spans_omitted: int = Field(
        default=0,
        description="spans found but not listed (capped: "
        "CLEARANCE_MAX_SPANS per gate, CLEARANCE_MAX_REPORT_SPANS in all)",
    )
    semantic: list[SemanticAnswer] = Field(default_factory=list)
    waiver: Waiver | None = None
    ms: float | None = Field(default=None, description="evaluation time (with --profile)")
    checks: list[CheckTiming] | None = Field(
        default=None, description="per-check timings (--profile)"
    )


class DocumentInfo(BaseModel):
    name: str
    path: str | None = None
    sha256: str
    size: int
    media_type: str
    doc_type: str | None
    doc_type_source: Literal["given", "config", "inferred", "none"] = Field(
        description="given (flag or request), config (a doc-types glob), inferred, none"
    )
    doc_type_confidence: float | None = Field(
        default=None, description="inference only: 0-1, how far past its bars the type won"
    )
    doc_type_likely: list[str] = Field(
        default_factory=list, description="inference: the leading types, best first"
    )
    doc_type_signals: list[str] = Field(
        default_factory=list,
        description="inference: the signals found for the chosen (or, if "
        "none was chosen, the leading) type; config: the glob that matched",
    )
    chars: int
    lines: int
    sections: int


class ModuleRef(BaseModel):
    id: str
    version: str


class ModuleChoice(BaseModel):
    """Whether a known module was applied to the document, and why."""

    id: str
    applied: bool
    jurisdictions: list[str] = Field(
        default_factory=list, description="what the module declares; empty = any"
    )
    why: str


class LLMUsage(BaseModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    latency_ms: float = 0.0
    questions_asked: int = 0
    questions_skipped: int = Field(default=0, description="semantic checks cheap checks decided")
    questions_cached: int = 0


class Summary(BaseModel):
    gates: int
    passed: int
    failed: int
    indeterminate: int
    not_applicable: int
    waived: int
    blocking: int
    by_severity: dict[str, int] = Field(description="failed gates per severity")


class Report(BaseModel):
    schema_version: str = SCHEMA_VERSION
    tool_version: str
    document: DocumentInfo
    verdict: Literal["pass", "fail", "indeterminate", "review"]
    exit_code: int = Field(
        description="0 nothing blocks (verdict pass, or review when a "
        "non-blocking gate was left undecided for a person), 1 blocking "
        "findings, 3 blocking indeterminate or a document whose type could "
        "not be told (review)"
    )
    modules: list[ModuleRef]
    jurisdictions: list[str] = Field(
        default_factory=list, description="the document's jurisdictions; empty = not set"
    )
    module_selection: list[ModuleChoice] = Field(
        default_factory=list, description="every known module, applied or not, and why"
    )
    untyped_policy: Literal["review", "fail", "universal"] | None = Field(
        default=None,
        description="set when the document's type was neither given nor "
        "inferred: what was done about the gates that need a type",
    )
    config: str | None = Field(default=None, description="the settings file used, if any")
    ruleset: str = Field(description="hash over the versions of every gate evaluated")
    gates: list[GateResult]
    summary: Summary
    llm: LLMUsage = Field(default_factory=LLMUsage)
    cache_hit: bool = False
    ms: float = Field(description="total validation time in milliseconds")
    warnings: list[str] = Field(default_factory=list)


def report_json_schema() -> dict:
    schema = Report.model_json_schema()
    schema["$id"] = f"https://clearance.dev/schema/report-{SCHEMA_VERSION}.json"
    schema["title"] = "Clearance validation report"
    return schema
