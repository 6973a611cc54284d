"""`clearance lsp`: a language server for gate files on pygls, over stdio. Diagnostics as you
type (the codes and spans of `clearance lint FOLDER`; the inline examples run on open and save),
hover, completion, go to definition and a quick fix for every did-you-mean."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from dsl.diagnostics import Diagnostic, Loc
from engine.lsp.analysis import DID_YOU_MEAN, Analysis, analyse, example_diagnostics

log = logging.getLogger(__name__)

SOURCE = "clearance"
#: how long typing must pause before a changed file is compiled again
DEBOUNCE_S = 0.2
_KINDS = {
    "field": types.CompletionItemKind.Field,
    "check": types.CompletionItemKind.Function,
    "keyword": types.CompletionItemKind.Keyword,
    "define": types.CompletionItemKind.Variable,
    "detector": types.CompletionItemKind.Constant,
    "value": types.CompletionItemKind.EnumMember,
}


class GateServer(LanguageServer):
    """The server, with the latest analysis of each open file and what it has published."""

    def __init__(self) -> None:
        super().__init__("clearance", _version())
        self.analyses: dict[str, tuple[int | None, Analysis]] = {}
        #: module folder -> URIs it has published diagnostics for (to clear the fixed ones)
        self.published: dict[Path, set[str]] = {}

    # --- analysis -----------------------------------------------------------------------
    def buffers(self) -> dict[Path, str]:
        out = {}
        for uri, doc in self.workspace.text_documents.items():
            p = to_fs_path(uri)
            if p:
                out[Path(p).resolve()] = doc.source
        return out

    def analysis(self, uri: str) -> Analysis | None:
        """The analysis of an open file, recomputed when its version changed."""
        p = to_fs_path(uri)
        if not p:
            return None  # an untitled buffer: nothing to compile it with
        doc = self.workspace.get_text_document(uri)
        hit = self.analyses.get(uri)
        if hit is not None and hit[0] == doc.version and doc.version is not None:
            return hit[1]
        got = analyse(Path(p).resolve(), self.buffers())
        self.analyses[uri] = (doc.version, got)
        return got

    def lines(self, a: Analysis, path: Path) -> list[str]:
        return a.texts.get(path, "").split("\n")

    def to_range(self, a: Analysis, path: Path, loc: Loc | None) -> types.Range:
        """A source span (1-based, code points) as an LSP range in the client's units."""
        if loc is None:
            return types.Range(types.Position(0, 0), types.Position(0, 1))
        lines = self.lines(a, path)
        codec = self.workspace.position_codec
        start = codec.position_to_client_units(lines, types.Position(loc.line - 1, loc.col - 1))
        end = codec.position_to_client_units(
            lines, types.Position(loc.end_line - 1, max(loc.end_col - 1, 0))
        )
        return types.Range(start, end)

    async def publish(self, uri: str, with_examples: bool) -> None:
        """Publish the compile diagnostics of the file's module at once; with
        ``with_examples``, then run its inline examples off the event loop (they may load the
        offline model or ask a provider) and publish again if one misbehaves."""
        a = self.analysis(uri)
        if a is None:
            return
        version = self.analyses[uri][0]
        diags = list(a.diagnostics)
        self.send(a, diags)
        if not with_examples or a.module is None or any(d.severity == "error" for d in diags):
            return
        try:
            extra = await asyncio.to_thread(example_diagnostics, a.module)
        except Exception as exc:  # a provider failure must not cost the compile diagnostics
            log.warning("inline examples could not run: %s", exc)
            return
        current = self.analyses.get(uri)
        if extra and current is not None and current[0] == version:  # not edited meanwhile
            self.send(a, diags + extra)

    def send(self, a: Analysis, diags: list[Diagnostic]) -> None:
        """One publication per file with diagnostics (the open file always, to clear it), and
        an empty one for each file of the module that had some last time and has none now."""
        by_file: dict[Path, list[types.Diagnostic]] = {a.path: []}
        for d in diags:
            path = Path(d.file).resolve()
            by_file.setdefault(path, []).append(self.to_lsp(a, path, d))
        folder = a.path.parent
        uris = set()
        for path, items in by_file.items():
            u = from_fs_path(str(path)) or str(path)
            uris.add(u)
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=u, diagnostics=items)
            )
        for stale in self.published.get(folder, set()) - uris:
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=stale, diagnostics=[])
            )
        self.published[folder] = uris

    def to_lsp(self, a: Analysis, path: Path, d: Diagnostic) -> types.Diagnostic:
        message = d.message + (f"\n{d.help}" if d.help else "")
        return types.Diagnostic(
            range=self.to_range(a, path, d.loc),
            message=message,
            severity=(
                types.DiagnosticSeverity.Error
                if d.severity == "error"
                else types.DiagnosticSeverity.Warning
            ),
            code=d.code,
            source=SOURCE,
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clearance")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0"


server = GateServer()


def _path(uri: str) -> Path | None:
    p = to_fs_path(uri)
    return Path(p).resolve() if p else None


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: GateServer, params: types.DidOpenTextDocumentParams) -> None:
    await ls.publish(params.text_document.uri, with_examples=True)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: GateServer, params: types.DidChangeTextDocumentParams) -> None:
    # wait for a pause in typing: a later change makes this one moot. Compile diagnostics
    # only: the examples (which may ask the semantic provider) run on save
    await asyncio.sleep(DEBOUNCE_S)
    uri = params.text_document.uri
    if ls.workspace.get_text_document(uri).version != params.text_document.version:
        return
    await ls.publish(uri, with_examples=False)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: GateServer, params: types.DidSaveTextDocumentParams) -> None:
    await ls.publish(params.text_document.uri, with_examples=True)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: GateServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.analyses.pop(params.text_document.uri, None)


def _at(
    ls: GateServer, params: types.HoverParams | types.CompletionParams | types.DefinitionParams
) -> tuple[Analysis, Path, types.Position] | None:
    """The analysis, file and position a request points at (None: a file not analysed)."""
    a, path = ls.analysis(params.text_document.uri), _path(params.text_document.uri)
    if a is None or path is None:
        return None
    return a, path, _server_position(ls, params.text_document.uri, params.position)


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: GateServer, params: types.HoverParams) -> types.Hover | None:
    at = _at(ls, params)
    if at is None:
        return None
    a, path, pos = at
    text = a.hover(path, pos.line, pos.character)
    if text is None:
        return None
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION,
    types.CompletionOptions(trigger_characters=["(", ",", " "]),
)
def completion(ls: GateServer, params: types.CompletionParams) -> types.CompletionList:
    at = _at(ls, params)
    if at is None:
        return types.CompletionList(is_incomplete=False, items=[])
    a, path, pos = at
    items = [
        types.CompletionItem(label=label, kind=_KINDS.get(kind), detail=detail or None)
        for label, kind, detail in a.completions(path, pos.line, pos.character)
    ]
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: GateServer, params: types.DefinitionParams) -> types.Location | None:
    at = _at(ls, params)
    if at is None:
        return None
    a, path, pos = at
    got = a.definition(path, pos.line, pos.character)
    if got is None:
        return None
    where, loc = got
    if where not in a.texts:  # an import target the compilation did not read: its first line
        return types.Location(
            uri=from_fs_path(str(where)) or str(where),
            range=types.Range(types.Position(0, 0), types.Position(0, 0)),
        )
    return types.Location(
        uri=from_fs_path(str(where)) or str(where), range=ls.to_range(a, where, loc)
    )


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
)
def code_action(ls: GateServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """A quick fix for every diagnostic of the file, in the asked range, that suggests a name
    ("Did you mean 'x'?"): replace the misspelt word with it."""
    uri = params.text_document.uri
    a, path = ls.analysis(uri), _path(uri)
    if a is None or path is None:
        return []
    out = []
    for d in a.diagnostics:
        if Path(d.file).resolve() != path or d.loc is None or not d.help:
            continue
        edit = quick_fix(a, path, d)
        if edit is None:
            continue
        loc, new = edit
        rng = ls.to_range(a, path, loc)
        if not _overlaps(rng, params.range):
            continue
        out.append(
            types.CodeAction(
                title=f"Replace with '{new}'",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[ls.to_lsp(a, path, d)],
                is_preferred=True,
                edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(range=rng, new_text=new)]}),
            )
        )
    return out


def quick_fix(a: Analysis, path: Path, d: Diagnostic) -> tuple[Loc, str] | None:
    """The span to replace and its replacement, for a did-you-mean diagnostic: the misspelt
    word quoted in the message, found in the diagnostic's span."""
    m = DID_YOU_MEAN.search(d.help or "")
    if m is None or d.loc is None:
        return None
    new = m.group(1)
    text = a.texts.get(path, "")
    span = text[d.loc.start : d.loc.end]
    quoted = [w for w in _quoted(d.message) if w in span]
    if not quoted:
        return None
    wrong = quoted[0]
    at = span.find(wrong)
    if span.find(wrong, at + 1) != -1 and span != wrong:
        return None  # ambiguous: the word occurs twice in the span
    start = d.loc.start + at
    before = text[:start]
    line = before.count("\n") + 1
    col = start - (before.rfind("\n") + 1) + 1
    return Loc(line, col, line, col + len(wrong), start, start + len(wrong)), new


def _quoted(message: str) -> list[str]:
    import re

    return re.findall(r"'([^']+)'", message)


def _overlaps(a: types.Range, b: types.Range) -> bool:
    def key(p: types.Position) -> tuple[int, int]:
        return (p.line, p.character)

    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


def _server_position(ls: GateServer, uri: str, pos: types.Position) -> types.Position:
    """A client position (UTF-16 units by default) in code points, as the analysis counts."""
    doc = ls.workspace.get_text_document(uri)
    got = doc.position_codec.position_from_client_units(doc.lines, pos)
    return types.Position(got.line, got.character)


def main() -> None:
    server.start_io()
