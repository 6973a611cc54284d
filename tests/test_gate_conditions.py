"""The law's own conditions ("where applicable") on whole documents, and docs/gate-conditions.md
against the gates it documents: one row per gate, with its real citation and document types."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT
from dsl.ast import DOC_TYPES
from engine.api import Engine
from engine.ingest import document_from_text
from engine.providers.base import NullProvider

DOC = ROOT / "docs" / "gate-conditions.md"
# The real engine with its default (offline) semantic provider: several conditions are "the law
# asks for it here, or the notice says it anyway", and the second half may need a semantic answer.
_ENGINE = Engine(cache=None, audit=None)
_GATES = {g.code: g for m in _ENGINE.list_modules() for g in m.gates}


def _status(text: str, doc_type: str, module: str) -> dict[str, str]:
    report = _ENGINE.validate(document_from_text(text), modules=[module], doc_type=doc_type)
    return {g.gate: getattr(g.status, "value", g.status) for g in report.gates}


# --- the documentation -----------------------------------------------------------------------


def _rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in _GATES:
            assert cells[0] not in rows, f"{cells[0]} has two rows"
            rows[cells[0]] = cells
    return rows


def test_every_gate_has_one_row_with_its_citation_types_and_kind():
    rows = _rows()
    assert set(rows) == set(_GATES), sorted(set(_GATES) ^ set(rows))
    for code, (_, cite, types, kind, condition) in rows.items():
        g = _GATES[code]
        assert cite == "; ".join(g.cite), code
        assert types == (", ".join(sorted(g.applies)) if g.applies else "every type"), code
        assert kind == ("conditional (`when`)" if g.whens else "type only"), code
        assert len(condition) > 20, code


def test_every_document_type_has_its_gates_or_is_said_to_get_only_the_universal_checks():
    text = DOC.read_text(encoding="utf-8")
    universal_only = set(re.findall(r"^\| `(\w+)` \| universal checks only", text, re.M))
    for doc_type in DOC_TYPES:
        specific = [c for c, g in _GATES.items() if g.applies and doc_type in g.applies]
        if doc_type in universal_only:
            assert not specific, (doc_type, specific)
        else:
            assert specific, f"{doc_type}: no gate of its own and not documented as universal only"
            assert re.search(rf"^\| `{doc_type}` \|", text, re.M), doc_type


# --- GDPR: Art. 13 / 14 conditions on whole notices --------------------------------------------

SMALL_STUDIO = """Stillwater Yoga Ltd, 14 Tannery Row, Hebden Bridge HX7 8AL, is the data controller.
Email hello@stillwateryoga.example with questions. We are a small business and are not required
to appoint a data protection officer.

We ask for your name, phone number and any injuries your teacher should know about so that we
can book your sessions. Without them we cannot book your sessions. Everything we hold comes from
you. We book sessions because that is our contract with you."""


def test_small_business_without_a_dpo_and_data_only_from_the_person():
    s = _status(SMALL_STUDIO, "privacy_notice", "gdpr")
    assert s["GDPR-13-1B"] == "pass"  # says none is appointed or needed
    assert s["GDPR-13-2E"] == "pass"  # "without them we cannot book your sessions"
    assert s["GDPR-13-2F"] == "not_applicable"  # no automated decisions described
    assert s["GDPR-13-2C"] == "not_applicable"  # consent is not a basis
    assert s["GDPR-13-1D"] == "not_applicable"  # legitimate interests not relied on
    # Art. 14 (nothing from anyone else) and Art. 21 (no Art. 6(1)(e)/(f), no marketing) do not
    # apply; whether the notice states them anyway is the semantic provider's call, which may be
    # unsure, but the law's silence is never a failure
    assert s["GDPR-14-2F"] != "fail"
    assert s["GDPR-13-2B-OBJECT"] != "fail"


def test_public_body_must_give_a_dpo_contact():
    text = "Ashworth County Council is a public authority. Email garden@ashworth.example."
    assert _status(text, "privacy_notice", "gdpr")["GDPR-13-1B"] == "fail"


def test_art_14_notice_must_name_its_sources():
    vague = SMALL_STUDIO.replace(
        "Everything we hold comes from\nyou.",
        "We may also receive information about you from other sources.",
    )
    named = vague.replace("from other sources", "from your referees and from recruitment agencies")
    # the condition holds, and "from other sources" names none: never a pass (fail, or
    # indeterminate if the semantic provider is unsure)
    assert _status(vague, "privacy_notice", "gdpr")["GDPR-14-2F"] in ("fail", "indeterminate")
    assert _status(named, "privacy_notice", "gdpr")["GDPR-14-2F"] == "pass"


def test_automated_decisions_need_logic_and_consequences_once_described():
    described = (
        SMALL_STUDIO
        + "\nYour membership application is assessed automatically by our scoring model."
    )
    explained = described + (
        " The model looks at factors such as missed payments; if it declines"
        " you, you can ask for a person to review the decision."
    )
    assert _status(described, "privacy_notice", "gdpr")["GDPR-13-2F"] in ("fail", "indeterminate")
    assert _status(explained, "privacy_notice", "gdpr")["GDPR-13-2F"] == "pass"


def test_without_a_semantic_provider_a_condition_is_never_a_silent_pass():
    """A `when` that includes the disclosure's semantic question cannot be decided without a
    provider: the gate stays applicable and comes out INDETERMINATE, not passed."""
    engine = Engine(cache=None, audit=None, provider=NullProvider("no provider"))
    vague = SMALL_STUDIO + "\nWe may also receive information about you from other sources."
    for text in (SMALL_STUDIO, vague):
        report = engine.validate(
            document_from_text(text), modules=["gdpr"], doc_type="privacy_notice"
        )
        status = {g.gate: getattr(g.status, "value", g.status) for g in report.gates}
        assert status["GDPR-14-2F"] == "indeterminate", text


@pytest.mark.parametrize("name", ["sample.html", "sample.pdf", "sample.docx"])
def test_demo_sample_purposes_and_erasure_are_recognised(name):
    report = _ENGINE.validate(
        ROOT / "data" / "samples" / "formats" / name, modules=["gdpr"], doc_type="privacy_notice"
    )
    s = {g.gate: getattr(g.status, "value", g.status) for g in report.gates}
    # "...to deliver your orders and to send you our newsletter"; "correct or erase it"
    assert s["GDPR-13-1C"] == "pass"
    assert s["GDPR-13-2B-ERASURE"] == "pass"


# --- HIPAA: documents that go out -------------------------------------------------------------

LETTER = """Dear Mr. Ortiz,

Your hearing test shows mild hearing loss in your left ear.
{line}

Sincerely, Dr. Ellen Park"""


def test_patient_letter_with_full_ssn_sent_on_to_the_employer_fails_both_ways():
    text = LETTER.format(
        line="SSN: 287-65-4410. Your test results were also forwarded to your "
        "employer, Brightline Freight."
    )
    s = _status(text, "patient_letter", "hipaa")
    assert s["HIPAA-508-THIRDPARTY"] == "fail"
    assert s["HIPAA-502-SSN"] == "fail"


@pytest.mark.parametrize(
    "line",
    [
        "At your request, we sent a copy to your employer's occupational health nurse.",
        "We will not share your results with your employer.",
        "SSN on file: XXX-XX-4410.",
    ],
)
def test_patient_letter_lawful_wording_passes(line):
    s = _status(LETTER.format(line=line), "patient_letter", "hipaa")
    assert s["HIPAA-508-THIRDPARTY"] == "pass" and s["HIPAA-502-SSN"] == "pass"


def test_every_outgoing_type_now_has_hipaa_gates():
    for doc_type in ("patient_letter", "discharge_summary", "email", "research_protocol"):
        s = _status("Dear patient, your results are normal.", doc_type, "hipaa")
        assert any(v != "not_applicable" for v in s.values()), doc_type


@pytest.mark.parametrize(
    "text, expected",
    [
        ("study_code,state,zip3\nP-01,WY,821", "fail"),  # restricted prefix: must be 000
        ("study_code,state,zip3\nP-01,WY,000\nP-02,OR,972", "pass"),
        ("record R-1 | zip3: 036 | stage I", "fail"),
    ],
)
def test_safe_harbor_three_digit_zip(text, expected):
    assert _status(text, "deidentified_extract", "hipaa")["HIPAA-514-GEO"] == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Case 2. A ninety-three-year-old man fell in 2025.", "fail"),
        ("The patient, aged 93, was admitted in 2025.", "fail"),
        ("| Record | Age |\n|---|---|\n| R-01 | 67 |\n| R-02 | 93 |", "fail"),
        ("visit,age_band\nT-1,90-94", "fail"),
        ("Case 3. A man aged 90 or older fell in 2025.", "pass"),
        ("visit,age_band\nT-1,90+", "pass"),
        # the age column is read by position: a ZIP prefix "100" elsewhere in the row is not an age
        ("key,age,sex,zip3\nK1,90+,F,100\nK2,71,M,945", "pass"),
        ("key,zip3,sex,age\nK1,100,F,71\nK2,945,M,93", "fail"),
        ("key\tage\tsex\nK1\t67\tF\nK2\t91\tM", "fail"),
    ],
)
def test_safe_harbor_ages_over_89_in_any_form(text, expected):
    assert _status(text, "deidentified_extract", "hipaa")["HIPAA-514-AGE90"] == expected
