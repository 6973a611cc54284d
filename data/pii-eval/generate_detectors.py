"""Generate the detector evaluation sets: PERSON without cues, phones from 15 regions, dates.

Run from the repository root: ``.venv/bin/python data/pii-eval/generate_detectors.py`` (needs
Faker and phonenumbers). Deterministic (fixed seeds). Two splits per set:

- ``*-dev.jsonl`` (seed 1): what the rules were tuned on. Half the names come from the shipped
  lists (``gates/names_*.txt``), half are invented pronounceable words; templates and distractors are the *even*-indexed ones of each pool.
- ``*-test.jsonl`` (seed 2): what the docs report. Names come only from the held-out fifth
  (``data/names/heldout_*.txt``, see ``data/names/build.py``): no name in it is in any list
  the detector reads. Templates and distractors are the *odd*-indexed ones, so no sentence
  shape or capitalised non-name the rules were tuned against appears in it either.

Labels: a PERSON span is the name without its title; later single-word mentions of the same
person are labelled too. A phone introduced as a fax is FAX_NUMBER. A DATE_TIME span covers the
whole expression (weekday, date, time, zone, range); a year alone is not labelled (Safe Harbor
allows it), nor is a time of day without a date ("8am-6pm", as in ``entities.jsonl``).
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import phonenumbers
from faker import Faker

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
Value = str | tuple[str, str]
_SLOT = re.compile(r"\{(\w+)\}")


def render(template: str, **slots: Value) -> dict:
    """Fill ``{slot}`` markers; a slot given as (TYPE, value) becomes a labelled entity."""
    parts: list[str] = []
    entities: list[dict] = []
    pos = n = 0
    for m in _SLOT.finditer(template):
        literal = template[pos:m.start()]
        parts.append(literal)
        n += len(literal)
        val = slots[m.group(1)]
        typ, text = val if isinstance(val, tuple) else ("", val)
        if typ:
            entities.append({"type": typ, "start": n, "end": n + len(text)})
        parts.append(text)
        n += len(text)
        pos = m.end()
    parts.append(template[pos:])
    return {"text": "".join(parts), "entities": entities}


def _names(path: Path) -> list[str]:
    return sorted(line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                  if line.strip() and not line.startswith("#"))


def half(items: list, split: str) -> list:
    """Even-indexed items for dev, odd-indexed for test."""
    return items[0::2] if split == "dev" else items[1::2]


# ---------------------------------------------------------------------------------------------
# PERSON

ORGS = ["Kaiser Permanente", "Mayo Clinic", "Blue Cross Blue Shield", "Johns Hopkins Medicine",
        "Cleveland Clinic", "Mass General Brigham", "United Healthcare", "Deloitte Consulting",
        "Goldman Sachs", "Morgan Stanley", "Ernst Young", "Pfizer Global Supply",
        "Acme Logistics", "Northwind Traders", "Contoso Pharmaceuticals", "Globex Corporation",
        "Initech Systems", "Umbrella Health", "Stark Industries", "Wayne Enterprises",
        "Cedars Sinai", "Mount Sinai", "Sutter Health", "Providence Swedish",
        "Atrium Health", "Intermountain Healthcare", "Geisinger Health", "Baylor Scott White"]
PLACES = ["Baton Rouge", "Los Angeles", "New Orleans", "Salt Lake City", "Santa Fe",
          "Fort Worth", "Colorado Springs", "Grand Rapids", "Cedar Rapids", "Des Moines",
          "Palo Alto", "Boca Raton", "Corpus Christi", "El Paso", "Las Vegas", "San Antonio",
          "Milton Keynes", "Newcastle upon Tyne", "Stoke Poges", "Market Harborough",
          "Buenos Aires", "Rio de Janeiro", "Costa Rica", "Puerto Vallarta", "Hong Kong",
          "Kuala Lumpur", "Cape Town", "Tel Aviv"]
PRODUCTS = ["Microsoft Teams", "Google Drive", "Epic Hyperspace", "Cerner Millennium",
            "Adobe Acrobat", "Slack Connect", "Zoom Rooms", "Salesforce Lightning",
            "Apple Watch", "Amazon Redshift", "Oracle Fusion", "Workday Payroll",
            "Jira Service Management", "Power BI", "Tableau Prep", "Dropbox Paper",
            "Windows Server", "Red Hat Enterprise Linux", "Azure Sentinel", "Snowflake Cortex"]
DRUGS = ["Lipitor", "Metformin", "Lisinopril", "Eliquis", "Xarelto", "Ozempic", "Humira",
         "Keytruda", "Synthroid", "Zoloft", "Lexapro", "Prednisone", "Amoxicillin",
         "Gabapentin", "Atorvastatin", "Warfarin"]
HEADINGS = ["Chief Complaint", "History of Present Illness", "Plan of Care",
            "Review of Systems", "Past Medical History", "Discharge Instructions",
            "Executive Summary", "Quarterly Business Review", "Action Items",
            "Incident Timeline", "Root Cause Analysis", "Release Notes", "Known Issues",
            "Data Retention Policy", "Acceptable Use Policy", "Emergency Contacts",
            "Scope of Work", "Payment Terms", "Open Questions", "Next Steps"]
EVENTS = ["Annual General Meeting", "Open Enrollment", "Black Friday", "Memorial Day",
          "Labor Day", "Town Hall", "Grand Rounds", "Tumor Board", "Morbidity Mortality",
          "Wellness Week", "Innovation Summit", "Patient Safety Day"]

# (template, needs a title?) Each {P} is a labelled name; {S} repeats its surname, labelled.
# Distractor slots: {ORG} {PLACE} {PRODUCT} {DRUG} {HEAD} {EVENT} {CO} {CITY} {STREET}.
PERSON_TEMPLATES = [
    "{HEAD}\n\n{P} was seen in clinic today for follow-up of hypertension. {S} reports good "
    "adherence to {DRUG}.",
    "{HEAD}\n\n{P} presented to the {ORG} emergency department with chest pain after a flight "
    "from {PLACE}.",
    "Spoke with {P} about the {PRODUCT} rollout; {S} will send the {HEAD} by Friday.",
    "Meeting notes ({EVENT})\nAttendees: {P}, {P2}, {P3}\n{HEAD}: migrate to {PRODUCT}.",
    "| Name | Department | Location |\n|---|---|---|\n| {P} | Cardiology | {PLACE} |\n"
    "| {P2} | Oncology | {CITY} |\n",
    "employee,team,office\n{P},Finance,{CITY}\n{P2},Legal,{PLACE}\n",
    "Hi team,\n\nThe {EVENT} moved to {PLACE}. Please confirm with {P} by Tuesday.\n\n"
    "Thanks,\n{P2}\n{CO}",
    "According to {P}, the {ORG} contract renews in March. {S} asked {P2} to review the "
    "{HEAD}.",
    "The ticket was reassigned to {P} after {P2} went on leave. {PRODUCT} access was revoked "
    "for the {CO} account.",
    "{P} and {P2} joined {CO} in {PLACE} last spring; both moved from {ORG}.",
    "Incident report: at the {STREET} site, {P} noticed the {PRODUCT} alert and called "
    "{P2}.",
    "Referral letter\n\nRe: {P}\n\n{S} has been taking {DRUG} for two years. Please see "
    "{S} at {ORG}.",
    "Thank you for choosing {ORG}. Your care coordinator is {P}. Call {S} with any questions "
    "about {DRUG}.",
    "{P}, {P2} and {P3} signed the {HEAD} on behalf of {CO}.",
    "Witness statement: {P} saw the vehicle turn onto {STREET} near {PLACE}.",
    "Onboarding checklist\n- {P} (manager)\n- {P2} (buddy)\n- {PRODUCT} account\n- {HEAD}",
    "Kind regards,\n\n{P}\nSenior Analyst, {ORG}",
    "The patient's daughter {P} will drive her home. {S} lives in {CITY}.",
    "Nurse {P} administered {DRUG} at 14:00; {P2} countersigned.",
    "Quote from {P}: \"{PRODUCT} cut our costs in half.\" {S} leads procurement at {CO}.",
    "Roster update\n{P}: on call\n{P2}: {EVENT}\n{PLACE} office closed.",
    "We thank {P} of {ORG} for comments on the {HEAD} draft.",
    "Tenant: {P}\nLandlord: {CO}\nProperty: {STREET}, {CITY}",
    "Per {P}, the {PRODUCT} migration is blocked; {S} escalated to {ORG}.",
]


# More sentence shapes for dev only (the test split never sees them): the rules were tuned
# against these too, so they must not be what the test set measures.
DEV_ONLY_TEMPLATES = [
    "Thanks to {P} and {P2} for the {PRODUCT} demo. {S} will circulate the slides.",
    "{HEAD}\n{P} (Finance), {P2} (Legal) and {P3} (IT) approved the change.",
    "Yesterday {P} phoned from {PLACE} to cancel; {S} had booked via {ORG}.",
    "Reviewer: {P}\nApprover: {P2}\nSystem: {PRODUCT}\nVendor: {CO}",
    "| Owner | Task | Due |\n|---|---|---|\n| {P} | {HEAD} | Friday |\n| {P2} | {PRODUCT} "
    "upgrade | Monday |\n",
    "The {EVENT} keynote by {P} drew a crowd; {P2} chaired the panel on {DRUG}.",
    "Lab results for {P} were sent to {ORG} in {PLACE}.",
    "When {P} arrived at {STREET}, {S} found the {PRODUCT} kiosk offline.",
    "Signed,\n{P}\n{CO}\n{CITY}",
    "{P}'s prescription for {DRUG} was renewed; {P2} checked it.",
    "Interview panel: {P}; {P2}; {P3}. Location: {PLACE}.",
    "Our new hire {P} starts Monday at {CO} ({CITY} office).",
    "mrn,last_name,first_name,age_band\n1001,{S},{G},40-49\n1002,{S2},{G2},50-59\n",
    "| Patient Name | Ward |\n|---|---|\n| {S} | 4B |\n| {S2} | ICU |\n",
]


def invented(rng: random.Random) -> str:
    """A pronounceable word in no list: dev's stand-in for a name the lists do not hold."""
    onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
              "kr", "st", "tr", "sh", "ch", "j"]
    word = "".join(rng.choice(onsets) + rng.choice("aeiouy") for _ in range(rng.randint(2, 3)))
    return word.capitalize() + rng.choice(["", "", "n", "r", "s", "k", "ll", "tz"])


def person_set(split: str, seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    fake = Faker(["en_US", "en_GB"])
    fake.seed_instance(seed)
    if split == "dev":
        given = _names(ROOT / "gates" / "names_given.txt")
        surnames = _names(ROOT / "gates" / "names_surnames.txt")
    else:
        given = _names(HERE.parent / "names" / "heldout_given.txt")
        surnames = _names(HERE.parent / "names" / "heldout_surnames.txt")
    templates = half(PERSON_TEMPLATES, split) + (DEV_ONLY_TEMPLATES if split == "dev" else [])
    pools = {k: half(v, split) for k, v in (("ORG", ORGS), ("PLACE", PLACES),
                                           ("PRODUCT", PRODUCTS), ("DRUG", DRUGS),
                                           ("HEAD", HEADINGS), ("EVENT", EVENTS))}
    docs = []
    for i in range(n):
        tpl = templates[i % len(templates)]
        people = []
        for _ in range(3):
            g, s = rng.choice(given), rng.choice(surnames)
            if split == "dev" and rng.random() < 0.5:
                # half of dev's names are invented: tuning must not lean on the lists alone
                g, s = invented(rng), invented(rng)
            r = rng.random()
            full = (f"{g} {rng.choice(given)[0]}. {s}" if r < 0.12 else
                    f"{g[0]}. {s}" if r < 0.17 else
                    f"{g} {rng.choice(['van', 'de', 'da', 'von', 'del'])} {s}" if r < 0.22 else
                    f"{g} {s}")
            people.append((full, s, g))
        slots: dict[str, Value] = {
            "P": ("PERSON", people[0][0]), "S": ("PERSON", people[0][1]),
            "P2": ("PERSON", people[1][0]), "P3": ("PERSON", people[2][0]),
            "G": ("PERSON", people[0][2]), "S2": ("PERSON", people[1][1]),
            "G2": ("PERSON", people[1][2]),
            "CO": fake.company(), "CITY": fake.city(), "STREET": fake.street_name(),
            **{k: rng.choice(v) for k, v in pools.items()},
        }
        docs.append({"kind": f"person_{templates.index(tpl)}", **render(tpl, **slots)})
    return docs


# ---------------------------------------------------------------------------------------------
# Phones

REGIONS = ["US", "CA", "GB", "DE", "FR", "IN", "AU", "BR", "MX", "JP", "ES", "IT", "NL", "ZA",
           "SG"]
PHONE_TEMPLATES = [
    "Call us on {X} between 9 and 5.", "Tel: {X}", "Mobile {X} (after hours)",
    "Contact: {X} / reception", "reach me at {X}, thanks", "Phone number: {X}\nOrder #{ORDER}",
    "Fax: {F}", "Send the forms by fax to {F} or call {X}.", "t. {X}  f. {F}",
    "Emergency line {X}; invoice {ORDER} due {DATE}.", "Office ({REGION}): {X}",
    "Please ring {X} to rebook.",
]
NEGATIVE_NUMBERS = [
    "Order {ORDER} shipped", "Invoice total $1,{D3}.{D2}", "Build {D1}.{D2}.{D3}.{D4}",
    "Server 10.{D2}.{D1}.{D2}", "ISBN 978-3-16-{D6}-0", "Tracking 1Z{D3}AA1{D8}",
    "Ref {YEAR}/{D4}/{D2}", "Timestamp {EPOCH}", "ZIP 20{D3}-{D4}", "Part no. {D3}-{D4}-{D2}",
    "Batch {D8}", "{D2}:{D2}:{D2} UTC", "Account ending {D4}", "Dated {DATE}",
    "Room {D3}, floor {D1}", "Case {YEAR}-CV-{D6}", "Lot {D4}-{D2}", "{D1},{D3},{D3} rows",
]


def valid_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    kind = rng.choice([phonenumbers.PhoneNumberType.FIXED_LINE,
                       phonenumbers.PhoneNumberType.MOBILE])
    ex = phonenumbers.example_number_for_type(region, kind)
    digits = str(ex.national_number)
    for _ in range(200):
        keep = max(2, len(digits) - 5)
        cand = digits[:keep] + "".join(rng.choice("0123456789") for _ in digits[keep:])
        num = phonenumbers.parse("+" + str(ex.country_code) + cand)
        if phonenumbers.is_valid_number(num):
            return num
    return ex


def phone_text(rng: random.Random, region: str) -> str:
    num = valid_number(rng, region)
    fmt = rng.random()
    if region in ("US", "CA", "GB") and fmt < 0.5:
        out = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
        if region != "GB" and rng.random() < 0.4:
            d = str(num.national_number)
            out = rng.choice([f"{d[:3]}-{d[3:6]}-{d[6:]}", f"{d[:3]}.{d[3:6]}.{d[6:]}",
                              f"1-{d[:3]}-{d[3:6]}-{d[6:]}"])
        if rng.random() < 0.15:
            out += rng.choice([" ext. ", " x", " ext "]) + str(rng.randint(10, 9999))
        return out
    if fmt < 0.8:
        out = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        if rng.random() < 0.2:
            out = out.replace(" ", rng.choice(["-", ".", " "]))
        return out
    if fmt < 0.9:
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return "00" + intl[1:]


def _fill_digits(rng: random.Random, tpl: str) -> str:
    def digits(k: int) -> str:
        return str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(k - 1))

    out = tpl
    for k in (8, 6, 4, 3, 2, 1):
        while f"{{D{k}}}" in out:
            out = out.replace(f"{{D{k}}}", digits(k), 1)
    return (out.replace("{YEAR}", str(rng.randint(2015, 2026)))
            .replace("{EPOCH}", str(rng.randint(1_600_000_000, 1_800_000_000))))


def phone_set(split: str, seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    templates = half(PHONE_TEMPLATES, split) + half(PHONE_TEMPLATES, "dev" if split == "test"
                                                    else "test")[:2]
    negatives = half(NEGATIVE_NUMBERS, split)
    docs = []
    for i in range(n):
        region = REGIONS[i % len(REGIONS)]
        tpl = templates[rng.randrange(len(templates))]
        neg = _fill_digits(rng, rng.choice(negatives))
        order = f"{rng.randint(10**7, 10**9)}"
        date = f"{rng.randint(2020, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        doc = render(tpl + "\n" + neg, X=("PHONE_NUMBER", phone_text(rng, region)),
                     F=("FAX_NUMBER", phone_text(rng, region)), ORDER=order, DATE=date,
                     REGION=region)
        docs.append({"kind": f"phone_{region}", **doc})
    return docs


# ---------------------------------------------------------------------------------------------
# Dates

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _ord(d: int) -> str:
    return str(d) + ("th" if 10 <= d % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10,
                                                                                   "th"))


def date_text(rng: random.Random) -> str:
    y, m, d = rng.randint(1940, 2030), rng.randint(1, 12), rng.randint(1, 28)
    mon = MONTHS[m - 1]
    abbr = mon[:3] + rng.choice(["", "", "."]) if mon != "May" else "May"
    wd = rng.choice(WEEKDAYS)
    hh, mm = rng.randint(0, 23), rng.choice([0, 15, 30, 45, 5, 50])
    h12 = hh % 12 or 12
    ampm = rng.choice(["am", "pm", "AM", "PM", "a.m.", "p.m."])
    tz = rng.choice(["", "", " UTC", " EST", " PST", " GMT", " CET", " +01:00", "Z"])
    forms = [
        f"{y}-{m:02d}-{d:02d}", f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:00{tz.strip() or 'Z'}",
        f"{m}/{d}/{y}", f"{m:02d}/{d:02d}/{y % 100:02d}", f"{d:02d}/{m:02d}/{y}",
        f"{d}.{m}.{y}", f"{d:02d}-{m:02d}-{y}", f"{mon} {d}, {y}", f"{abbr} {d} {y}",
        f"{d} {mon} {y}", f"{d} {abbr} {y}", f"{_ord(d)} {mon} {y}", f"the {_ord(d)} of {mon}",
        f"{mon} {_ord(d)}", f"{wd}, {mon} {d}, {y}", f"{wd[:3]} {d} {abbr} {y}",
        f"{wd} {_ord(d)} {mon}", f"{mon} {d}, {y} at {h12}:{mm:02d} {ampm}",
        f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}{tz}", f"{mon} {d} {h12}:{mm:02d} {ampm}{tz}",
        f"{d:02d}/{m:02d}/{y} {hh:02d}:{mm:02d}{tz}",
        f"{mon} {d}-{d + rng.randint(1, 3)}, {y}", f"{d}-{d + 2} {mon} {y}",
        f"{abbr} {d} - {MONTHS[m % 12][:3]} {rng.randint(1, 28)}, {y}",
        f"{mon} {y}", f"{abbr}-{y % 100:02d}", f"{d:02d}-{mon[:3].upper()}-{y}",
        f"{y}/{m:02d}/{d:02d}", f"{d}/{m}/{y % 100:02d}", f"{mon[:3]} {d}",
    ]
    return rng.choice(forms)


DATE_TEMPLATES = [
    "Admitted {X}; discharged home.", "Appointment: {X}", "The meeting is on {X} in room 4.",
    "Signed {X} by the reviewer.", "Last login {X}", "Valid until {X}.", "Due {X}",
    "Seen {X} for a rash.", "Deadline moved to {X} (was {Y}).", "Shift: {X}",
    "Event date {X}, registration closes {Y}.", "Report generated {X}",
]
DATE_NEGATIVES = [
    "Revenue grew in {YEAR} and {YEAR}.", "Version {D1}.{D2}.{D1} released.", "Score 3/4",
    "Take 1/2 tablet twice daily.", "BP 120/80, HR 72.", "Ages 10-12 welcome.",
    "FY{YEAR} budget approved.", "We may call you back.", "Section 3.2.1 applies.",
    "Dose 2.5-5 mg", "Page 10 of 12", "Ratio 16:9 screens", "Model X-{D3}",
    "The {YEAR}-{YEAR2} season", "Room 4, bed 12", "Order {D6} of {D2} items",
    "Aim for 8/10 pain relief.", "Copyright {YEAR} Acme", "Grade 7 students", "In {YEAR}, we grew.",
    "Support line open 8am-6pm.", "Meet at 10 am sharp.", "Stand-up at 09:30 UTC daily.",
    "Doors open 7:30 p.m.", "Shift ends 23:00.", "Lunch 12-1pm",
]


def date_set(split: str, seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    templates = half(DATE_TEMPLATES, split)
    negatives = half(DATE_NEGATIVES, split)
    docs = []
    for _ in range(n):
        tpl = rng.choice(templates)
        y = rng.randint(2000, 2025)
        neg = _fill_digits(rng, rng.choice(negatives).replace("{YEAR}-{YEAR2}", f"{y}-{y + 1}"))
        doc = render(tpl + " " + neg, X=("DATE_TIME", date_text(rng)),
                     Y=("DATE_TIME", date_text(rng)))
        docs.append({"kind": "dates", **doc})
    return docs


def write(path: Path, docs: list[dict]) -> None:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs),
                    encoding="utf-8")


def main() -> int:
    for split, seed in (("dev", 1), ("test", 2)):
        write(HERE / f"person-{split}.jsonl", person_set(split, seed, 600 if split == "dev"
                                                          else 400))
        write(HERE / f"phones-{split}.jsonl", phone_set(split, seed, 450))
        write(HERE / f"dates-{split}.jsonl", date_set(split, seed, 400))
    return 0


if __name__ == "__main__":
    sys.exit(main())
