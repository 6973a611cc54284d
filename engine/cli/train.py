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
        str | None, typer.Option("--module", "-m", help="only this module's heads (default: the evaluation file's)")
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
    embeddings, with 5-fold cross-validation by document, and write them with their metrics.
    Same corpus, same seed: the same heads. Exit 2 when the corpus is missing."""
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
    rows = []
    for t in targets:
        head, cv = H.train_target(ts, t, provider)
        H.write_head(head, directory)
        m = cv.metrics()
        rows.append({"gate": t.gate, "requirements": t.requirements, **m})
        if fmt == "text":
            a, b = m["at_threshold"], m["with_band"]
            print(
                f"{t.gate:24} cv BA {a['balanced_accuracy']:.3f} P {a['precision'] or 0:.3f} "
                f"R {a['recall'] or 0:.3f} | with unsure band: BA {b['balanced_accuracy']:.3f}, "
                f"{b['unsure']} unsure",
                flush=True,
            )
    seconds = time.perf_counter() - started
    if fmt == "json":
        sys.stdout.write(json.dumps({"heads": rows, "seconds": round(seconds, 1),
                                     "training_set_sha256": ts.sha256}, indent=2) + "\n")
    else:
        print(f"wrote {len(targets)} head(s) to {directory} in {seconds:.0f} s "
              f"(training set {ts.sha256[:12]}, {len(ts.names)} documents)")
