"""Command line: ``python -m mlcore train|predict|evaluate`` (see ``--help`` of each).

The process boundary: the only place that reads the ``TAGSTUDIO_*`` variables (see
:func:`runtime_from_env`) and passes them down as :class:`~mlcore.settings.RuntimeSettings`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlcore.records import RecordError, read_jsonl, write_jsonl
from mlcore.settings import RuntimeSettings
from mlcore.types import ProductRecord

__all__ = ["main", "runtime_from_env"]


def runtime_from_env(environ: Mapping[str, str], *, cache_dir: str | Path | None = None) -> RuntimeSettings:
    """Runtime settings of a command-line run: ``cache_dir`` (the --cache-dir flag) or
    ``TAGSTUDIO_CACHE_DIR``, ``TAGSTUDIO_BASE_MODEL``, ``TAGSTUDIO_DEVICE``, ``TAGSTUDIO_NUM_THREADS``;
    checkpoints load from local files unless ``HF_HUB_OFFLINE`` is set to 0/false."""
    threads = environ.get("TAGSTUDIO_NUM_THREADS")
    try:
        num_threads = max(1, int(threads)) if threads else None
    except ValueError:
        raise ValueError(f"TAGSTUDIO_NUM_THREADS must be an integer, got {threads!r}") from None
    return RuntimeSettings(
        cache_dir=cache_dir or environ.get("TAGSTUDIO_CACHE_DIR") or None,
        base_model=environ.get("TAGSTUDIO_BASE_MODEL") or None,
        device=environ.get("TAGSTUDIO_DEVICE") or None,
        num_threads=num_threads,
        local_files_only=environ.get("HF_HUB_OFFLINE", "1").strip().lower()
        not in {"0", "false", "no", "off"},
    )


class TqdmProgress:
    """progress(phase, done, total) -> one tqdm bar per phase on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.phase: str | None = None
        self.bar: Any = None

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(total=total, desc=phase, file=sys.stderr, leave=False, dynamic_ncols=True)
        if self.bar is not None:
            if total is not None and self.bar.total != total:
                self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _batches(records: Iterator[ProductRecord], size: int) -> Iterator[list[ProductRecord]]:
    batch: list[ProductRecord] = []
    for r in records:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _cmd_train(args: argparse.Namespace) -> int:
    from mlcore.training import TrainConfig, train

    config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    if args.tagger:
        config = TrainConfig.from_dict({**config.__dict__, "tagger": args.tagger})
    records = list(read_jsonl(args.train))
    progress = TqdmProgress(not args.quiet)
    try:
        result = train(records, args.out, config, progress=progress, runtime=args.runtime)
    finally:
        progress.close()
    summary = {
        "path": result.path,
        "n_train": result.n_train,
        "n_valid": result.n_valid,
        "device": result.device,
        "duration_s": round(result.duration_s, 2),
        "valid_metrics": {k: v for k, v in result.metrics.items() if k != "per_tag"},
    }
    print(json.dumps(summary, indent=1))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mlcore.explain import explain_many
    from mlcore.inference import load_model, predict

    model = load_model(args.model, runtime=args.runtime)

    def rows() -> Iterator[dict[str, Any]]:
        bar = tqdm(desc="predict", unit=" products", file=sys.stderr, disable=args.quiet, dynamic_ncols=True)
        for batch in _batches(read_jsonl(args.input), args.batch_size):
            suggestions = predict(model, batch, top_k=args.top_k)
            explanations = (
                explain_many(model, batch, [[s.tag for s in scored] for scored in suggestions])
                if args.explain
                else None
            )
            for i, (record, scored) in enumerate(zip(batch, suggestions)):
                tags = [{"tag": s.tag, "score": round(s.score, 6), "selected": s.selected} for s in scored]
                if explanations is not None:
                    for tag, explanation in zip(tags, explanations[i]):
                        tag["explain"] = {k: v for k, v in explanation.to_dict().items() if k != "tag"}
                yield {"id": record.id, "tags": tags}
            bar.update(len(batch))
        bar.close()

    count = write_jsonl(args.output, rows())
    print(json.dumps({"output": str(args.output), "products": count}), file=sys.stderr)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from mlcore.inference import load_model
    from mlcore.training import evaluate_tagger

    model = load_model(args.model, runtime=args.runtime)
    records = [r for r in read_jsonl(args.input) if r.tags]
    if not records:
        raise RecordError(f"{args.input}: no record has gold tags to evaluate against")
    metrics = evaluate_tagger(model, records, per_tag=not args.no_per_tag)
    print(json.dumps(metrics, indent=1, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mlcore", description="TagStudio tagger: train, predict, evaluate"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache directory (default $TAGSTUDIO_CACHE_DIR or ~/.cache/tagstudio/embeddings)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a tagger and write its artifact directory")
    p.add_argument("--train", required=True, type=Path, help="JSONL records with gold tags")
    p.add_argument("--out", required=True, type=Path, help="artifact directory to write (replaced)")
    p.add_argument("--config", type=Path, default=None, help="TrainConfig as JSON")
    p.add_argument("--tagger", default=None, help="tagger kind (overrides the config's)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="suggest tags for every record of a JSONL file")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--input", required=True, type=Path)
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument(
        "--explain",
        action="store_true",
        help='add an "explain" object (why: mentions, similar products, words) to each suggested tag',
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="print metrics (JSON) of a model on a labelled JSONL file")
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--input", required=True, type=Path)
    p.add_argument("--no-per-tag", action="store_true", help="leave the per-tag table out")
    p.set_defaults(func=_cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Entry point: nothing is downloaded (transformers' own helpers read this too).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        args.runtime = runtime_from_env(os.environ, cache_dir=args.cache_dir)
        return int(args.func(args))
    except (RecordError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
