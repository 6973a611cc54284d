"""JUnit XML: a testsuite per document, a testcase per gate (fail -> failure, indeterminate -> error)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from engine.formatters.base import Formatter, register, shown
from engine.report import GateResult, Report, Status

# XML 1.0 cannot carry most control characters, even escaped; ElementTree would write them
# anyway and produce a file no parser accepts.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _seconds(ms: float | None) -> str:
    return f"{(ms or 0.0) / 1000:.3f}"


def _details(g: GateResult) -> str:
    lines = [
        f"{g.gate} {g.name}: {g.title}",
        f"severity: {g.severity.value}" + ("" if g.blocking else " (non-blocking)"),
        f"cite: {g.cite}",
        f"message: {g.message}",
    ]
    if g.fix:
        lines.append(f"fix: {g.fix}")
    for s in g.spans:
        page = f" page {s.page}" if s.page else ""
        lines.append(f"at line {s.line} col {s.col}{page}: {s.kind} {s.check}")
    if g.spans_omitted:
        lines.append(f"{g.spans_omitted:,} more spans not listed")
    for a in g.semantic:
        lines.append(f"semantic ({a.model}, {a.verdict}, {a.confidence:.2f}): {a.rationale}")
    return "\n".join(lines)


def _testcase(parent: ET.Element, g: GateResult, where: str) -> None:
    case = ET.SubElement(
        parent,
        "testcase",
        classname=g.module,
        name=f"{g.gate} {g.name}",
        file=where,
        time=_seconds(g.ms),
    )
    if g.spans:
        case.set("line", str(g.spans[0].line))
    if g.status == Status.fail:
        kind = "blocking" if g.blocking else "non-blocking"
        el = ET.SubElement(
            case, "failure", message=_clean(g.message), type=f"{g.severity.value} {kind}"
        )
        el.text = _clean(_details(g))
    elif g.status == Status.indeterminate:
        # 'error' is JUnit's "the test could not run to a verdict", which is what indeterminate
        # means; whether it blocks is in the type, so CI dashboards can tell the two apart.
        el = ET.SubElement(
            case,
            "error",
            message=_clean(g.message),
            type=f"indeterminate {g.on_indeterminate.value}",
        )
        el.text = _clean(_details(g))
    elif g.status == Status.waived:
        w = g.waiver
        why = f"waived by {shown(w.approver)}: {shown(w.reason)}" if w else "waived"
        ET.SubElement(case, "skipped", message=_clean(why))
    elif g.status == Status.not_applicable:
        ET.SubElement(case, "skipped", message="not applicable to this document type")


def _counts(r: Report) -> dict[str, str]:
    # Counted from the gates themselves so the totals always match the testcases written.
    statuses = [g.status for g in r.gates]
    return {
        "tests": str(len(statuses)),
        "failures": str(statuses.count(Status.fail)),
        "errors": str(statuses.count(Status.indeterminate)),
        "skipped": str(statuses.count(Status.not_applicable) + statuses.count(Status.waived)),
    }


@register
class JunitFormatter(Formatter):
    name = "junit"
    suffix = ".xml"

    def render(self, reports: list[Report]) -> str:
        root = ET.Element("testsuites", name="Clearance")
        totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        for r in reports:
            where = shown(r.document.path or r.document.name)  # a name is one line, shown
            counts = _counts(r)
            for key, count in counts.items():
                totals[key] += int(count)
            attrs = {"name": _clean(where), "time": _seconds(r.ms), **counts}
            suite = ET.SubElement(root, "testsuite", attrs)
            props = ET.SubElement(suite, "properties")
            for key, value in (
                ("verdict", r.verdict),
                ("exit_code", str(r.exit_code)),
                ("doc_type", r.document.doc_type or ""),
                ("sha256", r.document.sha256),
                ("ruleset", r.ruleset),
                ("tool_version", r.tool_version),
            ):
                ET.SubElement(props, "property", name=key, value=_clean(value))
            for g in r.gates:
                _testcase(suite, g, _clean(where))
        root.set("time", _seconds(sum(r.ms for r in reports)))
        for key, total in totals.items():
            root.set(key, str(total))
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True)
