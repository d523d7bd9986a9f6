"""Peer: fastText supervised classification with independent binary losses (``-loss ova``).

Runs inside ``.bench-cache/venvs/fasttext``; see ``_protocol.py``. Settings follow fastText's own
multi-label tutorial (``-lr 0.5 -epoch 25 -wordNgrams 2 -bucket 200000 -dim 50 -loss one-vs-all``), with
``-minCount 1`` because product catalogs are small. The tutorial's epochs underfit long-tailed catalogs
of a few thousand products (tags seen two or three times), and character n-grams matter for Chinese, so
the settings are chosen on the validation part from a small grid (the tutorial's among them), as a
fastText user would. A setting that diverges (fastText's "Encountered NaN") is skipped.
"""

from __future__ import annotations

import os
import re
import tempfile

import fasttext
from _protocol import (
    Stopwatch,
    best_micro_f1,
    read_part,
    runner_args,
    tag_vocabulary,
    write_outputs,
)

CONFIG = {
    "loss": "ova",
    "wordNgrams": 2,
    "bucket": 200000,
    "dim": 50,
    "minCount": 1,
}
GRID = [
    {"epoch": 25, "lr": 0.5},
    {"epoch": 100, "lr": 0.5},
    {"epoch": 100, "lr": 0.2},
    {"epoch": 100, "lr": 0.5, "char_ngrams": True},
]
# Character n-gram lengths (fastText -minn/-maxn): Chinese words are one to three characters long.
CHAR_NGRAMS = {"en": {"minn": 2, "maxn": 4}, "zh": {"minn": 1, "maxn": 2}}
CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")


def main() -> None:
    args = runner_args(__doc__.splitlines()[0])
    train = read_part(args.data, "train")
    valid = read_part(args.data, "valid")
    scored = valid + read_part(args.data, "test")
    # fastText labels cannot hold spaces (tags such as "soft toys" do): train on tag numbers.
    vocabulary = tag_vocabulary(train)
    index = {tag: i for i, tag in enumerate(vocabulary)}

    def scores_of(model: fasttext.FastText._FastText, rows: list[dict]) -> list[list[tuple[str, float]]]:
        labels, probs = model.predict([row["text"] for row in rows], k=20, threshold=0.0)
        return [
            [
                (vocabulary[int(label[len("__label__") :])], float(p))
                for label, p in zip(row_labels, row_probs)
            ]
            for row_labels, row_probs in zip(labels, probs)
        ]

    with Stopwatch() as fit_time:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
            for row in train:
                labels = " ".join(f"__label__{index[tag]}" for tag in row["tags"])
                fh.write(f"{labels} {row['text']}\n")
            train_path = fh.name
        try:
            best_f1, model, chosen = -1.0, None, {}
            chinese = sum(bool(CJK.search(row["text"])) for row in train) > len(train) / 2
            for grid_point in GRID:
                settings = {k: v for k, v in grid_point.items() if k != "char_ngrams"}
                if grid_point.get("char_ngrams"):
                    settings.update(CHAR_NGRAMS["zh" if chinese else "en"])
                try:
                    candidate = fasttext.train_supervised(
                        input=train_path, thread=args.threads, seed=args.seed, verbose=0, **CONFIG, **settings
                    )
                except RuntimeError as exc:  # "Encountered NaN": this learning rate diverged
                    print(f"{settings}: {exc}", flush=True)
                    continue
                f1 = best_micro_f1(scores_of(candidate, valid), [row["tags"] for row in valid])
                print(f"{settings}: validation micro-F1 {f1:.4f}", flush=True)
                if f1 > best_f1:
                    best_f1, model, chosen = f1, candidate, settings
        finally:
            os.unlink(train_path)
        if model is None:
            raise RuntimeError("every fastText setting of the grid diverged")
    with Stopwatch() as predict_time:
        scores = scores_of(model, scored)
    run_config = {**CONFIG, **chosen, "validation_micro_f1": best_f1}
    write_outputs(args.out, scored, scores, fit_time, predict_time, run_config)


if __name__ == "__main__":
    main()
