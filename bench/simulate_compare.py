"""Compare several selection strategies on one set's simulation split, same seeds, one random control.

``.venv/bin/python bench/simulate_compare.py myntra_fashion_attrs --strategies coverage,gradient_embedding
--budget 1000`` splits the set as ``bench/simulate_all.py`` does (``--pool-size`` / ``--test-size``), trains
the tagger on the whole pool for the target, runs every strategy and random on the same seed sets
(``mlcore.simulate.run_curves``), and prints per strategy the labels to the target, the mean F1 lead over
random, the catalog labels to target and ratio (``mlcore.simulate``'s catalog view) and both mean curves.
``--calibration`` instead reports the seed model's reliability on the held-out pool (probability bins
against the gold rate, expected against actual wrong decisions). This is how the exploration table in ``bench/README.md`` was measured; the
official per-set figures come from ``simulate_all.py`` (the ``python -m mlcore.simulate`` contract).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from simulate_all import CACHE, split_set  # noqa: E402

from mlcore import simulate  # noqa: E402
from mlcore.cli import runtime_from_env  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", help="a set name under ../shared/data")
    parser.add_argument("--strategies", required=True, help="comma-separated strategy names")
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pool-size", type=int, default=2000)
    parser.add_argument("--test-size", type=int, default=700)
    parser.add_argument("--tagger", default="default")
    parser.add_argument("--selection-features", default="text", choices=simulate.SELECTION_INPUTS)
    parser.add_argument(
        "--calibration",
        action="store_true",
        help="only report the seed model's reliability on the held-out pool (no curves)",
    )
    args = parser.parse_args()

    strategies = [simulate.resolved_strategy(s) for s in args.strategies.split(",") if s]
    # Its own folder: simulate_all.py's split of the same set may be in use with other sizes.
    directory = CACHE / args.set / f"compare-{args.pool_size}-{args.test_size}"
    pool_path, test_path, _, _ = split_set(
        args.set, pool_size=args.pool_size, test_size=args.test_size, directory=directory
    )
    config = simulate.SimulationConfig(
        pool=pool_path,
        test=test_path,
        strategy=strategies[0],
        out=Path("unused"),
        budget=args.budget,
        seeds=args.seeds,
        tagger=args.tagger,
        selection_features=args.selection_features,
        runtime=runtime_from_env(os.environ),
    )
    pool = simulate.load_records(pool_path, role="pool", keep_category_path=False)
    test = simulate.load_records(test_path, role="test", keep_category_path=False)
    if args.calibration:
        print(json.dumps(calibration_report(pool, config), indent=1))
        return 0
    started = time.perf_counter()
    full_f1 = simulate.micro_f1(simulate.make_tagger(args.tagger, config.runtime).fit(pool), test)
    target = 0.95 * full_f1
    features, texts = simulate.selection_inputs(pool, args.selection_features, config.runtime)
    names = [*strategies, simulate.CONTROL] if simulate.CONTROL not in strategies else strategies
    points = simulate.run_curves(pool, test, strategies=names, config=config, features=features, texts=texts)
    print(
        f"{args.set}: pool {len(pool)}, test {len(test)}, whole-pool F1 {full_f1:.4f}, target {target:.4f}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    catalog_target = simulate.catalog_target(points, names[0])
    print(f"catalog target {catalog_target:.4f} (half the seed model's catalog error)")
    random_labels = simulate.labels_to_target(*simulate.mean_curve(points, simulate.CONTROL)[:2], target)
    random_catalog = simulate.labels_to_target(
        *simulate.mean_curve(points, simulate.CONTROL, "catalog_f1")[:2], catalog_target
    )
    for name in names:
        labels, f1, _, _ = simulate.mean_curve(points, name)
        _, catalog, _, _ = simulate.mean_curve(points, name, "catalog_f1")
        lead = simulate.mean_f1_lead(points, name) if name != simulate.CONTROL else None
        reached = simulate.labels_to_target(labels, f1, target)
        catalog_reached = simulate.labels_to_target(labels, catalog, catalog_target)
        print(
            json.dumps(
                {
                    "strategy": name,
                    "labels_to_target": reached,
                    "ratio": round(reached / random_labels, 3) if reached and random_labels else None,
                    "catalog_labels_to_target": catalog_reached,
                    "catalog_ratio": round(catalog_reached / random_catalog, 3)
                    if catalog_reached and random_catalog
                    else None,
                    "mean_f1_lead": None if lead is None else round(lead, 4),
                    "curve": {n: round(v, 4) for n, v in zip(labels, f1)},
                    "catalog_curve": {n: round(v, 4) for n, v in zip(labels, catalog)},
                }
            )
        )
    return 0


def calibration_report(pool: list, config: simulate.SimulationConfig, seed: int = 0) -> dict:
    """Reliability of the seed model's probabilities on the pool products it did not see (gold known).

    Per probability bin: the mean probability and the share of those (product, tag) cells whose tag is
    gold; then the expected number of wrong decisions (``mlcore.selection.expected_wrong_decisions``) next
    to the wrong decisions actually made (cells the probability matrix covers, and in all).
    """
    import numpy as np

    from mlcore.data import encode_labels
    from mlcore.selection.uncertainty import decisions, expected_wrong_decisions

    rows = simulate.seed_rows(len(pool), config.seed_size, seed)
    tagger = simulate.make_tagger(config.tagger, config.runtime).fit([pool[i] for i in rows])
    held_out = np.setdiff1d(np.arange(len(pool)), rows)
    records = [pool[i] for i in held_out]
    probs = np.asarray(tagger.predict_proba(records), dtype=np.float32)
    gold = np.asarray(encode_labels([r.tags for r in records], list(tagger.classes_)).toarray(), dtype=bool)
    thresholds = simulate.tagger_thresholds(tagger)
    thresholds = (
        np.full(probs.shape[1], 0.5, np.float32)
        if thresholds is None
        else np.broadcast_to(thresholds, (probs.shape[1],)).astype(np.float32)
    )
    edges = [0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001]
    bins = []
    for low, high in zip(edges, edges[1:]):
        mask = (probs >= low) & (probs < high)
        if mask.any():
            bins.append(
                {
                    "bin": f"[{low:.2f}, {min(high, 1):.2f})",
                    "cells": int(mask.sum()),
                    "mean_p": round(float(probs[mask].mean()), 4),
                    "gold_rate": round(float(gold[mask].mean()), 4),
                }
            )
    chosen = decisions(probs, thresholds)
    wrong = chosen != gold
    unseen = sum(len(set(r.tags) - set(tagger.classes_)) for r in records)
    expected = expected_wrong_decisions(probs, thresholds)
    per_product = wrong.sum(axis=1)
    return {
        "seed_model_products": len(rows),
        "held_out_products": len(records),
        "thresholds": {
            "min": float(thresholds.min()),
            "median": float(np.median(thresholds)),
            "max": float(thresholds.max()),
        },
        "reliability": bins,
        "expected_wrong_decisions": round(float(expected.sum()), 1),
        "wrong_decisions_known_tags": int(wrong.sum()),
        "wrong_decisions_with_unseen_tags": int(wrong.sum()) + unseen,
        "spearman_expected_vs_actual_per_product": round(
            float(np.corrcoef(np.argsort(np.argsort(expected)), np.argsort(np.argsort(per_product)))[0, 1]), 3
        ),
        "share_of_errors_in_top_10pct_by_expected": round(
            float(
                per_product[np.argsort(-expected)[: max(1, len(records) // 10)]].sum()
                / max(per_product.sum(), 1)
            ),
            3,
        ),
    }


if __name__ == "__main__":
    raise SystemExit(main())
