"""Patterns compiled on first use, so importing a detector module compiles nothing."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import re2

_LOCK = threading.Lock()


class LazyRegex:
    """Stands in for ``re2.compile(pattern, options)`` (or ``re.compile(pattern, flags)`` with
    ``compiler=re.compile``): ``pattern`` is there at once (prefilters and triggers read it when
    detectors are built); anything else compiles the pattern, once, under a lock, and is then
    read from the compiled object. Each attribute read through is kept on this object, so later
    reads are plain attribute lookups."""

    def __init__(
        self, pattern: str, options: Any = None, compiler: Callable[..., Any] = re2.compile
    ) -> None:
        self.pattern = pattern
        self._options = options
        self._compiler = compiler

    def compiled(self) -> Any:
        """The compiled ``re2`` pattern."""
        got = self.__dict__.get("_rx")
        if got is None:
            with _LOCK:
                got = self.__dict__.get("_rx")
                if got is None:
                    got = self.__dict__["_rx"] = self._compiler(self.pattern, self._options)
        return got

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends: not the pattern's business
            raise AttributeError(name)
        value = getattr(self.compiled(), name)
        self.__dict__[name] = value
        return value

    def __repr__(self) -> str:
        return f"LazyRegex({self.pattern!r})"


def lazy_re(pattern: str, flags: int = 0) -> LazyRegex:
    """A Python ``re`` pattern compiled on first use."""
    return LazyRegex(pattern, flags, re.compile)
