"""De-identification offset maps, and the chunk/passage/quote helpers that rely on the same offsets."""

from __future__ import annotations

import random

from engine.providers.chunking import chunk_ranges, locate, passages
from engine.providers.deid import deidentify, passthrough
from gates.base import Match

TEXT = (
    "Write to jane.doe@mail.example or call (212) 555-0199. "
    "Jane's SSN is 536-22-8471. Again: jane.doe@mail.example, or bob@corp.example."
)


def test_values_become_typed_numbered_placeholders():
    d = deidentify(TEXT)
    assert "jane.doe" not in d.text and "536-22-8471" not in d.text and "555-0199" not in d.text
    assert d.text.count("[EMAIL_ADDRESS_1]") == 2  # one value, one placeholder
    assert "[EMAIL_ADDRESS_2]" in d.text and "[US_SSN_1]" in d.text
    assert d.entities["[US_SSN_1]"] == "US_SSN"


def test_spans_map_back_to_the_original():
    d = deidentify(TEXT)
    i = d.text.index("[US_SSN_1]")
    start, end = d.to_original(i, i + len("[US_SSN_1]"))
    assert TEXT[start:end] == "536-22-8471"
    # a sentence that contains placeholders maps to the original sentence, values included
    j = d.text.index("Write to")
    k = d.text.index(".", j) + 1
    start, end = d.to_original(j, k)
    assert TEXT[start:end] == "Write to jane.doe@mail.example or call (212) 555-0199."
    # a span that cuts into a placeholder widens to the whole value
    start, end = d.to_original(i + 2, i + 4)
    assert TEXT[start:end] == "536-22-8471"


def test_to_redacted_for_boundaries():
    d = deidentify(TEXT)
    assert d.to_redacted(0) == 0
    assert d.to_redacted(len(TEXT)) == len(d.text)
    o = TEXT.index("Jane's")
    assert d.text[d.to_redacted(o) :].startswith("Jane's")
    inside = TEXT.index("22-8471")
    assert d.text[d.to_redacted(inside) :].startswith("[US_SSN_1]")


def test_overlapping_detections_hide_the_union_named_by_the_best():
    def a(text):
        return [Match(0, 6, "A", score=0.9)]

    def b(text):
        return [Match(3, 10, "B", score=0.5)]

    d = deidentify("abcdefghijkl", [a, b])
    assert d.text == "[A_1]kl"
    assert d.to_original(0, 5) == (0, 10)

    def c(text):
        return [Match(2, 4, "C", score=0.99)]

    assert deidentify("abcdefghijkl", [a, b, c]).text == "[C_1]kl"


def test_copied_text_maps_character_for_character():
    rng = random.Random(7)
    words = ["alpha", "beta", "x@y.example", "536-22-8471", "gamma", "\n\n", "(212) 555-0199"]
    for _ in range(30):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40)))
        d = deidentify(text)
        for seg in d.segments:
            if seg.placeholder is None:
                for r in range(seg.red_start, seg.red_end):
                    o, _ = d.to_original(r, r + 1)
                    assert d.text[r] == text[o]
            else:
                assert d.to_original(seg.red_start, seg.red_end) == (seg.orig_start, seg.orig_end)


def test_passthrough_is_the_identity():
    d = passthrough(TEXT)
    assert d.text == TEXT and d.to_original(5, 9) == (5, 9) and d.to_redacted(7) == 7


def test_chunks_cover_the_text_cut_at_sections_with_overlap():
    sections = [f"# Part {i}\n\n" + "Some words here. " * 20 + "\n\n" for i in range(12)]
    text = "".join(sections)
    bounds = [sum(map(len, sections[:i])) for i in range(len(sections))]
    chunks = chunk_ranges(text, bounds, max_chars=1000, overlap=100)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(text)
    for (_, e1), (s2, _) in zip(chunks, chunks[1:], strict=False):
        assert s2 < e1 <= s2 + 100 + 1  # overlapping, by at most the overlap
        assert e1 in bounds  # cut at a section boundary
    for s, e in chunks:
        assert e - s <= 1000 + 100
    assert chunk_ranges("short", [], 1000, 100) == [(0, 5)]


def test_an_oversized_section_is_split_inside():
    text = "# One\n\n" + "A sentence that goes on. " * 200
    chunks = chunk_ranges(text, [0], max_chars=500, overlap=0)
    assert len(chunks) > 5 and chunks[-1][1] == len(text)
    assert all(e - s <= 500 for s, e in chunks)


def test_passages_are_bounded_and_exact():
    text = "# Heading\n\nFirst sentence here. Second one follows!\n\n- a\n- b\n\n" + "word " * 300
    spans = passages(text, max_chars=200)
    assert all(b - a <= 200 for a, b in spans)
    assert all(text[a:b] == text[a:b].strip() for a, b in spans)
    assert any(text[a:b].startswith("First sentence") for a, b in spans)


def test_locate_quotes_leniently():
    text = "We keep your data\n  for two years. Contact “privacy” team."
    assert locate("We keep your data", text) == (0, 17)
    a, b = locate("we keep your data for two years.", text)
    assert text[a:b] == "We keep your data\n  for two years."
    a, b = locate('Contact "privacy" team', text)
    assert text[a:b] == "Contact “privacy” team"
    a, b = locate("We keep ... for two years.", text)
    assert text[a:b] == "for two years."
    assert locate("not in there", text) is None
