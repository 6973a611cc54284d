"""Hardened output (issue 16, part 7): names cannot forge result lines or drive the terminal in
any format, the API does not reveal server paths, and a client hang-up is one log line."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import LiveServers
from engine.api import Engine
from engine.formatters.base import formats, get_formatter, shown
from engine.ingest import document_from_text
from engine.providers.base import NullProvider
from engine.server import Settings, create_app

#: a name that tries to print a second, passing result line and to clear the screen
FORGED = "memo.txt: PASS\nfake.txt:1:1: info OK-1 all clear [ok]\x1b[2J\x1b[31m\u202e.txt"
#: raw control characters that must never appear in an output (newline and tab aside)
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
FAILING = "Rollback: psql postgres://deploy:Tr4ck-Harbor-92@db.internal.example.com:5432/clinic\n"


@pytest.fixture
def serve() -> Iterator:
    servers = LiveServers()
    yield servers.start
    servers.close()


def _forged_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("fake.txt")]


def test_shown_escapes_every_control_character() -> None:
    assert shown("a\nb\r\t\x1b[0m\x00\x7f\x85\u2028\u202e") == (
        "a\\nb\\r\\t\\x1b[0m\\x00\\x7f\\x85\\u2028\\u202e"
    )
    assert shown("Datenschutzerklärung – 2024 ✓.pdf") == "Datenschutzerklärung – 2024 ✓.pdf"


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit", "html"])
def test_no_format_emits_a_control_character_from_a_name(fmt: str) -> None:
    assert set(formats()) >= {"text", "json", "sarif", "junit", "html"}
    engine = Engine(provider=NullProvider(), cache=None, audit=None)
    report = engine.validate(document_from_text(FAILING, name=FORGED))
    assert report.verdict == "fail"
    out = get_formatter(fmt).render([report])
    assert not RAW.search(out), repr(RAW.search(out))
    assert not _forged_lines(out)
    if fmt in ("text", "junit", "html"):  # shown, escaped, where a reader sees it
        assert "\\nfake.txt:1:1" in out and "\\x1b[2J" in out


def test_cli_file_name_cannot_forge_a_result_line(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "memo.txt\nfake.txt:1:1: info OK-1 all clear [ok]\x1b[2J.txt"
    doc.write_text(FAILING, encoding="utf-8")
    code, out, err = run_cli("validate", doc, "-f", "text")
    assert code == 1, err
    assert "\x1b" not in out and not _forged_lines(out)
    assert "memo.txt\\nfake.txt:1:1: info OK-1 all clear [ok]\\x1b[2J.txt" in out
    # every finding line names the real file (fix lines are indented under their finding)
    assert all(
        line.startswith(str(tmp_path))
        for line in out.splitlines()
        if line.strip() and not line.startswith("    ")
    )


def test_http_name_cannot_forge_a_result_line(serve) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(provider=NullProvider(), cache=None, audit=None)
    url = serve(create_app(engine, settings=Settings(auth=False)))
    with httpx.Client(base_url=url, timeout=20) as c:
        r = c.post("/v1/validate?format=text", json={"text": FAILING, "name": FORGED})
        assert r.status_code == 200, r.text
        assert not RAW.search(r.text) and not _forged_lines(r.text)
        assert r.text.splitlines()[0].startswith("memo.txt: PASS\\nfake.txt:1:1")
        js = c.post("/v1/validate", json={"text": FAILING, "name": FORGED}).json()
        assert js["document"]["name"] == FORGED  # the data is kept; only its display is escaped


def test_api_gives_module_relative_paths(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "module.gates").write_text(
        'module extra { title "Extra" version "1" }\n', encoding="utf-8"
    )
    (tmp_path / "extra" / "x.gates").write_text(
        'gate EXTRA-1 no_word { title "t" cite "x" forbid regex /secretword/ '
        'example pass "fine" example fail "secretword" }\n',
        encoding="utf-8",
    )
    engine = Engine(
        gate_paths=[tmp_path / "extra"], provider=NullProvider(), cache=None, audit=None
    )
    url = serve(create_app(engine, settings=Settings(auth=False)))
    root = str(Path(__file__).resolve().parents[2])
    with httpx.Client(base_url=url, timeout=20) as c:
        mods = c.get("/v1/modules")
        gate = c.get("/v1/gates/EXTRA-1")
        code = next(m for m in mods.json() if m["id"] == "gdpr")["gates"][0]["code"]
        builtin = c.get(f"/v1/gates/{code}")
    for r in (mods, gate, builtin):
        assert r.status_code == 200, r.text
        assert str(tmp_path) not in r.text and root not in r.text
    files = {g["file"] for m in mods.json() for g in m["gates"]}
    assert all(not f.startswith("/") and ".." not in f for f in files), files
    assert gate.json()["file"] == "x.gates"
    assert "/" not in builtin.json()["file"] and builtin.json()["file"].endswith(".gates")


def test_a_client_disconnect_is_one_log_line(serve, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(provider=NullProvider(), cache=None, audit=None)
    url = serve(create_app(engine, settings=Settings(auth=False)))
    port = int(url.rsplit(":", 1)[1])
    with caplog.at_level(logging.INFO, logger="clearance.server"):
        for ctype, body in (
            ("application/json", b'{"text": "abc'),
            (
                "multipart/form-data; boundary=XX",
                b'--XX\r\nContent-Disposition: form-data; name="file"; '
                b'filename="a.txt"\r\n\r\nhello',
            ),
        ):
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(
                    b"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    + ctype.encode()
                    + b"\r\nContent-Length: 100000\r\n\r\n"
                    + body
                )
                time.sleep(0.2)
        until = time.monotonic() + 5
        while (
            time.monotonic() < until
            and len([r for r in caplog.records if "disconnected" in r.getMessage()]) < 2
        ):
            time.sleep(0.05)
    server_records = [r for r in caplog.records if r.name == "clearance.server"]
    gone = [r for r in server_records if "disconnected" in r.getMessage()]
    assert len(gone) == 2, [r.getMessage() for r in server_records]
    assert all(r.exc_info is None and r.levelno == logging.INFO for r in gone)
    assert "\n" not in gone[0].getMessage()
    assert not [r for r in server_records if r.levelno >= logging.ERROR]
