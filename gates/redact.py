"""Redaction: run every PII/secret detector once, resolve overlaps, and replace, mask or hash."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets as _random
from collections.abc import Iterable, Sequence
from typing import Literal

from gates.base import Detector, Match
from gates.scan import ScanText

Operator = Literal["replace", "mask", "hash"]
OPERATORS: tuple[str, ...] = ("replace", "mask", "hash")
SALT_ENV = "CLEARANCE_REDACT_SALT"


class RedactionError(ValueError):
    """A redaction request that cannot be honoured (unknown operator)."""


def detectors(kinds: Iterable[str] = ("pii", "secret")) -> list[Detector]:
    """The registered detectors of the given kinds, read at call time so new ones are picked up."""
    from gates import pii, secrets

    registries = {"pii": pii.DETECTORS, "secret": secrets.DETECTORS}
    out: list[Detector] = []
    for kind in kinds:
        if kind not in registries:
            raise RedactionError(f"unknown detector kind '{kind}' (expected pii or secret)")
        out.extend(registries[kind].values())
    return out


def find_all(text: str, kinds: Iterable[str] = ("pii", "secret")) -> list[Match]:
    """Every detector's raw matches, overlaps included, sorted by offset."""
    # one context for every detector: the text encoded once, a shared finder run once
    doc = ScanText.of(text)
    found = [m for det in detectors(kinds) for m in det.find(doc)]
    found.sort(key=lambda m: (m.start, -m.end, -m.score))
    return found


def _better(a: Match, b: Match) -> bool:
    """Whether ``a`` should win an overlap against ``b``: higher score, then the longer span
    (a DOB beats the DATE_TIME on the same span; a Slack webhook beats the generic URL)."""
    return (a.score, a.end - a.start) > (b.score, b.end - b.start)


def resolve_overlaps(matches: Sequence[Match]) -> list[Match]:
    """One sweep over matches sorted by start: of overlapping ones keep the better. Linear
    after the sort, since the kept spans never overlap each other."""
    ordered = sorted(matches, key=lambda m: (m.start, -m.end, -m.score))
    kept: list[Match] = []
    for m in ordered:
        if kept and m.start < kept[-1].end:
            if _better(m, kept[-1]):
                kept[-1] = m
            continue
        kept.append(m)
    return kept


def detect_all(text: str, kinds: Iterable[str] = ("pii", "secret")) -> list[Match]:
    """Run every detector of ``kinds`` once and return non-overlapping matches in text order."""
    return resolve_overlaps(find_all(text, tuple(kinds)))


def merge_spans(matches: Sequence[Match]) -> list[tuple[int, int, str]]:
    """Union of overlapping spans, so no part of any detected value survives redaction; the
    merged span takes the entity type of its best-scoring member."""
    spans: list[tuple[int, int, Match]] = []
    for m in sorted(matches, key=lambda m: (m.start, -m.end)):
        if m.end <= m.start:
            continue
        if spans and m.start < spans[-1][1]:
            start, end, best = spans[-1]
            spans[-1] = (start, max(end, m.end), m if _better(m, best) else best)
            continue
        spans.append((m.start, m.end, m))
    return [(s, e, best.detail or "REDACTED") for s, e, best in spans]


def resolve_salt(salt: str | bytes | None = None) -> tuple[bytes, bool]:
    """The salt for ``hash``: the argument, else ``$CLEARANCE_REDACT_SALT``, else a fresh random
    one (returned with ``True`` so callers can say hashes will not match another run's).
    Never a fixed built-in salt: a known salt lets anyone hash a guessed SSN and compare."""
    if salt is None:
        salt = os.environ.get(SALT_ENV) or None
    if salt is None:
        return _random.token_bytes(32), True
    return (salt.encode() if isinstance(salt, str) else salt), False


def hash_value(value: str, salt: bytes, entity: str) -> str:
    digest = hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()[:12]
    return f"[{entity}:{digest}]"


def mask_value(value: str) -> str:
    """Keep the last few characters of long values (enough to tell two cards apart), hide the
    rest; punctuation stays so the shape of the value is still readable."""
    keep = 4 if len(value) >= 12 else (2 if len(value) >= 8 else 0)
    cut = len(value) - keep
    return "".join("*" if c.isalnum() and i < cut else c for i, c in enumerate(value))


def redact(
    text: str,
    matches: Sequence[Match],
    operator: str = "replace",
    *,
    salt: str | bytes | None = None,
    secret_types: Iterable[str] = (),
) -> str:
    """Return ``text`` with every matched span replaced.

    ``replace`` writes ``[TYPE]``; ``mask`` keeps the last few characters of PII (secrets,
    named in ``secret_types``, are masked in full); ``hash`` writes ``[TYPE:hmac]``, a keyed
    SHA-256 prefix, so equal values stay linkable within one salt. Overlapping matches are
    merged first.
    """
    if operator not in OPERATORS:
        raise RedactionError(
            f"unknown operator '{operator}' (expected one of: {', '.join(OPERATORS)})"
        )
    key = resolve_salt(salt)[0] if operator == "hash" else b""
    full_mask = set(secret_types) or _secret_names()
    out: list[str] = []
    pos = 0
    for start, end, entity in merge_spans(matches):
        out.append(text[pos:start])
        value = text[start:end]
        if operator == "replace":
            out.append(f"[{entity}]")
        elif operator == "mask":
            out.append("*" * len(value) if entity in full_mask else mask_value(value))
        else:
            out.append(hash_value(value, key, entity))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _secret_names() -> set[str]:
    from gates import secrets

    return set(secrets.DETECTORS)
