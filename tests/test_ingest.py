"""Ingestion: each sample format's text, sections and pages; refusals with one clear message."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest

from engine.errors import DocumentError, UserError
from engine.ingest import DOCX, HTML, PDF, document_from_bytes, load_document

SAMPLES = Path(__file__).resolve().parents[1] / "data/samples/formats"
BODY = "Acme Ltd, 1 High Street, Leeds, is the data controller."


def refused(data: bytes, name: str, **kw: object) -> str:
    with pytest.raises(DocumentError) as info:
        document_from_bytes(data, name, **kw)
    message = str(info.value)
    assert "\n" not in message and message.startswith(name)
    assert info.value.exit_code == 2 and isinstance(info.value, UserError)
    return message


def headings(doc) -> list[str | None]:
    return [s.heading for s in doc.sections]


def check_sections(doc) -> None:
    """Sections tile the text and each starts at its heading."""
    assert doc.sections[0].start == 0 and doc.sections[-1].end == len(doc.text)
    for a, b in zip(doc.sections, doc.sections[1:], strict=False):
        assert a.end == b.start
    for s in doc.sections:
        if s.heading:
            assert " ".join(doc.text[s.start : s.end].split()).startswith(s.heading)


# --- the sample formats -----------------------------------------------------------------------


def test_html_sample_visible_text_and_heading_sections() -> None:
    doc = load_document(SAMPLES / "sample.html")
    assert doc.media_type == HTML and doc.page_starts == []
    assert BODY in doc.text
    for hidden in ("HIDDEN", "tracking", "Not body text", "color: #333"):
        assert hidden not in doc.text
    assert headings(doc) == [
        "Acme Ltd Privacy Notice",
        "Who we are",
        "What we collect",
        "How long we keep it",
        "Your rights",
    ]
    assert [s.level for s in doc.sections] == [1, 2, 2, 2, 2]
    assert "Email address | Newsletter | Until you unsubscribe" in doc.text
    check_sections(doc)


def test_docx_sample_paragraphs_headings_and_tables() -> None:
    doc = load_document(SAMPLES / "sample.docx")
    assert doc.media_type == DOCX
    assert BODY in doc.text
    assert headings(doc) == [
        "Acme Ltd Privacy Notice",
        "Who we are",
        "What we collect",
        "How long we keep it",
        "Your rights",
    ]
    assert "Order history | Delivery and tax | Six years" in doc.text
    line, col = doc.line_col(doc.text.index("Order history"))
    assert col == 1 and line > 10
    check_sections(doc)


def test_pdf_sample_text_pages_and_guessed_headings() -> None:
    doc = load_document(SAMPLES / "sample.pdf")
    assert doc.media_type == PDF
    assert len(doc.page_starts) == 2 and doc.page_starts[0] == 0
    assert "data controller" in doc.text
    assert doc.page(doc.text.index("data controller")) == 1
    assert doc.page(doc.text.index("six years")) == 2
    assert doc.text[doc.page_starts[1] :].startswith("HOW LONG WE KEEP IT")
    assert {"WHO WE ARE", "WHAT WE COLLECT", "HOW LONG WE KEEP IT", "YOUR RIGHTS"} <= set(
        headings(doc)
    )
    check_sections(doc)


def test_formats_agree_on_the_body_text() -> None:
    texts = [load_document(SAMPLES / f"sample.{ext}").text for ext in ("html", "docx", "pdf")]
    for t in texts:
        assert "order records for six years because tax law requires it" in t


# --- text and encodings -----------------------------------------------------------------------


def test_markdown_and_text_still_read() -> None:
    doc = document_from_bytes(b"# Title\r\n\r\nBody\r\n## Part\r\nMore\r\n", "n.md")
    assert doc.text == "# Title\n\nBody\n## Part\nMore\n"
    assert headings(doc) == ["Title", "Part"]
    assert document_from_bytes(b"plain", "README").media_type == "text/plain"


def test_legacy_encodings_are_detected() -> None:
    text = "Le responsable du traitement est Société Générale, à Paris. " * 3
    doc = document_from_bytes(text.encode("cp1252"), "avis.txt")
    assert "Société Générale, à Paris" in doc.text
    doc = document_from_bytes(text.encode("utf-16"), "avis.txt")
    assert doc.text.startswith("Le responsable")
    page = "<meta charset=iso-8859-15><p>Prix : 5 € à Paris</p>".encode("iso-8859-15")
    assert "5 € à Paris" in document_from_bytes(page, "p.html").text


def test_html_details() -> None:
    page = (
        b"<html><head><meta charset='utf-8'></head><body>"
        b"<p>The <b>data</b>&nbsp;controller &amp; processor</p>"
        b"<pre>  keep\n    layout</pre><h3>Part <i>two</i></h3><ul><li>one</li><li>two</li></ul>"
        b"<span aria-hidden='true'>icon</span><input type='hidden' value='x'>"
        b"<div style='VISIBILITY : hidden'>secret</div><template>tmpl</template></body></html>"
    )
    doc = document_from_bytes(page, "p.htm")
    assert "The data controller & processor" in doc.text  # nbsp is whitespace too
    assert "  keep\n    layout" in doc.text
    assert "one\ntwo" in doc.text
    assert headings(doc) == [None, "Part two"]
    for hidden in ("icon", "secret", "tmpl"):
        assert hidden not in doc.text


def test_deeply_nested_html_does_not_recurse() -> None:
    page = "<div>" * 5_000 + "deep text" + "</div>" * 5_000  # Python's recursion limit is 1,000
    assert "deep text" in document_from_bytes(page.encode(), "deep.html").text


# --- content sniffing -------------------------------------------------------------------------


def test_a_pdf_named_txt_is_read_as_pdf() -> None:
    doc = document_from_bytes((SAMPLES / "sample.pdf").read_bytes(), "notice.txt")
    assert doc.media_type == PDF and len(doc.page_starts) == 2


def test_a_docx_named_bin_is_read_as_docx() -> None:
    doc = document_from_bytes((SAMPLES / "sample.docx").read_bytes(), "upload.bin")
    assert doc.media_type == DOCX


def test_given_media_types_are_used_when_known() -> None:
    html = b"<p>Hello <b>there</b></p>"
    assert document_from_bytes(html, "upload", media_type="text/html; charset=utf-8").text == (
        "Hello there"
    )
    doc = document_from_bytes(b"# T\n", "notes.md", media_type="application/octet-stream")
    assert doc.media_type == "text/markdown"


def test_a_text_about_pdf_headers_stays_text() -> None:
    doc = document_from_bytes(b"# PDF notes\n\nEvery file starts with %PDF-1.7.\n", "n.md")
    assert doc.media_type == "text/markdown"
    junk_first = b"junk\n" + (SAMPLES / "sample.pdf").read_bytes()
    assert document_from_bytes(junk_first, "odd.pdf").media_type == PDF


def test_a_text_file_named_pdf_is_refused() -> None:
    assert "not a PDF" in refused(b"just some text", "notice.pdf")
    assert "not a Word .docx" in refused(b"just some text", "notice.docx")


@pytest.mark.parametrize(
    ("data", "name", "expect"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "scan.txt", "image/png"),
        (b"GIF89a\x10\x01\x10\x01\xf7\xff" + b"\xff\x80" * 32, "logo.md", "image/gif"),
        (b"\x1f\x8b\x08\x08\x11\x22\x33\x44" + b"\xaa" * 64, "notes.txt.gz", "application/gzip"),
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(64), "setup.exe", "not a document"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(64), "tool", "not a document"),
        (b"hello", "photo.png", "unsupported document type '.png'"),
        (b"hello", "tool.exe", "unsupported document type '.exe'"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "old.doc", "legacy Office"),
    ],
)
def test_binaries_and_unsupported_types_are_refused(data: bytes, name: str, expect: str) -> None:
    assert expect in refused(data, name)


def test_text_that_starts_like_a_file_signature_stays_text() -> None:
    for text in ("BMW Group privacy notice.\n", "ID3 tags are metadata.\n", "MZ is a prefix.\n"):
        assert document_from_bytes(text.encode(), "notice.txt").text == text
    cp1252 = "BMW Group: société, données à caractère personnel, à Paris.\n"
    assert document_from_bytes(cp1252.encode("cp1252"), "avis.txt").text == cp1252


def test_a_zip_that_is_not_a_docx_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "hello")
    assert "a ZIP archive, not a Word .docx" in refused(buf.getvalue(), "bundle.zip")


# --- damaged, encrypted, oversize, empty ------------------------------------------------------


def test_corrupt_docx_and_pdf_are_refused_clearly() -> None:
    docx_bytes = (SAMPLES / "sample.docx").read_bytes()
    assert "damaged" in refused(docx_bytes[: len(docx_bytes) // 2], "half.docx")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<not really word")
    assert "damaged .docx" in refused(buf.getvalue(), "broken.docx")
    assert "damaged PDF" in refused(b"%PDF-1.7\n" + b"\x00\x01garbage" * 50, "broken.pdf")
    pdf = (SAMPLES / "sample.pdf").read_bytes()
    message = refused(pdf[: len(pdf) // 3], "cut.pdf")
    assert "damaged PDF" in message or "no text" in message


def _encrypted_sample(user_password: str, algorithm: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(SAMPLES / "sample.pdf"))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_encrypted_pdf_is_refused_unless_it_opens_without_a_password(algorithm: str) -> None:
    message = refused(_encrypted_sample("s3cret", algorithm), "e.pdf")
    assert "encrypted PDF that needs a password" in message
    doc = document_from_bytes(_encrypted_sample("", algorithm), "owner-only.pdf")
    assert "data controller" in doc.text


def test_a_pdf_without_text_is_refused() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    buf = io.BytesIO()
    writer.write(buf)
    assert "no text" in refused(buf.getvalue(), "scan.pdf")


def test_size_caps(tmp_path: Path) -> None:
    assert "over the 10-byte limit" in refused(b"x" * 11, "big.txt", max_bytes=10)
    path = tmp_path / "big.md"
    path.write_bytes(b"y" * 100)
    with pytest.raises(DocumentError, match="over the 50-byte limit"):
        load_document(path, max_bytes=50)
    # a small .docx that inflates far beyond the cap (a ZIP bomb, mildly)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("word/document.xml", " " * 2_000_000)
    assert "inflates to" in refused(buf.getvalue(), "bomb.docx", max_bytes=len(buf.getvalue()) + 1)


def test_empty_and_undecodable_inputs() -> None:
    assert "empty" in refused(b"", "e.txt")
    assert "empty" in refused(b"  \n\t\n", "e.md")
    assert "no text" in refused(b"<html><script>x()</script></html>", "e.html")
    rnd = random.Random(1)
    noise = bytes(rnd.randrange(1, 256) for _ in range(300))
    assert "not valid UTF-8" in refused(noise, "noise.txt")


def test_missing_paths_and_directories(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no such file"):
        load_document(tmp_path / "nope.txt")
    with pytest.raises(DocumentError, match="is a directory"):
        load_document(tmp_path)
