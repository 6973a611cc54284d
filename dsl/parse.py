"""Parse gate-file text into the typed AST, turning Lark's exceptions into plain diagnostics and
recovering at the next declaration so one run reports every syntax error in a file."""

from __future__ import annotations

import ast as _pyast
import hashlib
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_analysis import Shift
from lark.parsers.lalr_interactive_parser import InteractiveParser
from lark.parsers.lalr_parser_state import ParseConf
from lark.tree import Meta

from dsl import ast
from dsl.diagnostics import Code, DiagnosticBag, Loc, did_you_mean

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
_RESYNC = re.compile(r"^(?:gate|define|defaults|import|module)\b", re.MULTILINE)
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


_GRAMMAR = Path(__file__).with_name("grammar.lark")


def _parser_cache() -> str | bool:
    """Where Lark keeps the grammar's LALR tables between runs (building them costs more than
    all of the CLI's imports; loading them, a sixth of that): a file named after the grammar's
    hash in the user's Clearance cache directory (as engine.cache finds it: dsl does not
    import engine). Lark checks the grammar, options and versions it was built from before it
    uses a file, and rebuilds (and rewrites it) on any mismatch or unreadable file; False, no
    cache, when the directory cannot be made."""
    if explicit := os.environ.get("CLEARANCE_CACHE_DIR"):
        base = Path(explicit).expanduser()
    elif home := os.environ.get("CLEARANCE_HOME"):
        base = Path(home).expanduser() / "cache"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clearance"
    try:
        digest = hashlib.sha256(_GRAMMAR.read_bytes()).hexdigest()[:16]
        folder = base / "grammar"
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return str(folder / f"lalr-{digest}.lark")


@lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_parser_cache(),
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
        Code.UNTERMINATED,
        "the file ends in the middle of a declaration",
        path,
        Loc(line, col, line, col + 1, pos, pos + 1),
        help=f"expected {_expected_words(expected)}; is a '}}' missing?",
    )
    return pos


def _syntax_diagnostic(exc: UnexpectedInput, path: str, text: str, bag: DiagnosticBag) -> int:
    """Record one syntax error; return the offset it happened at."""
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        ch = text[at] if at < len(text) else ""
        loc = Loc(exc.line, exc.column, exc.line, exc.column + 1, at, at + 1)
        if ch == '"':
            bag.error(
                Code.UNTERMINATED,
                "unterminated string",
                path,
                loc,
                help='close the string with " on the same line, or use """...""" for '
                "text spanning lines",
            )
        elif ch == "/":
            bag.error(
                Code.UNTERMINATED,
                "unterminated regex",
                path,
                loc,
                help="close the pattern with / on the same line; escape a literal / as \\/",
            )
        else:
            allowed = _expected_words(set(exc.allowed or ()))
            bag.error(
                Code.UNEXPECTED_CHARACTER,
                f"unexpected character {ch!r}",
                path,
                loc,
                help=f"expected {allowed}" if allowed else None,
            )
        return at
    if isinstance(exc, UnexpectedEOF):
        return _ends_early(text, path, set(exc.expected), bag)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    if tok.type == "$END":
        return _ends_early(text, path, set(exc.expected), bag)
    loc = Loc.from_token(tok)
    ip = getattr(exc, "interactive_parser", None)
    if tok.type == "GATE_CODE":  # the lexer's last resort (see the grammar): a stray character
        at = tok.start_pos or 0
        allowed = _expected_words(_accepts(ip) if ip is not None else set(exc.expected))
        bag.error(
            Code.UNEXPECTED_CHARACTER,
            f"unexpected character {tok[0]!r}",
            path,
            Loc(loc.line, loc.col, loc.line, loc.col + 1, at, at + 1),
            help=f"expected {allowed}" if allowed else None,
        )
        return at
    # `accepts` is what the parser can really take here, after pending reductions; `expected`
    # is the raw LALR lookahead of a possibly merged state.
    expected = (_accepts(ip) if ip is not None else set()) or set(exc.expected)
    message = f"unexpected {_describe_token(tok)}"
    help_ = f"expected {_expected_words(expected)}"
    if tok.type == "REGEX":
        help_ += "; a regex goes after the word regex, as in: regex /pattern/i"
    elif tok.type in ("STRING", "LONG_STRING") and "RBRACE" in expected and "RPAR" not in expected:
        help_ += '; a field needs a name before its value, as in: title "..."'
    bag.error(Code.SYNTAX, message, path, loc, help=help_)
    return tok.start_pos or 0


def _blank(text: str, start: int, end: int) -> str:
    """Replace text[start:end] with spaces, keeping newlines so positions stay valid."""
    chunk = re.sub(r"[^\n]", " ", text[start:end])
    return text[:start] + chunk + text[end:]


#: the bracket each opening token is closed by
_CLOSERS = {"LPAR": ("RPAR", ")"), "LBRACE": ("RBRACE", "}"), "LSQB": ("RSQB", "]")}
#: the codes the parser reports: a gate holding one was recovered, not read whole
SYNTAX_CODES = frozenset({Code.SYNTAX, Code.UNEXPECTED_CHARACTER, Code.UNTERMINATED, Code.UNCLOSED})
#: the gate clauses, which a misspelt field name is measured against
CLAUSES = ("require", "forbid", "when", "example")
#: words that start an expression rather than a gate item (a line inside any { ... } starting
#: with one of them is not a place to resume at)
_EXPR_WORDS = frozenset(
    {"regex", "phrase", "pii", "secret", "semantic", "near", "count", "not", "all", "any", "in"}
)
#: what follows a check kind or combinator (phrase(, regex /x/, any {, semantic "q")
_AFTER_KIND = frozenset({"LPAR", "REGEX", "LBRACE", "STRING", "LONG_STRING"})
#: the tokens that start a gate clause, and those that start a top-level declaration
_CLAUSE_TOKENS = frozenset(c.upper() for c in CLAUSES)
_DECL_TOKENS = frozenset({"GATE", "DEFINE", "IMPORT", "MODULE"})
#: what may follow a field's name on its line (its first value)
_VALUE_TOKENS = frozenset({"STRING", "LONG_STRING", "NAME", "NUMBER"})


def _item_points(work: str, start: int, end: int) -> Iterator[int]:
    """Offsets in work[start:end] where parsing may resume inside a gate: a clause keyword
    (require, forbid, when, example), a field at the start of its line (a name, then a value),
    or a '}' or declaration keyword in the first column. Read with the lexer, so a word in a string or a comment is not taken for one; the
    lexer stops at a character that starts no token, and so do the points."""
    tokens = parser().lex(work[start:end], dont_ignore=True)
    first_on_line = not work[work.rfind("\n", 0, start) + 1 : start].strip()
    pending: int | None = None  # a name first on its line, waiting for a value on that line
    try:
        for t in tokens:
            if t.type in ("WS", "COMMENT"):
                if "\n" in t:
                    first_on_line, pending = True, None
                continue
            pos = start + (t.start_pos or 0)
            if pending is not None and t.type in _VALUE_TOKENS:
                yield pending
            pending = None
            column_one = pos == 0 or work[pos - 1] == "\n"
            if t.type in _CLAUSE_TOKENS or (column_one and t.type in _DECL_TOKENS | {"RBRACE"}):
                yield pos
            elif first_on_line and t.type == "NAME" and str(t) not in _EXPR_WORDS:
                pending = pos
            first_on_line = False
    except UnexpectedInput:
        return


def _last_end(ip: InteractiveParser) -> tuple[int, int, int] | None:
    """(offset, line, column) just past the last token the parser consumed."""
    for v in reversed(ip.parser_state.value_stack):
        if isinstance(v, Token) and v.end_pos is not None:
            return v.end_pos, v.end_line or v.line or 1, v.end_column or v.column or 1
        if isinstance(v, Tree) and not v.meta.empty:
            return v.meta.end_pos, v.meta.end_line, v.meta.end_column
    return None


def _open_brackets(ip: InteractiveParser) -> list[Token]:
    """The brackets the parser has opened and not yet closed, outermost first."""
    return [v for v in ip.parser_state.value_stack if isinstance(v, Token) and v.type in _CLOSERS]


def _item_start(ip: InteractiveParser) -> int | None:
    """Inside a gate's body, where the item the parser is in the middle of starts (the offset
    of its first token), or -1 between items; None outside a gate's body."""
    stack = ip.parser_state.value_stack
    for i in range(len(stack) - 1, -1, -1):
        v = stack[i]
        if isinstance(v, Token) and v.type == "GATE":
            brace = stack[i + 3] if i + 3 < len(stack) else None
            if not (isinstance(brace, Token) and brace.type == "LBRACE"):
                return None
            # finished items are trees; the one under way starts with a token (its keyword or
            # its field's name)
            first = next((t for t in stack[i + 4 :] if isinstance(t, Token)), None)
            return -1 if first is None else first.start_pos or 0
    return None


def _take(conf: ParseConf, states: list, kind: str) -> list | None:
    """The LALR state stack after the parser takes a token of type ``kind`` (reducing as it
    must), or None if it cannot: lark's own step, without building values."""
    states = list(states)
    while True:
        if kind == "$END" and states[-1] == conf.end_state:
            return states
        step = conf.states[states[-1]].get(kind)
        if step is None:
            return None
        action, arg = step
        if action is Shift:
            return [*states, arg]
        if arg.expansion:
            del states[-len(arg.expansion) :]
        states.append(conf.states[states[-1]][arg.origin.name][1])


def _accepts(ip: InteractiveParser) -> set[str]:
    """The token types the parser can take next (lark's ``accepts``, without its deep copy)."""
    conf = ip.parser_state.parse_conf
    stack = ip.parser_state.state_stack
    return {t for t in conf.states[stack[-1]] if t.isupper() and _take(conf, stack, t) is not None}


class _Recovery:
    """Error recovery for one file. Missing closing brackets are inserted where the parser
    stops (on_error: the parse goes on, and DSL171 points at the bracket left open); any other
    syntax error blanks the text from the error to the next gate item, so the rest of the gate
    is still parsed and checked, or, outside a gate, to the next declaration."""

    def __init__(self, text: str, path: str, bag: DiagnosticBag) -> None:
        self.text = text
        self.path = path
        self.bag = bag
        #: where a blanked region ends -> where it starts: an error there is a consequence
        #: of what came before it (said once already)
        self.resumes: dict[int, int] = {}

    def on_error(self, exc: UnexpectedInput) -> bool:
        """Close what is left open, if that lets the parser take the token it stopped at."""
        if not isinstance(exc, UnexpectedToken):
            return False
        tok = exc.token
        ip = exc.interactive_parser
        at_end = tok.type == "$END"
        silent = tok.start_pos in self.resumes
        line_start = self.text.rfind("\n", 0, tok.start_pos) + 1
        # a bracket left open shows where the next line starts something the bracket cannot
        # hold; a mistake within a line (a missing comma, say) is a syntax error, not this
        first_on_line = not at_end and not self.text[line_start : tok.start_pos].strip()
        if not (silent or at_end or first_on_line):
            return False
        opened = _open_brackets(ip)
        end = _last_end(ip)
        if not opened or end is None:
            return False
        pos, line, col = end
        # tried on the parser's states alone: copying its values (deep trees) costs and recurses
        conf = ip.parser_state.parse_conf
        trial = list(ip.parser_state.state_stack)
        closed: list[Token] = []
        want = "$END" if at_end else tok.type
        for opener in reversed(opened):
            took = _take(conf, trial, _CLOSERS[opener.type][0])
            if took is None:
                return False
            trial = took
            closed.append(opener)
            if _take(conf, trial, want) is not None:
                break
        else:
            return False
        for opener in closed:
            kind, char = _CLOSERS[opener.type]
            ip.feed_token(Token(kind, char, pos, line, col, line, col, pos))
            if not silent:
                where = "the end of the file" if at_end else f"'{tok}' at line {tok.line}"
                self.bag.error(
                    Code.UNCLOSED,
                    f"unclosed '{opener}'",
                    self.path,
                    Loc.from_token(opener),
                    help=f"add '{char}' at line {line}, column {col} (the parser met {where} "
                    "first)",
                )
        if not at_end:
            ip.feed_token(tok)
        return True

    def blank(self, exc: UnexpectedInput, work: str) -> str:
        """Report ``exc`` and blank the text the parse resumes after: inside a gate, the item
        (clause or field) the error is in, up to the next item, so the rest of the gate is
        still read; elsewhere, or when that did not help, the whole declaration."""
        at = _error_offset(exc, work)
        misspelt = self._misspelt_clause(exc)
        # at a place an earlier blanking resumed, what is unfinished is what came before it,
        # whose error was said already
        if not misspelt and at not in self.resumes:
            _syntax_diagnostic(exc, self.path, self.text, self.bag)
        ip = getattr(exc, "interactive_parser", None)
        item = _item_start(ip) if ip is not None else None
        nxt_decl = _RESYNC.search(work, at + 1)
        cap = nxt_decl.start() if nxt_decl else len(work)
        if item is not None and at < cap:
            token = isinstance(exc, UnexpectedToken)
            # an error at the first token of an item: the item before it is unfinished
            starts_item = token and next(_item_points(work, at, cap), None) == at
            # the next item after the error (after its line, when the error is a character no
            # token starts with, such as an unterminated string)
            line_end = work.find("\n", at)
            frm = at if token else (cap if line_end < 0 else line_end)
            nxt = next((p for p in _item_points(work, frm, cap) if p > at), cap)
            if misspelt or item < 0:
                # keep `requrie phrase` for the compiler to name (DSL108); between items, the
                # error is where an item should have started
                start, end = at, nxt
            elif starts_item:
                start, end = item, at
            else:  # cut out the item under way
                start, end = item, nxt
            if work[start:end].strip():  # else blanking here again would change nothing
                self.resumes[end] = start
                return _blank(work, start, end)
        # outside a gate, or nothing else worked: blank the whole declaration
        decl_start = max((m.start() for m in _RESYNC.finditer(work, 0, at + 1)), default=0)
        return _blank(work, decl_start, cap)

    def _misspelt_clause(self, exc: UnexpectedInput) -> bool:
        """``requrie phrase("x")``: a misspelt clause reads as a field whose value is the check
        kind, then the parse stops at what follows the kind ('(', a regex, '{', a question). Said by the compiler (DSL108, with the
        did-you-mean), not as a syntax error here."""
        if not isinstance(exc, UnexpectedToken) or exc.token.type not in _AFTER_KIND:
            return False
        line_start = self.text.rfind("\n", 0, exc.token.start_pos) + 1
        m = re.fullmatch(
            r"\s*([A-Za-z_]\w*)\s+([A-Za-z_]\w*)\s*", self.text[line_start : exc.token.start_pos]
        )
        return bool(m and m.group(1) not in CLAUSES and did_you_mean(m.group(1), CLAUSES))


def _error_offset(exc: UnexpectedInput, work: str) -> int:
    if isinstance(exc, UnexpectedToken):
        return len(work) if exc.token.type == "$END" else exc.token.start_pos or 0
    if isinstance(exc, UnexpectedEOF):
        return len(work)
    return exc.pos_in_stream or 0


def parse_file(text: str, path: str, bag: DiagnosticBag) -> ast.GateFile:
    """Parse a gate file; syntax errors go into ``bag`` and the valid declarations are kept."""
    work = text
    recovery = _Recovery(text, path, bag)
    # Each round re-parses the whole file, so the rounds are bounded by the characters they
    # would read: a large file full of errors must not cost minutes (200 rounds of 2 MB).
    rounds = max(2, min(200, _REPARSE_BUDGET // max(len(text), 1)))
    for _ in range(rounds):  # each round either succeeds or blanks a region ending further on
        try:
            tree = parser().parse(work, on_error=recovery.on_error)
            break
        except UnexpectedInput as exc:
            work = recovery.blank(exc, work)
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


def _first_word(text: str, meta: Meta) -> Loc:
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
                        Code.TOO_DEEP,
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
                Code.LONE_SURROGATE,
                f"the escape for U+{ord(bad.group()):04X} in this string is a "
                "lone surrogate, not a character",
                path,
                Loc.from_token(tok),
                help="write the character itself, or escape a whole code point "
                "(\\U0001F600, not a pair of \\u escapes)",
            )


def _meta_loc(meta: Meta) -> Loc:
    return Loc.from_meta(meta)


@v_args(meta=True)
class _ToAst(Transformer):
    """Lark tree -> AST nodes (expressions and props); declarations are assembled by _Builder."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)

    # values ------------------------------------------------------------------------------
    def _text(self, tok: Token) -> ast.Text:
        return ast.Text(Loc.from_token(tok), _unquote(tok))

    def _val(self, item: Any) -> Any:
        if isinstance(item, Token):
            if item.type in ("STRING", "LONG_STRING"):
                return self._text(item)
            if item.type == "NUMBER":
                return float(item)
            return ast.Ref(Loc.from_token(item), str(item))
        return item

    def prop(self, meta: Meta, children: list[Any]) -> Any:
        name, *values = children
        locs = [Loc.from_token(v) if isinstance(v, Token) else v.loc for v in values]
        return ast.Prop(
            str(name), Loc.from_token(name), [self._val(v) for v in values], locs, _meta_loc(meta)
        )

    # expressions -------------------------------------------------------------------------
    def not_(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Not(_meta_loc(meta), children[0])

    def all_(self, meta: Meta, children: list[Any]) -> Any:
        return ast.All(_meta_loc(meta), list(children))

    def any_(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Any_(_meta_loc(meta), list(children))

    def in_section(self, meta: Meta, children: list[Any]) -> Any:
        *heads, child = children
        return ast.InSection(_meta_loc(meta), [_unquote(h) for h in heads], child)

    def call(self, meta: Meta, children: list[Any]) -> Any:
        name = children[0]
        comparison = None
        rest = list(children[1:])
        if rest and isinstance(rest[-1], tuple):
            comparison = rest.pop()
        args = [self._val(a) for a in rest if a is not None]
        return ast.Call(_meta_loc(meta), str(name), Loc.from_token(name), args, comparison)

    def comparison(self, meta: Meta, children: list[Any]) -> Any:
        op, num = children
        return (str(op), float(num), _meta_loc(meta))

    def within(self, meta: Meta, children: list[Any]) -> Any:
        num, unit = (children + [None])[:2]
        return ast.Within(
            _meta_loc(meta),
            float(num),
            str(unit) if unit is not None else None,
            Loc.from_token(unit) if unit is not None else None,
        )

    def same(self, meta: Meta, children: list[Any]) -> Any:
        unit = children[0]
        return ast.Same(_meta_loc(meta), str(unit), Loc.from_token(unit))

    def regex_check(self, meta: Meta, children: list[Any]) -> Any:
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

    def text_check(self, meta: Meta, children: list[Any]) -> Any:
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

    def like(self, meta: Meta, children: list[Any]) -> Any:
        return ("like", [_unquote(c) for c in children])

    def threshold(self, meta: Meta, children: list[Any]) -> Any:
        return ("threshold", float(children[0]))

    def raw(self, meta: Meta, children: list[Any]) -> Any:
        return ("raw", True)

    def invalid(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Invalid(_meta_loc(meta))

    def any_name(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Ref(_meta_loc(meta), "any")

    def ref(self, meta: Meta, children: list[Any]) -> Any:
        return ast.Ref(Loc.from_token(children[0]), str(children[0]))

    # gate items --------------------------------------------------------------------------
    def require(self, meta: Meta, children: list[Any]) -> Any:
        return ("require", children[0])

    def forbid(self, meta: Meta, children: list[Any]) -> Any:
        return ("forbid", children[0])

    def when(self, meta: Meta, children: list[Any]) -> Any:
        return ("when", children[0])

    def expecting(self, meta: Meta, children: list[Any]) -> Any:
        return [(str(c), Loc.from_token(c)) for c in children]

    def example(self, meta: Meta, children: list[Any]) -> Any:
        kind, text, expecting = (children + [None])[:3]
        return ast.Example(
            str(kind), Loc.from_token(kind), _unquote(text), expecting or [], _meta_loc(meta)
        )


class _Builder:
    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source

    def build(self, tree: Any) -> ast.GateFile:  # a parse tree: its shape is the grammar's
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

    def _defaults(self, item: Any, conv: _ToAst) -> ast.DefaultsDecl:
        return ast.DefaultsDecl([conv.transform(p) for p in item.children], _meta_loc(item.meta))

    def _define(self, item: Any, conv: _ToAst, loc: Loc) -> ast.DefineDecl:
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
                if isinstance(t, Token)
            ]
        else:
            decl.expr = conv.transform(body)
        return decl

    def _gate(self, item: Any, conv: _ToAst, loc: Loc) -> ast.GateDecl:
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
