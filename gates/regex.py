"""`regex /.../flags`: an RE2 pattern, so no gate can run in super-linear time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import re2

from dsl.diagnostics import Code
from gates import scan
from gates.base import Check, CheckError, CheckSpec, Match

#: flags a gate author may put after the closing slash.
FLAGS = {"i": "case-insensitive", "s": "dot matches newline", "m": "multi-line ^ and $"}

_UNSUPPORTED = [
    ("(?=", "lookahead", "use near(...) or all { ... } to require two things together"),
    ("(?!", "negative lookahead", "use not ... or forbid/require with all { ... }"),
    ("(?<=", "lookbehind", "use near(a, b, within N chars)"),
    ("(?<!", "negative lookbehind", "use not near(...)"),
    ("(?>", "atomic group", "RE2 never backtracks, so the group is unnecessary"),
]


def _options() -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False  # errors become diagnostics, not stderr noise
    return opts


def _explain(pattern: str, raw_error: str) -> tuple[str, str]:
    for token, name, advice in _UNSUPPORTED:
        if token in pattern:
            return (
                f"regex uses {name}, which RE2 cannot run (it would allow super-linear matching)",
                f"{advice}",
            )
    import re as _re

    if _re.search(r"\\[1-9]|\(\?P=", pattern):
        return (
            "regex uses a backreference, which RE2 cannot run (it would allow "
            "super-linear matching)",
            "match the repeated text explicitly, or use phrase(...) for fixed wording",
        )
    return (
        f"invalid regex: {raw_error}",
        "see the RE2 syntax: https://github.com/google/re2/wiki/Syntax",
    )


class RegexCheck(Check):
    kind: ClassVar[str] = "regex"
    cost: ClassVar[int] = 1

    def __init__(self, pattern: str, flags: str) -> None:
        self.pattern = pattern
        self.flags = "".join(sorted(set(flags)))
        prefix = f"(?{self.flags})" if self.flags else ""
        try:
            self._re = re2.compile(prefix + pattern, _options())
        except re2.error as exc:
            raw = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            message, help_ = _explain(pattern, raw)
            raise CheckError(Code.BAD_REGEX, message, help=help_) from None
        self._anchor = (
            scan.anchor_of(self._re.pattern) if scan.anchor_worth_it(self._re.pattern) else None
        )

    @classmethod
    def from_spec(cls, spec: CheckSpec) -> RegexCheck:
        pattern, flags = spec.args
        bad = [f for f in flags if f not in FLAGS]
        if bad:
            raise CheckError(
                Code.UNKNOWN_REGEX_FLAG,
                f"unknown regex flag '{bad[0]}'",
                help="expected one of: " + ", ".join(f"{k} ({v})" for k, v in FLAGS.items()),
            )
        return cls(pattern, flags)

    def find(self, text: str) -> list[Match]:
        return list(self.iter_find(text))

    def iter_find(self, text: str) -> Iterator[Match]:
        # the document's bytes, encoded once; tried only where the leading group can match
        for m in scan.finditer(self._re, text, self._anchor):
            s, e = m.span()
            if e > s:  # zero-width matches carry no evidence
                yield Match(s, e, detail=m.group()[:80])

    def triggers(self) -> tuple[tuple[str, ...], ...]:
        return ((self._re.pattern,),)

    def canonical(self) -> dict[str, Any]:
        return {"kind": "regex", "pattern": self.pattern, "flags": self.flags}

    def describe(self) -> str:
        return f"regex /{self.pattern}/{self.flags}"
