"""Speed of the deterministic layer: the multi-pattern scanner against Python `re` and Presidio."""

from __future__ import annotations

import random
import string

# ---------------------------------------------------------------------------------------------
# A deterministic corpus: mixed prose with PII, PHI, secrets and disclosure wording at a known
# rate, plus the Unicode that trips ASCII-only engines (accents glued to values, non-ASCII
# digits, emoji, CJK, Turkish dotted/dotless i, the Kelvin sign, non-breaking spaces).

_WORDS = (  # noqa: SIM905 - a word list reads better as prose
    "the we our you your data information personal health patient record notice policy service "
    "process use share disclose provide request access right may will must and or of to for in "
    "with by on at from about this that these those each every other any such when where how "
    "account customer member plan benefit claim payment treatment care provider hospital clinic "
    "staff team office report review update contact address email phone number date time year "
    "month week day period law legal basis consent purpose interest security breach incident "
    "system network server database file document copy request complaint authority agency "
    "controller processor officer retain retained keep stored delete deleted retention transfer "
    "country outside union protection privacy practices medical diagnosis insurance coverage"
).split()

_PHRASES = (
    "data controller", "data protection officer", "retention period", "as long as necessary",
    "supervisory authority", "Information Commissioner", "diagnosed with", "file a complaint",
    "will not retaliate", "Office for Civil Rights", "legitimate interests", "right to erasure",
    "this notice describes how medical information about you may be used and disclosed",
    "kept for six years", "we keep your records for 7 years", "Secretary of Health and Human Services",
)

_FIRST = ("James", "Mary", "José", "Zoë", "Łukasz", "Ingrid", "Siobhán", "Ahmed", "Mei", "Olga",
          "Chloé", "Renée", "Björn", "Ana", "Noah", "Priya", "Kenji", "Émile", "Fatima", "Liam")
_LAST = ("Smith", "García", "Müller", "O'Brien", "Nguyen", "Kowalski", "Ødegaard", "Dubois",
         "Rossi", "Johnson", "Álvarez", "Yılmaz", "Schröder", "Okafor", "Tanaka", "Brown")
_DOMAINS = ("example.com", "acme.example", "mail.example.org", "clinic.example.net")
_UNICODE = (
    "Привет мир, ", "数据保护说明。", "個人情報の取り扱いについて。", "🙂 ", "✅ done. ",
    "٠١٢-٣٤-٥٦٧٨ ", "１２３-４５-６７８９ ", "DATA PROTECTİON OFFİCER ", "prıvacy notıce ",
    "ſupervisory authority ", "Keep records ", "data\u00a0controller ", "naïve café ",
    "İstanbul ofisi ", "straße ", "ﬁle a complaint ",
)


def _luhn_complete(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def _iban(rng: random.Random) -> str:
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
        rng.choice(string.digits) for _ in range(14))
    num = int("".join(str(int(c, 36)) for c in bban + "GB00"))
    iban = f"GB{98 - num % 97:02d}{bban}"
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


def _entity(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    d = rng.randrange
    kind = d(22)
    if kind == 0:
        return f"{first.lower()}.{last.lower()}@{rng.choice(_DOMAINS)}".replace("'", "")
    if kind == 1:
        return f"({d(201, 990)}) {d(200, 999)}-{d(1000, 9999)}"
    if kind == 2:
        return f"{d(201, 990)}-{d(200, 999)}-{d(1000, 9999)}"
    if kind == 3:
        return f"SSN {d(1, 665):03d}-{d(1, 99):02d}-{d(1, 9999):04d}"
    if kind == 4:
        return "card " + _luhn_complete("4" + "".join(str(d(10)) for _ in range(14)))
    if kind == 5:
        return "IBAN " + _iban(rng)
    if kind == 6:
        return f"on {rng.choice(('March', 'June', 'Sept.', 'December'))} {d(1, 29)}, {d(1990, 2030)}"
    if kind == 7:
        return f"DOB: {d(1, 13):02d}/{d(1, 29):02d}/{d(1930, 2010)}"
    if kind == 8:
        return f"MRN: {d(100000, 9999999)}"
    if kind == 9:
        return f"Dr. {first} {last}"
    if kind == 10:
        return f"Patient: {first} {last}"
    if kind == 11:
        return f"{d(1, 255)}.{d(256)}.{d(256)}.{d(1, 255)}"
    if kind == 12:
        return f"https://www.{rng.choice(_DOMAINS)}/{last.lower()}/{d(1000)}".replace("'", "")
    if kind == 13:
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits)
                                for _ in range(16))
    if kind == 14:
        return "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    if kind == 15:
        return f'password = "{rng.choice(_LAST)}{d(10, 99)}!x"'
    if kind == 16:
        return f"{first}{d(100, 999)}-{d(10, 99)}-{d(1000, 9999)}"  # glued: not an SSN
    if kind == 17:
        return f"📞 {d(201, 990)}-{d(200, 999)}-{d(1000, 9999)}"
    if kind == 18:
        return f"电话{d(201, 990)}-{d(200, 999)}-{d(1000, 9999)}"
    if kind == 19:
        return f"aged {d(90, 105)} years old"
    if kind == 20:
        return f"NPI {_luhn_complete('80840' + '1' + ''.join(str(d(10)) for _ in range(8)))[5:]}"
    return f"{first} {last} <{first.lower()}@{rng.choice(_DOMAINS)}>"


def make_text(size: int, seed: int = 7, pii_rate: float = 0.3) -> tuple[str, int]:
    """About ``size`` UTF-8 bytes of prose; each sentence carries an entity with probability
    ``pii_rate``. Returns the text and how many entities were inserted."""
    rng = random.Random(seed)
    parts: list[str] = []
    n = 0
    entities = 0
    while n < size:
        words = [rng.choice(_WORDS) for _ in range(rng.randrange(6, 16))]
        if rng.random() < 0.25:
            words.insert(rng.randrange(len(words)), rng.choice(_PHRASES))
        if rng.random() < pii_rate:
            words.insert(rng.randrange(len(words)), _entity(rng))
            entities += 1
        if rng.random() < 0.08:
            words.insert(rng.randrange(len(words)), rng.choice(_UNICODE))
        sentence = " ".join(words)
        sentence = sentence[0].upper() + sentence[1:] + rng.choice((". ", ". ", "! ", ".\n", ".\n\n"))
        if rng.random() < 0.02:
            sentence = "\n" + rng.choice(("## ", "")) + rng.choice(
                ("YOUR RIGHTS", "How we use your data", "Retention", "Contact us")) + "\n\n" + sentence
        parts.append(sentence)
        n += len(sentence.encode())
    return "".join(parts), entities
