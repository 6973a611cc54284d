"""`pii(...)`: PII/PHI detectors, named after Presidio's entity types where they coincide."""

from __future__ import annotations

from typing import ClassVar

import re2

from gates.base import Detector, DetectorCheck, Match

_OPTS = re2.Options()
_OPTS.log_errors = False


def _regex_detector(name: str, description: str, pattern: str, validate=None, score: float = 0.9):
    rx = re2.compile(pattern, _OPTS)

    def finder(text: str) -> list[Match]:
        out = []
        for m in rx.finditer(text):
            value = m.group()
            if validate is not None and not validate(value):
                continue
            out.append(Match(m.start(), m.end(), detail=name, score=score, display=mask(value)))
        return out

    return Detector(name, description, finder)


def mask(value: str, keep: int = 2) -> str:
    """Show the shape of a value without revealing it: ``jo***@***.com`` style."""
    if len(value) <= keep * 2:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - keep * 2) + value[-keep:]


def luhn_ok(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def ssn_ok(value: str) -> bool:
    digits = "".join(c for c in value if c.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return not (area in ("000", "666") or area >= "900" or group == "00" or serial == "0000")


DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in [
        _regex_detector("EMAIL_ADDRESS", "email address",
                        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        _regex_detector("US_SSN", "US social security number (valid ranges)",
                        r"\b\d{3}-\d{2}-\d{4}\b", ssn_ok, 0.85),
        _regex_detector("PHONE_NUMBER", "phone number",
                        r"(?:\+\d{1,3}[ .-]?)?\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b", score=0.7),
        _regex_detector("CREDIT_CARD", "payment card number (Luhn-checked)",
                        r"\b(?:\d[ -]?){12,18}\d\b", luhn_ok),
    ]
}


class PiiCheck(DetectorCheck):
    kind: ClassVar[str] = "pii"
    cost: ClassVar[int] = 2
    registry: ClassVar[dict[str, Detector]] = DETECTORS
