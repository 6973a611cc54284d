"""`clearance lsp`: a real stdio session with the server (pygls' LanguageClient talking to a
`clearance lsp` subprocess): diagnostics equal to lint's, quick fixes, hover, completion and
go to definition, on a module written here."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from conftest import ROOT, write
from engine.api import Engine
from gates.pii import DETECTORS

SHARED = """\
# a library file, imported by name
define contact_email = pii(EMAIL_ADDRESS)
"""

DEMO = """\
module demo { title "Demo" version "1" }

import shared

define controller_words = phrase("data controller", "controller")

gate DEMO-1 controller_named {
  title    "Notice names the controller"
  cite     "GDPR Art. 13(1)(a)"
  severity hihg
  applies  privacy_notise
  require  near(controller_words, contact_email, within 300 chars)
  fix      "Name the controller and an email address."
  example fail "We collect your data."
  example pass "Acme Ltd is the data controller: privacy@acme.example."
}

gate DEMO-2 no_regexp {
  title "No internal code names"
  cite  "Policy 1"
  forbid regexp /Project X/
  fix "Remove it."
  example fail "About Project X."
  example pass "About nothing."
}
"""


class Session:
    """A client connected to a `clearance lsp` subprocess, driven from synchronous tests."""

    def __init__(self, home: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = LanguageClient("clearance-test", "1")
        self.diagnostics: dict[str, list[types.Diagnostic]] = {}
        self.updates = 0

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.diagnostics[params.uri] = list(params.diagnostics)
            self.updates += 1

        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC", "CLEARANCE"))}
        env.update(CLEARANCE_HOME=str(home), CLEARANCE_PROVIDER="offline")
        self.run(
            self.client.start_io(
                sys.executable,
                "-c",
                "import sys; from engine.cli import main; sys.exit(main(['lsp']))",
                cwd=str(ROOT),
                env=env,
            )
        )
        self.run(
            self.client.initialize_async(
                types.InitializeParams(capabilities=types.ClientCapabilities(), process_id=None)
            )
        )
        self.client.initialized(types.InitializedParams())

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def wait_for_diagnostics(self, uri: str, after: int) -> list[types.Diagnostic]:
        async def wait() -> None:
            while self.updates <= after or uri not in self.diagnostics:
                await asyncio.sleep(0.02)

        self.run(wait())
        return self.diagnostics[uri]

    def close(self) -> None:
        self.run(self.client.shutdown_async(None))
        self.client.exit(None)
        self.run(self.client.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mods")
    write(root / "lib" / "shared.gates", SHARED)
    write(root / "demo" / "demo.gates", DEMO)
    return root / "demo"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, folder: Path) -> Iterator[Session]:
    s = Session(tmp_path_factory.mktemp("home"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def opened(session: Session, folder: Path) -> tuple[str, list[types.Diagnostic]]:
    uri = from_fs_path(str((folder / "demo.gates").resolve()))
    assert uri
    before = session.updates
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="gates", version=1, text=DEMO)
        )
    )
    return uri, session.wait_for_diagnostics(uri, before)


def _at(text: str, needle: str, offset: int = 0) -> types.Position:
    """The position of ``needle`` (plus ``offset`` characters) in ``text``."""
    i = text.index(needle) + offset
    line = text.count("\n", 0, i)
    return types.Position(line, i - (text.rfind("\n", 0, i) + 1))


def test_diagnostics_are_lints(opened: tuple[str, list[types.Diagnostic]], folder: Path) -> None:
    _, got = opened
    engine = Engine(gate_paths=[folder], include_builtin=False, cache=None, audit=None)
    expected, _ = engine.lint(["demo"])
    assert expected, "the module is written with mistakes"

    def lint_key(d: Any) -> tuple:
        return (d.code, d.loc.line - 1, d.loc.col - 1, d.loc.end_line - 1, d.loc.end_col - 1)

    def lsp_key(d: types.Diagnostic) -> tuple:
        r = d.range
        return (d.code, r.start.line, r.start.character, r.end.line, r.end.character)

    assert sorted(map(lsp_key, got)) == sorted(map(lint_key, expected))
    assert {d.code for d in got} == {"DSL103", "DSL124", "DSL125"}
    assert all(d.source == "clearance" for d in got)


def test_quick_fix_for_every_did_you_mean(
    session: Session, opened: tuple[str, list[types.Diagnostic]]
) -> None:
    uri, diags = opened
    fixes = {}
    for d in diags:
        actions = session.run(
            session.client.text_document_code_action_async(
                types.CodeActionParams(
                    text_document=types.TextDocumentIdentifier(uri),
                    range=d.range,
                    context=types.CodeActionContext(diagnostics=[d]),
                )
            )
        )
        assert actions, f"no quick fix for {d.code}: {d.message}"
        (edit,) = actions[0].edit.changes[uri]
        assert edit.range == d.range  # the misspelt word, nothing more
        fixes[d.code] = edit.new_text
    assert fixes == {"DSL103": "regex", "DSL124": "high", "DSL125": "privacy_notice"}

    # the fixed text, sent as the editor would: no diagnostics left
    fixed = (DEMO.replace("hihg", "high").replace("privacy_notise", "privacy_notice")).replace(
        "regexp", "regex"
    )
    before = session.updates
    session.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=fixed)],
        )
    )
    assert session.wait_for_diagnostics(uri, before) == []
    # and back, for the other tests
    before = session.updates
    session.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=DEMO)],
        )
    )
    assert len(session.wait_for_diagnostics(uri, before)) == 3


def _hover(session: Session, uri: str, pos: types.Position) -> str | None:
    got = session.run(
        session.client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(uri), pos)
        )
    )
    return None if got is None else got.contents.value


def test_hover(session: Session, opened: tuple[str, list[types.Diagnostic]], folder: Path) -> None:
    uri, _ = opened
    gate = _hover(session, uri, _at(DEMO, "DEMO-1", 2))
    assert gate is not None
    assert "Notice names the controller" in gate
    assert "GDPR Art. 13(1)(a)" in gate and "Name the controller and an email address." in gate
    define = _hover(session, uri, _at(DEMO, "controller_words, contact", 3))
    assert define is not None and 'phrase("data controller", "controller")' in define
    lib_define = _hover(session, uri, _at(DEMO, "contact_email", 1))
    assert lib_define is not None and "pii(EMAIL_ADDRESS)" in lib_define
    assert "shared.gates" in lib_define
    # a detector: hovered in the library file, where pii(EMAIL_ADDRESS) is written
    lib_uri = from_fs_path(str((folder.parent / "lib" / "shared.gates").resolve()))
    assert lib_uri
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=lib_uri, language_id="gates", version=1, text=SHARED)
        )
    )
    det = _hover(session, lib_uri, _at(SHARED, "EMAIL_ADDRESS", 2))
    assert det is not None and DETECTORS["EMAIL_ADDRESS"].description in det
    session.client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(lib_uri))
    )
    assert _hover(session, uri, _at(DEMO, "We collect", 1)) is None  # inside a string: nothing


def _labels(session: Session, uri: str, pos: types.Position) -> set[str]:
    got = session.run(
        session.client.text_document_completion_async(
            types.CompletionParams(types.TextDocumentIdentifier(uri), pos)
        )
    )
    items = got.items if isinstance(got, types.CompletionList) else got
    return {i.label for i in items}


def test_completion(session: Session, opened: tuple[str, list[types.Diagnostic]]) -> None:
    uri, _ = opened
    # inside a gate, at the start of a line: its fields and clauses
    fields = _labels(session, uri, _at(DEMO, "  fix      "))
    assert {"title", "cite", "require", "forbid", "when", "example", "on_indeterminate"} <= fields
    # after `applies`: document types
    assert "privacy_notice" in _labels(session, uri, _at(DEMO, "privacy_notise"))
    assert {"high", "critical"} <= _labels(session, uri, _at(DEMO, "hihg"))
    # in an expression: check kinds, combinators and every define, the library's too
    expr = _labels(session, uri, _at(DEMO, "near(controller_words", 5))
    assert {"regex", "phrase", "pii", "semantic", "near", "all", "any"} <= expr
    assert {"controller_words", "contact_email"} <= expr
    # at top level: declarations
    assert {"gate", "define", "import"} <= _labels(session, uri, _at(DEMO, "import shared"))


def test_detector_and_expecting_completion(session: Session, folder: Path) -> None:
    text = DEMO.replace("near(controller_words", "near(pii(EM), controller_words").replace(
        '"We collect your data."', '"We collect your data." expecting phr'
    )
    uri = from_fs_path(str((folder / "draft.gates").resolve()))  # a new, unsaved file
    assert uri
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="gates", version=1, text=text)
        )
    )
    got = _labels(session, uri, _at(text, "pii(EM", 6))
    assert {"EMAIL_ADDRESS", "US_SSN", "any"} <= got
    assert "AWS_ACCESS_KEY" not in got  # a secret detector, not a pii one
    # after `expecting`: check kinds, detectors and definitions
    expecting = _labels(session, uri, _at(text, "expecting phr", 13))
    assert {"phrase", "regex", "EMAIL_ADDRESS", "AWS_ACCESS_KEY", "controller_words"} <= expecting
    session.client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )


def test_go_to_definition(session: Session, opened: tuple[str, list[types.Diagnostic]]) -> None:
    uri, _ = opened

    def goto(pos: types.Position) -> types.Location:
        got = session.run(
            session.client.text_document_definition_async(
                types.DefinitionParams(types.TextDocumentIdentifier(uri), pos)
            )
        )
        assert isinstance(got, types.Location), got
        return got

    local = goto(_at(DEMO, "controller_words, contact", 2))
    assert local.uri == uri and local.range.start == _at(DEMO, "controller_words =")
    lib = goto(_at(DEMO, "contact_email", 3))
    assert lib.uri.endswith("/lib/shared.gates")
    assert lib.range.start == _at(SHARED, "contact_email")
    imp = goto(_at(DEMO, "import shared", 9))
    assert imp.uri.endswith("/lib/shared.gates") and imp.range.start == types.Position(0, 0)


MISTAKES = """\
module demo { title "Demo" version "1" }

import sharde

define controller_words = phrase("data controller", "controller")

gate DEMO-1 controller_named {
  titel    "Notice names the controller"
  cite     "GDPR Art. 13(1)(a)"
  severity hihg
  applies  privacy_notise
  on_indeterminate reveiw
  require  near(controller_words, phrase("email"), within 300 charz)
  forbid   regexp /x/
  fix      "Name the controller and an email address."
  example fial "We collect your data."
  example pass "Acme Ltd is the data controller." expecting phrse
}

gate DEMO-2 names {
  title "Names"
  cite  "Policy 1"
  require controler_words
  forbid  pii(EMAIL_ADRESS)
  example fail "x"
  example pass "controller"
}
"""


def test_every_did_you_mean_has_a_quick_fix(tmp_path: Path) -> None:
    """In-process, on one file holding a misspelling of each kind: each diagnostic whose help
    says "Did you mean 'x'?" gets an edit replacing exactly the misspelt word with x."""
    from engine.lsp.analysis import analyse
    from engine.lsp.server import quick_fix

    write(tmp_path / "lib" / "shared.gates", SHARED)
    path = write(tmp_path / "demo" / "demo.gates", MISTAKES).resolve()
    a = analyse(path, {})
    fixed = {}
    for d in a.diagnostics:
        if "Did you mean" not in (d.help or ""):
            continue
        got = quick_fix(a, Path(d.file).resolve(), d)
        assert got is not None, d.headline()
        loc, new = got
        fixed[d.code, a.texts[path][loc.start : loc.end]] = new
    assert fixed == {
        ("DSL130", "sharde"): "shared",
        ("DSL108", "titel"): "title",
        ("DSL124", "hihg"): "high",
        ("DSL125", "privacy_notise"): "privacy_notice",
        ("DSL126", "reveiw"): "review",
        ("DSL164", "charz"): "chars",
        ("DSL103", "regexp"): "regex",
        ("DSL128", "fial"): "fail",
        ("DSL129", "phrse"): "phrase",
        ("DSL105", "controler_words"): "controller_words",
        ("DSL104", "EMAIL_ADRESS"): "EMAIL_ADDRESS",
    }


def test_examples_run_on_open(session: Session, folder: Path) -> None:
    """A module without compile errors: its inline examples run (off the event loop) and a
    misbehaving one is reported as lint reports it (DSL123), after the compile diagnostics."""
    text = DEMO.replace("hihg", "high").replace("privacy_notise", "privacy_notice")
    text = text.replace("regexp", "regex").replace('"About nothing."', '"About Project X too."')
    path = write(folder.parent / "ok" / "ok.gates", text).resolve()
    uri = from_fs_path(str(path))
    assert uri
    session.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="gates", version=1, text=text)
        )
    )

    async def wait() -> None:
        while not session.diagnostics.get(uri):
            await asyncio.sleep(0.02)

    session.run(wait())
    (d,) = session.diagnostics[uri]
    assert d.code == "DSL123" and "example 2 of DEMO-2 expects pass" in d.message
    assert d.range.start == _at(text, 'example pass "About Project X too."')
