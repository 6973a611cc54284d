"""Infer a document's type from its wording when --doc-type is not given (or say it can't)."""

from __future__ import annotations

import re

from dsl.ast import DOC_TYPES

# Signals per type: (pattern, weight). Only the first 20,000 characters are read, so inference
# costs the same for a 10 MB document as for a 10 KB one.
_SIGNALS: dict[str, list[tuple[str, int]]] = {
    "notice_of_privacy_practices": [(r"notice of privacy practices", 6),
                                    (r"protected health information", 2),
                                    (r"how (medical|health) information about you may be used", 5)],
    "breach_notification": [(r"notice of (a )?(data |security )?breach", 6),
                            (r"\bbreach\b", 2), (r"what happened", 3),
                            (r"what (we are|we're) doing", 3), (r"unauthori[sz]ed (access|acquisition)", 2)],
    "privacy_notice": [(r"privacy (notice|policy|statement)", 5), (r"data controller", 3),
                       (r"your rights", 1), (r"personal (data|information)", 2),
                       (r"legal basis|lawful basis", 2)],
    "patient_letter": [(r"^dear\b", 2), (r"\bpatient\b", 2), (r"appointment|diagnos|clinic", 2)],
    "discharge_summary": [(r"discharge summary", 6), (r"admission date|discharge date", 3),
                          (r"discharge (diagnosis|medications)", 3)],
    "memo": [(r"^\s*(memo|memorandum)\b", 5), (r"^\s*to:\s", 2), (r"^\s*from:\s", 2),
             (r"^\s*(subject|re):\s", 2)],
    "marketing": [(r"unsubscribe", 4), (r"limited[- ]time|special offer|% off|sign up today", 3)],
    "deidentified_extract": [(r"de-?identified", 4), (r"research (extract|dataset|data set)", 3),
                             (r"^[\w ]+(,[\w ]+){4,}$", 2)],
    "authorization_form": [(r"authori[sz]ation (form|for (the )?(use|release|disclosure))", 6),
                           (r"expiration date|this authori[sz]ation expires", 3)],
    "financial_promotion": [(r"capital (is )?at risk|past performance", 5),
                            (r"\binvest(ment|ing)?\b", 2), (r"\bAPR\b|interest rate", 2)],
    "cookie_notice": [(r"cookie (policy|notice|banner|preferences)", 6)],
    "release_note": [(r"release notes?|changelog", 5), (r"\bv?\d+\.\d+\.\d+\b", 1)],
}
_COMPILED = {t: [(re.compile(p, re.IGNORECASE | re.MULTILINE), w) for p, w in sigs]
             for t, sigs in _SIGNALS.items()}
assert set(_COMPILED) <= set(DOC_TYPES)

#: the best type must score at least this, and beat the runner-up by this margin.
MIN_SCORE = 5
MARGIN = 2


def infer_doc_type(text: str, name: str = "") -> str | None:
    head = text[:20_000]
    scores: dict[str, int] = {}
    for doc_type, signals in _COMPILED.items():
        score = sum(w for rx, w in signals if rx.search(head))
        if doc_type.replace("_", "-") in name.lower() or doc_type in name.lower():
            score += 4
        if score:
            scores[doc_type] = score
    if not scores:
        return None
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    best, score = ranked[0]
    runner = ranked[1][1] if len(ranked) > 1 else 0
    if score >= MIN_SCORE and score - runner >= MARGIN:
        return best
    return None
