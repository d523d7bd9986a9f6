"""Quick few-label probe of the default tagger (issue 19): a developer's A/B harness, not the benchmark.

On each set it takes ``bench/quality_bench.py``'s seeded split (imported, not re-implemented), draws
100 / 300 / 1,000 / 2,000 products from the training part (one seeded permutation per seed, so the
draws are nested), fits the default tagger in this process with the taxonomy's tag names known from
the start (every tag of the set's training part, as an imported taxonomy gives them) and scores its
``selected`` output on the first ``--max-test`` products of the test part. Embeddings go to one cache
shared by every run (``.bench-cache/fewlabel-embeddings``), so only the first run encodes.

Reported per (set, labels, seed): micro-F1 of the selected tags; calibration of the probabilities:
precision of the selected tags against their mean probability (an over-confident tagger selects at
p 0.8 what is right 60% of the time), and expected wrong decisions (``mlcore.selection``'s measure
over the thresholds applied) against the wrong decisions actually made; warm fit seconds.

    nice -n 10 .venv/bin/python bench/fewlabel_probe.py --label base --sets myntra_fashion_attrs
    .venv/bin/python bench/fewlabel_probe.py --compare base,new

``--config KEY=VALUE`` (repeatable) overrides a ``HybridConfig`` key, to compare variants;
``--no-taxonomy`` trains on the draw's own tags only (the tagger as it was before tag names were known).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_bench import DEFAULT_DATA_DIR, load_products, split_products, without_category  # noqa: E402

from mlcore.metrics import evaluate_tag_sets  # noqa: E402
from mlcore.settings import RuntimeSettings  # noqa: E402
from mlcore.tagger import get_tagger  # noqa: E402
from mlcore.types import ProductRecord  # noqa: E402

try:  # absent from the code before tag names reached the tagger (run the baseline with --no-taxonomy)
    from mlcore.types import Taxonomy  # noqa: E402
except ImportError:  # pragma: no cover - baseline runs only
    Taxonomy = None  # type: ignore[assignment,misc]

OUT_DIR = REPO_ROOT / ".bench-cache" / "fewlabel"
CACHE_DIR = REPO_ROOT / ".bench-cache" / "fewlabel-embeddings"
ALL_SETS = (
    "amazon_uk_toys",
    "bigbasket_grocery",
    "myntra_catalog_desc",
    "myntra_fashion_attrs",
    "zh_ecommerce_ner_acl19",
    "zh_online_shopping_10cats",
    "zh_taobao_ner_naacl19",
)


def calibration(gold: Sequence[Sequence[str]], classes: list[str], proba: np.ndarray, decided: np.ndarray):
    """(mean p of selected, precision of selected, expected wrong decisions, actual wrong decisions)."""
    col = {t: j for j, t in enumerate(classes)}
    y = np.zeros(proba.shape, dtype=bool)
    unknown = 0
    for i, tags in enumerate(gold):
        for t in tags:
            if t in col:
                y[i, col[t]] = True
            else:
                unknown += 1
    sel_p = float(proba[decided].mean()) if decided.any() else 0.0
    sel_prec = float(y[decided].mean()) if decided.any() else 0.0
    expected = float(np.where(decided, 1 - proba, proba).sum())
    actual = float((decided != y).sum() + unknown)
    return sel_p, sel_prec, expected, actual


def run_one(
    set_name: str,
    train: list[ProductRecord],
    test: list[ProductRecord],
    taxonomy: Any,
    n: int,
    seed: int,
    overrides: dict[str, Any],
    runtime: RuntimeSettings,
) -> dict[str, Any]:
    order = np.random.default_rng(1000 + seed).permutation(len(train))
    draw = [train[i] for i in order[:n]]
    tagger = get_tagger("default", {"seed": 13 + seed, **overrides}, runtime=runtime)
    started = time.perf_counter()
    tagger.fit(draw, taxonomy=taxonomy) if taxonomy is not None else tagger.fit(draw)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    proba = tagger.predict_proba(test)
    suggestions = tagger.suggest_from_proba(proba, top_k=20)
    predict_s = time.perf_counter() - started
    selected = [[s.tag for s in row if s.selected] for row in suggestions]
    metrics = evaluate_tag_sets(
        [r.tags for r in test], selected, [[s.tag for s in row] for row in suggestions]
    )
    col = {t: j for j, t in enumerate(tagger.classes_)}
    decided = np.zeros(proba.shape, dtype=bool)
    for i, tags in enumerate(selected):
        for t in tags:
            if t in col:
                decided[i, col[t]] = True
    sel_p, sel_prec, expected, actual = calibration([r.tags for r in test], tagger.classes_, proba, decided)
    return {
        "set": set_name,
        "n": n,
        "seed": seed,
        "micro_f1": metrics["micro_f1"],
        "precision": metrics.get("micro_precision"),
        "recall": metrics.get("micro_recall"),
        "selected_mean_p": sel_p,
        "selected_precision": sel_prec,
        "expected_errors": expected,
        "actual_errors": actual,
        "fit_s": fit_s,
        "predict_per_s": len(test) / max(predict_s, 1e-9),
        "n_classes": len(tagger.classes_),
        "info": {k: v for k, v in tagger.info_.items() if isinstance(v, int | float | str | bool)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="run")
    parser.add_argument("--sets", default=",".join(ALL_SETS))
    parser.add_argument("--sizes", default="100,300,1000,2000")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--max-test", type=int, default=2000)
    parser.add_argument("--config", action="append", default=[], help="HybridConfig KEY=VALUE (JSON value)")
    parser.add_argument("--no-taxonomy", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=1, help="1 on a shared machine: spin-waiting threads stall"
    )
    parser.add_argument("--compare", default=None, help="LABEL,LABEL,...: print the saved runs side by side")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(args.compare.split(","))
    overrides = {}
    for item in args.config:
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    runtime = RuntimeSettings(cache_dir=CACHE_DIR, num_threads=args.threads)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out_path = OUT_DIR / f"{args.label}.jsonl"
    for set_name in args.sets.split(","):
        products = load_products(DEFAULT_DATA_DIR / set_name / "dev.jsonl")
        split = split_products(products, seed=0, max_train=16_000, max_valid=4_000, max_test=5_000)
        train = [without_category(p) for p in split.train]
        test = [without_category(p) for p in split.test[: args.max_test]]
        taxonomy = (
            None if args.no_taxonomy else Taxonomy.from_names(sorted({t for p in train for t in p.tags}))
        )
        for seed in range(args.seeds):
            for n in (int(s) for s in args.sizes.split(",")):
                if n > len(train):
                    continue
                row = run_one(set_name, train, test, taxonomy, n, seed, overrides, runtime)
                row["label"] = args.label
                row["overrides"] = overrides
                print(
                    f"{set_name} n={n} seed={seed}: micro-F1 {row['micro_f1']:.4f} "
                    f"sel p {row['selected_mean_p']:.3f} vs prec {row['selected_precision']:.3f} "
                    f"exp/act err {row['expected_errors']:.0f}/{row['actual_errors']:.0f} "
                    f"fit {row['fit_s']:.1f}s",
                    flush=True,
                )
                with open(out_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
    return 0


def compare(labels: list[str]) -> int:
    rows: dict[tuple[str, str, int], list[dict]] = {}
    for label in labels:
        path = OUT_DIR / f"{label}.jsonl"
        for line in path.read_text().splitlines():
            r = json.loads(line)
            rows.setdefault((label, r["set"], r["n"]), []).append(r)
    sets = sorted({k[1] for k in rows})
    sizes = sorted({k[2] for k in rows})

    def mean(label: str, s: str, n: int, key: str) -> float | None:
        got = rows.get((label, s, n))
        return float(np.mean([r[key] for r in got])) if got else None

    def cell(v: float | None, fmt: str = "{:.4f}") -> str:
        return fmt.format(v) if v is not None else "—"

    print("micro-F1 (selected) | " + " | ".join(labels))
    print(
        f"| set | n | {' | '.join(labels)} | sel p / prec ({labels[-1]}) | exp/act err ({labels[-1]}) | fit s |"
    )
    print("|---|---:|" + "---:|" * (len(labels) + 3))
    for s in sets:
        for n in sizes:
            f1 = [cell(mean(lab, s, n, "micro_f1")) for lab in labels]
            last = labels[-1]
            sp, pr = mean(last, s, n, "selected_mean_p"), mean(last, s, n, "selected_precision")
            ee, ae = mean(last, s, n, "expected_errors"), mean(last, s, n, "actual_errors")
            cal = f"{cell(sp, '{:.2f}')} / {cell(pr, '{:.2f}')}"
            err = f"{cell(ee, '{:.0f}')} / {cell(ae, '{:.0f}')}"
            print(
                f"| {s} | {n} | {' | '.join(f1)} | {cal} | {err} | {cell(mean(last, s, n, 'fit_s'), '{:.1f}')} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
