"""Writes the small sample documents in this folder: sample.html, sample.docx and sample.pdf."""

from __future__ import annotations

import datetime
import io
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The same short privacy notice in every format, so a test can compare what each reader extracts.
TITLE = "Acme Ltd Privacy Notice"
SECTIONS = [
    (
        "Who we are",
        "Acme Ltd, 1 High Street, Leeds, is the data controller. "
        "Write to privacy@acme.example with any question about your data.",
    ),
    (
        "What we collect",
        "We collect your name, email address and order history to deliver "
        "your orders and to send you our newsletter.",
    ),
    ("How long we keep it", "We keep order records for six years because tax law requires it."),
    (
        "Your rights",
        "You may ask for a copy of your data, ask us to correct or erase it, "
        "and complain to the Information Commissioner's Office.",
    ),
]
TABLE = [
    ("Data", "Purpose", "Retention"),
    ("Email address", "Newsletter", "Until you unsubscribe"),
    ("Order history", "Delivery and tax", "Six years"),
]


def write_html(path: Path) -> None:
    body = [f"<h1>{TITLE}</h1>"]
    for heading, text in SECTIONS:
        body.append(f"<h2>{heading}</h2>\n<p>{text}</p>")
    rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in TABLE)
    body.append(f"<table>{rows}</table>")
    path.write_text(
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>Not body text</title>\n'
        "<style>p { color: #333 }</style>\n<script>var tracking = 'HIDDEN-SCRIPT';</script>"
        "</head>\n<body>\n" + "\n".join(body) + "\n"
        "<div hidden>HIDDEN-ATTRIBUTE text</div>\n"
        '<p style="display: none">HIDDEN-STYLE text</p>\n'
        "<noscript>HIDDEN-NOSCRIPT text</noscript>\n"
        "</body></html>\n",
        encoding="utf-8",
    )


def write_docx(path: Path) -> None:
    import docx

    doc = docx.Document()
    doc.add_heading(TITLE, level=0)  # level 0 is Word's 'Title' style
    for heading, text in SECTIONS:
        doc.add_heading(heading, level=1)
        doc.add_paragraph(text)
    table = doc.add_table(rows=len(TABLE), cols=len(TABLE[0]))
    for r, row in enumerate(TABLE):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    # Fixed timestamps (document properties and ZIP entries) keep the file byte-identical
    # between runs, so regenerating the samples does not churn the repository.
    doc.core_properties.created = doc.core_properties.modified = datetime.datetime(2026, 1, 1)
    raw = io.BytesIO()
    doc.save(raw)
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))


def write_pdf(path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime.datetime(2026, 1, 1))
    pdf.set_font("Helvetica", size=11)
    for i, (heading, text) in enumerate(SECTIONS):
        if i % 2 == 0:  # two sections per page, so the sample has pages to map spans to
            pdf.add_page()
            if i == 0:
                pdf.multi_cell(0, 8, TITLE.upper(), new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
        pdf.multi_cell(0, 8, heading.upper(), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    pdf.output(str(path))


def main() -> None:
    write_html(HERE / "sample.html")
    write_docx(HERE / "sample.docx")
    write_pdf(HERE / "sample.pdf")


if __name__ == "__main__":
    main()
