"""Document-type inference: clear signals decide, weak or mixed ones leave the type unknown."""

from __future__ import annotations

import pytest

from conftest import SAMPLES
from engine.doctype import infer_doc_type
from engine.ingest import load_document


@pytest.mark.parametrize(
    "name, expected",
    [
        ("privacy-notice.md", "privacy_notice"),
        ("notice-of-privacy-practices.md", "notice_of_privacy_practices"),
        ("breach-letter.txt", "breach_notification"),
        ("engineering-memo.md", "memo"),
        ("research-extract.csv.txt", "deidentified_extract"),
    ],
)
def test_samples_are_recognised(name, expected):
    doc = load_document(SAMPLES / name)
    assert infer_doc_type(doc.text, doc.name) == expected


def test_line_anchors_match_at_any_line_start():
    # memo headers are anchored with ^ and sit on later lines, after a blank line
    text = "\n\nMEMO\nTo: Finance\nFrom: Legal\nSubject: Q3 filings\n\nPlease review."
    assert infer_doc_type(text) == "memo"
    assert infer_doc_type("Please send the memo to: finance. Subject: none") is None


def test_case_insensitive_and_unknown():
    assert (
        infer_doc_type(
            "THIS PRIVACY POLICY explains how the DATA CONTROLLER uses "
            "personal data and the legal basis"
        )
        == "privacy_notice"
    )
    assert infer_doc_type("Lunch is at noon. Bring cake.") is None


def test_file_name_counts_as_a_signal():
    assert (
        infer_doc_type("Changes in this version: faster start-up.", "release-note-2.4.md") is None
    )
    assert (
        infer_doc_type("Release notes for v2.4.0: faster start-up.", "release-note.md")
        == "release_note"
    )


def test_only_the_head_of_a_huge_document_is_read():
    text = "Lunch is at noon.\n" * 2000 + "NOTICE OF DATA BREACH what happened"
    assert len(text) > 20_000
    assert infer_doc_type(text) is None
