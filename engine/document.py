"""The in-memory document: decoded text, sections by heading, and offset -> line/col mapping."""

from __future__ import annotations

import bisect
import hashlib
import re
from array import array
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Section:
    """A run of the document under one heading. ``start``/``end`` are character offsets; the
    heading line itself is included. The preamble before the first heading has ``heading=None``."""

    heading: str | None
    level: int
    start: int
    end: int


@dataclass
class Document:
    text: str
    name: str = "<text>"
    path: str | None = None
    sha256: str = ""
    size: int = 0
    media_type: str = "text/plain"
    sections: list[Section] = field(default_factory=list)
    #: for paged formats (PDF): character offset where each page starts.
    page_starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = hashlib.sha256(self.text.encode("utf-8")).hexdigest()
        if not self.size:
            self.size = len(self.text.encode("utf-8"))
        # Sections and line starts are worked out on first use: a validation answered from
        # the result cache needs neither (0.1 ms of a 10 KB document's ~1 ms hit).
        if not self.sections:
            del self.sections

    def __getattr__(self, name: str) -> Any:
        # only reached for an attribute not set yet: the lazy ones above
        if name == "sections":
            self.sections = split_sections(self.text, self.media_type)
            return self.sections
        if name == "_line_starts":
            # an int64 array, not a list of ints: 8 bytes a line instead of ~40 (a 10 MB
            # document has 150,000 lines); bisect reads it as a sequence
            starts = array("q", [0])
            starts.extend(m.end() for m in re.finditer("\n", self.text))
            self._line_starts = starts
            return starts
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column (in characters) of a character offset."""
        i = bisect.bisect_right(self._line_starts, offset) - 1
        return i + 1, offset - self._line_starts[i] + 1

    def page(self, offset: int) -> int | None:
        if not self.page_starts:
            return None
        return bisect.bisect_right(self.page_starts, offset)

    def section_ranges(self, headings: tuple[str, ...]) -> list[tuple[int, int]]:
        """Ranges of the sections whose heading contains any of ``headings`` (case-insensitive),
        each including its sub-sections."""
        wanted = [h.casefold() for h in headings]
        ranges: list[tuple[int, int]] = []
        for i, sec in enumerate(self.sections):
            if sec.heading is None or not any(w in sec.heading.casefold() for w in wanted):
                continue
            end = sec.end
            for later in self.sections[i + 1 :]:
                if later.heading is not None and later.level <= sec.level:
                    break
                end = later.end
            if ranges and sec.start < ranges[-1][1]:
                continue  # already inside a matched parent section
            ranges.append((sec.start, end))
        return ranges


# The closing "#"s and spaces are stripped in Python: as a lazy group followed by [ \t#]*$ the
# regex backtracked quadratically on a long line of spaces ("# a" + 40,000 spaces: 28 s).
_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+([^\n]+)$", re.MULTILINE)
# Plain text: a short line in capitals, or a short line ending with ':' that stands alone. The
# title is cut from the rest of the line in Python (_txt_title): the regex that did it with a lazy
# title and [ \t]*:?[ \t]*$ backtracked quadratically on long runs of spaces (8,000: 63 s).
_TXT_HEADING = re.compile(
    r"^(?:(?P<num>\d+(?:\.\d+)*\.?)[ \t]+)?(?P<rest>[A-Z][^\n]*)$", re.MULTILINE
)


def _txt_title(rest: str) -> str | None:
    """The shortest title of 2-79 characters that leaves only [ \t]*:?[ \t]* after it."""
    title = rest.rstrip(" \t")
    if title.endswith(":"):
        title = title[:-1].rstrip(" \t")
    if len(title) < 2:
        title = rest[:2]
    return title if 2 <= len(title) <= 79 else None


def split_sections(text: str, media_type: str = "text/plain") -> list[Section]:
    """Split text into sections by Markdown ATX headings, or by heading-like lines in plain text.
    Linear in the text length."""
    heads: list[tuple[int, int, str]] = []  # (offset, level, heading)
    for m in _MD_HEADING.finditer(text):
        rest = m.group(2)
        heads.append((m.start(), len(m.group(1)), (rest.rstrip(" \t#") or rest[:1]).strip()))
    if not heads and media_type != "text/markdown":
        for m in _TXT_HEADING.finditer(text):
            found = _txt_title(m.group("rest"))
            if found is None:
                continue
            line = m.group(0).strip()
            title = found.strip()
            before = text[max(0, m.start() - 2) : m.start()]
            standalone = m.start() == 0 or before.endswith("\n\n") or before == "\n"
            looks = (title.isupper() and len(title) > 3) or (line.endswith(":") and len(line) < 60)
            if standalone and looks and not title.endswith("."):
                level = 1 + (m.group("num") or "").count(".") if m.group("num") else 1
                heads.append((m.start(), level, title.rstrip(":")))
    sections: list[Section] = []
    first = heads[0][0] if heads else len(text)
    if first > 0 or not heads:
        sections.append(Section(None, 0, 0, first))
    for i, (off, level, heading) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(text)
        sections.append(Section(heading, level, off, end))
    return sections
