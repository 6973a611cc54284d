"""A deterministic provider for tests: answers come from a table keyed by question text."""

from __future__ import annotations

from engine.document import Document
from engine.providers.base import Answer, Provider, ProviderResult, Usage, Verdict
from gates.base import Question


class ScriptedProvider(Provider):
    name = "scripted"
    model = "table"
    prompt_version = "1"

    def __init__(
        self, table: dict[str, Verdict] | None = None, default: Verdict = "unclear"
    ) -> None:
        self.table = dict(table or {})
        self.default = default
        self.asked: list[list[str]] = []  # one entry per call: the question texts asked

    async def answer(self, doc: Document, questions: list[Question]) -> ProviderResult:
        self.asked.append([q.text for q in questions])
        answers = {}
        for q in questions:
            verdict = self.table.get(q.text, self.default)
            answers[q.id] = Answer(
                verdict, 1.0 if verdict != "unclear" else 0.0, f"scripted answer '{verdict}'"
            )
        return ProviderResult(answers, Usage(calls=1))
