"""One small interface for report formats; one file per format (text, json, sarif, ...)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # the helpers here serve the CLI too, which must not import pydantic early
    from engine.report import Report

#: characters that must never reach a terminal or a line-oriented output as they are: C0 and
#: C1 controls (newline, carriage return, ESC of ANSI sequences), DEL, Unicode line and paragraph
#: separators, and the bidirectional overrides that make text read differently than it is.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def shown(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\n``, ``\\x1b``,
    ``\\u202e``), never emitted: a document named ``"a\\nb.txt: pass"`` must not print a
    second, forged result line, and ANSI sequences in a name must not drive the terminal."""
    return _CONTROL.sub(_escape, text)


_CONTROL_IN_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def shown_lines(text: str) -> str:
    """:func:`shown` for output of several lines: newlines and tabs go out as they are."""
    return _CONTROL_IN_LINES.sub(_escape, text)


# JSON escapes C0 controls itself; these it leaves raw, valid inside strings but still able to
# reorder or break what a terminal shows.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_shown(text: str) -> str:
    """JSON text with the characters JSON leaves raw written as ``\\uXXXX`` escapes: the same
    data for a parser, nothing a terminal acts on. They occur only inside strings."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Formatter(ABC):
    name: ClassVar[str]
    #: file extension for --output defaults
    suffix: ClassVar[str] = ".txt"

    @abstractmethod
    def render(self, reports: list[Report]) -> str:
        """Render one or more documents' reports as one output."""


_REGISTRY: dict[str, type[Formatter]] = {}


def register(cls: type[Formatter]) -> type[Formatter]:
    _REGISTRY[cls.name] = cls
    return cls


def get_formatter(name: str) -> Formatter:
    """The formatter called ``name``; only its own module is imported (one file per format,
    named after it), so `validate` in text does not import the SARIF or HTML writers."""
    if name not in _REGISTRY and name.isidentifier() and name != "base":
        import importlib

        try:
            importlib.import_module(f"engine.formatters.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"engine.formatters.{name}":
                raise  # a real missing dependency, not an unknown format
    if name not in _REGISTRY:
        _discover()  # an unknown name: the error lists every format there is
    try:
        return _REGISTRY[name]()
    except KeyError:
        from engine.errors import UserError

        raise UserError(
            f"unknown format '{name}' (expected one of: {', '.join(formats())})"
        ) from None


def formats() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def _discover() -> None:
    import importlib
    import pkgutil

    import engine.formatters as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "base":
            importlib.import_module(f"engine.formatters.{info.name}")
