"""HTML: a self-contained page for a person, with findings highlighted in the document's text."""

from __future__ import annotations

import bisect
import heapq
import re
from collections.abc import Iterable
from html import escape

from engine.document import Document
from engine.formatters.base import Formatter, register, shown
from engine.ingest import source_document
from engine.report import GateResult, Report, Span, Status

#: documents longer than this (characters) show only excerpts around the findings.
FULL_TEXT_LIMIT = 20_000
#: lines of context shown before and after each finding in an excerpt.
CONTEXT_LINES = 3
#: characters of context at most, for documents with very long lines.
CONTEXT_CHARS = 400

_STATUS_ORDER = {Status.fail: 0, Status.indeterminate: 1, Status.waived: 2}

_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa;
  --critical:#7f1d1d; --high:#c81e1e; --medium:#b45309; --low:#1d4ed8; --info:#52606d;
  --m-critical:#fca5a5; --m-high:#fecaca; --m-medium:#fde68a; --m-low:#bfdbfe; --m-info:#e4e7eb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
main { max-width:1100px; margin:0 auto; padding:24px 20px 60px; }
header.top { display:flex; justify-content:space-between; align-items:baseline;
  border-bottom:1px solid var(--line); margin-bottom:18px; }
header.top h1 { font-size:20px; margin:0 0 8px; }
.muted { color:var(--muted); font-size:13px; }
section.doc { background:#fff; border:1px solid var(--line); border-radius:10px;
  padding:20px 24px; margin-bottom:28px; box-shadow:0 1px 2px rgba(0,0,0,.04); }
.doc-head { display:flex; align-items:center; gap:14px; flex-wrap:wrap; }
.doc-head h2 { font-size:19px; margin:0; word-break:break-all; }
.badge { display:inline-block; padding:3px 12px; border-radius:999px; color:#fff;
  font-weight:700; letter-spacing:.04em; font-size:13px; }
.v-pass { background:#15803d; } .v-fail { background:#c81e1e; } .v-indeterminate, .v-review { background:#b45309; }
ul.counts { list-style:none; display:flex; flex-wrap:wrap; gap:8px; padding:0; margin:14px 0 4px; }
ul.counts li { background:var(--bg); border:1px solid var(--line); border-radius:8px;
  padding:6px 12px; font-size:13px; color:var(--muted); }
ul.counts li b { display:block; font-size:18px; color:var(--fg); }
ul.counts li.bad b { color:var(--high); } ul.counts li.warn b { color:var(--medium); }
h3 { font-size:16px; margin:22px 0 10px; }
ol.findings { list-style:none; padding:0; margin:0; }
li.finding { border:1px solid var(--line); border-left:5px solid var(--sev); border-radius:8px;
  padding:12px 16px; margin-bottom:12px; }
li.finding:target { box-shadow:0 0 0 3px #93c5fd; }
.f-head { display:flex; flex-wrap:wrap; align-items:center; gap:8px; }
.sev { background:var(--sev); color:#fff; border-radius:4px; padding:1px 7px; font-size:12px;
  font-weight:700; text-transform:uppercase; }
.status { font-size:12px; border:1px solid var(--line); border-radius:4px; padding:1px 7px;
  color:var(--muted); }
.status.blocking { color:var(--high); border-color:var(--m-high); }
code { font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
li.finding p { margin:6px 0; }
.label { display:inline-block; min-width:64px; color:var(--muted); font-size:13px; }
.where a { margin-right:8px; font-size:13px; }
.semantic { background:var(--bg); border-radius:6px; padding:6px 10px; font-size:13px; }
.s-critical { --sev:var(--critical); --mark:var(--m-critical); }
.s-high { --sev:var(--high); --mark:var(--m-high); }
.s-medium { --sev:var(--medium); --mark:var(--m-medium); }
.s-low { --sev:var(--low); --mark:var(--m-low); }
.s-info { --sev:var(--info); --mark:var(--m-info); }
details { margin-top:12px; font-size:14px; } details ul { columns:2; color:var(--muted); }
.excerpt-head { font-size:12px; color:var(--muted); margin:10px 0 2px; }
pre.text { white-space:pre-wrap; word-wrap:break-word; background:#fbfcfd;
  border:1px solid var(--line); border-radius:6px; padding:12px 14px; margin:0;
  font:13px/1.6 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
mark { background:var(--mark); border-bottom:2px solid var(--sev); padding:0 1px; border-radius:2px; }
mark a { color:inherit; text-decoration:none; }
mark.waived { background:#eef0f3; border-bottom:2px dashed var(--info); }
.gap { text-align:center; color:var(--muted); font-size:12px; margin:6px 0; }
.note { color:var(--muted); font-style:italic; }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _status_label(g: GateResult) -> str:
    if g.status == Status.indeterminate:
        return f"indeterminate ({g.on_indeterminate.value})"
    if g.status == Status.waived:
        return "waived"
    return "blocking" if g.blocking else "non-blocking"


def _findings(report: Report) -> list[GateResult]:
    found = [g for g in report.gates if g.status in _STATUS_ORDER]
    return sorted(
        found, key=lambda g: (not g.blocking, _STATUS_ORDER[g.status], -g.severity.rank, g.gate)
    )


def _span_label(s: Span) -> str:
    return f"line {s.line}, col {s.col}" + (f", page {s.page}" if s.page else "")


class _Page:
    """Renders one document's section; ``prefix`` keeps anchor ids unique across documents."""

    def __init__(self, report: Report, doc: Document | None, prefix: str) -> None:
        self.r, self.doc, self.prefix = report, doc, prefix
        self.findings = _findings(report)

    def fid(self, k: int) -> str:
        return f"{self.prefix}-f{k}"

    def render(self) -> str:
        r, s = self.r, self.r.summary
        verdict = r.verdict
        info = [
            r.document.media_type,
            r.document.doc_type or "untyped",
            f"{r.document.chars:,} characters",
            f"sha256 {r.document.sha256[:12]}",
            f"{r.ms:.1f} ms",
        ]
        counts = [
            ("gates", s.gates, ""),
            ("passed", s.passed, ""),
            ("failed", s.failed, "bad" if s.failed else ""),
            ("blocking", s.blocking, "bad" if s.blocking else ""),
            ("indeterminate", s.indeterminate, "warn" if s.indeterminate else ""),
            ("waived", s.waived, ""),
            ("not applicable", s.not_applicable, ""),
        ]
        out = [
            f'<section class="doc" id="{self.prefix}">',
            '<div class="doc-head">',
            f'<span class="badge v-{_e(verdict)}">{_e(verdict.upper())}</span>',
            f"<h2>{_e(shown(r.document.path or r.document.name))}</h2></div>",
            f'<p class="muted">{" · ".join(_e(x) for x in info)}</p>',
            '<ul class="counts">',
        ]
        out += [f'<li class="{cls}"><b>{n}</b>{_e(label)}</li>' for label, n, cls in counts]
        out.append("</ul>")
        out += [f'<p class="note">{_e(w)}</p>' for w in r.warnings]
        out.append(f"<h3>Findings ({len(self.findings)})</h3>")
        if self.findings:
            out.append('<ol class="findings">')
            out += [self.finding(k, g) for k, g in enumerate(self.findings)]
            out.append("</ol>")
        else:
            out.append('<p class="note">No gate failed.</p>')
        rest = [g for g in r.gates if g.status not in _STATUS_ORDER]
        if rest:
            out.append(
                f"<details><summary>Passed and not applicable gates ({len(rest)})</summary><ul>"
            )
            out += [
                f"<li><code>{_e(g.gate)}</code> {_e(g.title)} — {_e(g.status.value)}</li>"
                for g in rest
            ]
            out.append("</ul></details>")
        out.append(self.text())
        out.append("</section>")
        return "\n".join(out)

    def finding(self, k: int, g: GateResult) -> str:
        status_cls = "status blocking" if g.blocking else "status"
        out = [
            f'<li class="finding s-{g.severity.value}" id="{self.fid(k)}">',
            '<div class="f-head">',
            f'<span class="sev">{_e(g.severity.value)}</span>',
            f"<code>{_e(g.gate)}</code><strong>{_e(g.title)}</strong>",
            f'<span class="{status_cls}">{_e(_status_label(g))}</span></div>',
        ]
        if g.message.strip() != g.title.strip():  # many gates' message is their title
            out.append(f"<p>{_e(g.message)}</p>")
        if g.fix:
            out.append(f'<p><span class="label">Fix</span>{_e(g.fix)}</p>')
        out.append(f'<p><span class="label">Citation</span>{_e(g.cite)}</p>')
        if g.spans:
            links = " ".join(
                f'<a href="#{self.fid(k)}-s{j}">{_e(_span_label(s))}</a>'
                for j, s in enumerate(g.spans)
            )
            if g.spans_omitted:
                links += f' <span class="muted">and {g.spans_omitted:,} more not listed</span>'
            out.append(f'<p class="where"><span class="label">Where</span>{links}</p>')
        elif g.status == Status.fail:
            out.append(
                '<p class="where"><span class="label">Where</span>'
                '<span class="muted">nowhere: what the gate requires is missing from the '
                "document</span></p>"
            )
        for a in g.semantic:
            out.append(
                f'<p class="semantic">Asked <em>{_e(a.question)}</em> → '
                f"<b>{_e(a.verdict)}</b> ({a.confidence:.2f}, {_e(a.model)}): "
                f"{_e(a.rationale)}</p>"
            )
        if g.waiver:
            w = g.waiver
            expires = f", expires {w.expires}" if w.expires else ""
            out.append(
                f'<p><span class="label">Waiver</span>{_e(shown(w.reason))} '
                f"(approved by {_e(shown(w.approver))}{_e(expires)})</p>"
            )
        out.append(f'<p class="muted">{_e(g.module)} · {_e(g.name)}</p></li>')
        return "\n".join(out)

    def text(self) -> str:
        if self.doc is None:
            return (
                '<h3>Document text</h3><p class="note">Not shown: the report was rendered '
                "without the document (it was not given, or the file has changed).</p>"
            )
        text = self.doc.text
        spans = sorted(
            (max(0, min(s.start, len(text))), max(0, min(s.end, len(text))), k, j)
            for k, g in enumerate(self.findings)
            for j, s in enumerate(g.spans)
        )
        if len(text) <= FULL_TEXT_LIMIT:
            return (
                '<h3>Document text</h3><pre class="text">'
                + self.marked(0, len(text), spans)
                + "</pre>"
            )
        if not spans:
            return (
                f'<h3>Document text</h3><p class="note">Not shown: {len(text):,} characters '
                "and no finding points into them.</p>"
            )
        out = ["<h3>Excerpts around the findings</h3>"]
        shown = 0  # last line shown so far
        total = self.doc.line_col(len(text.rstrip("\n")))[0]
        for start, end in _windows(text, spans):
            first, last = self.doc.line_col(start)[0], self.doc.line_col(max(start, end - 1))[0]
            if first > shown + 1:
                out.append(_gap(first - shown - 1))
            out.append(
                f'<p class="excerpt-head">lines {first}–{last}</p>'
                f'<pre class="text">{self.marked(start, end, spans)}</pre>'
            )
            shown = last
        if total > shown:
            out.append(_gap(total - shown))
        return "\n".join(out)

    def marked(self, lo: int, hi: int, spans: list[tuple[int, int, int, int]]) -> str:
        """Escaped text[lo:hi] with findings in <mark>; where spans overlap, the most severe
        finding colours the text. A sweep over span ends keeps it O(n log n) in spans."""
        text = self.doc.text if self.doc else ""
        # spans are sorted by start and every excerpt holds its spans whole, so the spans of
        # this excerpt are one slice: no scan of all spans per excerpt.
        inside = spans[bisect.bisect_left(spans, (lo,)) : bisect.bisect_left(spans, (hi,))]
        bounds = sorted(
            {lo, hi, *(max(lo, s[0]) for s in inside), *(min(hi, s[1]) for s in inside)}
        )
        out: list[str] = []
        active: list[tuple[int, int, int, int]] = []  # heap of (rank, finding, end, span)
        nxt = 0
        for a, b in zip(bounds, bounds[1:], strict=False):
            while nxt < len(inside) and max(lo, inside[nxt][0]) <= a:
                start, end, k, j = inside[nxt]
                if start >= lo:  # the anchor the finding's "Where" link points to
                    out.append(f'<span id="{self.fid(k)}-s{j}"></span>')
                g = self.findings[k]
                # Waived findings colour text only where nothing live overlaps them.
                rank = -g.severity.rank + (10 if g.status == Status.waived else 0)
                heapq.heappush(active, (rank, k, end, j))
                nxt += 1
            # Ended spans below the top stay in the heap until they surface (lazy deletion).
            while active and active[0][2] <= a:
                heapq.heappop(active)
            chunk = _e(text[a:b])
            if any(
                e > a and self.findings[kk].spans[jj].kind == "secret" for _, kk, e, jj in active
            ):
                # a credential is never shown, not even in a report for the document's owner
                chunk = re.sub(r"[^\n]", "•", text[a:b])
            if not active:
                out.append(chunk)
                continue
            top = active[0]
            g = self.findings[top[1]]
            waived = " waived" if g.status == Status.waived else ""
            out.append(
                f'<mark class="s-{g.severity.value}{waived}" title="{_e(g.gate)}: {_e(g.message)}">'
                f'<a href="#{self.fid(top[1])}">{chunk}</a></mark>'
            )
        return "".join(out)


def _gap(lines: int) -> str:
    return f'<p class="gap">⋯ {lines:,} line{"s" if lines != 1 else ""} not shown ⋯</p>'


def _windows(text: str, spans: list[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """Merged character ranges covering CONTEXT_LINES lines around each span (at most
    CONTEXT_CHARS characters either side, for very long lines)."""
    ranges = []
    for start, end, _, _ in spans:
        floor, lo = max(0, start - CONTEXT_CHARS), start
        for _ in range(CONTEXT_LINES + 1):
            i = text.rfind("\n", floor, lo)
            if i < 0:
                lo = floor
                break
            lo = i
        else:
            lo += 1  # start after the newline that ends the line before the window
        ceil, hi = min(len(text), end + CONTEXT_CHARS), end
        for _ in range(CONTEXT_LINES + 1):
            i = text.find("\n", hi, ceil)
            if i < 0:
                hi = ceil
                break
            hi = i + 1
        if hi > end and text[hi - 1] == "\n":
            hi -= 1  # end the excerpt before its last newline: no blank line under it
        ranges.append((lo, max(hi, end)))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


@register
class HtmlFormatter(Formatter):
    name = "html"
    suffix = ".html"

    def __init__(self, documents: Iterable[Document] = ()) -> None:
        # The page shows the document's text; given documents are matched to reports by hash,
        # else the file a report names is read back if it is unchanged.
        self.documents = list(documents)

    def render(self, reports: list[Report]) -> str:
        pages = [
            _Page(
                r,
                source_document(
                    r.document.path, r.document.sha256, self.documents, r.document.size
                ),
                f"d{i}",
            )
            for i, r in enumerate(reports)
        ]
        verdicts = [r.verdict for r in reports]
        overall = (
            "fail"
            if "fail" in verdicts
            else "indeterminate"
            if "indeterminate" in verdicts
            else "review"
            if "review" in verdicts
            else "pass"
        )
        title = (
            shown(reports[0].document.name) if len(reports) == 1 else f"{len(reports)} documents"
        )
        version = reports[0].tool_version if reports else ""
        toc = ""
        if len(reports) > 1:
            toc = (
                "<ul>"
                + "".join(
                    f'<li><a href="#d{i}">{_e(shown(r.document.path or r.document.name))}</a> — '
                    f"{_e(r.verdict)}</li>"
                    for i, r in enumerate(reports)
                )
                + "</ul>"
            )
        return "\n".join(
            [
                "<!doctype html>",
                '<html lang="en"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>Clearance: {_e(overall.upper())} — {_e(title)}</title>",
                f"<style>{_CSS}</style></head><body><main>",
                '<header class="top"><h1>Clearance report</h1>',
                f'<span class="muted">Clearance {_e(version)} · contains the document\'s text; '
                "share it only with people who may read the document</span></header>",
                toc,
                *(p.render() for p in pages),
                "</main></body></html>",
                "",
            ]
        )
