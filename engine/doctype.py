"""Infer a document's type from its wording (body and heading) when none was given, with the
signals used and a confidence, or say plainly that it can't be told."""

from __future__ import annotations

from dataclasses import dataclass, field

import re2

from dsl.ast import DOC_TYPES

# Signals per type: (what it is, in words; pattern; weight). Each signal counts once, however
# often it occurs. They read the body as well as the heading: a privacy notice headed "How we
# look after your information" still talks about personal data, rights and the regulator.
# Only the first 20,000 characters are read, so inference costs the same for 10 MB as for 10 KB.
_SIGNALS: dict[str, list[tuple[str, str, int]]] = {
    "notice_of_privacy_practices": [
        ("names itself a notice of privacy practices", r"notice of privacy practices", 6),
        ("protected health information", r"protected health information|\bPHI\b", 2),
        (
            "how medical information may be used",
            r"how (medical|health) information about you may be used",
            5,
        ),
        (
            "treatment, payment and operations",
            r"payment,? and health ?care operations|treatment, payment",
            3,
        ),
        ("accounting of disclosures", r"accounting of (the )?disclosures", 3),
        (
            "required by law to protect health information",
            r"(required|obligated) by law to (maintain|protect|keep) the privacy",
            3,
        ),
        (
            "complaint to HHS",
            r"secretary of (the (u\.?s\.? )?department of )?health and human services|office for civil rights",
            2,
        ),
        ("right to a paper copy", r"paper copy of this notice", 3),
    ],
    "breach_notification": [
        (
            "names itself a breach notice",
            r"notice of (a )?(data |security |privacy )?(breach|incident)",
            6,
        ),
        ("breach", r"\bbreach\b", 2),
        ("what happened", r"what happened", 3),
        ("what we are doing", r"what (we are|we're|we have been) doing", 3),
        ("what information was involved", r"what information was (involved|affected)", 4),
        ("what you can do", r"what you can do|steps you (can|should) take", 3),
        ("unauthorised access", r"unauthori[sz]ed (access|acquisition|person|individual|party)", 2),
        (
            "credit monitoring or fraud alert",
            r"credit monitoring|fraud alert|(credit|security) freeze|identity (theft )?protection",
            3,
        ),
        (
            "an incident that exposed information",
            r"(ransomware|phishing|stolen laptop|misdirected|cyber ?attack|security incident)",
            2,
        ),
        (
            "the discovery of an incident",
            r"we (discovered|learned of|became aware of|found)|(sent|mailed|emailed|disclosed) [^.\n]{0,60}(by mistake|in error)",
            2,
        ),
        (
            "information may have been accessed",
            r"(may have been|was|were) (accessed|viewed|acquired|exposed|stolen|compromised)",
            2,
        ),
    ],
    "privacy_notice": [
        ("names itself a privacy notice or policy", r"privacy (notice|policy|statement)", 5),
        ("data controller", r"data controller|controller of your", 3),
        ("your rights", r"your (data protection |privacy )?rights", 1),
        ("personal data", r"personal (data|information|details)", 2),
        (
            "how long data is kept",
            r"how long (we|will we) (keep|retain|store)|retention period|we (keep|retain) (your|it|them|this)",
            1,
        ),
        ("lawful basis", r"legal basis|lawful basis|legitimate interests?", 2),
        (
            "says what is collected or shared",
            r"\b(we|I) (collect|process|hold|gather|keep|store|share|record)\b|(what|who) (we|I) (collect|share)",
            2,
        ),
        (
            "a heading about privacy or respect for it",
            r"^\W*privacy\W*$|(respect|protect|value) your privacy",
            2,
        ),
        (
            "data subject rights",
            r"right to (access|erasure|be forgotten|object|rectif|data portability|portability|restrict|withdraw)",
            2,
        ),
        (
            "regulator",
            r"information commissioner|\bICO\b|supervisory authority|data protection authority",
            2,
        ),
        (
            "data protection law or officer",
            r"data protection (officer|law|legislation|act)|\bGDPR\b|\bDPO\b",
            2,
        ),
        (
            "how personal information is looked after",
            r"(look after|use|handle|protect) your (personal )?(data|information)",
            2,
        ),
        (
            "US state privacy law",
            r"\bCCPA\b|\bCPRA\b|california consumer privacy|do not sell|sell or share",
            3,
        ),
    ],
    "patient_letter": [
        ("a letter's greeting", r"^dear\b", 2),
        ("patient", r"\bpatient\b", 2),
        ("appointment, diagnosis or clinic", r"appointment|diagnos|clinic", 2),
        (
            "your results or visit",
            r"your (recent )?(test|lab|blood|scan|biopsy|x-ray|results?|appointment|visit|procedure|referral|prescription|treatment)",
            2,
        ),
        ("a letter's closing", r"^(yours )?(sincerely|faithfully|kind regards)", 1),
    ],
    "discharge_summary": [
        ("names itself a discharge summary", r"discharge summary", 6),
        (
            "admission or discharge date",
            r"admission date|discharge date|date of (admission|discharge)",
            3,
        ),
        (
            "discharge diagnosis or medications",
            r"discharge (diagnosis|medications|instructions|condition)",
            3,
        ),
        ("hospital course", r"hospital course|chief complaint|history of present illness", 3),
        ("admitted or discharged", r"\b(was )?(admitted|discharged) (on|to|from|home)\b", 2),
    ],
    "email": [
        ("an email's From: line with an address", r"^\s*from:\s.*@", 5),
        ("an email's To: or Cc: line with an address", r"^\s*(to|cc|bcc):\s.*@", 3),
        ("an email's Sent: line", r"^\s*(sent|date):\s", 1),
        ("an email's Subject: line", r"^\s*subject:\s", 1),
        ("a reply or forward", r"^\s*(re|fw|fwd):\s", 2),
    ],
    "memo": [
        ("names itself a memo", r"^\s*(memo|memorandum)\b", 5),
        ("a memo's To: line", r"^\s*to:\s[^@\n]*$", 2),
        ("a memo's From: line", r"^\s*from:\s[^@\n]*$", 2),
        ("a memo's Subject: or Re: line", r"^\s*(subject|re):\s", 2),
    ],
    "marketing": [
        ("unsubscribe", r"unsubscribe", 3),
        ("a newsletter or promotion", r"newsletter|promo(tion)? code|coupon|\bsale\b", 3),
        ("free", r"\bfree\b", 1),
        (
            "an offer",
            r"limited[- ]time|special offer|% off|sign up today|discount|free (gift|trial|screening|check)",
            3,
        ),
        (
            "a call to action",
            r"(register|sign up|book|shop|join us|reserve your|learn more|claim) (now|today|here|at)",
            2,
        ),
        (
            "an invitation",
            r"invites? (you|everyone)|don't miss|join us for|register (at|now|today|online|for)|rsvp",
            2,
        ),
    ],
    "deidentified_extract": [
        (
            "de-identified or anonymised",
            r"de-?identified|anonymi[sz]ed|pseudonymi[sz]ed|limited data set",
            4,
        ),
        (
            "a de-identified extract",
            r"(de-?identified|anonymi[sz]ed|pseudonymi[sz]ed) (extract|data ?set|export|summary|records|table|file)",
            3,
        ),
        (
            "a research extract or data set",
            r"research (extract|dataset|data set)|data extract|case series|cohort|registry",
            3,
        ),
        ("comma-separated rows", r"^[\w ]+(,[\w ]+){4,}$", 2),
        ("table rows", r"^[^|\n]*(\|[^|\n]*){4,}$|^[^\t\n]*(\t[^\t\n]*){4,}$", 1),
        ("aggregated ages or year-only dates", r"ages? (over|above) 89|year only|aggregated", 2),
        ("age bands", r"\b[1-8]0-[1-8]9\b", 1),
    ],
    "authorization_form": [
        (
            "names itself an authorization",
            r"authori[sz]ation (form|for (the )?(use|release|disclosure))",
            6,
        ),
        (
            "permission to share records",
            r"permission to (share|release|disclose|send)|(i|we) (give|grant) (my |our )?permission|release of (medical |health )?(records|information)",
            3,
        ),
        (
            "expiry of the authorization",
            r"expiration date|this authori[sz]ation (expires|will expire|ends)",
            3,
        ),
        ("I authorize", r"\bi,? .{0,60}\bauthori[sz]e\b|\bi (hereby )?authori[sz]e\b", 4),
        (
            "revoking the authorization",
            r"revoke (this|my) (authori[sz]ation|permission|consent)|revocation",
            3,
        ),
        ("a signature line", r"signature( of)?|signed:|^\s*sign(ed)? here", 2),
        ("redisclosure", r"re-?disclos", 3),
    ],
    "financial_promotion": [
        ("risk warning", r"capital (is )?at risk|past performance", 5),
        (
            "a fund or shares",
            r"\b(mutual|bond|growth|income|index|investment|equity) funds?\b|\bfund'?s? (shares|manager|objective)|\b(ISA|401\(k\)|IRA)\b",
            3,
        ),
        ("yields and returns", r"\b(yield|dividends?|returns?|portfolio|savings rates?)\b", 1),
        ("investment", r"\binvest(ment|ing|ors?)?\b", 2),
        ("interest rate", r"\bAPR\b|interest rate|\bAER\b|returns? of \d", 2),
    ],
    "cookie_notice": [
        (
            "names itself a cookie notice",
            r"cookie (policy|notice|banner|preferences|settings|statement|information|declaration)|^\W*(our |about )?cookies\b",
            6,
        ),
        (
            "says it uses cookies",
            r"(we|site|website|app) uses? cookies|cookies? (are|is) (small|a small) (text )?files?",
            3,
        ),
        (
            "analytics or tracking tools",
            r"google analytics|hotjar|facebook pixel|meta pixel|tracking pixels?",
            2,
        ),
        (
            "kinds of cookies",
            r"(essential|analytics?|necessary|functional|advertising|marketing|performance) cookies",
            3,
        ),
        (
            "accepting or rejecting cookies",
            r"(accept|reject|decline|manage|block) (all |non-essential )?cookies",
            3,
        ),
    ],
    "release_note": [
        ("names itself release notes or a changelog", r"release notes?|changelog", 5),
        ("a version number", r"\bv?\d+\.\d+\.\d+\b", 1),
        (
            "fixes and features",
            r"bug fix|\bfixed\b|new features?|breaking changes?|deprecated|improvements",
            2,
        ),
    ],
    "research_protocol": [
        (
            "names itself a study protocol",
            r"(study|research|clinical trial) protocol|protocol (number|version|title)|^\W*protocol\b",
            6,
        ),
        (
            "a sponsor or study site",
            r"^\W*(sponsor|study site|site)\W*:|\bsponsor(ed)? (of|by) the study",
            2,
        ),
        (
            "ethics review",
            r"\bIRB\b|institutional review board|ethics committee|research ethics",
            3,
        ),
        ("eligibility criteria", r"inclusion criteria|exclusion criteria|eligibility criteria", 3),
        (
            "study design",
            r"principal investigator|study (design|population|procedures|objectives?)|primary (end ?point|outcome)",
            3,
        ),
        ("participants will", r"(participants?|subjects?) will be", 2),
    ],
}
# One RE2 set answers "which signals occur anywhere" in a single pass over the text (36
# separate searches cost ~4.5 ms per document; the set ~0.1 ms).
_SIGNAL_LIST = [(t, label, w, p) for t, sigs in _SIGNALS.items() for label, p, w in sigs]
assert {t for t, *_ in _SIGNAL_LIST} <= set(DOC_TYPES)
#: how much a file name naming the type counts ("privacy-notice.md")
NAME_WEIGHT = 4
HEAD_CHARS = 20_000


def _build_set() -> re2.Set:
    opts = re2.Options()
    opts.log_errors = False
    opts.case_sensitive = False
    opts.posix_syntax = True  # with one_line off: ^ and $ match at line breaks, as re.MULTILINE
    opts.perl_classes = True
    opts.word_boundary = True
    opts.one_line = False
    rs = re2.Set.SearchSet(opts)
    for *_, pattern in _SIGNAL_LIST:
        rs.Add(pattern)
    rs.Compile()
    return rs


_SET = _build_set()

#: the best type must score at least this, and beat the runner-up by this margin.
MIN_SCORE = 5
MARGIN = 2


@dataclass(frozen=True)
class TypeGuess:
    """What inference made of a document: the type (or None), how sure, and why."""

    doc_type: str | None
    confidence: float
    #: every type with a signal, best first: (type, score)
    scores: list[tuple[str, int]] = field(default_factory=list)
    #: the signals found for each type (the words of :data:`_SIGNALS`)
    signals: dict[str, list[str]] = field(default_factory=dict)

    def likely(self, n: int = 3) -> list[str]:
        return [t for t, _ in self.scores[:n]]

    def explain(self) -> str:
        """One line: the decision and the signals behind the leading types."""
        if not self.scores:
            return "no signal of any document type"
        parts = []
        for t, s in self.scores[:3]:
            parts.append(f"{t} {s} ({'; '.join(self.signals.get(t, []))})")
        verdict = (
            f"{self.doc_type} (confidence {self.confidence:.2f})"
            if self.doc_type
            else f"undecided (needs a score of {MIN_SCORE} and a lead of {MARGIN})"
        )
        return f"{verdict}: " + ", ".join(parts)


def explain_doc_type(text: str, name: str = "") -> TypeGuess:
    head = text[:HEAD_CHARS]
    scores: dict[str, int] = {}
    signals: dict[str, list[str]] = {}
    for i in sorted(_SET.Match(head.encode("utf-8")) or ()):
        doc_type, label, weight, _ = _SIGNAL_LIST[i]
        scores[doc_type] = scores.get(doc_type, 0) + weight
        signals.setdefault(doc_type, []).append(label)
    lowered = name.lower()
    for doc_type in _SIGNALS:
        if doc_type.replace("_", "-") in lowered or doc_type in lowered:
            scores[doc_type] = scores.get(doc_type, 0) + NAME_WEIGHT
            signals.setdefault(doc_type, []).append("file name")
    if not scores:
        return TypeGuess(None, 0.0)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    best, score = ranked[0]
    runner = ranked[1][1] if len(ranked) > 1 else 0
    decided = score >= MIN_SCORE and score - runner >= MARGIN
    # how far past both bars the leader is: 0 at the bars, 1 at twice the score and a lead of
    # half its score. A heuristic, not a probability; it orders guesses and is shown as such.
    strength = min(1.0, score / (2 * MIN_SCORE)) * min(1.0, (score - runner) / max(score / 2, 1))
    return TypeGuess(
        best if decided else None, round(strength if decided else 0.0, 2), ranked, signals
    )


def infer_doc_type(text: str, name: str = "") -> str | None:
    return explain_doc_type(text, name).doc_type
