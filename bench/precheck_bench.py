"""Which of the model's selected tags should start checked on the review card: actions per card on unseen
products for pre-check floors (``REVIEW_PRECHECK_MIN_SCORE``), at few and at more labels.

    nice -n 10 .venv/bin/python bench/precheck_bench.py --write-readme
    .venv/bin/python bench/precheck_bench.py --sets amazon_uk_toys --labels 300 --floors 0,0.4,0.5

Per set: the quality bench's split (``bench/fewlabel_probe.py``'s draw: seed 0 permutation of the training
part, the first ``N`` products, tag names known from the start), the default tagger fitted in this process,
its stored suggestions (top 20, ``suggest_from_proba``) for the first ``--max-test`` products of the test
part. A card starts with the selected suggestions scoring at least the floor checked, or its best selected
one when none does (``annotation.selectors.precheck.prechecked_keys``, the app's own rule; floor 0: every
selected one, the card before the floor existed). **Actions** as ``bench/effort_bench.py`` counts them:
1 submit + 1 per checked wrong tag + 1 per gold tag not checked (clicked when shown, typed when not: one
action either way); **right as suggested**: cards whose checked tags are exactly the gold tags (one
action). Seconds are for the fit and the suggestions.

Exits 1 when the app's default floor (``--default``, the setting's default) costs more actions than
checking every selected tag, or leaves fewer cards right as suggested by more than 0.5 percentage points,
on average over the measured (set, labels) cells.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report_verdict  # noqa: E402
from fewlabel_probe import ALL_SETS, CACHE_DIR  # noqa: E402
from quality_bench import DEFAULT_DATA_DIR, load_products, split_products, without_category  # noqa: E402

from annotation.selectors.precheck import prechecked_keys  # noqa: E402  (the app's rule; pure, no Django)
from mlcore.settings import RuntimeSettings  # noqa: E402
from mlcore.tagger import get_tagger  # noqa: E402
from mlcore.types import Taxonomy  # noqa: E402

README_SECTION = "precheck"
README_HEADING = "## Pre-checked chips: which selected tags start checked (`bench/precheck_bench.py`)"
DEFAULT_FLOOR = 0.4  # tagstudio/settings.py REVIEW_PRECHECK_MIN_SCORE
EXACT_SLACK = 0.005


def card_outcomes(
    suggestions: list[list[tuple[str, float, bool]]], gold: list[set[str]], floor: float
) -> dict[str, float]:
    """Mean actions, share right as suggested, checked wrong and gold missing per card, for one floor."""
    actions = wrong = missing = exact = 0
    for row, tags in zip(suggestions, gold, strict=True):
        checked = prechecked_keys(row, min_score=floor)
        fp, fn = len(checked - tags), len(tags - checked)
        actions += 1 + fp + fn
        wrong += fp
        missing += fn
        exact += fp + fn == 0
    n = max(len(gold), 1)
    return {"actions": actions / n, "right": exact / n, "wrong_checked": wrong / n, "missing": missing / n}


def measure(
    name: str, labels: list[int], floors: list[float], args: argparse.Namespace
) -> list[dict[str, Any]]:
    products = load_products(args.data_dir / name / "dev.jsonl")
    split = split_products(products, seed=0, max_train=16_000, max_valid=4_000, max_test=5_000)
    train = [without_category(p) for p in split.train]
    test = [without_category(p) for p in split.test][: args.max_test]
    gold = [set(p.tags) for p in test]
    taxonomy = Taxonomy.from_names(sorted({t for p in split.train + split.valid for t in p.tags}))
    order = np.random.default_rng(1000).permutation(len(train))  # fewlabel_probe's seed-0 draw
    runtime = RuntimeSettings(cache_dir=CACHE_DIR, num_threads=args.threads)
    rows = []
    for n in labels:
        draw = [train[i] for i in order[:n]]
        started = time.perf_counter()
        tagger = get_tagger("default", {"seed": 13}, runtime=runtime)
        tagger.fit(draw, taxonomy=taxonomy)
        scored = tagger.suggest_from_proba(tagger.predict_proba(test), top_k=20)
        seconds = time.perf_counter() - started
        suggestions = [[(s.tag, float(s.score), bool(s.selected)) for s in row] for row in scored]
        selected_scores = [score for row in suggestions for _, score, selected in row if selected]
        row = {"set": name, "labels": len(draw), "test": len(test), "seconds": round(seconds, 1),
               "selected_per_card": len(selected_scores) / len(test),
               "selected_below": {str(f): sum(s < f for s in selected_scores) / len(test) for f in floors},
               "floors": {str(f): card_outcomes(suggestions, gold, f) for f in floors}}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def verdict(rows: list[dict[str, Any]], default: float) -> list[str]:
    base = [r["floors"]["0.0"] for r in rows]
    new = [r["floors"][str(default)] for r in rows]
    actions = (np.mean([b["actions"] for b in base]), np.mean([c["actions"] for c in new]))
    right = (np.mean([b["right"] for b in base]), np.mean([c["right"] for c in new]))
    missed = []
    if actions[1] > actions[0]:
        missed.append(
            f"floor {default}: {actions[1]:.3f} actions per card on average, more than {actions[0]:.3f}"
        )
    if right[1] < right[0] - EXACT_SLACK:
        missed.append(f"floor {default}: {right[1]:.1%} right as suggested on average, below {right[0]:.1%}")
    return missed


def render(
    rows: list[dict[str, Any]], floors: list[float], default: float, command: str, missed: list[str]
) -> str:
    load = os.getloadavg()[0]
    lines = [
        f"Measured {dt.date.today().isoformat()} ({os.cpu_count()} cores, shared; load average {load:.1f} at the "
        f"end) with `{command}`. Default tagger, tag names known, the first {max(r['test'] for r in rows):,} "
        "products (at most) of each test part; per cell: mean actions per card / share right as suggested (floor 0 = every selected tag "
        f"checked, the card before the floor; **{default}** = the default of `REVIEW_PRECHECK_MIN_SCORE`).",
        "",
        "| set | labels | selected per card (below 0.4) | "
        + " | ".join(f"floor {f:g}" for f in floors) + " |",
        "|---|---:|---:|" + "---:|" * len(floors),
    ]  # fmt: skip
    for r in rows:
        cells = []
        for f in floors:
            o = r["floors"][str(f)]
            text = f"{o['actions']:.3f} / {o['right']:.1%}"
            cells.append(f"**{text}**" if f == default else text)
        below = r["selected_below"].get("0.4")
        below_text = f" ({below:.2f})" if below is not None else ""
        lines.append(
            f"| {r['set']} | {r['labels']:,} | {r['selected_per_card']:.2f}{below_text} | "
            + " | ".join(cells)
            + " |"
        )
    means = []
    for f in floors:
        o = [r["floors"][str(f)] for r in rows]
        means.append(f"{np.mean([x['actions'] for x in o]):.3f} / {np.mean([x['right'] for x in o]):.1%}")
    lines.append("| mean | | | " + " | ".join(means) + " |")
    lines += ["", "Verdict: " + ("the default floor costs fewer actions than checking every selected tag and "
                                 "keeps the share of cards right as suggested, on average." if not missed
                                 else "; ".join(missed) + ".")]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(ALL_SETS))
    parser.add_argument("--labels", default="300,2000")
    parser.add_argument("--floors", default="0,0.3,0.4,0.5")
    parser.add_argument("--default", type=float, default=DEFAULT_FLOOR)
    parser.add_argument("--max-test", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    floors = sorted({float(f) for f in args.floors.split(",")} | {0.0, args.default})
    labels = [int(n) for n in args.labels.split(",")]
    rows = []
    for name in [s for s in args.sets.split(",") if s]:
        rows += measure(name, labels, floors, args)
    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--write-readme"]
    command = " ".join(["nice -n 10 .venv/bin/python bench/precheck_bench.py", *given])
    missed = verdict(rows, args.default)
    text = render(rows, floors, args.default, command, missed)
    return report_verdict(
        text, missed, section=README_SECTION, heading=README_HEADING, write_readme=args.write_readme
    )


if __name__ == "__main__":
    sys.exit(main())
