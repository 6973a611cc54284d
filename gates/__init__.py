"""Check kinds a gate can use, one file per kind, each with a declared relative cost."""

from gates.base import Check, CheckError, CheckSpec, Detector, KindRegistry, Match, Question
from gates.phrases import PhraseCheck
from gates.pii import PiiCheck
from gates.regex import RegexCheck
from gates.secrets import SecretCheck
from gates.semantic import SemanticCheck

KINDS = KindRegistry()
for _cls in (RegexCheck, PhraseCheck, PiiCheck, SecretCheck, SemanticCheck):
    KINDS.register(_cls.kind, _cls)

__all__ = [
    "KINDS",
    "Check",
    "CheckError",
    "CheckSpec",
    "Detector",
    "Match",
    "Question",
    "RegexCheck",
    "PhraseCheck",
    "PiiCheck",
    "SecretCheck",
    "SemanticCheck",
]
