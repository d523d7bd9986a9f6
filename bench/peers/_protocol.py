"""File protocol between ``bench/quality_bench.py`` and the peer runners in this folder.

The runners execute inside each peer's own virtualenv (whose pins clash with the app's), so this module
uses the standard library only and is put on ``sys.path`` by running a runner as a script (its folder is
``sys.path[0]``).

Input folder (``--data``): ``train.jsonl``, ``valid.jsonl``, ``test.jsonl``; one product per line,
``{"id": str, "text": str, "tags": [str, ...]}``. ``text`` is already prepared: cleaned, case-folded,
punctuation dropped, Chinese segmented with jieba, tokens separated by single spaces.

Output folder (``--out``): ``scores.jsonl`` with one line per validation and test product,
``{"id": str, "scores": [[tag, score], ...]}`` best first (at most ``TOP_K``), and ``info.json`` with
``train_s``, ``predict_s``, ``n_predict`` and the ``config`` the peer ran with.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

TOP_K = 20
PARTS = ("train", "valid", "test")


def runner_args(description: str, extra: Sequence[tuple[str, dict[str, Any]]] = ()) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="folder with train/valid/test.jsonl")
    parser.add_argument("--out", required=True, help="folder for scores.jsonl and info.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    for flag, kwargs in extra:
        parser.add_argument(flag, **kwargs)
    return parser.parse_args()


def read_part(data_dir: str, part: str) -> list[dict[str, Any]]:
    path = os.path.join(data_dir, f"{part}.jsonl")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("id"), str) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{line_no}: needs string fields 'id' and 'text'")
            row.setdefault("tags", [])
            rows.append(row)
    return rows


def tag_vocabulary(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Tags seen in training, in a stable order (what a peer can predict)."""
    return sorted({tag for row in rows for tag in row["tags"]})


def write_outputs(
    out_dir: str,
    scored: Sequence[dict[str, Any]],
    scores: Sequence[Sequence[tuple[str, float]]],
    fit_time: Stopwatch,
    predict_time: Stopwatch,
    config: dict[str, Any],
) -> None:
    """``scores.jsonl`` (the ranked tags of each of the ``scored`` rows, in their order) and ``info.json``
    (the fit and predict times, the number of scored rows and the ``config`` the peer ran with)."""
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, ".scores.jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row, ranked in zip(scored, scores):
            best = sorted(ranked, key=lambda pair: -pair[1])[:TOP_K]
            line = {"id": row["id"], "scores": [[tag, float(score)] for tag, score in best]}
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    os.replace(tmp, os.path.join(out_dir, "scores.jsonl"))
    info = {
        "train_s": fit_time.seconds,
        "predict_s": predict_time.seconds,
        "n_predict": len(scored),
        "config": config,
    }
    with open(os.path.join(out_dir, "info.json"), "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2, ensure_ascii=False)


def best_micro_f1(scores: Sequence[Sequence[tuple[str, float]]], gold: Sequence[Sequence[str]]) -> float:
    """Micro-F1 under the best global threshold (top tag always kept): how a peer picks its settings on
    the validation part. Same rule as the harness's threshold tuning, in plain Python."""
    n_gold = sum(len(set(g)) for g in gold)
    tp = sum(1 for ranked, g in zip(scores, gold) if ranked and ranked[0][0] in g)
    selected = sum(1 for ranked in scores if ranked)
    rest = sorted(
        ((score, tag in g) for ranked, g in zip(scores, gold) for tag, score in ranked[1:]),
        key=lambda x: -x[0],
    )
    best = 2 * tp / (selected + n_gold) if selected + n_gold else 0.0
    for i, (score, hit) in enumerate(rest):
        tp += hit
        selected += 1
        if i + 1 == len(rest) or rest[i + 1][0] != score:
            best = max(best, 2 * tp / (selected + n_gold))
    return best


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
