"""Generate the reference pages of the documentation site from the code: the gate catalogue (one
page per module, from the compiled modules), the diagnostics reference (every DSL code the compiler
and the check kinds can raise), the CLI reference (from the Typer application) and the HTTP
reference (from the FastAPI application's OpenAPI document).

Run as a MkDocs hook (``mkdocs.yml``: ``hooks: [scripts/gen_docs.py]``, at ``on_config``), so
``make docs`` always builds from the current gates, or by hand: ``python scripts/gen_docs.py [DOCS_DIR]``. Pages are
written under ``docs/reference/generated/`` (git-ignored), and only when their text changed, so
``mkdocs serve`` does not rebuild in a loop.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# mkdocs loads this file by path, from whatever venv it runs in: make the repository's own
# packages win over an installed copy (a shared venv's editable install may point elsewhere).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GENERATED = Path("reference") / "generated"
CODE_RE = re.compile(r"^DSL\d{3}$")

#: What each diagnostic code means, for codes the compiler does not describe itself. Used only
#: while ``dsl.diagnostics`` has no table of its own (``CODES``: code -> summary); the generator
#: prefers that table when it exists, and lists every code it finds in the source either way.
SUMMARIES: dict[str, str] = {
    "DSL001": "The gate file is not UTF-8.",
    "DSL002": "The gate file is empty.",
    "DSL003": "The gate file is over the 2 MB limit.",
    "DSL004": "The gate file cannot be read.",
    "DSL100": "Syntax error: the parser expected something else here (it resumes at the next "
    "declaration, so later errors are still reported).",
    "DSL101": "A character that cannot start anything in the language, or a string escape "
    "that is not a character (a lone surrogate such as `\\ud800`).",
    "DSL102": "An unterminated string, regex or declaration.",
    "DSL103": "Unknown check kind or function (with a did-you-mean).",
    "DSL104": "Unknown detector name in `pii(...)` or `secret(...)` (with a did-you-mean).",
    "DSL105": "Undefined name: no `define` of that name here or in an imported library.",
    "DSL106": "A name defined twice, or a built-in name redefined.",
    "DSL107": "Duplicate gate code, within a module or across the loaded modules.",
    "DSL108": "Unknown gate field (with a did-you-mean).",
    "DSL109": "A gate field given twice.",
    "DSL110": "Invalid regex, or a feature RE2 cannot run (lookaround, backreference): the "
    "message names the construct to use instead.",
    "DSL111": "Unknown regex flag (the flags are `i`, `s`, `m`).",
    "DSL112": "Bad phrase list (empty, a phrase RE2 cannot run, or a list too large for RE2).",
    "DSL113": "Bad semantic check (empty question, bad `like` list or `threshold`).",
    "DSL114": "Bad arguments to a function (`near`, `count`, `in section`, ...), including a "
    "`within` distance or `count` bound outside 0 to 1,000,000,000.",
    "DSL115": "A field's value has the wrong shape (one string where several were given, a "
    "string where a bare word is expected, ...).",
    "DSL120": "A gate without a citation (`cite`).",
    "DSL121": "A gate without a title.",
    "DSL122": "A gate without at least one `example pass` and one `example fail`.",
    "DSL123": "An inline example that does not behave as declared (`clearance lint` runs them).",
    "DSL124": "Unknown severity (info, low, medium, high, critical).",
    "DSL125": "Unknown document type in `applies`.",
    "DSL126": "Unknown `on_indeterminate` policy (block, pass, review).",
    "DSL127": "A gate that checks nothing (no `require` and no `forbid`).",
    "DSL128": "A malformed example.",
    "DSL129": "Unknown name in an example's `expecting` list.",
    "DSL130": "An import that cannot be found.",
    "DSL131": "A definition that refers to itself.",
    "DSL132": "Nesting too deep: an expression over 64 levels (definitions expanded), or a "
    "chain of over 64 definitions.",
    "DSL133": "An expression or gate over 10,000 checks and operators once its definitions "
    "are expanded.",
    "DSL140": "No module header in a module's gate files.",
    "DSL141": "A conflicting module header (two different modules, or a header in a library).",
    "DSL142": "A library file that holds gates (libraries hold definitions only).",
    "DSL150": "A malformed gate code (capitals, digits and dashes).",
}


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; True if written."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def _cell(text: str) -> str:
    """Text made safe for one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(text: str, lang: str = "") -> str:
    """A fenced block long enough that no backtick run inside ``text`` closes it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


# --- gate catalogue ----------------------------------------------------------------------------


def _applies(gate: Any) -> str:
    return (
        "every document type"
        if gate.applies is None
        else ", ".join(f"`{t}`" for t in sorted(gate.applies))
    )


def _value(v: Any) -> str:
    return str(getattr(v, "value", v))


def gate_section(gate: Any) -> str:
    """One gate's entry: the ruff-style rule page, metadata first, then its examples and source."""
    out = [f"## {gate.code} `{gate.name}` {{ #{gate.code.lower()} }}\n", f"**{gate.title}**\n"]
    rows = [
        ("Citation", "; ".join(gate.cite) or "(none)"),
        ("Severity", f"`{_value(gate.severity)}`"),
        ("Applies to", _applies(gate)),
        ("When undecided", f"`{_value(gate.on_indeterminate)}`"),
        (
            "Version",
            f"`{gate.version}`"
            + (f" (declared {gate.declared_version})" if gate.declared_version else ""),
        ),
        ("Defined in", f"`{gate.file}:{gate.loc.line}`"),
    ]
    if gate.tags:
        rows.append(("Tags", ", ".join(f"`{t}`" for t in gate.tags)))
    out.append("| | |\n|---|---|\n" + "".join(f"| {k} | {_cell(v)} |\n" for k, v in rows))
    if gate.message:
        out.append(f"**Finding message.** {gate.message}\n")
    if gate.why:
        out.append(f"**Why.** {gate.why}\n")
    if gate.fix:
        out.append(f"**Fix.** {gate.fix}\n")
    if gate.examples:
        out.append(
            f"**Examples** (run by `clearance test` and by pytest as `{gate.code}::example[N]`):\n"
        )
        for ex in gate.examples:
            expecting = f", expecting {', '.join(ex.expecting)}" if ex.expecting else ""
            out.append(
                f"- example[{ex.index}], *{ex.expect}*{expecting}:\n\n"
                + _indent(_fence(ex.text, "text"))
            )
    out.append('??? note "Source"\n\n' + _indent(_fence(gate.source, "text")))
    return "\n".join(out)


def _indent(block: str, by: int = 4) -> str:
    pad = " " * by
    return "".join(pad + ln if ln.strip() else ln for ln in block.splitlines(keepends=True))


def module_page(module: Any) -> str:
    """A module's page: its header, a table of its gates, then one section per gate."""
    head = [
        f"# {module.title} (`{module.id}`)\n",
        "<!-- generated by scripts/gen_docs.py from the compiled module: do not edit -->\n",
    ]
    facts = [f"version {module.version}"]
    if module.jurisdiction:
        facts.append(f"jurisdiction {module.jurisdiction}")
    facts.append(f"{len(module.gates)} gates")
    facts.append("files " + ", ".join(f"`{f}`" for f in module.files))
    head.append("; ".join(facts) + ".\n")
    if module.description:
        head.append(module.description + "\n")
    table = ["| code | title | severity | applies to | citation |", "|---|---|---|---|---|"]
    for g in module.gates:
        table.append(
            f"| [{g.code}](#{g.code.lower()}) | {_cell(g.title)} | {_value(g.severity)} "
            f"| {_cell(_applies(g))} | {_cell('; '.join(g.cite))} |"
        )
    return (
        "\n".join(head)
        + "\n"
        + "\n".join(table)
        + "\n\n"
        + "\n".join(gate_section(g) for g in module.gates)
    )


def catalogue_index(modules: list[Any]) -> str:
    total = sum(len(m.gates) for m in modules)
    rows = ["| module | title | jurisdiction | gates |", "|---|---|---|---:|"]
    for m in modules:
        rows.append(
            f"| [`{m.id}`]({m.id}.md) | {_cell(m.title)} | {_cell(m.jurisdiction or 'any')} "
            f"| {len(m.gates)} |"
        )
    return (
        "# Gate catalogue\n\n"
        "<!-- generated by scripts/gen_docs.py from the compiled modules: do not edit -->\n\n"
        f"Every gate of the built-in modules ({total} gates in {len(modules)} modules), "
        "generated from the gate files at each docs build: its citation, severity, the "
        "document types it applies to, what happens when it cannot be decided, the fix, its "
        "inline examples and its source. The same data is printed by `clearance modules` and "
        "`clearance gate CODE` (`--format json` for tools).\n\n" + "\n".join(rows) + "\n"
    )


# --- diagnostics ---------------------------------------------------------------------------------


def codes_in_source(roots: Iterable[Path]) -> dict[str, list[str]]:
    """Every ``DSLnnn`` string constant in the Python files under ``roots``, with where it is."""
    found: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and CODE_RE.match(node.value)
                ):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault(node.value, []).append(where)
    return found


def code_summaries() -> dict[str, str]:
    """The compiler's own table of codes when it has one, else the table in this file."""
    from dsl import diagnostics

    table = getattr(diagnostics, "CODES", None)
    if isinstance(table, dict) and table:
        return {
            str(k): str(getattr(v, "summary", None) or getattr(v, "title", None) or v)
            for k, v in table.items()
        }
    return {**SUMMARIES, **getattr(diagnostics, "LANG_CODES", {})}


def rendered_examples() -> dict[str, str]:
    """Real rendered diagnostics, one per code, from the gate-file fixtures in tests/."""
    import os

    from dsl.compile import compile_paths

    out: dict[str, str] = {}
    cwd = Path.cwd()
    os.chdir(ROOT)  # diagnostics show paths relative to the working directory
    try:
        for path in sorted((ROOT / "tests" / "fixtures" / "gates").glob("*.gates")):
            _, diags, sources = compile_paths([path.relative_to(ROOT)], partial=True)
            for d in diags:
                out.setdefault(d.code, d.render(sources.get(d.file)))
    finally:
        os.chdir(cwd)
    return out


def diagnostics_page() -> tuple[str, list[str]]:
    """The diagnostics reference, and the codes the source raises that have no description."""
    found = codes_in_source([ROOT / "dsl", ROOT / "gates", ROOT / "engine"])
    summaries = code_summaries()
    examples = rendered_examples()
    missing = sorted(c for c in found if c not in summaries)
    lines = [
        "# Diagnostics reference\n",
        "<!-- generated by scripts/gen_docs.py from the compiler's source: do not edit -->\n",
        "Every error in a gate file has a stable code, a location and a caret under the "
        "narrowest span, and `clearance lint` reports all errors of a file in one run (the "
        "parser resumes at the next declaration). Codes are never reused. This page lists "
        f"every code the compiler and the check kinds can raise ({len(found)} codes), found in "
        "the source at each docs build; the rendered examples are real output of the compiler "
        "on `tests/fixtures/gates/`.\n",
        "| code | meaning | raised in |",
        "|---|---|---|",
    ]
    for code in sorted(found):
        places = sorted(found[code], key=lambda w: (w.rsplit(":", 1)[0], int(w.rsplit(":", 1)[1])))
        where = ", ".join(f"`{w}`" for w in places[:3])
        more = f" and {len(found[code]) - 3} more" if len(found[code]) > 3 else ""
        lines.append(
            f"| [{code}](#{code.lower()}) | {_cell(summaries.get(code, '(undocumented)'))}"
            f" | {where}{more} |"
        )
    lines.append("")
    for code in sorted(found):
        lines.append(f"## {code} {{ #{code.lower()} }}\n")
        lines.append(summaries.get(code, "(undocumented)") + "\n")
        if code in examples:
            lines.append("Example:\n\n" + _fence(examples[code], "text"))
    return "\n".join(lines), missing


# --- CLI ---------------------------------------------------------------------------------------


def cli_page() -> str:
    """The CLI reference, from the Typer application itself (typer's own docs generator)."""
    import typer
    import typer.main
    from typer.cli import get_docs_for_click

    from engine.cli import load_commands
    from engine.cli.app import app

    load_commands()
    command = typer.main.get_command(app)
    ctx = typer.Context(command)
    body = get_docs_for_click(obj=command, ctx=ctx, name="clearance", title="CLI reference")
    intro = (
        "<!-- generated by scripts/gen_docs.py from the Typer application: do not edit -->\n\n"
        "Every command and option, generated from the code at each docs build (the same "
        "text as `clearance COMMAND --help`). Exit codes and worked examples are in "
        "[the CLI guide](../../cli.md).\n\n"
    )
    title, rest = body.split("\n", 1)
    return f"{title}\n\n{intro}{rest.strip()}\n"


# --- HTTP ----------------------------------------------------------------------------------------


def http_page() -> str:
    """The HTTP reference, from the FastAPI application's own OpenAPI document (no server runs:
    building the app starts nothing until its lifespan)."""
    from engine.server import create_app

    spec = create_app().openapi()
    out = [
        "# HTTP reference\n",
        "<!-- generated by scripts/gen_docs.py from the OpenAPI document: do not edit -->\n",
        f"Every endpoint of `clearance serve` (OpenAPI {spec.get('openapi', '')}, API version "
        f"{spec.get('info', {}).get('version', '')}), generated from the application at each "
        "docs build. A running server serves the same document at `/openapi.json`. Keys, "
        "roles, limits and worked examples are in [the HTTP API guide](../../http-api.md).\n",
        "| method | path | what |",
        "|---|---|---|",
    ]
    ops = [
        (path, method, op)
        for path, methods in spec.get("paths", {}).items()
        for method, op in methods.items()
    ]
    for path, method, op in ops:
        anchor = re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")
        first = " ".join(
            (op.get("description") or op.get("summary") or "").split("\n\n")[0].split()
        )
        out.append(f"| {method.upper()} | [`{path}`](#{anchor}) | {_cell(first)} |")
    out.append("")
    for path, method, op in ops:
        anchor = re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-")
        out.append(f"## {method.upper()} `{path}` {{ #{anchor} }}\n")
        if op.get("description"):
            out.append(op["description"].strip() + "\n")
        params = op.get("parameters", [])
        if params:
            out.append("| parameter | in | required | type | description |\n|---|---|---|---|---|")
            for prm in params:
                schema = prm.get("schema", {})
                kind = schema.get("type") or " or ".join(
                    str(x.get("type", "")) for x in schema.get("anyOf", []) if x.get("type")
                )
                out.append(
                    f"| `{prm['name']}` | {prm.get('in', '')} | "
                    f"{'yes' if prm.get('required') else 'no'} | {kind} | "
                    f"{_cell(prm.get('description') or schema.get('description') or '')} |"
                )
            out.append("")
        body = (op.get("requestBody") or {}).get("content", {})
        if body:
            out.append("Request body: " + ", ".join(f"`{c}`" for c in body) + ".\n")
        responses = op.get("responses", {})
        if responses:
            out.append(
                "Responses: "
                + "; ".join(
                    f"{code} {_cell(r.get('description', ''))}"
                    for code, r in sorted(responses.items())
                )
                + ".\n"
            )
    return "\n".join(out)


# --- entry points --------------------------------------------------------------------------------


def generate(docs_dir: Path) -> list[Path]:
    """Write every generated page under ``docs_dir``; return the pages that changed."""
    from engine.api import Engine

    out = docs_dir / GENERATED
    modules = Engine(cache=None, audit=None).list_modules()
    pages: dict[Path, str] = {out / "gates" / "index.md": catalogue_index(modules)}
    for m in modules:
        pages[out / "gates" / f"{m.id}.md"] = module_page(m)
    diag, missing = diagnostics_page()
    if missing:
        raise SystemExit(
            "gen_docs: diagnostic codes with no description: "
            + ", ".join(missing)
            + " (add them to the compiler's table or SUMMARIES in scripts/gen_docs.py)"
        )
    pages[out / "diagnostics.md"] = diag
    pages[out / "cli.md"] = cli_page()
    pages[out / "http.md"] = http_page()
    stale = [p for p in out.rglob("*.md") if p not in pages] if out.exists() else []
    for p in stale:  # a module that was removed loses its page
        p.unlink()
    return [p for p, text in pages.items() if write_if_changed(p, text)]


CATALOGUE_NAV = "Gate catalogue"


def on_config(config: Any) -> Any:
    """MkDocs hook: regenerate the reference pages, and list one catalogue page per module in
    the nav section named ``Gate catalogue`` (a new module gets its page without a config edit)."""
    docs_dir = Path(config["docs_dir"])
    generate(docs_dir)
    pages = docs_dir / GENERATED / "gates"
    entries: list[Any] = [(GENERATED / "gates" / "index.md").as_posix()]
    for page in sorted(pages.glob("*.md")):
        if page.name != "index.md":
            title = page.read_text(encoding="utf-8").split("\n", 1)[0].removeprefix("# ")
            entries.append({title: (GENERATED / "gates" / page.name).as_posix()})
    for item in config.get("nav") or []:
        if isinstance(item, dict) and CATALOGUE_NAV in item:
            item[CATALOGUE_NAV] = entries
    return config


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs"
    changed = generate(target)
    print(f"gen_docs: {len(changed)} page(s) written under {target / GENERATED}")
