"""Redaction operators, overlap handling, detect_all, and the `clearance pii` / `redact` commands."""

from __future__ import annotations

import json
import random
import string
import time
from pathlib import Path

import pytest

from gates.base import Match
from gates.redact import (
    RedactionError,
    detect_all,
    find_all,
    merge_spans,
    redact,
    resolve_overlaps,
    resolve_salt,
)

_r = random.Random(3)
AWS_ID = "AKIA" + "".join(_r.choice(string.ascii_uppercase + "234567") for _ in range(16))
SSN = "219-09-9999"
EMAIL = "jane.doe@example.org"
PW = "Tr0ub4dor&3x"
DOC = (
    f"Dear Ms. Jane Doe,\nYour SSN {SSN} and email {EMAIL} are on file (DOB: 01/02/1950).\n"
    f'aws_access_key_id = {AWS_ID}\npassword = "{PW}"\n'
)
RAW = [SSN, EMAIL, AWS_ID, PW, "Jane Doe", "01/02/1950"]


@pytest.mark.parametrize("operator", ["replace", "mask", "hash"])
def test_redaction_never_leaves_a_raw_value(operator: str) -> None:
    out = redact(DOC, find_all(DOC), operator, salt="pepper")
    for raw in RAW:
        assert raw not in out
    assert out.startswith("Dear Ms. ")


def test_replace_writes_the_type() -> None:
    out = redact(DOC, detect_all(DOC), "replace")
    assert "Your SSN [US_SSN] and email [EMAIL_ADDRESS]" in out
    assert "(DOB: [DATE_OF_BIRTH])" in out  # the DOB beat the plain DATE_TIME on the same span
    assert 'password = "[PASSWORD]"' in out


def test_mask_keeps_a_few_characters_of_pii_and_none_of_secrets() -> None:
    out = redact(DOC, detect_all(DOC), "mask")
    assert "***-**-**99" in out  # punctuation and the last two characters stay
    assert "*" * len(AWS_ID) in out and AWS_ID[:4] not in out


def test_hash_is_keyed_and_stable_per_salt() -> None:
    a = redact(DOC, detect_all(DOC), "hash", salt="s1")
    b = redact(DOC, detect_all(DOC), "hash", salt="s1")
    c = redact(DOC, detect_all(DOC), "hash", salt="s2")
    assert a == b and a != c
    assert "[US_SSN:" in a


def test_hash_salt_from_env_else_random(monkeypatch) -> None:
    monkeypatch.setenv("CLEARANCE_REDACT_SALT", "from-env")
    assert resolve_salt() == (b"from-env", False)
    monkeypatch.delenv("CLEARANCE_REDACT_SALT")
    salt1, generated = resolve_salt()
    salt2, _ = resolve_salt()
    assert generated and salt1 != salt2 and len(salt1) == 32


def test_unknown_operator() -> None:
    with pytest.raises(RedactionError, match="expected one of: replace, mask, hash"):
        redact(DOC, [], "shred")


def test_overlapping_spans_are_merged_so_nothing_leaks() -> None:
    text = "abcdefghij"
    matches = [Match(1, 5, "A", 0.5), Match(3, 8, "B", 0.9), Match(8, 9, "C", 0.4)]
    assert merge_spans(matches) == [(1, 8, "B"), (8, 9, "C")]
    assert redact(text, matches, "replace") == "a[B][C]j"


def test_resolve_overlaps_keeps_higher_score_then_longer() -> None:
    kept = resolve_overlaps(
        [
            Match(0, 10, "URL", 0.85),
            Match(0, 10, "SLACK_WEBHOOK", 0.95),
            Match(12, 14, "X", 0.5),
            Match(12, 18, "Y", 0.5),
        ]
    )
    assert [(m.detail, m.start, m.end) for m in kept] == [("SLACK_WEBHOOK", 0, 10), ("Y", 12, 18)]


def test_detect_all_is_sorted_and_non_overlapping() -> None:
    found = detect_all(DOC)
    assert found == sorted(found, key=lambda m: m.start)
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))
    assert {m.detail for m in found} >= {
        "PERSON",
        "US_SSN",
        "EMAIL_ADDRESS",
        "AWS_ACCESS_KEY",
        "PASSWORD",
        "DATE_OF_BIRTH",
    }
    assert {m.detail for m in detect_all(DOC, ("secret",))} == {"AWS_ACCESS_KEY", "PASSWORD"}


def test_detect_all_finishes_on_a_large_document() -> None:
    text = DOC * 5000  # ~650 KB with ~35k entities
    t0 = time.perf_counter()
    found = detect_all(text)
    assert len(found) >= 5000 * 6
    assert time.perf_counter() - t0 < 120  # hang guard only


def test_deidentification_uses_detect_all() -> None:
    from engine.providers.deid import deidentify

    d = deidentify(DOC)
    for raw in RAW:
        assert raw not in d.text


# --- CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    p = tmp_path / "letter.txt"
    p.write_text(DOC, encoding="utf-8")
    return p


def test_cli_pii_text(run_cli, doc: Path) -> None:
    code, out, err = run_cli("pii", doc)
    assert code == 0 and err == ""
    assert "letter.txt:2:10  US_SSN" in out
    for raw in RAW:
        assert raw not in out


def test_cli_pii_json_and_only(run_cli, doc: Path) -> None:
    code, out, _ = run_cli("pii", doc, "--format", "json", "--only", "secret")
    data = json.loads(out)
    assert code == 0 and data["document"] == "letter.txt"
    types = [e["type"] for e in data["entities"]]
    assert types == ["AWS_ACCESS_KEY", "PASSWORD"]
    e = data["entities"][0]
    assert set(e) == {"type", "start", "end", "line", "col", "score", "text"}
    assert DOC[e["start"] : e["end"]] == AWS_ID and e["line"] == 3 and e["col"] == 21
    assert AWS_ID not in out and PW not in out


def test_cli_pii_bad_options_and_missing_file(run_cli, doc: Path, tmp_path: Path) -> None:
    assert run_cli("pii", doc, "--format", "xml")[0] == 2
    assert run_cli("pii", doc, "--only", "names")[0] == 2
    code, _, err = run_cli("pii", tmp_path / "nope.txt")
    assert code == 2 and err.count("\n") == 1 and "no such file" in err
    assert run_cli("pii")[0] == 2


def test_cli_redact_to_stdout_and_file(run_cli, doc: Path, tmp_path: Path) -> None:
    before = doc.read_bytes()
    code, out, _ = run_cli("redact", doc)
    assert code == 0 and "[US_SSN]" in out
    for raw in RAW:
        assert raw not in out
    target = tmp_path / "out.txt"
    code, out, err = run_cli("redact", doc, "--operator", "mask", "--output", target)
    assert code == 0 and out == "" and "out.txt" in err
    assert SSN not in target.read_text() and "***-**-**99" in target.read_text()
    assert doc.read_bytes() == before  # the input is never modified


def test_cli_redact_refuses_to_overwrite_input(run_cli, doc: Path) -> None:
    before = doc.read_bytes()
    code, _, err = run_cli("redact", doc, "--output", doc.parent / "." / doc.name)
    assert code == 2 and "refusing to overwrite" in err
    assert doc.read_bytes() == before


def test_cli_redact_hash_says_when_salt_is_random(run_cli, doc: Path, monkeypatch) -> None:
    monkeypatch.delenv("CLEARANCE_REDACT_SALT", raising=False)
    code, out, err = run_cli("redact", doc, "-o", "hash")
    assert code == 0 and "random salt" in err and "[US_SSN:" in out
    monkeypatch.setenv("CLEARANCE_REDACT_SALT", "fixed")
    a = run_cli("redact", doc, "-o", "hash")
    b = run_cli("redact", doc, "-o", "hash")
    assert a[1] == b[1] and a[2] == ""


def test_cli_redact_unknown_operator(run_cli, doc: Path) -> None:
    code, _, err = run_cli("redact", doc, "--operator", "shred")
    assert code == 2 and "expected one of" in err
