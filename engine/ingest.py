"""Document ingestion: bytes -> text + sections (txt, md, html, docx, pdf), refusing the rest."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from engine.document import Document, Section, split_sections
from engine.errors import DocumentError

#: default cap on a document's size; configurable per call.
MAX_BYTES = 20 * 1024 * 1024

TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_SUFFIXES = {
    ".txt": TEXT,
    ".text": TEXT,
    "": TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
}
_BINARY_TYPES = {PDF, DOCX}

# A .docx is a ZIP, so decompression bombs are possible: cap what its parts may inflate to,
# relative to the byte cap (Word XML is verbose, so 10x is generous for real documents).
_ZIP_INFLATE_FACTOR = 10


def media_type_for(name: str) -> str | None:
    return _SUFFIXES.get(Path(name).suffix.lower())


_MEDIA_ALIASES = {
    "text/x-markdown": MARKDOWN,
    "application/xhtml+xml": HTML,
    "application/x-pdf": PDF,
}


def _known_media_type(media_type: str | None) -> str | None:
    """A caller's media type (e.g. an upload's Content-Type) if we read that type; generic ones
    like application/octet-stream fall back to the name and the content."""
    if not media_type:
        return None
    base = media_type.split(";", 1)[0].strip().lower()
    base = _MEDIA_ALIASES.get(base, base)
    return base if base in _SUFFIXES.values() else None


def decode_text(data: bytes, name: str) -> str:
    """Decode bytes as text: UTF-8 (with or without BOM) first, then a detected encoding.
    Binary content is refused rather than decoded into garbage."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(f"{name}: looks like a binary file (NUL bytes); not a text document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is not None:
        # On short Western text charset-normalizer ties cp1252 with cp1250/cp775 (same chaos)
        # and may pick the wrong one ("à" -> "ŕ"); Windows-1252 is by far the likelier source.
        for m in matches:
            if m.encoding == "cp1252" and m.chaos <= best.chaos + 0.01:
                best = m
                break
    if best is None or best.encoding is None:
        raise DocumentError(
            f"{name}: not valid UTF-8 (byte {utf8_error.start}) and no other text encoding fits; "
            "convert it to UTF-8"
        )
    return str(best)


def _supported() -> str:
    return ", ".join(sorted(s for s in _SUFFIXES if s))


_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


def sniff(data: bytes, name: str, claimed: str | None) -> str:
    """The media type to parse ``data`` as. Content wins over the name: a PDF called .txt is read
    as a PDF, a .pdf that is not one is refused, and known binaries are refused by what they are."""
    # The PDF header may start anywhere in the first 1024 bytes; away from byte 0, also ask for
    # the %%EOF trailer, so a text that merely mentions "%PDF-" early on stays text.
    if data.startswith(b"%PDF-") or (b"%PDF-" in data[:1024] and b"%%EOF" in data[-1024:]):
        return PDF
    if data.startswith(b"PK\x03\x04"):
        return DOCX  # a ZIP; _read_docx refuses ZIPs that are not Word documents
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        # Office's old container: a legacy .doc/.xls, or an OOXML file sealed with a password.
        raise DocumentError(
            f"{name}: a legacy Office (.doc) or password-protected Office file; "
            "save it as .docx without a password"
        )
    if claimed in _BINARY_TYPES:
        what = "PDF (no %PDF- header)" if claimed == PDF else "Word .docx (not a ZIP package)"
        raise DocumentError(f"{name}: not a {what}; the file is damaged or misnamed")
    import filetype

    head = data[:8192]
    kind = filetype.guess(head)
    # Some signatures are plain letters ("BM" is a bitmap, "ID3" an MP3), so a match alone would
    # refuse "BMW privacy notice"; trust it only where control bytes show the data is binary.
    if kind is not None and not _CONTROL_BYTES.search(head):
        kind = None
    binary = b"\x00" in head and not data.startswith((b"\xff\xfe", b"\xfe\xff"))
    if kind is not None or binary:
        what = f"{kind.mime} (.{kind.extension})" if kind else "a binary file"
        raise DocumentError(f"{name}: content is {what}, not a document; supported: {_supported()}")
    if claimed is None:
        raise DocumentError(
            f"{name}: unsupported document type '{Path(name).suffix}' (supported: {_supported()})"
        )
    return claimed


def document_from_bytes(
    data: bytes,
    name: str,
    *,
    media_type: str | None = None,
    path: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Document:
    if len(data) > max_bytes:
        raise DocumentError(
            f"{name}: {len(data):,} bytes is over the {max_bytes:,}-byte limit "
            "(raise it with --max-bytes)"
        )
    if not data.strip():
        raise DocumentError(f"{name}: the document is empty")
    media_type = sniff(data, name, _known_media_type(media_type) or media_type_for(name))
    sections: list[Section] = []
    page_starts: list[int] = []
    if media_type == PDF:
        text, page_starts = _read_pdf(data, name)
    elif media_type == DOCX:
        text, sections = _read_docx(data, name, max_bytes)
    elif media_type == HTML:
        text, sections = _read_html(_normalise_newlines(_decode_html(data, name)))
    else:
        text = _normalise_newlines(decode_text(data, name))
    if not text.strip():
        raise DocumentError(
            f"{name}: no text in the document"
            + (" (a scanned PDF? run OCR first)" if media_type == PDF else "")
        )
    if len(text) > max_bytes:
        raise DocumentError(
            f"{name}: the extracted text ({len(text):,} characters) is over the "
            f"{max_bytes:,} limit (raise it with --max-bytes)"
        )
    if media_type == PDF:
        sections = split_sections(text, PDF)
    return Document(
        text=text,
        name=name,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        media_type=media_type,
        sections=sections,
        page_starts=page_starts,
    )


def load_document(path: str | Path, *, max_bytes: int = MAX_BYTES) -> Document:
    p = Path(path)
    if not p.exists():
        raise DocumentError(f"{p}: no such file")
    if p.is_dir():
        raise DocumentError(f"{p}: is a directory")
    size = p.stat().st_size
    if size > max_bytes:
        raise DocumentError(
            f"{p}: {size:,} bytes is over the {max_bytes:,}-byte limit (raise it with --max-bytes)"
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{p}: cannot read: {exc.strerror}") from None
    return document_from_bytes(data, p.name, path=str(p), max_bytes=max_bytes)


def source_document(
    path: str | None, sha256: str, known: Iterable[Document] = (), size: int = 0
) -> Document | None:
    """The document a report was made from, for formats that show its text: one of ``known``
    with that hash, else the file at ``path`` if it is still there and unchanged, else None."""
    for doc in known:
        if doc.sha256 == sha256:
            return doc
    if not path:
        return None
    try:
        # ``size`` lets a document accepted under a raised --max-bytes be read back too.
        doc = load_document(path, max_bytes=max(MAX_BYTES, size))
    except DocumentError:
        return None
    return doc if doc.sha256 == sha256 else None


def document_from_text(
    text: str, name: str = "<text>", media_type: str = "text/markdown"
) -> Document:
    return Document(text=text.replace("\r\n", "\n"), name=name, media_type=media_type)


def _normalise_newlines(text: str) -> str:
    # One newline convention so offsets, lines and columns agree across platforms.
    return text.replace("\r\n", "\n").replace("\r", "\n")


_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)


def _decode_html(data: bytes, name: str) -> str:
    """HTML says its own encoding in <meta charset>; believe it before guessing."""
    m = _META_CHARSET.search(data[:4096])
    if m and not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        import codecs

        try:
            codec = codecs.lookup(m.group(1).decode("ascii"))
        except LookupError:
            codec = None
        if codec is not None:
            try:
                return data.decode(codec.name)
            except UnicodeDecodeError:
                pass  # the declaration is wrong; fall back to detection
    return decode_text(data, name)


class _TextBuilder:
    """Appends blocks of text, keeping at most one blank line between blocks and no leading or
    trailing whitespace on lines, so that offsets recorded while building stay valid."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.pending = 0  # newlines owed before the next text
        self.at_line_start = True
        self.space = False  # a collapsed space owed before the next text
        self.sep = ""  # a separator owed before the next text on the same line (table cells)

    def text(self, s: str) -> None:
        if not s:
            return
        if self.length and self.pending:
            self._put("\n" * self.pending)
            self.at_line_start, self.space, self.sep = True, False, ""
        self.pending = 0
        if self.sep and not self.at_line_start:
            self._put(self.sep)
        elif self.space and not self.at_line_start:
            self._put(" ")
        self.space, self.sep = False, ""
        self._put(s)
        self.at_line_start = s.endswith("\n")

    def word_break(self) -> None:
        self.space = True

    def block(self, newlines: int = 1) -> None:
        self.pending = max(self.pending, newlines)
        self.space, self.sep = False, ""

    def cell(self) -> None:
        """The next text is a new table cell: separate it from the previous one on its line."""
        self.sep = " | "

    def offset(self) -> int:
        """Where the next text will start (after any owed newlines)."""
        return self.length + (self.pending if self.length else 0)

    def _put(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    def result(self) -> str:
        return "".join(self.parts)


def _sections(heads: list[tuple[int, int, str]], length: int) -> list[Section]:
    """Sections from (offset, level, heading) in document order, like split_sections builds."""
    sections: list[Section] = []
    first = heads[0][0] if heads else length
    if first > 0 or not heads:
        sections.append(Section(None, 0, 0, first))
    for i, (off, level, heading) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else length
        sections.append(Section(heading, level, off, end))
    return sections


# --- HTML -----------------------------------------------------------------------------------

_HTML_SKIP = {
    "script",
    "style",
    "head",
    "template",
    "noscript",
    "iframe",
    "object",
    "embed",
    "svg",
    "math",
    "canvas",
    "select",
    "button",
    "-comment",
    "title",
    "meta",
    "link",
}
_HTML_BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "table",
    "form",
    "fieldset",
    "figure",
    "address",
    "details",
    "summary",
    "hr",
    "pre",
    "figcaption",
    "caption",
    "body",
}
_HTML_LINE = {"li", "dt", "dd", "tr", "br", "option", "legend"}
_HTML_CELL = {"td", "th"}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def _html_hidden(attrs: dict[str, str | None]) -> bool:
    if "hidden" in attrs or (attrs.get("aria-hidden") or "").lower() == "true":
        return True
    if (attrs.get("type") or "").lower() == "hidden":
        return True
    return bool(_HIDDEN_STYLE.search(attrs.get("style") or ""))


def _read_html(source: str) -> tuple[str, list[Section]]:
    """Visible text of an HTML page; h1-h6 become sections. Offsets are into the returned text."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(source)
    root = tree.body or tree.root
    out = _TextBuilder()
    heads: list[tuple[int, int, str]] = []
    if root is None:
        return "", []
    # An explicit stack rather than recursion: hostile pages nest thousands of elements deep.
    # Entries are (node, entering); a node is pushed again with entering=False to close it.
    stack: list[tuple[Any, bool]] = [(root, True)]
    pre_depth = 0
    open_heading: list[tuple[int, int, int]] = []  # (offset, level, first part) of open headings
    while stack:
        node, entering = stack.pop()
        tag = node.tag
        if not entering:
            if tag == "pre":
                pre_depth -= 1
            if tag in _HTML_CELL:
                out.word_break()
            elif tag in _HTML_LINE:
                out.block(1)
            elif tag in _HTML_BLOCK:
                out.block(2)
            elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
                off, level, first = open_heading.pop()
                title = _SPACE.sub(" ", "".join(out.parts[first:])).strip()
                if title:
                    heads.append((off, level, title))
                out.block(2)
            continue
        if tag == "-text":
            raw = node.text(deep=False)
            if pre_depth:
                out.text(raw)
            elif raw:
                lead, words, trail = raw[:1].isspace(), raw.split(), raw[-1:].isspace()
                if lead:
                    out.word_break()
                out.text(" ".join(words))
                if trail and words:
                    out.word_break()
            continue
        if tag in _HTML_SKIP or _html_hidden(node.attributes):
            continue
        if tag in ("br", "hr"):
            out.block(1)
            continue
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            out.block(2)
            open_heading.append((out.offset(), int(tag[1]), len(out.parts)))
        elif tag in _HTML_BLOCK:
            out.block(2)
        elif tag in _HTML_LINE:
            out.block(1)
        elif tag in _HTML_CELL:
            out.cell()
        if tag == "pre":
            pre_depth += 1
        stack.append((node, False))
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, True) for c in reversed(children))
    text = out.result()
    return text, _sections(heads, len(text)) if heads else []


# --- DOCX -----------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def _read_docx(data: bytes, name: str, max_bytes: int) -> tuple[str, list[Section]]:
    """Paragraphs and tables in document order; 'Title' and 'Heading N' paragraphs are headings."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            inflated = sum(i.file_size for i in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DocumentError(f"{name}: a damaged ZIP/.docx file; cannot open it") from None
    if "word/document.xml" not in names:
        raise DocumentError(
            f"{name}: a ZIP archive, not a Word .docx document; supported: {_supported()}"
        )
    if inflated > _ZIP_INFLATE_FACTOR * max_bytes:
        raise DocumentError(
            f"{name}: the .docx inflates to {inflated:,} bytes, over the "
            f"{_ZIP_INFLATE_FACTOR * max_bytes:,}-byte limit"
        )
    import docx

    try:
        doc = docx.Document(io.BytesIO(data))
        out = _TextBuilder()
        heads: list[tuple[int, int, str]] = []
        for level, text in _docx_blocks(doc, _docx_heading_levels(doc)):
            if level > 0:
                out.block(2)
                heads.append((out.offset(), level, " ".join(text.split())))
            out.text(text)
            out.block(1 if level < 0 else 2)
    except DocumentError:
        raise
    # python-docx and lxml raise many types on damaged XML; none of them is a bug of ours.
    except Exception:
        raise DocumentError(f"{name}: a damaged .docx file; open and re-save it in Word") from None
    text = out.result()
    return text, _sections(heads, len(text)) if heads else []


def _docx_heading_levels(doc: Any) -> dict[str, int]:
    """Heading level per paragraph style id. python-docx's ``paragraph.style`` scans every style
    on each call, which made long documents slow; one pass here keeps reading linear."""
    from docx.enum.style import WD_STYLE_TYPE

    levels: dict[str, int] = {}
    for style in doc.styles:
        if style.type != WD_STYLE_TYPE.PARAGRAPH or style.style_id is None:
            continue
        m = _HEADING_STYLE.match(style.name or "")
        if style.name == "Title":
            levels[style.style_id] = 1
        elif m:
            levels[style.style_id] = int(m.group(1))
    return levels


def _docx_blocks(container: Any, levels: dict[str, int]) -> Iterator[tuple[int, str]]:
    """(heading level, 0 for body text or -1 for a table row, text) for each non-empty paragraph
    or table row, in document order."""
    from docx.table import Table

    for item in container.iter_inner_content():
        if isinstance(item, Table):
            yield from _docx_table(item, levels)
            continue
        text = item.text.strip()
        if text:
            yield levels.get(item._p.style or "", 0), text


def _docx_table(table: Any, levels: dict[str, int]) -> Iterator[tuple[int, str]]:
    for row in table.rows:
        seen: set[int] = set()
        cells: list[str] = []
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; read it once.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            parts = [t for _, t in _docx_blocks(cell, levels)]
            if parts:
                cells.append(" ".join(parts))
        if cells:
            yield -1, " | ".join(cells)


# --- PDF ------------------------------------------------------------------------------------


def _read_pdf(data: bytes, name: str) -> tuple[str, list[int]]:
    """Text per page, pages separated by a blank line; returns the text and each page's start."""
    import logging

    from pypdf import PdfReader

    # pypdf logs every recoverable oddity of a damaged file; the user gets one clear error instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                # Many PDFs are encrypted only with an owner password; those open with "".
                opened = bool(reader.decrypt(""))
            except Exception:  # e.g. AES without a crypto library installed
                opened = False
            if not opened:
                raise DocumentError(
                    f"{name}: an encrypted PDF that needs a password; save an unprotected copy"
                )
        parts: list[str] = []
        page_starts: list[int] = []
        length = 0
        for page in reader.pages:
            text = _pdf_page_text(page)
            if parts:
                parts.append("\n\n")
                length += 2
            page_starts.append(length)
            parts.append(text)
            length += len(text)
    except DocumentError:
        raise
    except Exception:  # pypdf raises many types on damaged files; none is a bug of ours
        raise DocumentError(f"{name}: a damaged PDF; cannot read it") from None
    if not page_starts:
        raise DocumentError(f"{name}: the PDF has no pages")
    return "".join(parts), page_starts


_PDF_GAPS = re.compile(r"[ \t]{2,}")
_PDF_BLANKS = re.compile(r"\n{3,}")


def _pdf_page_text(page: Any) -> str:
    """A page's text with blank lines between blocks (layout mode keeps the vertical gaps that
    tell a heading from its paragraph); column padding and indentation are collapsed."""
    try:
        raw = page.extract_text(extraction_mode="layout") or ""
    except Exception:  # layout mode is newer and stricter; plain mode still reads
        raw = page.extract_text() or ""
    lines = (_PDF_GAPS.sub(" ", line).strip() for line in _normalise_newlines(raw).split("\n"))
    return _PDF_BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")
