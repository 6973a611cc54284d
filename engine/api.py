"""The one engine API: load rulesets, validate documents, lint gate files and run gate examples.
The CLI, the HTTP server and the tests are thin shells over :class:`Engine`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from dsl.ast import DOC_TYPES, OnIndeterminate, Severity
from dsl.compile import CheckNode, Example, Gate, Module
from dsl.diagnostics import Code, Diagnostic, did_you_mean
from engine import budget
from engine.config import Config, UntypedPolicy, module_applies, module_jurisdictions
from engine.doctype import TypeGuess, explain_doc_type
from engine.document import Document
from engine.errors import UserError
from engine.evaluate import DocContext, GateOutcome, Hit, cap_hits, evaluate, evaluate_gate
from engine.hooks import AuditSink, ResultCache, WaiverSource
from engine.ingest import MAX_BYTES, document_from_text, load_document
from engine.loader import Registry, Ruleset, library_search_path
from engine.providers.base import Answer, NullProvider, Provider, Usage
from engine.report import (
    CheckTiming,
    DocumentInfo,
    GateResult,
    LLMUsage,
    ModuleChoice,
    ModuleRef,
    Report,
    SemanticAnswer,
    Span,
    Status,
    Summary,
    Waiver,
)
from gates import scan
from gates.base import Question

try:
    TOOL_VERSION = metadata.version("clearance")
except metadata.PackageNotFoundError:  # running from a source tree without install
    TOOL_VERSION = "0.0.0+src"

#: how long one validation may wait for semantic answers before they count as unclear.
DEFAULT_SEMANTIC_TIMEOUT = float(os.environ.get("CLEARANCE_SEMANTIC_TIMEOUT", "120"))
#: a yes or no below this confidence is a coin flip: it counts as unclear (INDETERMINATE, and
#: the gate's on_indeterminate decides). Score-based answers carry their own band instead.
MIN_CONFIDENCE = float(os.environ.get("CLEARANCE_MIN_CONFIDENCE", "0.6"))
_AUTO: Any = object()


def _auto_provider() -> Provider:
    try:
        from engine.providers.registry import make_provider
    except ImportError:
        return NullProvider()
    return make_provider()


def decided(report: Report) -> bool:
    """Whether a report may be cached: no INDETERMINATE gate and no unclear semantic answer."""
    from engine.cache import is_decided  # lazily, as _auto_cache: diskcache costs to import

    return is_decided(report)


def _auto_cache() -> ResultCache | None:
    try:
        from engine.cache import open_cache
    except ImportError:
        return None
    return open_cache()


def _auto_audit() -> AuditSink | None:
    try:
        from engine.audit import open_audit
    except ImportError:
        return None
    return open_audit()


def _waivers_beside(audit: AuditSink | None) -> WaiverSource | None:
    """By default waivers are read from the database the audit log writes to (none without
    an audit log, as before waivers had a store of their own)."""
    if audit is None:
        return None
    from engine.audit.store import AuditStore

    if not isinstance(audit, AuditStore):
        return None
    from engine.waivers import WaiverStore

    return WaiverStore(audit.db_)


@dataclass
class _Run:
    """Everything one validation accumulates between the cheap phase and the report."""

    doc: Document
    ruleset: Ruleset
    doc_type: str | None
    doc_type_source: str
    gates: list[Gate]  # applicable by document type
    skipped_by_type: list[Gate]
    ctx: DocContext
    outcomes: dict[str, GateOutcome] = field(default_factory=dict)
    questions: dict[str, Question] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    asked: set[str] = field(default_factory=set)
    cached: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    cache_key: str | None = None
    t0: float = field(default_factory=time.perf_counter)
    guess: TypeGuess | None = None
    type_glob: str | None = None
    jurisdictions: list[str] = field(default_factory=list)
    selection: list[ModuleChoice] = field(default_factory=list)
    untyped: UntypedPolicy | None = None  # set when the type is unknown and gates need one


@dataclass
class ExampleResult:
    gate: Gate
    example: Example
    ok: bool
    status: Status
    problem: str | None = None

    @property
    def id(self) -> str:
        return f"{self.gate.code}::example[{self.example.index}]"


class Engine:
    def __init__(
        self,
        *,
        gate_paths: Iterable[str | Path] | None = None,
        include_builtin: bool = True,
        provider: Provider | None = None,
        cache: ResultCache | None = _AUTO,
        audit: AuditSink | None = _AUTO,
        waivers: WaiverSource | None = _AUTO,
        fail_on: Severity | str = Severity.low,
        principal: str | None = None,
        max_bytes: int = MAX_BYTES,
        semantic_timeout: float = DEFAULT_SEMANTIC_TIMEOUT,
        config: Config | None = None,
        lib_paths: Iterable[str | Path] | None = None,
    ) -> None:
        self.config = config or Config()
        self.registry = Registry(
            [Path(p) for p in gate_paths or []],
            include_builtin,
            library_search_path([Path(p) for p in lib_paths or []], self.config.lib_path),
        )
        self._provider = provider
        self.cache = _auto_cache() if cache is _AUTO else cache
        self.audit = _auto_audit() if audit is _AUTO else audit
        self.waivers = _waivers_beside(self.audit) if waivers is _AUTO else waivers
        self.fail_on = Severity(fail_on)
        self.principal = principal or os.environ.get("CLEARANCE_PRINCIPAL") or _whoami()
        self.max_bytes = max_bytes
        self.semantic_timeout = semantic_timeout
        self._cache_warning: str | None = None
        self.min_confidence = MIN_CONFIDENCE

    @property
    def provider(self) -> Provider:
        if self._provider is None:  # built lazily: the offline model costs time to load
            self._provider = _auto_provider()
        return self._provider

    # --- rulesets -----------------------------------------------------------------------
    def ruleset(self, modules: list[str] | None = None) -> Ruleset:
        return self.registry.ruleset(modules)

    def list_modules(self) -> list[Module]:
        return self.ruleset(None).modules

    def gate(self, code: str) -> Gate:
        rs = self.ruleset(None)
        for g in rs.gates:
            if g.code == code:
                return g
        raise UserError(f"unknown gate '{code}'.{did_you_mean(code, [g.code for g in rs.gates])}")

    # --- validation ---------------------------------------------------------------------
    def load(self, path: str | Path) -> Document:
        """Read a document; within a validation's deadline (engine.budget), reading obeys it."""
        d = budget.current()
        return load_document(path, max_bytes=self.max_bytes, deadline=d.at if d else None)

    def validate(
        self,
        doc: Document | str | Path,
        *,
        modules: list[str] | None = None,
        doc_type: str | None = None,
        profile: bool = False,
        principal: str | None = None,
        jurisdictions: list[str] | None = None,
        untyped: UntypedPolicy | str | None = None,
    ) -> Report:
        """Validate one document (synchronously). Documents whose gates need no semantic answer
        never touch the event loop. ``modules``, ``jurisdictions`` and ``untyped`` default to
        the engine's settings (``clearance.toml``)."""
        run, report = self._prepare(doc, modules, doc_type, profile, jurisdictions, untyped)
        if report is None:
            if run.questions and not self._ask_now(run):
                import asyncio  # lazily: a document every check decides never needs a loop

                asyncio.run(self._ask(run))
            report = self._finish(run, profile)
        return self._record(report, run, principal)

    async def validate_async(
        self,
        doc: Document | str | Path,
        *,
        modules: list[str] | None = None,
        doc_type: str | None = None,
        profile: bool = False,
        principal: str | None = None,
        jurisdictions: list[str] | None = None,
        untyped: UntypedPolicy | str | None = None,
    ) -> Report:
        run, report = self._prepare(doc, modules, doc_type, profile, jurisdictions, untyped)
        if report is None:
            if run.questions and not self._ask_now(run):
                await self._ask(run)
            report = self._finish(run, profile)
        import asyncio  # already loaded: this is a coroutine

        return await asyncio.to_thread(self._record, report, run, principal)

    def _coerce(self, doc: Document | str | Path) -> Document:
        if isinstance(doc, Document):
            return doc
        return self.load(doc)

    def select_modules(
        self, modules: list[str] | None, jurisdictions: list[str]
    ) -> tuple[list[str] | None, list[ModuleChoice]]:
        """The modules to apply: those named (always applied), else every known module whose
        declared jurisdictions meet the document's; with the reason for each."""
        named = modules if modules is not None else self.config.modules
        if named is None and not jurisdictions:
            return None, []  # every module, nothing to explain beyond the module list
        choices: list[ModuleChoice] = []
        for m in self.list_modules():
            declared = module_jurisdictions(m.jurisdiction)
            if named is not None:
                ok = m.id in named
                why = "named in the request or settings" if ok else "not named"
            else:
                ok, why = module_applies(declared, jurisdictions)
            choices.append(ModuleChoice(id=m.id, applied=ok, jurisdictions=declared, why=why))
        # named modules are taken as named: unknown names fail in ruleset() with a did-you-mean
        chosen = list(named) if named is not None else [c.id for c in choices if c.applied]
        return chosen, choices

    def _prepare(
        self,
        doc_in: Document | str | Path,
        modules: list[str] | None,
        doc_type: str | None,
        profile: bool,
        jurisdictions: list[str] | None = None,
        untyped: UntypedPolicy | str | None = None,
    ) -> tuple[_Run, Report | None]:
        t0 = time.perf_counter()
        doc = self._coerce(doc_in)
        wanted = (jurisdictions if jurisdictions is not None else self.config.jurisdictions) or []
        chosen, selection = self.select_modules(modules, wanted)
        if chosen == []:
            raise UserError(
                f"no module applies to jurisdiction {', '.join(wanted)} (modules: "
                + ", ".join(f"{c.id} [{', '.join(c.jurisdictions) or 'any'}]" for c in selection)
                + ")"
            )
        ruleset = self.ruleset(chosen)
        if doc_type is not None and doc_type not in DOC_TYPES:
            raise UserError(
                f"unknown document type '{doc_type}' (expected one of: "
                f"{', '.join(DOC_TYPES)}).{did_you_mean(doc_type, DOC_TYPES)}"
            )
        source, guess, glob = "given", None, None
        if doc_type is None and (hit := self.config.doc_type_for(doc.path)) is not None:
            (doc_type, glob), source = hit, "config"
        if doc_type is None:
            guess = explain_doc_type(doc.text, doc.name)
            doc_type = guess.doc_type
            source = "inferred" if doc_type else "none"
        applicable, skipped = [], []
        for g in ruleset.gates:
            if g.applies is None or (doc_type is not None and doc_type in g.applies):
                applicable.append(g)
            else:
                skipped.append(g)
        run = _Run(
            doc,
            ruleset,
            doc_type,
            source,
            applicable,
            skipped,
            DocContext(doc, profile),
            t0=t0,
            guess=guess,
            type_glob=glob,
            jurisdictions=list(wanted),
            selection=selection,
        )
        if source == "none" and skipped:
            run.untyped = UntypedPolicy(untyped) if untyped is not None else self.config.untyped
            likely = ", ".join(guess.likely()) if guess and guess.scores else "no type had a signal"
            run.warnings.append(
                f"document type not given and not recognised (likely: {likely}): "
                f"{len(skipped)} gates that need a type were not applied; policy "
                f"'{run.untyped.value}'{_UNTYPED_EFFECT[run.untyped]}. Set the type with "
                "--doc-type TYPE, a [doc-types] glob in clearance.toml, or the request's "
                "doc_type field"
            )

        key = self._report_key(run) if self.cache is not None and not profile else None
        if key is not None:
            cached = self._cache_call("get_report", key)
            if cached is not None:
                # copy only what is changed below (waivers copy the gates they change): a deep
                # copy of every gate and span was 6 of the 7 ms of a hit on a 10 KB document
                report = cached.model_copy(
                    update={
                        "document": cached.document.model_copy(),
                        "warnings": list(cached.warnings),
                    }
                )
                report.cache_hit = True
                report.ms = round((time.perf_counter() - t0) * 1000, 3)
                report.document.path = doc.path
                report.document.name = doc.name
                return run, self._apply_waivers(report)
        run.cache_key = key

        if applicable:
            run.ctx.prefilter(_scanner(ruleset))
        for g in applicable:
            out = evaluate_gate(g, run.ctx)
            run.outcomes[g.code] = out
            for qid in out.pending:
                run.questions[qid] = _question(g, qid)
        # every check has run: the questions may wait seconds for a model, without the
        # document's bytes and detector results
        run.ctx.release()
        return run, None

    def _report_key(self, run: _Run) -> str:
        blob = json.dumps(
            [
                run.doc.sha256,
                run.ruleset.hash,
                run.doc_type,
                run.doc_type_source,
                self.fail_on.value,
                self.provider.identity(),
                TOOL_VERSION,
                run.jurisdictions,
                run.untyped and run.untyped.value,
                run.type_glob,
                self.min_confidence,
            ]
        )
        return "report:" + hashlib.sha256(blob.encode()).hexdigest()

    def _answer_key(self, qid: str, doc: Document) -> str:
        blob = json.dumps([qid, doc.sha256, self.provider.identity()])
        return "answer:" + hashlib.sha256(blob.encode()).hexdigest()

    def _cache_call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self.cache, method)(*args)
        except Exception as exc:  # a cache must never fail a validation
            self._cache_warning = f"cache disabled: {type(exc).__name__}: {exc}"
            self.cache = None
            return None

    def _unanswered(self, run: _Run) -> list[Question]:
        """The pending questions of the document that the cache cannot answer."""
        todo: list[Question] = []
        for qid, q in run.questions.items():
            hit = (
                self._cache_call("get_answer", self._answer_key(qid, run.doc))
                if self.cache
                else None
            )
            if hit is not None:
                run.ctx.answers[qid] = self._sure(hit)
                run.cached.add(qid)
            else:
                todo.append(q)
        return todo

    def _ask_now(self, run: _Run) -> bool:
        """Answer without an event loop when the provider can (see ``Provider.answer_now``)."""
        todo = self._unanswered(run)
        result = self.provider.answer_now(run.doc, todo) if todo else None
        if todo and result is None:
            return False  # _ask asks what the cache did not answer (lookups not repeated)
        if result is not None:
            self._take(run, todo, result.answers, result.usage)
        self._reevaluate(run)
        return True

    async def _ask(self, run: _Run) -> None:
        """Ask the provider every pending question of the document, in one call."""
        todo = [q for qid, q in run.questions.items() if qid not in run.ctx.answers]
        if todo:
            provider = self.provider
            start = getattr(provider, "start_validation", None)
            if callable(start):  # a fresh call/token budget for each validation
                start()
            import asyncio  # already loaded: this is a coroutine

            try:
                # bounded by the validation's deadline too (engine.budget), when it has one
                result = await asyncio.wait_for(
                    provider.answer(run.doc, todo), timeout=budget.bounded(self.semantic_timeout)
                )
                answers, usage = result.answers, result.usage
            except TimeoutError:
                answers, usage = {}, Usage()
                run.warnings.append(
                    f"semantic provider gave no answer within {self.semantic_timeout:g} s"
                )
            except Exception as exc:  # a provider bug must not lose the validation
                answers, usage = {}, Usage()
                run.warnings.append(f"semantic provider failed: {type(exc).__name__}")
            self._take(run, todo, answers, usage)
        self._reevaluate(run)

    def _take(
        self, run: _Run, todo: list[Question], answers: dict[str, Answer], usage: Usage
    ) -> None:
        run.usage.add(usage)
        for q in todo:
            ans = answers.get(q.id) or Answer("unclear", 0.0, "the provider gave no answer")
            run.ctx.answers[q.id] = self._sure(ans)
            run.asked.add(q.id)
            if ans.verdict != "unclear" and self.cache is not None:
                # the entry names the provider and model that decided it (engine.cache)
                self._cache_call(
                    "put_answer", self._answer_key(q.id, run.doc), ans, self.provider.identity()
                )

    def _sure(self, ans: Answer) -> Answer:
        """An answer as the gates may use it: a yes or no given with less confidence than
        ``min_confidence`` (and no score band of its own) is unclear, never a confident no."""
        if (
            ans.verdict == "unclear"
            or ans.score is not None
            or ans.confidence >= self.min_confidence
        ):
            return ans
        return dataclasses.replace(
            ans,
            verdict="unclear",
            evidence=(),
            rationale=f"unsure (would be {ans.verdict} at confidence {ans.confidence:.2f}, below "
            f"{self.min_confidence:.2f}): {ans.rationale}",
        )

    def _reevaluate(self, run: _Run) -> None:
        for g in run.gates:
            if run.outcomes[g.code].pending:
                run.outcomes[g.code] = evaluate_gate(g, run.ctx)

    def _finish(self, run: _Run, profile: bool) -> Report:
        doc = run.doc
        # spans per gate and per report are capped (engine.budget.span_limits)
        capped = cap_hits([run.outcomes[g.code] for g in run.gates])
        if capped:
            run.warnings.append(capped)
        results: list[GateResult] = []
        for g in run.gates:
            results.append(self._gate_result(g, run.outcomes[g.code], run, profile))
        for g in run.skipped_by_type:
            results.append(
                self._result(
                    g,
                    Status.not_applicable,
                    False,
                    f"not applied: document type is {run.doc_type or 'unknown'}",
                    [],
                    [],
                )
            )
        all_q = {n.check.question.id for g in run.gates for n in g.semantic_nodes()}
        llm = LLMUsage(
            calls=run.usage.calls,
            input_tokens=run.usage.input_tokens,
            output_tokens=run.usage.output_tokens,
            cached_input_tokens=run.usage.cached_input_tokens,
            latency_ms=round(run.usage.latency_ms, 3),
            questions_asked=len(run.asked),
            questions_cached=len(run.cached),
            questions_skipped=len(all_q - set(run.questions)),
        )
        lines = doc.text.count("\n") + 1
        report = Report(
            tool_version=TOOL_VERSION,
            document=DocumentInfo(
                name=doc.name,
                path=doc.path,
                sha256=doc.sha256,
                size=doc.size,
                media_type=doc.media_type,
                doc_type=run.doc_type,
                doc_type_source=run.doc_type_source,  # type: ignore[arg-type]
                chars=len(doc.text),
                lines=lines,
                sections=len(doc.sections),
                **_type_explanation(run),
            ),
            verdict="pass",
            exit_code=0,
            modules=[ModuleRef(id=m.id, version=m.version) for m in run.ruleset.modules],
            jurisdictions=run.jurisdictions,
            module_selection=run.selection,
            untyped_policy=run.untyped.value if run.untyped else None,
            config=self.config.path.name if self.config.path else None,
            ruleset=run.ruleset.hash,
            gates=results,
            summary=_summarise(results),
            llm=llm,
            ms=0.0,
            warnings=list(run.warnings),
        )
        if self._cache_warning:
            report.warnings.append(self._cache_warning)
        # DiskCache degrades silently to no cache and keeps its reason in `.warnings`
        report.warnings.extend(
            w for w in getattr(self.cache, "warnings", []) or [] if w not in report.warnings
        )
        _settle(report)
        if run.cache_key is not None and self.cache is not None and decided(report):
            # never cache what was not decided: an outage must not outlive itself
            self._cache_call("put_report", run.cache_key, report)
        report.ms = round((time.perf_counter() - run.t0) * 1000, 3)
        return self._apply_waivers(report)

    def _gate_result(self, g: Gate, out: GateOutcome, run: _Run, profile: bool) -> GateResult:
        if not out.applicable:
            res = self._result(
                g,
                Status.not_applicable,
                False,
                "not applicable: its `when` condition is false for this document",
                [],
                [],
            )
        else:
            semantic = self._semantic_answers(g, run)
            if out.v is True:
                res = self._result(g, Status.pass_, False, g.title, [], semantic)
            elif out.v is False:
                # the finding states the failure: the gate's own message, or its title (which
                # says what a good document does) marked as not met
                res = self._result(
                    g,
                    Status.fail,
                    g.severity.rank >= self.fail_on.rank,
                    g.message or f"Not met: {g.title}",
                    self._spans(out.hits, run.doc),
                    semantic,
                )
                res.spans_omitted = out.hits_omitted
            else:
                reasons = sorted({a.rationale for a in semantic if a.verdict == "unclear"})
                why = "; ".join(reasons) or "a check could not be decided"
                blocking = (
                    g.on_indeterminate == OnIndeterminate.block
                    and g.severity.rank >= self.fail_on.rank
                )
                res = self._result(
                    g,
                    Status.indeterminate,
                    blocking,
                    f"Could not be decided: {g.title} -- {why}",
                    [],
                    semantic,
                )
        if profile:
            res.ms = round(out.ms, 4)
            seen = []
            for root in (*g.whens, *g.requires, *g.forbids):
                for n in root.walk():
                    if isinstance(n, CheckNode) and n.check.key in run.ctx.timings:
                        label, kind, ms = run.ctx.timings[n.check.key]
                        seen.append(CheckTiming(check=label, kind=kind, ms=round(ms, 4)))
            res.checks = seen
        return res

    def _result(
        self,
        g: Gate,
        status: Status,
        blocking: bool,
        message: str,
        spans: list[Span],
        semantic: list[SemanticAnswer],
    ) -> GateResult:
        return GateResult(
            gate=g.code,
            name=g.name,
            module=g.module,
            version=g.version,
            title=g.title,
            status=status,
            blocking=blocking,
            severity=g.severity,
            cite="; ".join(g.cite),
            message=message,
            fix=g.fix,
            on_indeterminate=g.on_indeterminate,
            spans=spans,
            semantic=semantic,
        )

    def _spans(self, hits: list[Hit], doc: Document) -> list[Span]:
        out = []
        for h in hits:
            line, col = doc.line_col(h.start)
            out.append(
                Span(
                    start=h.start,
                    end=h.end,
                    line=line,
                    col=col,
                    page=doc.page(h.start),
                    check=h.label,
                    kind=h.kind,
                    detail=h.detail,
                )
            )
        return out

    def _semantic_answers(self, g: Gate, run: _Run) -> list[SemanticAnswer]:
        out = []
        p = self.provider if run.asked or run.cached else None
        for n in g.semantic_nodes():
            q = n.check.question
            ans = run.ctx.answers.get(q.id)
            if ans is None:
                continue
            out.append(
                SemanticAnswer(
                    question=q.text,
                    verdict=ans.verdict,
                    confidence=round(ans.confidence, 4),
                    rationale=ans.rationale,
                    provider=p.name if p else "",
                    model=p.model if p else "",
                    prompt_version=p.prompt_version if p else "",
                    evidence=self._spans(
                        [Hit(e.start, e.end, n.label, "semantic") for e in ans.evidence], run.doc
                    ),
                    cached=q.id in run.cached,
                    score=ans.score,
                    decided_above=ans.decided_above,
                    decided_below=ans.decided_below,
                )
            )
        return out

    def _apply_waivers(self, report: Report) -> Report:
        if self.waivers is None:
            return report
        try:
            waivers = self.waivers.waivers_for(report.document.sha256)
        except Exception as exc:
            report.warnings.append(f"could not read waivers: {exc}")
            return report
        if not waivers:
            return report
        report.gates = [g.model_copy() for g in report.gates]  # a cached report shares them
        for g in report.gates:
            w = waivers.get(g.gate)
            if w is not None and g.status in (Status.fail, Status.indeterminate):
                g.status = Status.waived
                g.blocking = False
                g.waiver = w if isinstance(w, Waiver) else Waiver.model_validate(w)
        report.summary = _summarise(report.gates)
        _settle(report)
        return report

    def _record(self, report: Report, run: _Run, principal: str | None) -> Report:
        if self.audit is not None:
            known = run.ruleset.sources
            sources = [known[r.gate] for r in report.gates if r.gate in known]
            self.audit.record(report, principal=principal or self.principal, gates=sources)
        return report

    # --- authoring ----------------------------------------------------------------------
    def lint(
        self, modules: list[str] | None = None, *, run_examples: bool = True
    ) -> tuple[list[Diagnostic], dict[str, str]]:
        """Every diagnostic of the modules (all when None), including examples that do not
        behave as declared (DSL123). Returns diagnostics and file sources for rendering."""
        diags: list[Diagnostic] = []
        sources: dict[str, str] = {}
        ids = modules or self.registry.module_ids()
        compiled = []
        for mid in ids:
            module, ds, texts = self.registry.compile_partial(mid)
            diags.extend(ds)
            sources.update(texts)
            if module is not None:
                compiled.append(module)
        if run_examples:
            for res in self.run_examples(m for m in compiled):
                if not res.ok:
                    ex = res.example
                    diags.append(
                        Diagnostic(
                            Code.EXAMPLE_MISBEHAVES,
                            f"example {ex.index} of {res.gate.code} "
                            f"expects {ex.expect} but {res.problem}",
                            ex.file,
                            ex.loc,
                            help="fix the gate or the example",
                        )
                    )
        return diags, sources

    def run_examples(self, modules: Iterable[Module] | None = None) -> list[ExampleResult]:
        mods = list(modules) if modules is not None else self.list_modules()
        out = []
        for m in mods:
            for g in m.gates:
                for ex in g.examples:
                    out.append(self.check_example(g, ex))
        return out

    def check_example(self, gate: Gate, ex: Example) -> ExampleResult:
        doc = document_from_text(ex.text, name=f"{gate.code}::example[{ex.index}]")
        ctx = DocContext(doc)
        out = evaluate_gate(gate, ctx)
        if out.pending:
            questions = [_question(gate, qid) for qid in out.pending]
            import asyncio  # lazily, as in validate()

            try:
                result = asyncio.run(
                    asyncio.wait_for(
                        self.provider.answer(doc, questions), timeout=self.semantic_timeout
                    )
                )
                ctx.answers.update({k: self._sure(a) for k, a in result.answers.items()})
            except UserError:
                raise  # the operator's mistake (an unknown provider, say): said, not hidden
            except Exception:  # noqa: S110 - unanswered questions stay unclear below
                pass
            for q in questions:
                ctx.answers.setdefault(q.id, Answer("unclear", 0.0, "no answer"))
            out = evaluate_gate(gate, ctx)
        if not out.applicable:
            status = Status.not_applicable
        else:
            status = {True: Status.pass_, False: Status.fail, None: Status.indeterminate}[out.v]
        if ex.expect == "pass":
            ok = status in (Status.pass_, Status.not_applicable)
        else:
            ok = status == Status.fail
        problem = None if ok else f"the gate's status is {status.value}"
        if ok and ex.expecting:
            # a gate's outcome keeps only the spans of what it found wrong (forbid); what made
            # a passing example pass (require, when) is asked for here, spans and all
            hits = list(out.hits)
            for node in (gate.when_node, gate.require_node, gate.forbid_node):
                if node is not None:
                    hits.extend(evaluate(node, ctx, None, True).hits)
            fired = (
                {h.kind for h in hits}
                | {h.label for h in hits}
                | {h.entity for h in hits if h.entity}
            )
            missing = [n for n in ex.expecting if n not in fired]
            if missing:
                ok = False
                problem = (
                    f"{', '.join(missing)} did not fire (fired: "
                    f"{', '.join(sorted(fired)) or 'nothing'})"
                )
        return ExampleResult(gate, ex, ok, status, problem)


def _scanner(ruleset: Ruleset) -> scan.Scanner:
    """The multi-pattern prefilter of every check of the ruleset, built once per ruleset hash
    (a gate's version hashes its checks, so equal hashes mean equal checks)."""
    return scan.scanner_for(ruleset.hash, lambda: ruleset.checks)


def _question(g: Gate, qid: str) -> Question:
    for n in g.semantic_nodes():
        if n.check.question.id == qid:
            return n.check.question
    raise KeyError(qid)  # pragma: no cover - pending ids always come from the gate


def _summarise(results: list[GateResult]) -> Summary:
    def count(s: Status) -> int:
        return sum(1 for r in results if r.status == s)

    by_sev: dict[str, int] = {s.value: 0 for s in Severity}
    for r in results:
        if r.status == Status.fail:
            by_sev[r.severity.value] += 1
    return Summary(
        gates=len(results),
        passed=count(Status.pass_),
        failed=count(Status.fail),
        indeterminate=count(Status.indeterminate),
        not_applicable=count(Status.not_applicable),
        waived=count(Status.waived),
        blocking=sum(1 for r in results if r.blocking),
        by_severity=by_sev,
    )


_UNTYPED_EFFECT = {
    UntypedPolicy.review: " (never passes: verdict review, exit 3, for a person to set the type)",
    UntypedPolicy.fail: " (blocks: verdict fail, exit 1)",
    UntypedPolicy.universal: " (only the gates that need no type decide; chosen in the settings)",
}


def _type_explanation(run: _Run) -> dict[str, Any]:
    if run.type_glob is not None:
        return {"doc_type_signals": [f"settings glob {run.type_glob}"]}
    g = run.guess
    if g is None:
        return {}
    lead = g.doc_type or (g.scores[0][0] if g.scores else None)
    return {
        "doc_type_confidence": g.confidence,
        "doc_type_likely": g.likely(),
        "doc_type_signals": g.signals.get(lead, []) if lead else [],
    }


def _settle(report: Report) -> None:
    """Verdict and exit code from the gate results: a blocking failure (1) outranks a blocking
    undecided check (3). A document whose type could not be told never passes silently: under
    the default policy it goes to review (3); under ``fail`` it blocks (1). A gate left
    undecided under ``on_indeterminate review`` blocks nothing (0) but makes the verdict
    ``review``: a verdict is never "pass" while something waits for a person."""
    blocked = any(g.blocking and g.status == Status.fail for g in report.gates)
    if blocked or report.untyped_policy == UntypedPolicy.fail.value:
        report.verdict, report.exit_code = "fail", 1
    elif any(g.blocking and g.status == Status.indeterminate for g in report.gates):
        report.verdict, report.exit_code = "indeterminate", 3
    elif report.untyped_policy == UntypedPolicy.review.value:
        report.verdict, report.exit_code = "review", 3
    elif any(
        g.status == Status.indeterminate and g.on_indeterminate == OnIndeterminate.review
        for g in report.gates
    ):
        # nothing blocks (exit 0), but an undecided gate waits for a person: never "pass"
        report.verdict, report.exit_code = "review", 0
    else:
        report.verdict, report.exit_code = "pass", 0


def _whoami() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no user database in some containers
        return "unknown"
