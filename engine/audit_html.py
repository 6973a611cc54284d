"""A self-contained HTML page of the audit log: figures, an inline SVG trend chart, gates, recents."""

from __future__ import annotations

from html import escape
from typing import Any

from engine.audit import AuditStore, VerifyResult, now_iso

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2933;
background:#f5f7fa}
main{max-width:1100px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:17px;margin:32px 0 10px}
.sub{color:#616e7c;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(125px,1fr));gap:12px;margin-top:20px}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card .v{font-size:26px;font-weight:600;white-space:nowrap}.card small{font-size:14px}.card .k{color:#616e7c;font-size:12px;text-transform:uppercase;
letter-spacing:.04em}
.pass{color:#18794e}.fail{color:#c62828}.indeterminate{color:#b26a00}
.panel{background:#fff;border-radius:8px;padding:16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e7eb}th{color:#616e7c;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#fde2e1;border-radius:3px;height:10px;min-width:2px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
.ok{color:#18794e;font-weight:600}.bad{color:#c62828;font-weight:600}
.alarm{background:#c62828;color:#fff;border-radius:8px;padding:16px 20px;margin:0 0 20px}
.alarm h2{margin:0 0 6px;font-size:19px;color:#fff}.alarm p{margin:4px 0}
.alarm ol{margin:8px 0 0;padding-left:22px;font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,monospace;
max-height:420px;overflow:auto}
.card.unverified{outline:2px dashed #c62828}.card .u{color:#c62828;font-size:11px;font-weight:600;
text-transform:uppercase}
"""

_COLORS = {"passed": "#2f9e69", "failed": "#d64545", "indeterminate": "#e8a33d"}


def _num(n: float | int | None, digits: int = 0) -> str:
    if n is None:
        return "–"
    return f"{n:,.{digits}f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def trend_svg(days: list[dict[str, Any]], width: int = 1040, height: int = 240) -> str:
    """Stacked bars per day (passed, failed, indeterminate): readable without any script."""
    if not days:
        return '<p class="sub">No validations recorded yet.</p>'
    left, bottom, top = 44, 28, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(d["validations"] for d in days) or 1
    slot = plot_w / len(days)
    bar = max(1.0, min(36.0, slot * 0.7))
    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="Validations per day">'
    ]
    for i in range(5):  # gridlines with counts, so the chart reads without hovering
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#616e7c">{value:,.0f}</text>'
        )
    label_every = max(1, len(days) // 10)
    for i, d in enumerate(days):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for key in ("passed", "failed", "indeterminate"):
            h = plot_h * d[key] / peak
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{_COLORS[key]}"><title>{escape(d["day"])}: {d[key]:,} {key}'
                "</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 8}" font-size="11" '
                f'text-anchor="middle" fill="#616e7c">{escape(d["day"][5:])}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i class="sw" style="background:{c}"></i>{k}</span>' for k, c in _COLORS.items()
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _banner(check: VerifyResult) -> str:
    """The page's first element when the log does not verify: every problem, in full."""
    items = "".join(f"<li>{escape(p)}</li>" for p in check.problems)
    last = (
        f"validations #{check.last_good_id} (row_hash <code>{escape(check.last_good_hash or '')}"
        "</code>)"
        if check.last_good_id is not None
        else "none"
    )
    figures = (
        "The figures below are recomputed from the rows that are present, not read from "
        "the rollup tables, and are marked unverified: rows were deleted, edited or "
        "inserted, so they are not a record."
        if check.derived is not None
        else "The file is damaged: no figures are shown."
    )
    return (
        f'<section class="alarm" role="alert"><h2>The audit log does NOT verify: '
        f"{len(check.problems):,} problem{'s' if len(check.problems) != 1 else ''}</h2>"
        f"<p>Last good row: {last}. {figures}</p><ol>{items}</ol></section>"
    )


def render(
    log: AuditStore,
    *,
    since: str | None = None,
    recent: int = 25,
    top: int = 10,
    verify: bool = True,
    check: VerifyResult | None = None,
) -> str:
    """The page. ``check`` is a verification already run (else one is run when ``verify``).
    When the log does not verify, the page opens with a red banner listing every problem and
    every figure comes from the rows read during verification, marked unverified."""
    if check is None and verify:
        check = log.verify()
    trusted = check is None or check.ok
    if trusted:
        stats = log.stats(since=since)
        days = log.trends(since=since)
        failing = log.top_failing(limit=top, since=since)
        rows = log.recent(recent)
    elif check is not None and check.derived is not None:
        stats = check.derived.stats(since)
        days = check.derived.trends(since)
        failing = check.derived.top_failing(top, since)
        rows = log.recent(recent)
    else:  # a damaged file: nothing in it can be read as figures
        stats = {
            "validations": None,
            "pass_rate": None,
            "failed": None,
            "indeterminate": None,
            "duration_ms": None,
            "cache_hits": None,
            "llm_calls": None,
        }
        days, failing, rows = [], [], []
    n = stats["validations"]
    avg_ms = stats["duration_ms"] / n if n else None
    hit_rate = stats["cache_hits"] / n if n else None
    if check is None:
        integrity = "chain not checked (run <code>clearance audit verify</code>)"
    elif check.ok:
        integrity = (
            f'<span class="ok">chain verified</span> ({check.validations:,} validations,'
            f" head <code>{escape((check.head_hash or '')[:16])}</code>)"
        )
    else:
        integrity = (
            f'<span class="bad">chain does NOT verify</span>: '
            f"{len(check.problems):,} problem(s), listed above"
        )

    cards = [
        ("Validations", _num(n), ""),
        ("Pass rate", _pct(stats["pass_rate"]), "pass"),
        ("Failed", _num(stats["failed"]), "fail"),
        ("Indeterminate", _num(stats["indeterminate"]), "indeterminate"),
        ("Avg duration", f"{_num(avg_ms, 1)} <small>ms</small>", ""),
        ("Cache hits", _pct(hit_rate), ""),
        ("LLM calls", _num(stats["llm_calls"]), ""),
    ]
    mark = "" if trusted else '<div class="u">unverified</div>'
    card_html = "".join(
        f'<div class="card{"" if trusted else " unverified"}"><div class="k">{k}'
        f'</div><div class="v {c}">{v}</div>{mark}</div>'
        for k, v, c in cards
    )
    banner = "" if trusted or check is None else _banner(check)
    worst = max((g["failed"] for g in failing), default=1) or 1
    gate_rows = (
        "".join(
            f"<tr><td><code>{escape(g['gate'])}</code></td><td>{escape(g['module'])}</td>"
            f'<td class="n">{g["failed"]:,}</td><td class="n">{g["evaluated"]:,}</td>'
            f'<td class="n">{g["fail_pct"]}%</td><td style="width:30%"><div class="bar" '
            f'style="width:{100 * g["failed"] / worst:.0f}%;background:#d64545"></div></td></tr>'
            for g in failing
        )
        or '<tr><td colspan="6" class="sub">No failing gates.</td></tr>'
    )
    recent_rows = (
        "".join(
            f'<tr><td class="n">{r["id"]}</td><td>{escape(r["time"][:19].replace("T", " "))}</td>'
            f"<td>{escape(r['doc_name'] or '')} <code>{escape(r['doc_sha256'][:12])}</code></td>"
            f'<td class="{escape(r["verdict"])}">{escape(r["verdict"])}</td>'
            f'<td class="n">{r["failed"]}</td><td class="n">{_num(r["duration_ms"], 1)}</td>'
            f"<td>{'hit' if r['cache_hit'] else ''}</td><td>{escape(r['principal'] or '')}</td></tr>"
            for r in rows
        )
        or '<tr><td colspan="8" class="sub">Nothing recorded yet.</td></tr>'
    )
    scope = f"since {escape(since)}" if since else "all recorded history"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Clearance audit report</title><style>{_CSS}</style></head>
<body><main>
{banner}<h1>Clearance audit report</h1>
<div class="sub">{escape(log.location)} · {scope} · generated {escape(now_iso()[:19])} UTC ·
{integrity}</div>
<div class="cards">{card_html}</div>
<h2>Validations per day</h2><div class="panel">{trend_svg(days)}</div>
<h2>Top failing gates</h2><div class="panel"><table>
<tr><th>Gate</th><th>Module</th><th class="n">Failed</th><th class="n">Evaluated</th>
<th class="n">Fail rate</th><th></th></tr>
{gate_rows}</table></div>
<h2>Recent validations</h2><div class="panel"><table>
<tr><th class="n">#</th><th>Time (UTC)</th><th>Document</th><th>Verdict</th>
<th class="n">Failed gates</th><th class="n">ms</th><th>Cache</th><th>Principal</th></tr>
{recent_rows}</table></div>
</main></body></html>
"""
