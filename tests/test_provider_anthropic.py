"""The Anthropic provider through the real SDK against the fake server: batching, privacy, faults."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from engine.document import Document
from engine.providers.anthropic import AnthropicProvider, parse_retry_after
from engine.providers.base import ProviderResult
from gates.base import Question

try:  # tests/ may or may not be a package, depending on who adds an __init__.py
    from tests.fake_anthropic import (  # noqa: F401
        MISSING,
        FakeAnthropic,
        Fault,
        fake_anthropic,
        fake_anthropic_server,
    )
except ImportError:
    from fake_anthropic import (  # noqa: F401
        MISSING,
        FakeAnthropic,
        Fault,
        fake_anthropic,
        fake_anthropic_server,
    )

SSN = "536-22-8471"
EMAIL = "jane.doe@mail.example"
PHONE = "(212) 555-0199"

NOTICE = f"""# Privacy notice

Acme Ltd is the data controller for the personal data described here.
Contact our privacy team at {EMAIL} or call {PHONE} with any request.

# Retention

The retention period for account records is two years after the account closes.

# Your rights

You may request access to your personal data at any time.
Our records show the account holder's SSN as {SSN}.
"""

Q_CONTROLLER = Question("Does the notice say who the data controller is?")
Q_RETENTION = Question("Does the notice state a retention period for records?")
Q_COOKIES = Question("Does the notice explain cookies?")
Q_EMAIL = Question("Does the notice give a privacy email contact?")


def run(coro):
    return asyncio.run(coro)


class SleepRecorder:
    """Stands in for asyncio.sleep: records the delays and yields without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(server: FakeAnthropic, **kw) -> AnthropicProvider:
    settings = dict(
        api_key="test-key",
        base_url=server.url,
        timeout_s=2.0,
        max_attempts=3,
        backoff_base_s=0.01,
        backoff_cap_s=0.05,
        sleep=SleepRecorder(),
    )
    settings.update(kw)
    return AnthropicProvider(**settings)


def ask(provider: AnthropicProvider, text: str, questions: list[Question]) -> ProviderResult:
    return run(provider.answer(Document(text, media_type="text/markdown"), questions))


def test_one_request_for_all_questions_with_cached_document_block(fake_anthropic):
    provider = make(fake_anthropic)
    result = ask(provider, NOTICE, [Q_CONTROLLER, Q_RETENTION, Q_COOKIES])
    assert len(fake_anthropic.requests) == 1
    body = fake_anthropic.requests[0].body
    assert fake_anthropic.requests[0].path == "/v1/messages"
    assert body["tool_choice"] == {"type": "tool", "name": "record_answers"}
    doc_block = body["messages"][0]["content"][0]
    assert doc_block["cache_control"] == {"type": "ephemeral"}
    assert "<document>" in doc_block["text"]
    assert [a.verdict for a in result.answers.values()] == ["yes", "yes", "no"]
    assert result.usage.calls == 1
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0


def test_second_batch_on_same_document_reads_the_cache(fake_anthropic):
    provider = make(fake_anthropic)
    first = ask(provider, NOTICE, [Q_CONTROLLER])
    second = ask(provider, NOTICE, [Q_RETENTION, Q_COOKIES])
    first_block = fake_anthropic.requests[0].body["messages"][0]["content"][0]
    second_block = fake_anthropic.requests[1].body["messages"][0]["content"][0]
    assert first_block == second_block  # byte-identical prefix is what makes caching work
    assert first.usage.cached_input_tokens == 0
    assert second.usage.cached_input_tokens > 0


def test_no_pii_reaches_the_server_and_evidence_maps_back(fake_anthropic):
    provider = make(fake_anthropic)
    doc = Document(NOTICE, media_type="text/markdown")
    result = run(provider.answer(doc, [Q_EMAIL, Q_CONTROLLER]))
    for raw in fake_anthropic.bodies:
        for value in (SSN, EMAIL, "555-0199", "jane.doe"):
            assert value not in raw
    assert "[EMAIL_ADDRESS_1]" in fake_anthropic.bodies[0]
    assert "[US_SSN_1]" in fake_anthropic.bodies[0]
    answer = result.answers[Q_EMAIL.id]
    assert answer.verdict == "yes"
    (ev,) = answer.evidence
    # the fake quoted the redacted sentence; the evidence is the original text at its offsets
    assert doc.text[ev.start : ev.end] == ev.quote
    assert EMAIL in ev.quote and "[EMAIL" not in ev.quote
    assert ev.quote.startswith("Contact our privacy team")


def test_raw_text_only_when_every_question_and_the_operator_allow_it(fake_anthropic):
    raw_q = Question("Does the notice give a privacy email contact?", raw=True)
    ask(make(fake_anthropic, allow_raw=True), NOTICE, [raw_q])
    ask(make(fake_anthropic, allow_raw=False), NOTICE, [raw_q])
    ask(make(fake_anthropic, allow_raw=True), NOTICE, [raw_q, Q_CONTROLLER])
    bodies = fake_anthropic.bodies
    assert EMAIL in bodies[0]
    assert EMAIL not in bodies[1] and EMAIL not in bodies[2]


def test_long_document_one_request_per_chunk_and_merged_answers(fake_anthropic):
    filler = "\n\n".join(
        f"# Section {i}\n\nThis part describes topic number {i} in detail." for i in range(30)
    )
    text = NOTICE + "\n" + filler + "\n\n# Cookies\n\nWe use cookies to remember you.\n"
    provider = make(fake_anthropic, chunk_chars=400, chunk_overlap=60)
    doc = Document(text, media_type="text/markdown")
    result = run(provider.answer(doc, [Q_CONTROLLER, Q_COOKIES, Question("Does it sell kittens?")]))
    chunks = provider.prepare(doc, [Q_CONTROLLER])[1]
    assert len(chunks) > 3
    assert len(fake_anthropic.requests) == len(chunks) == result.usage.calls
    for r in fake_anthropic.requests:  # every chunk carries every question
        assert r.raw.count('\\"id\\": \\"Q') == 3 or r.raw.count('"id": "Q') == 3
    verdicts = {q: result.answers[q.id].verdict for q in (Q_CONTROLLER, Q_COOKIES)}
    assert verdicts == {Q_CONTROLLER: "yes", Q_COOKIES: "yes"}
    (cookie_ev,) = result.answers[Q_COOKIES.id].evidence
    assert text[cookie_ev.start : cookie_ev.end] == "We use cookies to remember you."
    assert [a.verdict for a in result.answers.values()][2] == "no"


def test_concurrency_limit_holds_across_chunks(fake_anthropic):
    text = "\n\n".join(f"# Part {i}\n\nThe data controller is Acme, part {i}." for i in range(12))
    for _ in range(12):
        fake_anthropic.faults.append(Fault("slow", delay=0.05))
    provider = make(fake_anthropic, chunk_chars=120, chunk_overlap=0, concurrency=2)
    result = ask(provider, text, [Q_CONTROLLER])
    assert len(fake_anthropic.requests) >= 6
    assert fake_anthropic.max_in_flight == 2
    assert result.answers[Q_CONTROLLER.id].verdict == "yes"


def test_429_retry_after_is_honoured_then_success(fake_anthropic):
    sleep = SleepRecorder()
    fake_anthropic.faults.append(Fault("rate_limit", retry_after=1.5))
    result = ask(make(fake_anthropic, sleep=sleep), NOTICE, [Q_CONTROLLER])
    assert result.answers[Q_CONTROLLER.id].verdict == "yes"
    assert sleep.delays == [1.5]
    assert len(fake_anthropic.requests) == 2 and result.usage.calls == 2


def test_retry_after_beyond_the_limit_gives_up_at_once(fake_anthropic):
    fake_anthropic.always = Fault("rate_limit", retry_after=600)
    result = ask(make(fake_anthropic, max_retry_after_s=10), NOTICE, [Q_CONTROLLER])
    answer = result.answers[Q_CONTROLLER.id]
    assert answer.verdict == "unclear"
    assert "rate limited" in answer.rationale and "600s" in answer.rationale
    assert len(fake_anthropic.requests) == 1


def test_repeated_500s_unclear_then_breaker_opens_then_half_open_probe(fake_anthropic):
    clock = FakeClock()
    sleep = SleepRecorder()
    provider = make(
        fake_anthropic, breaker_failures=3, breaker_cooldown_s=30, clock=clock, sleep=sleep
    )
    fake_anthropic.always = Fault("error", status=500)
    first = ask(provider, NOTICE, [Q_CONTROLLER]).answers[Q_CONTROLLER.id]
    assert first.verdict == "unclear"
    assert first.rationale == "LLM HTTP 500 after 3 attempts"
    assert len(fake_anthropic.requests) == 3
    assert len(sleep.delays) == 2 and sleep.delays[0] < sleep.delays[1] * 2  # backoff, bounded
    assert provider.breaker.state == "open"

    second = ask(provider, NOTICE, [Q_CONTROLLER]).answers[Q_CONTROLLER.id]
    assert "circuit breaker open" in second.rationale
    assert len(fake_anthropic.requests) == 3  # refused locally: nothing sent

    clock.now += 31  # cool-down over: one probe; it fails, so the breaker opens again
    ask(provider, NOTICE, [Q_CONTROLLER])
    assert len(fake_anthropic.requests) == 4
    assert provider.breaker.state == "open"

    clock.now += 31
    fake_anthropic.always = None  # the service recovered: the probe succeeds and closes it
    healed = ask(provider, NOTICE, [Q_CONTROLLER]).answers[Q_CONTROLLER.id]
    assert healed.verdict == "yes"
    assert provider.breaker.state == "closed"


def test_timeout_is_unclear_within_a_bounded_time(fake_anthropic):
    fake_anthropic.always = Fault("slow", delay=5.0)
    provider = make(fake_anthropic, timeout_s=0.3, max_attempts=2)
    started = time.monotonic()
    answer = ask(provider, NOTICE, [Q_CONTROLLER]).answers[Q_CONTROLLER.id]
    assert time.monotonic() - started < 2.0
    assert answer.verdict == "unclear"
    assert answer.rationale == "LLM timeout (0.3s) after 2 attempts"


def test_retries_stop_when_the_deadline_leaves_no_time(fake_anthropic):
    fake_anthropic.always = Fault("error", status=503)
    provider = make(fake_anthropic, deadline_s=0.5, backoff_base_s=0.4, backoff_cap_s=0.4)
    answer = ask(provider, NOTICE, [Q_CONTROLLER]).answers[Q_CONTROLLER.id]
    assert answer.verdict == "unclear"
    assert answer.rationale == "LLM HTTP 503 after 1 of 3 attempts (no time left within 0.5s)"
    assert len(fake_anthropic.requests) == 1


def test_slow_but_in_time_reply_is_answered(fake_anthropic):
    fake_anthropic.faults.append(Fault("slow", delay=0.2))
    result = ask(make(fake_anthropic, timeout_s=2.0), NOTICE, [Q_CONTROLLER])
    assert result.answers[Q_CONTROLLER.id].verdict == "yes"


@pytest.mark.parametrize(
    "kind,reason",
    [
        ("truncated", "malformed response"),
        ("invalid_json", "malformed response"),
        ("wrong_schema", "did not match the schema"),
        ("no_tool", "did not call the answer tool"),
    ],
)
def test_broken_replies_are_unclear_never_a_crash(fake_anthropic, kind, reason):
    fake_anthropic.always = Fault(kind)
    result = ask(make(fake_anthropic, max_attempts=2), NOTICE, [Q_CONTROLLER, Q_COOKIES])
    for answer in result.answers.values():
        assert answer.verdict == "unclear"
        assert reason in answer.rationale


def test_a_single_truncated_reply_is_retried(fake_anthropic):
    fake_anthropic.faults.append(Fault("truncated"))
    result = ask(make(fake_anthropic), NOTICE, [Q_CONTROLLER])
    assert result.answers[Q_CONTROLLER.id].verdict == "yes"
    assert result.usage.calls == 2


def test_call_budget_exhausted_is_unclear_with_reason(fake_anthropic):
    provider = make(fake_anthropic, max_calls=1)
    assert ask(provider, NOTICE, [Q_CONTROLLER]).answers[Q_CONTROLLER.id].verdict == "yes"
    answer = ask(provider, NOTICE, [Q_RETENTION]).answers[Q_RETENTION.id]
    assert answer.verdict == "unclear"
    assert "call budget exhausted (1 of 1 calls used)" in answer.rationale
    assert len(fake_anthropic.requests) == 1
    provider.start_validation()  # a new validation gets a fresh allowance
    assert ask(provider, NOTICE, [Q_RETENTION]).answers[Q_RETENTION.id].verdict == "yes"


def test_token_budget_exhausted_is_unclear_with_reason(fake_anthropic):
    provider = make(fake_anthropic, max_tokens=500)
    answer = ask(provider, NOTICE, [Q_CONTROLLER]).answers[Q_CONTROLLER.id]
    assert answer.verdict == "unclear" and "token budget exhausted" in answer.rationale
    assert fake_anthropic.requests == []


def test_tokens_are_accounted(fake_anthropic):
    provider = make(fake_anthropic)
    result = ask(provider, NOTICE, [Q_CONTROLLER, Q_RETENTION])
    usage = fake_anthropic.requests and result.usage
    assert usage.calls == 1
    assert usage.input_tokens > 100 and usage.output_tokens > 10
    assert usage.latency_ms > 0
    assert provider.budget.tokens == (
        usage.input_tokens + usage.output_tokens + usage.cached_input_tokens
    )


def test_no_api_key_is_unclear_without_a_request(fake_anthropic, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    provider = AnthropicProvider(base_url=fake_anthropic.url)
    answer = run(provider.answer(Document(NOTICE), [Q_CONTROLLER])).answers[Q_CONTROLLER.id]
    assert answer.verdict == "unclear" and "ANTHROPIC_API_KEY" in answer.rationale
    assert fake_anthropic.requests == []


def test_base_url_from_the_environment_as_the_sdk_does(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.url)
    monkeypatch.setenv("CLEARANCE_MODEL", "claude-test-model")
    provider = AnthropicProvider(api_key="k", sleep=SleepRecorder())
    result = run(provider.answer(Document(NOTICE), [Q_CONTROLLER]))
    assert result.answers[Q_CONTROLLER.id].verdict == "yes"
    assert fake_anthropic.requests[0].body["model"] == "claude-test-model"
    headers = {k.lower(): v for k, v in fake_anthropic.requests[0].headers.items()}
    # this SDK generation sends the key as a bearer token; older ones used x-api-key
    assert headers.get("x-api-key") == "k" or headers.get("authorization") == "Bearer k"


def test_one_provider_serves_several_event_loops(fake_anthropic):
    provider = make(fake_anthropic)
    for _ in range(3):  # e.g. an engine that calls asyncio.run() per document
        assert ask(provider, NOTICE, [Q_CONTROLLER]).answers[Q_CONTROLLER.id].verdict == "yes"
    assert len(fake_anthropic.requests) == 3


def test_questions_are_listed_once_each_with_short_ids(fake_anthropic):
    ask(make(fake_anthropic), NOTICE, [Q_CONTROLLER, Q_RETENTION])
    text = fake_anthropic.requests[0].body["messages"][0]["content"][1]["text"]
    listing = json.loads(text.split("<questions>")[1].split("</questions>")[0])
    assert listing == [
        {"id": "Q1", "question": Q_CONTROLLER.text},
        {"id": "Q2", "question": Q_RETENTION.text},
    ]


def test_like_statements_travel_as_hints(fake_anthropic):
    q = Question("Does the notice give a retention period?", like=("We keep data for 2 years.",))
    ask(make(fake_anthropic), NOTICE, [q])
    text = fake_anthropic.requests[0].body["messages"][0]["content"][1]["text"]
    listing = json.loads(text.split("<questions>")[1].split("</questions>")[0])
    assert listing == [{"id": "Q1", "question": q.text, "satisfied_by": list(q.like)}]


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    ("usage", "tokens", "bad"),
    [
        # issue 16: a TypeError, not retried, every answer unclear and 0 LLM calls reported
        ({"input_tokens": "lots", "output_tokens": 7}, (0, 7), "input_tokens"),
        ({"input_tokens": 12, "output_tokens": [1]}, (12, 0), "output_tokens"),
        ({"input_tokens": -5, "output_tokens": 1e300}, (0, 0), "input_tokens, output_tokens"),
        ({"input_tokens": True, "output_tokens": 3.0}, (0, 3), "input_tokens"),
        (
            {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": {"n": 1}},
            (10, 2),
            "cache_read_input_tokens",
        ),
        ("garbage", (0, 0), "input_tokens, output_tokens"),
        (None, (0, 0), "input_tokens, output_tokens"),
        (MISSING, (0, 0), "input_tokens, output_tokens"),
    ],
    ids=[
        "string",
        "list",
        "negative-and-huge",
        "bool-and-float",
        "cache-field",
        "not-an-object",
        "null",
        "missing",
    ],
)
def test_malformed_usage_is_a_counted_call_with_unknown_tokens(
    fake_anthropic, caplog, usage, tokens, bad
):
    fake_anthropic.faults.append(Fault("bad_usage", usage=usage))
    provider = make(fake_anthropic)
    with caplog.at_level("WARNING", logger="clearance.providers.anthropic"):
        result = ask(provider, NOTICE, [Q_CONTROLLER, Q_COOKIES])
    assert [a.verdict for a in result.answers.values()] == ["yes", "no"]  # answered, once
    assert len(fake_anthropic.requests) == 1
    assert result.usage.calls == 1
    assert (result.usage.input_tokens, result.usage.output_tokens) == tokens
    assert result.usage.cached_input_tokens == 0
    (record,) = [r for r in caplog.records if r.name == "clearance.providers.anthropic"]
    assert f"{bad} not a token count" in record.getMessage()
    assert "Acme" not in record.getMessage()  # field names only, never the reply's text
    assert provider.budget.tokens == sum(tokens)


def test_well_formed_usage_logs_nothing(fake_anthropic, caplog):
    with caplog.at_level("WARNING", logger="clearance.providers.anthropic"):
        result = ask(make(fake_anthropic), NOTICE, [Q_CONTROLLER])
    assert result.usage.calls == 1 and result.usage.input_tokens > 0
    assert not [r for r in caplog.records if r.name == "clearance.providers.anthropic"]


def test_malformed_usage_through_the_engine_is_counted_in_report_and_audit(
    fake_anthropic, tmp_path
):
    from engine.api import Engine
    from engine.audit import AuditLog

    gates = tmp_path / "mod"
    gates.mkdir()
    (gates / "m.gates").write_text(
        'module probe { title "Probe" version "1" }\n'
        "gate PROBE-1 controller {\n"
        '  title "Names the controller"\n  cite "GDPR Art. 13(1)(a)"\n  severity high\n'
        '  require semantic "Does the notice say who the data controller is?"\n'
        '  fix "Name the controller."\n'
        '  example pass "Acme Ltd is the data controller."\n'
        '  example fail "We sell shoes."\n}\n'
    )
    fake_anthropic.always = Fault("bad_usage", usage={"input_tokens": "n/a", "output_tokens": None})
    with AuditLog(tmp_path / "audit.db") as log:
        engine = Engine(
            gate_paths=[gates],
            include_builtin=False,
            provider=make(fake_anthropic),
            cache=None,
            audit=log,
        )
        report = engine.validate(Document(NOTICE, media_type="text/markdown", name="n.md"))
        gate = next(g for g in report.gates if g.gate == "PROBE-1")
        assert gate.status.value == "pass"
        assert report.llm.calls == 1 and report.llm.input_tokens == 0
        row = log.recent(1)[0]
        assert (row["llm_calls"], row["llm_input_tokens"]) == (1, 0)
        assert log.verify().ok
