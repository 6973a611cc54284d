"""`clearance train [--module M]`: rebuild the offline provider's trained heads from GDPR-T-200."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from engine.cli._common import make_engine
from engine.cli.app import app
from engine.errors import UserError

DEFAULT_EVAL = Path("data/eval/gdpr-t200.toml")


@app.command()
def train(
    module: Annotated[
        str | None,
        typer.Option(
            "--module", "-m", help="only this module's heads (default: the evaluation file's)"
        ),
    ] = None,
    eval_file: Annotated[
        Path, typer.Option("--eval", help="evaluation file naming the corpus and gate mapping")
    ] = DEFAULT_EVAL,
    out: Annotated[
        Path | None, typer.Option("--out", help="where to write the heads (default: data/heads)")
    ] = None,
    gate: Annotated[
        list[str] | None, typer.Option("--gate", help="only these gates (repeatable)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """Train one calibrated logistic-regression head per semantic question over passage
    embeddings, with 5-fold cross-validation by document; write those that beat similarity on
    the same folds, with their metrics. Same corpus, same seed: the same heads. Exit 2 when the
    corpus is missing."""

    from engine.evaluation.gates import REPO_ROOT, load_t200_config
    from engine.providers import heads as H
    from engine.providers.offline import OfflineProvider, load_embedder

    if fmt not in ("text", "json"):
        raise UserError(f"unknown format '{fmt}' (expected one of: text, json)")
    path = eval_file if eval_file.is_absolute() or eval_file.exists() else REPO_ROOT / eval_file
    config = load_t200_config(path)
    if module is not None and module != config.module:
        raise UserError(
            f"no training data for module '{module}': {path} trains module '{config.module}'"
        )
    if not config.corpus.is_dir():
        raise UserError(
            f"the training corpus is not at {config.corpus}: GDPR-T-200 lives outside the "
            "repository (../shared/corpus/gdpr-t200 beside the clone) and is never copied into it"
        )
    embedder, why = load_embedder()
    if embedder is None:
        raise UserError(f"cannot train: {why}")
    engine = make_engine(None, cache=None, audit=None)
    targets = H.targets_for(engine, config)
    if gate:
        unknown = sorted(set(gate) - {t.gate for t in targets})
        if unknown:
            raise UserError(f"no semantic gate to train: {', '.join(unknown)}")
        targets = [t for t in targets if t.gate in gate]
    H.single_thread_blas()
    provider = OfflineProvider(heads={})
    started = time.perf_counter()
    interactive = fmt == "text" and sys.stderr.isatty()

    def progress(name: str) -> None:
        if interactive:
            sys.stderr.write(f"\r  embedding {name[:60]:60}")
            sys.stderr.flush()

    ts = H.load_training_set(config, provider, progress)
    if interactive:
        sys.stderr.write("\r" + " " * 72 + "\r")
    directory = out or H.HEADS_DIR
    cvs = [H.cross_validate(ts, t, provider) for t in targets]
    band = H.pooled_band(cvs)
    rows = []
    written = 0
    for cv in cvs:
        t = cv.target
        m = cv.metrics(band)
        rows.append({"gate": t.gate, "requirements": t.requirements, **m})
        stale = directory / f"{t.gate}.json"
        if cv.prefers_head(band):
            H.write_head(H.final_head(ts, cv, provider, band), directory)
            written += 1
        elif stale.exists():
            stale.unlink()  # similarity judges this question better: no head ships for it
        if fmt == "text":
            a, b = m["at_threshold"], m["with_band"]
            sim, sb = m["similarity_at_threshold"], m["similarity_with_band"]
            print(
                f"{t.gate:24} head BA {a['balanced_accuracy']:.3f} (banded {b['balanced_accuracy']:.3f},"
                f" {b['unsure']:3} unsure) | similarity BA {sim['balanced_accuracy']:.3f} (banded "
                f"{sb['balanced_accuracy']:.3f}, {sb['unsure']:3} unsure) -> {m['prefer']}",
                flush=True,
            )
    seconds = time.perf_counter() - started
    if fmt == "json":
        sys.stdout.write(
            json.dumps(
                {
                    "heads": rows,
                    "band": {"below": band[0], "above": band[1]},
                    "seconds": round(seconds, 1),
                    "training_set_sha256": ts.sha256,
                },
                indent=2,
            )
            + "\n"
        )
    else:
        print(
            f"unsure band (pooled out-of-fold): {band[0]:.2f} below / {band[1]:.2f} above "
            "each head's threshold"
        )
        print(
            f"wrote {written} head(s) to {directory} ({len(targets) - written} question(s) "
            f"stay with similarity) in {seconds:.0f} s (training set {ts.sha256[:12]}, "
            f"{len(ts.names)} documents, 5-fold CV by document)"
        )
