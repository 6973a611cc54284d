"""SARIF 2.1.0: one run, a rule per gate, a result per finding with line-independent fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from engine.document import Document
from engine.formatters.base import Formatter, register
from engine.ingest import source_document
from engine.report import GateResult, Report, Severity, Span, Status

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
#: bump when the fingerprint recipe changes, so platforms start new alerts instead of mixing.
FINGERPRINT = "clearanceFinding/v1"

_LEVEL = {
    Severity.critical: "error",
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "note",
    Severity.info: "note",
}
# GitHub code scanning ranks alerts by a CVSS-like number in this property.
_SECURITY_SEVERITY = {
    Severity.critical: "9.5",
    Severity.high: "8.0",
    Severity.medium: "5.5",
    Severity.low: "3.0",
    Severity.info: "1.0",
}
_REPORTED = (Status.fail, Status.indeterminate, Status.waived)
#: check kinds whose matched text is personal data or a secret: never hashed into a fingerprint.
_SENSITIVE_KINDS = {"pii", "secret"}


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _normalised(text: str) -> str:
    # Case and whitespace changes (re-wrapping a paragraph) should not make a new finding.
    return " ".join(text.split()).casefold()


def artifact_uri(report: Report) -> str:
    """A relative URI for the document when it lies under the working directory; code-scanning
    platforms resolve relative URIs against the repository root."""
    raw = report.document.path or report.document.name
    p = Path(raw)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(Path(os.getcwd()).resolve())
        except ValueError:
            return p.resolve().as_uri()
    return quote(p.as_posix())


def _rule(g: GateResult) -> dict:
    fix = g.fix or "See the citation."
    return {
        "id": g.gate,
        "name": g.name,
        "shortDescription": {"text": g.title},
        "fullDescription": {"text": f"{g.title} ({g.cite})"},
        "help": {
            "text": f"{g.title}\nFix: {fix}\nCitation: {g.cite}",
            "markdown": f"**{g.title}**\n\n**Fix:** {fix}\n\n**Citation:** {g.cite}",
        },
        "defaultConfiguration": {"level": _LEVEL[g.severity]},
        "properties": {
            "cite": g.cite,
            "severity": g.severity.value,
            "tags": ["compliance", g.module, g.severity.value],
            "module": g.module,
            "gateVersion": g.version,
            "security-severity": _SECURITY_SEVERITY[g.severity],
        },
    }


class _Fingerprints:
    """Line-independent fingerprints for one document's findings. Two identical findings (same
    gate, same matched text) are told apart by their order, as GitHub's own line hash does."""

    def __init__(self, report: Report, doc: Document | None) -> None:
        self.doc = doc
        self.where = report.document.path or report.document.name
        self.seen: dict[str, int] = {}

    def __call__(self, g: GateResult, span: Span | None) -> str:
        if span is None:
            base = _sha256(g.gate, g.name, "document", self.where)
        elif self.doc is not None and span.kind not in _SENSITIVE_KINDS:
            # Hash the matched text, never copy it: SARIF files travel to platforms that must
            # not receive document contents.
            text_hash = _sha256(_normalised(self.doc.text[span.start : span.end]))
            base = _sha256(g.gate, g.name, "text", text_hash)
        else:
            # Personal data and secrets are short and guessable (an SSN has 10^9 values), so even
            # a hash of them would leak; the check and its masked detail identify the finding.
            base = _sha256(g.gate, g.name, "check", span.check, span.kind, span.detail or "")
        n = self.seen.get(base, 0)
        self.seen[base] = n + 1
        return _sha256(base, str(n))


def _region(span: Span, doc: Document | None) -> dict:
    region: dict = {
        "startLine": span.line,
        "startColumn": span.col,
        "charOffset": span.start,
        "charLength": max(0, span.end - span.start),
    }
    if doc is not None and span.end <= len(doc.text):
        region["endLine"], region["endColumn"] = doc.line_col(span.end)
    if span.page is not None:
        region["properties"] = {"page": span.page}
    return region


def _result(
    g: GateResult,
    rule_index: int,
    uri: str,
    span: Span | None,
    doc: Document | None,
    fingerprint: str,
) -> dict:
    location: dict = {"physicalLocation": {"artifactLocation": {"uri": uri}}}
    # GitHub code scanning places an alert only with region.startLine, so a finding about the
    # whole document (a missing disclosure) points at line 1 and says so.
    region = (
        _region(span, doc)
        if span is not None
        else {"startLine": 1, "properties": {"wholeDocument": True}}
    )
    location["physicalLocation"]["region"] = region
    props: dict = {
        "status": g.status.value,
        "blocking": g.blocking,
        "cite": g.cite,
        "severity": g.severity.value,
    }
    if span is not None:
        # The check and its kind say why; span.detail is left out as it may quote the document.
        props["check"], props["checkKind"] = span.check, span.kind
    if g.status == Status.indeterminate:
        props["indeterminate"] = True
        props["onIndeterminate"] = g.on_indeterminate.value
    if g.spans_omitted:  # the report lists only the first spans (engine.budget caps)
        props["spansOmitted"] = g.spans_omitted
    message = g.message.rstrip(". ") + (f". Fix: {g.fix}" if g.fix else "")
    result: dict = {
        "ruleId": g.gate,
        "ruleIndex": rule_index,
        # Indeterminate gates stay kind 'fail' (the default): SARIF requires level 'none' for
        # any other kind, and a warning is what a reviewer should see.
        "level": "warning" if g.status == Status.indeterminate else _LEVEL[g.severity],
        "message": {"text": message},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT: fingerprint},
        "properties": props,
    }
    if g.status == Status.waived:
        waiver = g.waiver
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": (
                    f"{waiver.reason} (approved by {waiver.approver}"
                    + (f", expires {waiver.expires})" if waiver.expires else ")")
                )
                if waiver
                else "waived",
            }
        ]
    return result


@register
class SarifFormatter(Formatter):
    name = "sarif"
    suffix = ".sarif"

    def __init__(self, documents: Iterable[Document] = ()) -> None:
        # The documents give end positions and fingerprints from the matched text; without them
        # the file on disk is read back if unchanged, else regions carry only their start.
        self.documents = list(documents)

    def build(self, reports: list[Report]) -> dict:
        rules: list[dict] = []
        index: dict[str, int] = {}
        results: list[dict] = []
        artifacts: list[dict] = []
        documents: list[dict] = []
        for r in reports:
            doc = source_document(
                r.document.path, r.document.sha256, self.documents, r.document.size
            )
            uri = artifact_uri(r)
            artifacts.append(
                {
                    "location": {"uri": uri},
                    "length": r.document.size,
                    "mimeType": r.document.media_type,
                    "hashes": {"sha-256": r.document.sha256},
                }
            )
            documents.append(
                {
                    "uri": uri,
                    "verdict": r.verdict,
                    "exitCode": r.exit_code,
                    "ruleset": r.ruleset,
                    "docType": r.document.doc_type,
                }
            )
            fingerprint = _Fingerprints(r, doc)
            for g in r.gates:
                if g.gate not in index:
                    index[g.gate] = len(rules)
                    rules.append(_rule(g))
                if g.status not in _REPORTED:
                    continue
                spans: list[Span | None] = list(g.spans) or [None]
                for span in spans:
                    results.append(_result(g, index[g.gate], uri, span, doc, fingerprint(g, span)))
        version = reports[0].tool_version if reports else "unknown"
        run = {
            "tool": {
                "driver": {
                    "name": "Clearance",
                    "version": version,
                    "semanticVersion": version,
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",  # Span.col counts characters, not UTF-16 units
            "artifacts": artifacts,
            "results": results,
            "invocations": [
                {
                    "executionSuccessful": True,
                    "exitCode": max((r.exit_code for r in reports), default=0),
                }
            ],
            "properties": {"documents": documents},
        }
        return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}

    def render(self, reports: list[Report]) -> str:
        return json.dumps(self.build(reports), indent=2, ensure_ascii=False)
