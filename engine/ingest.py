"""Document ingestion: bytes -> text + sections (txt, md, html, docx, pdf), refusing the rest."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.document import Document, Section, split_sections
from engine.errors import DeadlineExceeded, DocumentError, UserError

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


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Bounds on the work one document may cost beyond its size (``max_bytes``, which also caps
    the extracted text). Each is checked while the work happens, so a small file that would
    cost far more than its size is stopped early with a message naming the limit. Defaults
    come from ``CLEARANCE_INGEST_<FIELD>`` environment variables (see ``from_env``)."""

    #: PDF: pages read.
    max_pages: int = 5_000
    #: PDF: bytes of decoded page content interpreted, all pages together. pypdf reads about
    #: 0.5 MB of content a second on an idle core, so this is the bound on a PDF's reading time
    #: (a text page holds 2-20 KB; pages that share their content are read once).
    max_pdf_content: int = 4 * 1024 * 1024
    #: .docx: entries in the ZIP package.
    max_parts: int = 2_000
    #: .docx: the parts read may inflate to this multiple of ``max_bytes``, counted as they
    #: are inflated, not as the ZIP headers declare (Word XML is verbose; 10x is generous).
    inflate_factor: int = 10
    #: .docx: paragraphs and table rows, empty ones included.
    max_paragraphs: int = 500_000
    #: HTML: element nesting depth, as the HTML5 parser would build the tree.
    max_html_depth: int = 10_000
    #: HTML: elements the parser would create, re-opened formatting elements included.
    max_html_elements: int = 1_000_000
    #: HTML: steps the parser takes looking through its stack of open elements (which
    #: element does this tag close?), summed over all tags: the work that made deep nesting
    #: quadratic. About 2-4 s of parsing.
    max_html_work: int = 100_000_000

    @classmethod
    def from_env(cls) -> IngestLimits:
        """The defaults, each overridden by ``CLEARANCE_INGEST_<FIELD>`` when set (e.g.
        ``CLEARANCE_INGEST_MAX_PAGES=20000``)."""
        values: dict[str, int] = {}
        for f in fields(cls):
            var = _env_name(f.name)
            raw = os.environ.get(var)
            if raw is None or not raw.strip():
                continue
            try:
                value = int(raw.replace("_", ""))
            except ValueError:
                value = 0
            if value <= 0:
                raise UserError(f"{var}={raw!r}: expected a positive whole number")
            values[f.name] = value
        return cls(**values)


def _env_name(field_name: str) -> str:
    return f"CLEARANCE_INGEST_{field_name.upper()}"


class _Work:
    """The running cost of one ingestion: characters extracted so far, and the deadline."""

    __slots__ = ("name", "max_chars", "deadline", "chars", "_ticks")

    def __init__(self, name: str, max_chars: int, deadline: float | None) -> None:
        self.name, self.max_chars, self.deadline = name, max_chars, deadline
        self.chars = 0
        self._ticks = 0

    def check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded(
                f"{self.name}: reading the document did not finish before the deadline; stopped"
            )

    def tick(self) -> None:
        """Called in inner loops: looks at the clock every 1,024 calls."""
        self._ticks += 1
        if not self._ticks & 1023:
            self.check_time()

    def add_text(self, n: int, where: str = "") -> None:
        self.chars += n
        if self.chars > self.max_chars:
            raise DocumentError(
                f"{self.name}: the extracted text is over the {self.max_chars:,}-character "
                f"limit{where} (raise it with --max-bytes)"
            )


def _over_limit(name: str, what: str, limits: IngestLimits, field_name: str) -> DocumentError:
    value = getattr(limits, field_name)
    return DocumentError(
        f"{name}: {what}, over the limit of {value:,} (raise it with {_env_name(field_name)})"
    )


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
    limits: IngestLimits | None = None,
    deadline: float | None = None,
) -> Document:
    """Read ``data`` as a document. ``limits`` bound the work (default: ``IngestLimits.from_env()``);
    ``deadline`` is a ``time.monotonic()`` value after which reading stops with
    DeadlineExceeded, checked as the work goes on."""
    limits = limits or IngestLimits.from_env()
    work = _Work(name, max_bytes, deadline)
    work.check_time()
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
        text, page_starts = _read_pdf(data, name, work, limits)
    elif media_type == DOCX:
        text, sections = _read_docx(data, name, max_bytes, work, limits)
    elif media_type == HTML:
        source = _normalise_newlines(_decode_html(data, name))
        # A page of a few hundred tags cannot cost much whatever its shape (some 30,000
        # elements even if every tag re-opened all before it): only larger ones are modelled.
        tags = source.count("<")
        if tags > _HTML_SMALL:
            # each start tag makes an element: too many is known before any Python-level work
            starts = tags - source.count("</") - source.count("<!")
            if starts > limits.max_html_elements:
                raise _over_limit(
                    name, f"the page has {starts:,} tags", limits, "max_html_elements"
                )
            _check_html_shape(source, name, work, limits)
        text, sections = _read_html(source, work)
    else:
        text = _normalise_newlines(decode_text(data, name))
    work.check_time()
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


def load_document(
    path: str | Path,
    *,
    max_bytes: int = MAX_BYTES,
    limits: IngestLimits | None = None,
    deadline: float | None = None,
) -> Document:
    """Read the file at ``path`` as a document; see ``document_from_bytes``."""
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
    return document_from_bytes(
        data, p.name, path=str(p), max_bytes=max_bytes, limits=limits, deadline=deadline
    )


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


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The HTML5 tree builder walks its stack of open elements for many start tags (is there a <p>
# to close?), so its work grows with depth x tags: 100,000 nested <div><span> took minutes.
# Before parsing, one linear pass over the tags follows the builder's main rules (which end
# tags close what, implied ends, re-opened formatting elements) on a model of that stack, and
# refuses a page that would nest too deep or build too many elements. Where the model is
# simpler than the builder it errs deep (it may overcount, never undercount by more than a
# few levels), so what passes it parses in linear time.
_VOID = _words(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr"
)
_RAW_TEXT = _words("script style textarea title xmp iframe noembed noframes")
_FORMATTING = _words("a b big code em font i nobr s small strike strong tt u")
_SPECIAL = _words(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dialog dir div dl dt embed fieldset figcaption figure footer "
    "form frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li "
    "link listing main marquee menu meta nav noembed noframes noscript object ol p param "
    "plaintext pre script search section select source style summary table tbody td template "
    "textarea tfoot th thead title tr track ul wbr xmp"
)
_SCOPE = _words(
    "applet caption html table td th marquee object template foreignobject desc title mi mo mn "
    "ms mtext annotation-xml"
)
_CLOSES_P = _words(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr main menu nav ol p pre search "
    "section summary table ul li dd dt listing xmp plaintext"
)
_HEADINGS = _words("h1 h2 h3 h4 h5 h6")
_KEEP_OPEN = _words("html body head br")  # their end tags never pop the element
_HTML_SMALL = 500  # tags
_TABLE_PARTS = _words("caption col colgroup tbody td tfoot th thead tr")
_FOREIGN = frozenset(("svg", "math"))
# where SVG or MathML content holds HTML again
_INTEGRATION = {
    "svg": _words("foreignobject desc title"),
    "math": _words("mi mo mn ms mtext annotation-xml"),
}
_BREAKOUT = _words(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img "
    "li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul "
    "var"
)
_TAG = re.compile(
    r"""<(/?)([A-Za-z][^\s/>]*)((?:[^>=]|=\s*"[^"]*"|=\s*'[^']*'|=(?!\s*["']))*)(>?)"""
)
_RAW_END: dict[str, re.Pattern[str]] = {
    t: re.compile(rf"</{t}[\s/>]", re.IGNORECASE) for t in _RAW_TEXT
}


_K_SCOPE, _K_SPECIAL, _K_BLOCK_LI, _K_FOREIGN = 1, 2, 4, 8
_KIND: dict[str, int] = {}


def _kind(tag: str) -> int:
    """Which position lists an open element of this name belongs to (a bit mask)."""
    kind = _KIND.get(tag)
    if kind is None:
        kind = (
            (_K_SCOPE if tag in _SCOPE else 0)
            | (_K_FOREIGN if tag in _FOREIGN else 0)
            | (_K_SPECIAL if tag in _SPECIAL else 0)
            | (_K_BLOCK_LI if tag in _SPECIAL and tag not in ("address", "div", "p") else 0)
        )
        if len(_KIND) < 10_000:  # a page may invent any number of tag names
            _KIND[tag] = kind
    return kind


class _OpenElements:
    """A model of the HTML5 tree builder's stack of open elements and list of active
    formatting elements, each question answered in constant time: per tag name and per kind
    (scope boundary, special) the stack positions where such elements are open."""

    def __init__(self, name: str, limits: IngestLimits) -> None:
        self.name, self.limits = name, limits
        self.stack: list[str] = ["html", "body"]
        self.kinds: list[int] = [_kind("html"), _kind("body")]
        self.at: dict[str, list[int]] = {"html": [0], "body": [1]}
        self.scope: list[int] = [0]  # positions of scope boundaries
        self.special: list[int] = [0, 1]
        self.block_li: list[int] = [0, 1]  # special but not address/div/p: stops the li search
        self.foreign: list[int] = []  # svg/math roots and HTML integration points, as +pos/-pos
        # The list of active formatting elements: [key, tag, stack position or -1 once closed,
        # removed]; entries are marked removed and swept now and then, so each step is O(1).
        self.formatting: list[list[Any]] = []
        self.by_key: dict[str, list[list[Any]]] = {}
        self.by_tag: dict[str, list[list[Any]]] = {}
        self.open_at: dict[int, list[Any]] = {}  # stack position -> its formatting entry
        self.removed = 0
        self.elements = 2
        self.deepest = 2
        self.steps = 0  # stack steps the builder takes to answer "which element does this close?"

    # --- the stack ---------------------------------------------------------------------------
    def push(self, tag: str) -> None:
        pos = len(self.stack)
        self.stack.append(tag)
        positions = self.at.get(tag)
        if positions is None:
            self.at[tag] = [pos]
        else:
            positions.append(pos)
        kind = _KIND.get(tag)
        if kind is None:
            kind = _kind(tag)
        self.kinds.append(kind)
        if kind:
            if kind & _K_SCOPE:
                self.scope.append(pos)
            if kind & _K_SPECIAL:
                self.special.append(pos)
                if kind & _K_BLOCK_LI:
                    self.block_li.append(pos)
        if kind & _K_FOREIGN:
            self.foreign.append(pos)
        elif (
            self.foreign
            and self.foreign[-1] > 0
            and tag in _INTEGRATION[self.stack[self.foreign[-1]]]
        ):
            self.foreign.append(-pos)
        self.elements += 1
        if pos >= self.deepest:
            self.deepest = pos + 1
            if pos + 1 > self.limits.max_html_depth:
                raise _over_limit(
                    self.name,
                    f"the page nests elements deeper than {self.limits.max_html_depth:,}",
                    self.limits,
                    "max_html_depth",
                )
        if self.elements > self.limits.max_html_elements:
            raise _over_limit(
                self.name,
                f"the page makes more than {self.limits.max_html_elements:,} elements",
                self.limits,
                "max_html_elements",
            )

    def pop_to(self, pos: int) -> None:
        """Pop every element at ``pos`` and above."""
        stack, at, kinds, foreign = self.stack, self.at, self.kinds, self.foreign
        while len(stack) > pos:
            tag = stack.pop()
            kind = kinds.pop()
            top = len(stack)
            at[tag].pop()
            if kind:
                if kind & _K_SCOPE:
                    self.scope.pop()
                if kind & _K_SPECIAL:
                    self.special.pop()
                    if kind & _K_BLOCK_LI:
                        self.block_li.pop()
            if foreign and abs(foreign[-1]) == top:
                foreign.pop()
            if self.open_at:
                entry = self.open_at.pop(top, None)
                if entry is not None:
                    entry[2] = -1

    def walk(self, to: int) -> None:
        """Charge a look down the stack from the current element to position ``to``."""
        self.steps += len(self.stack) - max(to, 0)
        if self.steps > self.limits.max_html_work:
            raise _over_limit(
                self.name,
                "the page's elements are nested and misnested so that "
                f"parsing it takes more than {self.limits.max_html_work:,} steps",
                self.limits,
                "max_html_work",
            )

    def top(self, tag: str) -> int:
        positions = self.at.get(tag)
        return positions[-1] if positions else -1

    def in_scope(self, tag: str, extra: int = -1) -> int:
        """Position of the topmost ``tag`` if no scope boundary (or ``extra``) is above it."""
        pos = self.top(tag)
        self.walk(max(pos, self.scope[-1], extra))
        return pos if pos >= 0 and pos >= self.scope[-1] and pos > extra else -1

    def close(self, tag: str, extra: int = -1) -> None:
        pos = self.in_scope(tag, extra)
        if pos >= 0:
            self.pop_to(pos)

    def in_foreign(self) -> bool:
        return bool(self.foreign) and self.foreign[-1] > 0

    # --- formatting elements ---------------------------------------------------------------
    def reconstruct(self) -> None:
        """Re-open the formatting elements closed by something other than their end tag."""
        entries = self.formatting
        if not entries or (entries[-1][2] >= 0 and not entries[-1][3]):
            return  # nothing closed at the end of the list: the common case
        while entries and entries[-1][3]:
            entries.pop()
            self.removed -= 1
        i = len(entries)
        while i and (entries[i - 1][2] < 0 or entries[i - 1][3]):
            i -= 1
        for entry in entries[i:]:
            if not entry[3]:
                self.push(entry[1])
                entry[2] = len(self.stack) - 1
                self.open_at[entry[2]] = entry

    def add_formatting(self, tag: str, key: str) -> None:
        same = [e for e in self.by_key.get(key, ()) if not e[3]]
        self.by_key[key] = same
        if len(same) >= 3:  # the "Noah's Ark" clause: at most three alike
            self._remove(same.pop(0))
        top = len(self.stack) - 1
        entry: list[Any] = [key, tag, top, False]
        self.open_at[top] = entry
        same.append(entry)
        self.by_tag.setdefault(tag, []).append(entry)
        self.formatting.append(entry)
        if len(self.formatting) > 4 * self.limits.max_html_depth:
            # Only the closed entries after the last open one are ever re-opened, and re-opening
            # more than the depth limit is refused anyway: the oldest entries cannot matter.
            for old in self.formatting[: len(self.formatting) // 2]:
                self._remove(old)
        if self.removed > 64 and 2 * self.removed > len(self.formatting):
            self.formatting[:] = [e for e in self.formatting if not e[3]]  # same list object
            self.removed = 0

    def _remove(self, entry: list[Any]) -> None:
        if not entry[3]:
            entry[3] = True
            self.removed += 1

    def last_formatting(self, tag: str) -> list[Any] | None:
        entries = self.by_tag.get(tag)
        while entries and entries[-1][3]:
            entries.pop()
        return entries[-1] if entries else None

    def end_formatting(self, tag: str) -> None:
        """The adoption agency, reduced to its effect on depth: the element is closed if nothing
        special is open above it; otherwise the tree is re-parented at about the same depth."""
        entry = self.last_formatting(tag)
        if entry is None:
            self.end_other(tag)
            return
        pos = entry[2]
        self.walk(pos)
        if pos < 0:
            self._remove(entry)
        elif pos >= self.scope[-1]:
            if self.special[-1] < pos:
                self._remove(entry)
                self.pop_to(pos)
            else:  # a furthest block: a clone of the element is made; depth stays
                self.elements += 1

    def end_other(self, tag: str) -> None:
        pos = self.top(tag)
        self.walk(max(pos, self.special[-1]))
        if pos >= 0 and pos > self.special[-1]:
            self.pop_to(pos)

    # --- tokens ------------------------------------------------------------------------------
    def start(self, tag: str, attrs: str, self_closing: bool) -> None:
        if self.foreign and self.foreign[-1] > 0:
            if tag in _BREAKOUT or (tag == "font" and re.search(r"color|face|size", attrs)):
                self.pop_to(self.foreign[-1])
            else:
                if not self_closing:
                    self.push(tag)
                else:
                    self.elements += 1
                return
        if tag in ("html", "body", "head", "frameset"):
            return
        if tag in _TABLE_PARTS:
            table = self.top("table")
            if table < 0:
                return  # outside a table these are ignored
            if tag in ("td", "th", "tr"):
                section = max(self.top("tbody"), self.top("thead"), self.top("tfoot"))
                if section < table:
                    self.pop_to(table + 1)
                    self.push("tbody")
                    section = len(self.stack) - 1
                if tag != "tr":
                    row = self.top("tr")
                    if row < section:
                        self.pop_to(section + 1)
                        self.push("tr")
                        row = len(self.stack) - 1
                    self.pop_to(row + 1)
                else:
                    self.pop_to(section + 1)
            elif tag == "col":
                self.elements += 1
                return
            else:
                self.pop_to(table + 1)
            self.push(tag)
            return
        if tag in _CLOSES_P:
            if tag == "li":
                self._close_item(("li",))
            elif tag in ("dd", "dt"):
                self._close_item(("dd", "dt"))
            self.close("p", self.top("button"))
            if tag in _HEADINGS and self.stack[-1] in _HEADINGS:
                self.pop_to(len(self.stack) - 1)
        elif tag in ("option", "optgroup"):
            if self.stack[-1] == "option":
                self.pop_to(len(self.stack) - 1)
        elif tag == "button":
            self.close("button")
        elif tag == "form" and self.top("form") >= 0:
            return  # one form at a time: a nested <form> is ignored
        elif tag in ("a", "nobr") and self.last_formatting(tag) is not None:
            self.end_formatting(tag)
        if tag not in _CLOSES_P:
            self.reconstruct()
        if tag in _VOID:
            self.elements += 1
            return
        self.push(tag)
        if tag in _FORMATTING:
            self.add_formatting(tag, tag + " " + " ".join(attrs.split()))

    def _close_item(self, tags: tuple[str, ...]) -> None:
        pos = max(self.top(t) for t in tags)
        self.walk(max(pos, self.block_li[-1]))
        if pos > self.block_li[-1] or (pos >= 0 and pos == self.block_li[-1]):
            self.pop_to(pos)

    def end(self, tag: str) -> None:
        stack = self.stack
        if stack[-1] == tag and tag not in _KEEP_OPEN and not self.at.get("select"):
            # the current element's own end tag, the common case: it closes just that
            top = len(stack) - 1
            self.walk(top)
            entry = self.open_at.get(top)
            if entry is not None:
                self._remove(entry)
            self.pop_to(top)
            return
        if self.in_foreign():
            pos = self.top(tag)
            if pos >= abs(self.foreign[-1]):
                self.pop_to(pos)
                return
        if tag in ("html", "body", "br", "head"):
            return
        if tag not in ("select", "option", "optgroup") and self.top("select") >= 0:
            return  # inside a <select> other end tags are ignored
        if tag == "select":
            # </select> closes the select only through <option>/<optgroup> ("select scope")
            pos = self.top("select")
            above = self.stack[pos + 1 :] if 0 <= pos >= len(self.stack) - 3 else ["x"]
            if pos >= 0 and all(t in ("option", "optgroup") for t in above):
                self.pop_to(pos)
            return
        if tag == "form":
            # </form> takes the form out of the stack wherever it is: the model keeps it
            # (deeper, never shallower) unless it is the current element
            if self.stack[-1] == "form":
                self.pop_to(len(self.stack) - 1)
            return
        if tag == "p":
            if self.in_scope("p", self.top("button")) < 0:
                self.elements += 1  # a stray </p> makes an empty paragraph
            else:
                self.close("p", self.top("button"))
        elif tag in _HEADINGS:
            pos = max(self.in_scope(h) for h in _HEADINGS)
            if pos >= 0:
                self.pop_to(pos)
        elif tag in _FORMATTING:
            self.end_formatting(tag)
        elif tag in _SPECIAL:
            self.close(tag)
        else:
            self.end_other(tag)


def _check_html_shape(source: str, name: str, work: _Work, limits: IngestLimits) -> _OpenElements:
    """Refuse, before parsing, a page whose tree would be too deep or too large to build."""
    model = _OpenElements(name, limits)
    find, match = source.find, _TAG.match
    formatting = model.formatting
    pos, n, ticks = 0, len(source), 0
    while pos < n:
        lt = find("<", pos)
        if lt < 0:
            break
        if lt > pos and formatting and (formatting[-1][2] < 0 or formatting[-1][3]):
            model.reconstruct()  # text re-opens closed formatting elements
        ticks += 1
        if not ticks & 1023:
            work.check_time()
        m = match(source, lt)
        if m is None:
            if source.startswith("<!--", lt):
                close = find("-->", lt + 4)
                pos = n if close < 0 else close + 3
            elif source.startswith(("<!", "<?", "</"), lt):
                close = find(">", lt + 2)
                pos = n if close < 0 else close + 1
            else:
                pos = lt + 1
            continue
        slash, tag, attrs, closed = m.groups()
        if not closed:
            break  # a tag that never ends (e.g. an unclosed quote) runs to the end of the page
        pos = m.end()
        tag = tag.lower()
        if slash:
            model.end(tag)
            continue
        raw = tag in _RAW_TEXT and not model.in_foreign()  # <title> in SVG is markup
        model.start(tag, attrs, attrs.endswith("/"))
        if raw:
            end = _RAW_END[tag].search(source, pos)
            if end is not None:  # unclosed, lexbor reads on as markup: so does the model
                model.end(tag)
                pos = end.start()
        elif tag == "plaintext":
            break
    return model


def _read_html(source: str, work: _Work) -> tuple[str, list[Section]]:
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
        work.tick()
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
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_W_VAL = _W + "val"
# Run content and its text, as python-docx renders it (a page or column break is no text).
_RUN_TEXT = {_W + "tab": "\t", _W + "ptab": "\t", _W + "cr": "\n", _W + "noBreakHyphen": "-"}
_READ_CHUNK = 64 * 1024


class _InflateBudget:
    """Bytes inflated from a ZIP so far, counted as they come out of the decompressor."""

    def __init__(self, name: str, limit: int, work: _Work) -> None:
        self.name, self.limit, self.work, self.used = name, limit, work, 0

    def add(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise DocumentError(
                f"{self.name}: the .docx inflates to more than {self.limit:,} bytes as it is "
                "read, over the limit (raise it with --max-bytes or "
                f"{_env_name('inflate_factor')})"
            )
        self.work.check_time()


class _PartStream:
    """A ZIP member read in small chunks, each counted against the inflate budget. zipfile's
    own read() inflates up to 2 GB in one call when the headers under-declare a member."""

    def __init__(self, zf: zipfile.ZipFile, member: str, budget: _InflateBudget) -> None:
        self._fp = zf.open(member)
        self._budget = budget

    def read(self, n: int = -1) -> bytes:
        data = self._fp.read(_READ_CHUNK if n < 0 else min(n, _READ_CHUNK))
        self._budget.add(len(data))
        return data

    def close(self) -> None:
        self._fp.close()


def _iterparse(zf: zipfile.ZipFile, member: str, budget: _InflateBudget, name: str) -> Any:
    """Streaming parse events of one XML part; entities are never expanded and a DTD (which Word
    never writes, but an entity bomb needs) is refused."""
    import itertools

    from lxml import etree

    events = etree.iterparse(
        _PartStream(zf, member, budget),
        events=("start", "end"),
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    first = next(events, None)
    if first is None:
        return iter(())
    docinfo = first[1].getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise DocumentError(
            f"{name}: {member} declares a DTD (<!DOCTYPE>), which Word never writes; refusing it"
        )
    return itertools.chain((first,), events)


def _clear(elem: Any) -> None:
    """Free an element that has been read, and the siblings read before it, so the tree never
    holds more than the path to the current element."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _read_docx(
    data: bytes, name: str, max_bytes: int, work: _Work, limits: IngestLimits
) -> tuple[str, list[Section]]:
    """Paragraphs and tables in document order; 'Title' and 'Heading N' paragraphs are headings.
    word/document.xml is read as a stream (never as a whole tree), inflated bytes are counted as
    they are inflated, and parts and paragraphs are capped, so a small .docx that unpacks to
    gigabytes, or to millions of empty paragraphs, stops early. The text is what python-docx
    reads: body paragraphs and tables (nested too), hyperlink text, tabs and line breaks."""
    limit = limits.inflate_factor * max_bytes
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise DocumentError(f"{name}: a damaged ZIP/.docx file; cannot open it") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_parts:
            raise _over_limit(
                name, f"the .docx package has {len(infos):,} parts", limits, "max_parts"
            )
        names = {i.filename for i in infos}
        if "word/document.xml" not in names:
            raise DocumentError(
                f"{name}: a ZIP archive, not a Word .docx document; supported: {_supported()}"
            )
        declared = sum(i.file_size for i in infos)
        if declared > limit:  # the headers may lie either way; this is only the early answer
            raise DocumentError(
                f"{name}: the .docx inflates to {declared:,} bytes, over the {limit:,}-byte limit"
                f" (raise it with --max-bytes or {_env_name('inflate_factor')})"
            )
        budget = _InflateBudget(name, limit, work)
        try:
            levels = _docx_heading_levels(zf, budget, name) if "word/styles.xml" in names else {}
            out = _TextBuilder()
            heads: list[tuple[int, int, str]] = []
            for level, text in _docx_blocks(zf, budget, name, work, limits, levels):
                if level > 0:
                    out.block(2)
                    heads.append((out.offset(), level, " ".join(text.split())))
                out.text(text)
                out.block(1 if level < 0 else 2)
        except (DocumentError, DeadlineExceeded):
            raise
        # zipfile and lxml raise many types on damaged input; none of them is a bug of ours.
        except Exception:
            raise DocumentError(
                f"{name}: a damaged .docx file; open and re-save it in Word"
            ) from None
    text = out.result()
    return text, _sections(heads, len(text)) if heads else []


def _docx_heading_levels(zf: zipfile.ZipFile, budget: _InflateBudget, name: str) -> dict[str, int]:
    """Heading level per paragraph style id: 'Title' is 1, 'Heading N' is N."""
    levels: dict[str, int] = {}
    style_id: str | None = None
    paragraph = False
    for event, elem in _iterparse(zf, "word/styles.xml", budget, name):
        tag = elem.tag
        if event == "start":
            if tag == _W + "style":
                style_id = elem.get(_W + "styleId")
                paragraph = elem.get(_W + "type", "paragraph") == "paragraph"
            elif tag == _W + "name" and style_id is not None and paragraph:
                style_name = elem.get(_W_VAL) or ""
                m = _HEADING_STYLE.match(style_name)
                if style_name in ("Title", "title"):  # python-docx shows built-in "title" as Title
                    levels[style_id] = 1
                elif m:
                    levels[style_id] = int(m.group(1))
        else:
            if tag == _W + "style":
                style_id = None
            _clear(elem)
    return levels


class _Cell:
    __slots__ = ("blocks", "span", "merge")

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.span = 1
        self.merge: str | None = None  # w:vMerge: "restart", "continue" or None


class _Row:
    __slots__ = ("cells", "before")

    def __init__(self) -> None:
        self.cells: list[_Cell] = []
        self.before = 0  # w:gridBefore: grid columns left empty at the row's start


def _docx_blocks(
    zf: zipfile.ZipFile,
    budget: _InflateBudget,
    name: str,
    work: _Work,
    limits: IngestLimits,
    levels: dict[str, int],
) -> Iterable[tuple[int, str]]:
    """(heading level, 0 for body text or -1 for a table row, text) for each non-empty body
    paragraph or table row, in document order, from a stream of parse events."""
    body, p, r, t, tbl, tr, tc = (_W + x for x in ("body", "p", "r", "t", "tbl", "tr", "tc"))
    hyperlink, br = _W + "hyperlink", _W + "br"
    # Per open element: (tag, live). Live elements are the ones python-docx reads: paragraphs
    # and tables directly in the body or in a live table cell, and the runs in them.
    stack: list[tuple[str, bool]] = [("", True)]
    para: list[str] | None = None
    style: str | None = None
    containers: list[_Cell | None] = []  # None is the body; a cell collects its blocks
    rows: list[_Row] = []
    above: list[dict[int, str]] = []  # per open table: text at each grid offset of the last row
    blocks = 0
    for event, elem in _iterparse(zf, "word/document.xml", budget, name):
        tag = elem.tag
        if event == "start":
            parent, parent_live = stack[-1]
            live = False
            if tag in (p, tbl):
                live = parent_live and parent in (body, tc)
                if tag == p:
                    blocks += 1
                    if live:
                        para, style = [], None
                elif live:
                    above.append({})
            elif tag == body:
                live = len(stack) == 2
                if live:
                    containers.append(None)
            elif tag in (r, hyperlink):
                live = parent_live and (parent == p or (tag == r and parent == hyperlink))
            elif tag == tr:
                live = parent_live and parent == tbl
                if live:
                    blocks += 1
                    rows.append(_Row())
            elif tag == tc:
                live = parent_live and parent == tr
                if live:
                    cell = _Cell()
                    rows[-1].cells.append(cell)
                    containers.append(cell)
            elif parent_live and para is not None:
                if tag in (t, br) or tag in _RUN_TEXT:
                    live = parent == r
                elif tag == _W + "pStyle" and stack[-2][0] == p:
                    style = elem.get(_W_VAL)
                elif tag == _W + "pPr":
                    live = parent == p
            elif parent_live and tag == _W + "gridSpan" and stack[-2][0] == tc:
                rows[-1].cells[-1].span = max(1, _int(elem.get(_W_VAL), 1))
            elif parent_live and tag == _W + "vMerge" and stack[-2][0] == tc:
                rows[-1].cells[-1].merge = elem.get(_W_VAL) or "continue"
            elif parent_live and tag == _W + "gridBefore" and stack[-2][0] == tr:
                rows[-1].before = max(0, _int(elem.get(_W_VAL), 0))
            elif tag in (_W + "tcPr", _W + "trPr"):
                live = parent_live and parent in (tc, tr)
            stack.append((tag, live))
            if blocks > limits.max_paragraphs:
                raise _over_limit(
                    name,
                    f"the .docx has more than {limits.max_paragraphs:,} paragraphs and table rows",
                    limits,
                    "max_paragraphs",
                )
            continue
        # end of an element
        tag, live = stack.pop()
        if live:
            if tag == t and para is not None:
                para.append(elem.text or "")
            elif tag in _RUN_TEXT and para is not None:
                para.append(_RUN_TEXT[tag])
            elif tag == br and para is not None:
                kind = elem.get(_W + "type")
                para.append("\n" if kind in (None, "textWrapping") else "")
            elif tag == p and para is not None:
                text = "".join(para).strip()
                para = None
                if text:
                    yield from _docx_emit(containers, levels.get(style or "", 0), text, work)
                work.tick()
            elif tag == tc:
                containers.pop()
            elif tag == tr:
                work.tick()
                row = rows.pop()
                grid = above[-1]
                cells: list[str] = []
                offset, now = row.before, {}
                for cell in row.cells:
                    text = (
                        grid.get(offset, "") if cell.merge == "continue" else " ".join(cell.blocks)
                    )
                    now[offset] = text
                    offset += cell.span
                    if text:
                        cells.append(text)
                above[-1] = now
                if cells:
                    yield from _docx_emit(containers, -1, " | ".join(cells), work)
            elif tag == tbl:
                above.pop()
            elif tag == body:
                containers.pop()
        _clear(elem)


def _docx_emit(
    containers: list[_Cell | None], level: int, text: str, work: _Work
) -> Iterable[tuple[int, str]]:
    """A block goes to the document (body) or into the table cell that holds it."""
    cell = containers[-1] if containers else None
    if cell is None:
        work.add_text(len(text) + 2)  # counted once, in the body (a row holds its cells' text)
        yield level, text
    else:
        cell.blocks.append(text)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


# --- PDF ------------------------------------------------------------------------------------


def _read_pdf(data: bytes, name: str, work: _Work, limits: IngestLimits) -> tuple[str, list[int]]:
    """Text per page, pages separated by a blank line; returns the text and each page's start.
    Pages, decoded page content and extracted characters are counted page by page, so a small
    PDF whose pages all draw one huge content stream stops early instead of running for
    minutes. A limit ends in an error, never in a silently shortened text: the page a gate
    needs may be the one left out."""
    import logging

    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError

    # pypdf logs every recoverable oddity of a damaged file; the user gets one clear error instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    # pypdf flattens the whole page tree on first use; bound that walk by our page limit (a
    # tree holds pages and the nodes above them, so allow for both).
    tree_entries = 2 * limits.max_pages + 1_000
    try:
        with apply_configuration(page_tree_maximum_entries=tree_entries):
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
            declared = _pdf_declared_pages(reader)
            if declared > limits.max_pages:
                raise _over_limit(name, f"the PDF declares {declared:,} pages", limits, "max_pages")
            pages = reader.pages
            count = len(pages)
            if count > limits.max_pages:
                raise _over_limit(name, f"the PDF has {count:,} pages", limits, "max_pages")
            parts: list[str] = []
            page_starts: list[int] = []
            length = 0
            content = 0
            # Pages that draw the same content with the same resources have the same text:
            # read it once (a PDF may reuse one content stream on every page).
            seen: dict[tuple[Any, ...], str] = {}
            for number, page in enumerate(pages, 1):
                work.check_time()
                key = _pdf_page_key(page)
                text = seen.get(key) if key is not None else None
                if text is None:
                    content += _pdf_content_size(page)
                    if content > limits.max_pdf_content:
                        raise _over_limit(
                            name,
                            f"page {number} of {count:,} brings the page content to read "
                            f"to {content:,} bytes",
                            limits,
                            "max_pdf_content",
                        )
                    text = _pdf_page_text(page)
                    if key is not None:
                        seen[key] = text
                if parts:
                    parts.append("\n\n")
                    length += 2
                work.add_text(len(text) + (2 if parts else 0), f" at page {number} of {count:,}")
                page_starts.append(length)
                parts.append(text)
                length += len(text)
    except (DocumentError, DeadlineExceeded):
        raise
    except LimitReachedError as exc:
        if "page tree" in str(exc):
            raise _over_limit(
                name, "the PDF's page tree holds more pages than allowed", limits, "max_pages"
            ) from None
        raise DocumentError(
            f"{name}: the PDF is beyond the PDF reader's safety limits ({exc})"
        ) from None
    except Exception:  # pypdf raises many types on damaged files; none is a bug of ours
        raise DocumentError(f"{name}: a damaged PDF; cannot read it") from None
    if not page_starts:
        raise DocumentError(f"{name}: the PDF has no pages")
    return "".join(parts), page_starts


def _pdf_declared_pages(reader: Any) -> int:
    """The page count the PDF's page tree root declares (read without walking the tree)."""
    try:
        count = reader.trailer["/Root"]["/Pages"]["/Count"]
        return int(count) if isinstance(count, int) else 0
    except Exception:
        return 0  # a damaged tree is reported when the pages are read


def _pdf_page_key(page: Any) -> tuple[Any, ...] | None:
    """What a page's text depends on: its content streams and resources (by object identity),
    box and rotation; None when the content is not shared by reference."""
    from pypdf.generic import ArrayObject, IndirectObject

    def ident(obj: Any) -> Any:
        if isinstance(obj, IndirectObject):
            return ("ref", obj.idnum, obj.generation)
        # A small inline dictionary (resources naming their fonts by reference) is its text.
        text = repr(obj) if isinstance(obj, dict) and len(obj) <= 16 else ""
        return ("repr", text) if 0 < len(text) <= 2_000 else ("obj", id(obj))

    contents = page.get("/Contents")
    if isinstance(contents, IndirectObject):
        target = contents.get_object()
        if isinstance(target, ArrayObject):
            contents = target
    if isinstance(contents, ArrayObject):
        if not all(isinstance(c, IndirectObject) for c in contents):
            return None
        content_key: Any = tuple(ident(c) for c in contents)
    elif isinstance(contents, IndirectObject):
        content_key = ident(contents)
    else:
        return None
    return (
        content_key,
        ident(page.get("/Resources")),
        repr(page.get("/MediaBox")),
        repr(page.get("/Rotate")),
    )


def _pdf_content_size(page: Any) -> int:
    """Decoded bytes of a page's content streams (pypdf caps each stream's inflation)."""
    try:
        data = page._get_contents_as_bytes()
    except AttributeError:  # a pypdf without the helper: count the page as read
        return 0
    return len(data or b"")


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
