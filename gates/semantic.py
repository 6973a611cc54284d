"""`semantic "question"`: a yes/no question answered by a provider, the costliest check kind."""

from __future__ import annotations

from typing import Any, ClassVar

from dsl.diagnostics import Code
from gates.base import CheckError, CheckSpec, Question

COST = 100


class SemanticCheck:
    """Not span-producing: it yields a :class:`Question`; the engine asks a provider for it."""

    kind: ClassVar[str] = "semantic"
    cost: ClassVar[int] = COST

    def __init__(self, question: Question) -> None:
        self.question = question

    @classmethod
    def from_spec(cls, spec: CheckSpec) -> SemanticCheck:
        (text,) = spec.args
        if not str(text).strip():
            raise CheckError(
                Code.BAD_SEMANTIC,
                "semantic check needs a question",
                help='write e.g. semantic "Does the notice name the controller?"',
            )
        threshold = spec.option("threshold")
        if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
            raise CheckError(
                Code.BAD_SEMANTIC,
                f"threshold {threshold} is outside 0..1",
                help="a threshold is a similarity score between 0 and 1",
            )
        like = tuple(spec.option("like", ()) or ())
        raw = bool(spec.option("raw", False))
        return cls(Question(str(text), like, None if threshold is None else float(threshold), raw))

    @property
    def key(self) -> str:
        return self.question.id

    def canonical(self) -> dict[str, Any]:
        q = self.question
        return {
            "kind": "semantic",
            "question": q.text,
            "like": list(q.like),
            "threshold": q.threshold,
            "raw": q.raw,
        }

    def describe(self) -> str:
        return f'semantic "{self.question.text}"'
