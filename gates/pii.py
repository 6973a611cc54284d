"""`pii(...)`: PII/PHI detectors, named after Presidio's entity types where they coincide."""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import re2

from gates import names, scan
from gates.base import Detector, DetectorCheck, Match, keep_longest
from gates.lazyre import LazyRegex, lazy_re

_OPTS = re2.Options()
_OPTS.log_errors = False

Finder = Callable[[str], list[Match]]
Validator = Callable[[str], bool]


def _rx(pattern: str) -> LazyRegex:
    # compiled on first use: importing gates.pii compiles none of its ~130 patterns
    return LazyRegex(pattern, _OPTS)


# ---------------------------------------------------------------------------------------------
# Validators and display helpers


def mask(value: str, keep: int = 2) -> str:
    """Show the shape of a value without revealing it: ``jo***@***.com`` style."""
    if len(value) <= keep * 2:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - keep * 2) + value[-keep:]


def _digits(value: str) -> str:
    return "".join(c for c in value if "0" <= c <= "9")


def luhn_ok(value: str) -> bool:
    digits = [int(c) for c in _digits(value)]
    if len(digits) < 12:
        return False
    return _luhn_sum(digits) % 10 == 0


def luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload + digit`` pass the Luhn check (cards, NPIs)."""
    return str((10 - _luhn_sum([int(c) for c in payload] + [0]) % 10) % 10)


def _luhn_sum(digits: Sequence[int]) -> int:
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def ssn_ok(value: str) -> bool:
    digits = _digits(value)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area >= "900" or group == "00" or serial == "0000":
        return False
    # Runs of one digit and the sequential placeholder are what people type as examples.
    return len(set(digits)) > 1 and digits != "123456789"


# Card brands by IIN prefix: a Luhn-valid 16-digit order number is a false positive we avoid by
# also requiring a prefix some issuer actually uses.
_CARD_PREFIX = _rx(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|6011|64[4-9]|65|35|62)")


_CARD_GROUPS = {(4, 6, 5), (4, 6, 4)}


def card_ok(value: str) -> bool:
    digits = _digits(value)
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
        return False
    seps = {c for c in value if not c.isdigit()}
    if len(seps) > 1 or _CARD_PREFIX.search(digits) is None:
        return False
    # printed cards group 4-4-4-4(-3), Amex/Diners 4-6-5 / 4-6-4; "+49 1512 3452919" is a phone
    groups = tuple(len(g) for g in re.split(r"[ -]", value)) if seps else None
    return groups is None or groups in _CARD_GROUPS or all(n == 4 for n in groups[:-1])


_IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SC": 31,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}


def iban_ok(value: str) -> bool:
    """ISO 13616: known country, that country's length, and mod-97 of the rearranged number == 1."""
    compact = "".join(c for c in value if c.isalnum()).upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def nhs_ok(value: str) -> bool:
    """NHS number: 10 digits, weights 10..2 on the first nine, check digit = 11 - sum mod 11."""
    digits = [int(c) for c in _digits(value)]
    if len(digits) != 10 or len(set(digits)) == 1:
        return False
    check = 11 - sum(d * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    if check == 11:
        check = 0
    return check != 10 and check == digits[9]


def npi_ok(value: str) -> bool:
    """NPI: 10 digits starting 1 or 2, Luhn-valid once the 80840 card-issuer prefix is added."""
    digits = _digits(value)
    if len(digits) != 10 or digits[0] not in "12":
        return False
    return _luhn_sum([int(c) for c in "80840" + digits]) % 10 == 0


def dea_ok(value: str) -> bool:
    """DEA registration: 2 letters + 7 digits; (d1+d3+d5) + 2*(d2+d4+d6) ends in d7."""
    if len(value) != 9 or not value[2:].isdigit():
        return False
    d = [int(c) for c in value[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


_VIN_VALUES = {
    **{str(i): i for i in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_ok(value: str) -> bool:
    """ISO 3779 / 49 CFR 565 check digit (position 9). Only North American VINs must carry one."""
    if len(value) != 17 or not any(c.isalpha() for c in value):
        return False
    try:
        total = sum(_VIN_VALUES[c] * w for c, w in zip(value, _VIN_WEIGHTS, strict=True))
    except KeyError:
        return False
    check = total % 11
    return value[8] == ("X" if check == 10 else str(check))


def aba_ok(value: str) -> bool:
    """ABA routing number: 9 digits, 3-7-1 weighted sum divisible by 10."""
    d = [int(c) for c in _digits(value)]
    if len(d) != 9 or len(set(d)) == 1:
        return False
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


_NINO_BAD_PREFIX = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def nino_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    return len(compact) == 9 and compact[:2] not in _NINO_BAD_PREFIX


def nanp_ok(value: str) -> bool:
    """North American numbering plan: area code and exchange start 2-9; not N11 service codes."""
    d = _digits(value.split("x")[0].split("e")[0])  # not the extension
    if len(d) == 11 and d[0] == "1":
        d = d[1:]
    if len(d) != 10:
        return False
    return d[0] >= "2" and d[3] >= "2" and d[1:3] != "11" and d[4:6] != "11"


def _ipv6_ok(value: str) -> bool:
    if value.count(":") < 2 or not any(c not in ":" for c in value):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


_NUMERIC_DATE = _rx(r"^(\d{1,4})[/.-](\d{1,2})[/.-](\d{2,4})")


def _date_ok(value: str) -> bool:
    """Numeric dates: one of the first two fields is a month, the other a plausible day."""
    m = _NUMERIC_DATE.search(value)
    if m is None:
        return True  # written-out month forms are validated by the pattern itself
    if len(m.group(1)) == 4:  # ISO y-m-d
        y, mo, d = m.group(1), m.group(2), m.group(3)
    else:
        a, b, y = m.group(1), m.group(2), m.group(3)
        mo, d = (a, b) if int(a) <= 12 else (b, a)
    if len(y) == 4 and not 1800 <= int(y) <= 2199:
        return False
    return 1 <= int(mo) <= 12 and 1 <= int(d) <= 31


# ---------------------------------------------------------------------------------------------
# Boundaries and the generic finder


def _glued(ch: str) -> bool:
    """Whether ``ch`` would make a value part of a longer word. re2's ``\\b`` is ASCII-only, so
    ``é123-45-6789`` looks bounded to it; we re-check with Unicode. Scripts written without spaces
    (CJK, kana, Hangul and later blocks) do not glue: ``电话555-123-4567`` is still a number."""
    return ch.isalnum() and ord(ch) < 0x2E80


def _free(text: str, start: int, end: int) -> bool:
    return not ((start > 0 and _glued(text[start - 1])) or (end < len(text) and _glued(text[end])))


class _Keywords:
    """Where context keywords end in a text, so a value can ask 'is a keyword just before me?'
    in O(log k) instead of rescanning the text."""

    def __init__(self, pattern: str) -> None:
        self.rx = _rx("(?i)" + pattern)

    def ends(self, text: str) -> list[int]:
        return [e for _, e in scan.spans(self.rx, text)]

    @staticmethod
    def near(ends: list[int], start: int, window: int) -> bool:
        i = bisect.bisect_right(ends, start) - 1
        return i >= 0 and start - ends[i] <= window


class _PatternSet:
    """Which of some patterns match a text anywhere, in one RE2 Set pass (compiled on first
    use). Entry 0 is the empty pattern, which every text matches: a pass that stops part-way
    (the DFA out of memory) does not report it, and then every pattern counts as present."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = patterns
        self._set: Any = None
        self._lock = threading.Lock()

    def _compiled(self) -> Any:
        with self._lock:
            if self._set is None:
                rs = re2.Set.SearchSet(_OPTS)
                for p in ["", *self.patterns]:
                    rs.Add(p)
                rs.Compile()
                self._set = rs
            return self._set

    def present(self, text: str) -> list[int]:
        """The indices of the patterns that match somewhere in ``text``, in order."""
        rs = self._set if self._set is not None else self._compiled()
        hits = rs.Match(text) or []
        if 0 not in hits:
            return list(range(len(self.patterns)))
        return sorted(i - 1 for i in hits if i)


def _finder(
    name: str,
    patterns: str | Sequence[str],
    *,
    validate: Validator | None = None,
    score: float = 0.9,
    context: str | None = None,
    window: int = 40,
    required: bool = True,
    context_score: float | None = None,
    display: Callable[[str], str] = mask,
    boundary: bool = True,
    one_pass: bool = False,
) -> Finder:
    """Build a finder from value patterns. With ``context``, a keyword must end at most
    ``window`` characters before the value (``required``), or it only raises the score.
    With ``one_pass``, an RE2 Set first says which patterns match the text at all, and only
    those run (PERSON's nine cue patterns: a document holds one or two of their cues, and
    the one Set pass cost a fifth of the nine passes on short documents)."""
    rxs = [_rx(p) for p in ([patterns] if isinstance(patterns, str) else patterns)]
    kw = _Keywords(context) if context else None
    which = _PatternSet([rx.pattern for rx in rxs]) if one_pass and len(rxs) > 1 else None

    def finder(text: str) -> list[Match]:
        ends: list[int] = []
        if kw is not None:
            ends = kw.ends(text)
            if required and not ends:
                return []  # the cheap exit that keeps context detectors off most documents
        found: list[Match] = []
        for rx in rxs if which is None else [rxs[i] for i in which.present(text)]:
            last_end = -(10**9)
            for s, e in scan.value_spans(rx, text):  # the document's bytes, encoded once
                if e <= s or (boundary and not _free(text, s, e)):
                    continue
                value = text[s:e]
                if validate is not None and not validate(value):
                    continue
                sc = score
                if kw is not None:
                    # a list after one keyword ("MRNs 123456, 234567") chains from the last value
                    close = _Keywords.near(ends, s, window) or s - last_end <= 5
                    if required and not close:
                        continue
                    if close and context_score is not None:
                        sc = context_score
                found.append(Match(s, e, detail=name, score=sc, display=display(value)))
                last_end = e
        return keep_longest(found) if len(rxs) > 1 else found

    values = tuple((rx.pattern,) for rx in rxs)
    return scan.with_triggers(
        finder, scan.require(values, kw.rx.pattern) if kw is not None and required else values
    )


def _in_context(base: Finder, name: str, context: str, window: int, score: float) -> Finder:
    """Re-label another detector's match when a keyword precedes it (DOB from dates, fax from
    phone numbers). Each keyword claims only the first value after it: in "DOB: 1/2/1950,
    admitted 3/4/2024" the admission date stays a plain date."""
    kw = _Keywords(context)

    def finder(text: str) -> list[Match]:
        ends = kw.ends(text)
        if not ends:
            return []
        claimed: set[int] = set()
        out: list[Match] = []
        for m in base(text):
            i = bisect.bisect_right(ends, m.start) - 1
            if i < 0 or i in claimed or m.start - ends[i] > window:
                continue
            claimed.add(i)
            out.append(Match(m.start, m.end, detail=name, score=score, display=m.display))
        return out

    return scan.with_triggers(finder, scan.require(getattr(base, "triggers", None), kw.rx.pattern))


def _person(cued: Finder) -> Finder:
    """Names after a cue, names the lists and positions score high enough (:mod:`gates.names`),
    and the later one-word mentions of either."""

    def finder(text: str) -> list[Match]:
        found = keep_longest([*cued(text), *names.find_names(text)])
        # keep_longest of a list it returned is that list: merge only what is new
        more = names.cell_names(text, found)
        if more:
            found = keep_longest(found + more)
        more = names.mentions(text, found)
        return keep_longest(found + more) if more else found

    # every candidate holds a capital followed by a lowercase letter somewhere
    return scan.with_triggers(finder, ((r"\p{Lu}\p{Ll}",),))


def _union(*finders: Finder) -> Finder:
    def finder(text: str) -> list[Match]:
        out: list[Match] = []
        for f in finders:
            out.extend(f(text))
        return keep_longest(out)

    return scan.with_triggers(finder, scan.union_triggers(*finders))


# ---------------------------------------------------------------------------------------------
# Patterns

# A capitalised name word: Smith, O'Brien, McDonald, Müller, Smith-Jones.
_NW = r"\p{Lu}(?:['’]\p{Lu})?\p{Ll}[\p{L}'’]*(?:-\p{Lu}\p{Ll}+)?"
_FULLNAME = _NW + r"(?: \p{Lu}\.)?(?: " + _NW + r"){0,2}"
_TITLE = r"(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Rev|Sir|Dame|Nurse)"
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_TIME = r"(?:,?[ T](?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?: ?[AaPp]\.?[Mm]\.?)?)?"
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|"
    "NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR|GU|VI|"
    "AS|FM|MH|MP|PW|AA|AE|AP"
)
_STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|"
    "District of Columbia|Florida|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|"
    "Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|"
    "Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
    "New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|"
    "Pennsylvania|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|"
    "Vermont|Virginia|Washington|West Virginia|Wisconsin|Wyoming|Puerto Rico|Guam"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# Words that follow a name keyword in prose but are not names ("Name: Please print").
_NOT_NAMES = {
    "The",
    "This",
    "That",
    "Please",
    "Patient",
    "Name",
    "Date",
    "Thank",
    "Thanks",
    "Dear",
    "Sir",
    "Madam",
    "All",
    "Team",
    "Customer",
    "Member",
    "Sincerely",
    "Regards",
    "Unknown",
    "None",
    "Not",
    "Your",
    "Our",
    "We",
    "To",
    "From",
    "Re",
    "Subject",
    "Hello",
    "Hi",
    "Attached",
    "Yours",
    "Best",
}


# Words of team, department and organisation names that sign-offs and greetings also address
# ("Regards, Human Resources", "Dear Valued Customer"); none is a common given or family name.
_ORG_WORDS = {
    "Customer",
    "Customers",
    "Valued",
    "Team",
    "Management",
    "Resources",
    "Human",
    "Services",
    "Service",
    "Support",
    "Success",
    "Informatics",
    "Clinical",
    "Health",
    "Healthcare",
    "Partners",
    "Department",
    "Office",
    "Group",
    "Center",
    "Centre",
    "Hospital",
    "Clinic",
    "Billing",
    "Facilities",
    "Staff",
    "Member",
    "Members",
    "Portal",
    "Review",
    "Committee",
    "Board",
    "Company",
    "Corporation",
    "Inc",
    "Ltd",
    "World",
    "Care",
    "Medical",
    "Insurance",
    "Operations",
    "Security",
    "Compliance",
    "Privacy",
    "Records",
    "Information",
    "Systems",
    "Technology",
    "Marketing",
    "Sales",
    "Finance",
    "Accounts",
    "Payroll",
    "Admissions",
    "Pharmacy",
    "Nursing",
    "Radiology",
    "Laboratory",
    "Administration",
    "University",
    "School",
    "Foundation",
    "Trust",
    "Society",
    "Association",
    "Council",
    "Agency",
    "Authority",
    "Bank",
    "Desk",
    "Helpdesk",
    "Everyone",
    "Friends",
    "Colleagues",
    "Madam",
    "Manager",
    "Director",
    "Officer",
    "Editor",
    "Applicant",
    "Candidate",
    "Recruiting",
    "Legal",
    "Engineering",
    "Product",
    "Research",
    "Solutions",
    "Global",
    "International",
}


def _name_ok(value: str) -> bool:
    words = value.replace(".", "").split(" ")
    return words[0] not in _NOT_NAMES and not any(w in _ORG_WORDS for w in words)


def _ident_ok(min_digits: int) -> Validator:
    def ok(value: str) -> bool:
        return len(_digits(value)) >= min_digits

    return ok


def _phone_uk_ok(value: str) -> bool:
    d = _digits(value)
    d = d[2:] if value.lstrip("(").startswith("+44") else d[1:]
    if d.startswith("0"):  # the (0) trunk prefix written after +44
        d = d[1:]
    return len(d) in (9, 10) and d[0] in "123789"


def _phone_intl_ok(value: str) -> bool:
    return 8 <= len(_digits(value)) <= 15


# A run of digits as phone numbers are written: "+49 30 123456", "(415) 555-0132 ext. 12",
# "0044 20 7946 0958", "+1.212.867.5309". phonenumbers (libphonenumber's metadata) decides
# which are numbers some region actually issues.
_PHONE_CANDIDATE = (
    r"(?:\+\(?|\(|\b)\d[\d \-.()\x{a0}]{5,22}\d"
    r"(?:[ \t]?(?:ext\.?|x|#)[ \t]?\d{1,5})?"
)
#: regions whose national formats (no +country code) are accepted; international numbers are
#: accepted from every region libphonenumber knows
PHONE_REGIONS = ("US", "GB")
#: the national trunk prefix of the regions in PHONE_REGIONS that have one
_TRUNK = {"GB": "0", "DE": "0", "FR": "0", "AU": "0", "IN": "0"}
_NOT_PHONE = _rx(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|"
    r"\d{1,3}(?:\.\d{1,3}){3})$"
)


_EXTENSION = lazy_re(r"[ \t]?(?:ext\.?|x|#)")
_NANP_DOTS = _rx(r"^(?:1\.)?\d{3}\.\d{3}\.\d{4}\b")


def _national_ok(value: str, region: str) -> bool:
    """A national-format number of ``region``: NANP's area-code and exchange rules, the UK's
    number lengths and leading digits. libphonenumber adds nothing here that we keep: a
    document quoting a number from the ranges set aside for fiction (555-01xx, Ofcom's
    07700 900xxx) still names a phone number, and those are all it would reject."""
    if region in ("US", "CA"):
        return nanp_ok(value)
    if region == "GB":
        return _phone_uk_ok(value)
    return False


@functools.lru_cache(maxsize=4096)
def _phone_match(value: str) -> bool:
    """A phone number: international (``+``/``00``) numbers that libphonenumber's metadata
    says some region issues, national ones in the shape of a region in PHONE_REGIONS."""
    import phonenumbers

    if _NOT_PHONE.search(value) or len(_digits(value)) < 7:
        return False
    head = value.lstrip("(")
    number = _EXTENSION.split(value)[0]
    if not (head.startswith("+") or head.startswith("00")):
        # national formats: dots only in the NANP 3.3.4 shape (not "Build 1.27.863.5177"),
        # grouped (a bare "4839201847" is an order or account number far more often), and
        # written with the trunk prefix where the region has one ("020 7946 0958")
        if number.isdigit() or ("." in number and not _NANP_DOTS.search(number)):
            return False
        return any(
            _national_ok(number, r)
            for r in PHONE_REGIONS
            if _TRUNK.get(r, "") == head[:1] or (r not in _TRUNK and head[:1] != "0")
        )
    if not 8 <= len(_digits(number)) <= 17:
        return False
    candidate = "+" + value.lstrip("(+0") if head.startswith("00") else value
    try:
        num = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        return False
    if phonenumbers.is_valid_number(num):
        return True
    # +1 and +44 numbers from the fiction ranges, as above
    return (num.country_code == 1 and nanp_ok(value)) or (
        num.country_code == 44 and _phone_uk_ok(value)
    )


_phone = _finder("PHONE_NUMBER", _PHONE_CANDIDATE, validate=_phone_match, score=0.8)

# Dates (with their times) as people write them. A year alone ("in 2019", "FY2024", "2019-2020")
# never matches: Safe Harbor allows it.
_WD = (
    r"(?:Mon(?:day)?|Tue(?:s|sday)?|Wed(?:nesday)?|Thu(?:r|rs|rsday)?|Fri(?:day)?|"
    r"Sat(?:urday)?|Sun(?:day)?)\.?,? "
)
_ORD = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|2[01]\d\d)"
_TZ = r"(?: ?(?:UTC|GMT|Z|[ECMP][SD]T|CES?T|BST|IST|AEST|JST|[+-](?:0\d|1[0-4]):?[0-5]\d))"
_AMPM = r"(?: ?[AaPp]\.?[Mm]\b\.?)"
_CLOCK = r"(?:(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?" + _AMPM + "?" + _TZ + "?)"
_AT_TIME = r"(?:(?:,? (?:at |@ ?)?|T)" + _CLOCK + r")?"
_DASH = r" ?[-–—] ?"
_date = _finder(
    "DATE_TIME",
    [
        # ISO and year-first numeric, optionally with a time: 2024-05-03, 2024/05/03T10:00:00Z
        r"\b" + _YEAR + r"-\d{2}-\d{2}" + _AT_TIME,
        r"\b" + _YEAR + r"/\d{1,2}/\d{1,2}\b" + _AT_TIME,
        # US/UK numeric: 5/3/2024, 05/03/24, 3.5.2024, 03-05-2024
        r"\b\d{1,2}/\d{1,2}/(?:\d{4}|\d{2})\b" + _AT_TIME,
        r"\b\d{1,2}[.-]\d{1,2}[.-]" + _YEAR + r"\b" + _AT_TIME,
        # [Weekday,] Month day[st][-day][, year] [at time]: May 3, May 3rd, 2024, Tue Jun 4
        r"\b(?:"
        + _WD
        + r")?"
        + _MONTH
        + r"\.? "
        + _ORD
        + r"(?:"
        + _DASH
        + r"(?:"
        + _MONTH
        + r"\.? )?"
        + _ORD
        + r")?(?:,? "
        + _YEAR
        + r")?\b"
        + _AT_TIME,
        # [Weekday] [the] day[st] [of] Month[,] [year]: 3 May 2024, Friday 28th September,
        # the 7th of December, 17-19 Oct 2024
        r"\b(?:"
        + _WD
        + r")?(?:the )?"
        + _ORD
        + r"(?:"
        + _DASH
        + _ORD
        + r")? (?:of )?"
        + _MONTH
        + r"\b\.?(?:,? "
        + _YEAR
        + r"\b)?"
        + _AT_TIME,
        # Month year and Mon-yy: June 2023, Sep-63, Aug.-90
        r"\b" + _MONTH + r"\.?,? " + _YEAR + r"\b",
        r"\b" + _MONTH + r"\.?-\d{2}\b",
        # 23-MAY-1979 (laboratory and pharmacy systems)
        r"\b\d{1,2}-(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)-(?:"
        + _YEAR
        + r"|\d{2})\b",
        # A time of day alone ("8am-6pm", "at 10 am") is not a date element: it is part of a
        # DATE_TIME only when attached to a date (above).
    ],
    validate=_date_ok,
    score=0.85,
)

_context_ident = r"[ \t]*(?:no\.?|number|num|#|id)?[ \t]*[:#=]?[ \t]*"


# What may follow a context keyword before the value: "MRN no.: ", "Account #", "Policy ID -".
_KW_TAIL = r"(?:[ \t]*(?:no\.?|nos\.?|num(?:ber)?s?|#|ids?|codes?))?(?:[ \t]*[:#=.-])?"


def _ctx(
    name: str,
    description: str,
    keywords: str,
    value: str,
    *,
    window: int = 12,
    validate: Validator | None = None,
    score: float = 0.85,
) -> Detector:
    return Detector(
        name,
        description,
        _finder(
            name,
            r"\b" + value + r"\b",
            validate=validate,
            score=score,
            context=r"(?:" + keywords + r")" + _KW_TAIL,
            window=window,
        ),
    )


# A name after a cue: a title, a "Patient:"-style label, a greeting, a sign-off, a signature
# block, an address header, a family member, a "Re:" line, a credential.
_CUED_PATTERNS = [
    r"\b" + _TITLE + r"\.? (" + _FULLNAME + r")",
    r"(?i:\b(?:patient(?: name)?|name|pt|to|from|cc|attn|signed|signature|"
    r"physician|provider|attending|guarantor|emergency contact|next of kin|"
    r"spouse|guardian|prepared by|reviewed by|approved by|contact|parent|"
    r"insured|subscriber|employee|client|author|witness|policyholder|"
    r"bill to|claimant|applicant|beneficiary|member name|prescriber|"
    r"resident|caregiver|recipient)) ?: ?(?:" + _TITLE + r"\.? )?(" + _FULLNAME + r")",
    r"(?i:\bdear|\bhi|\bhello|\bgood (?:morning|afternoon)) (?:"
    + _TITLE
    + r"\.? )?("
    + _FULLNAME
    + r")[ \t]*[,!:\n]",
    # a sign-off, then a line holding only a name
    r"(?i:sincerely|regards|yours truly|respectfully|best wishes|with thanks|"
    r"thanks|thank you|best|cheers|warmly|yours),?[ \t]*\n[ \t]*(?:"
    + _TITLE
    + r"\.? )?("
    + _FULLNAME
    + r")[ \t]*(?:,|\n|$)",
    # an email signature block ("-- " line) and an address header
    r"\n-- ?\n(" + _FULLNAME + r")",
    r"(" + _FULLNAME + r") <[^<>\s@]+@[^<>\s]+>",
    # family members named in clinical notes: "Daughter Jane Doe", "Wife (...)"
    r"(?i:\b(?:daughter|son|wife|husband|mother|father|sister|brother|"
    r"partner|spouse|niece|nephew|grandson|granddaughter)) \(?(" + _FULLNAME + r")",
    # "Re: Jane Doe, NHS number ..." in clinical letters; a bare "Re:" is a
    # subject line, so an identifier cue must follow the name
    r"(?i:\bre) ?: ?(" + _FULLNAME + r")(?:,| \(| -)[^\n]{0,20}?"
    r"(?i:NHS|DOB|D\.O\.B|MRN|born|date of birth|hospital|patient)",
    # "Jane Doe, MD" at a line end; not "Springfield, MD 20901" (a state)
    r"(" + _NW + r"(?: \p{Lu}\.)?(?: " + _NW + r"){1,2}),? (?:MD|M\.D\.|DO|RN|"
    r"NP|PA-C|PhD|DDS|FNP|LPN|PharmD|MBBS|FRCP)(?:[,;.)]|[ \t]*\n|[ \t]*$)",
]


_DETECTOR_LIST: list[Detector] = [
    Detector(
        "EMAIL_ADDRESS",
        "email address",
        _finder(
            "EMAIL_ADDRESS",
            r"[\p{Latin}\p{Greek}\p{Cyrillic}0-9_%+-][\p{Latin}\p{Greek}\p{Cyrillic}0-9._%+-]*@"
            r"[\p{Latin}\p{Greek}\p{Cyrillic}0-9-]+(?:\.[\p{Latin}\p{Greek}\p{Cyrillic}0-9-]+)*"
            r"\.[A-Za-z]{2,24}",
            score=0.95,
        ),
    ),
    Detector(
        "PHONE_NUMBER", "phone number: US/NANP (valid area code), UK, or +country format", _phone
    ),
    Detector(
        "FAX_NUMBER",
        "a phone number introduced as a fax number",
        _in_context(
            _phone, "FAX_NUMBER", r"\b(?:fax|facsimile)(?: ?(?:no\.?|number|#))?:?|\bf[.:]", 25, 0.9
        ),
    ),
    Detector(
        "US_SSN",
        "US social security number (valid area/group/serial ranges)",
        _finder(
            "US_SSN",
            [r"\b\d{3}-\d{2}-\d{4}\b", r"\b\d{3} \d{2} \d{4}\b"],
            validate=ssn_ok,
            score=0.9,
        ),
    ),
    Detector(
        "CREDIT_CARD",
        "payment card number (issuer prefix + Luhn)",
        _finder("CREDIT_CARD", r"\b\d(?:[ -]?\d){12,18}\b", validate=card_ok, score=0.95),
    ),
    Detector(
        "IBAN_CODE",
        "international bank account number (country length + mod-97)",
        _finder(
            "IBAN_CODE",
            r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
            validate=iban_ok,
            score=0.95,
        ),
    ),
    Detector(
        "IP_ADDRESS",
        "IPv4 or IPv6 address (parsed)",
        _union(
            _finder(
                "IP_ADDRESS",
                r"\b" + _OCTET + r"(?:\." + _OCTET + r"){3}\b",
                validate=lambda v: True,
                score=0.85,
            ),
            _finder(
                "IP_ADDRESS",
                r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}",
                validate=_ipv6_ok,
                score=0.85,
            ),
        ),
    ),
    Detector(
        "URL",
        "web address (http, https, ftp or www.)",
        _finder(
            "URL",
            r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'()\[\]{}]+[^\s<>\"'()\[\]{}.,;:!?]",
            score=0.85,
        ),
    ),
    Detector(
        "DATE_TIME", "calendar date (numeric, ISO or written month), optionally with a time", _date
    ),
    Detector(
        "DATE_OF_BIRTH",
        "a date introduced as a date of birth (DOB, born, birth date)",
        _in_context(
            _date,
            "DATE_OF_BIRTH",
            r"\bD\.?O\.?B\b\.?|date of birth|birth ?date|\bborn\b|birthday",
            25,
            0.95,
        ),
    ),
    Detector(
        "AGE_OVER_89",
        "an age of 90 or more (HIPAA Safe Harbor aggregates these)",
        _finder(
            "AGE_OVER_89",
            [
                r"\b(9\d|1[0-2]\d)(?:[ -]years?[ -]old|[ -]y/?o\b|[ -]yrs?\b| years of age)",
                r"(?i:\bage[d:]?|\bage is) ?(9\d|1[0-2]\d)\b",
            ],
            score=0.9,
        ),
    ),
    Detector(
        "US_ZIP",
        "US ZIP code after a state abbreviation or a ZIP keyword",
        _finder(
            "US_ZIP",
            [
                r"\b(?:" + _STATES + "|" + _STATE_NAMES + r"),? (\d{5}(?:-\d{4})?)\b",
                r"(?i:\bzip(?: ?code)?|\bpostal code)[ \t]*:?[ \t]*(\d{5}(?:-\d{4})?)\b",
            ],
            score=0.9,
        ),
    ),
    _ctx(
        "MRN",
        "medical record number after MRN / medical record / chart keywords",
        r"\bMRNs?\b|medical records?|\bchart\b|\bpatient id\b|hospital (?:no|number)",
        r"[A-Z]{0,3}-?\d{5,10}",
        window=15,
        score=0.9,
    ),
    _ctx(
        "HEALTH_PLAN_ID",
        "health plan / insurance member, subscriber, policy or group id",
        r"member|subscriber|policy|health plan|insurance|\bgroup (?:no|number|#|id)|"
        r"beneficiary|medicare|medicaid|\bMBI\b",
        r"[A-Z0-9][A-Z0-9-]{4,18}[A-Z0-9]",
        window=15,
        validate=_ident_ok(3),
        score=0.85,
    ),
    Detector(
        "NPI",
        "US National Provider Identifier (Luhn with the 80840 prefix)",
        _finder(
            "NPI",
            r"\b[12]\d{9}\b",
            validate=npi_ok,
            score=0.8,
            context=r"\bNPI\b",
            required=False,
            context_score=0.95,
        ),
    ),
    Detector(
        "DEA_NUMBER",
        "DEA registration number (check digit)",
        _finder(
            "DEA_NUMBER",
            r"\b[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}\b",
            validate=dea_ok,
            score=0.7,
            context=r"\bDEA\b",
            required=False,
            context_score=0.95,
        ),
    ),
    _ctx(
        "ICD10_CODE",
        "ICD-10 diagnosis code after ICD / diagnosis / dx keywords",
        r"\bICD(?:-?10)?(?:-CM)?\b|diagnos[ie]s|diagnosed|\bdx\b|assessment|impression",
        r"[A-TV-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4})?",
        window=60,
        score=0.85,
    ),
    _ctx(
        "CPT_CODE",
        "CPT / HCPCS procedure code after CPT / procedure code keywords",
        r"\bCPT\b|\bHCPCS\b|procedure code|billing code|billed (?:under|as)",
        r"\d{4}[0-9FTU]",
        window=20,
        score=0.85,
    ),
    _ctx(
        "US_BANK_NUMBER",
        "bank account number after bank / checking / savings account keywords",
        r"(?:bank|checking|savings|deposit) (?:account|acct)",
        r"\d{8,17}",
        window=15,
        score=0.9,
    ),
    _ctx(
        "ABA_ROUTING_NUMBER",
        "ABA routing number after routing / ABA keywords (checksum)",
        r"routing|\bABA\b|\bRTN\b",
        r"\d{9}",
        window=12,
        validate=aba_ok,
        score=0.95,
    ),
    _ctx(
        "ACCOUNT_NUMBER",
        "account number after account / acct keywords",
        r"\baccount|\bacct\b|\ba/c\b",
        r"[A-Z]{0,3}-?\d{6,17}",
        window=15,
        score=0.85,
    ),
    _ctx(
        "US_DRIVER_LICENSE",
        "US driver licence number after driver's licence / DL keywords",
        r"driver'?s? ?licen[cs]e|driving licen[cs]e|\bDL\b|\bCDL\b",
        r"(?:[A-Z]{1,2}\d{4,14}|\d{5,14}|[A-Z]\d{3}-\d{3}-\d{2}-\d{3}-\d|[A-Z]\d{2}-\d{2}-\d{4})",
        window=15,
        score=0.92,
    ),
    _ctx(
        "US_PASSPORT",
        "passport number after a passport keyword",
        r"passport",
        r"(?:[A-Z]\d{8}|\d{9}|[A-Z]{2}\d{7})",
        window=15,
        score=0.92,
    ),
    _ctx(
        "MEDICAL_LICENSE",
        "medical / nursing / pharmacy licence number in context",
        r"(?:medical|nursing|pharmacy|pharmacist|physician|RN|state) licen[cs]e|"
        r"medical board",
        r"[A-Z]{0,3}-?\d{4,10}",
        window=15,
        score=0.92,
    ),
    _ctx(
        "LICENSE_NUMBER",
        "licence, certificate or permit number in context",
        r"licen[cs]e|certificate|permit|certification",
        r"[A-Z]{0,3}-?\d{4,12}",
        window=15,
        score=0.8,
    ),
    Detector(
        "VEHICLE_ID",
        "VIN (check digit) or licence plate after plate / registration keywords",
        _union(
            _finder("VEHICLE_ID", r"\b[A-HJ-NPR-Z0-9]{17}\b", validate=vin_ok, score=0.95),
            _finder(
                "VEHICLE_ID",
                r"\b(?:[A-Z]{2}\d{2} ?[A-Z]{3}|[A-Z0-9]{1,4}[ -]?"
                r"[A-Z0-9]{2,5})\b",
                validate=_ident_ok(1),
                score=0.85,
                context=r"licen[cs]e plate|\bplate\b|registration (?:no|number|plate)|"
                r"\btag (?:no|number)|\breg(?:istration)?\.? (?:no|number)",
                window=20,
            ),
        ),
    ),
    Detector(
        "DEVICE_ID",
        "device identifier: serial / IMEI / UDI in context, or MAC address",
        _union(
            _finder("DEVICE_ID", r"\b(?:[0-9A-F]{2}[:-]){5}[0-9A-F]{2}\b", score=0.85),
            _finder("DEVICE_ID", r"\b(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}\b", score=0.85),
            _finder(
                "DEVICE_ID",
                r"\b[A-Z0-9][A-Z0-9-]{4,30}[A-Z0-9]\b",
                validate=_ident_ok(2),
                score=0.85,
                context=r"serial|\bS/N\b|\bSN\b|\bIMEI\b|\bUDI\b|device (?:id|identifier)"
                r"|\bMEID\b",
                window=25,
            ),
        ),
    ),
    _ctx(
        "BIOMETRIC_ID",
        "biometric template / identifier in context",
        r"biometric|fingerprint|retina|iris|voiceprint|face ?print",
        r"[A-Z0-9][A-Z0-9-]{5,30}[A-Z0-9]",
        window=15,
        validate=_ident_ok(2),
        score=0.8,
    ),
    Detector(
        "PERSON",
        "person name: capitalised words scored by name lists, shape and position "
        "(table cells, signatures, salutations), or after a cue (title, Patient:/Name:, "
        "Dear, a credential)",
        _person(
            _finder(
                "PERSON",
                _CUED_PATTERNS,
                validate=_name_ok,
                score=0.85,
                one_pass=True,
            )
        ),
    ),
    Detector(
        "UK_NHS",
        "UK NHS number (mod-11 check digit; higher score after 'NHS')",
        _finder(
            "UK_NHS",
            [r"\b\d{3} \d{3} \d{4}\b", r"\b\d{3}-\d{3}-\d{4}\b", r"\b\d{10}\b"],
            validate=nhs_ok,
            score=0.6,
            context=r"\bNHS\b",
            required=False,
            window=40,
            context_score=0.95,
        ),
    ),
    Detector(
        "UK_NINO",
        "UK National Insurance number (valid prefix letters)",
        _finder(
            "UK_NINO",
            r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
            validate=nino_ok,
            score=0.9,
        ),
    ),
]

DETECTORS: dict[str, Detector] = {d.name: d for d in _DETECTOR_LIST}


#: bumped whenever what a detector finds changes, so the check's key (and so the ruleset hash
#: that report caches are keyed on) changes with it: a cached verdict from before cue-less
#: names were found must not be served after
DETECTORS_REVISION = 2


class PiiCheck(DetectorCheck):
    kind: ClassVar[str] = "pii"
    cost: ClassVar[int] = 2
    registry: ClassVar[dict[str, Detector]] = DETECTORS

    def canonical(self) -> dict[str, Any]:
        return {**super().canonical(), "revision": DETECTORS_REVISION}
