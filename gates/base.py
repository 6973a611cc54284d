"""The contract every check kind follows: compile arguments once, then find matches in text."""

from __future__ import annotations

import functools
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from dsl.diagnostics import Code


class Match(NamedTuple):
    """One span a check found, as character offsets into the document text. Immutable, and a
    tuple so that building one costs a third of a frozen dataclass's ``__init__`` (a document
    of 1 MB makes 15,000-25,000 of them)."""

    start: int
    end: int
    #: short machine-readable detail, e.g. the entity type ``US_SSN`` (phrase matches leave it
    #: empty: the report cuts the phrase as written from the text, for the matches it shows).
    detail: str = ""
    #: detector score in [0, 1] (1.0 for exact patterns).
    score: float = 1.0
    #: a display form safe to print (masked for secrets and PII); never the raw value of a secret.
    display: str | None = None


class CheckError(Exception):
    """A check could not be built from its arguments; ``code`` is a DSL diagnostic code."""

    def __init__(
        self, code: Code, message: str, *, help: str | None = None, arg_index: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.help = help
        #: which argument the error is about (for a narrow caret), when known.
        self.arg_index = arg_index


@dataclass(frozen=True)
class CheckSpec:
    """What the DSL hands to a check kind: the kind and its literal arguments."""

    kind: str
    args: tuple[Any, ...] = ()
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        for key, value in self.options:
            if key == name:
                return value
        return default


class Check(ABC):
    """A compiled, span-producing check. Instances are immutable and shareable across threads."""

    #: the kind name used in gate files (``regex``, ``phrase``, ``pii``, ``secret``).
    kind: ClassVar[str]
    #: relative cost; the engine evaluates cheaper checks first. Regex 1, phrases 1,
    #: detectors 2-3, semantic 100.
    cost: ClassVar[int]

    @abstractmethod
    def find(self, text: str) -> list[Match]:
        """Every match in ``text``, ordered by start offset. Must run in linear time.

        The engine passes the document's :class:`gates.scan.ScanText` (its encoding, the
        patterns proved absent, the detectors' results): hand ``text`` on to the scanning
        functions of :mod:`gates.scan` as it came. Any other ``str`` works too."""

    def iter_find(self, text: str) -> Iterator[Match]:
        """The matches of :meth:`find`, in the same order, produced lazily where the kind can:
        the evaluator stops at the first one when a gate only needs to know whether there is
        one (``require``, ``when``, ``not``)."""
        return iter(self.find(text))

    @abstractmethod
    def canonical(self) -> dict[str, Any]:
        """A JSON-able description that identifies this check's behaviour (used in gate hashes)."""

    def describe(self) -> str:
        """A short human label for findings, e.g. ``regex /foo/i``."""
        return self.kind

    #: how the scanner learns whether this kind's trigger patterns can match: ``"set"``, run
    #: in a multi-pattern ``re2.Set`` on large documents (exact: does the pattern match
    #: anywhere?); ``"late-set"``, the same in Sets of their own once the scanner has read
    #: enough large documents to repay building their DFA states; ``"atoms"``, only the literal
    #: strings it needs looked for (a superset). See ``gates.scan.Scanner``.
    prefilter: ClassVar[str] = "set"

    def triggers(self) -> tuple[tuple[str, ...], ...] | None:
        """RE2 patterns that must match somewhere for :meth:`find` to find anything, as
        alternatives of conjunctions (see ``gates.scan``); ``None``: no prefilter, always run."""
        return None

    @functools.cached_property
    def key(self) -> str:
        """Stable identity: two checks with the same key always find the same matches."""
        # cached: the evaluator asks for it per node per document (JSON + SHA-256 each time)
        blob = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Question:
    """A yes/no question a semantic check asks about a document (answered by a provider)."""

    text: str
    #: declarative statements of what satisfies the question (used by embedding providers).
    like: tuple[str, ...] = ()
    #: per-question decision threshold for score-based providers; ``None`` = provider default.
    threshold: float | None = None
    #: the gate explicitly needs the raw text (no de-identification) -- only honoured when the
    #: operator also allows it.
    raw: bool = False
    gates: tuple[str, ...] = field(default=(), compare=False)

    @functools.cached_property
    def id(self) -> str:
        # cached: the evaluator reads it for every semantic node of every gate per document
        blob = json.dumps([self.text, list(self.like), self.threshold, self.raw])
        return "q_" + hashlib.sha256(blob.encode()).hexdigest()[:12]


class KindRegistry:
    """Name -> check kind factory, so the DSL can validate names and suggest near ones."""

    def __init__(self) -> None:
        self._factories: dict[str, Any] = {}

    def register(self, name: str, factory: Any) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Any | None:
        return self._factories.get(name)


@dataclass(frozen=True)
class Detector:
    """A named entity detector (PII/PHI or secret). Names follow Presidio's where they coincide."""

    name: str
    description: str
    #: Callable[[str], list[Match]], given the document's ``gates.scan.ScanText``; kept loose
    #: so detectors can be plain functions
    finder: Any
    cost: int = 2

    def find(self, text: str) -> list[Match]:
        return self.finder(text)

    @property
    def triggers(self) -> tuple[tuple[str, ...], ...] | None:
        """The finder's prefilter patterns, when its factory declared them (``None``: unknown)."""
        return getattr(self.finder, "triggers", None)


def keep_longest(found: list[Match]) -> list[Match]:
    """One detector, several patterns: of overlapping spans keep the longest (the first of
    equals). Sorts ``found`` in place."""
    found.sort(key=lambda m: (m.start, -m.end))
    out: list[Match] = []
    for m in found:
        if out and m.start < out[-1].end:
            if m.end - m.start > out[-1].end - out[-1].start:
                out[-1] = m
            continue
        out.append(m)
    return out


class DetectorCheck(Check):
    """``pii(...)`` / ``secret(...)``: the union of the matches of the named detectors."""

    kind: ClassVar[str] = "detector"
    cost: ClassVar[int] = 2
    registry: ClassVar[dict[str, Detector]] = {}

    def __init__(self, names: tuple[str, ...], detectors: tuple[Detector, ...]) -> None:
        self.names = names
        self.detectors = detectors

    @classmethod
    def from_spec(cls, spec: CheckSpec) -> DetectorCheck:
        import difflib

        names: list[str] = []
        for i, raw in enumerate(spec.args):
            name = str(raw)
            if name == "any":
                names.extend(sorted(cls.registry))
                continue
            if name not in cls.registry:
                near = difflib.get_close_matches(name.upper(), list(cls.registry), n=1, cutoff=0.6)
                hint = f" Did you mean '{near[0]}'?" if near else ""
                raise CheckError(
                    Code.UNKNOWN_DETECTOR,
                    f"unknown {cls.kind} detector '{name}'",
                    help=f"expected one of: any, {', '.join(sorted(cls.registry))}.{hint}",
                    arg_index=i,
                )
            names.append(name)
        if not names:
            raise CheckError(
                Code.UNKNOWN_DETECTOR,
                f"{cls.kind}(...) needs at least one detector name",
                help="write e.g. " + cls.kind + "(any)",
            )
        uniq = tuple(dict.fromkeys(names))
        return cls(uniq, tuple(cls.registry[n] for n in uniq))

    def find(self, text: str) -> list[Match]:
        out: list[Match] = []
        for det in self.detectors:
            out.extend(det.find(text))
        out.sort(key=lambda m: (m.start, m.end))
        return out

    def triggers(self) -> tuple[tuple[str, ...], ...] | None:
        out: list[tuple[str, ...]] = []
        for det in self.detectors:
            if det.triggers is None:
                return None
            out.extend(det.triggers)
        return tuple(out)

    def canonical(self) -> dict[str, Any]:
        return {"kind": self.kind, "detectors": list(self.names)}

    def describe(self) -> str:
        return f"{self.kind}({', '.join(self.names)})"
