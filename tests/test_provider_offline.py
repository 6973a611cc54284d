"""The offline embedding provider, and how the registry chooses a provider."""

from __future__ import annotations

import asyncio

import pytest

from engine.document import Document
from engine.providers import offline
from engine.providers.base import NullProvider
from engine.providers.offline import Band, OfflineProvider, load_band
from engine.providers.registry import chosen_name, make_provider
from gates.base import Question

NOTICE = """# Privacy notice

Acme Ltd is the data controller. Contact us at privacy@acme.example.

## Retention

We keep your personal data for two years after you close your account, then delete it.

## Cookies

We use cookies to remember your language.
"""

RETENTION = Question(
    "Does the notice say how long personal data is kept?",
    like=("We retain your personal data for a defined period of time.",),
)
AUTOMATED = Question(
    "Does the notice describe automated decision-making?",
    like=("We use automated decision-making, including profiling, with legal effects on you.",),
)

needs_model = pytest.mark.skipif(
    offline.load_embedder()[0] is None, reason="offline model packages are not installed"
)


def ask(provider, text, questions):
    return asyncio.run(provider.answer(Document(text, media_type="text/markdown"), questions))


@needs_model
def test_clear_yes_and_clear_no_with_evidence():
    provider = OfflineProvider(default_threshold=0.55, heads={}, band=Band(0.02, 0.02))
    doc = Document(NOTICE, media_type="text/markdown")
    result = asyncio.run(provider.answer(doc, [RETENTION, AUTOMATED]))
    yes, no = result.answers[RETENTION.id], result.answers[AUTOMATED.id]
    assert yes.verdict == "yes" and no.verdict == "no"
    (ev,) = yes.evidence
    assert ev.quote.startswith("We keep your personal data for two years")
    assert doc.text[ev.start : ev.end] == ev.quote
    assert "decided above 0.57 / below 0.53" in yes.rationale and "line 7" in yes.rationale
    assert (yes.decided_above, yes.decided_below) == (0.57, 0.53) and yes.score >= 0.57
    assert no.score < 0.53
    assert yes.confidence > 0.5 and no.confidence > 0.5
    assert no.evidence == ()
    # the rationale quotes the document, never the reference statement
    assert RETENTION.like[0] not in yes.rationale and AUTOMATED.like[0] not in no.rationale
    assert result.usage.calls == 0  # nothing left the machine


@needs_model
def test_question_threshold_overrides_the_default():
    strict = Question(RETENTION.text, RETENTION.like, threshold=0.99)
    result = ask(OfflineProvider(default_threshold=0.3, heads={}), NOTICE, [strict])
    assert result.answers[strict.id].verdict == "no"


@needs_model
def test_question_text_is_used_without_statements():
    q = Question("We use cookies to remember your language preference.")
    provider = OfflineProvider(default_threshold=0.6, heads={})
    assert ask(provider, NOTICE, [q]).answers[q.id].verdict == "yes"


@needs_model
def test_a_score_inside_the_band_is_unsure_and_says_why():
    provider = OfflineProvider(heads={}, band=Band(0.04, 0.03))
    doc = Document(NOTICE, media_type="text/markdown")
    score = provider.scores(doc, [RETENTION])[RETENTION.id].value
    # a threshold a hair above the document's best score: today's "confident no"
    hair = Question(RETENTION.text, RETENTION.like, threshold=round(score + 0.01, 3))
    answer = asyncio.run(provider.answer(doc, [hair])).answers[hair.id]
    assert answer.verdict == "unclear"
    above, below = round(hair.threshold + 0.03, 3), round(hair.threshold - 0.04, 3)
    assert (answer.decided_above, answer.decided_below) == (above, below)
    assert answer.rationale.startswith(
        f"unsure (score {score:.2f}, decided above {above:.2f} / below {below:.2f}) by similarity"
    )
    assert 'line 7: "We keep your personal data for two years' in answer.rationale
    assert RETENTION.like[0] not in answer.rationale
    # the same score well clear of the band is decided
    low = Question(RETENTION.text, RETENTION.like, threshold=round(score - 0.1, 3))
    assert asyncio.run(provider.answer(doc, [low])).answers[low.id].verdict == "yes"


def test_the_shipped_band_is_calibrated_and_narrow():
    band = load_band()
    assert "CV" in band.method
    assert 0.0 < band.below <= 0.1 and 0.0 < band.above <= 0.1


@needs_model
def test_pooling_ignores_padding():
    embedder, _ = offline.load_embedder()
    alone = embedder.embed(["We keep data for two years."])[0]
    long = "a much longer sentence " * 30
    batched = embedder.embed(["We keep data for two years.", long])[0]
    assert float(alone @ batched) > 0.9999
    # the shipped tokenizer's own habit (pad everything to 128) must not change the vector either
    embedder.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=128)
    try:
        fixed = embedder.embed(["We keep data for two years."])[0]
    finally:
        embedder.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    assert float(alone @ fixed) > 0.9999


@needs_model
def test_document_passages_are_embedded_once():
    provider = OfflineProvider(heads={})
    embedder, _ = offline.load_embedder()
    doc = Document(NOTICE + "\nA unique line for this test.\n", media_type="text/markdown")
    asyncio.run(provider.answer(doc, [RETENTION]))
    before = embedder.passages_embedded
    asyncio.run(provider.answer(doc, [RETENTION]))
    assert embedder.passages_embedded == before


@needs_model
def test_empty_document_and_no_questions():
    provider = OfflineProvider()
    assert ask(provider, NOTICE, []).answers == {}
    answer = ask(provider, "   ", [RETENTION]).answers[RETENTION.id]
    assert answer.verdict == "no" and "no text" in answer.rationale


def test_missing_model_is_unclear_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.setenv("CLEARANCE_OFFLINE_MODEL", str(tmp_path / "absent.onnx"))
    offline.reset_model()
    try:
        answer = ask(OfflineProvider(), NOTICE, [RETENTION]).answers[RETENTION.id]
        assert answer.verdict == "unclear"
        assert "offline model unavailable" in answer.rationale
    finally:
        monkeypatch.delenv("CLEARANCE_OFFLINE_MODEL")
        offline.reset_model()


def test_registry_choice(monkeypatch):
    assert chosen_name() == "offline"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    assert chosen_name() == "anthropic"
    monkeypatch.setenv("CLEARANCE_PROVIDER", "none")
    assert chosen_name() == "none"
    assert chosen_name("Scripted") == "scripted"
    assert make_provider("offline").name == "offline"
    assert make_provider("anthropic", timeout_s=5).name == "anthropic"
    assert make_provider("scripted", table={"Q?": "yes"}).name == "scripted"
    with pytest.raises(ValueError, match="Did you mean 'offline'"):
        make_provider("ofline")


def test_none_provider_answers_unclear():
    provider = make_provider("none")
    assert isinstance(provider, NullProvider)
    answer = ask(provider, NOTICE, [RETENTION]).answers[RETENTION.id]
    assert answer.verdict == "unclear" and "disabled" in answer.rationale
