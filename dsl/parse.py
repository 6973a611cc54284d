"""Parse gate-file text into the typed AST, turning Lark's exceptions into plain diagnostics and
recovering at the next declaration so one run reports every syntax error in a file."""

from __future__ import annotations

import ast as _pyast
import re
from functools import lru_cache

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from dsl import ast
from dsl.diagnostics import DiagnosticBag, Loc

#: how a grammar terminal is named in an error message.
_TERMINALS = {
    "NAME": "a name",
    "STRING": "a quoted string",
    "LONG_STRING": 'a """long string"""',
    "NUMBER": "a number",
    "REGEX": "a /regex/",
    "GATE_CODE": "a gate code like GDPR-13-1A",
    "COMPARATOR": "a comparison (>=, <=, ==, >, <)",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "EQUAL": "'='",
    "$END": "end of file",
}
_KEYWORDS = (
    "module",
    "import",
    "define",
    "gate",
    "require",
    "forbid",
    "when",
    "example",
    "expecting",
    "not",
    "all",
    "any",
    "in",
    "section",
    "within",
    "same",
    "defaults",
    "like",
    "threshold",
    "raw",
)
#: where parsing may resume after a syntax error: a new top-level declaration at line start.
_RESYNC = re.compile(r"^(?:gate|define|import|module)\b", re.MULTILINE)
#: characters the error-recovering parser may read per file (each syntax error costs one more
#: parse of the whole file): 200 rounds of a 5 KB file, 2 of a 2 MB one.
_REPARSE_BUDGET = 1_000_000
#: how deep expressions may nest (not, all, any, in section, calls), counting the definitions
#: they use once expanded: far beyond any real gate, and far inside Python's recursion limit,
#: which the tree transformer and the compiler's walks would otherwise hit (DSL132).
MAX_NESTING = 64
#: the parse-tree rules that are one level of an expression (``ref`` counts: a definition is
#: at least one level deep once expanded, so this depth never exceeds the compiled one).
_EXPR_RULES = frozenset(
    {"not_", "all_", "any_", "in_section", "call", "regex_check", "text_check", "ref"}
)


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
    )


def _expected_words(expected: set[str]) -> str:
    words = []
    for name in sorted(expected):
        if name in _TERMINALS:
            words.append(_TERMINALS[name])
        elif name.upper() in {k.upper() for k in _KEYWORDS}:
            words.append(f"'{name.lower()}'")
        else:
            words.append(f"'{name.lower()}'" if name.isalpha() else name)
    return ", ".join(dict.fromkeys(words))


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type in _TERMINALS and tok.type not in (
        "LBRACE",
        "RBRACE",
        "LPAR",
        "RPAR",
        "LSQB",
        "RSQB",
        "COMMA",
        "EQUAL",
    ):
        value = str(tok)
        shown = value if len(value) <= 30 else value[:27] + "..."
        noun = _TERMINALS[tok.type].removeprefix("a ")
        return f"{noun} {shown}" if tok.type != "NAME" else f"name '{value}'"
    return f"'{tok}'"


def _ends_early(text: str, path: str, expected: set[str], bag: DiagnosticBag) -> int:
    """The file ended inside a declaration: point just past its last character."""
    pos = len(text)
    line = text.count("\n") + 1
    col = pos - (text.rfind("\n") + 1) + 1
    bag.error(
        "DSL102",
        "the file ends in the middle of a declaration",
        path,
        Loc(line, col, line, col + 1, pos, pos + 1),
        help=f"expected {_expected_words(expected)}; is a '}}' missing?",
    )
    return pos


def _syntax_diagnostic(exc: UnexpectedInput, path: str, text: str, bag: DiagnosticBag) -> int:
    """Record one syntax error; return the offset it happened at."""
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        loc = Loc(
            exc.line, exc.column, exc.line, exc.column + 1, exc.pos_in_stream, exc.pos_in_stream + 1
        )
        if ch == '"':
            bag.error(
                "DSL102",
                "unterminated string",
                path,
                loc,
                help='close the string with " on the same line, or use """...""" for '
                "text spanning lines",
            )
        elif ch == "/":
            bag.error(
                "DSL102",
                "unterminated regex",
                path,
                loc,
                help="close the pattern with / on the same line; escape a literal / as \\/",
            )
        else:
            allowed = _expected_words(set(exc.allowed or ()))
            bag.error(
                "DSL101",
                f"unexpected character {ch!r}",
                path,
                loc,
                help=f"expected {allowed}" if allowed else None,
            )
        return exc.pos_in_stream
    if isinstance(exc, UnexpectedEOF):
        return _ends_early(text, path, set(exc.expected), bag)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    if tok.type == "$END":
        return _ends_early(text, path, set(exc.expected), bag)
    loc = Loc.from_token(tok)
    # `accepts` is what the parser can really take here, after pending reductions; `expected`
    # is the raw LALR lookahead of a possibly merged state.
    expected = set(getattr(exc, "accepts", None) or exc.expected)
    message = f"unexpected {_describe_token(tok)}"
    help_ = f"expected {_expected_words(expected)}"
    if "GATE_CODE" in expected and tok.type == "NAME":
        message = f"'{tok}' is not a gate code"
        help_ = "a gate code is capitals and digits in dash-separated parts, e.g. GDPR-13-1A"
    elif tok.type == "REGEX":
        help_ += "; a regex goes after the word regex, as in: regex /pattern/i"
    elif tok.type in ("STRING", "LONG_STRING") and "RBRACE" in expected and "RPAR" not in expected:
        help_ += '; a field needs a name before its value, as in: title "..."'
    bag.error("DSL100", message, path, loc, help=help_)
    return tok.start_pos or 0


def _blank(text: str, start: int, end: int) -> str:
    """Replace text[start:end] with spaces, keeping newlines so positions stay valid."""
    chunk = re.sub(r"[^\n]", " ", text[start:end])
    return text[:start] + chunk + text[end:]


def parse_file(text: str, path: str, bag: DiagnosticBag) -> ast.GateFile:
    """Parse a gate file; syntax errors go into ``bag`` and the valid declarations are kept."""
    work = text
    # Each round re-parses the whole file, so the rounds are bounded by the characters they
    # would read: a large file full of errors must not cost minutes (200 rounds of 2 MB).
    rounds = max(2, min(200, _REPARSE_BUDGET // max(len(text), 1)))
    for _ in range(rounds):  # each round either succeeds or blanks a region ending further on
        try:
            tree = parser().parse(work)
            break
        except UnexpectedInput as exc:
            at = _syntax_diagnostic(exc, path, text, bag)
            decl_start = max((m.start() for m in _RESYNC.finditer(work, 0, at + 1)), default=0)
            nxt = _RESYNC.search(work, at + 1)
            end = nxt.start() if nxt else len(work)
            work = _blank(work, decl_start, end)
    else:
        bag.items[-1].notes.append(
            f"stopped after {rounds} syntax errors in this file; fix "
            "these and lint again for the rest"
        )
        return ast.GateFile(path=path, source=text)
    _limit_nesting(tree, path, text, bag)
    _check_escapes(tree, path, bag)
    return _Builder(path, text).build(tree)


_WORD_AT = re.compile(r"\w+|\S")


def _first_word(text: str, meta) -> Loc:
    """The span of the first word (or character) of a node: a narrow caret for a long node."""
    m = _WORD_AT.match(text, meta.start_pos)
    end = m.end() if m else meta.start_pos + 1
    return Loc(
        meta.line, meta.column, meta.line, meta.column + end - meta.start_pos, meta.start_pos, end
    )


def _limit_nesting(tree: Tree, path: str, text: str, bag: DiagnosticBag) -> None:
    """Cut every expression nested deeper than MAX_NESTING out of the tree (one DSL132 per
    declaration), before anything walks it recursively. The LALR parser itself keeps its own
    stack, so only what runs after it needs the guard."""
    for item in tree.children:
        if not isinstance(item, Tree):
            continue
        reported = False
        stack: list[tuple[Tree, int]] = [(item, 0)]
        while stack:
            node, depth = stack.pop()
            for i, child in enumerate(node.children):
                if not isinstance(child, Tree):
                    continue
                d = depth + (child.data in _EXPR_RULES)
                if d <= MAX_NESTING:
                    stack.append((child, d))
                    continue
                if not reported:
                    bag.error(
                        "DSL132",
                        f"expression nests more than {MAX_NESTING} deep",
                        path,
                        _first_word(text, child.meta),
                        help="flatten it: all { ... } and any { ... } take many checks at "
                        "once, and define NAME = EXPR names a repeated part",
                    )
                    reported = True
                node.children[i] = Tree("invalid", [], meta=child.meta)


#: a lone UTF-16 surrogate: what an escape like "\\ud800" makes, and no text can hold.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unquote(tok: Token) -> str:
    s = str(tok)
    if s.startswith('"""'):
        return s[3:-3]
    try:
        value = _pyast.literal_eval(s)
    except (ValueError, SyntaxError):
        return s[1:-1]
    # reported by _check_escapes; replaced so nothing downstream has to encode a surrogate
    return _SURROGATE.sub("\ufffd", value)


def _check_escapes(tree: Tree, path: str, bag: DiagnosticBag) -> None:
    """Strings whose escapes make a lone surrogate ("\\ud800"): not text, so an error here
    rather than an encoding failure wherever the string is used."""
    for tok in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "STRING"):
        if "\\" not in tok:
            continue
        try:
            value = _pyast.literal_eval(str(tok))
        except (ValueError, SyntaxError):
            continue
        bad = _SURROGATE.search(value)
        if bad:
            bag.error(
                "DSL101",
                f"the escape for U+{ord(bad.group()):04X} in this string is a "
                "lone surrogate, not a character",
                path,
                Loc.from_token(tok),
                help="write the character itself, or escape a whole code point "
                "(\\U0001F600, not a pair of \\u escapes)",
            )


def _meta_loc(meta) -> Loc:
    return Loc.from_meta(meta)


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> AST nodes (expressions and props); declarations are assembled by _Builder."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)

    # values ------------------------------------------------------------------------------
    def _text(self, tok: Token) -> ast.Text:
        return ast.Text(Loc.from_token(tok), _unquote(tok))

    def _val(self, item):
        if isinstance(item, Token):
            if item.type in ("STRING", "LONG_STRING"):
                return self._text(item)
            if item.type == "NUMBER":
                return float(item)
            return ast.Ref(Loc.from_token(item), str(item))
        return item

    def prop(self, meta, children):
        name, *values = children
        locs = [Loc.from_token(v) if isinstance(v, Token) else v.loc for v in values]
        return ast.Prop(
            str(name), Loc.from_token(name), [self._val(v) for v in values], locs, _meta_loc(meta)
        )

    # expressions -------------------------------------------------------------------------
    def not_(self, meta, children):
        return ast.Not(_meta_loc(meta), children[0])

    def all_(self, meta, children):
        return ast.All(_meta_loc(meta), list(children))

    def any_(self, meta, children):
        return ast.Any_(_meta_loc(meta), list(children))

    def in_section(self, meta, children):
        *heads, child = children
        return ast.InSection(_meta_loc(meta), [_unquote(h) for h in heads], child)

    def call(self, meta, children):
        name = children[0]
        comparison = None
        rest = list(children[1:])
        if rest and isinstance(rest[-1], tuple):
            comparison = rest.pop()
        args = [self._val(a) for a in rest if a is not None]
        return ast.Call(_meta_loc(meta), str(name), Loc.from_token(name), args, comparison)

    def comparison(self, meta, children):
        op, num = children
        return (str(op), float(num), _meta_loc(meta))

    def within(self, meta, children):
        num, unit = (children + [None])[:2]
        return ast.Within(
            _meta_loc(meta),
            float(num),
            str(unit) if unit is not None else None,
            Loc.from_token(unit) if unit is not None else None,
        )

    def same(self, meta, children):
        unit = children[0]
        return ast.Same(_meta_loc(meta), str(unit), Loc.from_token(unit))

    def regex_check(self, meta, children):
        kind, rx = children
        body = str(rx)
        last = body.rfind("/")
        return ast.RegexCheck(
            _meta_loc(meta),
            str(kind),
            Loc.from_token(kind),
            body[1:last].replace("\\/", "/"),
            body[last + 1 :],
            Loc.from_token(rx),
        )

    def text_check(self, meta, children):
        kind, text, *opts = children
        node = ast.TextCheck(
            _meta_loc(meta), str(kind), Loc.from_token(kind), _unquote(text), Loc.from_token(text)
        )
        for name, value in opts:
            if name == "like":
                node.like.extend(value)
            elif name == "threshold":
                node.threshold = value
            else:
                node.raw = True
        return node

    def like(self, meta, children):
        return ("like", [_unquote(c) for c in children])

    def threshold(self, meta, children):
        return ("threshold", float(children[0]))

    def raw(self, meta, children):
        return ("raw", True)

    def invalid(self, meta, children):
        return ast.Invalid(_meta_loc(meta))

    def any_name(self, meta, children):
        return ast.Ref(_meta_loc(meta), "any")

    def ref(self, meta, children):
        return ast.Ref(Loc.from_token(children[0]), str(children[0]))

    # gate items --------------------------------------------------------------------------
    def require(self, meta, children):
        return ("require", children[0])

    def forbid(self, meta, children):
        return ("forbid", children[0])

    def when(self, meta, children):
        return ("when", children[0])

    def expecting(self, meta, children):
        return [(str(c), Loc.from_token(c)) for c in children]

    def example(self, meta, children):
        kind, text, expecting = (children + [None])[:3]
        return ast.Example(
            str(kind), Loc.from_token(kind), _unquote(text), expecting or [], _meta_loc(meta)
        )


class _Builder:
    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source

    def build(self, tree) -> ast.GateFile:
        out = ast.GateFile(path=self.path, source=self.source)
        conv = _ToAst()
        for item in tree.children:
            kind = item.data
            loc = _meta_loc(item.meta)
            if kind == "module_decl":
                name, *body = item.children
                decl = ast.ModuleDecl(str(name), Loc.from_token(name), [], loc)
                for p in body:
                    if p.data == "defaults_decl":
                        decl.defaults.append(self._defaults(p, conv))
                    else:
                        decl.props.append(conv.transform(p))
                out.modules.append(decl)
            elif kind == "defaults_decl":
                out.defaults.append(self._defaults(item, conv))
            elif kind == "import_decl":
                tok = item.children[0]
                is_path = tok.type == "STRING"
                out.imports.append(
                    ast.ImportDecl(_unquote(tok) if is_path else str(tok), is_path, loc)
                )
            elif kind == "define_decl":
                out.defines.append(self._define(item, conv, loc))
            elif kind == "gate_decl":
                out.gates.append(self._gate(item, conv, loc))
        return out

    def _defaults(self, item, conv: _ToAst) -> ast.DefaultsDecl:
        return ast.DefaultsDecl([conv.transform(p) for p in item.children], _meta_loc(item.meta))

    def _define(self, item, conv: _ToAst, loc: Loc) -> ast.DefineDecl:
        name, *rest = item.children
        params = None
        if isinstance(rest[0], Tree) and rest[0].data == "params":
            params = [(str(t), Loc.from_token(t)) for t in rest.pop(0).children]
        body = rest[0]
        decl = ast.DefineDecl(str(name), Loc.from_token(name), None, loc, params)
        if isinstance(body, Tree) and body.data == "word_list":
            decl.words = [
                ast.Text(Loc.from_token(t), _unquote(t))
                if t.type in ("STRING", "LONG_STRING")
                else ast.Ref(Loc.from_token(t), str(t))
                for t in body.children
            ]
        else:
            decl.expr = conv.transform(body)
        return decl

    def _gate(self, item, conv: _ToAst, loc: Loc) -> ast.GateDecl:
        code, name, *body = item.children
        gate = ast.GateDecl(
            str(code),
            Loc.from_token(code),
            str(name),
            Loc.from_token(name),
            [],
            [],
            [],
            [],
            [],
            loc,
            self.source[loc.start : loc.end],
        )
        for child in body:
            node = conv.transform(child)
            if isinstance(node, ast.Prop):
                gate.props.append(node)
            elif isinstance(node, ast.Example):
                gate.examples.append(node)
            else:
                which, expr = node
                {"require": gate.requires, "forbid": gate.forbids, "when": gate.whens}[
                    which
                ].append(expr)
        return gate
