"""What the default tagger's exclusive-group rules do to the card: the same trained model with and without them.

On the quality bench's split of each set (seed 0, caps 16,000 / 4,000 / 5,000, category path removed, no
identical title across parts: ``quality_bench.split_products``), the default tagger is trained the CLI's way
(``mlcore.training.train`` on train + validation) and scores the test part once; the selection is then made
twice from the same scores, with the groups the tagger learned (``postprocess.exclusive_groups``) and with
none. Reported per set: micro-F1, the share of products whose selected tags are exactly their gold tags (a
card right as suggested: one action), and wrong decisions per product (pre-checked wrong + gold left out:
what a reviewer clicks beside the submit), plus the groups kept and their rules.

    .venv/bin/python bench/exclusive_groups_bench.py --sets myntra_fashion_attrs,amazon_uk_toys

Exit status 1 when the rules lower micro-F1 or the exact-card share on a set (they are chosen on held-out
scores to raise micro-F1, so that would be a regression worth a look).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from quality_bench import load_products, split_products, without_category  # noqa: E402

DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def card_figures(selected: list[set[str]], gold: list[set[str]]) -> dict[str, float]:
    """micro-F1, share of exact cards and wrong decisions per product."""
    from mlcore.metrics import evaluate_tag_sets

    return {
        "micro_f1": float(evaluate_tag_sets(gold, selected, per_tag=False)["micro_f1"]),
        "exact_cards": sum(s == g for s, g in zip(selected, gold)) / max(1, len(gold)),
        "wrong_per_product": sum(len(s ^ g) for s, g in zip(selected, gold)) / max(1, len(gold)),
    }


def bench_set(name: str, data_dir: Path, work: Path) -> dict:
    from mlcore.cli import runtime_from_env
    from mlcore.tagger import load_tagger
    from mlcore.training import TrainConfig, train

    products = load_products(data_dir / name / "dev.jsonl")
    split = split_products(products, seed=0, max_train=16_000, max_valid=4_000, max_test=5_000)
    train_part = [without_category(p) for p in split.train + split.valid]
    test = [without_category(p) for p in split.test]
    runtime = runtime_from_env(os.environ)
    started = time.perf_counter()
    train(train_part, work / name, TrainConfig(), runtime=runtime)
    train_s = time.perf_counter() - started
    tagger = load_tagger(work / name, runtime=runtime)
    proba = tagger.predict_proba(test)
    gold = [set(p.tags) for p in test]

    def selected() -> list[set[str]]:
        return [{s.tag for s in row if s.selected} for row in tagger.suggest_from_proba(proba)]

    groups = list(tagger.postprocess.exclusive_groups)
    with_rules = card_figures(selected(), gold)
    tagger.postprocess.exclusive_groups = []
    without = card_figures(selected(), gold)
    return {
        "set": name,
        "n_train": len(train_part),
        "n_test": len(test),
        "train_s": round(train_s, 1),
        "groups": [{"size": len(g.tags), "rule": g.rule, "first": list(g.tags[:3])} for g in groups],
        "with_rules": with_rules,
        "without_rules": without,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="myntra_fashion_attrs,amazon_uk_toys,bigbasket_grocery")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results, regressions = [], []
    with tempfile.TemporaryDirectory(prefix="exclusive-bench-") as tmp:
        for name in [s for s in args.sets.split(",") if s]:
            result = bench_set(name, args.data_dir, Path(tmp))
            results.append(result)
            w, wo = result["with_rules"], result["without_rules"]
            print(
                f"{name}: micro-F1 {wo['micro_f1']:.4f} -> {w['micro_f1']:.4f}; exact cards "
                f"{wo['exact_cards']:.1%} -> {w['exact_cards']:.1%}; wrong decisions per product "
                f"{wo['wrong_per_product']:.3f} -> {w['wrong_per_product']:.3f}; groups "
                + ", ".join(
                    f"{g['size']} {g['rule']} ({', '.join(g['first'])}, ...)" for g in result["groups"]
                ),
                flush=True,
            )
            if w["micro_f1"] < wo["micro_f1"] or w["exact_cards"] < wo["exact_cards"]:
                regressions.append(name)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if regressions:
        print("the rules lowered micro-F1 or exact cards on: " + ", ".join(regressions))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
