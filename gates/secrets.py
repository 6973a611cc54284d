"""`secret(...)`: credential detectors; matched values are only ever shown masked."""

from __future__ import annotations

from typing import ClassVar

import re2

from gates.base import Detector, DetectorCheck, Match

_OPTS = re2.Options()
_OPTS.log_errors = False


def mask_secret(value: str) -> str:
    """Keep a recognisable prefix (e.g. ``AKIA``) and nothing that would let the key be used."""
    return value[:4] + "…" + f"[{len(value)} chars]"


def _secret(name: str, description: str, pattern: str) -> Detector:
    rx = re2.compile(pattern, _OPTS)

    def finder(text: str) -> list[Match]:
        return [Match(m.start(), m.end(), detail=name, score=0.95, display=mask_secret(m.group()))
                for m in rx.finditer(text)]

    return Detector(name, description, finder)


DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in [
        _secret("AWS_ACCESS_KEY", "AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        _secret("GITHUB_TOKEN", "GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
        _secret("PRIVATE_KEY", "PEM private key block",
                r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    ]
}


class SecretCheck(DetectorCheck):
    kind: ClassVar[str] = "secret"
    cost: ClassVar[int] = 2
    registry: ClassVar[dict[str, Detector]] = DETECTORS
