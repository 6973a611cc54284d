"""Hostile documents built in memory (never stored) and a subprocess probe for time and peak RSS."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOC_HEAD = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W_NS}"><w:body>'
)
DOC_TAIL = "</w:body></w:document>"


def docx_package(document_xml: str | bytes, extra: dict[str, str | bytes] | None = None) -> bytes:
    """A minimal but valid .docx around ``document_xml`` (python-docx opens it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("word/document.xml", document_xml)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _repeated_deflate(head: bytes, unit: bytes, copies: int, tail: bytes) -> tuple[bytes, int, int]:
    """Raw deflate of head + unit*copies + tail without compressing it all: after a full flush
    the compressor emits the same bytes for the same input, so one ~1 MiB block is compressed
    and its output repeated. Returns (data, inflated size, crc32)."""
    per_block = max(1, (1 << 20) // len(unit))
    block = unit * per_block
    n_blocks, rest = divmod(copies, per_block)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(head)
    if n_blocks:
        once = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
        parts.append(once * n_blocks)
        for _ in range(n_blocks):
            crc = zlib.crc32(block, crc)
    end = unit * rest + tail
    parts.append(c.compress(end) + c.flush())
    crc = zlib.crc32(end, crc)
    return b"".join(parts), len(head) + len(unit) * copies + len(tail), crc


def _zip_with_raw_member(
    name: str, raw: bytes, crc: int, declared: int, others: dict[str, str]
) -> bytes:
    """A ZIP whose ``name`` member is the raw deflate ``raw``, declaring ``declared`` bytes
    inflated (which may be a lie), written by hand so the headers say what we want."""
    import struct

    buf = io.BytesIO()
    central: list[bytes] = []

    def add(fname: str, data: bytes, crc_: int, size: int, method: int) -> None:
        offset = buf.tell()
        fn = fname.encode()
        buf.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                method,
                0,
                0x21,
                crc_,
                len(data),
                size,
                len(fn),
                0,
            )
            + fn
            + data
        )
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                method,
                0,
                0x21,
                crc_,
                len(data),
                size,
                len(fn),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + fn
        )

    for fname, text in others.items():
        data = text.encode()
        add(fname, data, zlib.crc32(data), len(data), 0)
    add(name, raw, crc, declared, 8)
    cd_offset = buf.tell()
    cd = b"".join(central)
    buf.write(cd)
    buf.write(
        struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(cd), cd_offset, 0
        )
    )
    return buf.getvalue()


def docx_lying_headers(inflated: int = 3_000_000_000) -> bytes:
    """~3 MB .docx whose word/document.xml declares 4 KB but inflates to ``inflated`` bytes
    (the CRC is that of the declared prefix, so a reader that trusts the headers finds nothing
    wrong until it has inflated the lot)."""
    head = DOC_HEAD.encode() + b"<w:p><w:r><w:t>"
    raw, _, _ = _repeated_deflate(head, b" ", inflated - len(head), b"")
    declared = 4096
    prefix = (head + b" " * declared)[:declared]
    return _zip_with_raw_member(
        "word/document.xml",
        raw,
        zlib.crc32(prefix),
        declared,
        {"[Content_Types].xml": _CONTENT_TYPES, "_rels/.rels": _RELS},
    )


def docx_empty_paragraphs(inflated: int = 190_000_000) -> bytes:
    """A few hundred KB .docx whose document.xml is ~190 MB of empty paragraphs: under the old
    declared-size cap (10 x 20 MB), each one a Python object in python-docx."""
    head, tail, unit = DOC_HEAD.encode(), DOC_TAIL.encode(), b"<w:p/>"
    raw, size, crc = _repeated_deflate(head, unit, (inflated - len(head)) // len(unit), tail)
    return _zip_with_raw_member(
        "word/document.xml",
        raw,
        crc,
        size,
        {"[Content_Types].xml": _CONTENT_TYPES, "_rels/.rels": _RELS},
    )


def docx_xml_bomb() -> bytes:
    """Billion laughs in word/document.xml: 10 levels of 10 entity references."""
    ents = ['<!ENTITY a0 "lol lol lol lol lol lol lol lol lol lol">']
    for i in range(1, 10):
        ents.append(f'<!ENTITY a{i} "' + f"&a{i - 1};" * 10 + '">')
    xml = (
        '<?xml version="1.0"?><!DOCTYPE w:document [' + "".join(ents) + "]>"
        f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>&a9;</w:t></w:r></w:p>' + DOC_TAIL
    )
    return docx_package(xml)


def docx_many_parts(parts: int = 60_000) -> bytes:
    """A .docx with tens of thousands of tiny parts (the central directory alone is work)."""
    body = DOC_HEAD + "<w:p><w:r><w:t>The controller is Acme Ltd.</w:t></w:r></w:p>" + DOC_TAIL
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("word/document.xml", body)
        for i in range(parts):
            zf.writestr(f"customXml/i{i}.xml", "")
    return buf.getvalue()


def pdf_shared_stream(
    pages: int = 200, stream_bytes: int = 1_400_000, shared_font: bool = True
) -> bytes:
    """A small PDF whose ``pages`` pages all draw one large FlateDecode content stream, with one
    font for all (as a PDF writer makes it), or a font object of its own on each page (so no
    page's text can be assumed to be another's)."""
    lines: list[bytes] = []
    size, i = 0, 0
    while size < stream_bytes:
        y = 760 - (i % 70) * 10
        line = f"BT /F1 9 Tf 40 {y} Td (Line {i % 100} of the notice: Acme Ltd is the controller.) Tj ET\n"
        lines.append(line.encode())
        size += len(line)
        i += 1
    content = zlib.compress(b"".join(lines), 9)
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objs: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
        + content
        + b"\nendstream",
        4: font,
    }
    kids = []
    for p in range(pages):
        n = 5 + 2 * p
        font_ref = 4 if shared_font else n + 1
        if not shared_font:
            objs[n + 1] = font
        kids.append(b"%d 0 R" % n)
        objs[n] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % font_ref
        )
    objs[2] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % pages
    return _pdf(objs)


def pdf_many_pages(pages: int = 100_000) -> bytes:
    """A small PDF with a huge page count, every page one short line."""
    content = b"BT /F1 12 Tf 72 720 Td (Acme Ltd is the controller.) Tj ET"
    objs: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        4: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    # a balanced page tree of at most 100 kids a node (pypdf caps array sizes)
    parent: dict[int, int] = {}
    count: dict[int, int] = {}
    level = list(range(5, 5 + pages))
    for n in level:
        count[n] = 1
    nxt = 5 + pages
    kids: dict[int, list[int]] = {}
    while len(level) > 100:
        up = []
        for k in range(0, len(level), 100):
            kids[nxt] = level[k : k + 100]
            count[nxt] = sum(count[g] for g in kids[nxt])
            for g in kids[nxt]:
                parent[g] = nxt
            up.append(nxt)
            nxt += 1
        level = up
    kids[2] = level
    count[2] = pages
    for g in level:
        parent[g] = 2
    for n in range(5, 5 + pages):
        objs[n] = (
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
            b"/Resources << /Font << /F1 4 0 R >> >> >>" % parent[n]
        )
    for n, ks in kids.items():
        up_ref = b"/Parent %d 0 R " % parent[n] if n in parent else b""
        objs[n] = (
            b"<< /Type /Pages "
            + up_ref
            + b"/Kids ["
            + b" ".join(b"%d 0 R" % k for k in ks)
            + b"] /Count %d >>" % count[n]
        )
    return _pdf(objs)


def _pdf(objs: dict[int, bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for n in sorted(objs):
        offsets[n] = out.tell()
        out.write(b"%d 0 obj\n" % n + objs[n] + b"\nendobj\n")
    xref = out.tell()
    top = max(objs)
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (top + 1))
    for n in range(1, top + 1):
        out.write(b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n")
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (top + 1, xref))
    return out.getvalue()


def html_nested(depth: int = 100_000) -> bytes:
    """``<div><span>`` repeated ``depth`` times around one sentence, never closed."""
    return b"<html><body>" + b"<div><span>" * depth + b"Acme Ltd is the controller."


def html_wide(elements: int = 2_000_000) -> bytes:
    """Millions of empty sibling elements (a flat page, but a huge tree)."""
    return b"<html><body><p>Acme Ltd is the controller.</p>" + b"<i></i>" * elements


def text_long_line(size: int = 19_000_000) -> bytes:
    """One 19 MB line with no newline (heading detection and line maps)."""
    return b"Acme Ltd is the controller " * (size // 27)


def md_heading_spaces(spaces: int = 1_000_000) -> bytes:
    """A Markdown heading line with a long run of spaces before its last word."""
    return b"# a" + b" " * spaces + b"b\n"


def txt_heading_spaces(spaces: int = 1_000_000) -> bytes:
    """A plain-text line that starts like a heading, then a long run of spaces."""
    return b"A" + b" " * spaces + b"x\n"


HOSTILE = {
    "pdf-shared-stream": pdf_shared_stream,
    "pdf-shared-stream-font-per-page": lambda: pdf_shared_stream(shared_font=False),
    "pdf-100k-pages": pdf_many_pages,
    "docx-lying-headers": docx_lying_headers,
    "docx-empty-paragraphs": docx_empty_paragraphs,
    "docx-xml-bomb": docx_xml_bomb,
    "docx-60k-parts": docx_many_parts,
    "html-nested-100k": html_nested,
    "html-2m-siblings": html_wide,
    "txt-19mb-one-line": text_long_line,
    "md-heading-1m-spaces": md_heading_spaces,
    "txt-heading-1m-spaces": txt_heading_spaces,
}

_SUFFIX = {"pdf": ".pdf", "docx": ".docx", "html": ".html", "txt": ".txt", "md": ".md"}

_CHILD = r"""
import json, sys, time, resource
t0 = time.monotonic()
from engine.errors import ClearanceError
from engine.ingest import load_document
kw = json.loads(sys.argv[2])
if kw.pop("deadline_in", None) is not None:
    kw["deadline"] = time.monotonic() + json.loads(sys.argv[2])["deadline_in"]
try:
    doc = load_document(sys.argv[1], **kw)
    outcome = f"ok: {len(doc.text):,} characters, {len(doc.sections):,} sections"
except ClearanceError as exc:
    outcome = f"{type(exc).__name__} (exit {exc.exit_code}): {exc}"
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - t0,
                  "peak": use.ru_maxrss * 1024, "cpu": use.ru_utime + use.ru_stime}))
"""


@dataclass
class Probe:
    outcome: str
    seconds: float
    peak: int  # bytes
    timed_out: bool = False
    cpu: float = 0.0  # seconds of CPU the child used (the machine may be shared)


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def probe(
    data: bytes,
    suffix: str,
    *,
    timeout: float,
    root: Path = ROOT,
    memory_cap: int = 6 << 30,
    **kw: object,
) -> Probe:
    """Ingest ``data`` in a fresh interpreter (cwd ``root``, so that tree's engine is used);
    wall time, peak RSS and the outcome. The child's address space is capped at
    ``memory_cap`` so that a regression cannot take the machine down with it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"hostile{suffix}"
        path.write_bytes(data)

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), json.dumps(kw)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=limit,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        peak = 0
        while proc.poll() is None and time.monotonic() - t0 < timeout:
            peak = max(peak, _vm_hwm(proc.pid))
            time.sleep(0.05)
        if proc.poll() is None:
            peak, cpu = max(peak, _vm_hwm(proc.pid)), _cpu(proc.pid)
            proc.kill()
            proc.wait()
            return Probe(
                f"still running after {timeout:.0f} s (killed)",
                time.monotonic() - t0,
                peak,
                timed_out=True,
                cpu=cpu,
            )
        out, err = proc.communicate()
        elapsed = time.monotonic() - t0
        lines = out.decode().strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = err.decode().strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            return Probe(f"crashed: {tail[0][:200]}", elapsed, peak)
        result = json.loads(lines[-1])
        return Probe(result["outcome"], elapsed, max(peak, result["peak"]), cpu=result["cpu"])


def ordinary_page(size: int, seed: int = 1) -> str:
    """An ordinary HTML page: paragraphs with links, small tables, lists, unclosed <p>."""
    import random

    rnd = random.Random(seed)
    parts = ["<html><head><title>T</title><style>p{}</style></head><body>"]
    total = 0
    while total < size:
        r = rnd.random()
        if r < 0.5:
            chunk = (
                f"<p>Some <b>bold</b> text with a <a href='/x/{rnd.randrange(1000)}'>link"
                "</a> and more words here.</p>\n"
            )
        elif r < 0.7:
            chunk = (
                "<table><tr><td>cell one</td><td>cell two</td></tr><tr><td>a</td><td>b</td>"
                "</tr></table>\n"
            )
        elif r < 0.8:
            chunk = "<ul><li>item<li>item two<li>three</ul>\n"
        elif r < 0.9:
            chunk = "<div class=x><div><span>nested <i>text</i></span></div></div>\n"
        else:
            chunk = "<h2>Heading</h2><p>unclosed para <p>another\n"
        parts.append(chunk)
        total += len(chunk)
    return "".join(parts)


def html_cost() -> None:
    """CPU time of the HTML shape model next to lexbor's parse plus the text walk."""
    from engine.ingest import IngestLimits, _check_html_shape, _read_html, _Work

    print("| page | `<` count | model | parse + text walk |")
    print("|---|---|---|---|")
    for size in (50_000, 500_000, 2_000_000):
        src, work = ordinary_page(size), _Work("x", 10**9, None)
        reps = max(1, 2_000_000 // size)
        t0 = time.process_time()
        for _ in range(reps):
            _check_html_shape(src, "x", work, IngestLimits())
        model = (time.process_time() - t0) / reps
        t0 = time.process_time()
        for _ in range(reps):
            _read_html(src, work)
        read = (time.process_time() - t0) / reps
        print(
            f"| {size // 1000:,} KB | {src.count('<'):,} | {model * 1000:,.0f} ms | "
            f"{read * 1000:,.0f} ms |"
        )


def main(argv: list[str]) -> int:
    """Print the table for docs/reliability-ingest.md: each hostile input, ingested afresh."""
    if "--html-cost" in argv:
        sys.path.insert(0, str(ROOT))
        html_cost()
        return 0
    root = Path(argv[argv.index("--root") + 1]) if "--root" in argv else ROOT
    timeout = float(argv[argv.index("--timeout") + 1]) if "--timeout" in argv else 120.0
    only = [a for a in argv if a in HOSTILE]
    print("| input | size | wall time | CPU time | peak RSS | outcome |")
    print("|---|---|---|---|---|---|")
    for name, make in HOSTILE.items():
        if only and name not in only:
            continue
        data = make()
        r = probe(data, _SUFFIX[name.split("-")[0]], timeout=timeout, root=root)
        outcome = r.outcome.replace("|", "\\|").replace(str(root), "<root>")
        print(
            f"| {name} | {len(data) / 1024:,.0f} KB | {r.seconds:.1f} s | {r.cpu:.1f} s | "
            f"{r.peak / 2**20:,.0f} MB | {outcome[:200]} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
