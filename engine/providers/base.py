"""The provider interface: answer a document's pending semantic questions in one batch."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from engine.document import Document
from gates.base import Question

Verdict = Literal["yes", "no", "unclear"]


@dataclass(frozen=True)
class Evidence:
    quote: str
    start: int  # character offsets into the ORIGINAL document text
    end: int


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    confidence: float
    rationale: str
    evidence: tuple[Evidence, ...] = ()
    cached: bool = False
    #: score-based providers: the score, and the band around the decision. A score at or above
    #: ``decided_above`` is "yes", below ``decided_below`` is "no"; in between the answer is
    #: "unclear" (the gate is INDETERMINATE and its ``on_indeterminate`` policy decides).
    score: float | None = None
    decided_above: float | None = None
    decided_below: float | None = None


@dataclass
class Usage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    latency_ms: float = 0.0

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.latency_ms += other.latency_ms


@dataclass
class ProviderResult:
    #: one answer per question id; a question missing here is treated as ``unclear``.
    answers: dict[str, Answer]
    usage: Usage = field(default_factory=Usage)


class Provider(ABC):
    """Implementations must never raise for a document's content or a remote failure: an answer
    that could not be had is ``unclear`` with a rationale saying why (the check becomes
    INDETERMINATE and the gate follows its declared policy)."""

    name: str = "provider"
    model: str = ""
    prompt_version: str = "1"

    @abstractmethod
    async def answer(self, doc: Document, questions: list[Question]) -> ProviderResult: ...

    def answer_now(self, doc: Document, questions: list[Question]) -> ProviderResult | None:
        """The answers, synchronously, when the provider can give them without waiting on
        anything (no network, no model); ``None``: use :meth:`answer`. Spares the engine an
        event loop (~1 ms a validation)."""
        return None

    def identity(self) -> str:
        """Part of cache keys: a changed provider, model or prompt never returns a stale answer."""
        return f"{self.name}:{self.model}:{self.prompt_version}"

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        pass


def unclear_all(questions: list[Question], why: str) -> ProviderResult:
    return ProviderResult({q.id: Answer("unclear", 0.0, why) for q in questions})


class NullProvider(Provider):
    """Answers nothing: every question is ``unclear`` (the checks become INDETERMINATE)."""

    name = "none"
    model = "none"

    def __init__(self, reason: str = "no semantic provider is configured") -> None:
        self.reason = reason

    async def answer(self, doc: Document, questions: list[Question]) -> ProviderResult:
        return unclear_all(questions, self.reason)

    def answer_now(self, doc: Document, questions: list[Question]) -> ProviderResult:
        return unclear_all(questions, self.reason)
