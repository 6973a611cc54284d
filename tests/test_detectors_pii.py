"""PII/PHI detectors: a positive and a negative case per detector, validators, Unicode, bad input."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from gates.base import CheckError, CheckSpec
from gates.pii import (
    DETECTORS,
    PiiCheck,
    aba_ok,
    card_ok,
    dea_ok,
    iban_ok,
    luhn_ok,
    nhs_ok,
    nino_ok,
    npi_ok,
    ssn_ok,
    vin_ok,
)


def values(name: str, text: str) -> list[str]:
    return [text[m.start : m.end] for m in DETECTORS[name].find(text)]


# (detector, text, the values it must find); every detector appears with a hit here.
POSITIVE = [
    (
        "EMAIL_ADDRESS",
        "Write to jo.doe+news@mail.example.co.uk today.",
        ["jo.doe+news@mail.example.co.uk"],
    ),
    (
        "PHONE_NUMBER",
        "Call (415) 555-0132 or 212.867.5309 x42.",
        ["(415) 555-0132", "212.867.5309 x42"],
    ),
    (
        "PHONE_NUMBER",
        "UK office: +44 20 7946 0958, mobile 07700 900123.",
        ["+44 20 7946 0958", "07700 900123"],
    ),
    ("PHONE_NUMBER", "Paris desk +33 1 42 68 53 00.", ["+33 1 42 68 53 00"]),
    ("FAX_NUMBER", "Phone 212-555-0100, fax: 212-555-7788.", ["212-555-7788"]),
    ("US_SSN", "SSN 219-09-9999 on file.", ["219-09-9999"]),
    (
        "CREDIT_CARD",
        "Card 4111 1111 1111 1111 and 378282246310005.",
        ["4111 1111 1111 1111", "378282246310005"],
    ),
    (
        "IBAN_CODE",
        "Pay GB82 WEST 1234 5698 7654 32 or DE89370400440532013000.",
        ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"],
    ),
    (
        "IP_ADDRESS",
        "From 192.168.1.20 and 2001:db8::8a2e:370:7334.",
        ["192.168.1.20", "2001:db8::8a2e:370:7334"],
    ),
    (
        "URL",
        "See https://example.com/a?b=1, or www.example.org.",
        ["https://example.com/a?b=1", "www.example.org"],
    ),
    (
        "DATE_TIME",
        "Seen 03/14/2024, on 2024-03-14 10:30 and March 3, 2024.",
        ["03/14/2024", "2024-03-14 10:30", "March 3, 2024"],
    ),
    ("DATE_OF_BIRTH", "DOB: 01/02/1950, admitted 03/04/2024.", ["01/02/1950"]),
    ("AGE_OVER_89", "A 94-year-old woman; another patient aged 91.", ["94", "91"]),
    ("US_ZIP", "Springfield, IL 62704 and Austin, Texas 73301-0001.", ["62704", "73301-0001"]),
    ("MRN", "MRN: 4829103; medical record number MR557459.", ["4829103", "MR557459"]),
    ("HEALTH_PLAN_ID", "Aetna member ID XJH123456789.", ["XJH123456789"]),
    ("NPI", "NPI 1234567893", ["1234567893"]),
    ("DEA_NUMBER", "DEA: AB1234563", ["AB1234563"]),
    ("ICD10_CODE", "Diagnoses: E11.9 (diabetes), I10 (hypertension)", ["E11.9", "I10"]),
    ("CPT_CODE", "Billed under CPT 99213.", ["99213"]),
    ("US_BANK_NUMBER", "Bank account 000123456789.", ["000123456789"]),
    ("ABA_ROUTING_NUMBER", "Routing number: 021000021", ["021000021"]),
    ("ACCOUNT_NUMBER", "Patient account number: 77812345.", ["77812345"]),
    ("US_DRIVER_LICENSE", "Driver's license: D1234567 (CA).", ["D1234567"]),
    ("US_PASSPORT", "Passport number 123456789.", ["123456789"]),
    ("MEDICAL_LICENSE", "Medical license no. MD-48291", ["MD-48291"]),
    ("LICENSE_NUMBER", "Contractor licence number 884213.", ["884213"]),
    (
        "VEHICLE_ID",
        "VIN 1HGCM82633A004352, license plate: 7ABC123.",
        ["1HGCM82633A004352", "7ABC123"],
    ),
    (
        "DEVICE_ID",
        "Pacemaker serial number: PM4832XK9; MAC 00:1A:2B:3C:4D:5E.",
        ["PM4832XK9", "00:1A:2B:3C:4D:5E"],
    ),
    ("BIOMETRIC_ID", "Fingerprint template id FP-99231-A.", ["FP-99231-A"]),
    ("PERSON", "Dear Mr. John O'Brien,\n\nPatient: Jane Müller", ["John O'Brien", "Jane Müller"]),
    (
        "PERSON",
        "Thanks,\nAshley\n\nSincerely,\nDr. Alan Grant\nSarah Connor, MD\n",
        ["Ashley", "Alan Grant", "Sarah Connor"],
    ),
    ("PERSON", "From: Kim Dale <kim@example.com>", ["Kim Dale"]),
    ("UK_NHS", "NHS number 943 476 5919.", ["943 476 5919"]),
    ("UK_NINO", "NI number AB 12 34 56 C and CE123456D.", ["AB 12 34 56 C", "CE123456D"]),
]

# (detector, text): near misses that must not be found.
NEGATIVE = [
    ("EMAIL_ADDRESS", "Use the @ sign and dots... like a@b or @example.com."),
    ("PHONE_NUMBER", "Order 123-456-7890 has area code 123, which NANP does not issue."),
    ("FAX_NUMBER", "Call 212-555-0100 (no fax machine here)."),
    ("US_SSN", "Invalid: 000-12-3456, 666-12-3456, 912-34-5678, 123-00-4567, 123-45-0000."),
    ("CREDIT_CARD", "Order number 4111 1111 1111 1112 fails Luhn; 1234567890123452 has no issuer."),
    ("IBAN_CODE", "GB82 WEST 1234 5698 7654 33 has a bad check; XX82 1234 5678 is no country."),
    ("IP_ADDRESS", "Version 1.2.3, 999.1.1.1, time 10:30:00 and MAC-like 00:1A:2B:3C:4D:5E."),
    ("URL", "the file example.com.txt and http:/broken"),
    ("DATE_TIME", "Invoice 13/45/2024, version 2.14.3, the year 2019, price 12.50."),
    ("DATE_OF_BIRTH", "Admitted 03/04/2024."),
    ("AGE_OVER_89", "A 45-year-old man; 90 days supply; aged 85."),
    ("US_ZIP", "Invoice 62704 and 90210 items."),
    ("MRN", "Order number 4829103."),
    ("HEALTH_PLAN_ID", "Member of the board since 2019."),
    ("NPI", "NPI 1234567890 fails the check digit."),
    ("DEA_NUMBER", "AB1234567 has a wrong check digit."),
    ("ICD10_CODE", "Room E11 on floor I10 is closed."),
    ("CPT_CODE", "Postcode 99213 for the depot."),
    ("US_BANK_NUMBER", "Account balance 12345678."),
    ("ABA_ROUTING_NUMBER", "Routing number 123456789 fails the checksum."),
    ("ACCOUNT_NUMBER", "Take into account the 2024 figures."),
    ("US_DRIVER_LICENSE", "Order D1234567 shipped."),
    ("US_PASSPORT", "Reference 123456789."),
    ("MEDICAL_LICENSE", "Medical school class of 2019."),
    ("LICENSE_NUMBER", "Apache License, version 2.0."),
    ("VEHICLE_ID", "1HGCM82633A004353 has a wrong check digit; the plate was clean."),
    ("DEVICE_ID", "The device is a serial killer of batteries."),
    ("BIOMETRIC_ID", "Fingerprint scanners are installed."),
    ("PERSON", "Dear Valued Customer,\n\nRegards,\nHuman Resources\nSpringfield, MD 20901"),
    ("UK_NHS", "NHS number 943 476 5918 fails mod-11."),
    ("UK_NINO", "QQ 12 34 56 C, GB 12 34 56 A and DA123456A use prefixes never issued."),
]


@pytest.mark.parametrize(
    ("name", "text", "expected"), POSITIVE, ids=[f"{p[0]}-{i}" for i, p in enumerate(POSITIVE)]
)
def test_detector_finds(name: str, text: str, expected: list[str]) -> None:
    assert values(name, text) == expected


@pytest.mark.parametrize(("name", "text"), NEGATIVE, ids=[n[0] for n in NEGATIVE])
def test_detector_ignores_near_misses(name: str, text: str) -> None:
    assert values(name, text) == []


def test_every_detector_has_cases_and_a_description() -> None:
    assert {p[0] for p in POSITIVE} == set(DETECTORS)
    assert {n[0] for n in NEGATIVE} == set(DETECTORS)
    for det in DETECTORS.values():
        assert det.description and "\n" not in det.description


def test_matches_carry_type_score_and_masked_display() -> None:
    text = "SSN 219-09-9999"
    (m,) = DETECTORS["US_SSN"].find(text)
    assert (m.detail, text[m.start : m.end]) == ("US_SSN", "219-09-9999")
    assert 0 < m.score <= 1
    assert m.display is not None and "219-09-9999" not in m.display


def test_context_raises_score_without_being_required() -> None:
    (bare,) = DETECTORS["UK_NHS"].find("ref 943 476 5919")
    (ctx,) = DETECTORS["UK_NHS"].find("NHS no. 943 476 5919")
    assert ctx.score > bare.score


def test_a_list_after_one_keyword_is_found() -> None:
    assert values("MRN", "MRNs: 4829103, 5829104 and 6829105") == ["4829103", "5829104", "6829105"]


# --- validators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "good", "bad"),
    [
        (luhn_ok, "4539 1488 0343 6467", "4539 1488 0343 6468"),
        (card_ok, "5500-0000-0000-0004", "5500-0000 0000-0004"),  # mixed separators
        (ssn_ok, "219-09-9999", "078-05-0000"),
        (iban_ok, "FR1420041010050500013M02606", "FR1420041010050500013M02607"),
        (nhs_ok, "9434765919", "9434765918"),
        (npi_ok, "1245319599", "1245319598"),
        (dea_ok, "AB1234563", "AB1234564"),
        (vin_ok, "1M8GDM9AXKP042788", "1M8GDM9A1KP042788"),
        (aba_ok, "011000015", "011000016"),
        (nino_ok, "AB123456C", "BG123456C"),
    ],
)
def test_validators(fn: Callable[[str], bool], good: str, bad: str) -> None:
    assert fn(good) is True
    assert fn(bad) is False


def test_iban_needs_the_country_length() -> None:
    assert not iban_ok("GB82WEST123456987654")  # right check shape, too short for GB


def test_card_needs_an_issuer_prefix() -> None:
    assert luhn_ok("1234567890123452") and not card_ok("1234567890123452")


# --- Unicode next to values ------------------------------------------------------------------


def test_value_glued_to_a_latin_letter_is_not_a_value() -> None:
    # re2's \b is ASCII-only and sees a boundary between é and 2; we must not.
    assert values("US_SSN", "réf219-09-9999") == []
    assert values("EMAIL_ADDRESS", "contact: josé@example.com") == ["josé@example.com"]


def test_cjk_and_punctuation_next_to_values_still_match() -> None:
    assert values("PHONE_NUMBER", "电话212-867-5309。") == ["212-867-5309"]
    assert values("EMAIL_ADDRESS", "请联系jo@example.com或") == ["jo@example.com"]
    assert values("US_SSN", "«219-09-9999»") == ["219-09-9999"]


def test_offsets_are_characters_not_bytes() -> None:
    text = "ééé 🙂 SSN 219-09-9999"
    (m,) = DETECTORS["US_SSN"].find(text)
    assert text[m.start : m.end] == "219-09-9999"


def test_names_with_accents_and_apostrophes() -> None:
    assert values("PERSON", "Patient: Zoë D'Arcy-Núñez") == ["Zoë D'Arcy-Núñez"]
    assert values("PERSON", "Dr. Łukasz Wójcik") == ["Łukasz Wójcik"]


# --- the gate check and bad input ------------------------------------------------------------


def test_pii_check_any_and_unknown_name() -> None:
    check = PiiCheck.from_spec(CheckSpec("pii", ("EMAIL_ADDRESS", "US_SSN")))
    found = check.find("a@b.example and 219-09-9999")
    assert [m.detail for m in found] == ["EMAIL_ADDRESS", "US_SSN"]
    assert set(PiiCheck.from_spec(CheckSpec("pii", ("any",))).names) == set(DETECTORS)
    with pytest.raises(CheckError) as err:
        PiiCheck.from_spec(CheckSpec("pii", ("US_SNN",)))
    assert err.value.code == "DSL104" and "US_SSN" in (err.value.help or "")


PATHOLOGICAL = {
    "digits": "7" * 1_000_000,
    "spaced digits": "1 " * 500_000,
    "one token": "aB3_" * 250_000,
    "at and dots": "@." * 500_000,
    "colons": "a:" * 500_000,
    "capitalised words": "Dr. " + "Aa " * 330_000,
    "keywords": "MRN account DOB fax serial " * 38_000,
}


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_input_finishes(name: str) -> None:
    text = PATHOLOGICAL[name]
    t0 = time.perf_counter()
    for det in DETECTORS.values():
        det.find(text)
    # a hang guard, not a benchmark: the whole registry takes well under a second here
    assert time.perf_counter() - t0 < 60


# ---------------------------------------------------------------------------------------------
# Names without a cue, phones by region, dates in every common form


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "record_id,age_band,notes\nR-0107,40-49,Maria Gonzalez called about the refill\n",
            ["Maria Gonzalez"],
        ),
        ("| Name | Ward |\n|---|---|\n| Kelvin Obradovic | 4B |\n", ["Kelvin Obradovic"]),
        (
            "Spoke with Priya Raman about the rollout; Raman will send the plan.",
            ["Priya Raman", "Raman"],
        ),
        (
            "Attendees: Tomasz Wrona, Ingrid van der Berg and J. Okafor",
            ["Tomasz Wrona", "Ingrid van der Berg", "J. Okafor"],
        ),
        (
            "Kind regards,\n\nSiobhan O'Connell\nSenior Analyst, Acme Logistics",
            ["Siobhan O'Connell"],
        ),
        # an extract's name columns: one word per cell, known by the header
        (
            "mrn,last_name,first_name,age_band\n1001,Obradovic,Kelvin,40-49\n",
            ["Obradovic", "Kelvin"],
        ),
        ("Patient Name\tDOB\nOkafor\t1961\n", ["Okafor"]),
        ("name\tteam\nMaria Gonzalez\tAna Ruiz\n", ["Maria Gonzalez", "Ana Ruiz"]),  # tab: 2 cells
    ],
)
def test_person_without_a_cue(text: str, expected: list[str]) -> None:
    assert values("PERSON", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Discharge Summary\n\nChief Complaint: chest pain.",
        "The meeting moved to Baton Rouge; the Grand Rounds slides are on Google Drive.",
        "Send it to Maria Street, Springfield.",  # a street named after a person
        "Kaiser Pharmacy and Johnson Holdings signed the Data Retention Policy.",
        "| City | Plan |\n|---|---|\n| Palo Alto | Gold |\n",
        "id,city,team\n1,Springfield,Finance\n2,Leeds,Legal\n",  # one-word cells, not name columns
        "Aaa " * 5000,  # a title-cased run on is not a name
        "Results Summary\n\nNothing to report.",
    ],
)
def test_capitalised_words_that_are_not_names(text: str) -> None:
    assert values("PERSON", text) == []


def test_person_matches_expose_their_score() -> None:
    from gates.names import THRESHOLD, candidates

    text = "Payroll,Team\nMaria Gonzalez,Finance\nSpoke with Xander Quillfeather."
    found = DETECTORS["PERSON"].find(text)
    assert [text[m.start : m.end] for m in found] == ["Maria Gonzalez", "Xander Quillfeather"]
    assert all(THRESHOLD <= m.score <= 1 for m in found)
    assert found[0].display == "M. G."  # initials only, never the name
    # every candidate is scored, emitted or not: lists-and-cell evidence scores higher
    scores = {text[s:e]: sc for s, e, sc in candidates(text)}
    assert scores["Maria Gonzalez"] > scores["Xander Quillfeather"] >= THRESHOLD


def test_held_out_names_are_in_no_shipped_list() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    def read(p: Path) -> set[str]:
        return {
            x.strip()
            for x in p.read_text(encoding="utf-8").splitlines()
            if x.strip() and not x.startswith("#")
        }

    shipped = read(root / "gates/names_given.txt") | read(root / "gates/names_surnames.txt")
    held = read(root / "data/names/heldout_given.txt") | read(
        root / "data/names/heldout_surnames.txt"
    )
    assert len(held) > 4000 and len(shipped) > 15000
    assert held & shipped == set()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Berlin office +49 30 901820, Mumbai +91 98765 43210.",
            ["+49 30 901820", "+91 98765 43210"],
        ),
        (
            "Tokyo: +81 3-1234-5678; Sydney 0061 2 9374 4000",
            ["+81 3-1234-5678", "0061 2 9374 4000"],
        ),
        (
            "Call (201) 555-0143 ext. 12 or 1-800-555-0199.",
            ["(201) 555-0143 ext. 12", "1-800-555-0199"],
        ),
        ("London 020 7946 0958", ["020 7946 0958"]),
    ],
)
def test_phones_from_many_regions(text: str, expected: list[str]) -> None:
    assert values("PHONE_NUMBER", text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Build 1.27.863.5177 shipped",
        "ISBN 978-3-16-148410-0",
        "Server 10.20.30.40",
        "Order 4839201847 shipped",
        "Timestamp 1700000000",
        "Dated 2024-05-03",
        "+49 12",
    ],
)
def test_numbers_that_are_not_phones(text: str) -> None:
    assert values("PHONE_NUMBER", text) == []


def test_fax_keeps_its_context() -> None:
    text = "t. +33 1 42 68 53 00  f. +33 1 42 68 53 01"
    assert values("FAX_NUMBER", text) == ["+33 1 42 68 53 01"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Seen Tuesday 8th April for a rash.", ["Tuesday 8th April"]),
        ("The meeting is on the 7th of December in room 4.", ["the 7th of December"]),
        ("Event June 20-23, 2003 and 17-19 Oct 2024.", ["June 20-23, 2003", "17-19 Oct 2024"]),
        (
            "Login 1990-06-16T01:00:00Z; due May 3, 2024 at 3:30 p.m. EST",
            ["1990-06-16T01:00:00Z", "May 3, 2024 at 3:30 p.m. EST"],
        ),
        (
            "Collected 23-MAY-1979, expires Sep-27, renewed Jun 2023.",
            ["23-MAY-1979", "Sep-27", "Jun 2023"],
        ),
        ("UK 18/07/2007 and US 7/18/07 and 2014/08/04", ["18/07/2007", "7/18/07", "2014/08/04"]),
    ],
)
def test_dates_in_every_common_form(text: str, expected: list[str]) -> None:
    assert values("DATE_TIME", text) == expected


def test_a_year_or_a_time_alone_is_not_a_date() -> None:
    text = "In 2019 and FY2024 (the 2019-2020 season) the line opened 8am-6pm; we may call."
    assert values("DATE_TIME", text) == []


# --- import cost: patterns and word lists load on first use -----------------------------------


def test_importing_the_detectors_compiles_and_reads_nothing() -> None:
    """A fresh interpreter that imports the detector modules has compiled none of their
    patterns and read none of the name lists; the first document does both, once."""
    import subprocess
    import sys

    probe = (
        "import gc, gates.pii, gates.secrets, gates.names as n\n"
        "from gates.lazyre import LazyRegex\n"
        "rx = [o for o in gc.get_objects() if isinstance(o, LazyRegex)]\n"
        "loaded = [f.cache_info().currsize for f in (n.lexicon, n.places, n._flags, n._cues)]\n"
        "print(len(rx), sum('_rx' in o.__dict__ for o in rx), sum(loaded))\n"
        "gates.pii.DETECTORS['PERSON'].find('Dear Maria Gonzalez, thanks.')\n"
        "print(sum('_rx' in o.__dict__ for o in rx) > 0, n.lexicon.cache_info().currsize)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) > 100 and out[1:3] == ["0", "0"]
    assert out[3:] == ["True", "1"]


@pytest.mark.parametrize("engine", ["re2", "re"])
def test_lazy_pattern_compiles_once_under_concurrent_first_use(engine: str) -> None:
    import importlib
    import threading

    from gates.lazyre import LazyRegex

    real = importlib.import_module(engine).compile
    calls: list[str] = []

    def slow(pattern: str, options: object) -> object:
        calls.append(pattern)
        time.sleep(0.05)  # a window for a second thread to compile too, were there no lock
        return real(pattern)

    rx = LazyRegex(r"[A-Z][a-z]+ ([A-Z][a-z]+)", None, slow)
    start = threading.Barrier(8)
    seen: list[object] = []

    def use() -> None:
        start.wait()
        assert rx.search("met Maria Gonzalez").group(1) == "Gonzalez"
        seen.append(rx.compiled())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(seen) == 8 and all(x is seen[0] for x in seen)
