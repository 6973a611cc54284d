"""`clearance new gate` copies dsl/TEMPLATE.gates, which explains every gate field and lints clean."""

from __future__ import annotations

from dsl.compile import DEFAULT_FIELDS, GATE_FIELDS
from engine.cli.new import TEMPLATE


def test_the_template_explains_every_field_and_every_section():
    text = TEMPLATE.read_text(encoding="utf-8")
    for field in GATE_FIELDS:
        assert f"\n  {field} " in text or f"\n  # {field} " in text, field
    for word in ("require", "forbid", "when", "example pass", "example fail", "expecting"):
        assert word in text, word
    for field in DEFAULT_FIELDS:
        assert f"#   {field} " in text, field  # explained in the defaults comment


def test_new_gate_writes_a_file_that_lints_clean(run_cli, tmp_path):
    code, out, err = run_cli("new", "gate", "dpo_contact", "--code", "ACME-7", "--dir", tmp_path)
    assert code == 0, err
    target = tmp_path / "dpo_contact.gates"
    assert f"created {target}" in out
    assert "gate ACME-7 dpo_contact {" in target.read_text(encoding="utf-8")
    code, out, err = run_cli("lint", target)
    assert code == 0, err
    assert "0 error(s), 0 warning(s) in 1 gates" in out


def test_new_gate_refuses_to_overwrite_and_bad_names(run_cli, tmp_path):
    assert run_cli("new", "gate", "--dir", tmp_path)[0] == 0
    assert (tmp_path / "my_gate.gates").is_file()
    code, _, err = run_cli("new", "gate", "--dir", tmp_path)
    assert code == 2 and "already exists" in err
    code, _, err = run_cli("new", "gate", "two words", "--dir", tmp_path)
    assert code == 2 and "is not a gate name" in err
    code, _, err = run_cli("new", "gate", "ok", "--code", "lower-1", "--dir", tmp_path)
    assert code == 2 and "is not a gate code" in err
    code, _, err = run_cli("new", "gate", "ok", "--dir", tmp_path / "newmodule")
    assert code == 0  # a new folder is made
    assert (tmp_path / "newmodule" / "ok.gates").is_file()
    (tmp_path / "plain").write_text("x")
    code, _, err = run_cli("new", "gate", "ok", "--dir", tmp_path / "plain")
    assert code == 2 and "is a file, not a folder" in err
    code, _, err = run_cli("new", "gate", "ok", "--code", "PCI-3.4(b)", "--dir", tmp_path / "d")
    assert code == 0, err
