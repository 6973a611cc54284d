"""Text: one grep-able line per finding (path:line:col: severity CODE message [name]) + summary.

Every line goes out through :func:`engine.formatters.base.shown`: a name, a waiver reason or a
matched phrase holding a newline or an ANSI sequence cannot forge a line or drive the terminal."""

from __future__ import annotations

from engine.formatters.base import Formatter, register, shown
from engine.report import GateResult, Report, Status


def _where(report: Report) -> str:
    return report.document.path or report.document.name


def finding_lines(report: Report) -> list[str]:
    """Findings in document order (document-level findings, which have no span, first)."""
    rows: list[tuple[int, int, str]] = []
    where = _where(report)
    for g in report.gates:
        if g.status in (Status.pass_, Status.not_applicable):
            continue
        tag = _tag(g)
        if g.spans:
            for s in g.spans:
                detail = f" ({s.detail})" if s.detail else ""
                rows.append(
                    (
                        s.line,
                        s.col,
                        f"{where}:{s.line}:{s.col}: {g.severity.value} "
                        f"{g.gate} {g.message}{detail}{tag} [{g.name}]",
                    )
                )
            if g.spans_omitted:
                last = g.spans[-1]
                rows.append(
                    (
                        last.line,
                        last.col + 1,
                        f"{where}:{last.line}:{last.col}: "
                        f"{g.severity.value} {g.gate} {g.spans_omitted:,} more spans not "
                        f"listed [{g.name}]",
                    )
                )
        else:
            rows.append(
                (0, 0, f"{where}:1:1: {g.severity.value} {g.gate} {g.message}{tag} [{g.name}]")
            )
        if g.fix and g.status in (Status.fail, Status.indeterminate):
            # indented, so `grep path:` still finds one line per finding
            first = min(((s.line, s.col) for s in g.spans), default=(0, 0))
            rows.append((*first, f"    fix ({g.gate}): {g.fix}"))
    return [shown(r[2]) for r in sorted(rows, key=lambda r: (r[0], r[1]))]


def _tag(g: GateResult) -> str:
    if g.status == Status.indeterminate:
        return f" (indeterminate: {g.on_indeterminate.value})"
    if g.status == Status.waived and g.waiver:
        return f" (waived by {g.waiver.approver}: {g.waiver.reason})"
    if not g.blocking and g.status == Status.fail:
        return " (non-blocking)"
    return ""


def summary_line(report: Report) -> str:
    s = report.summary
    parts = [f"{s.gates} gates", f"{s.passed} passed", f"{s.failed} failed"]
    if s.indeterminate:
        parts.append(f"{s.indeterminate} indeterminate")
    if s.waived:
        parts.append(f"{s.waived} waived")
    if s.not_applicable:
        parts.append(f"{s.not_applicable} not applicable")
    doc_type = report.document.doc_type or "untyped"
    if report.untyped_policy:
        doc_type += f", policy {report.untyped_policy}"
    if report.jurisdictions:
        doc_type += f"; {'/'.join(report.jurisdictions)}"
    return shown(
        f"{_where(report)}: {report.verdict.upper()} ({doc_type}; {', '.join(parts)}; "
        f"{s.blocking} blocking; {report.ms:.1f} ms)"
    )


@register
class TextFormatter(Formatter):
    name = "text"

    def render(self, reports: list[Report]) -> str:
        out: list[str] = []
        for r in reports:
            out.extend(finding_lines(r))
            for w in r.warnings:
                out.append(shown(f"{_where(r)}: warning: {w}"))
            if r.gates and any(g.checks for g in r.gates):
                out.extend(_profile(r))
        out.extend(summary_line(r) for r in reports)
        return "\n".join(out)


def _profile(r: Report) -> list[str]:
    rows = sorted((g for g in r.gates if g.ms is not None), key=lambda g: -(g.ms or 0))
    out = [shown(f"profile {_where(r)}: gate timings (slowest first)")]
    for g in rows:
        checks = ", ".join(f"{c.check} {c.ms:.2f}ms" for c in (g.checks or []))
        out.append(shown(f"  {g.ms:8.2f} ms  {g.gate:<14} {checks}"))
    return out
