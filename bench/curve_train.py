"""Train TagStudio's tagger for the learning curve the way the app does: ``mlcore.training.train()`` on the
labelled products, with the taxonomy's tag names known from the start.

Runs as a child process with ``PYTHONPATH`` at the checkout being measured (this one, or another branch's:
``quality_bench.py --curve --tagstudio-root``), so it adapts to that checkout's API: tag names go in as
``train(known_tags=[...])`` or ``train(taxonomy=Taxonomy.from_names([...]))``, whichever ``train`` takes;
when it takes neither, training runs without them and the summary says so. Prints one JSON line:
``{"known_tags_via": "known_tags" | "taxonomy" | null, "n_train": ..., "duration_s": ...}``.

``--repeat 2`` trains a second time in the same process (into a temporary directory, removed): the app
retrains inside a long-lived worker, so that second call, with libraries, encoder and embeddings loaded,
is what a person waits for; its wall seconds are ``warm_worker_s`` (see ``bench/fewlabel_speed.py``).

    python bench/curve_train.py --train draw.jsonl --known-tags tags.txt --out MODEL_DIR [--config C.json]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--known-tags", type=Path, default=None, help="tag names, one per line")
    parser.add_argument("--config", type=Path, default=None, help="TrainConfig as JSON")
    parser.add_argument("--repeat", type=int, default=1, help="train this many times in this process")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from mlcore.cli import runtime_from_env
    from mlcore.records import read_jsonl
    from mlcore.training import TrainConfig, train

    config = TrainConfig.from_json(args.config) if args.config else TrainConfig()
    records = list(read_jsonl(args.train))
    names: list[str] = []
    if args.known_tags is not None:
        with open(args.known_tags, encoding="utf-8") as fh:
            names = [line.strip() for line in fh if line.strip()]
    params = inspect.signature(train).parameters
    extra: dict = {}
    via = None
    if names and "known_tags" in params:
        extra, via = {"known_tags": names}, "known_tags"
    elif names and "taxonomy" in params:
        from mlcore.types import Taxonomy  # only in checkouts whose train() takes a taxonomy

        extra, via = {"taxonomy": Taxonomy.from_names(names)}, "taxonomy"
    result = train(records, args.out, config, runtime=runtime_from_env(os.environ), **extra)
    summary = {"known_tags_via": via, "n_known_tags": len(names), "n_train": result.n_train,
               "n_valid": result.n_valid, "duration_s": result.duration_s}  # fmt: skip
    for _ in range(args.repeat - 1):
        with tempfile.TemporaryDirectory(prefix="curve-train-") as again:
            started = time.perf_counter()
            train(records, again, config, runtime=runtime_from_env(os.environ), **extra)
            summary["warm_worker_s"] = round(time.perf_counter() - started, 3)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
