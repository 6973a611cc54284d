"""Report formats: SARIF against the official schema, JUnit parsed back, HTML escaped and marked."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from engine.document import Document
from engine.formatters.base import formats, get_formatter
from engine.formatters.html import HtmlFormatter
from engine.formatters.junit import JunitFormatter
from engine.formatters.sarif import FINGERPRINT, SarifFormatter
from engine.report import (
    DocumentInfo,
    GateResult,
    ModuleRef,
    OnIndeterminate,
    Report,
    SemanticAnswer,
    Severity,
    Span,
    Status,
    Summary,
    Waiver,
)

SARIF_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "engine/schema/sarif-2.1.0.json").read_text()
)

NOTICE = """# Privacy notice

We collect your email address.

## Contact

Write to jane.doe@example.com with questions.
"""

# --- a small factory: reports built from the pydantic models directly ------------------------


def span_of(doc: Document, needle: str, nth: int = 0, kind: str = "pii") -> Span:
    start = -1
    for _ in range(nth + 1):
        start = doc.text.index(needle, start + 1)
    line, col = doc.line_col(start)
    return Span(
        start=start,
        end=start + len(needle),
        line=line,
        col=col,
        page=doc.page(start),
        check="pii EMAIL" if kind == "pii" else f"{kind} /x/",
        kind=kind,
        detail="EMAIL",
    )


def gate(
    code: str,
    status: Status = Status.fail,
    severity: Severity = Severity.high,
    spans: list[Span] | None = None,
    **kw: object,
) -> GateResult:
    fields: dict = {
        "gate": code,
        "name": code.lower().replace("-", "_"),
        "module": "gdpr",
        "version": "v" + code,
        "title": f"Title of {code}",
        "status": status,
        "severity": severity,
        "blocking": status == Status.fail
        or (status == Status.indeterminate and kw.get("on_indeterminate") == OnIndeterminate.block),
        "cite": f"GDPR Art. {code}",
        "message": f"{code} failed",
        "fix": f"Fix {code}.",
        "on_indeterminate": OnIndeterminate.review,
        "spans": spans or [],
    }
    fields.update(kw)
    return GateResult(**fields)


def make_report(doc: Document, gates: list[GateResult]) -> Report:
    def count(st: Status) -> int:
        return sum(g.status == st for g in gates)

    blocking = sum(g.blocking for g in gates)
    verdict = "fail" if blocking else "indeterminate" if count(Status.indeterminate) else "pass"
    return Report(
        tool_version="0.1.0",
        document=DocumentInfo(
            name=doc.name,
            path=doc.path,
            sha256=doc.sha256,
            size=doc.size,
            media_type=doc.media_type,
            doc_type="privacy_notice",
            doc_type_source="given",
            chars=len(doc.text),
            lines=doc.text.count("\n") + 1,
            sections=len(doc.sections),
        ),
        verdict=verdict,
        exit_code=1 if blocking else 0,
        modules=[ModuleRef(id="gdpr", version="1")],
        ruleset="r" * 12,
        gates=gates,
        summary=Summary(
            gates=len(gates),
            passed=count(Status.pass_),
            failed=count(Status.fail),
            indeterminate=count(Status.indeterminate),
            not_applicable=count(Status.not_applicable),
            waived=count(Status.waived),
            blocking=blocking,
            by_severity={
                s.value: sum(g.severity == s and g.status == Status.fail for g in gates)
                for s in Severity
            },
        ),
        ms=12.5,
    )


def doc_of(text: str, path: str = "docs/notice.md") -> Document:
    return Document(text=text, name=Path(path).name, path=path, media_type="text/markdown")


def mixed_report(doc: Document) -> Report:
    return make_report(
        doc,
        [
            gate("PII-1", spans=[span_of(doc, "jane.doe@example.com")]),
            gate("GDPR-13-1A", severity=Severity.medium),  # a missing disclosure: no span
            gate(
                "GDPR-13-2B",
                Status.indeterminate,
                severity=Severity.low,
                on_indeterminate=OnIndeterminate.block,
                message="model could not decide",
                semantic=[
                    SemanticAnswer(
                        question="Is retention stated?",
                        verdict="unclear",
                        confidence=0.4,
                        rationale="It is <vague>.",
                        provider="fake",
                        model="m-1",
                        prompt_version="p1",
                    )
                ],
            ),
            gate("GDPR-13-1C", Status.pass_),
            gate("HIPAA-1", Status.not_applicable),
            gate(
                "GDPR-13-2A",
                Status.waived,
                severity=Severity.critical,
                spans=[span_of(doc, "email address", kind="phrase")],
                waiver=Waiver(reason="legal approved", approver="dpo@acme"),
            ),
        ],
    )


# --- registry ---------------------------------------------------------------------------------


def test_every_format_is_discovered_and_renders() -> None:
    assert {"text", "json", "sarif", "junit", "html"} <= set(formats())
    report = mixed_report(doc_of(NOTICE))
    for name in ("sarif", "junit", "html"):
        assert get_formatter(name).render([report])


# --- SARIF --------------------------------------------------------------------------------------


def sarif(reports: list[Report], docs: list[Document]) -> dict:
    log = json.loads(SarifFormatter(docs).render(reports))
    jsonschema.validate(log, SARIF_SCHEMA)
    return log


def test_sarif_validates_and_carries_rules_levels_and_regions() -> None:
    doc = doc_of(NOTICE)
    log = sarif([mixed_report(doc)], [doc])
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert run["tool"]["driver"]["name"] == "Clearance"
    assert set(rules) == {
        "PII-1",
        "GDPR-13-1A",
        "GDPR-13-2B",
        "GDPR-13-1C",
        "HIPAA-1",
        "GDPR-13-2A",
    }
    assert "Fix PII-1." in rules["PII-1"]["help"]["text"]
    assert rules["PII-1"]["properties"]["cite"] == "GDPR Art. PII-1"
    assert rules["PII-1"]["properties"]["gateVersion"] == "vPII-1"

    results = {r["ruleId"]: r for r in run["results"]}
    assert set(results) == {"PII-1", "GDPR-13-1A", "GDPR-13-2B", "GDPR-13-2A"}
    assert results["PII-1"]["level"] == "error"
    assert results["GDPR-13-1A"]["level"] == "warning"
    assert results["GDPR-13-2B"]["level"] == "warning"
    assert results["GDPR-13-2B"]["properties"]["indeterminate"] is True
    assert results["GDPR-13-2A"]["suppressions"][0]["justification"].startswith("legal approved")
    for r in run["results"]:
        assert rules[r["ruleId"]] == run["tool"]["driver"]["rules"][r["ruleIndex"]]

    loc = results["PII-1"]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "docs/notice.md"
    start = NOTICE.index("jane.doe")
    assert loc["region"] == {
        "startLine": 7,
        "startColumn": 10,
        "endLine": 7,
        "endColumn": 30,
        "charOffset": start,
        "charLength": 20,
    }
    missing = results["GDPR-13-1A"]["locations"][0]["physicalLocation"]["region"]
    assert missing == {"startLine": 1, "properties": {"wholeDocument": True}}


def test_sarif_never_contains_document_text() -> None:
    doc = doc_of(NOTICE)
    out = SarifFormatter([doc]).render([mixed_report(doc)])
    assert "jane.doe@example.com" not in out
    assert "jane" not in out.lower()


def test_sarif_fingerprints_do_not_depend_on_lines() -> None:
    before = doc_of(NOTICE)
    after = doc_of(NOTICE.replace("## Contact", "Extra paragraph.\n\nAnother one.\n\n## Contact"))
    fp = []
    for doc in (before, after):
        run = sarif([mixed_report(doc)], [doc])["runs"][0]
        fp.append(
            {
                r["ruleId"]: (
                    r["partialFingerprints"][FINGERPRINT],
                    r["locations"][0]["physicalLocation"].get("region", {}).get("startLine"),
                )
                for r in run["results"]
            }
        )
    assert fp[0]["PII-1"][1] != fp[1]["PII-1"][1]  # the finding moved ...
    assert fp[0] == {k: (v[0], fp[0][k][1]) for k, v in fp[1].items()}  # ... its print did not
    # and re-wrapping the matched text (case, whitespace) keeps it too
    assert len({v[0] for v in fp[0].values()}) == len(fp[0])


def test_sarif_fingerprints_tell_identical_findings_apart() -> None:
    doc = doc_of("a@b.example and again a@b.example\n")
    spans = [span_of(doc, "a@b.example"), span_of(doc, "a@b.example", nth=1)]
    run = sarif([make_report(doc, [gate("PII-1", spans=spans)])], [doc])["runs"][0]
    prints = [r["partialFingerprints"][FINGERPRINT] for r in run["results"]]
    assert len(prints) == 2 and prints[0] != prints[1]


def test_sarif_fingerprints_of_personal_data_do_not_hash_the_value() -> None:
    # An SSN has 10^9 values: a hash of it could be reversed. Fingerprints of pii/secret spans
    # come from the check and its masked detail, so changing the hidden digits changes nothing.
    prints = []
    for ssn in ("536-22-1847", "536-99-1847"):
        doc = doc_of(f"Patient SSN {ssn} on file.\n")
        span = span_of(doc, ssn).model_copy(update={"detail": "US_SSN 53*******47"})
        run = sarif([make_report(doc, [gate("SSN-1", spans=[span])])], [doc])["runs"][0]
        prints.append(run["results"][0]["partialFingerprints"][FINGERPRINT])
    assert prints[0] == prints[1]
    # ... while other kinds (phrases, regexes) fingerprint the matched text itself
    fps = []
    for phrase in ("email address", "postal address"):
        doc = doc_of(NOTICE.replace("email address", phrase))
        span = span_of(doc, phrase, kind="phrase")
        run = sarif([make_report(doc, [gate("P-1", spans=[span])])], [doc])["runs"][0]
        fps.append(run["results"][0]["partialFingerprints"][FINGERPRINT])
    assert fps[0] != fps[1]


def test_sarif_missing_disclosure_fingerprint_depends_on_path() -> None:
    prints = []
    for path in ("a/notice.md", "b/notice.md"):
        doc = doc_of(NOTICE, path)
        run = sarif([make_report(doc, [gate("GDPR-13-1A")])], [doc])["runs"][0]
        prints.append(run["results"][0]["partialFingerprints"][FINGERPRINT])
    assert prints[0] != prints[1]


def test_sarif_without_the_document_still_validates() -> None:
    doc = doc_of(NOTICE, "not/on/disk.md")
    run = sarif([mixed_report(doc)], [])["runs"][0]
    region = run["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == 7 and "endLine" not in region


def test_sarif_several_documents_share_one_run() -> None:
    a, b = doc_of(NOTICE, "a.md"), doc_of(NOTICE + "\nMore.\n", "b.md")
    log = sarif([mixed_report(a), mixed_report(b)], [a, b])
    assert len(log["runs"]) == 1
    run = log["runs"][0]
    assert len(run["tool"]["driver"]["rules"]) == 6
    assert [x["location"]["uri"] for x in run["artifacts"]] == ["a.md", "b.md"]


# --- JUnit ------------------------------------------------------------------------------------


def test_junit_one_case_per_gate_with_failure_error_skipped() -> None:
    doc = doc_of(NOTICE)
    root = ET.fromstring(JunitFormatter().render([mixed_report(doc), mixed_report(doc)]))
    assert root.tag == "testsuites" and root.get("tests") == "12"
    suites = root.findall("testsuite")
    assert len(suites) == 2
    suite = suites[0]
    assert suite.get("name") == "docs/notice.md"
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == ("6", "2", "1", "2")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["PII-1 pii_1"].get("classname") == "gdpr"
    failure = cases["PII-1 pii_1"].find("failure")
    assert failure is not None and failure.get("type") == "high blocking"
    assert "Fix PII-1." in (failure.text or "") and "line 7 col 10" in (failure.text or "")
    error = cases["GDPR-13-2B gdpr_13_2b"].find("error")
    assert error is not None and error.get("type") == "indeterminate block"
    assert "It is <vague>." in (error.text or "")
    assert cases["GDPR-13-1C gdpr_13_1c"].find("*") is None
    assert "not applicable" in cases["HIPAA-1 hipaa_1"].find("skipped").get("message")
    assert "legal approved" in cases["GDPR-13-2A gdpr_13_2a"].find("skipped").get("message")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "fail"


def test_junit_escapes_markup_and_drops_control_characters() -> None:
    doc = doc_of(NOTICE)
    report = make_report(doc, [gate("X-1", message='bad <tag> & "quote" \x01\x1b end')])
    text = JunitFormatter().render([report])
    case = ET.fromstring(text).find("testsuite/testcase")
    assert case.find("failure").get("message") == 'bad <tag> & "quote" \ufffd\ufffd end'


# --- HTML -------------------------------------------------------------------------------------


def test_html_escapes_document_text_and_marks_findings() -> None:
    doc = doc_of(NOTICE + "\n<script>alert('x')</script> contact evil@example.com\n")
    report = make_report(
        doc,
        [
            gate(
                "PII-1",
                spans=[span_of(doc, "jane.doe@example.com"), span_of(doc, "evil@example.com")],
                message="<b>personal</b> data",
            ),
            gate("GDPR-13-1A", severity=Severity.low),
        ],
    )
    page = HtmlFormatter([doc]).render([report])
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<b>personal</b>" not in page and "&lt;b&gt;personal&lt;/b&gt;" in page
    marks = re.findall(r'<mark class="s-high"[^>]*><a href="#d0-f0">([^<]*)</a></mark>', page)
    assert marks == ["jane.doe@example.com", "evil@example.com"]
    assert 'id="d0-f0-s0"' in page and 'href="#d0-f0-s1"' in page
    assert "Fix PII-1." in page and "GDPR Art. PII-1" in page and ">FAIL<" in page


def test_html_overlapping_spans_take_the_most_severe_colour() -> None:
    doc = doc_of("Contact jane.doe@example.com now.\n")
    page = HtmlFormatter([doc]).render(
        [
            make_report(
                doc,
                [
                    gate(
                        "LOW-1",
                        severity=Severity.low,
                        spans=[span_of(doc, "Contact jane.doe", kind="regex")],
                    ),
                    gate(
                        "HIGH-1",
                        severity=Severity.high,
                        spans=[span_of(doc, "jane.doe@example.com")],
                    ),
                ],
            )
        ]
    )
    body = page.split('<pre class="text">')[1].split("</pre>")[0]
    plain = re.sub(r"<[^>]+>", "", body)
    assert plain == "Contact jane.doe@example.com now.\n"
    assert '<mark class="s-high"' in body and '<mark class="s-low"' in body
    assert re.search(r's-high"[^>]*><a href="#d0-f0">jane.doe</a>', body)


def test_html_long_documents_show_only_excerpts() -> None:
    filler = "".join(
        f"Line {i} of filler text that says nothing much at all.\n" for i in range(5000)
    )
    doc = doc_of(filler + "Write to jane.doe@example.com.\n" + filler)
    page = HtmlFormatter([doc]).render(
        [make_report(doc, [gate("PII-1", spans=[span_of(doc, "jane.doe@example.com")])])]
    )
    assert len(doc.text) > 500_000 and len(page) < 30_000
    assert "Excerpts around the findings" in page and "lines not shown" in page
    assert "Line 4999 of filler" in page and "Line 4990 of filler" not in page
    assert ">jane.doe@example.com</a></mark>" in page


def test_html_without_the_document_says_so() -> None:
    doc = doc_of(NOTICE, "gone.md")
    page = HtmlFormatter().render([mixed_report(doc)])
    assert "Not shown" in page and "jane.doe" not in page


def test_html_reads_back_an_unchanged_file(tmp_path: Path) -> None:
    from engine.ingest import load_document

    path = tmp_path / "notice.md"
    path.write_text(NOTICE)
    doc = load_document(path)
    report = mixed_report(doc)
    assert "jane.doe@example.com</a></mark>" in HtmlFormatter().render([report])
    path.write_text(NOTICE.replace("jane", "john"))  # changed since: must not be shown
    assert "john" not in HtmlFormatter().render([report])


@pytest.mark.parametrize("name", ["sarif", "junit", "html"])
def test_empty_report_renders(name: str) -> None:
    doc = doc_of(NOTICE)
    assert get_formatter(name).render([make_report(doc, [])])


# --- end to end through the engine ------------------------------------------------------------


def test_engine_reports_render_in_every_format() -> None:
    api = pytest.importorskip("engine.api")
    from engine.providers.base import NullProvider

    root = Path(__file__).resolve().parents[1] / "data/samples"
    engine = api.Engine(provider=NullProvider(), cache=None, audit=None)
    docs = [
        engine.load(root / "research-extract.csv.txt"),
        engine.load(root / "formats/sample.pdf"),
    ]
    reports = [engine.validate(d) for d in docs]
    for name in formats():
        assert get_formatter(name).render(reports)
    log = sarif(reports, docs)
    assert log["runs"][0]["results"]
    suites = ET.fromstring(JunitFormatter().render(reports)).findall("testsuite")
    assert [int(s.get("tests")) for s in suites] == [len(r.gates) for r in reports]
    page = HtmlFormatter(docs).render(reports)
    # The sample's findings belong to the HIPAA module; mark only what it reports.
    assert ("</a></mark>" in page) == any(
        g.spans
        for r in reports
        for g in r.gates
        if g.status in (Status.fail, Status.indeterminate, Status.waived)
    )
