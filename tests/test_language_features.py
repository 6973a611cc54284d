"""The gate language's defaults, followed_by / same-scope proximity, parameterised definitions,
word lists and the warnings that go with them, compiled and run on real text."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.ast import OnIndeterminate, Severity
from dsl.compile import compile_paths
from engine.evaluate import DocContext, evaluate_gate
from engine.ingest import document_from_text
from gates.base import CheckSpec
from gates.phrases import PhraseCheck
from gates.pii import PiiCheck
from gates.proximity import ProximityCheck, breaks, proximity
from gates.regex import RegexCheck

HEADER = 'module demo {\n  title "Demo"\n  version "1"\n}\n'
GATE = """
gate DEMO-{n} g{n} {{
  title "t"
  cite "c"
  {body}
  example pass "placeholder pass"
  example fail "placeholder fail"
}}
"""


def _compile(tmp_path: Path, text: str, header: str = HEADER, lib: str | None = None):
    (tmp_path / "module.gates").write_text(header, encoding="utf-8")
    (tmp_path / "a.gates").write_text(text, encoding="utf-8")
    libs = []
    if lib is not None:
        (tmp_path / "lib").mkdir()
        (tmp_path / "lib" / "shared.gates").write_text(lib, encoding="utf-8")
        libs = [tmp_path / "lib"]
    module, diags, _ = compile_paths(
        [tmp_path / "module.gates", tmp_path / "a.gates"], libs, partial=True
    )
    return module, diags


def _codes(diags, severity: str | None = None) -> list[str]:
    return [d.code for d in diags if severity is None or d.severity == severity]


def _status(gate, text: str) -> bool | None:
    return evaluate_gate(gate, DocContext(document_from_text(text))).v


# --- defaults ----------------------------------------------------------------------------------


def test_file_defaults_over_module_defaults_and_a_gates_own_value_wins(tmp_path):
    header = HEADER.replace(
        "}\n", '  defaults { on_indeterminate review severity low tags "m" }\n}\n'
    )
    text = "defaults { applies privacy_notice severity high }\n" + "".join(
        GATE.format(n=n, body=body)
        for n, body in (
            (1, 'require phrase("x")'),
            (
                2,
                'severity critical\n  applies memo, email\n  on_indeterminate block\n  tags "own"\n'
                '  require phrase("x")',
            ),
            (3, 'applies any\n  require phrase("x")'),
        )
    )
    module, diags = _compile(tmp_path, text, header)
    assert not _codes(diags, "error"), diags
    g1, g2, g3 = module.gates
    assert (g1.severity, g1.on_indeterminate, g1.applies, g1.tags) == (
        Severity.high,  # the file's default over the module's
        OnIndeterminate.review,  # the module's
        frozenset({"privacy_notice"}),
        ("m",),
    )
    assert (g2.severity, g2.on_indeterminate, g2.applies, g2.tags) == (
        Severity.critical,
        OnIndeterminate.block,
        frozenset({"memo", "email"}),
        ("own",),
    )
    assert g3.applies is None  # `applies any` overrides an inherited list
    assert not _codes(diags, "warning")


def test_defaults_are_validated_once_with_did_you_mean(tmp_path):
    text = 'defaults { severity hihg titel "x" applies privacy_notce }\n' + GATE.format(
        n=1, body='require phrase("x")'
    )
    _, diags = _compile(tmp_path, text)
    by_code = {d.code: d for d in diags}
    assert set(by_code) == {"DSL124", "DSL108", "DSL125"}
    assert "Did you mean 'high'?" in by_code["DSL124"].help
    assert "applies, on_indeterminate, severity, tags" in by_code["DSL108"].help


def test_two_defaults_blocks_in_a_file_and_defaults_in_a_library_are_errors(tmp_path):
    text = "defaults { severity high }\ndefaults { severity low }\n" + GATE.format(
        n=1, body="require shared_x"
    )
    _, diags = _compile(
        tmp_path,
        "import shared\n" + text,
        lib='defaults { severity low }\ndefine shared_x = phrase("x")\n',
    )
    assert sorted(_codes(diags, "error")) == ["DSL109", "DSL142"]


def test_a_gate_restating_an_inherited_default_is_warned_not_refused(tmp_path):
    text = "defaults { severity high applies privacy_notice }\n" + GATE.format(
        n=1, body='severity high\n  applies privacy_notice\n  require phrase("x")'
    )
    module, diags = _compile(tmp_path, text)
    assert module is not None and len(module.gates) == 1
    warned = [d for d in diags if d.code == "DSL182"]
    assert [d.loc.line for d in warned] == [6, 7]
    assert all(d.severity == "warning" for d in warned)
    assert "a.gates:1" in warned[0].help
    # the built-in default restated without a defaults block is not "inherited": no warning
    _, diags = _compile(tmp_path, GATE.format(n=1, body='severity medium\n  require phrase("x")'))
    assert "DSL182" not in _codes(diags)


# --- proximity ---------------------------------------------------------------------------------


def _prox(a: str, b: str, within=None, scope=None, ordered=True) -> ProximityCheck:
    return proximity([RegexCheck(a, "i")], [RegexCheck(b, "i")], within, scope, ordered)


def test_followed_by_is_ordered_bounded_and_its_span_covers_both_parts():
    check = _prox(r"\bDPO\b", r"\S+@\S+", within=20)
    text = "Our DPO: dpo@acme.example. x@y.z before DPO"
    (m,) = check.find(text)
    assert text[m.start : m.end] == "DPO: dpo@acme.example."
    assert _prox(r"\bDPO\b", r"\S+@\S+", within=1).find(text) == []  # ": " is 2 apart
    assert _prox(r"@", r"\bDPO\b", within=5).find("DPO x@y") == []  # b before a: no match


def test_followed_by_distance_is_the_gap_in_characters():
    text = "A" + " " * 10 + "B"
    assert _prox("A", "B", within=10).find(text)
    assert not _prox("A", "B", within=9).find(text)


def test_same_paragraph_stops_at_an_empty_line():
    check = _prox("DPO", "email", scope="paragraph")
    assert check.find("DPO\nline two email")
    assert not check.find("DPO\n\nemail")
    assert not check.find("DPO\n\n\n\nemail")
    # a line of spaces is not empty (as in the idiom the built-in modules used before)
    assert check.find("DPO\n  \nemail")


def test_same_sentence_stops_at_sentence_ends_but_not_abbreviations():
    check = _prox("officer", "email", scope="sentence")
    assert check.find("The officer, e.g. Ms. Jones of Acme Ltd. and J. Smith, has an email")
    assert not check.find("The officer is here. Send an email")
    assert not check.find("The officer is here! email")
    assert not check.find('The officer said "yes." email')
    assert check.find("The officer at acme.example has an email")  # no space after the dot
    assert not check.find("The officer\n\nemail")  # a paragraph break ends a sentence too


def test_breaks_are_where_the_docs_say():
    text = "One. Two? Three\n\nFour e.g. five"
    assert [text[s] for s, _ in breaks(text, "sentence")] == [".", "?", "\n"]
    assert [text[s] for s, _ in breaks(text, "paragraph")] == ["\n"]


def test_followed_by_pairs_like_a_regex_scan_each_b_used_once():
    check = _prox(r"\bA\b", r"\bB\b", within=50)
    text = "A A B A B"
    spans = [text[m.start : m.end] for m in check.find(text)]
    # the first A takes the first B; the second A lies inside that match; the third A takes
    # the second B
    assert spans == ["A A B", "A B"]


def test_near_with_a_scope_is_unordered():
    check = _prox("alpha", "beta", scope="sentence", ordered=False)
    assert [(m.start, m.end) for m in check.find("beta then alpha. alpha")] == [(0, 15)]


def test_a_proximity_match_holding_personal_data_is_reported_as_pii_without_its_text():
    check = proximity(
        [PhraseCheck(("password",))],
        [PiiCheck.from_spec(CheckSpec("pii", ("EMAIL_ADDRESS",)))],
        None,
        "sentence",
        False,
    )
    assert check.kind == "pii"
    (m,) = check.find("The password for ann@acme.example is hunter2.")
    assert m.detail == "EMAIL_ADDRESS" and m.display is None


def test_followed_by_in_a_gate(tmp_path):
    text = "define dpo = regex /(?i)\\bDPO\\b/\n" + GATE.format(
        n=1,
        body="require followed_by(dpo, any { pii(EMAIL_ADDRESS) regex /https?:\\/\\/\\S+/ },\n"
        "                      within 100 chars, same paragraph)",
    )
    module, diags = _compile(tmp_path, text)
    assert not _codes(diags, "error"), [d.render() for d in diags]
    (gate,) = module.gates
    assert _status(gate, "Our DPO can be reached at dpo@acme.example.") is True
    assert _status(gate, "Our DPO:\nhttps://acme.example/dpo") is True
    assert _status(gate, "Our DPO.\n\nhttps://acme.example/dpo") is False
    assert _status(gate, "Mail dpo@acme.example to reach our DPO.") is False


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            'followed_by(phrase("a"), phrase("b"))',
            "DSL114",
            "a distance (within N chars), a scope",
        ),
        ('followed_by(phrase("a"), phrase("b"), same page)', "DSL164", "unknown scope 'same page'"),
        (
            'followed_by(phrase("a"), all { phrase("b") phrase("c") }, within 5 chars)',
            "DSL166",
            "needs checks that find text",
        ),
        (
            'followed_by(phrase("a"), phrase("b"), within 5 miles)',
            "DSL164",
            "unknown distance unit",
        ),
    ],
)
def test_followed_by_mistakes(tmp_path, body, code, message):
    _, diags = _compile(tmp_path, GATE.format(n=1, body=f"require {body}"))
    (d,) = [d for d in diags if d.severity == "error"]
    assert d.code == code and message in d.message


# --- parameterised definitions and word lists ----------------------------------------------------


def test_parameterised_define_expands_with_expressions_and_words(tmp_path):
    text = (
        "define near_contact(x) = near(x, pii(EMAIL_ADDRESS), within 40 chars)\n"
        'define words_of(w) = phrase(w, "fixed")\n'
        'define officer = phrase("privacy officer")\n'
        + GATE.format(n=1, body="require near_contact(officer)")
        + GATE.format(n=2, body='require words_of("chosen")')
    )
    module, diags = _compile(tmp_path, text)
    assert not diags, [d.render() for d in diags]
    g1, g2 = module.gates
    assert _status(g1, "Our privacy officer: po@acme.example") is True
    assert _status(g1, "Our privacy officer is busy.") is False
    assert _status(g2, "the chosen one") is True and _status(g2, "fixed") is True
    assert _status(g2, "nothing") is False


def test_word_lists_nest_splice_into_phrase_and_keep_the_same_check(tmp_path):
    lib = 'define keep = ["retain", "keep"]\ndefine erase = ["delete", keep]\n'
    text = "import shared\n" + GATE.format(n=1, body='require phrase(erase, "purge")')
    module, diags = _compile(tmp_path, text, lib=lib)
    assert not diags, [d.render() for d in diags]
    (gate,) = module.gates
    same = PhraseCheck(("purge", "delete", "keep", "retain"))
    assert gate.requires[0].check.key == same.key  # a list is its words: the same check


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            'define f(x) = phrase("a")\n' + GATE.format(n=1, body="require f"),
            "DSL160",
            "'f' needs arguments",
        ),
        (
            "define f(x) = x\n" + GATE.format(n=1, body='require f(phrase("a"), phrase("b"))'),
            "DSL114",
            "'f' takes 1 argument(s): x",
        ),
        (
            "define f(x) = f(x)\n" + GATE.format(n=1, body='require f(phrase("a"))'),
            "DSL131",
            "defined in terms of itself",
        ),
        (
            'define w = ["a", w]\n' + GATE.format(n=1, body="require phrase(w)"),
            "DSL131",
            "includes itself",
        ),
        (
            'define w = ["a"]\n' + GATE.format(n=1, body="require w"),
            "DSL162",
            "is a word list, not a check",
        ),
        (
            'define w = ["a", nope]\n' + GATE.format(n=1, body="require phrase(w)"),
            "DSL105",
            "'nope' is not a word list",
        ),
        (
            "define f(x, x) = x\n" + GATE.format(n=1, body='require f(phrase("a"), phrase("b"))'),
            "DSL106",
            "given twice",
        ),
    ],
)
def test_definition_mistakes(tmp_path, text, code, message):
    _, diags = _compile(tmp_path, text)
    errors = [d for d in diags if d.severity == "error"]
    assert errors and errors[0].code == code and message in errors[0].message, [
        d.render() for d in diags
    ]


# --- warnings --------------------------------------------------------------------------------------


def test_unused_definitions_are_warned_in_the_module_not_in_its_libraries(tmp_path):
    lib = 'define lib_unused = phrase("x")\ndefine lib_used = phrase("y")\n'
    text = (
        "import shared\n"
        'define mine_unused = phrase("z")\n'
        'define mine_list = ["q"]\n' + GATE.format(n=1, body="require lib_used")
    )
    module, diags = _compile(tmp_path, text, lib=lib)
    assert module is not None
    warned = sorted(d.message.split("'")[1] for d in diags if d.code == "DSL180")
    assert warned == ["mine_list", "mine_unused"]


def test_a_module_definition_shadows_a_library_one_with_a_warning(tmp_path):
    lib = 'define contact = phrase("library wording")\n'
    text = 'import shared\ndefine contact = phrase("module wording")\n' + GATE.format(
        n=1, body="require contact"
    )
    module, diags = _compile(tmp_path, text, lib=lib)
    (w,) = [d for d in diags if d.code == "DSL181"]
    assert w.severity == "warning" and "lib/shared.gates" in w.message
    (gate,) = module.gates
    assert _status(gate, "module wording") is True and _status(gate, "library wording") is False


def test_a_parameter_shadowing_a_definition_is_warned(tmp_path):
    text = 'define x = phrase("a")\ndefine f(x) = x\n' + GATE.format(
        n=1, body='require all { f(phrase("b")) x }'
    )
    _, diags = _compile(tmp_path, text)
    assert _codes(diags) == ["DSL181"]


def test_parameterised_definitions_that_double_at_every_level_stop_quickly(tmp_path):
    levels = "".join(f"define f{i}(x) = all {{ f{i - 1}(x) f{i - 1}(x) }}\n" for i in range(1, 40))
    text = "define f0(x) = x\n" + levels + GATE.format(n=1, body='require f39(phrase("a"))')
    _, diags = _compile(tmp_path, text)
    assert [d.code for d in diags if d.severity == "error"] == ["DSL133"]
